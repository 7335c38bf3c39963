"""Every metric formula in autoprec.evaluate.metrics against an independent reference (scipy distances and
exactly rounded Python sums, written here without autoprec's Stats), on real-looking and edge-case pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import distance

from autoprec.engine.target import OutputTarget
from autoprec.evaluate import Scores
from autoprec.evaluate.metrics import METRICS, SQNR_CEILING_DB, compare, get_metric


def _flat(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def reference(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    r, q = _flat(ref), _flat(out)
    n = len(r)
    err = [a - b for a, b in zip(r, q)]
    err_sq = math.fsum(e * e for e in err)
    ref_sq = math.fsum(a * a for a in r)
    out_sq = math.fsum(b * b for b in q)
    if ref_sq == 0.0 and out_sq == 0.0:
        cosine = 1.0
    elif ref_sq == 0.0 or out_sq == 0.0:
        cosine = 0.0
    else:
        cosine = 1.0 - distance.cosine(r, q)
    return {
        "cosine-similarity": cosine,
        "mse": err_sq / n,
        "mre": math.fsum(abs(e) for e in err) / max(math.fsum(abs(a) for a in r), 1e-12 * n),
        "sqnr": min(SQNR_CEILING_DB, 10.0 * math.log10(max(ref_sq, 1e-30) / err_sq)) if err_sq else SQNR_CEILING_DB,
        "chebyshev": distance.chebyshev(r, q),
        "l1": distance.cityblock(r, q) / n,
        "l2": distance.euclidean(r, q),
    }


RNG = np.random.default_rng(7)
BASE = RNG.normal(size=(2, 3, 17)).astype(np.float32)
PAIRS = {
    "int8-like noise": (BASE, BASE + RNG.normal(scale=0.01, size=BASE.shape).astype(np.float32)),
    "coarse and biased": (BASE, np.round(BASE * 4) / 4 + 0.1),
    "sign flipped": (BASE, -BASE),
    "identical": (BASE, BASE.copy()),
    "large values": (BASE * 1e4, BASE * 1e4 + 3.0),
    "integer outputs": (np.arange(12, dtype=np.int32), np.arange(12, dtype=np.int32)[::-1].copy()),
    "zero reference": (np.zeros(8, np.float32), np.full(8, 0.5, np.float32)),
    "both zero": (np.zeros(8, np.float32), np.zeros(8, np.float32)),
    "one element": (np.array([2.0], np.float32), np.array([1.5], np.float32)),
}


@pytest.mark.parametrize("pair", list(PAIRS), ids=list(PAIRS))
def test_every_metric_matches_an_independent_reference(pair):
    ref, out = PAIRS[pair]
    got, want = compare(ref, out), reference(ref, out)
    assert set(got) == set(METRICS) == set(want)
    for name in METRICS:
        if math.isinf(want[name]):
            assert got[name] == want[name], name
        else:
            assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name


def test_directions_and_aliases():
    assert get_metric("cos") is get_metric("cosine") is METRICS["cosine-similarity"]
    higher = {name for name, m in METRICS.items() if m.higher_is_better}
    assert higher == {"cosine-similarity", "sqnr"}
    ref, good, bad = PAIRS["int8-like noise"][0], PAIRS["int8-like noise"][1], PAIRS["coarse and biased"][1]
    for name, metric in METRICS.items():  # a closer output is better under every metric
        closer, farther = compare(ref, good)[name], compare(ref, bad)[name]
        assert (closer > farther) if metric.higher_is_better else (closer < farther), name


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_a_non_finite_output_scores_nan_under_every_metric(poison):
    ref = BASE.copy()
    out = BASE.copy()
    out[0, 0, 3] = poison
    assert all(math.isnan(v) for v in compare(ref, out).values())
    assert all(math.isnan(v) for v in compare(out, ref).values())


def test_one_exact_sample_keeps_the_mean_sqnr_finite():
    """An exact sample's SQNR is the ceiling, not inf: an inf would make the mean over samples inf, passing any
    threshold however noisy the other samples are."""
    exact, noisy = compare(*PAIRS["identical"])["sqnr"], compare(*PAIRS["coarse and biased"])["sqnr"]
    assert exact == SQNR_CEILING_DB and noisy < 30
    scores = Scores({"y": {"sqnr": np.array([exact, noisy, noisy, noisy])}})
    assert not OutputTarget("y", "sqnr", 100.0).gap(scores) <= 0
