"""Search units: the groups of calibration nodes that one search decision raises together.

A unit is one normal node's raisable calibration inputs (HMCT's node_config granularity).
Tensors a compiler ties to their producer's type and scale (outputs of Reshape, Transpose,
Squeeze, Gather, MaxPool...) are one decision with it: calibration nodes whose tensors reach back
to the same source tensor through such ops land in one unit, so what is searched is what compiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoprec.hardware import HardwareProfile
from autoprec.ir import CalibratedModel

TIED_OPS = {
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Slice", "Split",
    "MaxPool", "Identity", "Expand", "Tile", "DepthToSpace", "SpaceToDepth",
}  # fmt: skip


@dataclass(frozen=True)
class Unit:
    """A search decision: raising it raises `calibration` (it covers the normal `nodes`)."""

    name: str
    nodes: tuple[str, ...]
    calibration: tuple[str, ...]


def source_tensor(model: CalibratedModel, tensor: str) -> str:
    """Follow tied ops (Reshape, Transpose...) upward to the tensor whose type they inherit."""
    while tensor in model.producers and model.producers[tensor].op_type in TIED_OPS:
        tensor = model.producers[tensor].input[0]
    return tensor


def search_units(model: CalibratedModel, profile: HardwareProfile) -> list[Unit]:
    """The units of a model under a hardware profile, in graph order."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    raisable = {n for n, c in model.calibration.items() if profile.can_raise(model, c)}
    by_source: dict[str, str] = {}
    for name in sorted(raisable):
        cal = model.calibration[name]
        for consumer, _ in cal.consumers:
            union("node:" + consumer, "cal:" + name)
        source = source_tensor(model, cal.tensor)
        if cal.tensor_type == "feature" and source != cal.tensor:
            union("cal:" + name, "src:" + source)
            by_source.setdefault(source, name)
    for name in sorted(raisable):
        cal = model.calibration[name]
        if cal.tensor_type == "feature" and cal.tensor in by_source:
            union("cal:" + name, "src:" + cal.tensor)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for node in model.model.graph.node:
        for cal in model.input_calibrations(node.name):
            if cal.name not in raisable:
                continue
            nodes, cals = groups.setdefault(find("cal:" + cal.name), ([], []))
            if node.name not in nodes:
                nodes.append(node.name)
            if cal.name not in cals:
                cals.append(cal.name)
    return [Unit(nodes[0], tuple(nodes), tuple(cals)) for nodes, cals in groups.values()]


def raise_units(base: dict[str, str], units: list[Unit], qtype: str = "int16") -> dict[str, str]:
    """`base` with every calibration node of `units` set to `qtype`."""
    raised = dict(base)
    for unit in units:
        for name in unit.calibration:
            raised[name] = qtype
    return raised
