"""`autoprec export --format hmct`: a config (or the model's own qtypes) -> HMCT calibrated model + quant_config.

The `export` parser (both formats) is in `autoprec.cli.export_command`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autoprec.api import resolve_workdir
from autoprec.ir.hmct_attrs import SEARCHABLE
from autoprec.model_io import output_folder

console = Console(stderr=True)


def cmd_export_hmct(args: argparse.Namespace) -> int:
    from autoprec.hardware import get_profile
    from autoprec.quant_config import read_quant_config

    model_path, _ = resolve_workdir(args.workdir)
    config = read_quant_config(Path(args.config)) if args.config else None
    with output_folder(Path(args.out).parent):
        written = export_hmct(model_path, Path(args.out), config, get_profile(args.profile), args.force)
    console.print(f"[green]wrote[/] {written} and {Path(args.out).parent / 'quant_config.json'}")
    return 0


def export_hmct(model_path: Path, out: Path, config: dict | None, profile, force: bool = False) -> str:
    """Write the HMCT calibrated model of `config` (None: the model's qtypes) and its quant_config; a summary."""
    from autoprec.ir import CalibratedModel
    from autoprec.ir.hmct_export import to_hmct
    from autoprec.ir.hmct_import import from_hmct
    from autoprec.model_io import check_output_file, load_model, save_json, save_model
    from autoprec.quant_config import from_quant_config, to_quant_config

    config_out = out.parent / "quant_config.json"
    for path in (out, config_out):
        check_output_file(path, force)
    model = CalibratedModel.load(model_path)
    assignment = from_quant_config(model, config, profile) if config is not None else model.assignment()
    proto = to_hmct(load_model(model_path), model, assignment)
    written = from_hmct(proto, str(out))
    if _by_place(written, written.assignment()) != _by_place(model, assignment):
        raise RuntimeError("the written HMCT model does not read back as the assignment")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(proto, out)
    save_json(to_quant_config(model, assignment, profile), config_out)
    raised = sum(q == "int16" for q in assignment.values())
    return f"{out} ({len(assignment)} calibration nodes, {raised} int16)"


def _by_place(model, qtypes: dict[str, str]) -> dict[tuple, str]:
    """int8/int16 calibration nodes keyed by (tensor, consumers): names differ between QDQ and HMCT forms (float
    qtypes read back as fixed nodes, not calibration nodes)."""
    return {
        (cal.tensor, tuple(sorted(cal.consumers))): qtypes[name]
        for name, cal in model.calibration.items()
        if qtypes[name] in SEARCHABLE
    }
