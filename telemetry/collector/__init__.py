"""The collector: an HTTP service that receives Amplitude HTTP V2 event batches and stores them.

It plays the role of balena's analytics-backend for the telemetry client. The client side never
imports this package.

Wire protocol (``POST /2/httpapi`` and ``POST /amplitude/2/httpapi``): a JSON body
``{"api_key": PROJECT, "events": [...], "options": {"min_id_length": N}, "device_proofs":
{DEVICE_ID: SHA256_HEX}}``, plain or with ``Content-Encoding: gzip``. ``device_proofs`` (optional)
gives ``telemetry.wire.proof_hash`` of each device id's proof; the first hash per project and
device id is kept (trust on first use, never replaced), the field is never stored in an event
row nor forwarded. Answers:

* **200** ``{"code": 200, "events_ingested": N, "payload_size_bytes": B,
  "server_upload_time": MS, "duplicates": D, "rejected": R}`` once the batch is committed.
  ``N`` is the number of events accepted (all of the batch), ``D`` how many of them were
  already stored (same ``api_key`` + ``insert_id``) and were ignored, ``R`` how many belong to a
  device that asked for deletion (not stored), so ``N - D - R`` rows were added.
* **400** in Amplitude's shape (``code``, ``error``, ``missing_field``,
  ``events_with_invalid_fields`` and ``events_with_missing_fields``, each mapping a field name to
  event indexes). Nothing of the batch is stored; the client drops the named events and resends
  the others. An event that is not an object or is over 32 KiB is named under the field
  ``"event"``; an event with neither ``device_id`` nor ``user_id`` under ``"device_id"``. An
  event holding a string (key or value) with a NUL or a lone surrogate, a non-finite number
  (``1e999``) or an integer outside the signed 64-bit range is named under its top-level key
  (``"event"`` when the key itself is bad or over 128 characters); a ``time`` that is not an
  integer from 0 to 253402300799999 (end of year 9999) under ``"time"``.
* **400** "Invalid JSON request body", naming no event, for a body that is not strict JSON:
  not UTF-8, a byte order mark, UTF-16 or UTF-32, ``NaN``/``Infinity``, a repeated key.
* **413** ``{"code": 413, "error": "Payload too large"}``: more than 2,000 events, or a body over
  1 MiB after decompression (decompression is streamed and stops at the cap).
* **415** for a ``Content-Encoding`` other than gzip/identity.
* **400** "Unknown project" when a configuration is given and does not list the ``api_key``.
* **429** with ``Retry-After`` when a device sends more than its rate (``[rate_limit]``).
* **503** with ``Retry-After: 5`` when the database cannot be written; nothing was committed.
  Nothing a client can send gets a 5xx.

Events are stored as received, as compact RFC 8259 JSON on both databases, except that an ``ip`` key
is dropped: the collector keeps no IP address, neither the sender's nor one written into an event.
An event without ``insert_id`` gets a deterministic one, ``"collector-sha256:" + sha256(canonical
JSON of the event)``, so a retried batch is still stored once.

Deletion requests (``POST /deletion`` and ``POST /amplitude/deletion``): a JSON body exactly
``{"project": str, "device_id": str, "reason": str, "proof": str}`` (``proof``: 64 lowercase hex
digits, ``telemetry.wire.device_proof``; any other key or type, or no proof: 400). When
``sha256(proof)`` is the device's known proof hash (or none is known yet), every stored event of
that project and device id, and its pending forwards, are deleted in one transaction and a
tombstone keeps that hash: events of that device arriving later are not stored (counted in the
ingest answer's ``rejected``) unless their batch carries a different proof hash. A wrong proof
deletes nothing. The answer is always ``{"code": 200}``, the same for a right proof, a wrong one
and an unknown device. Repeating the request is harmless. At most 100,000 tombstones per project
(oldest dropped); 20 requests per network in a burst, then one per 6 s (429 with
``Retry-After``).

Error reports (``POST /api/<project>/envelope/``): Sentry envelopes from our client or the
official ``sentry-sdk``; ``event`` items are stored as reports, deduplicated per project and
``event_id``, grouped by fingerprint, deleted with their device, and forwarded to a project's
``sentry_dsn``; see ``_envelope_route``, ``_reports`` and ``_report_forwarder``.
``main(["errors", ...])`` lists the groups.

``main(argv)`` is the command line (``python -m telemetry.collector``); ``stored_events(path)``
reads back every event a SQLite database holds.

``GET /healthz`` answers ``{"status": "ok"}``, or 503 when the database is not writable;
``GET /metrics`` gives Prometheus text. Storage (SQLite or PostgreSQL), forwarding to Amplitude
and the signed link tracker: see ``_storage``, ``_sqlite_store``, ``_postgres_store``,
``_forwarder`` and ``_links``; the HTTP routes are assembled in ``_app``.
"""

from __future__ import annotations

from telemetry.collector._app import create_app
from telemetry.collector._cli import main
from telemetry.collector._config import CollectorConfig, ConfigError, load_config
from telemetry.collector._open_storage import open_storage
from telemetry.collector._server import serve
from telemetry.collector._sqlite_schema import SCHEMA_VERSION
from telemetry.collector._sqlite_store import EventStore
from telemetry.collector._storage import (
    BatchToStore,
    DeletionResult,
    InsertResult,
    Storage,
    StorageUnavailable,
)
from telemetry.collector._stored_events import stored_events

__all__ = [
    "SCHEMA_VERSION",
    "BatchToStore",
    "CollectorConfig",
    "ConfigError",
    "DeletionResult",
    "EventStore",
    "InsertResult",
    "Storage",
    "StorageUnavailable",
    "create_app",
    "load_config",
    "main",
    "open_storage",
    "serve",
    "stored_events",
]
