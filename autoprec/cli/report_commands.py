"""`autoprec report` (report.html of a search) and `autoprec debug ...` (HMCT's debug plots as PNG)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autoprec.api import resolve_workdir
from autoprec.engine.saved import load_saved
from autoprec.evaluate import EvalSpec, Evaluator
from autoprec.hardware import get_profile
from autoprec.model_io import output_folder
from autoprec.report.plotting import pyplot

console = Console(stderr=True)


def add_report_parsers(sub, common: argparse.ArgumentParser) -> None:
    from autoprec.cli.parser import positive_int  # not at the top: parser.py imports this module

    p = sub.add_parser("report", parents=[common], help="write OUT/report.html: plots of a search (offline, one file)")
    p.add_argument("out", nargs="?", default="autoprec_out", help="search folder (default: autoprec_out)")
    p.set_defaults(func=cmd_report)

    debug = sub.add_parser("debug", parents=[common], help="HMCT's PTQ debug plots as PNG (into OUT/debug)")
    kinds = debug.add_subparsers(dest="kind", required=True, metavar="KIND", help="the plots to make")
    for name, help_text in (
        ("distribution", "float / int8 / int16 histograms of tensors with their clipping thresholds"),
        ("channels", "per-channel box plots of a tensor"),
        ("error-curve", "cosine vs float of every node's output along the graph (HMCT plot_acc_error)"),
        ("runall", "all plots for the top-k sensitive units (HMCT runall)"),
    ):
        p = kinds.add_parser(name, parents=[common], help=help_text)
        if name in ("distribution", "channels"):
            p.add_argument("nodes", nargs="+" if name == "distribution" else 1, metavar="NODE",
                           help="node or calibration node name (see `autoprec sensitivity`)")  # fmt: skip
        if name == "runall":
            p.add_argument("--top", type=positive_int, default=5, help="sensitive units to plot (default: 5)")
        p.add_argument("--out", default="autoprec_out", help="search folder; plots go to OUT/debug")
        p.add_argument("-w", "--workdir", help="model_output folder or calibrated model (default: the search's)")
        p.add_argument("--data", help="data (default: the search's, or <workdir>/calibration_data)")
        p.add_argument("--num-samples", type=positive_int, default=2, help="samples to use (default: 2)")
        p.add_argument("--profile", help="hardware profile (default: the search's, else generic)")
        p.set_defaults(func=cmd_debug)


def cmd_report(args: argparse.Namespace) -> int:
    from autoprec.report.html import write_report

    pyplot()
    saved = load_saved(args.out)
    evaluator = None
    if Path(saved.result.get("model", "")).is_file():
        spec = EvalSpec(saved.result["model"], saved.result["data"], saved.result.get("num_samples"))
        evaluator = Evaluator(spec)
    path = write_report(args.out, evaluator)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, self-contained)")
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    with output_folder(Path(args.out) / "debug"):  # made up front: a file in the way is refused before the runs
        return _debug(args)


def _debug(args: argparse.Namespace) -> int:
    """Make the plots of `args.kind` into OUT/debug."""
    from autoprec.report import debug

    pyplot()
    saved = load_saved(args.out) if (Path(args.out) / "result.json").is_file() else None
    result = saved.result if saved is not None else {}
    model_path, data_path = resolve_workdir(args.workdir or result.get("model", "."), args.data or result.get("data"))
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path)))
    indices = list(range(min(args.num_samples, evaluator.num_samples)))
    out_dir = Path(args.out) / "debug"
    if args.kind == "distribution":
        paths = debug.plot_distribution(evaluator, args.nodes, out_dir, indices)
    elif args.kind == "channels":
        paths = debug.plot_channels(evaluator, args.nodes[0], out_dir, indices)
    elif args.kind == "error-curve":
        paths = [debug.plot_error_curve(evaluator, out_dir, indices)]
    else:
        from autoprec.engine.target import build_target

        target = saved.target if saved is not None else build_target(evaluator.outputs, 0.99)
        profile = get_profile(args.profile or result.get("profile", "generic"))
        paths = debug.runall(evaluator, profile, target, out_dir, indices, args.top)
    for path in paths:
        console.print(f"wrote {path}")
    return 0
