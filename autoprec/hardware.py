"""Hardware profiles: which qtypes each calibration node may take on a chip, what each costs there, and how
its compiler can calibrate (asymmetric activations, per-channel weights, calibration methods).

A profile is declarative: a name, the (op type, input index) pairs the chip keeps in int8 (no int16:
they take int8, ec where it applies, or a float fallback), the qtypes the chip offers at all, per-op
overrides, the chip's cost model (`CostModel`, see README "Cost model") and its calibration capabilities.
Add one with a JSON file:

    {"name": "mychip", "forced_int8": {"Conv": [1], "Resize": [0]},
     "qtypes": ["int8", "int16", "float32"],              # optional: no float16 on this chip
     "op_qtypes": {"Sqrt": {"0": ["int8", "float32"]}},   # optional: per op type and input index
     "costs": {"mac": {"int16": 2.5}, "element": {"float32": 10}},   # optional: override the default rates
     "asymmetric": false, "unsigned": true,                # optional: asymmetric true, unsigned false
     "per_channel": true, "calibration_methods": ["max", "kl"]}  # optional: all allowed

and `--profile mychip.json`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from autoprec.errors import UserError
from autoprec.ir import EC, EC_INPUTS, LEVEL, QTYPES, CalibratedModel, CalibrationNode, base_qtype
from autoprec.model_io import read_user_json

# EC_INPUTS: the ops ec can split (ir.records)
__all__ = ["CALIBRATION_METHODS", "EC_INPUTS", "PROFILES", "CostModel", "HardwareProfile", "get_profile", "lower_qtype"]
CALIBRATION_METHODS = ("max", "percentile", "kl", "mse")

# Relative time per MAC of a MAC op (Conv, ConvTranspose, MatMul, Gemm), per operand: the op's rate is the
# product over its two operands, so int8 x int8 = 1, int16 x int8 = 2, int16 x int16 = 4 (AIMET's bit-ops,
# MACs x bits x bits / 64), float16 x float16 = 9 and float32 x float32 = 36 (no float MAC array: a fallback).
MAC_RATES = MappingProxyType({"int8": 1.0, "int16": 2.0, "float16": 3.0, "float32": 6.0})
# Relative time per element an op moves, per calibrated input: bytes (1, 2, 2, 4) and x1.5 for floats, which
# leave the integer pipeline (a conversion at each boundary with integer neighbours).
ELEMENT_RATES = MappingProxyType({"int8": 1.0, "int16": 2.0, "float16": 3.0, "float32": 6.0})


@dataclass(frozen=True)
class CostModel:
    """A small model of the chip: relative time per MAC operand (`mac`) and per moved element (`element`),
    per qtype. "ec" costs an int8 copy of the op (two int8 terms). Only ratios matter: the search normalizes
    costs so that all-int16 = 1.0 and all-int8 = 0."""

    mac: Mapping[str, float] = field(default_factory=lambda: MAC_RATES, hash=False)
    element: Mapping[str, float] = field(default_factory=lambda: ELEMENT_RATES, hash=False)

    def check(self) -> None:
        for table in (self.mac, self.element):
            rates = [table[q] for q in QTYPES]
            if sorted(rates) != rates or not all(0 < r < math.inf for r in rates):  # NaN fails too
                raise UserError(
                    f"field 'costs': rates must be positive, finite and not decrease along {' < '.join(QTYPES)}, "
                    f"got {_shown(dict(table))}"
                )


@dataclass(frozen=True)
class HardwareProfile:
    """What a target chip allows: the `qtypes` it offers (int8 always), int16 everywhere except the
    `forced_int8` op inputs, `op_qtypes` overrides per (op type, input index), and its `costs`; asymmetric
    activations, per-channel weights and the calibration methods its compiler implements. `unsigned`: its
    symmetric scheme quantizes a never-negative tensor over [0, T] as uint8/uint16 with zero point 0
    (autoprec.calibration.unsigned); without it symmetric means signed only."""

    name: str
    forced_int8: frozenset[tuple[str, int]] = frozenset()
    description: str = ""
    qtypes: tuple[str, ...] = QTYPES
    op_qtypes: Mapping[tuple[str, int], tuple[str, ...]] = field(default_factory=dict, hash=False)
    costs: CostModel = field(default_factory=CostModel)
    asymmetric: bool = True
    per_channel: bool = True
    calibration_methods: frozenset[str] = frozenset(CALIBRATION_METHODS)
    unsigned: bool = False

    @property
    def identity(self) -> str:
        """What the profile does, not what it is called: a hash of its forced-int8 set and of whatever it sets
        apart from the defaults (qtypes, op_qtypes, costs), for ledgers and caches."""
        content: list = sorted(self.forced_int8)
        extra = {
            "qtypes": list(self.qtypes) if self.qtypes != QTYPES else None,
            "op_qtypes": sorted([*k, *v] for k, v in self.op_qtypes.items()) or None,
            "mac": dict(self.costs.mac) if dict(self.costs.mac) != dict(MAC_RATES) else None,
            "element": dict(self.costs.element) if dict(self.costs.element) != dict(ELEMENT_RATES) else None,
        }
        extra = {k: v for k, v in extra.items() if v is not None}
        if extra:
            content = [content, extra]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:20]

    def is_forced_int8(self, model: CalibratedModel, cal: CalibrationNode) -> bool:
        """True if the chip keeps this calibration node int8 whatever the config says."""
        return any((model.nodes[node].op_type, index) in self.forced_int8 for node, index in cal.consumers)

    def allowed(self, model: CalibratedModel, cal: CalibrationNode) -> tuple[str, ...]:
        """The qtypes this calibration node may take, cheapest first (int8 always; a pre-quantized weight
        takes nothing else). "ec" only on forced-int8 inputs of ops error compensation splits."""
        if cal.folded:
            return ("int8",)
        allowed = set(self.qtypes)
        for node, index in cal.consumers:
            key = (model.nodes[node].op_type, index)
            if key in self.op_qtypes:
                allowed &= set(self.op_qtypes[key])
        if self.is_forced_int8(model, cal):
            allowed.discard("int16")
            if model.ec_capable(cal):
                allowed.add(EC)
        return tuple(sorted(allowed | {"int8"}, key=lambda q: (LEVEL[q], q)))

    def can_raise(self, model: CalibratedModel, cal: CalibrationNode) -> bool:
        """True if the node may be int16 on this chip (a pre-quantized weight never can)."""
        return "int16" in self.allowed(model, cal)

    def can_compensate(self, model: CalibratedModel, cal: CalibrationNode) -> bool:
        """True if error compensation (ec) applies: a forced-int8 input of an op that ec supports."""
        return EC in self.allowed(model, cal)

    def float_qtype(self, model: CalibratedModel, cal: CalibrationNode) -> str | None:
        """The cheapest float qtype the node may take (float16 before float32), None if none."""
        return next((q for q in ("float16", "float32") if q in self.allowed(model, cal)), None)

    def compensable(self, model: CalibratedModel) -> list[str]:
        """Calibration nodes that take error compensation on this chip, in model order."""
        return [name for name, cal in model.calibration.items() if self.can_compensate(model, cal)]


PROFILES = {
    "generic": HardwareProfile("generic", description="every calibration node may be int16, float16 or float32"),
    "symmetric": HardwareProfile(
        "symmetric",
        description="generic, on a chip without asymmetric quantization: zero point 0 only; int8 [-127, 127], or "
        "uint8 [0, 255] for a tensor never negative (int16/uint16 likewise), as AIMET's and OpenVINO's symmetric",
        asymmetric=False,
        unsigned=True,
    ),
    "symmetric-signed": HardwareProfile(
        "symmetric-signed",
        description="generic, on a chip with signed symmetric quantization only (TensorRT-style): int8 [-127, 127], "
        "int16 [-32767, 32767] around 0, also for tensors never negative",
        asymmetric=False,
    ),
    "hmct": HardwareProfile(
        "hmct",
        frozenset({("Conv", 1), ("ConvTranspose", 1), ("Resize", 0), ("GridSample", 0), ("MatMul", 1)}),
        "the seed's chip: Conv/ConvTranspose weights, Resize/GridSample inputs, MatMul input 1 stay int8 "
        "(or ec, or a float fallback); max/percentile/kl/mse calibration, per-channel weights, asymmetric activations",
    ),
}


def lower_qtype(allowed: tuple[str, ...], qtype: str) -> str | None:
    """The highest of `allowed` one lattice level or more below `qtype` (ec -> int8), None at int8."""
    below = [q for q in allowed if LEVEL[q] < LEVEL[base_qtype(qtype)]]  # "int8@kl" is at int8's level
    return max(below, key=LEVEL.__getitem__) if below else None


def get_profile(name: str) -> HardwareProfile:
    """A built-in profile by name, or a JSON profile file."""
    if name in PROFILES:
        return PROFILES[name]
    path = Path(name)
    if path.suffix != ".json":
        raise UserError(f"unknown hardware profile '{name}'; use one of {', '.join(PROFILES)} or a .json profile file")
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise UserError(f"{path}: {what}; pass a hardware profile .json file, or one of {', '.join(PROFILES)}")
    data = read_user_json(path, "hardware profile .json file")
    try:
        return profile_from_json(data)
    except (ValueError, UserError) as exc:
        raise UserError(f"{path}: {exc}") from exc


def profile_from_json(data: object) -> HardwareProfile:
    """A profile from its JSON form (see the module docstring); a ValueError names the first field that is wrong,
    and the type it must have."""
    if not isinstance(data, dict):
        raise ValueError(f'must be a JSON object such as {{"name": "mychip", "forced_int8": {{}}}}, got {_shown(data)}')
    unknown = sorted(set(data) - set(PROFILE_FIELDS))
    if unknown:
        raise ValueError(f"unknown field '{unknown[0]}'; the fields are {', '.join(PROFILE_FIELDS)}")
    for key in ("name", "forced_int8"):
        if key not in data:
            raise ValueError(f"missing field '{key}' ({PROFILE_FIELDS[key][0]})")
    for key, (expected, valid) in PROFILE_FIELDS.items():
        if key in data and not valid(data[key]):
            raise ValueError(f"field '{key}' must be {expected}, got {_shown(data[key])}")
    costs = data.get("costs", {})
    model = CostModel(
        MappingProxyType({**MAC_RATES, **{q: float(v) for q, v in costs.get("mac", {}).items()}}),
        MappingProxyType({**ELEMENT_RATES, **{q: float(v) for q, v in costs.get("element", {}).items()}}),
    )
    model.check()
    return HardwareProfile(
        data["name"],
        frozenset((op, i) for op, indices in data["forced_int8"].items() for i in indices),
        data.get("description", ""),
        tuple(data.get("qtypes", QTYPES)),
        {(op, int(i)): tuple(q) for op, inputs in data.get("op_qtypes", {}).items() for i, q in inputs.items()},
        model,
        data.get("asymmetric", True),
        data.get("per_channel", True),
        frozenset(data.get("calibration_methods", CALIBRATION_METHODS)),
        data.get("unsigned", False),
    )


def _is_qtypes(value: object) -> bool:
    return isinstance(value, list) and all(q in QTYPES for q in value)


def _is_forced(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(indices, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices)
        for indices in value.values()
    )


def _is_op_qtypes(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(inputs, dict) and all(i.isdigit() and _is_qtypes(q) for i, q in inputs.items())
        for inputs in value.values()
    )


def _is_costs(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= {"mac", "element"}
        and all(
            isinstance(rates, dict)
            and all(q in QTYPES and isinstance(r, int | float) and not isinstance(r, bool) for q, r in rates.items())
            for rates in value.values()
        )
    )


def _shown(value: object) -> str:
    """A value as the JSON file writes it, cut to one short line."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


QTYPE_LIST = f"a list of {', '.join(QTYPES)}"
# field -> (what it must be, its check): `profile_from_json` names the first field that fails
PROFILE_FIELDS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "name": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "description": ("a string", lambda v: isinstance(v, str)),
    "forced_int8": ('an object of op type -> list of input indices, e.g. {"Conv": [1]}', _is_forced),
    "qtypes": (f"{QTYPE_LIST} that includes int8", lambda v: _is_qtypes(v) and "int8" in v),
    "op_qtypes": (
        f'an object of op type -> {{input index: {QTYPE_LIST}}}, e.g. {{"Sqrt": {{"0": ["int8", "float32"]}}}}',
        _is_op_qtypes,
    ),
    "costs": ('an object {"mac": {qtype: number}, "element": {qtype: number}}', _is_costs),
    "asymmetric": ("true or false", lambda v: isinstance(v, bool)),
    "per_channel": ("true or false", lambda v: isinstance(v, bool)),
    "unsigned": ("true or false", lambda v: isinstance(v, bool)),
    "calibration_methods": (
        f"a non-empty list of {', '.join(CALIBRATION_METHODS)}",
        lambda v: isinstance(v, list) and bool(v) and all(m in CALIBRATION_METHODS for m in v),
    ),
}
