"""Unsigned symmetric activations (issue 10): under the `symmetric` profile a tensor that is never negative
(silero VAD's STFT magnitude, its post-ReLU encoder activations) is quantized over [0, T] as uint8/uint16 with
zero point 0, a signed one stays symmetric int8 around 0; `symmetric-signed` keeps every tensor signed. The
exported QDQ model carries exactly those Q/DQ parameters and scores what the simulation scored.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from autoprec.calibrate import CalibrationSettings, calibrate
from autoprec.demo import fetch_model
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.evaluate.exported import score_exported
from autoprec.hardware import get_profile
from autoprec.ir import CalibratedModel
from autoprec.ir.qdq_export import to_onnx
from autoprec.model_io import save_model
from autoprec.quant_config import to_quant_config

MAGNITUDE = "/encoder.0/Conv:input0"  # Sqrt of the STFT power: never negative
AUDIO = "/stft/Conv:input0"  # the waveform: signed
COSINE = "cosine-similarity"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, demo_data):
    """profile -> model_output folder of VAD calibrated with the default method (max) on the 4 demo clips."""
    folder = tmp_path_factory.mktemp("vad-unsigned")
    for profile in ("symmetric", "symmetric-signed"):
        calibrate(fetch_model("vad"), demo_data("vad"), folder / profile, CalibrationSettings("max", profile=profile))
    return {profile: folder / profile for profile in ("symmetric", "symmetric-signed")}


def _evaluator(workdir) -> Evaluator:
    return Evaluator(EvalSpec(str(workdir / "calibrated_model.onnx"), str(workdir / "calibration_data")))


def test_non_negative_tensor_gets_zero_to_max_with_zero_point_0(calibrated):
    unsigned, signed = (_evaluator(calibrated[p]).model for p in ("symmetric", "symmetric-signed"))
    cal, reference = unsigned.calibration[MAGNITUDE], signed.calibration[MAGNITUDE]
    high = float(reference.rmax)  # the symmetric threshold T: the tensor's max
    assert not cal.symmetric and float(cal.rmin) == 0.0 and float(cal.rmax) == pytest.approx(high)
    int8, int16 = cal.quant_params("int8"), cal.quant_params("int16")
    assert int8.zero_point.dtype == np.uint8 and int16.zero_point.dtype == np.uint16
    assert int8.zero_point == 0 and int16.zero_point == 0
    assert int8.scale == np.float32(high / 255) and int16.scale == np.float32(high / 65535)
    # signed-only chip: the same tensor on [-T, T], half the resolution
    assert reference.symmetric and reference.quant_params("int8").scale == np.float32(high / 127)
    assert reference.quant_params("int8").zero_point.dtype == np.int8
    # a signed tensor stays symmetric int8 around 0 under both profiles
    for model in (unsigned, signed):
        audio = model.calibration[AUDIO]
        params = audio.quant_params("int8")
        assert audio.symmetric and params.zero_point.dtype == np.int8 and params.zero_point == 0
        assert float(audio.rmin) == -float(audio.rmax) < 0
    changed = [n for n, c in unsigned.calibration.items() if c.tensor_type == "feature" and not c.symmetric]
    assert len(changed) >= 6  # STFT power and magnitude, the ReLU outputs of the encoder, the LSTM's input
    assert unsigned.settings["unsigned"] and not signed.settings["unsigned"]
    activation = to_quant_config(unsigned, {}, get_profile("symmetric"))["model_config"]["activation"]
    assert activation["unsigned"] and not activation["asymmetric"]
    assert "unsigned" not in to_quant_config(signed, {}, get_profile("symmetric-signed"))["model_config"]["activation"]


def test_export_writes_uint_zero_point_0_and_scores_as_simulated(calibrated, tmp_path):
    evaluator = _evaluator(calibrated["symmetric"])
    assignment = {**evaluator.model.assignment(), MAGNITUDE: "int16", "/stft/Add:input0": "float16"}
    exported = to_onnx(evaluator.model, assignment)
    inits = {i.name: numpy_helper.to_array(i) for i in exported.graph.initializer}
    for name, dtype in ((MAGNITUDE, np.uint16), ("/encoder.1/Conv:input0", np.uint8), (AUDIO, np.int8)):
        assert inits[f"{name}/zero_point"].dtype == dtype and inits[f"{name}/zero_point"] == 0
    save_model(evaluator.model.to_onnx(assignment, metadata=False), tmp_path / "bare.onnx")
    bare = CalibratedModel.load(tmp_path / "bare.onnx").calibration[MAGNITUDE]  # read back from the graph alone
    assert not bare.symmetric and bare.qtype == "int16" and float(bare.rmin) == 0.0
    assert bare.quant_params().scale == evaluator.model.calibration[MAGNITUDE].quant_params("int16").scale
    simulated = evaluator.evaluate(assignment)
    on_export = score_exported(evaluator, assignment)
    for output in evaluator.outputs:
        assert np.array_equal(on_export.values[output][COSINE], simulated.values[output][COSINE])


def test_unsigned_all_int8_beats_signed(calibrated):
    """The sign bit a never-negative tensor wastes: all-int8 scores better with it back as resolution."""
    worst = {}
    for profile, workdir in calibrated.items():
        evaluator = _evaluator(workdir)
        scores = evaluator.evaluate(evaluator.model.assignment())
        worst[profile] = min(float(scores.values[o][COSINE].mean()) for o in evaluator.outputs)
    assert worst["symmetric"] > worst["symmetric-signed"] + 0.02, worst


def test_auto_keeps_unsigned_alternatives(demo_data, tmp_path):
    """`--method auto` under `symmetric`: every range a never-negative node keeps starts at 0, mse's fitted to
    255 steps (a wider clip than the signed 127-step fit), the other thresholds the signed ones."""
    ranges = {}
    for profile in ("symmetric", "symmetric-signed"):
        settings = CalibrationSettings(method="auto", profile=profile)
        model = calibrate(fetch_model("vad"), demo_data("vad"), tmp_path / profile, settings)
        ranges[profile] = model.calibration["/encoder.1/Conv:input0"].alternatives
        assert model.settings["unsigned"] == (profile == "symmetric")
    unsigned, signed = ranges["symmetric"], ranges["symmetric-signed"]
    assert set(unsigned) == set(signed) and all(low == 0.0 for low, _ in unsigned.values())
    assert signed["max"][0] == -signed["max"][1] < 0  # signed: [-T, T]
    assert unsigned["max"][1] == signed["max"][1] and unsigned["mse"][1] > signed["mse"][1]
    assert unsigned["percentile-99.99"][1] == signed["percentile-99.99"][1]


def test_profile_json_unsigned(tmp_path):
    path = tmp_path / "chip.json"
    path.write_text('{"name": "chip", "forced_int8": {}, "asymmetric": false, "unsigned": true}')
    assert get_profile(str(path)).unsigned and not get_profile(str(path)).asymmetric
    path.write_text('{"name": "chip", "forced_int8": {}, "asymmetric": false}')
    assert not get_profile(str(path)).unsigned  # a JSON profile is signed unless it says otherwise
    assert get_profile("symmetric").unsigned and not get_profile("symmetric-signed").unsigned
    assert not get_profile("generic").unsigned and not get_profile("hmct").unsigned
