"""Reporting: rich tables for the terminal (`tables`); report.html (`html`, `figures`, `notes`, `pareto`,
`curve`) and HMCT's debug plots (`debug`, `tensors`), drawn with the optional matplotlib (`plotting`)."""

from autoprec.report.tables import (
    baseline_table,
    calibration_table,
    candidates_table,
    scores_table,
    sensitivity_table,
)

__all__ = ["baseline_table", "calibration_table", "candidates_table", "scores_table", "sensitivity_table"]
