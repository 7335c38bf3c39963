"""`autoprec calibrate`: float ONNX + data -> calibrated model (standard QDQ ONNX, opset 21).

Steps: onnxruntime's basic graph optimization (folds Constant weights into initializers and
BatchNormalization into Conv, as a compiler would) -> opset 21 (int16 Q/DQ is legal there) ->
onnxruntime.quantization calibrators for activation ranges -> one calibration node per quantized
input of each normal node. Weights keep their float values (thresholds from the float weight),
so any node can later be raised to int16 exactly.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, version_converter
from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

from autoprec.data import Sample, load_samples, model_inputs, save_samples
from autoprec.errors import UserError
from autoprec.evaluate.runs import run_sample
from autoprec.ir import FEATURE, WEIGHT, CalibratedModel, CalibrationNode, calibration_name, name_nodes
from autoprec.model_io import load_model, save_json, writing

TARGET_OPSET = 21
ALL = None  # every input of the op is a feature input
FEATURE_INPUTS: dict[str, tuple[int, ...] | None] = {
    "Conv": (0,), "ConvTranspose": (0,), "Gemm": (0,), "MatMul": ALL, "Add": ALL, "Sub": ALL, "Mul": ALL,
    "Div": ALL, "Concat": ALL, "Max": ALL, "Min": ALL, "Einsum": ALL, "Resize": (0,), "GridSample": (0, 1),
    "AveragePool": (0,), "GlobalAveragePool": (0,), "Sigmoid": (0,), "HardSigmoid": (0,), "HardSwish": (0,),
    "Tanh": (0,), "Softmax": (0,), "LeakyRelu": (0,), "PRelu": (0,), "LayerNormalization": (0,),
    "BatchNormalization": (0,), "InstanceNormalization": (0,), "ReduceMean": (0,), "ReduceSum": (0,),
    "Pow": (0,), "Exp": (0,), "Erf": (0,), "Gelu": (0,), "LSTM": (0,), "GRU": (0,),
}  # fmt: skip
# Not here on purpose: Sqrt/Reciprocal/Log inputs (power spectra, variances) lose all relative precision
# near 0 under uniform quantization, even int16 (silero-vad's STFT magnitude: cosine 0.88); chips keep them float.
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "Gemm": None, "MatMul": -1}  # per-channel axis of input 1
METHODS = {
    "max": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "kl": CalibrationMethod.Entropy,
    "mse": CalibrationMethod.Percentile,  # its |x| histograms, then the MSE-optimal threshold (_mse_range)
}
ABSURD_RANGE = 1e6  # activations beyond this (masks of +-3.4e38...) stay float


@dataclass
class CalibrationSettings:
    """How a model was calibrated (stored in the model and in calibration_settings.json)."""

    method: str = "max"
    percentile: float = 99.999
    per_channel: bool = True
    asymmetric: bool = False
    num_samples: int = 0


def calibrate(
    model_path: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    settings: CalibrationSettings | None = None,
    num_samples: int | None = None,
    force: bool = False,
) -> CalibratedModel:
    """Calibrate a float model and write `out_dir/calibrated_model.onnx` + `calibration_data/`."""
    settings = settings or CalibrationSettings()
    if settings.method not in METHODS:
        raise UserError(f"unknown calibration method '{settings.method}'; use one of {', '.join(METHODS)}")
    if not 0.0 < settings.percentile <= 100.0:  # also refuses NaN
        raise UserError(f"--percentile {settings.percentile} is not in (0, 100]; e.g. 99.999")
    out_dir = Path(out_dir)
    _check_replaceable(out_dir, force)
    float_model = load_model(model_path)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in float_model.graph.node):
        raise UserError(
            f"{model_path} is already quantized (it holds QuantizeLinear/DequantizeLinear nodes): run "
            "`autoprec baseline` or `autoprec search` on it directly (with --data), no calibration needed"
        )
    samples = load_samples(data_path, model_inputs(float_model), num_samples)
    settings.num_samples = len(samples)
    started = time.perf_counter()
    prepared = prepare_float_model(float_model)
    ranges = _activation_ranges(prepared, samples, settings)
    calibration, kept_float = _calibration_nodes(prepared, ranges, settings)
    record = asdict(settings) | {
        "float_model_sha256": hashlib.sha256(Path(model_path).read_bytes()).hexdigest(),
        "seconds": round(time.perf_counter() - started, 2),
        "kept_float": kept_float,
    }
    calibrated = CalibratedModel(prepared, calibration, record)
    _write_output(calibrated, samples, out_dir, record)
    return calibrated


def prepare_float_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constants and BatchNorm (onnxruntime basic optimization), convert to opset 21, name nodes."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"onnxruntime cannot run the model: {str(exc).splitlines()[0][:300]}") from exc
        optimized = onnx.load(options.optimized_model_filepath)
    used_domains = {n.domain for n in optimized.graph.node} | {""}
    kept = [o for o in optimized.opset_import if o.domain in used_domains]
    del optimized.opset_import[:]
    optimized.opset_import.extend(kept)
    if next(o.version for o in optimized.opset_import if o.domain == "") < TARGET_OPSET:
        optimized = version_converter.convert_version(optimized, TARGET_OPSET)
    name_nodes(optimized.graph)
    return optimized


class _Reader(CalibrationDataReader):
    def __init__(self, samples: list[Sample]):
        self._items = iter(samples)

    def get_next(self) -> Sample | None:
        return next(self._items, None)


def _activation_ranges(model: onnx.ModelProto, samples: list[Sample], settings: CalibrationSettings) -> dict:
    """tensor name -> (min, max) from an onnxruntime calibrator over all samples."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        options = {"symmetric": not settings.asymmetric, "percentile": settings.percentile}
        if settings.method == "mse":
            options["symmetric"] = True  # histograms of |x|
        if settings.method == "kl":  # onnxruntime's defaults (128 bins) leave KL a single candidate: the max
            options |= {"num_bins": 2048, "num_quantized_bins": 128}
        calibrator = create_calibrator(
            path,
            op_types_to_calibrate=list(FEATURE_INPUTS),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=METHODS[settings.method],
            extra_options=options,
        )
        try:
            calibrator.collect_data(_Reader(samples))
        except Exception:  # name the sample onnxruntime refuses (a one-line UserError), if it is the data's fault
            _check_runs(model, samples)
            raise
        if settings.method == "mse":
            return {name: _mse_range(*h) for name, h in calibrator.collector.histogram_dict.items()}
        data = calibrator.compute_data()
    return {name: tuple(float(np.ravel(v)[0]) for v in data[name].range_value) for name in data}


