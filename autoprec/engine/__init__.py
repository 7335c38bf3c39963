"""The search engine: state, driver, ledger and the analyses strategies share.

- `state`: `SearchState` (budget, candidates, base, evaluation through the ledger) and `Candidate`;
- `driver`: loads the strategy pipeline and runs it; `settings`: `SearchSettings`;
- `ledger`: every evaluation as an Optuna trial (resume, several workers);
- `sensitivity`, `units`, `cost`, `target`, `regions`, `baselines`: what strategies rank and measure;
- `results`: typed results strategies publish; `outputs`: quant_config / candidates / result files;
- `bisect`: the one bisection used by sweeps, error compensation and prune.
"""
