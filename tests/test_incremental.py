"""Incremental runs (issue 12): only the part of the graph a change reaches runs, fed with cached activations.

Every comparison is against the full run of the same assignment on the real demo models.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autoprec.cores import available_cores, parse_jobs
from autoprec.engine.sensitivity import measure, sensitivity_items
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.activations import ActivationCache
from autoprec.evaluate.evaluator import _worker
from autoprec.hardware import get_profile
from tests.conftest import cli_env

PROFILE = get_profile("generic")


def _evaluator(workdir, jobs: int = 1) -> Evaluator:
    return Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data")), jobs=jobs)


def _assert_same(full, incremental) -> None:
    assert full.values.keys() == incremental.values.keys()
    for item, outputs in full.values.items():
        for output, metrics in outputs.items():
            for metric, value in metrics.items():
                np.testing.assert_allclose(incremental.values[item][output][metric], value, rtol=1e-5, atol=1e-7)
    assert full.ranking() == incremental.ranking()


@pytest.mark.parametrize("name", ["vad", "magika"])
def test_incremental_sensitivity_equals_full(name, request):
    evaluator = _evaluator(request.getfixturevalue(f"{name}_workdir"))
    full = measure(evaluator, PROFILE, indices=[0, 1], incremental=False)
    incremental = measure(evaluator, PROFILE, indices=[0, 1])
    _assert_same(full, incremental)
    assert incremental.model_runs == full.model_runs  # the same evaluations, counted alike ...
    assert full.equivalents >= full.model_runs  # ... a full run is one model's MACs (plus float references)
    assert incremental.equivalents < 0.6 * full.model_runs  # the parts run about half the model on average


def test_incremental_raise_and_drop_modes_equal_full(vad_workdir):
    """Backgrounds other than float (all-int8, all-int16): the upstream part is the background's Q/DQ graph."""
    evaluator = _evaluator(vad_workdir)
    for mode in ("raise", "drop"):
        full = measure(evaluator, PROFILE, mode=mode, indices=[0], incremental=False)
        _assert_same(full, measure(evaluator, PROFILE, mode=mode, indices=[0]))


def test_incremental_layout_subset_equals_full(layout_workdir):
    evaluator = _evaluator(layout_workdir)
    items = list(sensitivity_items(evaluator, PROFILE, "node"))
    subset = items[:: len(items) // 5][:5]  # spread over the graph: early units run most of it, late ones little
    full = measure(evaluator, PROFILE, indices=[0], interested=subset, incremental=False)
    incremental = measure(evaluator, PROFILE, indices=[0], interested=subset)
    _assert_same(full, incremental)
    assert incremental.equivalents < full.equivalents


def test_changes_with_the_same_part_share_its_session(magika_workdir):
    """A repeated change (same part: same nodes, same weights) reuses its session and its cached cut, and costs
    only its part's MACs; the scores equal the full run's."""
    evaluator = _evaluator(magika_workdir)
    background = {n: "float32" for n in evaluator.model.calibration}
    last = list(sensitivity_items(evaluator, PROFILE, "node").values())[-1]
    change = {c: "int8" for c in last}
    expected = evaluator.evaluate_many([{**background, **change}], [0, 1])[0]
    runner = _worker(evaluator.spec).incremental(background)
    runner._sessions.clear()
    before = evaluator.equivalents
    scored = evaluator.evaluate_changes(background, [change] * 3, [0, 1])
    assert len(runner._sessions) == 1
    assert evaluator.equivalents - before < 2 + 3 * 2 * 0.5  # one background run per sample, then small parts
    for scores in scored:
        for output in evaluator.outputs:
            np.testing.assert_allclose(scores.values[output]["cosine-similarity"],
                                       expected.values[output]["cosine-similarity"], rtol=1e-6)  # fmt: skip


def test_incremental_with_two_workers_equals_full(vad_workdir):
    evaluator = _evaluator(vad_workdir, jobs=2)
    items = list(sensitivity_items(evaluator, PROFILE, "node"))[:4]
    full = measure(evaluator, PROFILE, indices=[0, 1], interested=items, incremental=False)
    _assert_same(full, measure(evaluator, PROFILE, indices=[0, 1], interested=items))


def test_activation_cache_spills_beyond_its_budget():
    cache = ActivationCache(budget=1000)
    small, big = np.arange(100, dtype=np.float32), np.arange(1000, dtype=np.float32)
    cache.put(0, "a", small)
    cache.put(0, "b", big)
    assert cache.in_memory == small.nbytes and cache.spilled == big.nbytes
    np.testing.assert_array_equal(cache.get(0, "b"), big)
    assert isinstance(cache.get(0, "b"), np.ndarray) and not isinstance(cache.get(0, "b"), np.memmap)


def test_jobs_auto_uses_the_available_cores(vad_workdir, run_cli, tmp_path):
    assert parse_jobs("auto") == available_cores() >= 1
    assert parse_jobs("3") == 3
    with pytest.raises(UserError):
        parse_jobs("0")
    code, err = run_cli("search", vad_workdir, "--jobs", "auto", "--budget", "4", "--target", "0.87", "--out", "o")
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    equivalents = result["full_model_run_equivalents"]
    assert equivalents["total"] == pytest.approx(equivalents["sensitivity"] + equivalents["evaluation"], abs=0.02)
    assert 0 < equivalents["sensitivity"] < result["sensitivity_model_runs"]
    code, err = run_cli("search", vad_workdir, "--jobs", "none", "--out", "o2")
    assert code == 2 and "--jobs" in err


def test_workers_share_the_sensitivity_pass(vad_workdir, tmp_path):
    """Two `autoprec search` workers on one storage measure each unit once between them."""
    storage = tmp_path / "shared.journal"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "autoprec.cli",
                "search",
                str(vad_workdir),
                "--target",
                "0.85",  # all-int16 meets it: only the unit pass runs (no float fallback's passes)
                "--budget",
                "40",  # more than the search needs: neither worker can run out before its sweep needs the pass
                "--storage",
                str(storage),
                "--study",
                "s",
                "--out",
                str(tmp_path / f"w{k}"),
                "--quiet",
            ],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode in (0, 1), err
    runs = [json.loads((tmp_path / f"w{k}" / "result.json").read_text())["sensitivity_model_runs"] for k in range(2)]
    units = len(sensitivity_items(_evaluator(vad_workdir), PROFILE, "node"))
    assert sum(runs) == units * 2  # 2 sensitivity samples, each unit measured by one worker only
    sensitivities = [json.loads((tmp_path / f"w{k}" / "sensitivity-node-single.json").read_text()) for k in range(2)]
    assert sensitivities[0]["values"] == sensitivities[1]["values"]
