"""Benchmarks: scripts run as `python bench/<name>.py` (a package only so module names stay unique)."""
