"""Core engine on real models: baselines, units, evaluator exactness, QDQ import, save/reload,
int16 re-scaling, calibration methods, integer inputs, parallel evaluation and the CLI.

Every test runs onnxruntime on a real trained model (layout detector, silero VAD, magika) fed
with realistic inputs, and asserts on the numbers it produces.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from autoprec import demo
from autoprec.calibrate import CalibrationSettings, calibrate, prepare_float_model
from autoprec.data import load_samples, model_inputs
from autoprec.engine.baselines import baseline_assignments
from autoprec.engine.units import raise_units, search_units
from autoprec.evaluate import EvalSpec, Evaluator, Simulator
from autoprec.evaluate.metrics import METRICS, compare
from autoprec.hardware import PROFILES, get_profile
from autoprec.ir import FEATURE, WEIGHT, CalibratedModel
from autoprec.ir.qdq_import import from_proto

COSINE = "cosine-similarity"
QTYPE_OF = {
    np.dtype(t): q for t, q in ((np.int8, "int8"), (np.uint8, "int8"), (np.int16, "int16"), (np.uint16, "int16"))
}


def spec_of(workdir: Path, num_samples: int | None = None) -> EvalSpec:
    return EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data"), num_samples)


def mean_cosines(scores, outputs) -> dict[str, float]:
    return {out: scores.aggregate(out, COSINE) for out in outputs}


def reference_options() -> ort.SessionOptions:
    """A plain onnxruntime session for a static QDQ model: no QDQ->integer fusion, one thread."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return options


def run_onnx(model: onnx.ModelProto | str, samples, outputs=None) -> list[list[np.ndarray]]:
    source = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(source, reference_options(), providers=["CPUExecutionProvider"])
    return [session.run(outputs, sample) for sample in samples]


def mixed_assignment(model: CalibratedModel) -> dict[str, str]:
    """Features cycle int8 / int16 / float32, weights alternate int16 / int8 (every weight quantized)."""
    assignment, features, weights = {}, 0, 0
    for name, cal in model.calibration.items():
        if cal.tensor_type == WEIGHT:
            assignment[name] = ("int16", "int8")[weights % 2]
            weights += 1
        else:
            assignment[name] = ("int8", "int16", "float32")[features % 3]
            features += 1
    assert set(assignment.values()) == {"int8", "int16", "float32"}
    return assignment


# --- baselines on the layout detector --------------------------------------------------------


@pytest.fixture(scope="module")
def layout_baselines(layout_workdir):
    """profile -> baseline name -> Scores on the 4 calibration pages (shared assignments run once)."""
    evaluator = Evaluator(spec_of(layout_workdir))
    per_profile = {p: baseline_assignments(evaluator.model, PROFILES[p]) for p in ("generic", "hmct")}
    unique: list[dict[str, str]] = []
    for assignments in per_profile.values():
        unique.extend(a for a in assignments.values() if a not in unique)
    scored = evaluator.evaluate_many(unique)
    results = {
        p: {name: scored[unique.index(a)] for name, a in assignments.items()} for p, assignments in per_profile.items()
    }
    return evaluator, per_profile, results


@pytest.mark.parametrize("profile", ["generic", "hmct"])
def test_all_int16_beats_all_int8_on_every_layout_output(layout_baselines, profile):
    evaluator, _, results = layout_baselines
    assert len(evaluator.outputs) == 8
    int8 = mean_cosines(results[profile]["all-int8"], evaluator.outputs)
    int16 = mean_cosines(results[profile]["all-int16"], evaluator.outputs)
    for out in evaluator.outputs:
        assert int16[out] > int8[out] + 0.05, (out, int8[out], int16[out])
        assert int16[out] > 0.99, (out, int16[out])
    assert min(int8.values()) < 0.6, "all-int8 should clearly fail on the layout detector"


def test_real_int16_is_at_least_all_int16_under_hmct(layout_baselines):
    evaluator, assignments, results = layout_baselines
    hmct = assignments["hmct"]
    forced = [n for n, q in hmct["all-int16"].items() if q == "int8"]
    assert forced, "hmct keeps Conv weights (and more) int8"
    assert all(evaluator.model.op_type(evaluator.model.calibration[n]) in {"Conv", "ConvTranspose", "Resize",
               "GridSample", "MatMul"} for n in forced)  # fmt: skip
    real = mean_cosines(results["hmct"]["real-int16"], evaluator.outputs)
    int16 = mean_cosines(results["hmct"]["all-int16"], evaluator.outputs)
    for out in evaluator.outputs:
        assert real[out] >= int16[out], (out, real[out], int16[out])
    # a freshly calibrated model has no pre-quantized weights: generic all-int16 is the ceiling itself
    assert assignments["generic"]["all-int16"] == assignments["generic"]["real-int16"]
    assert all(q == "int16" for q in hmct["real-int16"].values())


