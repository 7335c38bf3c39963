"""Trust: no silent wrong score, no traceback. The catalogue of bad inputs and faults (exit code, exactly one
stderr line, no traceback, the user's files byte-for-byte untouched), scores of non-finite outputs,
simulation = export on graph shapes the fast path cannot take, and the numbers behind the cost model.

Models are tiny synthetic graphs built here (each exercises one shape) and the real silero VAD.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import cli_env
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from test_bad_input import snapshot

from autoprec import api
from autoprec.calibrate import calibrate
from autoprec.data import save_samples
from autoprec.engine.cost import op_costs
from autoprec.engine.sensitivity import measure
from autoprec.engine.target import build_target
from autoprec.engine.verify import check_exported
from autoprec.errors import InternalError, UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.exported import score_exported
from autoprec.evaluate.metrics import METRICS
from autoprec.hardware import HardwareProfile, get_profile
from autoprec.ir import FEATURE, WEIGHT, CalibratedModel, CalibrationNode
from autoprec.report import scores_table

RNG = np.random.default_rng(0)


def opset21(graph: onnx.GraphProto) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def value(name: str, shape, elem=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def shared_weight_model() -> onnx.ModelProto:
    """Two Convs reading one weight tensor (each gets its own calibration node)."""
    weight = numpy_helper.from_array(RNG.normal(size=(4, 3, 3, 3)).astype(np.float32), "W")
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["x"], ["xr"], name="relu"),
        helper.make_node("Conv", ["xr", "W"], ["b"], name="conv_b"),
    ]
    return opset21(helper.make_graph(nodes, "shared", [value("x", [1, 3, 8, 8])], [value("a", None), value("b", None)],
                                     [weight]))  # fmt: skip


def reciprocal_model() -> onnx.ModelProto:
    """out = 1 / x and y = x * x: int8 rounds x = 0.001 to 0, so the quantized `out` holds Inf (float: 1000)."""
    one = numpy_helper.from_array(np.ones((1, 16), np.float32), "one")
    nodes = [
        helper.make_node("Div", ["one", "x"], ["out"], name="div"),
        helper.make_node("Mul", ["x", "x"], ["y"], name="mul"),
    ]
    return opset21(helper.make_graph(nodes, "recip", [value("x", [1, 16])], [value("out", None), value("y", None)],
                                     [one]))  # fmt: skip


def reciprocal_samples(n: int = 3) -> list[dict[str, np.ndarray]]:
    samples = []
    for _ in range(n):
        x = RNG.uniform(0.2, 1.0, size=(1, 16)).astype(np.float32)
        x[0, 0], x[0, 1] = 0.001, 1.0  # int8 step 1/127: 0.001 rounds to 0
        samples.append({"x": x})
    return samples


def calibrated(model: onnx.ModelProto, samples: list[dict], root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(root / "float.onnx"))
    save_samples(samples, root / "data")
    calibrate(root / "float.onnx", root / "data", root / "model_output")
    return root / "model_output"


@pytest.fixture(scope="module")
def toy_workdir(tmp_path_factory) -> Path:
    samples = [{"x": RNG.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    return calibrated(shared_weight_model(), samples, tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def reciprocal_workdir(tmp_path_factory) -> Path:
    return calibrated(reciprocal_model(), reciprocal_samples(), tmp_path_factory.mktemp("recip"))


def evaluator_of(workdir: Path) -> Evaluator:
    return Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data")))


def strict_json(path: Path) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path.name} holds {constant}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# --- the catalogue: (argv, regex of the one error line, expected exit code) ------------------------


def _write(root: Path, name: str, text: str) -> Path:
    (root / name).write_text(text)
    return root / name


def _model_file(root: Path, model: onnx.ModelProto, name: str = "m.onnx") -> Path:
    onnx.save(model, str(root / name))
    return root / name


def case_target_nan(root, toy):
    return ["search", toy, "--target", "nan", "--out", root / "out"], r"not a finite number", 2


def case_target_inf_mse(root, toy):
    return ["search", toy, "--target", "inf", "--metric", "mse", "--out", root / "out"], r"not a finite number", 2


def case_evaluate_target_nan(root, toy):
    config = _write(root, "qc.json", json.dumps({"node_config": {}}))
    return ["evaluate", toy, "--config", config, "--target", "nan", "--metric", "mse"], r"not a finite number", 2


def case_targets_file_nan(root, toy):
    targets = _write(root, "t.json", '{"a": {"threshold": NaN, "metric": "mse"}}')
    return ["search", toy, "--targets", targets, "--out", root / "out"], r"not a finite number", 2


def case_targets_json_list(root, toy):
    targets = _write(root, "t.json", '[{"a": 0.9}]')
    return ["search", toy, "--targets", targets, "--out", root / "out"], r"must map output names to targets", 2


def case_targets_string_threshold(root, toy):
    targets = _write(root, "t.json", '{"a": {"threshold": "0.9"}}')
    return ["search", toy, "--targets", targets, "--out", root / "out"], r"threshold '0\.9' is not a number", 2


def case_config_node_entry_string(root, toy):
    config = _write(root, "qc.json", json.dumps({"node_config": {"conv_a": "int16"}}))
    return ["evaluate", toy, "--config", config], r"node_config\.conv_a must be an object", 2


def case_config_model_config_string(root, toy):
    config = _write(root, "qc.json", json.dumps({"model_config": "int16"}))
    return ["evaluate", toy, "--config", config], r"model_config must be an object", 2


def case_config_subgraph_inputs_string(root, toy):
    spec = {"inputs": "conv_a", "outputs": ["conv_b"]}
    config = _write(root, "qc.json", json.dumps({"subgraph_config": {"s": spec}}))
    return ["evaluate", toy, "--config", config], r"subgraph_config\.s\.inputs must be a list", 2


def case_sensitivity_samples_zero(root, toy):
    return ["search", toy, "--sensitivity-samples", "0", "--out", root / "out"], r"--sensitivity-samples", 2


def case_num_samples_zero(root, toy):
    return ["search", toy, "--num-samples", "0", "--out", root / "out"], r"--num-samples: must be at least 1, got 0", 2


def case_option_bad_value(root, toy):
    return ["search", toy, "--option", "optuna.space=abc", "--out", root / "out"], r"--option optuna\.space=abc", 2


def case_storage_unwritable(root, toy):
    argv = ["search", toy, "--storage", root / "no-such-folder" / "ledger.journal", "--out", root / "out"]
    return argv, r"cannot open the journal storage .*; choose a writable path for --storage", 2


def case_option_unknown_strategy(root, toy):
    argv = ["search", toy, "--strategies", "baselines", "--option", "optuna.space=4", "--out", root / "out"]
    return argv, r"strategy 'optuna' is not in --strategies", 2


def case_task_metric_system_exit(root, toy):
    _write(root, "metric.py", "import sys\n\ndef score(floats, quantized):\n    sys.exit(0)\n")
    config = _write(root, "qc.json", json.dumps({"node_config": {}}))
    argv = ["evaluate", toy, "--config", config, "--task-metric", root / "metric.py:score"]
    return argv, r"--task-metric raised SystemExit", 2


def case_task_metric_import_exit(root, toy):
    _write(root, "metric.py", "raise SystemExit('no')\n")
    config = _write(root, "qc.json", json.dumps({"node_config": {}}))
    argv = ["evaluate", toy, "--config", config, "--task-metric", root / "metric.py:score"]
    return argv, r"--task-metric: cannot import", 2


def case_candidates_file_damaged(root, toy):
    (root / "out").mkdir()
    _write(root / "out", "candidates.json", '[{"index": 0, "outputs": "cut her')
    return ["candidates", "--out", root / "out"], r"candidates\.json: not a candidates file", 2


def case_candidates_file_foreign(root, toy):
    (root / "out").mkdir()
    _write(root / "out", "candidates.json", '[{"index": 0}]')
    return ["candidates", "--out", root / "out"], r"candidates\.json: not a candidates file", 2


def _calibrate(model: Path, data: Path, root: Path) -> list:
    return ["calibrate", model, "--data", data, "-o", root / "out"]


def _data(root: Path, samples: list[dict]) -> Path:
    save_samples(samples, root / "data")
    return root / "data"


def case_model_without_outputs(root, toy):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [value("x", [1, 4])], [])
    model = _model_file(root, opset21(graph))
    return _calibrate(model, _data(root, [{"x": np.ones((1, 4), np.float32)}]), root), r"has no outputs", 2


def case_untyped_input(root, toy):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                              [helper.make_empty_tensor_value_info("x")], [value("y", [1, 4])])  # fmt: skip
    model = _model_file(root, opset21(graph))
    return _calibrate(model, root / "data", root), r"input 'x' has no tensor element type", 2


def case_missing_external_data(root, toy):
    (root / "ext").mkdir()
    onnx.save(shared_weight_model(), str(root / "ext" / "m.onnx"), save_as_external_data=True, location="w.bin",
              size_threshold=0)  # fmt: skip
    (root / "ext" / "w.bin").unlink()
    data = _data(root, [{"x": np.ones((1, 3, 8, 8), np.float32)}])
    return _calibrate(root / "ext" / "m.onnx", data, root), r"external data file 'w\.bin' .* is missing", 2


def _reshape_model() -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array([1, 4, 4], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
             helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid")]  # fmt: skip
    return opset21(helper.make_graph(nodes, "g", [value("x", [1, "n"])], [value("y", None)], [shape]))


def case_data_fails_at_run_time_calibrate(root, toy):
    model = _model_file(root, _reshape_model())
    data = _data(root, [{"x": np.ones((1, 16), np.float32)}, {"x": np.ones((1, 15), np.float32)}])
    return _calibrate(model, data, root), r"sample 1: onnxruntime cannot run the float model on it \(.*Reshape", 2


def case_data_fails_at_run_time_search(root, toy):
    (root / "wd").mkdir()
    good = _data(root / "wd", [{"x": np.ones((1, 16), np.float32)}])
    model = _model_file(root / "wd", _reshape_model(), "float.onnx")
    calibrate(model, good, root / "wd" / "model_output")
    bad = root / "bad"
    save_samples([{"x": np.ones((1, 16), np.float32)}, {"x": np.ones((1, 15), np.float32)}], bad)
    argv = ["search", root / "wd" / "model_output", "--data", bad, "--out", root / "out"]
    return argv, r"sample 1: onnxruntime cannot run the float model on it", 2


def case_percentile_nan(root, toy):
    model = _model_file(root, shared_weight_model())
    data = _data(root, [{"x": np.ones((1, 3, 8, 8), np.float32)}])
    return [*_calibrate(model, data, root), "--method", "percentile", "--percentile", "nan"], r"--percentile nan", 2


def case_percentile_above_100(root, toy):
    model = _model_file(root, shared_weight_model())
    data = _data(root, [{"x": np.ones((1, 3, 8, 8), np.float32)}])
    return [*_calibrate(model, data, root), "--method", "percentile", "--percentile", "200"], r"not in \(0, 100\]", 2


def case_sensitivity_num_samples_zero(root, toy):
    return ["sensitivity", toy, "--num-samples", "0", "--out", root / "out"], r"--num-samples: must be at least 1", 2


def _npy_data(root: Path, payload: bytes) -> Path:
    model = _model_file(root, shared_weight_model())
    save_samples([{"x": np.ones((1, 3, 8, 8), np.float32)}] * 2, root / "data")
    (root / "data" / "x" / "1.npy").write_bytes(payload)
    return model


def case_corrupt_npy(root, toy):
    model = _npy_data(root, b"\x00garbage that is not an array" * 4)
    return _calibrate(model, root / "data", root), r"1\.npy: corrupt \.npy data", 2


def case_truncated_npy(root, toy):
    model = _npy_data(root, b"")
    whole = (root / "data" / "x" / "0.npy").read_bytes()
    (root / "data" / "x" / "1.npy").write_bytes(whole[:-10])
    return _calibrate(model, root / "data", root), r"1\.npy: corrupt \.npy data \(its header declares", 2


def case_npy_header_too_large(root, toy):
    header = {"descr": "<f4", "fortran_order": False, "shape": (1, 3, 8, 8 * 10**12)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    model = _npy_data(root, buffer.getvalue() + b"\x00" * 64)
    return _calibrate(model, root / "data", root), r"corrupt \.npy data \(its header declares \d+ bytes", 2


def case_npz_member_header_too_large(root, toy):
    model = _model_file(root, shared_weight_model())
    header = {"descr": "<f4", "fortran_order": False, "shape": (4, 1, 3, 8, 8 * 10**12)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(root / "data.npz", "w") as archive:
        archive.writestr("x.npy", buffer.getvalue() + b"\x00" * 64)
    return _calibrate(model, root / "data.npz", root), r"member x\.npy: corrupt \.npy data \(its header declares", 2


def case_targets_file_unknown_key(root, toy):
    targets = _write(root, "t.json", '{"a": {"treshold": 0.5}}')  # a typo must not leave "a" at the default
    return ["search", toy, "--targets", targets, "--out", root / "out"], r"output 'a': unknown key 'treshold'", 2


def case_target_sqnr_past_its_ceiling(root, toy):
    argv = ["search", toy, "--metric", "sqnr", "--target", "500", "--out", root / "out"]
    return argv, r"target 500 dB for every output is impossible: sqnr is at most 200 dB", 2


def case_force_with_resume(root, toy):
    return ["search", toy, "--force", "--resume", "--out", root / "out"], r"pass only one of them", 2


def case_pipeline_that_evaluates_nothing(root, toy):
    argv = ["search", toy, "--strategies", "prune", "--out", root / "out"]
    return argv, r"the strategies prune evaluated no candidate: .*--strategies baselines,prune", 2


def case_config_threshold_config_list(root, toy):
    config = _write(root, "qc.json", json.dumps({"threshold_config": [1]}))
    return ["evaluate", toy, "--config", config], r"threshold_config must be an object", 2


def case_config_threshold_entry_string(root, toy):
    config = _write(root, "qc.json", json.dumps({"threshold_config": {"conv_a": {"input0": "kl"}}}))
    return ["evaluate", toy, "--config", config], r"threshold_config\.conv_a\.input0 must be an object like", 2


def case_config_threshold_range_edited(root, toy):
    """A hand-edited min/max would be ignored (ranges are read by method): refused, naming the method's range."""
    model = CalibratedModel.load(toy / "calibrated_model.onnx")
    cal = next(c for c in model.calibration.values() if c.alternatives and c.consumers[0][0] == "conv_b")
    method, (low, high) = next(iter(cal.alternatives.items()))
    index = cal.consumers[0][1]
    entry = {"conv_b": {f"input{index}": {"method": method, "min": float(low), "max": float(high) / 2}}}
    config = _write(root, "qc.json", json.dumps({"threshold_config": entry}))
    return ["evaluate", toy, "--config", config], rf"min/max must be the '{re.escape(method)}' range", 2