def _check_runs(model: onnx.ModelProto, samples: list[Sample]) -> None:
    """Run the float model on every sample: a UserError for the first one onnxruntime refuses."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in model.graph.output]
    for index, sample in enumerate(samples):
        run_sample(session, outputs, sample, index)


def _mse_range(hist: np.ndarray, edges: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The clipping threshold T (a bin edge of the |x| histogram) that minimizes the expected int8 error:
    rounding noise (T/127)^2/12 for values inside, squared clipping distance for values beyond."""
    counts = hist.astype(np.float64)
    centers = (edges[:-1].astype(np.float64) + edges[1:]) / 2
    candidates = edges[1:].astype(np.float64)
    # values beyond each candidate: suffix sums of n, n*c, n*c^2 over the bins past it
    tail_n = np.cumsum(counts[::-1])[::-1]
    tail_c = np.cumsum((counts * centers)[::-1])[::-1]
    tail_c2 = np.cumsum((counts * centers**2)[::-1])[::-1]
    beyond = np.append(tail_n[1:], 0.0), np.append(tail_c[1:], 0.0), np.append(tail_c2[1:], 0.0)
    clipping = beyond[2] - 2 * candidates * beyond[1] + candidates**2 * beyond[0]
    rounding = (counts.sum() - beyond[0]) * (candidates / 127) ** 2 / 12
    threshold = float(candidates[np.argmin(clipping + rounding)])
    return max(float(low), -threshold), min(float(high), threshold)