# --- search units ----------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["layout", "vad", "magika"])
@pytest.mark.parametrize("profile", ["generic", "hmct"])
def test_raising_every_unit_is_all_int16(model_name, profile, request):
    model = CalibratedModel.load(request.getfixturevalue(f"{model_name}_workdir") / "calibrated_model.onnx")
    hw = get_profile(profile)
    baselines = baseline_assignments(model, hw)
    units = search_units(model, hw)
    covered = Counter(name for unit in units for name in unit.calibration)
    raisable = {n for n, c in model.calibration.items() if hw.can_raise(model, c)}
    assert set(covered) == raisable, "units must cover exactly the raisable calibration nodes"
    assert max(covered.values()) == 1, "a calibration node belongs to one unit"
    assert all(unit.nodes and unit.name == unit.nodes[0] for unit in units)
    assert raise_units(baselines["all-int8"], units) == baselines["all-int16"]
    assert raise_units(baselines["all-int8"], []) == baselines["all-int8"]


@pytest.mark.parametrize("profile", ["generic", "hmct"])
def test_raised_units_score_exactly_like_all_int16(vad_workdir, profile):
    evaluator = Evaluator(spec_of(vad_workdir))
    hw = get_profile(profile)
    baselines = baseline_assignments(evaluator.model, hw)
    raised = raise_units(baselines["all-int8"], search_units(evaluator.model, hw))
    by_units, all_int16, all_int8 = evaluator.evaluate_many([raised, baselines["all-int16"], baselines["all-int8"]])
    for out in evaluator.outputs:
        for metric in METRICS:
            np.testing.assert_array_equal(by_units.values[out][metric], all_int16.values[out][metric])
    assert by_units.aggregate("hn", COSINE) > all_int8.aggregate("hn", COSINE) + 0.05


# --- the evaluator is the exported model ----------------------------------------------------


def assert_evaluator_is_exported_model(workdir: Path, num_samples: int) -> None:
    model = CalibratedModel.load(workdir / "calibrated_model.onnx")
    samples = load_samples(workdir / "calibration_data", model_inputs(model.model), num_samples)
    assignment = mixed_assignment(model)
    outputs = [o.name for o in model.model.graph.output]

    simulated = Simulator(model).session(assignment)
    exported = run_onnx(model.to_onnx(assignment), samples, outputs)
    for sample, reference in zip(samples, exported):
        for name, got, want in zip(outputs, simulated.run(outputs, sample), reference):
            assert got.shape == want.shape
            diff = float(np.max(np.abs(got.astype(np.float64) - want)))
            assert diff == 0.0, f"{name}: evaluator differs from the exported QDQ model by {diff}"

    # and the Evaluator's scores are those of the exported model against the float model
    floats = run_onnx(model.to_onnx({n: "float32" for n in model.calibration}), samples, outputs)
    scores = Evaluator(spec_of(workdir, num_samples)).evaluate(assignment)
    for k, name in enumerate(outputs):
        for metric in (COSINE, "mse", "chebyshev"):
            expected = [compare(f[k], q[k])[metric] for f, q in zip(floats, exported)]
            np.testing.assert_array_equal(scores.values[name][metric], expected)


def test_evaluator_is_bit_exact_with_exported_qdq_magika(magika_workdir):
    assert_evaluator_is_exported_model(magika_workdir, 4)


def test_evaluator_is_bit_exact_with_exported_qdq_vad(vad_workdir):
    assert_evaluator_is_exported_model(vad_workdir, 4)


def test_evaluator_is_bit_exact_with_exported_qdq_layout(layout_workdir):
    assert_evaluator_is_exported_model(layout_workdir, 1)


# --- QDQ models made by onnxruntime's own quantizer -------------------------------------------


class _Reader(CalibrationDataReader):
    def __init__(self, samples):
        self._items = iter(samples)

    def get_next(self):
        return next(self._items, None)


