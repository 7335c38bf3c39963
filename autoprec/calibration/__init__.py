"""Calibration internals: every method's ranges from one pass (`methods`), `--method auto` (`auto`), and
unsigned symmetric activations for profiles that have them (`unsigned`).

The entry point is `autoprec.calibrate.calibrate`."""
