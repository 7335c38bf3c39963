"""`autoprec calibrate`: float ONNX + data -> calibrated model (standard QDQ ONNX, opset 21).

Steps: onnxruntime's basic graph optimization (folds Constant weights into initializers and
BatchNormalization into Conv, as a compiler would) -> opset 21 (int16 Q/DQ is legal there) ->
one onnxruntime calibration pass giving every method's activation ranges (autoprec.calibration.methods)
-> one calibration node per quantized input of each normal node, keeping every method's range ->
`--method auto` (default): the scheme of the best-scoring all-int8 of every method and scheme the hardware
profile allows, with max ranges as the model's own and the best method's kept as the `best-int8` baseline
(autoprec.calibration.auto). Weights keep their float values (thresholds from the float
weight), so any node can later be raised to int16 exactly.
"""

from __future__ import annotations

import dataclasses
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

from autoprec.calibration.auto import Trial, best, score_schemes, start_label
from autoprec.calibration.methods import ABSURD_RANGE, METHODS, PERCENTILES, SCHEMES, collect, label, parse_label
from autoprec.calibration.unsigned import make_unsigned
from autoprec.data import Sample, foreign_entries, load_samples, model_inputs, save_samples
from autoprec.errors import UserError
from autoprec.evaluate.runs import run_sample
from autoprec.hardware import HardwareProfile, get_profile
from autoprec.ir import FEATURE, WEIGHT, CalibratedModel, CalibrationNode, calibration_name, name_nodes
from autoprec.model_io import load_model, output_folder, save_json, writing

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
AUTO = "auto"
STARTS = ("max", "best")  # auto: the model's own int8 ranges (CalibrationSettings.start)


@dataclass
class CalibrationSettings:
    """How to calibrate; after `calibrate`, how the model was calibrated (stored in the model and in
    calibration_settings.json): `method` auto is resolved to the model's own ranges (max) and the scheme it chose."""

    method: str = AUTO  # max | percentile | kl | mse | auto (README "Calibration")
    percentile: float = 99.999  # for method percentile
    per_channel: bool = True  # per-channel weights (if the profile allows)
    asymmetric: bool | None = None  # None: auto tries both schemes the profile allows; a fixed method: symmetric
    start: str = "max"  # auto: the model's own ranges: max (in the chosen scheme) or the best all-int8's ("best")
    num_samples: int = 0
    profile: str = "generic"


def calibrate(
    model_path: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    settings: CalibrationSettings | None = None,
    num_samples: int | None = None,
    force: bool = False,
) -> CalibratedModel:
    """Calibrate a float model and write `out_dir/calibrated_model.onnx` + `calibration_data/`."""
    settings = dataclasses.replace(settings or CalibrationSettings())
    if not 0.0 < settings.percentile <= 100.0:  # also refuses NaN
        raise UserError(f"--percentile {settings.percentile} is not in (0, 100]; e.g. 99.999")
    profile = get_profile(settings.profile)
    labels, schemes = _plan(settings, profile)
    out_dir = Path(out_dir)
    _check_replaceable(out_dir, force)
    with output_folder(out_dir):  # made up front: a file or a file system in the way is refused before any work
        calibrated, samples = _calibrate(model_path, data_path, settings, profile, labels, schemes, num_samples)
        _write_output(calibrated, samples, out_dir, calibrated.settings)
    return calibrated


