"""What strategies publish for later strategies and for the output files (`SearchState.results`).

Typed, so a strategy that reads another's result sees what it gets: e.g. `output_filter` reads
`results.sweep.largest_failing`, `write_outputs` reads `results.subgraphs` and `results.one_minimal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoprec.engine.state import Candidate


@dataclass
class SweepResult:
    """A threshold sweep: the metric it ranked by, its passing candidate (None if even the full ranking
    failed) and the largest failing set of units met on the way (where output filtering starts)."""

    metric: str
    passing: Candidate | None
    largest_failing: frozenset[str]


@dataclass
class CompensationResult:
    """Error compensation: the compensable calibration nodes ranked by damage, the ones chosen (None if
    ec on all of them did not meet the target), and the candidate with ec on all of them."""

    ranking: list[str]
    nodes: list[str] | None
    full: Candidate | None


@dataclass
class FallbackResult:
    """Float fallback: the float-capable items ranked by how much float on each repairs all-int16, the ones
    chosen (None until the bisection ran), and the candidate with all of them in float (None if it failed)."""

    ranking: list[str]
    items: list[str] | None
    full: Candidate | None


@dataclass
class SubgraphSpec:
    """A subgraph kept whole: written as `subgraph_config.<name>` (its nodes are not repeated in node_config)."""

    inputs: list[str]
    outputs: list[str]
    qtype: str
    units: list[str]

    def config(self) -> dict:
        return {"inputs": self.inputs, "outputs": self.outputs, "qtype": self.qtype}


@dataclass
class Results:
    """Everything strategies have published so far in this search."""

    ceiling_fails: list[str] | None = None  # outputs all-int16 fails (None: it passes, or was not measured)
    sweep: SweepResult | None = None  # the cheapest threshold sweep (threshold_sweep, error_compensation)
    compensation: CompensationResult | None = None
    fallback: FallbackResult | None = None
    subgraphs: dict[str, SubgraphSpec] = field(default_factory=dict)
    subgraph_search: dict | None = None  # what the subgraph strategy scored, promoted and shrank
    one_minimal: bool = False  # no single raised unit of the winner can be dropped (checked by evaluation)
