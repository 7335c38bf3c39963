"""Error compensation ("ec") on real models under the hmct profile: the ONNX rewrite, its simulation,
what it buys over all-int16, save/reload, and the error_compensation strategy end to end.

Models: the layout detector (Conv weights, 2 Resize, 8 outputs; the session fixture) and the PP-OCR text
detector (Conv, ConvTranspose, 6 Resize; calibrated here on 2 rendered pages).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from autoprec import demo
from autoprec.api import search
from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.data import load_samples, model_inputs, save_samples
from autoprec.engine.baselines import baseline_assignments
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator, Simulator, session_options
from autoprec.evaluate.metrics import compare
from autoprec.hardware import get_profile
from autoprec.ir import EC, SPLIT_LOW, WEIGHT, CalibratedModel
from autoprec.ir.ec import residual_params
from autoprec.ir.qdq_import import from_proto
from autoprec.quant_config import from_quant_config

COSINE = "cosine-similarity"
HMCT = get_profile("hmct")
STRATEGIES = ["baselines", "threshold_sweep", "error_compensation", "prune"]


@pytest.fixture(scope="module")
def ocr_det_workdir(tmp_path_factory):
    """model_output folder of the PP-OCR text detector calibrated on 2 rendered pages."""
    data = tmp_path_factory.mktemp("ocr_det-data") / "data"
    save_samples(demo.make_samples("ocr_det", 2), data)
    out = tmp_path_factory.mktemp("ocr_det-work") / "model_output"
    calibrate(demo.fetch_model("ocr_det"), data, out, CalibrationSettings(method="max"))
    return out


def workdir_of(request, name: str):
    return request.getfixturevalue(f"{name}_workdir")


def load(workdir, num_samples: int = 2):
    model = CalibratedModel.load(workdir / "calibrated_model.onnx")
    samples = load_samples(workdir / "calibration_data", model_inputs(model.model), num_samples)
    return model, samples, [o.name for o in model.model.graph.output]


def run(proto: onnx.ModelProto, samples, outputs) -> list[list[np.ndarray]]:
    session = ort.InferenceSession(proto.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    return [session.run(outputs, s) for s in samples]


def ec_everywhere(model: CalibratedModel, weights_only: bool = False) -> dict[str, str]:
    """all-int16 (hmct) with ec on every compensable calibration node (or only the weights)."""
    kinds = {WEIGHT} if weights_only else {WEIGHT, "feature"}
    compensated = {n: EC for n in HMCT.compensable(model) if model.calibration[n].tensor_type in kinds}
    return {**baseline_assignments(model, HMCT)["all-int16"], **compensated}


# --- (a) the rewrite is a real ONNX graph ---------------------------------------------------------


@pytest.mark.parametrize(
    "name, ops", [("layout", {"Conv", "Resize"}), ("ocr_det", {"Conv", "ConvTranspose", "Resize"})]
)
def test_ec_rewrite_runs_in_onnxruntime(request, name, ops):
    model, samples, outputs = load(workdir_of(request, name), 1)
    compensable = HMCT.compensable(model)
    assert {model.op_type(model.calibration[n]) for n in compensable} == ops
    proto = model.to_onnx(ec_everywhere(model))
    onnx.checker.check_model(proto)
    graph = proto.graph
    nodes = {n.name: n for n in graph.node}
    producers = {out: n for n in graph.node for out in n.output}
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    for node in graph.node:  # topologically sorted
        assert all(i in available for i in node.input), node.name
        available.update(node.output)
    for cal_name in compensable:
        cal = model.calibration[cal_name]
        (consumer, index), main = cal.consumers[0], nodes[cal.consumers[0][0]]
        low, add = nodes[consumer + SPLIT_LOW], nodes[consumer + "_split_add"]
        assert low.op_type == main.op_type and low.attribute == main.attribute
        assert add.op_type == "Add" and sorted(add.input) == sorted([main.output[0], low.output[0]])
        assert list(add.output) == list(model.nodes[consumer].output)  # consumers and outputs keep their tensor
        assert main.input[index] == f"{cal_name}/dequantized"
        assert nodes[f"{cal_name}/QuantizeLinear"].input[1] == f"{cal_name}/scale"
        residual_dq = producers[low.input[index]]
        residual_q = producers[residual_dq.input[0]]
        assert (residual_dq.op_type, residual_q.op_type) == ("DequantizeLinear", "QuantizeLinear")
        int8, residual = cal.quant_params("int8"), residual_params(model, cal_name)
        assert np.all(residual.scale <= int8.scale / 2 / 127 * (1 + 1e-4))  # |r| <= s8/2: ~127x finer than int8
        if cal.tensor_type == WEIGHT:
            assert residual_q.input[0] in {i.name for i in graph.initializer}
            assert low.input[0] == main.input[0]  # the same DQ'd activation
            assert len(low.input) == 2 <= len(main.input)  # a bias stays in the main branch only
        else:
            sub = producers[residual_q.input[0]]
            assert sub.op_type == "Sub" and list(sub.input) == [cal.tensor, f"{cal_name}/dequantized"]
            assert list(low.input[1:]) == list(main.input[1:])
    (got,) = run(proto, samples, outputs)
    (floats,) = run(model.to_onnx({n: "float32" for n in model.calibration}), samples, outputs)
    for out, f, q in zip(outputs, floats, got):
        assert q.shape == f.shape and np.isfinite(q).all(), out
        assert compare(f, q)[COSINE] > 0.999, out


# --- (b) ec recovers what the forced-int8 tensors lose ---------------------------------------------


@pytest.mark.parametrize("name", ["layout", "ocr_det"])
def test_ec_brings_every_output_to_real_int16(request, name):
    workdir = workdir_of(request, name)
    evaluator = Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data"), 2))
    model = evaluator.model
    baselines = baseline_assignments(model, HMCT)
    int16, ec, real = evaluator.evaluate_many([baselines["all-int16"], ec_everywhere(model), baselines["real-int16"]])
    for out in evaluator.outputs:
        cos = [s.aggregate(out, COSINE) for s in (int16, ec, real)]
        print(f"{name} {out}: all-int16 {cos[0]:.6f}  ec {cos[1]:.6f}  real-int16 {cos[2]:.6f}")
        assert cos[1] > cos[0], (out, cos)
        assert 1 - cos[1] < 0.5 * (1 - cos[0]), (out, cos)  # at least half of the all-int16 loss recovered
        assert abs(cos[1] - cos[2]) < 0.25 * (cos[2] - cos[0]), (out, cos)  # and close to the ceiling
    # the same on the outputs themselves: ec lands nearer the real-int16 outputs than all-int16 does
    _, samples, outputs = load(workdir, 2)
    int16_out, ec_out, real_out = (run(model.to_onnx(a), samples, outputs) for a in
                                   (baselines["all-int16"], ec_everywhere(model), baselines["real-int16"]))  # fmt: skip
    for k, out in enumerate(outputs):
        far = sum(float(np.linalg.norm(a[k] - r[k])) for a, r in zip(int16_out, real_out))
        near = sum(float(np.linalg.norm(e[k] - r[k])) for e, r in zip(ec_out, real_out))
        assert near < far, (out, near, far)


# --- (c) the Simulator runs the rewrite itself: bit-exact with the export ------------------------------


@pytest.mark.parametrize("name", ["layout", "ocr_det"])
def test_simulated_weight_ec_is_the_rewrite_bit_exactly(request, name):
    model, samples, outputs = load(workdir_of(request, name), 2)
    simulator = Simulator(model)
    weights_ec = ec_everywhere(model, weights_only=True)
    small = [n for n, q in weights_ec.items() if q == EC and model.weight_values(model.calibration[n]).size < 256]
    assert list(weights_ec.values()).count(EC) >= 10 and small  # small weights stay in the proto: covered too

    # float features, and the hmct assignment (where a float rounding difference could flip a later quantizer's
    # rounding, a whole int8 step at a forced-int8 Resize): the simulation is the exported model's computation
    exact = {**{n: "float32" for n in model.calibration}, **{n: q for n, q in weights_ec.items() if q == EC}}
    for assignment in (exact, weights_ec):
        session = simulator.session(assignment)
        for sample, rewritten in zip(samples, run(model.to_onnx(assignment), samples, outputs)):
            for out, sim, real in zip(outputs, session.run(outputs, sample), rewritten):
                assert np.array_equal(sim, real), out


def test_feature_ec_simulates_bit_exactly(layout_workdir):
    model, samples, outputs = load(layout_workdir, 1)
    resize = {n: EC for n in HMCT.compensable(model) if model.op_type(model.calibration[n]) == "Resize"}
    assignment = {**baseline_assignments(model, HMCT)["all-int16"], **resize}
    (rewritten,) = run(model.to_onnx(assignment), samples, outputs)
    for out, sim, real in zip(outputs, Simulator(model).session(assignment).run(outputs, samples[0]), rewritten):
        np.testing.assert_array_equal(sim, real, err_msg=out)


# --- the IR: set_qtype, save and reload ------------------------------------------------------------


def test_ec_round_trips_through_save_and_load(layout_workdir, tmp_path):
    model, samples, outputs = load(layout_workdir, 1)
    compensable = HMCT.compensable(model)
    for name in compensable:
        model.set_qtype(name, EC)
    model.save(tmp_path / "ec.onnx")
    saved = onnx.load(str(tmp_path / "ec.onnx"))
    assert sum(n.name.endswith(SPLIT_LOW) for n in saved.graph.node) == len(compensable)
    reloaded = CalibratedModel.load(tmp_path / "ec.onnx")
    assert reloaded.assignment() == model.assignment()
    assert [n.name for n in reloaded.model.graph.node] == [n.name for n in model.model.graph.node]
    np.testing.assert_array_equal(run(reloaded.to_onnx(), samples, outputs)[0][0], run(saved, samples, outputs)[0][0])
    del saved.metadata_props[:]  # without autoprec's record the rewrite is still recognized
    assert from_proto(saved).assignment() == model.assignment()

    add_input = next(n for n, c in model.calibration.items() if model.op_type(c) == "Add")
    with pytest.raises(UserError, match="error compensation"):
        model.set_qtype(add_input, EC)
    with pytest.raises(UserError, match="error compensation"):
        model.to_onnx({add_input: EC})
    with pytest.raises(ValueError, match="no quantization parameters"):
        model.calibration[compensable[0]].quant_params(EC)


# --- (d) the strategy reaches a target all-int16 cannot --------------------------------------------


def test_error_compensation_strategy_reaches_a_target_all_int16_misses(ocr_det_workdir, tmp_path):
    target = 0.999
    out_dir = tmp_path / "out"
    result = search(ocr_det_workdir, target=target, budget=30, profile="hmct", strategies=STRATEGIES, out=out_dir,
                    jobs=2, num_samples=2, sensitivity_samples=1)  # fmt: skip
    state = result.state
    output = state.target.outputs[0].output
    int16 = state.known(state.baselines["all-int16"])
    real = state.evaluator.evaluate(state.baselines["real-int16"])
    values = {"all-int16": int16.scores.aggregate(output, COSINE), "real-int16": real.aggregate(output, COSINE)}
    print(f"ocr_det {output}: {values}, target {target}")
    assert values["all-int16"] < target < values["real-int16"], values
    assert state.results.ceiling_fails == [output]

    assert result.met
    best = result.best
    compensated = [n for n, q in best.assignment.items() if q == EC]
    assert compensated and set(compensated) <= set(HMCT.compensable(state.model))
    assert len(compensated) < len(HMCT.compensable(state.model))  # the fewest top-ranked, not all
    assert best.cost < state.cost(ec_everywhere(state.model))
    config = json.loads((out_dir / "quant_config.json").read_text())
    entries = [v for spec in config["node_config"].values() for k, v in spec.items() if k.startswith("input")]
    assert EC in entries
    assert from_quant_config(state.model, config, HMCT) == best.assignment
    # the ranking pass is analysis (one run per compensable node: sensitivity mode "drop"), not a candidate
    assert state.sensitivity_runs >= len(HMCT.compensable(state.model))
    assert (out_dir / "sensitivity-compensable-drop.json").exists()
    assert any(c.strategy == "error_compensation" for c in result.candidates)

    # the winner as the compiler would get it: the real rewrite, run in onnxruntime, meets the target too
    model, samples, outputs = load(ocr_det_workdir, 2)
    floats = run(model.to_onnx({n: "float32" for n in model.calibration}), samples, outputs)
    rewritten = run(model.to_onnx(best.assignment), samples, outputs)
    cosine = np.mean([compare(f[0], q[0])[COSINE] for f, q in zip(floats, rewritten)])
    simulated = best.scores.aggregate(output, COSINE)
    print(f"winner: {len(compensated)} ec, cost {best.cost:.3f}, simulated {simulated:.6f}, rewritten {cosine:.6f}")
    assert abs(cosine - simulated) < 1e-3  # rounding noise only (see test_simulated_weight_ec_equals_the_rewrite)
    assert cosine > values["all-int16"] + 0.5 * (target - values["all-int16"])

    # a resumed search replays the strategy from the ledger and the cached ranking: nothing runs again
    again = search(ocr_det_workdir, target=target, budget=30, profile="hmct", strategies=STRATEGIES, out=out_dir,
                   resume=True, jobs=2, num_samples=2, sensitivity_samples=1)  # fmt: skip
    assert again.best.assignment == best.assignment
    assert again.state.evaluator.model_runs == 0 and again.state.sensitivity_runs == 0
