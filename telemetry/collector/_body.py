"""Reading a request body in a streaming way, with a hard cap on its decompressed size and a
budget for all the bodies one process is reading at once (:data:`BODY_BUDGET`), and the answer to
give when it cannot be read (unsupported encoding, too large, corrupt gzip, budget spent)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable
from typing import Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from telemetry.collector import _limits as L
from telemetry.collector._responses import busy, json_error, payload_too_large

__all__ = [
    "BODY_BUDGET",
    "BodyBudget",
    "BodyTooLarge",
    "InvalidGzip",
    "OverBudget",
    "read_capped_body",
    "read_request_body",
]

_GZIP_WBITS = 16 + zlib.MAX_WBITS


class BodyTooLarge(Exception):
    """The (decompressed) body is larger than the limit; reading stopped at the limit."""


class InvalidGzip(Exception):
    """The body claims to be gzip but is not a complete, valid gzip stream."""


class OverBudget(Exception):
    """Reading on would take the process's bodies beyond :data:`BODY_BUDGET`."""


class BodyBudget:
    """Bytes held by the bodies being read (received plus decompressed), across requests. The
    collector's requests run on one event loop per process: no lock is needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, amount: int) -> None:
        """Hold ``amount`` more bytes, or raise :class:`OverBudget` (holding nothing more)."""
        if self.used + amount > self.limit:
            raise OverBudget
        self.used += amount

    def give(self, amount: int) -> None:
        """Release ``amount`` bytes."""
        self.used -= amount


#: The budget of this process (see :data:`telemetry.collector._limits.MAX_BUFFERED_BODY_BYTES`).
BODY_BUDGET: Final = BodyBudget(L.MAX_BUFFERED_BODY_BYTES)


class _CappedGunzip:
    """Incremental gunzip (multi-member aware) that never produces more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._out = bytearray()
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        self._member_has_input = False

    def feed(self, data: bytes) -> None:
        while data:
            if self._inflater.eof:
                # A finished member followed by more bytes: the next gzip member starts here.
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
            self._member_has_input = True
            room = self._limit - len(self._out)
            try:
                # ``max_length`` bounds the output of this call, so a bomb never inflates in
                # memory beyond the limit (+1 byte, which is how we notice it is too big).
                chunk = self._inflater.decompress(data, room + 1)
            except zlib.error as exc:
                raise InvalidGzip(str(exc)) from exc
            self._out += chunk
            if len(self._out) > self._limit:
                raise BodyTooLarge
            if self._inflater.eof:
                data = self._inflater.unused_data
            else:
                data = self._inflater.unconsumed_tail

    @property
    def size(self) -> int:
        """Decompressed bytes so far."""
        return len(self._out)

    def finish(self) -> bytes:
        if not self._member_has_input:
            return b""
        if not self._inflater.eof:
            raise InvalidGzip("truncated gzip stream")
        return bytes(self._out)


async def read_capped_body(
    chunks: AsyncIterable[bytes], *, gzip: bool, limit: int, raw_limit: int
) -> bytes:
    """Read ``chunks`` and return the body, gunzipped when ``gzip`` is true.

    Raises :class:`BodyTooLarge` as soon as more than ``raw_limit`` bytes were received or the
    decompressed body would exceed ``limit`` bytes (without decompressing further), and
    :class:`InvalidGzip` for a corrupt or truncated gzip stream.
    """
    received = 0
    held = 0  # bytes of BODY_BUDGET this read holds until it returns
    try:
        if not gzip:
            plain = bytearray()
            async for chunk in chunks:
                received += len(chunk)
                if received > min(limit, raw_limit):
                    raise BodyTooLarge
                BODY_BUDGET.take(len(chunk))
                held += len(chunk)
                plain += chunk
            return bytes(plain)
        gunzip = _CappedGunzip(limit)
        async for chunk in chunks:
            received += len(chunk)
            if received > raw_limit:
                raise BodyTooLarge
            before = gunzip.size
            BODY_BUDGET.take(len(chunk))
            held += len(chunk)
            gunzip.feed(chunk)
            grown = gunzip.size - before
            BODY_BUDGET.take(grown)
            held += grown
        return gunzip.finish()
    finally:
        BODY_BUDGET.give(held)


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def read_request_body(request: Request, limit: int) -> bytes | Response:
    """The decompressed body, or the error response to send instead."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        gzip = True
    elif encoding in ("", "identity"):
        gzip = False
    else:
        return json_error(415, L.ERROR_UNSUPPORTED_ENCODING)
    raw_limit = limit + (L.GZIP_OVERHEAD_BYTES if gzip else 0)
    declared = _content_length(request)
    if declared is not None and declared > raw_limit:
        return payload_too_large()  # refused before reading (or inflating) a byte
    try:
        return await read_capped_body(request.stream(), gzip=gzip, limit=limit, raw_limit=raw_limit)
    except BodyTooLarge:
        return payload_too_large()
    except InvalidGzip:
        return json_error(400, L.ERROR_INVALID_GZIP)
    except OverBudget:
        return busy()
    except ClientDisconnect:
        return Response(status_code=400)
