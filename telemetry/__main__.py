"""``python -m telemetry`` runs the ``telemetry`` command."""

from telemetry.cli import main

raise SystemExit(main())
