"""Foreign QDQ models: onnxruntime's quantize_static output (opset 21, and opset < 21 with com.microsoft
uint16 Q/DQ, with the Relu it folds into QuantizeLinear) scores against the right float reference, and
formats autoprec cannot represent are refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from autoprec import demo
from autoprec.data import load_samples, model_inputs, save_samples

PREFIX = "autoprec: error: "


class _Reader(CalibrationDataReader):
    def __init__(self, samples: list[dict]):
        self._items = iter(samples)

    def get_next(self) -> dict | None:
        return next(self._items, None)


def tiny_net() -> onnx.ModelProto:
    """Conv -> Relu -> Conv, random weights (the Relu is what quantize_static folds away)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32) * 0.3, "w1"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(rng.normal(size=(4, 8, 3, 3)).astype(np.float32) * 0.3, "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def quantize(float_path: Path, samples: list[dict], out: Path, activations: QuantType, contrib: bool) -> Path:
    quantize_static(str(float_path), str(out), _Reader(samples), quant_format=QuantFormat.QDQ,
                    activation_type=activations, weight_type=QuantType.QInt8,
                    extra_options={"UseQDQContribOps": contrib})  # fmt: skip
    return out


def true_cosines(qdq: Path, float_model: Path, data: Path) -> dict[str, float]:
    """Mean cosine of the QDQ model's own outputs (run by onnxruntime) vs the original float model's."""
    quantized, original = ort.InferenceSession(str(qdq)), ort.InferenceSession(str(float_model))
    names = [o.name for o in quantized.get_outputs()]
    cosines: dict[str, list[float]] = {n: [] for n in names}
    for sample in load_samples(data, model_inputs(onnx.load(str(qdq)))):
        for name, q, f in zip(names, quantized.run(names, sample), original.run(names, sample)):
            cosines[name].append(float(np.dot(q.ravel(), f.ravel()) / np.linalg.norm(q) / np.linalg.norm(f)))
    return {n: float(np.mean(v)) for n, v in cosines.items()}


def scores(run_cli, model: Path, data: Path, *extra) -> tuple[dict, str]:
    """baseline --json: {baseline: {output: mean cosine}}, and stderr."""
    result = run_cli("baseline", model, "--data", data, "--json", *extra)
    code, err = result
    assert code == 0, err
    parsed = json.loads(result.stdout)
    return {b: {o: float(np.mean(m["cosine-similarity"])) for o, m in outs.items()} for b, outs in parsed.items()}, err


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path, list[dict]]:
    rng = np.random.default_rng(1)
    samples = [{"x": rng.normal(size=(1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
    onnx.save(tiny_net(), tmp_path / "float.onnx")
    save_samples(samples[:3], tmp_path / "data")
    return tmp_path / "float.onnx", tmp_path / "data", samples


@pytest.mark.parametrize("flavour", ["opset21-uint8", "opset13-com.microsoft-uint16"])
def test_quantize_static_output_scores_against_the_true_float_model(flavour, tiny, run_cli, tmp_path):
    float_model, data, samples = tiny
    activations, contrib = (QuantType.QUInt8, False) if flavour.startswith("opset21") else (QuantType.QUInt16, True)
    qdq = quantize(float_model, samples, tmp_path / "qdq.onnx", activations, contrib)
    model = onnx.load(str(qdq))
    assert not any(n.op_type == "Relu" for n in model.graph.node)  # onnxruntime folded it into the Q
    if contrib:  # what older onnxruntime wrote: the float ops at opset 13, 16-bit Q/DQ from com.microsoft
        assert {n.domain for n in model.graph.node if n.op_type.endswith("QuantizeLinear")} == {"com.microsoft"}
        next(o for o in model.opset_import if o.domain == "").version = 13
        onnx.save(model, str(qdq))
    truth = true_cosines(qdq, float_model, data)["y"]
    named, err = scores(run_cli, qdq, data, "--float-model", float_model)
    assert abs(named["all-int8"]["y"] - truth) < 1e-4  # the QDQ model exactly, against the original
    assert named["all-int16"]["y"] >= named["all-int8"]["y"] - 1e-4  # int16 exports (opset 21) and runs
    rebuilt, err = scores(run_cli, qdq, data)
    assert "restored 1 Relu" in err and "--float-model" in err
    assert abs(rebuilt["all-int8"]["y"] - truth) < 1e-3  # without the Relu: 0.73-0.77 (measured)


def test_search_and_sensitivity_take_the_float_model(tiny, run_cli, tmp_path):
    float_model, data, samples = tiny
    qdq = quantize(float_model, samples, tmp_path / "qdq.onnx", QuantType.QUInt8, False)
    code, err = run_cli("search", qdq, "--data", data, "--float-model", float_model, "--target", "0.999",
                        "--budget", "4", "--quiet", "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "out/result.json").read_text())
    assert result["winner"]["outputs"]["y"]["value"] >= 0.999
    evaluated = run_cli("evaluate", qdq, "--data", data, "--float-model", float_model, "--config",
                        tmp_path / "out/quant_config.json", "--target", "0.999", "--json")  # fmt: skip
    assert evaluated[0] == 0, evaluated[1]
    assert json.loads(evaluated.stdout)["outputs"]["y"]["value"] == result["winner"]["outputs"]["y"]["value"]
    code, err = run_cli("sensitivity", qdq, "--data", data, "--float-model", float_model, "--json",
                        "--out", tmp_path / "sens")  # fmt: skip
    assert code == 0, err
    shown = run_cli("baseline", qdq, "--data", data, "--float-model", tmp_path / "qdq.onnx")
    assert shown[0] == 0  # a QDQ model as its own reference is allowed (same inputs/outputs), only scores change
    assert "Baselines vs float on 3 samples" in shown.stdout, shown.stdout  # all given samples (data: 3 of them)
    x, z = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 16, 16]) for n in "xz")
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "g", [x], [z])
    onnx.save(helper.make_model(other), tmp_path / "other.onnx")
    code, err = run_cli("baseline", qdq, "--data", data, "--float-model", tmp_path / "other.onnx")
    assert code == 2 and err.startswith(PREFIX) and "outputs ['y']" in err and len(err.strip().splitlines()) == 1


def test_real_model_quantized_by_onnxruntime_at_opset_16(tmp_path, run_cli):
    """silero VAD through quantize_static (opset 16, Relus folded, weights stored int8)."""
    original = demo.fetch_model("vad")
    samples = demo.make_samples("vad", 3)
    save_samples(samples, tmp_path / "data")
    qdq = quantize(original, samples, tmp_path / "vad_qdq.onnx", QuantType.QUInt8, False)
    truth = true_cosines(qdq, original, tmp_path / "data")
    named, _ = scores(run_cli, qdq, tmp_path / "data", "--float-model", original)
    assert all(abs(named["all-int8"][o] - truth[o]) < 1e-3 for o in truth), (named, truth)
    rebuilt, err = scores(run_cli, qdq, tmp_path / "data")
    assert "restored 5 Relu(s)" in err and "stored quantized" in err and "--float-model" in err


def _qdq_model(zero_point: onnx.TensorProto) -> onnx.ModelProto:
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zp"], ["xd"], name="dq"),
        helper.make_node("Relu", ["xd"], ["y"], name="relu"),
    ]
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "xy")
    graph = helper.make_graph(nodes, "g", [x], [y], [scale, zero_point])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize(("kind", "word"), [(TensorProto.INT4, "int4"), (TensorProto.FLOAT8E4M3FN, "float8")])
def test_int4_and_float8_pairs_are_refused(kind, word, tmp_path, run_cli):
    onnx.save(_qdq_model(helper.make_tensor("zp", kind, [], [0])), tmp_path / "m.onnx")
    save_samples([{"x": np.ones((1, 4), np.float32)}], tmp_path / "data")
    code, err = run_cli("baseline", tmp_path / "m.onnx", "--data", tmp_path / "data")
    assert code == 2 and err.startswith(PREFIX) and word in err and len(err.strip().splitlines()) == 1, err


def test_metadata_that_disagrees_with_the_graph_is_refused(magika_workdir, tmp_path, run_cli):
    model = onnx.load(str(magika_workdir / "calibrated_model.onnx"))
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear")
    scale = next(i for i in model.graph.initializer if i.name == dq.input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 2, scale.name))  # edited after export
    onnx.save(model, str(tmp_path / "edited.onnx"))
    shutil.copytree(magika_workdir / "calibration_data", tmp_path / "data")
    code, err = run_cli("baseline", tmp_path / "edited.onnx", "--data", tmp_path / "data")
    assert code == 2 and err.startswith(PREFIX) and "disagrees with the scales" in err, err
    assert len(err.strip().splitlines()) == 1
