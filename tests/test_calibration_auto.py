"""`calibrate --method auto` (the default: the scheme by measurement, max ranges as the search's start, the best
method's ranges as the best-int8 baseline), per-node alternative ranges and the threshold_tuning strategy, on the
real silero VAD model (4 one-second clips) and magika (8 files)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from autoprec import demo
from autoprec.api import search
from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.calibration.methods import label
from autoprec.engine.baselines import baseline_assignments
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.exported import score_exported
from autoprec.hardware import get_profile
from autoprec.ir import FEATURE, CalibratedModel
from autoprec.quant_config import from_quant_config, to_quant_config

COSINE = "cosine-similarity"


def spec_of(workdir) -> EvalSpec:
    return EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data"))


def worst_output(scores, outputs) -> float:
    return min(scores.aggregate(o, COSINE) for o in outputs)


@pytest.fixture(scope="module")
def vad_auto(tmp_path_factory, demo_data):
    """vad calibrated with the default settings (auto)."""
    out = tmp_path_factory.mktemp("auto") / "model_output"
    calibrate(demo.fetch_model("vad"), demo_data("vad"), out, CalibrationSettings(method="auto"))
    return out


def test_auto_keeps_the_best_all_int8_of_every_method_and_scheme(vad_auto, tmp_path, demo_data):
    settings = json.loads((vad_auto / "calibration_settings.json").read_text())
    trials = settings["auto_trials"]
    assert settings["selected_by"] == "auto"
    assert {(t["scheme"], t["label"]) for t in trials} == {
        (scheme, name) for scheme in ("symmetric", "asymmetric")
        for name in ("max", "percentile-99.99", "percentile-99.999", "percentile-99.9999", "kl", "mse")
    }  # fmt: skip
    # recompute every trial independently: an explicit calibration, all-int8 through the evaluator
    recomputed = {}
    for trial in trials:
        method, _, value = trial["label"].partition("-")
        explicit = CalibrationSettings(method, float(value or 99.999), asymmetric=trial["scheme"] == "asymmetric")
        out = tmp_path / f"{trial['scheme']}-{trial['label']}"
        model = calibrate(demo.fetch_model("vad"), demo_data("vad"), out, explicit)
        evaluator = Evaluator(spec_of(out))
        scores = evaluator.evaluate({n: "int8" for n in model.calibration})
        recomputed[(trial["scheme"], trial["label"])] = worst_output(scores, evaluator.outputs)
        assert trial["score"] == pytest.approx(recomputed[(trial["scheme"], trial["label"])], abs=1e-6), trial
    scheme = "asymmetric" if settings["asymmetric"] else "symmetric"
    chosen = (scheme, settings["best_int8"])
    assert recomputed[chosen] == pytest.approx(max(recomputed.values()), abs=1e-6)
    assert recomputed[chosen] > recomputed[("symmetric", "max")] + 0.01, "auto should beat the old default on vad"
    # the model's own ranges (all-int8, where the search starts) are that scheme's max; best-int8 is the best
    evaluator = Evaluator(spec_of(vad_auto))
    baselines = baseline_assignments(evaluator.model, get_profile("generic"))
    own, best = (worst_output(evaluator.evaluate(baselines[b]), evaluator.outputs) for b in ("all-int8", "best-int8"))
    assert own == pytest.approx(recomputed[(scheme, "max")], abs=1e-6)
    assert best == pytest.approx(recomputed[chosen], abs=1e-6)


def test_choice_recorded_in_settings_and_quant_config(vad_auto):
    model = CalibratedModel.load(vad_auto / "calibrated_model.onnx")
    settings = json.loads((vad_auto / "calibration_settings.json").read_text())
    assert model.settings == settings
    features = [c for c in model.calibration.values() if c.tensor_type == FEATURE]
    assert all(c.symmetric == (not settings["asymmetric"]) for c in features)
    assert settings["method"] == "max" and settings["best_int8"] != "max"
    for cal in features:  # every feature node's own thresholds are the max range (the search's start)
        assert (float(cal.rmin), float(cal.rmax)) == tuple(cal.alternatives["max"])
    config = to_quant_config(model, model.assignment(), get_profile("generic"))
    assert config["model_config"]["activation"] == {
        "calibration_type": settings["method"],
        "max_percentile": round(settings["percentile"] / 100, 8),
        "per_channel": True,
        "asymmetric": settings["asymmetric"],
    }


def test_alternatives_survive_save_load_and_export(vad_auto, tmp_path):
    model = CalibratedModel.load(vad_auto / "calibrated_model.onnx")
    features = [c for c in model.calibration.values() if c.tensor_type == FEATURE]
    assert all(len(c.alternatives) == 6 for c in features)
    differing = next(c for c in features if c.alternatives["kl"] != c.alternatives["max"])
    model.save(tmp_path / "same.onnx")
    again = CalibratedModel.load(tmp_path / "same.onnx")
    assert {n: c.alternatives for n, c in again.calibration.items()} == {
        n: c.alternatives for n, c in model.calibration.items()
    }
    # a range choice is exported as that node's thresholds: Q/DQ scale and metadata; the alternatives stay
    from autoprec.model_io import save_model

    save_model(model.to_onnx({differing.name: "int8@kl"}), tmp_path / "tuned.onnx")
    tuned = CalibratedModel.load(tmp_path / "tuned.onnx")
    cal = tuned.calibration[differing.name]
    assert (float(cal.rmin), float(cal.rmax)) == tuple(differing.alternatives["kl"])
    assert cal.qtype == "int8" and cal.alternatives == differing.alternatives
    np.testing.assert_array_equal(cal.quant_params().scale, differing.quant_params("int8@kl").scale)
    # int16 quantizes over the max range whatever the int8 range (no clipping at 16 bits), also after export
    low, high = differing.alternatives["max"]
    expected = dataclasses.replace(differing, rmin=np.float64(low), rmax=np.float64(high), alternatives={})
    for node in (differing, cal):
        got, want = node.quant_params("int16"), expected.quant_params("int16")
        assert (got.scale, got.zero_point) == (want.scale, want.zero_point)


def test_threshold_tuning_is_simulated_as_exported_and_in_quant_config(vad_auto, tmp_path):
    result = search(
        vad_auto, target=0.9, budget=8, strategies=("baselines", "threshold_tuning"), out=tmp_path / "out"
    )  # fmt: skip
    tuned = [c for c in result.candidates if c.strategy == "threshold_tuning"]
    assert tuned, "threshold tuning proposed no range on vad"
    evaluator = result.state.evaluator
    int8 = result.state.known(result.state.baselines["all-int8"])
    for candidate in tuned:
        ranges = {n: q for n, q in candidate.assignment.items() if "@" in q}
        assert ranges and candidate.cost == 0.0, "an int8 range change costs nothing"
        exported = score_exported(evaluator, candidate.assignment)
        assert exported.to_json() == candidate.scores.to_json()
    best = min(tuned, key=lambda c: c.rank_key())
    assert worst_output(best.scores, evaluator.outputs) > worst_output(int8.scores, evaluator.outputs)
    # the quant_config carries the chosen ranges beside node_config, and reads back to the same assignment
    config = to_quant_config(evaluator.model, best.assignment, get_profile("generic"))
    assert not config["node_config"] and len(config["threshold_config"]) >= 1
    for node, inputs in config["threshold_config"].items():
        for key, spec in inputs.items():
            cal = evaluator.model.find_input_calibration(node, int(key[5:]))
            assert best.assignment[cal.name] == f"int8@{spec['method']}"
            assert (spec["min"], spec["max"]) == cal.alternatives[spec["method"]]
    assert from_quant_config(evaluator.model, config, get_profile("generic")) == best.assignment
    summary = json.loads((tmp_path / "out" / "candidates.json").read_text())
    shown = [c for c in summary if c["ranges"]]
    assert shown, "candidates show the chosen ranges"
    assert all(c["changes"][n] == f"int8@{label}" for c in shown for n, label in c["ranges"].items())


def test_explicit_method_and_profiles(tmp_path, demo_data, run_cli):
    data = demo_data("vad")
    code, stderr = run_cli("calibrate", demo.fetch_model("vad"), "--data", data, "-o", tmp_path / "p",
                           "--method", "percentile", "--percentile", "99.99")  # fmt: skip
    assert code == 0, stderr
    settings = json.loads((tmp_path / "p" / "calibration_settings.json").read_text())
    assert (settings["method"], settings["percentile"], settings["asymmetric"], settings["selected_by"]) == (
        "percentile", 99.99, False, "user"
    )  # fmt: skip
    code, stderr = run_cli("calibrate", demo.fetch_model("vad"), "--data", data, "-o", tmp_path / "k",
                           "--method", "kl", "--asymmetric")  # fmt: skip
    assert code == 0, stderr
    model = CalibratedModel.load(tmp_path / "k" / "calibrated_model.onnx")
    assert model.settings["method"] == "kl" and model.settings["asymmetric"] is True
    assert not any(c.symmetric for c in model.calibration.values() if c.tensor_type == FEATURE)
    chip = tmp_path / "chip.json"
    chip.write_text(json.dumps({"name": "chip", "forced_int8": {}, "asymmetric": False,
                                "calibration_methods": ["max", "mse"]}))  # fmt: skip
    code, stderr = run_cli("calibrate", demo.fetch_model("vad"), "--data", data, "-o", tmp_path / "c",
                           "--profile", chip, "--method", "auto")  # fmt: skip
    assert code == 0, stderr
    trials = json.loads((tmp_path / "c" / "calibration_settings.json").read_text())["auto_trials"]
    assert [(t["scheme"], t["label"]) for t in trials] == [("symmetric", "max"), ("symmetric", "mse")]
    for extra, problem in ((["--asymmetric"], "no asymmetric activations"), (["--method", "kl"], "does not calibrate")):
        code, stderr = run_cli("calibrate", demo.fetch_model("vad"), "--data", data, "-o", tmp_path / "x",
                               "--profile", chip, *extra)  # fmt: skip
        assert code == 2 and problem in stderr, stderr


def test_auto_is_the_default_and_threshold_tuning_opt_in():
    """auto's scheme with max ranges gave the cheapest winners (benchmarks/RESULTS.md); threshold tuning lowered no
    winner's cost: opt-in."""
    from autoprec.engine.driver import load_strategies
    from autoprec.engine.settings import DEFAULT_STRATEGIES

    assert CalibrationSettings().method == "auto"
    assert "threshold_tuning" not in DEFAULT_STRATEGIES
    assert [s.name for s in load_strategies(["baselines", "threshold_tuning"])] == ["baselines", "threshold_tuning"]


