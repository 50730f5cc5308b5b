"""``python -m telemetry.collector``: runs :func:`telemetry.collector.main`."""

from telemetry.collector._cli import main

__all__ = ["main"]  # kept importable from here for callers written before telemetry.collector.main

if __name__ == "__main__":
    raise SystemExit(main())