def _calibrate(
    model_path: str | Path, data_path: str | Path, settings: CalibrationSettings, profile: HardwareProfile,
    labels: list[str], schemes: list[str], num_samples: int | None,
) -> tuple[CalibratedModel, list[Sample]]:  # fmt: skip
    """The calibrated model of `calibrate` (its settings record how) and the samples it was calibrated on."""
    float_model = load_model(model_path)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in float_model.graph.node):
        raise UserError(
            f"{model_path} is already quantized (it holds QuantizeLinear/DequantizeLinear nodes): run "
            "`autoprec baseline` or `autoprec search` on it directly (with --data), no calibration needed"
        )
    samples = load_samples(data_path, model_inputs(float_model), num_samples)
    settings.num_samples = len(samples)
    settings.per_channel = settings.per_channel and profile.per_channel
    started = time.perf_counter()
    prepared = prepare_float_model(float_model)
    try:
        collection = collect(prepared, samples, list(FEATURE_INPUTS), histograms=labels != ["max"])
    except Exception:  # name the sample onnxruntime refuses (a one-line UserError), if it is the data's fault
        _check_runs(prepared, samples)
        raise
    ranges = {name: collection.ranges(name, asymmetric=False) for name in labels}
    kept_float = _kept_float(collection.ranges("max", asymmetric=True))
    models = {}
    for scheme in schemes:
        asymmetric = SCHEMES[scheme]
        scheme_ranges = {n: collection.ranges(n, asymmetric) for n in labels} if asymmetric else ranges
        nodes = _calibration_nodes(prepared, scheme_ranges, kept_float, asymmetric, settings.per_channel)
        if not asymmetric and profile.unsigned:  # the chip's symmetric scheme: uint8 for a never-negative tensor
            make_unsigned(nodes, collection)
        models[scheme] = CalibratedModel(prepared, nodes)
    trials = score_schemes(models, labels, samples) if settings.method == AUTO else []
    chosen = best(trials) if trials else Trial(schemes[0], label(settings.method, settings.percentile), float("nan"))
    own = start_label(labels, chosen.label) if trials and settings.start == "max" else chosen.label
    calibrated = models[chosen.scheme]
    for cal in calibrated.calibration.values():
        if cal.tensor_type == FEATURE:
            cal.rmin, cal.rmax = (np.float64(v) for v in cal.alternatives[own])
    settings.method, chosen_percentile = parse_label(own)
    settings.percentile = chosen_percentile or settings.percentile
    settings.asymmetric = SCHEMES[chosen.scheme]
    calibrated.settings = asdict(settings) | {
        "selected_by": "auto" if trials else "user",
        "auto_trials": [t.to_json() for t in trials],
        "best_int8": chosen.label if trials else None,  # the `best-int8` baseline's ranges (auto)
        "float_model_sha256": hashlib.sha256(Path(model_path).read_bytes()).hexdigest(),
        "seconds": round(time.perf_counter() - started, 2),
        "kept_float": kept_float,
        "unsigned": profile.unsigned and not settings.asymmetric,
    }
    return calibrated, samples


def _plan(settings: CalibrationSettings, profile: HardwareProfile) -> tuple[list[str], list[str]]:
    """(range labels every feature node keeps, schemes to build), checked against the profile."""
    if settings.method != AUTO and settings.method not in METHODS:
        raise UserError(f"unknown calibration method '{settings.method}'; use auto or one of {', '.join(METHODS)}")
    if settings.method != AUTO and settings.method not in profile.calibration_methods:
        allowed = ", ".join(m for m in METHODS if m in profile.calibration_methods)
        raise UserError(f"profile '{profile.name}' does not calibrate with '{settings.method}'; use auto or {allowed}")
    if settings.start not in STARTS:
        raise UserError(f"unknown --start '{settings.start}'; use {' or '.join(STARTS)}")
    if settings.asymmetric and not profile.asymmetric:
        raise UserError(f"profile '{profile.name}' has no asymmetric activations; drop --asymmetric")
    if settings.method == "percentile" and not 0 < settings.percentile <= 100:
        raise UserError(f"--percentile must lie in (0, 100], got {settings.percentile}")
    if settings.method == AUTO:  # every method's range, kept as alternatives (threshold_tuning picks among them)
        labels = [
            label(m, p) for m in METHODS if m in profile.calibration_methods
            for p in (PERCENTILES if m == "percentile" else (None,))
        ]  # fmt: skip
    else:  # one method: only its range (computing every method's, kl above all, made layout's calibration 6x slower)
        labels = [label(settings.method, settings.percentile)]
    if settings.asymmetric is None:
        both = settings.method == AUTO and profile.asymmetric
        return labels, ["symmetric", "asymmetric"] if both else ["symmetric"]
    return labels, ["asymmetric" if settings.asymmetric else "symmetric"]


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


