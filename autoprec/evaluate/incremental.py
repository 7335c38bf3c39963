"""Incremental runs: an assignment that differs from a background assignment in a few calibration nodes runs
only the part of the graph downstream of what changed, fed with the background's activations at the cut.

The background runs once per sample with the cut tensors as extra graph outputs (5-19% more than a plain
run) and its activations are cached (`ActivationCache`: memory-bounded, spilled to disk). What changed is
found by comparing the two static QDQ protos node by node and initializer by initializer, so the part run
is exactly the graph the full run would execute there; its outputs equal the full run's to float rounding.
Parts whose nodes and weights are identical share one session. Work is counted in full-model-run
equivalents: the MACs a run executes divided by the model's MACs per sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from autoprec.data import Sample
from autoprec.evaluate.activations import DEFAULT_BUDGET_BYTES, ActivationCache
from autoprec.evaluate.simulator import Assignment, Built, Simulator

SESSION_CACHE = 8  # part sessions kept (parts shared by several units are met one after the other)


@dataclass(frozen=True)
class Part:
    """The nodes of an assignment's proto that compute something else than the background's."""

    nodes: tuple[onnx.NodeProto, ...]
    cut: tuple[str, ...]  # tensors fed from the background's activations (or the sample's inputs)
    outputs: tuple[str, ...]  # graph outputs the part computes (the others are the background's)
    fraction: float  # MACs of the part / MACs of the model


class Incremental:
    """Runs assignments against one background assignment (e.g. all-float for single-node sensitivity)."""

    def __init__(
        self, simulator: Simulator, samples: list[Sample], outputs: list[str], background: Assignment | None,
        macs: dict[str, float], budget: int = DEFAULT_BUDGET_BYTES,
    ):  # fmt: skip
        self.simulator = simulator
        self.samples = samples
        self.outputs = outputs
        self.background = background
        self.base = simulator.build(background)
        self._base_nodes = {n.SerializeToString() for n in self.base.proto.graph.node}
        self._base_inits = initializer_signatures(self.base)
        self._consumers: dict[str, list[int]] = {}
        for k, node in enumerate(self.base.proto.graph.node):
            for tensor in node.input:
                self._consumers.setdefault(tensor, []).append(k)
        self.macs = macs
        self.total_macs = sum(macs.values()) or 1.0
        self.cache = ActivationCache(budget)
        self.executed = 0.0  # full-model-run equivalents run so far
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._expected: dict[tuple[str, ...], set[str]] = {}
        self.changed: tuple[str, ...] = ()  # graph outputs the last run computed (the others are the background's)
        self.unchanged_scores: dict[tuple[int, str], dict[str, float]] = {}  # (sample, output) -> background's metrics

    def part(self, built: Built) -> Part:
        """What `built` computes differently from the background (graph order)."""
        graph = built.proto.graph
        inits = initializer_signatures(built)
        changed = {name for name, sig in inits.items() if self._base_inits.get(name) != sig}
        dirty: set[str] = set()
        nodes = []
        for node in graph.node:
            if any(t in changed or t in dirty for t in node.input) or node.SerializeToString() not in self._base_nodes:
                nodes.append(node)
                dirty.update(node.output)
        cut = dict.fromkeys(t for n in nodes for t in n.input if t and t not in dirty and t not in inits)
        fraction = sum(self.macs.get(n.name, 0.0) for n in nodes) / self.total_macs
        return Part(tuple(nodes), tuple(cut), tuple(o for o in self.outputs if o in dirty), fraction)

    def expected_cut(self, calibration: list[str]) -> set[str]:
        """The background tensors a change of these calibration nodes will be fed from (read off the background
        graph: the nodes that consume their tensors, scales or consumers' inputs, and everything downstream)."""
        key = tuple(calibration)
        if key in self._expected:
            return self._expected[key]
        graph = self.base.proto.graph
        model = self.simulator.model
        seeds: set[int] = set()
        for name in calibration:
            cal = model.calibration[name]
            for tensor in (cal.tensor, f"{name}/scale", f"{name}/dequantized"):
                seeds.update(self._consumers.get(tensor, []))
            consumers = {node for node, _ in cal.consumers}
            seeds.update(k for k, node in enumerate(graph.node) if node.name in consumers)
        inside, stack = set(seeds), list(seeds)
        while stack:
            for out in graph.node[stack.pop()].output:
                for k in self._consumers.get(out, []):
                    if k not in inside:
                        inside.add(k)
                        stack.append(k)
        produced = {t for k in inside for t in graph.node[k].output}
        inits = {i.name for i in graph.initializer}
        cut = {t for k in inside for t in graph.node[k].input if t and t not in produced and t not in inits}
        self._expected[key] = cut | {model.calibration[n].tensor for n in calibration} - inits
        return self._expected[key]

    def prefetch(self, tensors: set[str], indices: list[int]) -> None:
        """Cache the background's graph outputs and `tensors` for the samples `indices` (one background run per
        sample that misses any)."""
        wanted = [*self.outputs, *sorted(t for t in tensors if t not in self.outputs)]
        missing = [i for i in indices if any(t not in self.samples[i] and (i, t) not in self.cache for t in wanted)]
        if not missing:
            return
        wanted = [t for t in wanted if t not in self.samples[missing[0]]]
        proto = onnx.ModelProto()
        proto.CopyFrom(self.base.proto)
        known = {o.name for o in proto.graph.output}
        proto.graph.output.extend(onnx.ValueInfoProto(name=t) for t in wanted if t not in known)
        session = self.simulator.open(Built(proto, self.base.in_memory))
        for i in missing:
            for tensor, value in zip(wanted, session.run(wanted, self.samples[i])):
                if (i, tensor) not in self.cache:
                    self.cache.put(i, tensor, value)
            self.executed += 1.0

    def run(self, assignment: Assignment, indices: list[int]) -> list[list[np.ndarray]]:
        """The graph outputs of `assignment` on the samples `indices` (in `outputs` order)."""
        built = self.simulator.build(assignment)
        part = self.part(built)
        self.changed = part.outputs
        self.prefetch(set(part.cut), indices)
        results = []
        session = self._session(built, part) if part.outputs else None
        for i in indices:
            computed = {}
            if session is not None:
                feeds = {t: self._feed(i, t) for t in part.cut}
                computed = dict(zip(part.outputs, session.run(list(part.outputs), feeds)))
                self.executed += part.fraction
            results.append([computed[o] if o in computed else self.cache.get(i, o) for o in self.outputs])
        return results

    def _feed(self, index: int, tensor: str) -> np.ndarray:
        sample = self.samples[index]
        return sample[tensor] if tensor in sample else self.cache.get(index, tensor)

    def _session(self, built: Built, part: Part) -> ort.InferenceSession:
        """The part as its own model (shared by parts with the same nodes and weights)."""
        graph = built.proto.graph
        used = {t for n in part.nodes for t in n.input}
        inits = [i for i in graph.initializer if i.name in used]
        signature = hashlib.sha256()
        for node in part.nodes:
            signature.update(node.SerializeToString())
        for name, sig in sorted(initializer_signatures(built, inits).items()):
            signature.update(name.encode() + str(sig).encode())
        key = signature.hexdigest()
        if key not in self._sessions:
            declared = {v.name: v for v in graph.input}
            inputs = [
                declared[t] if t in declared else helper.make_tensor_value_info(
                    t, helper.np_dtype_to_tensor_dtype(self.cache.dtype(t)), None
                )
                for t in part.cut
            ]  # fmt: skip
            outputs = [v for v in graph.output if v.name in part.outputs]
            sub = helper.make_graph(list(part.nodes), f"{graph.name}-part", inputs, outputs, inits)
            model = helper.make_model(sub, opset_imports=built.proto.opset_import, ir_version=built.proto.ir_version)
            model.functions.extend(built.proto.functions)
            if len(self._sessions) >= SESSION_CACHE:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[key] = self.simulator.open(Built(model, built.in_memory))
        return self._sessions[key]


def initializer_signatures(built: Built, inits: list[onnx.TensorProto] | None = None) -> dict[str, object]:
    """Initializer -> what identifies its value (weights fed from memory: their qtype; the rest: a hash)."""
    return {
        i.name: built.in_memory[i.name] if i.name in built.in_memory else hashlib.sha1(i.SerializeToString()).digest()
        for i in (built.proto.graph.initializer if inits is None else inits)
    }
