"""The `autoprec` subcommands (except `search`, in search_command.py): each takes the parsed arguments and
returns the exit code."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich.console import Console

from autoprec.api import resolve_workdir
from autoprec.errors import UserError
from autoprec.model_io import dumps_json, output_folder, read_json, save_json

console = Console(stderr=True)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from autoprec.demo import write_demo_data

    model, data = write_demo_data(args.name, Path(args.out), args.num_samples, force=args.force)
    console.print(f"[green]wrote[/] {model} and {data}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from autoprec.calibrate import CalibrationSettings, calibrate
    from autoprec.report import calibration_table

    settings = CalibrationSettings(
        args.method, args.percentile, not args.per_tensor, args.asymmetric, args.start, profile=args.profile
    )  # fmt: skip
    model = calibrate(args.model, args.data, args.out, settings, args.num_samples, force=args.force)
    if model.settings["auto_trials"]:
        Console().print(calibration_table(model.settings))
    weights = sum(c.tensor_type == "weight" for c in model.calibration.values())
    console.print(
        f"[green]calibrated[/] {len(model.calibration)} calibration nodes ({weights} weights) "
        f"in {model.settings['seconds']} s -> {args.out}/calibrated_model.onnx"
    )
    for tensor, why in model.settings["kept_float"].items():
        console.print(f"  kept float: {tensor}: {why}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    return show_baselines(
        args.workdir, args.data, args.num_samples, args.profile, args.jobs, args.metric, args.json, args.float_model
    )


def show_baselines(
    workdir: str | Path, data: str | None = None, num_samples: int | None = None, profile: str = "generic",
    jobs: int = 1, metric: str = "cosine-similarity", as_json: bool = False, float_model: str | None = None,
) -> int:  # fmt: skip
    """Print float vs all-int8 / all-int16 / real-int16 per output (a table, or JSON)."""
    from autoprec.engine.baselines import baseline_assignments
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.evaluate.metrics import get_metric
    from autoprec.hardware import get_profile
    from autoprec.report import baseline_table

    get_metric(metric)
    model_path, data_path = resolve_workdir(workdir, data)
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path), num_samples, float_model=float_model), jobs=jobs)
    assignments = baseline_assignments(evaluator.model, get_profile(profile))
    results = dict(zip(assignments, evaluator.evaluate_many(list(assignments.values()))))
    if as_json:
        print(dumps_json({name: scores.to_json() for name, scores in results.items()}, indent=2))
    else:
        Console().print(baseline_table(evaluator.outputs, results, metric, evaluator.num_samples))
        console.print(f"{evaluator.model_runs} model runs in {evaluator.seconds:.1f} s, profile {profile}")
    return 0


def cmd_candidates(args: argparse.Namespace) -> int:
    from autoprec.report import candidates_table

    path = Path(args.out) / "candidates.json"
    if not path.exists():
        raise UserError(f"{path}: no candidates yet; run `autoprec search` first")
    try:
        summaries = read_json(path)
        if args.pareto:
            from autoprec.engine.saved import load_saved
            from autoprec.report.pareto import pareto_front

            summaries = pareto_front(summaries, load_saved(args.out).target)
        title = "Pareto front: cost vs worst margin" if args.pareto else None
        table = candidates_table(summaries, args.top, title)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a damaged or foreign file
        raise UserError(f"{path}: not a candidates file of `autoprec search` ({exc!r}); run the search again") from exc
    Console().print(table)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from autoprec.engine.target import build_target
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.hardware import get_profile
    from autoprec.quant_config import from_quant_config, read_quant_config, to_quant_config
    from autoprec.report import scores_table

    config_path = Path(args.config)
    config = read_quant_config(config_path)
    model_path, data_path = resolve_workdir(args.workdir, args.data)
    spec = EvalSpec(
        str(model_path), str(data_path), args.num_samples, args.task_metric, args.runtime, float_model=args.float_model
    )
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
        print(dumps_json({"meets_target": target.passes(scores), "outputs": outputs, "scores": scores.to_json()}))
    else:
        Console().print(scores_table(f"{config_path.name}", outputs))
        entries = len(to_quant_config(evaluator.model, assignment, profile)["node_config"])
        console.print(f"meets target: {target.passes(scores)}; {entries} node_config entries")
    return 0 if target.passes(scores) else 1


def cmd_sensitivity(args: argparse.Namespace) -> int:
    with output_folder(args.out):  # made up front: a file in the way is refused before the measuring
        return _sensitivity(args)


def _sensitivity(args: argparse.Namespace) -> int:
    """Measure (or read the cache in --out), write --out/sensitivity_TYPE.json and print the table."""
    from autoprec.engine.sensitivity import load_or_measure, measure
    from autoprec.evaluate import EvalSpec, Evaluator
    from autoprec.evaluate.metrics import get_metric
    from autoprec.hardware import get_profile
    from autoprec.report import sensitivity_table

    metrics = [get_metric(m).name for m in args.metrics.split(",")]
    model_path, data_path = resolve_workdir(args.workdir, args.data)
    evaluator = Evaluator(EvalSpec(str(model_path), str(data_path), float_model=args.float_model), jobs=args.jobs)
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
            worst = min(per_output) if get_metric(m).higher_is_better else max(per_output)
            values[m] = math.nan if any(math.isnan(v) for v in per_output) else worst
        cal = model.calibration.get(item)
        extra = f"{cal.threshold:.4g} / {cal.qtype}" if cal is not None and cal.tensor_type == "feature" else ""
        rows.append((item, values, extra))
    first = get_metric(metrics[0])  # worst first, by the value shown (worst over the selected outputs)
    rows.sort(key=lambda row: _worst_first(row[1][first.name], first.higher_is_better))
    if result.node_type == "float":  # what float on the item repairs: the best repair first
        rows.reverse()
    report = {item: values for item, values, _ in rows}
    save_json(report, Path(args.out) / f"sensitivity_{args.node_type}.json")
    if args.json:
        print(dumps_json(report, indent=2))
    else:
        Console().print(sensitivity_table(rows, metrics, args.top))
        console.print(
            f"{len(rows)} items on {len(indices)} samples, outputs: {', '.join(outputs)}; "
            f"{result.model_runs} model runs in {result.seconds:.1f} s (0 = cached); -> {args.out}"
        )
    return 0


def _worst_first(value: float, higher_is_better: bool) -> float:
    """Sort key putting the most damaging item first; a NaN (non-finite output) is the most damaging of all."""
    if math.isnan(value):
        return -math.inf
    return value if higher_is_better else -value


def _outputs_of(evaluator, name: str | None) -> list[str]:
    """Model outputs selected by --output-node: an output name, or every output downstream of a node."""
    if not name:
        return list(evaluator.outputs)
    if name in evaluator.outputs:
        return [name]
    from autoprec.quant_config import subgraph_nodes

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
    from autoprec.api import SearchSettings, check_settings
    from autoprec.calibrate import calibrate, foreign_outputs
    from autoprec.cli.search_command import run_search_command
    from autoprec.demo import write_demo_data
    from autoprec.demo.models import spec_of
    from autoprec.report import calibration_table

    spec_of(args.name)  # an unknown name, a bad --target or --budget is refused before any work
    work = Path(args.out) / args.name
    task = DEMO_TASK_METRICS.get(args.name)
    settings = SearchSettings(
        model=work / "model_output", target=DEMO_TARGETS[args.name] if args.target is None else args.target,
        budget=args.budget, out=work / "autoprec_out", force=True, jobs=args.jobs, task_metric=task,
    )  # fmt: skip
    check_settings(settings)
    foreign = foreign_outputs(work / "model_output")
    if foreign:  # calibrate's advice (--force) does not apply: the demo always replaces its own files
        raise UserError(
            f"{work / 'model_output'} holds files autoprec did not write ({', '.join(foreign[:3])}); the demo replaces "
            "only its own files there: move them away, or choose another -o folder"
        )
    num_samples = DEMO_SAMPLES.get(args.name, 8) if args.num_samples is None else args.num_samples
    model, data = write_demo_data(args.name, work, num_samples, force=True)
    console.print(f"[bold]1/4[/] demo model and {num_samples} realistic samples -> {work}")
    calibrated = calibrate(model, data, work / "model_output", force=True)
    if calibrated.settings["auto_trials"]:
        Console().print(calibration_table(calibrated.settings))
    console.print(f"[bold]2/4[/] calibrated -> {work / 'model_output'}")
    console.print("[bold]3/4[/] baselines")
    show_baselines(work / "model_output", jobs=args.jobs)
    what = f"task metric {task.rpartition(':')[2]}" if task else "mean cosine on every output"
    console.print(f"[bold]4/4[/] search: target {settings.target} {what}, budget {args.budget}")
    return run_search_command(settings)


DEMO_TARGETS = {"layout": 0.99, "ocr_det": 0.99, "vad": 0.99, "magika": 0.99}
# task metrics instead of output cosine (autoprec/demo/metrics.py says why): magika, a classifier, the share of
# the float model's reported labels kept; ocr_det, a text detector, the IoU of its text masks with float's
DEMO_TASK_METRICS = {
    "magika": "autoprec.demo.metrics:label_agreement",
    "ocr_det": "autoprec.demo.metrics:text_mask_iou",
}
# samples `autoprec demo` makes (benchmarks/RESULTS.md, "Held-out check"): layout 12, so that the search part keeps
# the all-int16 ceiling with a quarter held out (8 left one page weighing 1/6); vad 64, so that the quarter held out
# (16 clips) sees the rare clips ending in a -60 dBFS noise floor that int8 front ends can't hold; magika 100, so
# that a 0.99 share of labels is a rate (one changed label in 100 files), not "no file may change"
DEMO_SAMPLES = {"layout": 12, "ocr_det": 8, "vad": 64, "magika": 100}