def _check_runs(model: onnx.ModelProto, samples: list[Sample]) -> None:
    """Run the float model on every sample: a UserError for the first one onnxruntime refuses."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in model.graph.output]
    for index, sample in enumerate(samples):
        run_sample(session, outputs, sample, index)


def _kept_float(ranges: dict[str, tuple[float, float]]) -> dict[str, str]:
    """Tensors whose calibrated range is non-finite or absurd: they stay float (tensor -> why)."""
    return {
        tensor: f"calibrated range [{low:.3g}, {high:.3g}] is not quantizable"
        for tensor, (low, high) in ranges.items()
        if not (np.isfinite(low) and np.isfinite(high)) or max(abs(low), abs(high)) > ABSURD_RANGE
    }


def _calibration_nodes(
    model: onnx.ModelProto,
    ranges: dict[str, dict[str, tuple[float, float]]],
    kept_float: dict[str, str],
    asymmetric: bool,
    per_channel: bool,
) -> dict[str, CalibrationNode]:
    """One calibration node per quantized input; a feature node keeps every label's range as `alternatives`
    (its own thresholds: the first label's, until the caller picks one)."""
    inits = {i.name: i for i in model.graph.initializer}
    tensors = set(next(iter(ranges.values()))) - set(kept_float)
    nodes: dict[str, CalibrationNode] = {}
    for node in model.graph.node:
        if node.op_type not in FEATURE_INPUTS or node.domain not in ("", "ai.onnx"):
            continue
        indices = set(FEATURE_INPUTS[node.op_type] or range(len(node.input)))
        if node.op_type in WEIGHT_AXIS:
            indices.add(1)
        for i in sorted(indices):
            tensor = node.input[i] if i < len(node.input) else ""
            name = calibration_name(node.name, i)
            if tensor in inits and node.op_type in WEIGHT_AXIS and i == 1:
                nodes[name] = _weight_node(name, node, inits[tensor], per_channel)
            elif tensor in tensors:  # not: integer tensors, shape paths, ranges kept float
                alternatives = {label: ranges[label][tensor] for label in ranges}
                low, high = next(iter(alternatives.values()))
                nodes[name] = CalibrationNode(
                    name, tensor, [(node.name, i)], FEATURE, "int8", np.float64(low), np.float64(high),
                    symmetric=not asymmetric, alternatives=alternatives,
                )  # fmt: skip
    return nodes


def _weight_node(name: str, node: onnx.NodeProto, init: onnx.TensorProto, per_channel: bool) -> CalibrationNode:
    weight = numpy_helper.to_array(init).astype(np.float64)
    axis = WEIGHT_AXIS[node.op_type]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        axis = 0 if trans_b else 1
    if axis is not None and axis < 0:
        axis += weight.ndim
    if per_channel and axis is not None and weight.ndim > 1:
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
    foreign = foreign_outputs(out_dir)
    if foreign:
        raise UserError(
            f"{out_dir} holds files autoprec did not write ({', '.join(foreign[:3])}); "
            "--force replaces only a calibrate output folder: choose another -o folder"
        )


def foreign_outputs(out_dir: Path) -> list[str]:
    """What a folder holds that calibrate does not write, sorted (paths relative to it; none if it is no folder)."""
    if not out_dir.is_dir():
        return []
    foreign = [
        p.name for p in out_dir.iterdir() if p.name not in OUTPUT_ENTRIES and not p.name.startswith(".autoprec-")
    ]
    foreign += [str(p.relative_to(out_dir)) for p in foreign_entries(out_dir / "calibration_data")]
    return sorted(foreign)


def _write_output(model: CalibratedModel, samples: list[Sample], out_dir: Path, record: dict) -> None:
    """Write everything into a staging folder inside `out_dir`, then move each entry into place (replacing only
    autoprec's own entries); a failure leaves `out_dir` as it was."""
    with writing(out_dir):
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
