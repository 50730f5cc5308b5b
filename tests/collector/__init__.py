"""Tests of the collector (telemetry.collector)."""
