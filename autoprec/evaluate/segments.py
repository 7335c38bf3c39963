"""Segmented sessions: a candidate's static QDQ graph run as consecutive segments, each its own onnxruntime
session cached by its content, so a candidate that differs from earlier ones in a few units creates sessions
only for the segments it changes (onnxruntime's session creation is most of a new candidate's cost).

The graph is cut only where every tensor live across the cut is the integer output of a QuantizeLinear whose
input is no DequantizeLinear output and whose consumers are DequantizeLinear nodes feeding no QuantizeLinear:
with `session.disable_quant_qdq=1` no graph transform spans such a cut. A DequantizeLinear of a cut tensor and
every constant-only node (e.g. a shared weight's Q/DQ, which onnxruntime folds to a constant) are copied into
each segment that reads them, so every segment sees what the whole graph sees there. The first candidate of
each graph structure is also run whole and compared bit for bit; any difference turns segmentation off for
that structure (`verified`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from autoprec.evaluate.incremental import initializer_signatures
from autoprec.evaluate.simulator import Built

log = logging.getLogger(__name__)

SEGMENTS = 8  # segments per graph (fewer where the graph has fewer clean cuts); AUTOPREC_SEGMENTS overrides it
SEGMENT_SESSIONS = 96  # segment sessions kept (least recently used dropped)


@dataclass(frozen=True)
class Segment:
    nodes: tuple[int, ...]  # indices into the graph's nodes, in graph order
    inputs: tuple[str, ...]  # graph inputs and cut tensors it reads
    outputs: tuple[str, ...]  # cut tensors later segments read, and graph outputs it computes


@dataclass
class Plan:
    """How one graph structure (its nodes; qtypes int8/int16 only change initializers) is cut."""

    segments: list[Segment]
    cut_types: dict[str, tuple[str, onnx.TypeProto]]  # cut tensor -> (its zero point, its shape as inferred)
    verified: bool | None = None  # None until the first run compared it with the whole graph
    key: str = ""  # the structure's signature (named in the guard's debug log)


def segment_count() -> int:
    """Segments per graph: AUTOPREC_SEGMENTS if set (0 or 1: candidates run as whole sessions), else SEGMENTS."""
    return int(os.environ.get("AUTOPREC_SEGMENTS") or SEGMENTS)


def plan(proto: onnx.ModelProto, count: int) -> Plan | None:
    """Segments of `proto`'s graph at up to `count - 1` clean cuts of about equal node counts (None: no cut)."""
    graph = proto.graph
    nodes = list(graph.node)
    subgraphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if count < 2 or any(a.type in subgraphs for n in nodes for a in n.attribute):
        return None
    inputs = {i.name for i in graph.input}
    inits = {i.name for i in graph.initializer} - inputs
    outputs = {o.name for o in graph.output}
    producer = {t: k for k, n in enumerate(nodes) for t in n.output if t}
    if not outputs <= producer.keys():
        return None
    consumers: dict[str, list[int]] = {}
    for k, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, []).append(k)
    constant: set[int] = set()
    for k, n in enumerate(nodes):
        if all(not t or t in inits or producer.get(t) in constant for t in n.input) and not outputs & set(n.output):
            constant.add(k)
    attached = {  # DequantizeLinear of a computed tensor: copied into each segment that reads it
        k for k, n in enumerate(nodes)
        if n.op_type == "DequantizeLinear" and k not in constant and not outputs & set(n.output)
        and all(nodes[c].op_type != "DequantizeLinear" for c in consumers.get(n.output[0], []))
    }  # fmt: skip
    main = _order(nodes, [k for k in range(len(nodes)) if k not in constant and k not in attached], producer, inputs)
    cuts = _cuts(nodes, main, attached, producer, consumers, count)
    if not cuts:
        return None
    bounds = [0, *cuts, len(main)]
    groups = []
    for a, b in zip(bounds, bounds[1:]):
        chosen, stack = set(main[a:b]), list(main[a:b])
        while stack:  # constant-only producers and attached DequantizeLinear nodes come along
            for t in nodes[stack.pop()].input:
                p = producer.get(t)
                if p is not None and (p in constant or p in attached) and p not in chosen:
                    chosen.add(p)
                    stack.append(p)
        made = {t for k in chosen for t in nodes[k].output}
        reads = dict.fromkeys(t for k in sorted(chosen) for t in nodes[k].input if t and t not in made | inits)
        groups.append((tuple(sorted(chosen)), tuple(reads), {t for k in main[a:b] for t in nodes[k].output}))
    segments = []
    for s, (chosen, reads, made) in enumerate(groups):
        later = {t for _, r, _ in groups[s + 1 :] for t in r}
        segments.append(Segment(chosen, reads, tuple(t for t in sorted(made) if t in later or t in outputs)))
    shapes = {v.name: v.type for v in onnx.shape_inference.infer_shapes(proto).graph.value_info}
    cut_types = {}
    for t in {t for s in segments for t in s.inputs if t not in inputs}:
        q = nodes[producer[t]]
        if len(q.input) < 3 or t not in shapes:
            return None
        cut_types[t] = (q.input[2], shapes[t])
    return Plan(segments, cut_types)


