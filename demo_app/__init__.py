"""Etcher-like demo app: a careful image flasher that embeds the telemetry module end to end.

``demo_app.flasher`` is the Qt-free engine, ``demo_app.analytics`` the telemetry (Etcher's
event names through ``telemetry.Tracker``), ``demo_app.ui`` the PySide6 interface and
``demo_app.app`` the command line and composition root.
"""
