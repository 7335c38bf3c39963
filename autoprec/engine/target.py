"""Accuracy targets: per output, a metric, an aggregate over samples (mean or min) and a threshold."""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from autoprec.errors import UserError
from autoprec.evaluate import Scores
from autoprec.evaluate.metrics import SQNR_CEILING_DB, get_metric
from autoprec.evaluate.task import TASK

AGGREGATES = ("mean", "min")


@dataclass(frozen=True)
class OutputTarget:
    """What one output must reach."""

    output: str
    metric: str
    threshold: float
    aggregate: str = "mean"

    def value(self, scores: Scores) -> float:
        return scores.aggregate(self.output, self.metric, self.aggregate)

    def gap(self, scores: Scores) -> float:
        """How far the output is from its target (<= 0 when met), in the metric's units; infinite when the
        value is NaN (a non-finite output never passes)."""
        return self.gap_of(self.value(scores))

    def gap_of(self, value: float) -> float:
        """`gap` of an already aggregated value (infinite for NaN)."""
        if math.isnan(value):
            return math.inf
        return self.threshold - value if get_metric(self.metric).higher_is_better else value - self.threshold

    def describe(self) -> str:
        if self.metric == TASK:  # one score over all samples, relative to the float model's
            return f"task score >= {self.threshold:.12g} of float's"
        op = ">=" if get_metric(self.metric).higher_is_better else "<="
        return f"{self.aggregate} {self.metric} {op} {self.threshold:.12g}"


@dataclass(frozen=True)
class Target:
    """The targets of every output; a candidate passes when all are met."""

    outputs: tuple[OutputTarget, ...]

    def passes(self, scores: Scores) -> bool:
        return all(t.gap(scores) <= 0 for t in self.outputs)

    def failing(self, scores: Scores) -> list[str]:
        return [t.output for t in self.outputs if t.gap(scores) > 0]

    def shortfall(self, scores: Scores) -> float:
        """Sum of relative gaps of the failing outputs (0 when passing; infinite with a NaN output): ranks
        failing candidates."""
        return sum(max(0.0, t.gap(scores)) / max(abs(t.threshold), 1e-12) for t in self.outputs)

    def to_json(self) -> list[dict]:
        return [t.__dict__ for t in self.outputs]

    def identity(self, task_metric: str | None = None) -> str:
        """What a ledger must have been searched against to be resumed with this target."""
        return json.dumps([self.to_json(), task_metric])


def build_target(
    outputs: list[str],
    threshold: float,
    metric: str = "cosine-similarity",
    aggregate: str = "mean",
    per_output_file: str | None = None,
    task: bool = False,
) -> Target:
    """`threshold` for every output; a TOML/JSON file `{output: {threshold, metric, aggregate}}` overrides."""
    overrides = _read_overrides(per_output_file) if per_output_file else {}
    unknown = sorted(set(overrides) - set(outputs))
    if unknown:
        raise UserError(
            f"unknown output '{unknown[0]}' in {per_output_file}; the model's outputs are {', '.join(outputs)}"
        )
    targets = [OutputTarget(TASK, TASK, float(threshold))] if task else []
    for target in targets:
        _check(target)
    for out in outputs:
        spec = overrides.get(out, {})
        if task and out not in overrides:
            continue  # with a task metric, outputs get a target only from the targets file
        spec = _spec(out, spec, per_output_file)
        target = OutputTarget(
            out,
            get_metric(spec.get("metric", metric)).name,
            float(spec.get("threshold", threshold)),
            spec.get("aggregate", aggregate),
        )
        _check(target)
        targets.append(target)
    return Target(tuple(targets))


def check_threshold(
    threshold: float, metric: str = "cosine-similarity", aggregate: str = "mean", task: bool = False
) -> None:
    """Refuse a threshold for every output that no output could meet (a task metric's share, if `task`),
    before any model is loaded."""
    if task:
        _check(OutputTarget(TASK, TASK, float(threshold)))
    else:
        _check(OutputTarget("every output", get_metric(metric).name, float(threshold), aggregate))


def _check(target: OutputTarget) -> None:
    if not math.isfinite(target.threshold):
        raise UserError(f"target {target.threshold} for {target.output} is not a finite number; give a real threshold")
    if target.aggregate not in AGGREGATES:
        raise UserError(f"unknown aggregate '{target.aggregate}'; use mean or min")
    if target.metric == "cosine-similarity" and not 0.0 < target.threshold <= 1.0:
        raise UserError(f"target {target.threshold:.12g} for {target.output} is impossible: cosine lies in (0, 1]")
    if target.metric == "sqnr" and target.threshold > SQNR_CEILING_DB:
        raise UserError(
            f"target {target.threshold:.12g} dB for {target.output} is impossible: sqnr is at most "
            f"{SQNR_CEILING_DB:g} dB (float's own output)"
        )
    if target.metric == TASK and target.threshold <= 0:
        raise UserError(f"task target {target.threshold:.12g} is impossible: it is a share of the float score, > 0")
    if not get_metric(target.metric).higher_is_better and target.threshold < 0:
        raise UserError(f"target {target.threshold:.12g} for {target.output} is impossible: {target.metric} >= 0")


def _read_overrides(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{path}: no such target file")
    try:
        data = tomllib.loads(file.read_text()) if file.suffix == ".toml" else json.loads(file.read_text())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not valid {'TOML' if file.suffix == '.toml' else 'JSON'} ({exc})") from exc
    overrides = data.get("outputs", data) if isinstance(data, dict) else data
    if not isinstance(overrides, dict):
        raise UserError(f'{path}: must map output names to targets, e.g. {{"logits": {{"threshold": 0.99}}}}')
    return overrides


def _spec(output: str, spec: object, path: str | None) -> dict:
    """One output's entry of a targets file, checked: a number, or {threshold, metric, aggregate}."""
    spec = spec if isinstance(spec, dict) else {"threshold": spec}
    where = f"{path}: output '{output}'"
    unknown = sorted(set(spec) - {"threshold", "metric", "aggregate"})
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}'; use threshold, metric or aggregate")
    threshold = spec.get("threshold", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise UserError(f"{where}: threshold {threshold!r} is not a number; write it without quotes")
    for key in ("metric", "aggregate"):
        if not isinstance(spec.get(key, ""), str):
            raise UserError(f'{where}: {key} {spec[key]!r} is not a name; e.g. "cosine-similarity", "mean"')
    return spec