def ort_quantize(name: str, folder: Path, **extra) -> Path:
    """`name`'s float model (prepared: folded, opset 21) quantized by onnxruntime.quantize_static (QDQ)."""
    float_path = folder / f"{name}-float.onnx"
    if not float_path.exists():
        onnx.save(prepare_float_model(onnx.load(demo.fetch_model(name))), float_path)
    out = folder / f"{name}-ort-qdq-{len(list(folder.glob('*-qdq-*.onnx')))}.onnx"
    per_channel = extra.pop("per_channel", True)
    quantize_static(
        str(float_path),
        str(out),
        _Reader(demo.make_samples(name, 4)),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt16,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        extra_options=extra,
    )
    return out


def qdq_in_file(path: Path) -> dict[str, tuple[onnx.NodeProto, bool]]:
    """DQ node name prefix -> (DQ node, fed by a stored integer initializer) for every Q/DQ point."""
    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    found = {}
    for dq in model.graph.node:
        if dq.op_type != "DequantizeLinear":
            continue
        stored = dq.input[0] in inits
        if stored or producers[dq.input[0]].op_type == "QuantizeLinear":
            found[dq.name.removesuffix("_DequantizeLinear")] = (dq, stored)
    return found


@pytest.fixture(scope="module")
def ort_magika(tmp_path_factory):
    """magika quantized by onnxruntime: int16 activations, int8 per-channel weights, float biases."""
    folder = tmp_path_factory.mktemp("ort-qdq")
    # QDQDisableWeightAdjustForInt32Bias: onnxruntime's own weight-scale adjustment crashes on per-channel scales
    common = {"QuantizeBias": False, "QDQDisableWeightAdjustForInt32Bias": True}
    return {
        "pairs": ort_quantize("magika", folder, AddQDQPairToWeight=True, **common),
        "folded": ort_quantize("magika", folder, **common),
    }


