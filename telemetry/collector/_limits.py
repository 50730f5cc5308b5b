"""Numeric limits and fixed strings of the collector's wire protocol (Amplitude HTTP V2 shape)."""

from __future__ import annotations

from typing import Final

#: Largest accepted request body *after* decompression (Amplitude: "under 1 MB"; we use 1 MiB).
MAX_BODY_BYTES: Final = 1024 * 1024
#: Extra room allowed for the *compressed* size of a gzip body over ``MAX_BODY_BYTES`` (gzip of
#: incompressible data is a little larger than the data itself).
GZIP_OVERHEAD_BYTES: Final = 64 * 1024
#: Most request-body bytes (received and decompressed) one collector process holds at once
#: across all the uploads it is reading; an upload that would go beyond waits for none and gets
#: 503 with ``Retry-After`` (the client backs off): slow or many senders cannot exhaust memory.
MAX_BUFFERED_BODY_BYTES: Final = 64 * 1024 * 1024
RETRY_AFTER_BUSY_SECONDS: Final = 5
#: Most events accepted in one request (Amplitude HTTP V2: 2,000).
MAX_EVENTS_PER_BATCH: Final = 2000
#: Largest accepted event, measured as compact UTF-8 JSON (Segment's 32 KB per-event limit).
MAX_EVENT_BYTES: Final = 32 * 1024
#: Default minimum length of ``device_id`` / ``user_id`` (Amplitude's ``options.min_id_length``).
DEFAULT_MIN_ID_LENGTH: Final = 5
#: Longest accepted ``api_key`` (project name) and ``insert_id``.
MAX_API_KEY_LENGTH: Final = 256
MAX_INSERT_ID_LENGTH: Final = 1024
#: Largest accepted ``time`` (ms since the epoch): 9999-12-31T23:59:59.999Z. A clock-skew
#: correction added to it stays far inside the databases' 64-bit integers.
MAX_TIME_MS: Final = 253_402_300_799_999
#: Longest top-level event key a 400 answer names as the invalid field (a longer one: ``"event"``).
MAX_NAMED_FIELD_LENGTH: Final = 128
#: ``Retry-After`` seconds sent with a 503 when storage is unavailable.
RETRY_AFTER_STORAGE_SECONDS: Final = 5

#: ``device_id`` / ``user_id`` values that Amplitude always refuses (compared case-insensitively,
#: after stripping surrounding whitespace).
PLACEHOLDER_IDS: Final = frozenset(
    {
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "",
        "00000000-0000-0000-0000-000000000000",
        "{}",
        "lmy47d",
        "0",
        "-1",
    }
)

# Amplitude's fixed ``error`` strings (InvalidRequestError / PayloadTooLargeError).
ERROR_MISSING_BODY: Final = "Missing request body"
ERROR_INVALID_JSON: Final = "Invalid JSON request body"
ERROR_MISSING_FIELD: Final = "Request missing required field"
ERROR_INVALID_EVENT_JSON: Final = "Invalid event JSON"
ERROR_INVALID_API_KEY: Final = "Invalid API key"
ERROR_INVALID_EVENTS: Final = "Invalid field values on some events"
ERROR_PAYLOAD_TOO_LARGE: Final = "Payload too large"
# Our own additions, same body shape.
ERROR_INVALID_OPTIONS: Final = "Invalid options: min_id_length must be a positive integer"
ERROR_INVALID_GZIP: Final = "Invalid gzip request body"
ERROR_UNSUPPORTED_ENCODING: Final = "Unsupported Content-Encoding (use gzip or none)"
ERROR_BUSY: Final = "Service busy: too many uploads in progress, retry later"
ERROR_STORAGE_UNAVAILABLE: Final = "Service unavailable: events were not stored, retry later"
ERROR_STOPPING: Final = "Service unavailable: the collector is stopping, retry later"
ERROR_UNKNOWN_KEYS: Final = "Unknown keys in request"
ERROR_WRONG_TYPE: Final = "Invalid field value (expected a non-empty string)"
ERROR_UNKNOWN_PROJECT: Final = "Unknown project: it is not in the collector's configuration"
ERROR_RATE_LIMITED: Final = "Too many requests for this device; retry after the given delay"
ERROR_DELETIONS_RATE_LIMITED: Final = "Too many deletion requests; retry after the given delay"

#: Deletion requests per network (an IPv4 /24, an IPv6 /48): a burst, then one per 6 s.
DELETION_BURST: Final = 20
DELETIONS_PER_SECOND: Final = 1 / 6
