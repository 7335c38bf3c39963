"""A user task metric as the target: `--task-metric file.py:function`, scored relative to float."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoprec import demo
from autoprec.api import search
from autoprec.cli.commands import DEMO_TASK_METRICS
from autoprec.data import save_samples
from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.margin import binomial_bound, drop_noise, samples_advice, value_bound, working_target
from autoprec.engine.target import build_target
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.task import JACKKNIFE_GROUPS
from autoprec.hardware import get_profile
from tests.task_metrics import speech_agreement

TASKS = str(Path(__file__).with_name("task_metrics.py"))


def test_task_score_is_relative_to_float_and_drives_the_search(vad_workdir, tmp_path):
    spec = EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data"),
                    task_metric=f"{TASKS}:speech_agreement")  # fmt: skip
    evaluator = Evaluator(spec)
    names = evaluator.model.calibration
    floats = evaluator.evaluate({n: "float32" for n in names})
    assert floats.aggregate("task", "task") == 1.0  # the float model keeps all of its own task score
    int8 = evaluator.evaluate({n: "int8" for n in names}).aggregate("task", "task")
    int16 = evaluator.evaluate({n: "int16" for n in names}).aggregate("task", "task")
    assert 0.0 <= int8 <= int16 <= 1.0
    target = (int8 + int16) / 2 if int8 < int16 else int16
    result = search(
        vad_workdir, target=target, budget=20, out=tmp_path / "out", task_metric=f"{TASKS}:speech_agreement"
    )
    summary = json.loads((tmp_path / "out" / "result.json").read_text())
    assert summary["meets_target"] and list(summary["winner"]["outputs"]) == ["task"]
    assert np.isclose(summary["winner"]["outputs"]["task"]["value"], result.best.scores.aggregate("task", "task"))
    assert result.best.scores.aggregate("task", "task") >= target


def test_a_pooled_task_score_gets_jackknife_values_per_sample(vad_workdir):
    """The share of VAD frames decided as float decides them is pooled over all frames of all clips: each clip's
    value is the jackknife pseudo-value n * score - (n - 1) * score without it. They give the bound and the
    held-out noise their spread; the printed score stays the function's own."""
    spec = EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data"),
                    task_metric=f"{TASKS}:speech_agreement")  # fmt: skip
    evaluator = Evaluator(spec)
    int8 = {n: "int8" for n in evaluator.model.calibration}
    scores = evaluator.evaluate(int8)
    floats, quantized = (
        [dict(zip(evaluator.outputs, s)) for s in evaluator.outputs_of(a, list(range(4)))] for a in (None, int8)
    )
    score = speech_agreement(floats, quantized)
    assert scores.values["task"]["task"].tolist() == [score]
    without = [speech_agreement(floats[:i] + floats[i + 1 :], quantized[:i] + quantized[i + 1 :]) for i in range(4)]
    expected = [4 * score - 3 * w for w in without]
    assert np.allclose(scores.values["task"]["per_sample"], expected, atol=1e-9)
    assert np.ptp(expected) > 0  # the clips differ, so the spread is real
    t = build_target([], 0.5, task=True).outputs[0]
    assert value_bound(t, scores, 0.9) < score
    assert drop_noise(t, evaluator.evaluate(int8, [0, 1]), evaluator.evaluate(int8, [2, 3])) > 0


def test_per_sample_task_values_and_the_grouped_jackknife(magika_workdir, tmp_path):
    """magika (calibrated on 4 files) at all-int16 on 140 other real files changes a few labels. The demo's
    label_agreement returns one 0/1 per file: they are the per-sample values, bounded exactly (binomial). The same
    share returned as one number gets them back from the jackknife: exactly on 100 files, and beyond
    JACKKNIFE_GROUPS (140 files, left out in groups) with the same standard error."""
    save_samples(demo.make_samples("magika", 140), tmp_path / "data")
    model = str(magika_workdir / "calibrated_model.onnx")
    per_file = Evaluator(EvalSpec(model, str(tmp_path / "data"), task_metric=DEMO_TASK_METRICS["magika"]))
    pooled = Evaluator(EvalSpec(model, str(tmp_path / "data"), task_metric=f"{TASKS}:labels_kept_pooled"))
    int16 = baseline_assignments(per_file.model, get_profile("generic"))["all-int16"]
    assert 140 > JACKKNIFE_GROUPS > 100
    exact = per_file.evaluate(int16).values["task"]
    kept = exact["per_sample"]
    assert set(kept.tolist()) == {0.0, 1.0} and exact["task"][0] == np.mean(kept)
    goal = build_target([], 0.9, task=True)
    bound = working_target(goal, 0.9).judged(goal.outputs[0], per_file.evaluate(int16))
    assert bound == pytest.approx(binomial_bound(int(kept.sum()), 140, 0.9), abs=1e-12)
    first = pooled.evaluate(int16, list(range(100))).values["task"]
    assert np.array_equal(first["per_sample"], kept[:100]) and first["task"][0] == np.mean(kept[:100])
    grouped = pooled.evaluate(int16).values["task"]
    assert grouped["task"][0] == exact["task"][0] and not set(grouped["per_sample"].tolist()) <= {0.0, 1.0}
    assert np.std(grouped["per_sample"], ddof=1) == pytest.approx(np.std(kept, ddof=1), rel=0.05)


def test_bad_task_metrics_are_one_line_errors(vad_workdir, run_cli, tmp_path):
    for spec, words in ((f"{TASKS}:not_finite", "finite"), ("no_such_module_xyz:f", "cannot import"),
                        (f"{TASKS}:missing", "no function"), ("nocolon", "module:function"),
                        (f"{TASKS}:one_value_too_many", "or one value per sample")):  # fmt: skip
        code, err = run_cli("search", vad_workdir, "--task-metric", spec, "--target", "0.9", "--out", tmp_path / "o")
        assert code == 2 and words in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err


def test_a_non_finite_per_sample_value_never_passes(vad_workdir, run_cli, tmp_path):
    """A task function's per-sample inf (its mean is inf, above any target) makes the candidate NaN: no winner."""
    code, err = run_cli("search", vad_workdir, "--task-metric", f"{TASKS}:infinite_when_changed", "--target", "0.5",
                        "--budget", "4", "--out", tmp_path / "o")  # fmt: skip
    assert code == 1, err
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["meets_target"] is False and result["winner"]["passed"] is False  # the best so far, failing


def test_a_pooled_score_undefined_without_some_samples_gives_no_advice_crash(vad_workdir):
    """Speech recall pooled over a speech clip and a near-silent one: without the speech clip it is 0/0, so one
    jackknife value is NaN. The score itself passes; the bound and the advice skip what they cannot compute."""
    spec = EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data"),
                    task_metric=f"{TASKS}:speech_recall")  # fmt: skip
    evaluator = Evaluator(spec)
    scores = evaluator.evaluate(baseline_assignments(evaluator.model, get_profile("generic"))["all-int16"], [0, 3])
    values = scores.values["task"]["per_sample"]
    assert np.isnan(values).sum() == 1 and np.isfinite(scores.values["task"]["task"]).all()
    goal = build_target([], 0.5, task=True)
    assert goal.passes(scores) and not working_target(goal, 0.9).passes(scores)  # no bound: not trusted with one
    assert samples_advice(goal, scores, None) is None and samples_advice(goal, scores, 0.9) is None