@pytest.mark.parametrize("kind", ["pairs", "folded"])
def test_ort_qdq_model_loads_with_its_qtypes_and_scales(ort_magika, kind):
    path = ort_magika[kind]
    in_file = qdq_in_file(path)
    stored = sum(s for _, s in in_file.values())
    assert (stored == 0) if kind == "pairs" else (stored >= 3), stored
    model = CalibratedModel.load(path)
    assert len(model.calibration) == len(in_file)
    assert set(model.calibration) == set(in_file)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    for name, (dq, is_stored) in in_file.items():
        cal = model.calibration[name]
        zero_point = inits[dq.input[2]]
        assert cal.qtype == QTYPE_OF[zero_point.dtype], name
        assert cal.folded == is_stored, name
        # the same quantization grid (exactly: see test_ort_qdq_model_round_trips_exactly); onnxruntime
        # may store an all-positive int16 range with zero point -32768, which autoprec renders as uint16, zp 0
        params = cal.quant_params()
        scale = inits[dq.input[1]].reshape(-1).astype(np.float64)
        info = np.iinfo(zero_point.dtype)
        zp = zero_point.reshape(-1).astype(np.float64)
        np.testing.assert_allclose(params.scale, scale, rtol=1e-6, err_msg=name)
        low, high = params.clip_range()
        np.testing.assert_allclose(low, (info.min - zp) * scale, rtol=1e-6, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(high, (info.max - zp) * scale, rtol=1e-6, atol=1e-12, err_msg=name)
    features = [c for c in model.calibration.values() if c.tensor_type == FEATURE]
    assert features and all(c.qtype == "int16" and not c.folded for c in features)
    matmul_weights = [
        c
        for c in model.calibration.values()
        if c.tensor_type == WEIGHT and model.op_type(c) in {"Conv", "Gemm", "MatMul"}
    ]
    assert len(matmul_weights) >= 3 and all(c.qtype == "int8" for c in matmul_weights)
    assert "bytes" not in {c.tensor for c in model.calibration.values()}


@pytest.mark.parametrize("kind", ["pairs", "folded"])
def test_ort_qdq_weights_folded_flag_and_raisability(ort_magika, kind):
    model = CalibratedModel.load(ort_magika[kind])
    weights = [c for c in model.calibration.values() if c.tensor_type == WEIGHT]
    assert weights
    for cal in weights:
        assert cal.folded == (kind == "folded")
        if kind == "folded":
            assert not PROFILES["generic"].can_raise(model, cal)
            assert not PROFILES["hmct"].can_raise(model, cal)
    for cal in model.calibration.values():
        if cal.tensor_type == FEATURE:
            assert PROFILES["generic"].can_raise(model, cal)
    real = baseline_assignments(model, PROFILES["generic"])["real-int16"]
    assert all(real[c.name] == ("int8" if kind == "folded" else "int16") for c in weights)
    if kind == "pairs":  # weights came back as float with a Q/DQ pair: the float graph holds them
        floats = {i.name: i for i in model.model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
        assert all(c.tensor in floats for c in weights)


@pytest.mark.parametrize("kind", ["pairs", "folded"])
def test_ort_qdq_model_is_evaluable(ort_magika, kind, demo_data):
    path = ort_magika[kind]
    evaluator = Evaluator(EvalSpec(str(path), str(demo_data("magika"))))
    model = evaluator.model
    own, *baselines = evaluator.evaluate_many(
        [model.assignment(), *baseline_assignments(model, PROFILES["generic"]).values()]
    )
    for scores in (own, *baselines):
        for out in evaluator.outputs:
            assert np.isfinite(scores.values[out][COSINE]).all()
    assert own.aggregate("target_label", COSINE) > 0.99  # int16 activations, int8 weights
    int8 = dict(zip(baseline_assignments(model, PROFILES["generic"]), baselines))["all-int8"]
    # int8 activations (thresholds re-scaled from the file's int16 ones) err far more than the file's own int16
    assert int8.aggregate("target_label", "mse") > 10 * own.aggregate("target_label", "mse")


@pytest.mark.parametrize("kind", ["pairs", "folded"])
def test_ort_qdq_model_round_trips_exactly(ort_magika, kind, demo_data):
    path = ort_magika[kind]
    model = CalibratedModel.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    for name, (dq, _) in qdq_in_file(path).items():
        scale = inits[dq.input[1]].reshape(-1).astype(np.float32)
        np.testing.assert_array_equal(model.calibration[name].quant_params().scale, scale, err_msg=name)
    samples = load_samples(demo_data("magika"), model_inputs(model.model))
    simulated = Simulator(model).session(model.assignment())
    for sample, reference in zip(samples, run_onnx(str(path), samples)):
        np.testing.assert_array_equal(simulated.run(None, sample)[0], reference[0])


def test_ort_qdq_model_with_int32_bias_loads(tmp_path, demo_data):
    path = ort_quantize("magika", tmp_path, per_channel=False)  # QuantizeBias defaults to True
    assert any(init.data_type == onnx.TensorProto.INT32 for init in onnx.load(str(path)).graph.initializer), (
        "onnxruntime stores quantized biases as int32"
    )
    model = CalibratedModel.load(path)
    assert all(c.qtype in {"int8", "int16"} for c in model.calibration.values())
    scores = Evaluator(EvalSpec(str(path), str(demo_data("magika")))).evaluate(model.assignment())
    assert scores.aggregate("target_label", COSINE) > 0.99


def test_ort_qdq_model_with_quantized_graph_output(tmp_path, demo_data):
    path = ort_quantize("vad", tmp_path, QuantizeBias=False, QDQDisableWeightAdjustForInt32Bias=True)
    model = CalibratedModel.load(path)
    assert [o.name for o in model.model.graph.output] == ["speech_probs", "hn", "cn"]
    # a pair that only feeds a model output is folded away: autoprec keeps model outputs float (HMCT does too)
    on_outputs = {n for n, (dq, _) in qdq_in_file(path).items() if dq.output[0] in {"speech_probs", "hn", "cn"}}
    assert on_outputs and set(model.calibration) == set(qdq_in_file(path)) - on_outputs
    scores = Evaluator(EvalSpec(str(path), str(demo_data("vad")))).evaluate(model.assignment())
    assert np.isfinite(scores.values["speech_probs"][COSINE]).all()


# --- save / reload ---------------------------------------------------------------------------


def test_save_reload_keeps_qtypes_and_thresholds(vad_workdir, tmp_path):
    model = CalibratedModel.load(vad_workdir / "calibrated_model.onnx")
    features = [n for n, c in model.calibration.items() if c.tensor_type == FEATURE]
    weights = [n for n, c in model.calibration.items() if c.tensor_type == WEIGHT]
    model.set_qtype(features[0], "int16")
    model.set_qtype(features[1], "float32")
    model.set_qtype(weights[0], "int16")
    model.set_qtype(weights[1], "float32")
    model.set_thresholds(features[2], -0.25, 0.75)  # stays int8
    model.set_thresholds(features[0], -3.5, 3.5)  # int16
    model.set_thresholds(features[1], -1.0, 2.0)  # float32: only the metadata keeps it
    cal = model.calibration[weights[0]]
    model.set_thresholds(weights[0], cal.rmin * 0.5, cal.rmax * 0.5)  # per channel
    path = tmp_path / "edited.onnx"
    model.save(path)

    again = CalibratedModel.load(path)
    assert again.assignment() == model.assignment()
    for name, cal in model.calibration.items():
        got = again.calibration[name]
        np.testing.assert_array_equal(got.rmin, cal.rmin, err_msg=name)
        np.testing.assert_array_equal(got.rmax, cal.rmax, err_msg=name)
        assert (got.tensor, got.tensor_type, got.axis, got.symmetric, got.folded) == (
            cal.tensor, cal.tensor_type, cal.axis, cal.symmetric, cal.folded
        )  # fmt: skip
        assert got.consumers == cal.consumers
    assert again.settings == model.settings and again.settings["method"] == "max"

    # the file itself is a standard QDQ model with exactly those qtypes and scales
    saved = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in saved.graph.initializer}
    quantize = {n.name for n in saved.graph.node if n.op_type == "QuantizeLinear"}
    for name, qtype in model.assignment().items():
        assert (f"{name}/QuantizeLinear" in quantize) == (qtype != "float32"), name
        if qtype != "float32":
            assert QTYPE_OF[inits[f"{name}/zero_point"].dtype] == qtype
    assert inits[f"{features[2]}/scale"] == np.float32(0.75 / 127)
    assert inits[f"{features[0]}/scale"] == np.float32(3.5 / 32767)

    # a QDQ file without autoprec's metadata still yields the qtypes and (symmetric) thresholds
    del saved.metadata_props[:]
    plain = from_proto(saved)
    in_graph = {n: q for n, q in model.assignment().items() if q != "float32"}
    assert plain.assignment() == in_graph
    for name in in_graph:
        want = np.atleast_1d(np.maximum(np.abs(model.calibration[name].rmin), np.abs(model.calibration[name].rmax)))
        got = np.atleast_1d(np.maximum(np.abs(plain.calibration[name].rmin), np.abs(plain.calibration[name].rmax)))
        used = want > 0  # an all-zero channel is stored with scale 1 (its values are 0 whatever the scale)
        np.testing.assert_allclose(got[used], want[used], rtol=1e-6, err_msg=name)


# --- int8 -> int16 re-scales from the thresholds ---------------------------------------------


def test_int16_weight_is_rescaled_from_thresholds(vad_workdir):
    model = CalibratedModel.load(vad_workdir / "calibrated_model.onnx")
    name = max(
        (n for n, c in model.calibration.items() if c.tensor_type == WEIGHT),
        key=lambda n: int(np.prod(model.initializers[model.calibration[n].tensor].dims)),
    )
    cal = model.calibration[name]
    assert cal.qtype == "int8" and cal.axis is not None
    weight = numpy_helper.to_array(model.initializers[cal.tensor]).astype(np.float32)
    int8, int16 = cal.quant_params("int8"), cal.quant_params("int16")
    magnitude = np.maximum(np.abs(cal.rmin), np.abs(cal.rmax))
    used = magnitude > 0  # all-zero channels get scale 1
    assert used.sum() > 0.9 * used.size
    np.testing.assert_allclose(int8.scale[used], magnitude[used] / 127, rtol=1e-6)
    np.testing.assert_allclose(int16.scale[used], magnitude[used] / 32767, rtol=1e-6)

    fq8, fq16 = int8.fake_quantize(weight), int16.fake_quantize(weight)
    assert not np.array_equal(fq8, fq16)
    err8, err16 = np.abs(fq8 - weight).mean(), np.abs(fq16 - weight).mean()
    assert 128 < err8 / err16 < 512, err8 / err16  # ~258x: 2**8 more levels over the same range
    assert np.abs(fq16 - weight).max() <= int16.scale.max() / 2 * (1 + 1e-5)

    # the exported int16 model carries the int16 scale, and onnxruntime's Q/DQ gives the same weight
    exported = model.to_onnx({name: "int16"})
    inits = {i.name: numpy_helper.to_array(i) for i in exported.graph.initializer}
    np.testing.assert_array_equal(inits[f"{name}/scale"], int16.scale)
    assert inits[f"{name}/zero_point"].dtype == np.int16
    graph = onnx.helper.make_graph(
        [n for n in exported.graph.node if n.name.startswith(f"{name}/")],
        "weight",
        [],
        [onnx.helper.make_tensor_value_info(f"{name}/dequantized", onnx.TensorProto.FLOAT, None)],
        [exported.graph.initializer[k] for k, i in enumerate(exported.graph.initializer)
         if i.name in {cal.tensor, f"{name}/scale", f"{name}/zero_point"}],
    )  # fmt: skip
    tiny = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)])
    np.testing.assert_array_equal(run_onnx(tiny, [{}])[0][0], fq16)


