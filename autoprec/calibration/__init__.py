"""Calibration internals: every method's ranges from one pass (`methods`), and `--method auto` (`auto`).

The entry point is `autoprec.calibrate.calibrate`."""
