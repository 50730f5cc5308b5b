"""Durable, consent-first usage telemetry for desktop apps.

>>> import telemetry
>>> with telemetry.create_client("my-project", "my-app", "1.0.0") as client:  # doctest: +SKIP
...     client.track("Application start", {"packageType": "deb"})

The public surface is what ``__all__`` lists (pinned by ``tests/core/test_public_api.py``);
every module whose name starts with ``_`` is private.
"""

from telemetry import url_params
from telemetry._delivery import UploadPolicy
from telemetry._noop import NoopClient, create_noop_client
from telemetry._options import (
    AMPLITUDE_URL,
    PRODUCTION_ENDPOINT,
    STAGING_ENDPOINT,
    default_data_dir,
    endpoint_url,
)
from telemetry._platform import library_version
from telemetry._protocol import TelemetryClient
from telemetry._store import QueueStats, StoredEvent
from telemetry.catalogue import EventCatalogue
from telemetry.client import Client, create_client, open_client
from telemetry.consent import ConsentPolicy, ConsentState
from telemetry.errors import ConfigError, InvalidEventError, StoreError, TelemetryError
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
