"""The working target: what the search judges candidates against on its own samples.

It is the user's target made stricter in two ways, both per output:

- a **margin** added after a would-be winner failed the held-out check by more than the held-out noise (the
  search-to-held-out drop it showed, less that noise), so the search looks for candidates that pass with room
  to spare; a failure within the noise only rules that candidate out (a few held-out samples fail
  near-threshold candidates by chance: a margin taken from such a failure would be noise);
- with `confidence`, a **lower confidence bound** of the mean over samples (a bootstrap with a fixed seed;
  for a task score whose per-sample values are all 0 or 1, a rate such as labels kept, the exact binomial bound,
  where a bootstrap of n passes out of n says 1) instead of the mean itself (an upper bound for lower-is-better
  metrics). A task score is bounded through its per-sample values: the function's own, or jackknife
  pseudo-values (`autoprec.evaluate.task.pseudo_values`). A cosine of exactly 1 on every sample is an output
  float gives bit for bit, not a rate: its bound is 1.

Also the sample-count advice: how many samples would make the bound's width fit inside the margin a
winner has over its target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from autoprec.engine.target import OutputTarget, Target
from autoprec.errors import UserError
from autoprec.evaluate import Scores
from autoprec.evaluate.metrics import get_metric
from autoprec.evaluate.task import TASK, TASK_SAMPLES

RESAMPLES = 2000
SEED = 0
ADVICE_CONFIDENCE = 0.9  # the bound the sample-count advice is computed at when --confidence is off


def mean_bound(values: np.ndarray, confidence: float, higher_is_better: bool = True, rate: bool = False) -> float:
    """One-sided bound of the mean of `values` at `confidence` (lower for higher-is-better): exact binomial
    (Clopper-Pearson) for a `rate` (values 0 or 1), else a bootstrap (NaN for a single value: no bound)."""
    values = np.asarray(values, dtype=np.float64)
    if rate and values.size:
        return binomial_bound(int(values.sum()), values.size, confidence, lower=higher_is_better)
    if values.size < 2:
        return float("nan")
    draws = np.random.default_rng(SEED).integers(0, values.size, size=(RESAMPLES, values.size))
    means = values[draws].mean(axis=1)
    return float(np.quantile(means, 1.0 - confidence if higher_is_better else confidence))


def is_rate(t: OutputTarget, values: np.ndarray) -> bool:
    """True for a task score whose per-sample values are all 0 or 1 (a label kept or not): the exact binomial
    bound applies. A built-in metric's 0s and 1s (a cosine of exactly 1: the output is float's bit for bit) are
    values, not a rate."""
    return t.metric == TASK and bool(np.all((values == 0) | (values == 1)))


def binomial_bound(k: int, n: int, confidence: float, lower: bool = True) -> float:
    """Clopper-Pearson one-sided bound of a rate seen `k` times in `n` at `confidence`: the rate at which seeing
    at least (lower) / at most (upper) `k` has probability 1 - confidence; n of n gives (1 - confidence)^(1/n)."""
    if (lower and k == 0) or (not lower and k == n):
        return float(k / n)
    counts = np.arange(k, n + 1) if lower else np.arange(0, k + 1)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_choose = log_factorial[n] - log_factorial[counts] - log_factorial[n - counts]

    def tail(p: float) -> float:  # P(X >= k) (lower) or P(X <= k) (upper) for X ~ Binomial(n, p)
        return float(np.exp(log_choose + counts * math.log(p) + (n - counts) * math.log1p(-p)).sum())

    low, high = 0.0, 1.0
    for _ in range(60):  # tail(p) rises with p for the lower bound, falls for the upper one
        middle = (low + high) / 2
        if (tail(middle) < 1.0 - confidence) == lower:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def per_sample(t: OutputTarget, scores: Scores) -> np.ndarray:
    """The per-sample values of one output's target metric (a task score's: the function's own, or the jackknife
    pseudo-values of its one number)."""
    metrics = scores.values[t.output]
    if t.metric == TASK and TASK_SAMPLES in metrics:
        return metrics[TASK_SAMPLES]
    return metrics[get_metric(t.metric).name]


def value_bound(t: OutputTarget, scores: Scores, confidence: float) -> float:
    """One-sided bound of an output's value at `confidence`: the bound of the mean of its per-sample values, moved
    by the value's distance from that mean (none, except for a pooled task score: the mean of its pseudo-values is
    the bias-corrected jackknife estimate, the value is the user's function's)."""
    values = per_sample(t, scores)
    higher = get_metric(t.metric).higher_is_better
    return t.value(scores) + mean_bound(values, confidence, higher, is_rate(t, values)) - float(np.mean(values))


@dataclass(frozen=True)
class WorkingTarget(Target):
    """The user's target (`outputs`) with per-output margins (in the metric's units, > 0 is stricter) and
    an optional confidence bound; pass/fail of search-sample scores is judged on it."""

    margins: tuple[tuple[str, float], ...] = ()
    confidence: float | None = None

    def judged(self, t: OutputTarget, scores: Scores) -> float:
        """The value compared with the threshold: the confidence bound of the mean, or the aggregate."""
        if self.confidence is None or t.aggregate != "mean":
            return t.value(scores)
        return value_bound(t, scores, self.confidence)

    def margin(self, output: str) -> float:
        return dict(self.margins).get(output, 0.0)

    def working_gap(self, t: OutputTarget, scores: Scores) -> float:
        """How far the output is from its working threshold (<= 0 when met); a NaN never meets it."""
        return t.gap_of(self.judged(t, scores)) + self.margin(t.output)

    def passes(self, scores: Scores) -> bool:
        return all(self.working_gap(t, scores) <= 0 for t in self.outputs)

    def failing(self, scores: Scores) -> list[str]:
        return [t.output for t in self.outputs if self.working_gap(t, scores) > 0]

    def shortfall(self, scores: Scores) -> float:
        return sum(max(0.0, self.working_gap(t, scores)) / max(abs(t.threshold), 1e-12) for t in self.outputs)

    def tightened(self, search: Scores, held: Scores) -> WorkingTarget:
        """Each output that fails on `held` by a search-to-held-out drop larger than the held-out noise
        (`drop_noise`) gets a margin of at least the part of the drop that the noise does not explain (drop minus
        noise: what the search part overstates beyond chance); a drop within the noise leaves the target as is."""
        margins = dict(self.margins)
        for t in self.outputs:
            drop, noise = t.gap(held) - t.gap(search), drop_noise(t, search, held)
            if t.gap(held) > 0 and math.isfinite(drop) and drop > noise:
                margins[t.output] = max(margins.get(t.output, 0.0), drop - noise)
        return replace(self, margins=tuple(sorted(margins.items())))


def drop_noise(t: OutputTarget, search: Scores, held: Scores) -> float:
    """How far the held-out mean of an output falls below the search mean by chance alone: the standard error of
    their difference, from the spread of the candidate's per-sample values over both parts (0 for a `min`
    aggregate or without per-sample values)."""
    a, b = per_sample(t, search), per_sample(t, held)
    if t.aggregate != "mean" or a.size < 1 or b.size < 1 or a.size + b.size < 3:
        return 0.0
    spread = float(np.std(np.concatenate([a, b]), ddof=1))
    return spread * math.sqrt(1.0 / a.size + 1.0 / b.size) if math.isfinite(spread) else 0.0


def working_target(goal: Target, confidence: float | None = None, searched: int | None = None) -> WorkingTarget:
    """The working target of a search for `goal` (no margins yet) on `searched` samples."""
    if confidence is not None and not 0.5 <= confidence < 1.0:
        raise UserError(f"--confidence {confidence:g}: use a level in [0.5, 1), e.g. 0.9")
    if confidence is not None and searched is not None and searched < 2:
        raise UserError(
            f"--confidence {confidence:g} bounds a mean over the searched samples, and there is {searched}: give more "
            "samples (or a smaller --holdout), or leave --confidence out"
        )
    return WorkingTarget(goal.outputs, confidence=confidence)


def samples_advice(goal: Target, scores: Scores, confidence: float | None, given: int | None = None) -> str | None:
    """One line when the samples are too few or too alike to trust `scores` against `goal`: an output whose
    bound (at `confidence`, or 0.9) is wider than the margin over its target; with the samples that would do
    (samples to give, when the search scored only some of the `given` ones: the rest were held out)."""
    level = confidence or ADVICE_CONFIDENCE
    worst: tuple[float, str, int] | None = None
    for t in goal.outputs:
        values = per_sample(t, scores)
        if t.aggregate != "mean" or values.size < 2:
            continue
        width = abs(t.value(scores) - value_bound(t, scores, level))
        room = -t.gap(scores)
        if not math.isfinite(width) or room < 0 or width <= room:
            continue
        needed = _samples_needed(t, values, level, width, room)
        if not math.isnan(needed) and (worst is None or needed > worst[0]):
            worst = (needed, t.output, values.size)
    if worst is None:
        return None
    needed, output, n = worst
    given = given or n
    count = f"more than {10 * given}" if needed > 10 * n else f"about {math.ceil(math.ceil(needed) * given / n)}"
    searched = f"the {n} searched of {given} samples are" if given > n else f"{n} samples are"
    return (
        f"{searched} too few (or too alike) for this target on {output}: its {level:.0%} bound is wider than the "
        f"winner's margin over the target; {count} samples would do"
    )


def _samples_needed(t: OutputTarget, values: np.ndarray, level: float, width: float, room: float) -> float:
    """How many samples like these would bring the bound within the margin: for 0/1 values, the fewest at the same
    rate whose binomial bound meets the target (up to 10x as many; inf beyond); else by the 1/sqrt(n) width."""
    if not is_rate(t, values):
        return values.size * (width / room) ** 2 if room > 0 else math.inf
    rate, higher = float(np.mean(values)), get_metric(t.metric).higher_is_better

    def enough(m: int) -> bool:
        return t.gap_of(binomial_bound(round(rate * m), m, level, lower=higher)) <= 0

    if not enough(10 * values.size):
        return math.inf
    low, high = values.size, 10 * values.size  # enough(high), not enough(low)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return float(high)