def case_config_qtype_the_profile_forbids(root, toy):
    chip = {"name": "chip", "forced_int8": {}, "qtypes": ["int8", "int16", "float32"]}  # no float16
    profile = _write(root, "chip.json", json.dumps(chip))
    config = _write(root, "qc.json", json.dumps({"node_config": {"conv_b": {"qtype": "float16"}}}))
    argv = ["evaluate", toy, "--config", config, "--profile", profile]
    return argv, r"node_config\.conv_b: profile 'chip' allows float16 on none of its inputs", 2


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_catalogue(case, toy_workdir, tmp_path, run_cli):
    root = tmp_path / "user"
    root.mkdir()
    argv, pattern, expected = case(root, toy_workdir)
    before, toy_before = snapshot(root), snapshot(toy_workdir)
    code, stderr = run_cli(*argv, cwd=root)
    lines = stderr.strip().splitlines()
    assert code == expected, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(root) == before and snapshot(toy_workdir) == toy_before  # nothing written, nothing changed


BOOM = """
import sys
import autoprec.cli.parser as parser
def boom(args):
    raise RuntimeError("boom: the first line\\nthe second line")
parser.cmd_candidates = boom
from autoprec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_unexpected_exception_is_one_line_exit_3_with_the_traceback_in_a_log(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-c", BOOM, "candidates", "--out", str(tmp_path), *args],
                              capture_output=True, text=True, env=cli_env(), cwd=tmp_path)  # fmt: skip

    proc = run()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "RuntimeError: boom: the first line" in lines[0] and "--debug" in lines[0]
    log = tmp_path / "autoprec-error.log"
    assert str(log) in " ".join(proc.stderr.split()) and "Traceback" in log.read_text()
    assert "the second line" in log.read_text()
    debug = run("--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "boom" in debug.stderr


# --- scores that can't lie --------------------------------------------------------------------------


def test_non_finite_outputs_fail_with_infinite_shortfall(reciprocal_workdir):
    evaluator = evaluator_of(reciprocal_workdir)
    int8 = {n: "int8" for n in evaluator.model.calibration}
    int16 = {n: "int16" for n in evaluator.model.calibration}
    outputs = evaluator.outputs_of(int8, [0])[0]
    assert not np.isfinite(outputs[0]).all()  # really Inf: 1 / 0
    scores, good = evaluator.evaluate(int8), evaluator.evaluate(int16)
    for metric, loosest in (("mse", 1e9), ("cosine-similarity", 0.001), ("sqnr", -1e9), ("chebyshev", 1e9)):
        target = build_target(evaluator.outputs, loosest, metric)
        assert target.failing(scores) == ["out"] and not target.passes(scores)  # even the loosest target
        assert target.shortfall(scores) == math.inf
        assert target.passes(good) and target.shortfall(good) == 0.0


def test_a_nan_producing_unit_ranks_most_damaging(reciprocal_workdir):
    evaluator = evaluator_of(reciprocal_workdir)
    sensitivity = measure(evaluator, get_profile("generic"), "activation", "single")
    div, mul = "div:input1", "mul:input0"
    assert math.isnan(sensitivity.values[div]["out"]["cosine-similarity"])
    assert sensitivity.values[mul]["y"]["mse"] > 0  # a finite, real loss
    for metric in ("cosine-similarity", "mse", "sqnr"):
        assert sensitivity.ranking(metric)[0] == div
        assert sensitivity.loss(div, metric) == math.inf


def test_search_with_a_nan_candidate_ranks_it_last_and_writes_strict_json(reciprocal_workdir, tmp_path):
    result = api.search(reciprocal_workdir, target=0.999, budget=6, out=tmp_path / "out",
                        strategies=("baselines", "threshold_sweep", "optuna"))  # fmt: skip
    int8 = result.state.known(result.state.baselines["all-int8"])
    assert int8.shortfall == math.inf and not int8.passed
    assert result.candidates[-1].shortfall == math.inf and result.met
    files = {name: strict_json(tmp_path / "out" / name) for name in ("result.json", "candidates.json")}
    row = next(c for c in files["candidates.json"] if c["index"] == int8.index)
    assert row["shortfall"] == "Infinity" and row["outputs"]["out"]["value"] == "NaN"
    exported = files["result.json"]["winner_exported"]
    assert exported["out"]["simulated"] == exported["out"]["exported"] == result.best.scores.aggregate("out", "cosine")
    for path in (tmp_path / "out").glob("*.json"):
        strict_json(path)
    journal = (tmp_path / "out" / "ledger.journal").read_text().splitlines()
    assert any("NaN" in line for line in journal)  # the NaN scores are stored...
    for line in journal:  # ...as strings: the ledger is strict JSON too
        json.loads(line, parse_constant=lambda c: pytest.fail(f"ledger.journal holds {c}"))


@pytest.mark.parametrize("metric", [*METRICS, "task"])
@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf])
def test_non_finite_targets_are_refused_for_every_metric(metric, threshold):
    task = metric == "task"
    with pytest.raises(UserError, match="not a finite number") as error:
        build_target(["a", "b"], threshold, "mse" if task else metric, task=task)
    assert "\n" not in str(error.value)


# --- simulation = export --------------------------------------------------------------------------


def test_a_shared_weight_is_simulated_per_consumer(toy_workdir):
    evaluator = evaluator_of(toy_workdir)
    weights = [c for c in evaluator.model.calibration.values() if c.tensor_type == WEIGHT]
    assert [c.tensor for c in weights] == ["W", "W"]  # one tensor, two calibration nodes
    for qtypes in (("int8", "int16"), ("int16", "int8"), ("int16", "float32")):
        assignment = {**evaluator.model.assignment(), **{c.name: q for c, q in zip(weights, qtypes)}}
        simulated, exported = evaluator.evaluate(assignment), score_exported(evaluator, assignment)
        for out in evaluator.outputs:
            assert np.array_equal(simulated.values[out]["mse"], exported.values[out]["mse"]), (qtypes, out)
    one = {**evaluator.model.assignment(), weights[1].name: "int16"}
    both = {**evaluator.model.assignment(), weights[0].name: "int16", weights[1].name: "int16"}
    assert evaluator.evaluate(one).values["a"]["mse"][0] != evaluator.evaluate(both).values["a"]["mse"][0]


def test_a_constant_node_weight_is_simulated_quantized(tmp_path):
    weight = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["W"], name="const", value=numpy_helper.from_array(weight, "W")),
        helper.make_node("Conv", ["x", "W"], ["y"], name="conv"),
    ]
    model = opset21(helper.make_graph(nodes, "g", [value("x", [1, 3, 8, 8])], [value("y", None)]))
    cal = CalibrationNode("conv:input1", "W", [("conv", 1)], WEIGHT, "int8", weight.min(axis=(1, 2, 3)),
                          weight.max(axis=(1, 2, 3)), True, 0)  # fmt: skip
    CalibratedModel(model, {cal.name: cal}).save(tmp_path / "calibrated_model.onnx")
    save_samples([{"x": RNG.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(2)], tmp_path / "data")
    evaluator = Evaluator(EvalSpec(str(tmp_path / "calibrated_model.onnx"), str(tmp_path / "data")))
    for qtype in ("int8", "int16"):
        simulated = evaluator.evaluate({cal.name: qtype}).values["y"]["mse"]
        assert np.array_equal(simulated, score_exported(evaluator, {cal.name: qtype}).values["y"]["mse"])
        assert simulated.min() > 0  # quantized, not float


def test_the_winner_is_rescored_on_its_exported_model(vad_workdir, tmp_path):
    result = api.search(vad_workdir, target=0.87, budget=4, out=tmp_path / "out", num_samples=2,
                        strategies=("baselines", "threshold_sweep"))  # fmt: skip
    written = strict_json(tmp_path / "out" / "result.json")["winner_exported"]
    assert set(written) == set(result.state.evaluator.outputs)
    for out, row in written.items():
        assert row["simulated"] == row["exported"] == result.winner.scores.aggregate(out, "cosine-similarity")


def test_an_export_that_scores_differently_is_an_internal_error(toy_workdir, tmp_path):
    result = api.search(toy_workdir, target=0.9, budget=2, out=tmp_path / "out", strategies=("baselines",))
    state = result.state
    assert check_exported(state, result.winner)  # as searched: the same numbers
    cal = next(c for c in state.model.calibration.values() if c.tensor_type == FEATURE)
    rmin, rmax = cal.rmin, cal.rmax
    try:  # the model the winner would be exported from now clips harder than the one it was scored on
        state.model.set_thresholds(cal.name, rmin * 0.25, rmax * 0.25)
        with pytest.raises(InternalError, match="but its simulation scored"):
            check_exported(state, result.winner)
    finally:
        state.model.set_thresholds(cal.name, rmin, rmax)


# --- the cost model, the worker cache, the profile identity ----------------------------------------


def test_cost_takes_k_from_the_reduction_axis(tmp_path):
    b3 = numpy_helper.from_array(np.ones((2, 8, 5), np.float32), "B3")  # MatMul: [batch, K=8, N=5]
    bt = numpy_helper.from_array(np.ones((5, 8), np.float32), "Bt")  # Gemm transB: [N=5, K=8]
    b = numpy_helper.from_array(np.ones((8, 5), np.float32), "B")  # Gemm: [K=8, N=5]
    nodes = [
        helper.make_node("MatMul", ["x3", "B3"], ["m"], name="matmul"),
        helper.make_node("Gemm", ["x2", "Bt"], ["g1"], name="gemm_t", transB=1),
        helper.make_node("Gemm", ["x2", "B"], ["g2"], name="gemm"),
    ]
    graph = helper.make_graph(nodes, "g", [value("x3", [2, 3, 8]), value("x2", [3, 8])],
                              [value("m", None), value("g1", None), value("g2", None)], [b3, bt, b])  # fmt: skip
    costs = op_costs(CalibratedModel(opset21(graph), {}), {})
    assert costs == {"matmul": 2 * 3 * 5 * 8, "gemm_t": 3 * 5 * 8, "gemm": 3 * 5 * 8}


def test_a_recalibrated_model_is_not_evaluated_stale(tmp_path):
    model = reciprocal_model()
    first = calibrated(model, reciprocal_samples(), tmp_path / "a")
    int8 = {n: "int8" for n in evaluator_of(first).model.calibration}
    before = evaluator_of(first).evaluate(int8).values["y"]["mse"]
    wide = [{"x": s["x"] * 4} for s in reciprocal_samples()]  # a 4x wider range: coarser int8 steps
    save_samples(wide, tmp_path / "wide")
    calibrate(tmp_path / "a" / "float.onnx", tmp_path / "wide", first, force=True)
    after = evaluator_of(first)
    assert after.model.calibration["mul:input0"].threshold == pytest.approx(4.0, rel=1e-6)
    assert not np.array_equal(after.evaluate(int8).values["y"]["mse"], before)


def test_a_profile_is_identified_by_what_it_forces():
    forced = frozenset({("Conv", 1), ("MatMul", 1)})
    assert HardwareProfile("a", forced).identity == HardwareProfile("b", forced).identity
    assert HardwareProfile("a", forced).identity != HardwareProfile("a", forced | {("Resize", 0)}).identity
    assert get_profile("generic").identity != get_profile("hmct").identity


def test_a_value_short_of_its_target_by_less_than_the_sixth_decimal_shows_the_miss():
    """0.99999999 against 0.9999999999 would print as 1.000000 next to "no": the table gives its digits."""
    gap = 0.9999999999 - 0.99999999
    console = Console(record=True, width=120)
    console.print(scores_table("t", {"hn": {"value": 0.99999999, "gap": gap, "target": "cosine >= 0.9999999999"}}))
    text = console.export_text()
    assert "0.99999999 " in text and "1.000000" not in text, text
