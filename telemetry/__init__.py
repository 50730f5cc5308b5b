"""Durable, consent-first usage telemetry for desktop apps.

>>> import telemetry
>>> with telemetry.create_client("my-project", "my-app", "1.0.0") as client:  # doctest: +SKIP
...     client.track("Application start", {"packageType": "deb"})
"""

from telemetry import url_params
from telemetry._delivery import UploadPolicy
from telemetry._platform import library_version
from telemetry.catalogue import EventCatalogue
from telemetry.client import (
    AMPLITUDE_URL,
    PRODUCTION_ENDPOINT,
    STAGING_ENDPOINT,
    Client,
    NoopClient,
    create_client,
    create_noop_client,
    default_data_dir,
    endpoint_url,
)
from telemetry.consent import ConsentPolicy, ConsentState
from telemetry.errors import ConfigError, InvalidEventError, StoreError, TelemetryError
from telemetry.experiments import LocalExperiment
from telemetry.store import EventStore
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
    "EventStore",
    "InvalidEventError",
    "LocalExperiment",
    "NoopClient",
    "StoreError",
    "TelemetryError",
    "Tracker",
    "UploadPolicy",
    "__version__",
    "create_client",
    "create_noop_client",
    "default_data_dir",
    "endpoint_url",
    "url_params",
]
