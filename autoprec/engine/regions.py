"""Subgraph discovery: regions of a model worth raising whole (HMCT's subgraph_config).

Heads of outputs (the nodes that feed only some outputs: first one output's strict head, then the
next wider scope of outputs sharing a trunk) and fork/join blocks (a branch that re-joins within a
few nodes). A region carries its HMCT spec (input and output nodes), its nodes and search units.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoprec.engine.units import Unit
from autoprec.ir import WEIGHT, CalibratedModel
from autoprec.quant_config import subgraph_nodes

MAX_BLOCK_NODES = 30  # nodes of a fork/join block, branch starts to join
MAX_HEAD_SHARE = 0.5  # a head holds at most this share of the model's units


@dataclass(frozen=True)
class Region:
    """A candidate subgraph: its HMCT spec (input and output nodes), nodes, search units, the model
    outputs it feeds, and where it comes from (user, head or block)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: frozenset[str]
    units: frozenset[str]
    feeds: frozenset[str]
    kind: str

    def spec(self) -> dict:
        return {"inputs": list(self.inputs), "outputs": list(self.outputs), "qtype": "int16"}


# --- graph analysis ---------------------------------------------------------------------------
def output_reach(model: CalibratedModel) -> dict[str, frozenset[str]]:
    """node -> the model outputs it feeds (ONNX graphs are topologically sorted)."""
    outputs = {o.name for o in model.model.graph.output}
    reach: dict[str, frozenset[str]] = {}
    for node in reversed(model.model.graph.node):
        found = {t for t in node.output if t in outputs}
        for tensor in node.output:
            for consumer in model.consumers.get(tensor, []):
                found |= reach.get(consumer.name, frozenset())
        reach[node.name] = frozenset(found)
    return reach


def head_scopes(model: CalibratedModel, output: str, reach: dict[str, frozenset[str]]) -> list[frozenset[str]]:
    """The output sets a head of `output` can feed, narrowest first: {output}, then the outputs fed by
    each shared node met walking back from it (never all outputs: that is the whole model)."""
    producer = model.producers.get(output)
    if producer is None:
        return []
    everything = {o.name for o in model.model.graph.output}
    scopes = {reach[n] for n in _walk(model, [producer.name], lambda n: True)} | {frozenset([output])}
    return sorted((s for s in scopes if output in s and s != everything), key=lambda s: (len(s), sorted(s)))


def head_nodes(model: CalibratedModel, scope: frozenset[str], reach: dict[str, frozenset[str]]) -> set[str]:
    """Nodes feeding only outputs in `scope`: walked back from their producers, from the last node
    shared with another output (excluded) to the outputs."""
    producers = [p.name for o in scope if (p := model.producers.get(o)) is not None and reach[p.name] <= scope]
    return _walk(model, producers, lambda n: reach[n] <= scope) if producers else set()


def fork_join_blocks(model: CalibratedModel, max_nodes: int = MAX_BLOCK_NODES) -> list[tuple[list[str], str]]:
    """(branch starts, join) of every tensor read by >= 2 nodes whose branches all meet again at one
    node, the block (every node on a path from the starts to the join) holding at most `max_nodes`."""
    nodes = list(model.model.graph.node)
    order = {n.name: i for i, n in enumerate(nodes)}
    blocks = []
    for consumers in model.consumers.values():
        starts = list(dict.fromkeys(c.name for c in consumers))
        if len(starts) < 2:
            continue
        branches: dict[str, frozenset[int]] = {}  # node -> which branches reach it
        join = None
        first = min(order[s] for s in starts)
        for node in nodes[first : first + 4 * max_nodes]:
            mine = {i for i, s in enumerate(starts) if s == node.name}
            for tensor in node.input:
                producer = model.producers.get(tensor)
                if producer is not None and producer.name in branches:
                    mine |= branches[producer.name]
            if mine:
                branches[node.name] = frozenset(mine)
                if len(mine) == len(starts):
                    join = node.name
                    break
        if join is not None and len(_walk(model, [join], lambda n, b=branches: n in b)) <= max_nodes:
            blocks.append((starts, join))
    return blocks


def _walk(model: CalibratedModel, starts: list[str], keep) -> set[str]:
    """`starts` and the nodes reached backward from them through producers for which `keep(name)` holds."""
    seen, stack = set(starts), list(starts)
    while stack:
        for tensor in model.nodes[stack.pop()].input:
            producer = model.producers.get(tensor)
            if producer is not None and producer.name not in seen and keep(producer.name):
                seen.add(producer.name)
                stack.append(producer.name)
    return seen


def _entries(model: CalibratedModel, nodes: set[str]) -> list[str]:
    """Nodes of `nodes` with no input produced inside `nodes`, in graph order."""
    return [
        n.name
        for n in model.model.graph.node
        if n.name in nodes and not any(p.name in nodes for t in n.input if (p := model.producers.get(t)) is not None)
    ]


def discover(
    model: CalibratedModel,
    units: list[Unit],
    failing: list[str],
    user_subgraphs: dict[str, dict] | None = None,
    max_block_nodes: int = MAX_BLOCK_NODES,
) -> list[Region]:
    """User subgraphs, then the heads of the failing outputs, then fork/join blocks (with at least one
    weighted op) feeding a failing output. Regions raising the same units are listed once."""
    reach = output_reach(model)
    units_of: dict[str, list[str]] = {}
    for unit in units:
        for node in unit.nodes:
            units_of.setdefault(node, []).append(unit.name)
    found: dict[frozenset[str], Region] = {}

    def add(name: str, inputs: list[str], outputs: list[str], kind: str) -> None:
        nodes = frozenset(subgraph_nodes(model, inputs, outputs))
        units = frozenset(u for n in nodes for u in units_of.get(n, ()))
        if units and units not in found:
            feeds = frozenset().union(*(reach[n] for n in nodes))
            found[units] = Region(name, tuple(inputs), tuple(outputs), nodes, units, feeds, kind)

    for name, spec in (user_subgraphs or {}).items():
        add(name, list(spec["inputs"]), list(spec["outputs"]), "user")
    limit = MAX_HEAD_SHARE * len(units)
    for output in failing:
        for scope in head_scopes(model, output, reach):
            nodes = head_nodes(model, scope, reach)
            if not nodes:
                continue
            if sum(len(units_of.get(n, ())) for n in nodes) > limit:
                break
            ends = [p.name for o in model.model.graph.output if o.name in scope and (p := model.producers.get(o.name))]
            suffix = f"+{len(scope) - 1}" if len(scope) > 1 else ""
            add(f"head_{output}{suffix}", _entries(model, nodes), [p for p in ends if p in nodes], "head")
    weighted = {n for c in model.calibration.values() if c.tensor_type == WEIGHT for n, _ in c.consumers}
    for starts, join in fork_join_blocks(model, max_block_nodes):
        if reach[join] & set(failing) and weighted & set(subgraph_nodes(model, starts, [join])):
            add(f"block_{join}", starts, [join], "block")
    return list(found.values())
