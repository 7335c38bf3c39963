"""The simulator: an onnxruntime session for any assignment of one calibrated model.

Each candidate runs as the static QDQ graph it would be exported as, with one fixed onnxruntime
configuration (`session.disable_quant_qdq=1`: no integer-kernel fusion; one intra-op thread per
process). Feature calibration nodes are real Q/DQ nodes (an "ec" node: the real `_split_low`
rewrite). A weight initializer read only by its one calibration node is fake-quantized once per
qtype in numpy (bit-exact with onnxruntime's Q/DQ; float16: `float16_round`, bit-exact with the
exported saturating Clip/Cast round trip) and handed to onnxruntime in memory, so a
session builds in tens of ms and runs as a float-weight graph; every other weight (shared by several
consumers, a Constant node's output, or at "ec") is rendered exactly as the exporter renders it, so
a simulation is always the exported model's computation.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

from autoprec.evaluate.builds import ProtoCache
from autoprec.ir import EC, FEATURE, CalibratedModel, CalibrationNode
from autoprec.ir.deploy import deploy_onnx
from autoprec.ir.float16 import float16_round
from autoprec.ir.records import graph_maps

if TYPE_CHECKING:
    from autoprec.evaluate.segments import SegmentedSession, Segmenter

Assignment = dict[str, str]
RUNTIMES = ("as-searched", "ort-default")  # ort-default: onnxruntime's default session, as ONNX Runtime CPU deploys
IN_MEMORY_MIN_ELEMENTS = 256  # smaller initializers (shapes, scalars) stay in the proto
SESSIONS_KEPT = 2  # sessions kept by assignment: a candidate run again on other samples (a held-out check, the
# other half of its samples in this worker) reuses its session instead of paying onnxruntime's session creation


def session_options(threads: int = 1, runtime: str = "as-searched") -> ort.SessionOptions:
    """The session configuration of a simulation: no integer-kernel QDQ fusion, or (`ort-default`)
    onnxruntime's defaults with their fused integer kernels."""
    options = ort.SessionOptions()
    if runtime == "as-searched":
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # failures surface as exceptions (one-line errors), not log lines
    return options


@dataclass
class Built:
    """A proto ready for a session: `in_memory` names the weights it takes from memory, and at which qtype."""

    proto: onnx.ModelProto
    in_memory: dict[str, str]


