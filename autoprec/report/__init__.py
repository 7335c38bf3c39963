"""Reporting: rich tables for the terminal."""

from autoprec.report.tables import baseline_table, candidates_table, scores_table, sensitivity_table

__all__ = ["baseline_table", "candidates_table", "scores_table", "sensitivity_table"]
