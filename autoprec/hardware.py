"""Hardware profiles: which calibration nodes a chip can raise to int16 and which stay int8.

A profile is declarative: a name and the (op type, input index) pairs the chip keeps in int8
even under `all_node_type: int16`. Add one with a small JSON file:
`{"name": "mychip", "forced_int8": {"Conv": [1], "Resize": [0]}}` and `--profile mychip.json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from autoprec.errors import UserError
from autoprec.ir import EC_INPUTS, CalibratedModel, CalibrationNode

__all__ = ["EC_INPUTS", "PROFILES", "HardwareProfile", "get_profile"]  # EC_INPUTS: ops ec can split (ir.py)


@dataclass(frozen=True)
class HardwareProfile:
    """What a target chip allows: int16 everywhere except the `forced_int8` op inputs."""

    name: str
    forced_int8: frozenset[tuple[str, int]] = frozenset()
    description: str = ""

    @property
    def identity(self) -> str:
        """What the profile does, not what it is called: a hash of its forced-int8 set (ledgers and caches)."""
        return hashlib.sha256(json.dumps(sorted(self.forced_int8)).encode()).hexdigest()[:20]

    def is_forced_int8(self, model: CalibratedModel, cal: CalibrationNode) -> bool:
        """True if the chip keeps this calibration node int8 whatever the config says."""
        return any((model.nodes[node].op_type, index) in self.forced_int8 for node, index in cal.consumers)

    def can_raise(self, model: CalibratedModel, cal: CalibrationNode) -> bool:
        """True if the node may be int16 on this chip (a pre-quantized weight never can)."""
        return not cal.folded and not self.is_forced_int8(model, cal)

    def can_compensate(self, model: CalibratedModel, cal: CalibrationNode) -> bool:
        """True if error compensation (ec) applies: a forced-int8 input of an op that ec supports."""
        return self.is_forced_int8(model, cal) and model.ec_capable(cal)

    def compensable(self, model: CalibratedModel) -> list[str]:
        """Calibration nodes that take error compensation on this chip, in model order."""
        return [name for name, cal in model.calibration.items() if self.can_compensate(model, cal)]


PROFILES = {
    "generic": HardwareProfile("generic", description="every calibration node may be int16"),
    "hmct": HardwareProfile(
        "hmct",
        frozenset({("Conv", 1), ("ConvTranspose", 1), ("Resize", 0), ("GridSample", 0), ("MatMul", 1)}),
        "the seed's chip: Conv/ConvTranspose weights, Resize/GridSample inputs, MatMul input 1 stay int8",
    ),
}


def get_profile(name: str) -> HardwareProfile:
    """A built-in profile by name, or a JSON profile file."""
    if name in PROFILES:
        return PROFILES[name]
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
            forced = frozenset((op, int(i)) for op, indices in data["forced_int8"].items() for i in indices)
            return HardwareProfile(str(data["name"]), forced, str(data.get("description", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f'{path}: not a valid profile ({exc}); expected {{"name": ..., "forced_int8": {{"Conv": [1]}}}}'
            ) from exc
    raise UserError(f"unknown hardware profile '{name}'; use one of {', '.join(PROFILES)} or a .json profile file")