class Simulator:
    """Builds onnxruntime sessions for assignments of one calibrated model."""

    def __init__(self, model: CalibratedModel, threads: int = 1, runtime: str = "as-searched"):
        self.model = model
        self.threads = threads
        self.runtime = runtime
        self._values: dict[tuple[str, str], ort.OrtValue] = {}
        self._lock = threading.Lock()
        self._weights = _private_weights(model)  # tensor -> its one calibration node (the in-memory fast path)
        self._sessions: OrderedDict[str, ort.InferenceSession | SegmentedSession] = OrderedDict()
        self.builds = 0  # sessions created by `session` (the cost a cached session saves)
        self.prebuilt = 0  # of those, built ahead in the background (`prepare`)
        self._pending: OrderedDict[str, Future] = OrderedDict()  # sessions `prepare` builds in the background
        self._builder: ThreadPoolExecutor | None = None
        self._protos = ProtoCache(model)  # the next candidate's proto patched from the last one
        self.segmenter: Segmenter | None = None  # set: candidates run as cached segments (`autoprec.evaluate.segments`)

    def session(self, assignment: Assignment | None) -> ort.InferenceSession | SegmentedSession:
        """A session for `assignment` (None: the float model; with a `segmenter`, candidates run as cached
        segments); the last SESSIONS_KEPT are reused as they are."""
        key = self._key(assignment)
        if key in self._sessions:
            self._sessions.move_to_end(key)
            return self._sessions[key]
        prepared = self._pending.pop(key, None)
        self._sessions[key] = prepared.result() if prepared else self._create(assignment)
        self.builds += 1
        self.prebuilt += prepared is not None
        if len(self._sessions) > SESSIONS_KEPT:
            self._sessions.popitem(last=False)
        return self._sessions[key]

    def prepare(self, assignment: Assignment | None) -> None:
        """Start building the session of `assignment` in a background thread (onnxruntime creates sessions
        without the GIL): the next candidate's build overlaps this one's runs where a core is free."""
        key = self._key(assignment)
        if key not in self._sessions and key not in self._pending:
            self._builder = self._builder or ThreadPoolExecutor(1, thread_name_prefix="autoprec-session")
            self._pending[key] = self._builder.submit(self._create, assignment)
            if len(self._pending) > SESSIONS_KEPT:  # never asked for: dropped
                self._pending.popitem(last=False)

    def _key(self, assignment: Assignment | None) -> str:
        return "float" if assignment is None else json.dumps(sorted({**self.model.assignment(), **assignment}.items()))

    def _create(self, assignment: Assignment | None) -> ort.InferenceSession | SegmentedSession:
        if self.runtime == "ort-default" and assignment is not None:  # the deployed file, fused as it deploys
            proto = deploy_onnx(self.model, {**self.model.assignment(), **assignment}).SerializeToString()
            options = session_options(self.threads, self.runtime)
            return ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
        built = self.build(assignment)
        if self.segmenter is not None and assignment is not None:
            return self.segmenter.session(built)
        return self.open(built)

    def build(self, assignment: Assignment | None) -> Built:
        """The static QDQ proto of `assignment` (None: the float model), big weights marked as fed in memory
        (as searched: the "ort-default" runtime runs the deployed file instead, see `session`)."""
        qtypes = {**self.model.assignment(), **(assignment or {})} if assignment is not None else {}
        rendered = {
            name: (qtypes[name] if assignment is not None and self._rendered(cal, qtypes[name]) else "float32")
            for name, cal in self.model.calibration.items()
        }
        proto = self._protos.proto(rendered) if assignment is not None else self.model.to_onnx(rendered, metadata=False)
        in_memory: dict[str, str] = {}
        for init in proto.graph.initializer:
            if init.data_type != TensorProto.FLOAT or init.name not in self.model.initializers:
                continue  # integer tensors, and the scales to_onnx renders for Q/DQ
            cal = self._weights.get(init.name)
            fast = cal is not None and rendered[cal.name] == "float32"
            qtype = qtypes.get(cal.name, "float32") if fast else "float32"
            if _elements(init) < IN_MEMORY_MIN_ELEMENTS:
                if qtype != "float32":  # a small weight stays in the proto, fake-quantized like any other
                    init.CopyFrom(numpy_helper.from_array(self._array(init.name, qtype), init.name))
                elif fast:  # float32 again in a proto patched from one that had it fake-quantized
                    init.CopyFrom(self.model.initializers[init.name])
                continue
            in_memory[init.name] = qtype
            _mark_in_memory(init)
        if assignment is not None:
            self._protos.keep(rendered, proto)
        return Built(proto, in_memory)

    def open(self, built: Built) -> ort.InferenceSession:
        """A session of a built proto (or of a part of one: only the in-memory weights it uses are handed over).
        Its tensors live in the process's one shared arena, not in an arena of its own: a new session's first
        run then reuses memory already mapped, and cached segment sessions keep 2 MB each instead of 40 (layout)."""
        used = {i.name for i in built.proto.graph.initializer}
        names = [name for name in built.in_memory if name in used]
        options = session_options(self.threads)
        _register_shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
        options.add_external_initializers(names, [self._value(n, built.in_memory[n]) for n in names])
        return ort.InferenceSession(built.proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def _rendered(self, cal: CalibrationNode, qtype: str) -> bool:
        """True if the node is rendered as real Q/DQ nodes (features; weights off the fast path, or at "ec")."""
        return cal.tensor_type == FEATURE or qtype == EC or self._weights.get(cal.tensor) is not cal

    def _array(self, name: str, qtype: str) -> np.ndarray:
        """The weight initializer `name` as fed at `qtype` (fake-quantized like onnxruntime's Q/DQ)."""
        array = numpy_helper.to_array(self.model.initializers[name]).astype(np.float32)
        if qtype == "float16":
            return float16_round(array)
        if qtype != "float32":
            return self._weights[name].quant_params(qtype).fake_quantize(array)
        return array

    def _value(self, name: str, qtype: str) -> ort.OrtValue:
        """The in-memory weight, made once: sessions read its buffer without copying it, so a value handed to
        one must never be replaced (a background build racing a foreground one would free it)."""
        key = (name, qtype)
        with self._lock:
            if key not in self._values:
                self._values[key] = ort.OrtValue.ortvalue_from_numpy(np.array(self._array(name, qtype), order="C"))
            return self._values[key]


_ARENA = threading.Lock()
_arena_registered = False


def _register_shared_arena() -> None:
    """Register onnxruntime's process-wide CPU arena once (sessions opt in with `session.use_env_allocators`)."""
    global _arena_registered
    with _ARENA:
        if not _arena_registered:
            memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(memory, None)
            _arena_registered = True


def _private_weights(model: CalibratedModel) -> dict[str, CalibrationNode]:
    """Weight initializers read by exactly the inputs of one calibration node (nothing else reads them, and
    they are no graph output): fake-quantizing such a tensor in place equals the exporter's Q/DQ."""
    _, uses = graph_maps(model.model.graph)
    outputs = {o.name for o in model.model.graph.output}
    by_tensor: dict[str, list[CalibrationNode]] = {}
    for cal in model.calibration.values():
        if cal.tensor_type != FEATURE:
            by_tensor.setdefault(cal.tensor, []).append(cal)
    return {
        tensor: cals[0]
        for tensor, cals in by_tensor.items()
        if len(cals) == 1
        and tensor in model.initializers
        and tensor not in outputs
        and sorted((node.name, i) for node, i in uses.get(tensor, [])) == sorted(cals[0].consumers)
    }


def _elements(init: onnx.TensorProto) -> int:
    return math.prod(init.dims)


def _mark_in_memory(init: onnx.TensorProto) -> None:
    nbytes = _elements(init) * 4
    for name in ("raw_data", "float_data"):
        init.ClearField(name)
    init.data_location = TensorProto.EXTERNAL
    del init.external_data[:]
    for key, value in (("location", "in-memory"), ("offset", "0"), ("length", str(nbytes))):
        init.external_data.add(key=key, value=value)
