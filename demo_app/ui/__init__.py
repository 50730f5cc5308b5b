"""The demo's Qt (PySide6) user interface: main window, target selector, settings, icons."""
