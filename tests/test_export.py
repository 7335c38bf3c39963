"""`autoprec export` and `--runtime ort-default` on real models: the written file is what onnxruntime loads,
its as-searched scores are the search's, and a deployed miss exits 1 with the fix."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort

import autoprec
from autoprec.evaluate import EvalSpec, Evaluator, session_options
from autoprec.evaluate.exported import score_exported
from autoprec.ir.deploy import MS_DOMAIN, deploy_onnx

ALL_INT8 = {"model_config": {"all_node_type": "int8"}, "node_config": {}}


def _search(workdir, out, target=0.87, budget=8):
    return autoprec.search(workdir, target=target, budget=budget, out=out)


def test_export_winner_matches_search_and_runs_on_plain_onnxruntime(vad_workdir, tmp_path, run_cli):
    out = tmp_path / "out"
    result = _search(vad_workdir, out)
    assert result.met
    path = tmp_path / "model_qdq.onnx"
    done = run_cli("export", "--search", out, "-o", path, "--json")
    assert done[0] == 0, done[1]
    report = json.loads(done.stdout)
    winner = json.loads((out / "result.json").read_text())["winner"]["outputs"]
    for output, row in report["outputs"].items():
        assert abs(row["as_searched"] - winner[output]["value"]) < 1e-9  # the search's numbers, to rounding
        assert np.isfinite(row["ort_default"])
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert any(i.data_type == onnx.TensorProto.INT8 for i in model.graph.initializer)  # weights stored as int8
    assert any(i.data_type == onnx.TensorProto.INT16 for i in model.graph.initializer)  # the winner's int16
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # default options: what deploys
    before = path.read_bytes()
    code, err = run_cli("export", "--search", out, "-o", path)
    assert code == 2 and "--force" in err and path.read_bytes() == before


def test_export_ms_domain_lowers_the_opset(vad_workdir, tmp_path):
    evaluator = Evaluator(EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data")))
    assignment = {n: "int16" for n in evaluator.model.calibration}
    model = deploy_onnx(evaluator.model, assignment, ms_domain=True)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] < 21 and opsets[MS_DOMAIN] == 1
    assert {n.domain for n in model.graph.node if "QuantizeLinear" in n.op_type} == {MS_DOMAIN}
    searched = score_exported(evaluator, assignment, options=session_options(1), model=model)
    simulated = evaluator.evaluate(assignment)
    for output in evaluator.outputs:
        assert (
            abs(searched.aggregate(output, "cosine-similarity") - simulated.aggregate(output, "cosine-similarity"))
            < 1e-6
        )


def test_deployed_miss_exits_1_and_names_the_fix(vad_workdir, tmp_path, run_cli):
    """A target between the as-searched and the deployed score of one output: as searched passes, deployed
    misses (all-int8 vad: onnxruntime's fused kernels lose on cn's worst sample)."""
    evaluator = Evaluator(EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data")))
    assignment = {n: "int8" for n in evaluator.model.calibration}
    model = deploy_onnx(evaluator.model, assignment)
    searched = score_exported(evaluator, assignment, options=session_options(1), model=model)
    deployed = score_exported(evaluator, assignment, options=ort.SessionOptions(), model=model)
    gaps = {o: searched.aggregate(o, "cosine-similarity", "min") - deployed.aggregate(o, "cosine-similarity", "min")
            for o in evaluator.outputs}  # fmt: skip
    output = max(gaps, key=gaps.get)
    assert gaps[output] > 0, f"deployed never worse here: {gaps}"
    middle = deployed.aggregate(output, "cosine-similarity", "min") + gaps[output] / 2
    (tmp_path / "targets.json").write_text(json.dumps({output: {"threshold": middle, "aggregate": "min"}}))
    (tmp_path / "int8.json").write_text(json.dumps(ALL_INT8))
    code, err = run_cli("export", vad_workdir, "--config", "int8.json", "--target", "0.1", "--targets", "targets.json",
                        "-o", "int8.onnx")  # fmt: skip
    assert code == 1
    assert "--runtime ort-default" in err and output in err
    assert (tmp_path / "int8.onnx").is_file()
    done = run_cli("evaluate", vad_workdir, "--config", "int8.json", "--target", "0.1", "--runtime", "ort-default",
                   "--json")  # fmt: skip
    assert done[0] == 0, done[1]
    for out, row in json.loads(done.stdout)["outputs"].items():  # evaluate scores what onnxruntime deploys
        assert abs(row["value"] - deployed.aggregate(out, "cosine-similarity")) < 1e-6


def test_runtime_ort_default_scores_what_onnxruntime_deploys(vad_workdir, tmp_path):
    spec = EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data"))
    deployed_eval = Evaluator(EvalSpec(spec.model_path, spec.data_path, runtime="ort-default"))
    assignment = {n: "int8" for n in deployed_eval.model.calibration}
    deployed = score_exported(deployed_eval, assignment, options=ort.SessionOptions(),
                              model=deploy_onnx(deployed_eval.model, assignment))  # fmt: skip
    scored = deployed_eval.evaluate(assignment)
    for output in deployed_eval.outputs:
        assert (
            abs(scored.aggregate(output, "cosine-similarity") - deployed.aggregate(output, "cosine-similarity")) < 1e-6
        )
    result = autoprec.search(vad_workdir, target=0.87, budget=6, out=tmp_path / "out", runtime="ort-default")
    assert json.loads((tmp_path / "out" / "result.json").read_text())["runtime"] == "ort-default"
    winner = result.winner
    again = score_exported(deployed_eval, winner.assignment, options=ort.SessionOptions(),
                           model=deploy_onnx(deployed_eval.model, winner.assignment))  # fmt: skip
    for t in result.state.target.outputs:
        assert abs(t.value(winner.scores) - t.value(again)) < 1e-6


def test_export_of_a_search_run_from_another_folder(vad_workdir, tmp_path, run_cli):
    """A search started with relative paths is exported from any folder: result.json names its model absolutely."""
    here = tmp_path / "project"
    here.mkdir()
    (here / "model_output").symlink_to(vad_workdir)
    code, err = run_cli("search", "model_output", "--target", "0.87", "--budget", "6", "--out", "out", "--quiet",
                        "--no-report", cwd=here)  # fmt: skip
    assert code in (0, 1), err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, err = run_cli("export", "--search", here / "out", "-o", "m.onnx", cwd=elsewhere)
    assert code in (0, 1) and "no such file" not in err, err
    assert (elsewhere / "m.onnx").is_file()
