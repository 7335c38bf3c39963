"""SearchSettings: every knob of one search, shared by `autoprec search` and `autoprec.api.search`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STRATEGIES = (
    "baselines",
    "threshold_sweep",
    "output_filter",
    "metric_switch",
    "subgraph",
    "error_compensation",
    "float_fallback",
    "optuna",
    "prune",
)


@dataclass
class SearchSettings:
    """What to search, against what target, with which strategies, and where results go.

    Example: `SearchSettings(model="work/model_output", target=0.99, budget=50, jobs=2)`.
    """

    model: str | Path = "."  # a model_output folder or a calibrated model file
    data: str | Path | None = None  # evaluation data (default: <model_output>/calibration_data)
    target: float = 0.99  # threshold for every output
    metric: str = "cosine-similarity"
    aggregate: str = "mean"  # over samples: mean or min
    targets_file: str | None = None  # per-output overrides (TOML or JSON)
    task_metric: str | None = None  # module:function scored relative to float
    budget: int = 50  # candidate evaluations (baselines included)
    profile: str = "generic"  # hardware profile name or .json file
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    options: dict[str, str] = field(default_factory=dict)  # strategy options, e.g. {"optuna.sampler": "nsga2"}
    subgraphs: tuple[str, ...] = ()  # NAME:IN1,IN2:OUT1 regions the subgraph strategy may promote
    out: str | Path = "autoprec_out"
    resume: bool = False
    force: bool = False
    storage: str | None = None  # shared Optuna storage for several workers (default: OUT/ledger.journal)
    study: str = "autoprec"
    jobs: int | str = 1  # worker processes, or "auto": the available cores
    num_samples: int | None = None
    sensitivity_samples: int = 2
    report: bool = True  # write OUT/report.html at the end (needs matplotlib)
    runtime: str = "as-searched"  # "ort-default": score every candidate as onnxruntime's default session runs it
    sensitivity: str = "incremental"  # incremental, adaptive (groups of units, split where they damage) or full
    # held-out check: a fraction of the samples (0 = off), or a folder of other samples; None = a quarter of
    # the samples when there are at least 8 (autoprec.engine.holdout)
    holdout: float | str | Path | None = None
    confidence: float | None = None  # judge the lower confidence bound of each mean, e.g. 0.9 (None = off)
    float_model: str | Path | None = None  # the original float model of a foreign QDQ model (the reference)
