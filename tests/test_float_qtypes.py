"""float16 / float32 qtypes on silero VAD (its STFT power spectrum is what all-int16 cannot carry): the
float16 round trip against onnxruntime's Cast, simulation == export, save/load and quant_config round
trips, the chip cost model's ordering, all-float16 in the baselines, and the float_fallback strategy.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from autoprec.api import search
from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.cost import ChipCost
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator, Simulator, session_options
from autoprec.evaluate.exported import score_exported
from autoprec.hardware import get_profile
from autoprec.ir import WEIGHT, CalibratedModel
from autoprec.ir.float16 import FLOAT16_MAX, float16_nodes, float16_round
from autoprec.quant_config import from_quant_config, to_quant_config

COSINE = "cosine-similarity"


@pytest.fixture(scope="module")
def vad(vad_workdir) -> Evaluator:
    return Evaluator(EvalSpec(str(vad_workdir / "calibrated_model.onnx"), str(vad_workdir / "calibration_data")))


def mixed(model: CalibratedModel) -> dict[str, str]:
    """Every qtype on real VAD nodes: float16 on the STFT power path and two weights, float32 elsewhere."""
    names = list(model.calibration)
    assignment = {n: ["int8", "int16", "float16", "float32"][i % 4] for i, n in enumerate(names)}
    weights = [n for n in names if model.calibration[n].tensor_type == WEIGHT]
    assignment.update({"/stft/Add:input0": "float16", "/stft/Add:input1": "float32", weights[0]: "float16"})
    assignment[weights[1]] = "float32"
    return assignment


def test_float16_round_trip_equals_onnxruntime_cast_and_saturates():
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 2**32, 500_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = np.array([65504, 65519, 65520, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8, 0.0, -0.0], dtype=np.float32)
    x = np.concatenate([patterns[np.isfinite(patterns)], edges, rng.standard_normal(10_000).astype(np.float32)])
    graph = helper.make_graph(
        [], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("n/dequantized", TensorProto.FLOAT, [None])],
    )  # fmt: skip
    graph.node.extend(float16_nodes("n", "x", graph))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    exported = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    simulated = float16_round(x)
    assert np.array_equal(exported[0].view(np.uint32), simulated.view(np.uint32))  # bit for bit, subnormals too
    assert simulated[-10_000 - 7] == FLOAT16_MAX and simulated[-10_000 - 6] == -FLOAT16_MAX  # 1e6 saturates
    assert np.isfinite(simulated).all()


def test_float_qtypes_simulate_bit_exactly_and_round_trip(vad, tmp_path):
    model = vad.model
    assignment = mixed(model)
    proto = model.to_onnx(assignment)
    assert sum(n.op_type == "Cast" for n in proto.graph.node) == 2 * sum(q == "float16" for q in assignment.values())
    simulated = Simulator(model).session(assignment)
    exported = ort.InferenceSession(proto.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])
    for i in range(vad.num_samples):
        for a, b in zip(simulated.run(None, vad.sample(i)), exported.run(None, vad.sample(i))):
            assert np.array_equal(a, b)
    onnx.save(proto, tmp_path / "mixed.onnx")
    back = CalibratedModel.load(tmp_path / "mixed.onnx")
    assert back.assignment() == assignment
    for name, cal in model.calibration.items():
        assert np.array_equal(back.calibration[name].rmax, cal.rmax)
    # float on the STFT power spectrum is what lifts all-int16 (speech_probs ~0.85 on this data)
    ceiling = baseline_assignments(model, get_profile("generic"))["all-int16"]
    low = vad.evaluate(ceiling).values["speech_probs"][COSINE].mean()
    power = {"/stft/Add:input0": "float16", "/stft/Add:input1": "float16"}
    lifted = vad.evaluate({**ceiling, **power}).values["speech_probs"][COSINE].mean()
    assert lifted > 0.99 > low


def test_quant_config_round_trip_with_float_qtypes(vad, tmp_path):
    model, profile = vad.model, get_profile("generic")
    assignment = {**dict.fromkeys(model.calibration, "int8"), "/stft/Add:input0": "float16",
                  "/stft/Add:input1": "float16", "/encoder.0/Conv:input0": "float32"}  # fmt: skip
    config = to_quant_config(model, assignment, profile)
    assert config["node_config"]["/stft/Add"] == {"qtype": "float16"}
    assert config["node_config"]["/encoder.0/Conv"] == {"qtype": "float32"}  # qtype: the feature inputs (HMCT)
    assert from_quant_config(model, json.loads(json.dumps(config)), profile) == assignment
    no_half = tmp_path / "nohalf.json"
    no_half.write_text(json.dumps({"name": "nohalf", "forced_int8": {}, "qtypes": ["int8", "int16", "float32"]}))
    with pytest.raises(UserError, match="does not allow float16"):
        from_quant_config(model, {"node_config": {"/stft/Add": {"input0": "float16"}}}, get_profile(str(no_half)))


def test_chip_cost_orders_the_lattice(vad, tmp_path):
    model, profile = vad.model, get_profile("generic")
    chip = ChipCost(model, profile.costs, vad.sample(0))
    base = baseline_assignments(model, profile)
    scale = chip.extra(base["all-int16"])
    assert chip.extra(base["all-int8"]) == 0
    for node in ("/encoder.1/Conv:input0", "/stft/Add:input0"):  # a MAC op and an elementwise op
        costs = [chip.extra({**base["all-int8"], node: q}) / scale for q in ("int8", "int16", "float16", "float32")]
        assert costs[0] == 0 < costs[1] < costs[2] < costs[3], (node, costs)
    assert chip.extra(base["all-float16"]) > scale
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "forced_int8": {}, "costs": {"mac": {"float32": 0.5}}}))
    with pytest.raises(UserError, match="not decrease"):
        get_profile(str(bad))


def test_baseline_reports_all_float16_when_the_profile_allows_it(vad_workdir, run_cli, tmp_path):
    assert "all-float16" in json.loads(_stdout(run_cli, vad_workdir))
    no_float = tmp_path / "int_only.json"
    no_float.write_text(json.dumps({"name": "int_only", "forced_int8": {}, "qtypes": ["int8", "int16"]}))
    assert "all-float16" not in json.loads(_stdout(run_cli, vad_workdir, "--profile", no_float))


def _stdout(run_cli, *args) -> str:
    result = run_cli("baseline", *args, "--json")
    assert result[0] == 0, result[1]
    return result.stdout


def test_float_fallback_meets_vad_at_0_99(vad_workdir, tmp_path):
    result = search(vad_workdir, target=0.99, budget=35, out=tmp_path / "out")
    assert result.met and result.state.results.one_minimal
    assert len(result.candidates) <= 35
    best = result.best
    assert "float16" in best.changes().values()
    assert result.state.results.fallback.items  # the ranked float items the bisection chose
    exported = score_exported(result.state.evaluator, best.assignment)
    for output in result.state.evaluator.outputs:
        assert exported.values[output][COSINE].mean() == best.scores.values[output][COSINE].mean() >= 0.99
    config = json.loads((tmp_path / "out" / "quant_config.json").read_text())
    assert "float16" in json.dumps(config["node_config"])


def test_profiles_say_what_each_input_may_take(vad, tmp_path):
    model = vad.model
    weight, feature = model.calibration["/encoder.1/Conv:input1"], model.calibration["/encoder.1/Conv:input0"]
    generic, hmct = get_profile("generic"), get_profile("hmct")
    assert generic.allowed(model, weight) == ("int8", "int16", "float16", "float32")
    assert hmct.allowed(model, weight) == ("int8", "ec", "float16", "float32")  # forced int8: ec or float
    assert hmct.allowed(model, feature) == ("int8", "int16", "float16", "float32")
    path = tmp_path / "chip.json"
    path.write_text(json.dumps({"name": "chip", "forced_int8": {"Conv": [1]}, "qtypes": ["int8", "int16", "float32"],
                                "op_qtypes": {"Add": {"0": ["int8"]}}}))  # fmt: skip
    chip = get_profile(str(path))
    assert chip.allowed(model, weight) == ("int8", "ec", "float32")
    assert chip.allowed(model, model.calibration["/stft/Add:input0"]) == ("int8",)
    assert chip.float_qtype(model, feature) == "float32"
    assert "all-float16" not in baseline_assignments(model, chip)
    assert chip.identity != get_profile("hmct").identity  # what it allows is part of what it is


def test_float_fallback_resumes_on_the_same_path(vad_workdir, tmp_path):
    whole = search(vad_workdir, target=0.99, budget=35, out=tmp_path / "whole")
    search(vad_workdir, target=0.99, budget=12, out=tmp_path / "cut")  # stopped mid-search
    resumed = search(vad_workdir, target=0.99, budget=35, out=tmp_path / "cut", resume=True)
    assert [c.assignment for c in resumed.candidates] == [c.assignment for c in whole.candidates]
    assert resumed.state.evaluator.model_runs < whole.state.evaluator.model_runs  # the first 12 came from the ledger
