"""The held-out check: winners must also meet the target on samples the search never saw.

`--holdout` splits the given samples deterministically or takes a separate folder. The split is stratified
by how hard each sample is for all-int8 (how far below the best sample it scores on its worst output), so the
held-out part is as hard as the search part: a random split of 16 VAD clips held out 2 of the 4 near-silent
ones and failed every candidate, all-int16 included. The split is cached in the output folder (a resumed
search reuses it) and is part of the ledger identity.

The search scores candidates on its own part only; `SearchState` asks `HoldoutCheck` for the held-out
scores of every candidate that would become the winner. Held-out scores are stored in the ledger next to
the candidate records (not counted in the budget), so a resumed search re-evaluates nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoprec.engine.coverage import RangeExcess, out_of_range
from autoprec.engine.ledger import Ledger
from autoprec.engine.margin import per_sample
from autoprec.engine.target import Target
from autoprec.errors import UserError
from autoprec.evaluate import Evaluator, Scores
from autoprec.evaluate.metrics import get_metric
from autoprec.model_io import read_cache, save_json

MIN_SAMPLES = 8  # the default holds out a share only from this many samples on
DEFAULT_FRACTION = 0.25
CACHE = "holdout-split.json"


def held_count(fraction: float, num_samples: int) -> int:
    """How many of `num_samples` a `fraction` holds out: fraction * n rounded half up, at least one, and one
    left to search (0 for a fraction of 0)."""
    if fraction == 0:
        return 0
    return min(num_samples - 1, max(1, math.floor(fraction * num_samples + 0.5)))


def split_indices(hardness: np.ndarray, fraction: float) -> tuple[list[int], list[int]]:
    """(search, held-out) sample indices: `held_count` held out, one from the middle of each equal stratum of
    the samples ordered hardest first (ties: sample order)."""
    num_samples = len(hardness)
    if num_samples < 2:
        raise UserError(f"--holdout {fraction:g} needs at least 2 samples, got {num_samples}; pass --holdout 0")
    count = held_count(fraction, num_samples)
    order = np.argsort(-np.asarray(hardness, dtype=np.float64), kind="stable")
    held = sorted(int(order[int((i + 0.5) * num_samples / count)]) for i in range(count))
    return [i for i in range(num_samples) if i not in set(held)], held


def hardness(scores: Scores, target: Target, num_samples: int) -> np.ndarray:
    """Per sample, how much worse it is than the others on its worst output: per output, the distance of its
    target-metric value (a task score's per-sample values) from the best sample's over the mean distance; the
    largest over the outputs that have one value per sample (all 0 when none has). A non-finite value counts as
    the worst finite one (a NaN output is as hard as the hardest sample)."""
    result = np.zeros(num_samples)
    for t in target.outputs:
        values = np.asarray(per_sample(t, scores), dtype=np.float64)
        finite = values[np.isfinite(values)]
        if values.size != num_samples or finite.size == 0:
            continue
        higher = get_metric(t.metric).higher_is_better
        worst, best = (finite.min(), finite.max()) if higher else (finite.max(), finite.min())
        values = np.where(np.isfinite(values), values, worst)
        distance = np.abs(best - values)
        if distance.mean() > 0:
            result = np.maximum(result, distance / distance.mean())
    return result


def stratified_split(
    evaluator: Evaluator, fraction: float, target: Target, base: dict[str, str], cache_dir: Path
) -> tuple[list[int], list[int], int, float]:
    """`split_indices` by the hardness of the samples for `base` (all-int8), cached in `cache_dir`:
    (search, held-out, model runs and full-model-run equivalents spent on it)."""
    identity = [evaluator.model_hash, evaluator.data_hash, fraction, target.to_json()]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]
    path = Path(cache_dir) / CACHE
    data = read_cache(path, key) or {}
    if _is_split(data, evaluator.num_samples):
        return data["search"], data["held"], 0, 0.0
    before = evaluator.equivalents
    scores = evaluator.evaluate(base)
    search, held = split_indices(hardness(scores, target, evaluator.num_samples), fraction)
    save_json({"key": key, "search": search, "held": held}, path)
    return search, held, evaluator.num_samples, evaluator.equivalents - before


def _is_split(data: dict, num_samples: int) -> bool:
    """True when `data` splits the `num_samples` samples: each index once, in "search" or "held" (a cache that
    does not is computed again)."""
    parts = (data.get("search"), data.get("held"))
    if not all(isinstance(part, list) and all(type(i) is int for i in part) for part in parts):
        return False
    return sorted(parts[0] + parts[1]) == list(range(num_samples))


def parse_holdout(setting: float | str | Path) -> float | Path:
    """A `--holdout` value: a fraction in [0, 1) (0: off) or a folder of held-out samples."""
    if isinstance(setting, str):
        try:
            setting = float(setting)
        except ValueError:
            setting = Path(setting)
    if isinstance(setting, Path):
        if not setting.exists():
            raise UserError(f"--holdout {setting}: no such data folder (or give a fraction like 0.25)")
        return setting
    if not 0.0 <= setting < 1.0:
        raise UserError(f"--holdout {setting:g}: give a fraction in [0, 1) (0 turns the check off) or a data folder")
    return float(setting)


def resolve_holdout(setting: float | str | Path | Evaluator | None, evaluator: Evaluator) -> float | Evaluator:
    """A `--holdout` value for the search of `evaluator`: the fraction to hold out (None, not given: a quarter from
    MIN_SAMPLES samples on, else 0), or for a folder the Evaluator of its samples (their data checked, so that a
    bad folder is refused before anything is written)."""
    if isinstance(setting, Evaluator):
        return setting
    if setting is None:
        return DEFAULT_FRACTION if evaluator.num_samples >= MIN_SAMPLES else 0.0
    setting = parse_holdout(setting)
    if isinstance(setting, Path):
        return Evaluator(dataclasses.replace(evaluator.spec, data_path=str(setting), num_samples=None), evaluator.jobs)
    return setting


def searched_count(setting: float | Evaluator, num_samples: int) -> int:
    """How many of the `num_samples` given the search scores under a resolved `--holdout` setting."""
    return num_samples if isinstance(setting, Evaluator) else num_samples - held_count(setting, num_samples)


@dataclass(frozen=True)
class HoldoutPlan:
    """Which samples the search scores on and which (of which evaluator) check the would-be winners."""

    search: list[int]
    held: list[int]
    evaluator: Evaluator | None  # scores the held-out samples; None: no held-out check
    identity: str  # what a resumed ledger must have been split by
    split_runs: int = 0  # model runs spent before the search: the split (0 when cached), a folder's coverage pass
    split_equivalents: float = 0.0  # the same in full-model-run equivalents (MACs run / model MACs per sample)
    out_of_range: tuple[RangeExcess, ...] = ()  # a held-out folder's tensors beyond every candidate's range


def plan_holdout(
    setting: float | str | Path | Evaluator | None,
    evaluator: Evaluator,
    target: Target,
    base: dict[str, str],
    cache_dir: Path,
) -> HoldoutPlan:
    """The split for `--holdout` (see `resolve_holdout`); a fraction is split by the samples' hardness for `base`
    (all-int8), cached in `cache_dir`. A folder's samples, which the calibration never saw, are also checked
    against the calibrated ranges (`autoprec.engine.coverage`)."""
    everything = list(range(evaluator.num_samples))
    setting = resolve_holdout(setting, evaluator)
    if isinstance(setting, Evaluator):
        excesses = tuple(out_of_range(setting))
        held_all = list(range(setting.num_samples))
        identity = f"folder {setting.data_hash}"
        return HoldoutPlan(everything, held_all, setting, identity, setting.num_samples, setting.equivalents, excesses)
    if setting == 0:
        return HoldoutPlan(everything, [], None, "off")
    search, held, runs, equivalents = stratified_split(evaluator, setting, target, base, cache_dir)
    return HoldoutPlan(search, held, evaluator, f"held out {held} of {evaluator.num_samples}", runs, equivalents)


class HoldoutCheck:
    """Held-out scores of candidates, evaluated once each and stored in the ledger."""

    def __init__(self, plan: HoldoutPlan, ledger: Ledger):
        if plan.evaluator is None:
            raise ValueError("a HoldoutCheck needs a plan with held-out samples")
        self.plan = plan
        self.ledger = ledger
        self._stored = ledger.holdouts()
        self.checks = 0  # held-out evaluations run by this process (not taken from the ledger)
        self.check_equivalents = 0.0  # their full-model-run equivalents

    @property
    def model_runs(self) -> int:
        """Model runs of this process's held-out checks and of the split (or a folder's coverage pass)."""
        return self.checks * len(self.plan.held) + self.plan.split_runs

    @property
    def equivalents(self) -> float:
        """`model_runs` in full-model-run equivalents (MACs run / model MACs per sample)."""
        return self.check_equivalents + self.plan.split_equivalents

    def scores(self, assignment: dict[str, str], key: str) -> Scores:
        """The held-out scores of one candidate (from the ledger when already checked)."""
        if key not in self._stored and not self.ledger.exclusive:
            self._stored = self.ledger.holdouts()  # another worker may have checked it
        if key not in self._stored:
            before = self.plan.evaluator.equivalents
            scores = self.plan.evaluator.evaluate(assignment, self.plan.held)
            self.check_equivalents += self.plan.evaluator.equivalents - before
            self.ledger.store_holdout(key, scores.to_json())
            self._stored[key] = scores.to_json()
            self.checks += 1
        return Scores.from_json(self._stored[key])
