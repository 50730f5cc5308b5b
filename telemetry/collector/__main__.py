"""``python -m telemetry.collector``: runs :func:`telemetry.collector.main`."""

from telemetry.collector import main

if __name__ == "__main__":
    raise SystemExit(main())