def _cuts(nodes: list, main: list[int], attached: set[int], producer: dict, consumers: dict, count: int) -> list[int]:
    """Up to `count - 1` clean cut positions in `main` (a cut before position c), nearest to equal node counts."""
    position = {k: i for i, k in enumerate(main)}

    def readers(tensor: str) -> list[int]:
        """Main positions that read `tensor`, directly or through an attached DequantizeLinear."""
        found = []
        for c in consumers.get(tensor, []):
            if c in attached:
                found += [position[r] for r in consumers.get(nodes[c].output[0], []) if r in position]
            elif c in position:
                found.append(position[c])
        return found

    blocked = np.zeros(len(main) + 1, dtype=np.int64)
    for k in main:
        for t in nodes[k].output:
            last = max(readers(t), default=-1)
            if last > position[k] and not _clean(t, nodes[k], nodes, producer, consumers):
                blocked[position[k] + 1] += 1
                blocked[last + 1] -= 1
    clean = [c for c, b in enumerate(np.cumsum(blocked)) if 0 < c < len(main) and b == 0]
    cuts: list[int] = []
    for j in range(1, count):
        later = [c for c in clean if not cuts or c > cuts[-1]]
        if later:
            cuts.append(min(later, key=lambda c: abs(c - j * len(main) / count)))
    return cuts


def _order(nodes: list, main: list[int], producer: dict, inputs: set[str]) -> list[int]:
    """`main` in graph order, but each QuantizeLinear of a computed tensor right after that tensor's producer
    (the exporter puts it just before its consumer), so a cut can fall on its integer output."""
    kept = set(main)
    source = {t: p for t, p in producer.items() if p in kept}
    early: dict[int, list[int]] = {}  # producer (-1: a graph input) -> its QuantizeLinear nodes
    for k in main:
        node = nodes[k]
        if node.op_type == "QuantizeLinear" and (node.input[0] in inputs or node.input[0] in source):
            early.setdefault(source.get(node.input[0], -1), []).append(k)
    hoisted = {k for ks in early.values() for k in ks}
    order = list(early.get(-1, []))
    for k in main:
        if k not in hoisted:
            order += [k, *early.get(k, [])]
    return order


def _clean(tensor: str, node: onnx.NodeProto, nodes: list, producer: dict, consumers: dict) -> bool:
    """True if `tensor` may be live across a cut: a QuantizeLinear output (not of a DequantizeLinear output) read
    only by DequantizeLinear nodes that feed no QuantizeLinear (no Q/DQ pattern a transform could match spans it)."""
    if node.op_type != "QuantizeLinear" or tensor != node.output[0]:
        return False
    source = producer.get(node.input[0])
    if source is not None and nodes[source].op_type == "DequantizeLinear":
        return False
    readers = consumers.get(tensor, [])
    return all(
        nodes[c].op_type == "DequantizeLinear"
        and all(nodes[r].op_type != "QuantizeLinear" for r in consumers.get(nodes[c].output[0], []))
        for c in readers
    )


