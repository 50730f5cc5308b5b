"""Fixtures for the error-report tests: ``data_dir`` comes from ``tests/conftest.py``; the
environment's DO_NOT_TRACK/TELEMETRY_DISABLED are cleared unless a test sets them."""

from __future__ import annotations

from tests._fixtures import _no_environment_veto  # noqa: F401  (fixture: registered by the import)
