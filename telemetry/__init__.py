"""Durable, consent-first usage telemetry for desktop apps."""
