"""A user task metric as the target: `--task-metric file.py:function`, scored relative to float."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autoprec.api import search
from autoprec.evaluate import EvalSpec, Evaluator

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


def test_bad_task_metrics_are_one_line_errors(vad_workdir, run_cli, tmp_path):
    for spec, words in ((f"{TASKS}:not_finite", "finite"), ("no_such_module_xyz:f", "cannot import"),
                        (f"{TASKS}:missing", "no function"), ("nocolon", "module:function")):  # fmt: skip
        code, err = run_cli("search", vad_workdir, "--task-metric", spec, "--target", "0.9", "--out", tmp_path / "o")
        assert code == 2 and words in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