# --- calibration methods ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def vad_by_method(tmp_path_factory, demo_data):
    folder = tmp_path_factory.mktemp("methods")
    return {
        method: calibrate(
            demo.fetch_model("vad"), demo_data("vad"), folder / method, CalibrationSettings(method=method)
        )
        for method in ("max", "percentile", "kl", "mse")
    } | {"folder": folder}


def test_calibration_methods_produce_models(vad_by_method):
    folder = vad_by_method["folder"]
    for method in ("max", "percentile", "kl", "mse"):
        loaded = CalibratedModel.load(folder / method / "calibrated_model.onnx")
        assert loaded.settings["method"] == method
        assert json.loads((folder / method / "calibration_settings.json").read_text())["method"] == method
        assert set(loaded.calibration) == set(vad_by_method["max"].calibration)
        for cal in loaded.calibration.values():
            assert np.all(np.isfinite(cal.rmin)) and np.all(np.isfinite(cal.rmax)) and cal.threshold > 0
        scores = Evaluator(spec_of(folder / method)).evaluate({n: "int16" for n in loaded.calibration})
        assert scores.aggregate("hn", COSINE) > 0.9
    by_max, by_percentile = vad_by_method["max"].calibration, vad_by_method["percentile"].calibration
    lower = 0
    for name, cal in by_max.items():
        if cal.tensor_type == FEATURE:
            assert by_percentile[name].threshold <= cal.threshold, name
            lower += by_percentile[name].threshold < cal.threshold
        else:  # weights never depend on the activation method
            np.testing.assert_array_equal(by_percentile[name].rmax, cal.rmax)
    assert lower >= 1, "percentile calibration clipped nothing: it behaves like max"