def _calibration_nodes(
    model: onnx.ModelProto, ranges: dict, settings: CalibrationSettings
) -> tuple[dict[str, CalibrationNode], dict[str, str]]:
    inits = {i.name: i for i in model.graph.initializer}
    nodes: dict[str, CalibrationNode] = {}
    kept_float: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type not in FEATURE_INPUTS or node.domain not in ("", "ai.onnx"):
            continue
        indices = set(FEATURE_INPUTS[node.op_type] or range(len(node.input)))
        if node.op_type in WEIGHT_AXIS:
            indices.add(1)
        for i in sorted(indices):
            tensor = node.input[i] if i < len(node.input) else ""
            if not tensor:
                continue
            name = calibration_name(node.name, i)
            if tensor in inits:
                if node.op_type in WEIGHT_AXIS and i == 1:
                    nodes[name] = _weight_node(name, node, inits[tensor], settings)
                continue
            if tensor not in ranges:
                continue  # not a float tensor (integer, shape path): never quantized
            low, high = ranges[tensor]
            if not (np.isfinite(low) and np.isfinite(high)) or max(abs(low), abs(high)) > ABSURD_RANGE:
                kept_float[tensor] = f"calibrated range [{low:.3g}, {high:.3g}] is not quantizable"
                continue
            nodes[name] = CalibrationNode(
                name, tensor, [(node.name, i)], FEATURE, "int8", np.float64(low), np.float64(high),
                symmetric=not settings.asymmetric,
            )  # fmt: skip
    return nodes, kept_float


def _weight_node(name: str, node: onnx.NodeProto, init: onnx.TensorProto, settings: CalibrationSettings):
    weight = numpy_helper.to_array(init).astype(np.float64)
    axis = WEIGHT_AXIS[node.op_type]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        axis = 0 if trans_b else 1
    if axis is not None and axis < 0:
        axis += weight.ndim
    if settings.per_channel and axis is not None and weight.ndim > 1:
        reduce = tuple(d for d in range(weight.ndim) if d != axis)
        low, high = weight.min(axis=reduce), weight.max(axis=reduce)
    else:
        low, high, axis = np.float64(weight.min()), np.float64(weight.max()), None
    return CalibrationNode(name, init.name, [(node.name, 1)], WEIGHT, "int8", low, high, True, axis)


OUTPUT_ENTRIES = ("calibrated_model.onnx", "calibration_data", "calibration_settings.json")


def _check_replaceable(out_dir: Path, force: bool) -> None:
    """An existing output folder is replaced only with --force, and only if it holds nothing but autoprec's files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file; choose another -o folder")
    entries = list(out_dir.iterdir())
    if not entries:
        return
    if not force:
        raise UserError(f"{out_dir} exists; pass --force to replace it, or choose another -o folder")
    foreign = [p.name for p in entries if p.name not in OUTPUT_ENTRIES and not p.name.startswith(".autoprec-")]
    data = out_dir / "calibration_data"
    if data.is_dir():
        foreign += [str(p.relative_to(out_dir)) for p in data.rglob("*") if p.is_file() and p.suffix != ".npy"]
    if foreign:
        raise UserError(
            f"{out_dir} holds files autoprec did not write ({', '.join(sorted(foreign)[:3])}); "
            "--force replaces only a calibrate output folder: choose another -o folder"
        )


def _write_output(model: CalibratedModel, samples: list[Sample], out_dir: Path, record: dict) -> None:
    """Write everything into a staging folder inside `out_dir`, then move each entry into place (replacing only
    autoprec's own entries); a failure leaves `out_dir` as it was."""
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".autoprec-", dir=out_dir))
    try:
        with writing(out_dir):
            model.save(staging / "calibrated_model.onnx")
            save_samples(samples, staging / "calibration_data")
            save_json(record, staging / "calibration_settings.json")
            for name in OUTPUT_ENTRIES:
                old = out_dir / name
                if old.exists():
                    old.rename(staging / f"old-{name}")
                (staging / name).rename(old)
        for leftover in out_dir.glob(".autoprec-*"):  # staging folders of killed runs
            if leftover != staging:
                shutil.rmtree(leftover, ignore_errors=True)
    except BaseException:
        for name in OUTPUT_ENTRIES:  # put back what was moved aside
            if (staging / f"old-{name}").exists():
                if (out_dir / name).is_dir():
                    shutil.rmtree(out_dir / name)
                (staging / f"old-{name}").replace(out_dir / name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
