"""Durable, consent-first usage telemetry for desktop apps.

>>> import telemetry
>>> with telemetry.create_client("my-project", "my-app", "1.0.0") as client:  # doctest: +SKIP
...     client.track("Application start", {"packageType": "deb"})

The public surface is what ``__all__`` lists (pinned by ``tests/core/test_public_api.py``);
every module whose name starts with ``_`` is private. The client, the store and the uploader
are imported on first use of a name that needs them, so ``import telemetry`` (and the
``telemetry`` command's start-up) loads neither SQLite helpers nor the HTTP stack.
"""

from typing import TYPE_CHECKING

from telemetry._options import (
    AMPLITUDE_URL,
    PRODUCTION_ENDPOINT,
    STAGING_ENDPOINT,
    default_data_dir,
    endpoint_url,
)
from telemetry._platform import library_version
from telemetry._protocol import TelemetryClient
from telemetry.consent import ConsentPolicy, ConsentState
from telemetry.errors import ConfigError, InvalidEventError, StoreError, TelemetryError

if TYPE_CHECKING:
    from telemetry import url_params
    from telemetry._delivery import UploadPolicy
    from telemetry._factory import create_client, open_client
    from telemetry._noop import NoopClient, create_noop_client
    from telemetry._store import QueueStats, StoredEvent
    from telemetry.catalogue import EventCatalogue
    from telemetry.client import Client
    from telemetry.experiments import LocalExperiment
    from telemetry.tracker import Tracker
    from telemetry.url_params import AnalyticsUrlParams

__version__ = library_version()

__all__ = [
    "AMPLITUDE_URL",
    "PRODUCTION_ENDPOINT",
    "STAGING_ENDPOINT",
    "AnalyticsUrlParams",
    "Client",
    "ConfigError",
    "ConsentPolicy",
    "ConsentState",
    "EventCatalogue",
    "InvalidEventError",
    "LocalExperiment",
    "NoopClient",
    "QueueStats",
    "StoreError",
    "StoredEvent",
    "TelemetryClient",
    "TelemetryError",
    "Tracker",
    "UploadPolicy",
    "__version__",
    "create_client",
    "create_noop_client",
    "default_data_dir",
    "endpoint_url",
    "open_client",
    "url_params",
]

#: Public names loaded on first use, and the module that defines each.
_LAZY = {
    "Client": "telemetry.client",
    "create_client": "telemetry._factory",
    "open_client": "telemetry._factory",
    "NoopClient": "telemetry._noop",
    "create_noop_client": "telemetry._noop",
    "QueueStats": "telemetry._store",
    "StoredEvent": "telemetry._store",
    "UploadPolicy": "telemetry._delivery",
    "EventCatalogue": "telemetry.catalogue",
    "AnalyticsUrlParams": "telemetry.url_params",
    "LocalExperiment": "telemetry.experiments",
    "Tracker": "telemetry.tracker",
    "url_params": "telemetry.url_params",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'telemetry' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = module if module_name.endswith(f".{name}") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