def test_mse_thresholds_clip_below_max(vad_by_method):
    by_max, by_mse = vad_by_method["max"].calibration, vad_by_method["mse"].calibration
    features = [n for n, c in by_max.items() if c.tensor_type == FEATURE]
    assert all(by_mse[n].threshold <= by_max[n].threshold + 1e-6 for n in features)
    assert sum(by_mse[n].threshold < 0.99 * by_max[n].threshold for n in features) >= len(features) // 2


def test_kl_calibration_differs_from_max(vad_by_method):
    by_max, by_kl = vad_by_method["max"].calibration, vad_by_method["kl"].calibration
    features = [n for n, c in by_max.items() if c.tensor_type == FEATURE]
    assert any(by_kl[n].threshold != by_max[n].threshold for n in features)


# --- integer inputs ---------------------------------------------------------------------------


def test_magika_int32_input_is_never_quantized(magika_workdir):
    model = CalibratedModel.load(magika_workdir / "calibrated_model.onnx")
    (spec,) = model_inputs(model.model)
    assert (spec.name, spec.dtype) == ("bytes", np.dtype(np.int32))
    inferred = onnx.shape_inference.infer_shapes(model.model)
    elem = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input,
                                                           *inferred.graph.output)}  # fmt: skip
    elem |= {i.name: i.data_type for i in inferred.graph.initializer}
    integer_tensors = {name for name, t in elem.items() if t in (onnx.TensorProto.INT32, onnx.TensorProto.INT64)}
    assert "bytes" in integer_tensors
    for cal in model.calibration.values():
        assert elem.get(cal.tensor) == onnx.TensorProto.FLOAT, (cal.name, cal.tensor, elem.get(cal.tensor))
    exported = model.to_onnx({n: "int8" for n in model.calibration})
    assert not [n for n in exported.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in integer_tensors]

    evaluator = Evaluator(spec_of(magika_workdir))
    baselines = baseline_assignments(evaluator.model, PROFILES["generic"])
    int8, int16 = evaluator.evaluate_many([baselines["all-int8"], baselines["all-int16"]])
    assert int16.aggregate("target_label", COSINE) > 0.999
    assert int8.aggregate("target_label", "mse") > 10 * int16.aggregate("target_label", "mse")