def test_best_int8_passing_ends_the_search_the_sweep_starts_from_max(vad_auto, tmp_path):
    evaluator = Evaluator(spec_of(vad_auto))
    baselines = baseline_assignments(evaluator.model, get_profile("generic"))
    own, best = (worst_output(evaluator.evaluate(baselines[b]), evaluator.outputs) for b in ("all-int8", "best-int8"))
    assert best > own + 0.01
    between = search(vad_auto, target=round((own + best) / 2, 4), budget=6, out=tmp_path / "between")
    assert between.met and between.winner.assignment == baselines["best-int8"] and between.winner.cost == 0.0
    assert [c.strategy for c in between.candidates] == ["baselines", "baselines"] and between.state.used == 2
    above = search(vad_auto, target=round(best + 0.02, 4), budget=8, out=tmp_path / "above",
                   strategies=("baselines", "threshold_sweep"))  # fmt: skip
    swept = [c for c in above.candidates if c.strategy == "threshold_sweep"]
    assert swept and all(q in ("int8", "int16") for c in swept for q in c.assignment.values()), "max ranges + int16"


def test_auto_rejects_a_method_whose_all_int8_is_nan_on_any_calibration_file(tmp_path):
    """magika: kl ranges give NaN outputs on some files; scored on the first 4, auto chose symmetric kl (0.975)."""
    from autoprec.calibration.auto import all_int8
    from autoprec.data import save_samples
    from autoprec.evaluate.simulator import Simulator

    samples = demo.make_samples("magika", 8)
    save_samples(samples, tmp_path / "data")
    model = calibrate(demo.fetch_model("magika"), tmp_path / "data", tmp_path / "out")
    outputs = [o.name for o in model.model.graph.output]
    session = Simulator(model).session(all_int8(model, "kl"))
    assert not all(np.all(np.isfinite(session.run(outputs, s)[0])) for s in samples)
    kl = {t["scheme"]: t["score"] for t in model.settings["auto_trials"] if t["label"] == "kl"}
    assert kl == {"symmetric": None, "asymmetric": None} and model.settings["best_int8"] != "kl"
    session = Simulator(model).session(all_int8(model, model.settings["best_int8"]))
    assert all(np.all(np.isfinite(session.run(outputs, s)[0])) for s in samples)


