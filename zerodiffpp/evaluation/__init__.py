"""GZSL metrics, calibrated stacking, learning diagnostics and the run's report."""
