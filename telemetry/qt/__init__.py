"""The Qt layer of desktop-telemetry (PySide6): consent notice, settings toggle, event inspector,
network reachability and drive hot-plug signals.

Depends on the core (``telemetry``); the core never imports this package. Install with the
``qt`` extra (``PySide6-Essentials``).
"""

from telemetry.qt._connectivity import QtConnectivity
from telemetry.qt._drives import QtDriveWatcher
from telemetry.qt._inspector import EventInspector
from telemetry.qt._notice import ConsentNotice
from telemetry.qt._settings import TelemetrySettingsWidget

__all__ = [
    "ConsentNotice",
    "EventInspector",
    "QtConnectivity",
    "QtDriveWatcher",
    "TelemetrySettingsWidget",
]