def test_a_nan_output_never_passes():
    """A calibration that clips a denominator to 0 can make outputs NaN: such a candidate must fail."""
    from autoprec.engine.target import build_target
    from autoprec.evaluate import Scores

    scores = Scores({"out": {COSINE: np.array([0.999, np.nan])}})
    target = build_target(["out"], 0.9)
    assert not target.passes(scores) and target.failing(scores) == ["out"]


def test_fast_histogram_counts_as_numpy_does(vad_auto):
    """The calibration histograms (bincount) against np.histogram, on vad's real inputs and outputs."""
    from autoprec.calibration.methods import NUM_BINS, _histogram
    from autoprec.data import load_samples, model_inputs
    from autoprec.evaluate.simulator import Simulator

    model = CalibratedModel.load(vad_auto / "calibrated_model.onnx")
    sample = load_samples(vad_auto / "calibration_data", model_inputs(model.model), 1)[0]
    outputs = [o.name for o in model.model.graph.output]
    arrays = [*sample.values(), *Simulator(model).session(None).run(outputs, sample)]
    values = [v for v in arrays if v.dtype.kind == "f"]
    assert sum(v.size for v in values) > 10000
    for value in [*values, np.full(10, 2.5, np.float32), np.array([1.0, np.nan, 3.0], np.float32)]:
        low, high = float(np.nanmin(value)), float(np.nanmax(value))
        expected = np.histogram(value[np.isfinite(value)], NUM_BINS, range=(low, high))[0]
        got = _histogram(value, low, high)
        assert got.sum() == expected.sum() and np.abs(got - expected).sum() <= max(2, value.size // 5000)


def test_cli_calibrates_with_auto_by_default(tmp_path, demo_data, run_cli):
    code, stderr = run_cli("calibrate", demo.fetch_model("vad"), "--data", demo_data("vad"), "-o", tmp_path / "d")
    assert code == 0, stderr
    settings = json.loads((tmp_path / "d" / "calibration_settings.json").read_text())
    assert settings["selected_by"] == "auto" and settings["method"] == "max" and len(settings["auto_trials"]) == 12
    scheme = "asymmetric" if settings["asymmetric"] else "symmetric"
    scores = {(t["scheme"], t["label"]): t["score"] for t in settings["auto_trials"]}
    assert scores[(scheme, settings["best_int8"])] == max(s for s in scores.values() if s is not None)


def test_start_best_keeps_the_best_all_int8_as_the_models_own(vad_auto, tmp_path, demo_data, run_cli):
    """`--start best` (auto before issue 14's default; issue 10's vad measurements use it): the best all-int8's ranges
    are the model's own, so no separate best-int8 baseline."""
    model = calibrate(demo.fetch_model("vad"), demo_data("vad"), tmp_path / "b", CalibrationSettings(start="best"))
    default = CalibratedModel.load(vad_auto / "calibrated_model.onnx")
    assert model.settings["auto_trials"] == default.settings["auto_trials"]
    chosen = label(model.settings["method"], model.settings["percentile"])
    assert chosen == model.settings["best_int8"] == default.settings["best_int8"] != "max"
    assert all((float(c.rmin), float(c.rmax)) == tuple(c.alternatives[chosen])
               for c in model.calibration.values() if c.tensor_type == FEATURE)  # fmt: skip
    assert "best-int8" not in baseline_assignments(model, get_profile("generic"))
    code, stderr = run_cli("calibrate", demo.fetch_model("vad"), "--data", demo_data("vad"), "-o", tmp_path / "x",
                           "--start", "kl")  # fmt: skip
    assert code == 2 and "--start" in stderr, stderr
