"""`autoprec export`: write the winner (or any quant_config) as a QDQ ONNX model and verify it on onnxruntime."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autoprec.api import resolve_workdir
from autoprec.engine.saved import SavedSearch, load_saved
from autoprec.engine.target import build_target
from autoprec.errors import UserError
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from autoprec.model_io import check_output_file, dumps_json, output_folder
from autoprec.quant_config import from_quant_config, read_quant_config

console = Console(stderr=True)
DEFAULT_SEARCH = "autoprec_out"


def add_export_parser(sub, common: argparse.ArgumentParser) -> None:
    from autoprec.cli.parser import positive_int  # not at the top: parser.py imports this module

    p = sub.add_parser(
        "export", parents=[common], help="the winner as a QDQ ONNX model verified on onnxruntime, or as HMCT's model"
    )
    p.add_argument("workdir", nargs="?", help="model_output folder or calibrated model (default: the search's, else .)")
    p.add_argument("--format", choices=["qdq", "hmct"],
                   help="qdq: standard QDQ ONNX, scored on onnxruntime; hmct: HzCalibration nodes + quant_config.json "
                   "(default: the calibrated model's own form)")  # fmt: skip
    p.add_argument("-o", "--out", help="the .onnx file to write, never replaced without --force "
                   "(qdq: required; hmct: default hmct_output/calibrated_model.onnx)")  # fmt: skip
    p.add_argument("--search", help=f"the search's folder (default: {DEFAULT_SEARCH}, if it holds one)")
    p.add_argument("--config", help="quant_config.json (qdq default: SEARCH/quant_config.json; hmct default: "
                   "the model's own qtypes)")  # fmt: skip
    p.add_argument("--data", "--eval-data", dest="data", help="evaluation data (default: the search's)")
    p.add_argument("--num-samples", type=positive_int, help="use only the first N samples")
    p.add_argument("--profile", help="hardware profile (default: the search's, else generic)")
    p.add_argument("--target", type=float, help="threshold for every output (default: the search's, else 0.99)")
    p.add_argument("--metric", default="cosine-similarity", help="metric of --target (default: cosine-similarity)")
    p.add_argument(
        "--aggregate",
        default="mean",
        choices=["mean", "min"],
        help="aggregate of --target over samples (default: mean)",
    )
    p.add_argument("--targets", help="per-output targets, TOML or JSON: {output: {threshold, metric, aggregate}}")
    p.add_argument("--ms-domain", action="store_true",
                   help="qdq: com.microsoft Q/DQ at a lower opset, for runtimes older than opset 21")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--json", action="store_true", help="qdq: print the scores as JSON")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Dispatch on --format (default: HMCT for an HMCT calibrated model, else QDQ)."""
    from autoprec.cli.export_hmct import cmd_export_hmct
    from autoprec.ir.hmct_import import is_hmct
    from autoprec.model_io import load_model

    saved = _saved_search(args)
    workdir = args.workdir or (saved.model_path() if saved is not None else ".")
    model_path, _ = resolve_workdir(workdir)
    if (args.format or ("hmct" if is_hmct(load_model(model_path)) else "qdq")) == "hmct":
        args.workdir, args.out = workdir, args.out or "hmct_output/calibrated_model.onnx"
        args.profile = args.profile or _saved(saved, "profile") or "generic"
        return cmd_export_hmct(args)
    if args.out is None:
        raise UserError("pass -o FILE.onnx: the QDQ model to write")
    check_output_file(Path(args.out), args.force)  # up front, not after scoring
    with output_folder(Path(args.out).parent):
        return export_qdq(args, saved)


def _saved_search(args: argparse.Namespace) -> SavedSearch | None:
    """The search of --search (refused if that folder holds none), else the one in autoprec_out if any."""
    if args.search is not None:
        return load_saved(args.search)
    args.search = DEFAULT_SEARCH
    return load_saved(args.search) if (Path(args.search) / "result.json").is_file() else None


def export_qdq(args: argparse.Namespace, saved: SavedSearch | None) -> int:
    """Write the QDQ model, score it twice on onnxruntime, print both against the target."""
    from autoprec.export import RUNTIME_FIX, export_model, verify_export

    searched = saved if args.workdir is None else None  # the search's model, data and samples, unless told
    workdir = args.workdir or (saved.model_path() if saved is not None else ".")
    model_path, data_path = resolve_workdir(workdir, args.data or _saved(searched, "data"))
    config = read_quant_config(Path(args.config) if args.config else Path(args.search) / "quant_config.json")
    spec = EvalSpec(str(model_path), str(data_path), args.num_samples or _saved(searched, "num_samples"))
    evaluator = Evaluator(spec)
    profile = get_profile(args.profile or _saved(saved, "profile") or "generic")
    assignment = from_quant_config(evaluator.model, config, profile)
    if args.target is None and args.targets is None and saved is not None:
        target = saved.target
    else:
        target = build_target(evaluator.outputs, args.target or 0.99, args.metric, args.aggregate, args.targets)
    proto = export_model(evaluator, assignment, args.out, ms_domain=args.ms_domain, force=args.force)
    check = verify_export(evaluator, assignment, proto, target)
    rows = check.rows()
    if args.json:
        print(dumps_json({"model": args.out, "outputs": rows, "deployed_meets_target": check.deployed_meets}))
    else:
        Console().print(_table(rows, args.out, evaluator.num_samples))
        console.print(f"wrote {args.out} (onnx.checker ok, {len(proto.SerializeToString()) / 1e6:.2f} MB)")
    if not check.searched_meets:
        console.print("[red]warning:[/] the exported model misses the target even as searched (the config fails it)")
        return 1
    if not check.deployed_meets:
        missing = [o for o, r in rows.items() if not r["ort_default_meets"]]
        console.print(f"[red]warning:[/] with onnxruntime's default session {', '.join(missing)} miss the target. "
                      f"{RUNTIME_FIX}", soft_wrap=True)  # fmt: skip
        return 1
    return 0


def _saved(saved, key: str) -> str | None:
    return saved.result.get(key) if saved is not None else None


def _table(rows: dict[str, dict], path: str, samples: int) -> Table:
    table = Table(title=f"{path} on plain onnxruntime ({samples} samples)")
    for name in ("output", "target", "as searched", "ort default (deployed)"):
        table.add_column(name)
    for out, r in rows.items():
        table.add_row(out, r["target"], _cell(r["as_searched"], r["as_searched_meets"]),
                      _cell(r["ort_default"], r["ort_default_meets"]))  # fmt: skip
    return table


def _cell(value: float, meets: bool) -> str:
    return f"{value:.6f} " + ("[green]ok[/]" if meets else "[red]MISS[/]")
