"""Test-wide setup. Its presence puts `tests/` on sys.path, so suites share `poxrun`."""