class SegmentedSession:
    """Runs a candidate's segments in order, passing the cut tensors as numpy arrays (`InferenceSession.run`'s
    signature). Until its plan is verified, its first run is compared with the whole graph's, bit for bit."""

    def __init__(self, plan: Plan, parts: list[tuple[Segment, ort.InferenceSession]], whole: Callable):
        self.plan = plan
        self.parts = parts
        self._whole = whole  # () -> the whole graph's session (the guard, and the fallback)
        self._session: ort.InferenceSession | None = None

    def whole(self) -> ort.InferenceSession:
        """The whole graph's session (created on first use: the guard's comparison, or a refused structure)."""
        if self._session is None:
            self._session = self._whole()
        return self._session

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray], run_options=None) -> list[np.ndarray]:
        if self.plan.verified is False:
            return self.whole().run(output_names, feeds, run_options)
        values = dict(feeds)
        for segment, session in self.parts:
            wanted = list(segment.outputs)
            values.update(zip(wanted, session.run(wanted, {t: values[t] for t in segment.inputs}, run_options)))
        result = [values[o] for o in output_names]
        if self.plan.verified is None:
            whole = self.whole().run(output_names, feeds, run_options)
            self.plan.verified = all(_same(a, b) for a, b in zip(result, whole))
            if not self.plan.verified:
                log.debug("segmented outputs differ from the whole graph's: structure %s runs whole", self.plan.key)
                return whole
            self._session = None
        return result


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Segmenter:
    """Segment sessions of one simulator's candidates, cached by content (LRU, `kept` sessions)."""

    def __init__(self, opener: Callable[[Built], ort.InferenceSession], count: int = SEGMENTS,
                 kept: int = SEGMENT_SESSIONS):  # fmt: skip
        self.open = opener
        self.count = count
        self.kept = kept
        self._plans: dict[str, Plan | None] = {}
        self._sessions: OrderedDict[str, ort.InferenceSession] = OrderedDict()
        self._lock = threading.Lock()
        self.created = 0  # segment sessions created
        self.reused = 0  # segment sessions taken from the cache

    def session(self, built: Built) -> SegmentedSession | ort.InferenceSession:
        """A session of `built`: segmented where its structure can be cut (and was not refused by the guard)."""
        graph = built.proto.graph
        node_bytes = [n.SerializeToString() for n in graph.node]
        structure = hashlib.sha1(b"".join(node_bytes) + str([o.name for o in graph.output]).encode()).hexdigest()
        with self._lock:
            if structure not in self._plans:
                self._plans[structure] = plan(built.proto, self.count)
                if self._plans[structure] is None:
                    log.debug("structure %s has no clean cut: it runs whole", structure)
                else:
                    self._plans[structure].key = structure
            found = self._plans[structure]
            if found is None or found.verified is False:
                return self.open(built)
            inits = {i.name: i for i in graph.initializer}
            parts = [(s, self._segment(built, s, found, node_bytes, inits)) for s in found.segments]
        return SegmentedSession(found, parts, lambda: self.open(built))

    def _segment(self, built: Built, segment: Segment, found: Plan, node_bytes: list[bytes], inits: dict):
        graph = built.proto.graph
        declared = {v.name: v for v in graph.input}
        types = {
            t: declared[t] if t in declared else _value_info(t, inits[found.cut_types[t][0]].data_type,
                                                             found.cut_types[t][1])
            for t in segment.inputs
        }  # fmt: skip
        used = [inits[t] for k in segment.nodes for t in graph.node[k].input if t in inits]
        used = list({i.name: i for i in used}.values())
        digest = hashlib.sha1()
        for k in segment.nodes:
            digest.update(node_bytes[k])
        for name, sig in sorted(initializer_signatures(built, used).items()):
            digest.update(name.encode() + str(sig).encode())
        for t in segment.inputs:
            digest.update(types[t].SerializeToString())
        digest.update(str(segment.outputs).encode())
        key = digest.hexdigest()
        if key in self._sessions:
            self._sessions.move_to_end(key)
            self.reused += 1
            return self._sessions[key]
        outputs = {v.name: v for v in graph.output}
        sub = helper.make_graph(
            [graph.node[k] for k in segment.nodes], f"{graph.name}-segment", [types[t] for t in segment.inputs],
            [outputs.get(t) or onnx.ValueInfoProto(name=t) for t in segment.outputs], used,
        )  # fmt: skip
        model = helper.make_model(sub, opset_imports=built.proto.opset_import, ir_version=built.proto.ir_version)
        model.functions.extend(built.proto.functions)
        self._sessions[key] = self.open(Built(model, built.in_memory))
        self.created += 1
        if len(self._sessions) > self.kept:
            self._sessions.popitem(last=False)
        return self._sessions[key]


def _value_info(name: str, elem_type: int, shaped: onnx.TypeProto) -> onnx.ValueInfoProto:
    info = onnx.ValueInfoProto(name=name)
    info.type.CopyFrom(shaped)
    info.type.tensor_type.elem_type = elem_type
    return info
