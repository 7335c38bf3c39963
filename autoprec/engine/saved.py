"""A finished search read back from its output folder (result.json, candidates.json, quant_config.json),
for the commands that work after it: `export`, `report`, `debug`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoprec.engine.target import OutputTarget, Target
from autoprec.errors import UserError
from autoprec.model_io import read_json


@dataclass
class SavedSearch:
    """What a search wrote into `out`."""

    out: Path
    result: dict
    candidates: list[dict]

    @property
    def target(self) -> Target:
        return Target(tuple(OutputTarget(**t) for t in self.result["target"]))

    @property
    def config_path(self) -> Path:
        return self.out / "quant_config.json"

    def model_path(self) -> str:
        """The calibrated model the search ran on (result.json of an older search does not say)."""
        if "model" not in self.result:
            raise UserError(f"{self.out}/result.json does not name its model; pass the model_output folder")
        return self.result["model"]


def load_saved(out: str | Path) -> SavedSearch:
    """The search in folder `out`; a UserError naming the fix when there is none."""
    out = Path(out)
    path = out / "result.json"
    if not path.is_file():
        what = f"holds no search results (no {path.name})" if out.is_dir() else "no such folder"
        raise UserError(
            f"{out}: {what}; give the folder a search wrote (its --out), or run `autoprec search --out {out}`"
        )
    try:
        result = read_json(path)
        candidates = read_json(out / "candidates.json")
    except (OSError, ValueError) as exc:
        raise UserError(f"{out}: unreadable search results ({exc}); run the search again with --force") from exc
    return SavedSearch(out, result, candidates)
