"""The sensitivity pass shared by the workers of one storage: each item is measured once, by whichever worker
claims it (the ledger's claim mechanism, in a study of its own next to the search's), and every worker reads
the others' results from the storage. Workers start at different items and skip items another worker is
measuring, so they split the pass instead of waiting on each other; they wait only for what is left at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import optuna

from autoprec.engine.ledger import Ledger, Record
from autoprec.engine.sensitivity import Sensitivity, measure, sensitivity_items
from autoprec.evaluate import Evaluator
from autoprec.hardware import HardwareProfile
from autoprec.model_io import restore, strict

STRATEGY = "sensitivity"


def measure_shared(
    evaluator: Evaluator,
    profile: HardwareProfile,
    ledger: Ledger,
    study: str,
    node_type: str,
    mode: str,
    indices: list[int] | None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "incremental",
) -> Sensitivity:
    """`measure` of every item, split with the other workers through `ledger`'s storage (study `study`)."""
    items = sensitivity_items(evaluator, profile, node_type)
    optuna.create_study(storage=ledger.storage, study_name=study, load_if_exists=True)
    claims = Ledger(ledger.storage, study, None, join=True, exclusive=False)
    upcoming = list(items.values())
    keys = list(items)
    start = os.getpid() % len(keys) if keys else 0
    queue = keys[start:] + keys[:start]  # workers start at different items
    batch_size = 2 * max(1, evaluator.jobs)
    values: dict[str, dict[str, dict[str, float]]] = {}
    started, runs, equivalents = time.perf_counter(), 0, 0.0

    def run(batch: dict[str, int]) -> None:
        nonlocal runs, equivalents
        result = measure(
            evaluator, profile, node_type, mode, indices, list(batch), incremental=method != "full", upcoming=upcoming
        )
        runs, equivalents = runs + result.model_runs, equivalents + result.equivalents
        for item, trial in batch.items():
            claims.complete(trial, STRATEGY, {}, strict(result.values[item]), 0.0)  # strict JSON: sqnr can be inf
            values[item] = result.values[item]

    busy: list[str] = []
    while queue:
        batch: dict[str, int] = {}
        while queue and len(batch) < batch_size:
            item = queue.pop(0)
            claim = claims.claim(item, sys.maxsize, wait=False)
            if isinstance(claim, Record):
                values[item] = restore(claim.scores)
            elif claim is None:
                busy.append(item)  # another worker is measuring it: come back at the end
            else:
                batch[item] = claim
        if batch:
            run(batch)
        if progress:
            progress(len(values), len(keys))
    for item in busy:
        claim = claims.claim(item, sys.maxsize)  # waits for the owner; ours if it failed or went stale
        if isinstance(claim, Record):
            values[item] = restore(claim.scores)
        else:
            run({item: claim})
    if progress:
        progress(len(values), len(keys))
    return Sensitivity(
        mode, node_type, {k: values[k] for k in keys}, items, runs, time.perf_counter() - started, equivalents
    )