# --- parallel evaluation ---------------------------------------------------------------------


def test_parallel_evaluator_gives_identical_scores(vad_workdir):
    serial = Evaluator(spec_of(vad_workdir), jobs=1)
    parallel = Evaluator(spec_of(vad_workdir), jobs=2)
    assignments = [*baseline_assignments(serial.model, PROFILES["hmct"]).values(), mixed_assignment(serial.model)]
    for one, two in zip(serial.evaluate_many(assignments), parallel.evaluate_many(assignments)):
        assert one.to_json() == two.to_json()
    # one assignment: in this process, its samples over 2 threads
    single_serial = serial.evaluate(assignments[-1])
    single_parallel = parallel.evaluate(assignments[-1])
    assert single_serial.to_json() == single_parallel.to_json()
    assert len(single_parallel.values["speech_probs"][COSINE]) == serial.num_samples == 4
    subset = parallel.evaluate(assignments[0], indices=[3, 1])
    np.testing.assert_array_equal(
        subset.values["hn"][COSINE], serial.evaluate(assignments[0]).values["hn"][COSINE][[3, 1]]
    )


# --- the command line ------------------------------------------------------------------------


def _no_constant(name: str):
    raise ValueError(f"not valid JSON: {name}")


def test_cli_calibrate_and_baseline_json(tmp_path, demo_data, run_cli):
    model = tmp_path / "vad.onnx"
    shutil.copyfile(demo.fetch_model("vad"), model)
    data = demo_data("vad")
    code, stderr = run_cli("calibrate", model, "--data", data, "-o", tmp_path / "model_output", "--method", "max")
    assert code == 0, stderr
    out = tmp_path / "model_output"
    assert sorted(p.name for p in out.iterdir()) == ["calibrated_model.onnx", "calibration_data",
                                                      "calibration_settings.json"]  # fmt: skip
    assert sorted(p.name for p in (out / "calibration_data").iterdir()) == ["c", "h", "input"]
    for name in ("input", "h", "c"):
        files = sorted(p.name for p in (out / "calibration_data" / name).iterdir())
        assert files == [f"{i}.npy" for i in range(4)]
        for i in range(4):
            np.testing.assert_array_equal(np.load(out / "calibration_data" / name / f"{i}.npy"),
                                          np.load(data / name / f"{i}.npy"))  # fmt: skip
    settings = json.loads((out / "calibration_settings.json").read_text())
    assert settings["method"] == "max" and settings["selected_by"] == "user" and settings["num_samples"] == 4
    assert not list(tmp_path.glob(".autoprec-*"))

    result = run_cli("baseline", "model_output", "--json", cwd=tmp_path)
    assert result[0] == 0, result[1]
    report = json.loads(result.stdout, parse_constant=_no_constant)
    assert set(report) == {"all-int8", "all-int16", "real-int16", "all-float16"}  # generic offers float16
    for scores in report.values():
        assert set(scores) == {"speech_probs", "hn", "cn"}
        for metrics in scores.values():
            assert set(metrics) == set(METRICS)
            assert all(len(values) == 4 for values in metrics.values())
    for output in ("hn", "cn"):  # speech_probs: the near-silent clip's power spectrum is lost at int16 too
        int8 = np.mean(report["all-int8"][output][COSINE])
        int16 = np.mean(report["all-int16"][output][COSINE])
        assert int16 > int8 + 0.05, (output, int8, int16)
    # the numbers are the Evaluator's, exactly
    evaluator = Evaluator(spec_of(out))
    baselines = baseline_assignments(evaluator.model, PROFILES["generic"])
    for name, scores in zip(baselines, evaluator.evaluate_many(list(baselines.values()))):
        assert report[name] == json.loads(json.dumps(scores.to_json()))
