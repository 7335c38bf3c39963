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
    if out.is_file():
        raise UserError(f"{out}: is a file, not a folder; give the folder a search wrote (its --out)")
    if not path.is_file():
        what = f"holds no search results (no {path.name})" if out.is_dir() else "no such folder"
        raise UserError(
            f"{out}: {what}; give the folder a search wrote (its --out), or run `autoprec search --out {out}`"
        )
    try:
        result = read_json(path)
        candidates = read_json(out / "candidates.json")
        _check_saved(result, candidates)
    except (OSError, ValueError) as exc:
        raise UserError(f"{out}: unreadable search results ({exc}); run the search again with --force") from exc
    return SavedSearch(out, result, candidates)


# what `write_outputs` writes and the commands reading a search rely on: field -> its JSON types; a field of
# OPTIONAL may be absent (older searches)
RESULT_FIELDS = {
    "meets_target": (bool,), "target": (list,), "winner": (dict, type(None)), "model": (str,), "data": (str,),
    "profile": (str,),
}  # fmt: skip
TARGET_FIELDS = {"output": (str,), "metric": (str,), "threshold": (int, float), "aggregate": (str,)}
CANDIDATE_FIELDS = {"index": (int,), "strategy": (str,), "passed": (bool,), "cost": (int, float), "outputs": (dict,)}
OPTIONAL = {"winner", "model", "data", "profile"}


def _check_saved(result: object, candidates: object) -> None:
    """A ValueError naming the file, and the field, of the first thing in them that a search never writes."""
    bad = _bad_field(result, RESULT_FIELDS)
    if bad is None:
        targets = result["target"]
        bad = next(filter(None, (_bad_field(t, TARGET_FIELDS) for t in targets)), None) if targets else "no targets"
    if bad is not None:
        raise ValueError(f"result.json: {bad}")
    if not isinstance(candidates, list) or not candidates:
        raise ValueError("candidates.json: no candidates")
    for i, candidate in enumerate(candidates):
        if (bad := _bad_field(candidate, CANDIDATE_FIELDS)) is not None:
            raise ValueError(f"candidates.json: candidate {i}: {bad}")


def _bad_field(value: object, fields: dict[str, tuple[type, ...]]) -> str | None:
    """What is wrong with `value` as a JSON object with these fields and types; None if nothing."""
    if not isinstance(value, dict):
        return "not a JSON object"
    for key, types in fields.items():
        if key not in value and key not in OPTIONAL or key in value and not isinstance(value[key], types):
            return f"no valid '{key}'"
    return None
