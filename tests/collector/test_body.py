"""Unit tests of the streaming, capped body reader (gzip and plain)."""

from __future__ import annotations

import asyncio
import gzip
import os
import zlib
from collections.abc import AsyncIterator, Iterable

import pytest

from telemetry.collector._body import BodyTooLarge, InvalidGzip, read_capped_body

LIMIT = 1024 * 1024


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(data: bytes | Iterable[bytes], *, gzipped: bool, chunk: int = 65536) -> bytes:
    payload = data if isinstance(data, bytes) else b"".join(data)
    return asyncio.run(
        read_capped_body(
            _chunks(payload, chunk), gzip=gzipped, limit=LIMIT, raw_limit=LIMIT + 65536
        )
    )


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_gzip_round_trip_any_chunking(chunk: int) -> None:
    data = os.urandom(2000).hex().encode() * 10
    assert read(gzip.compress(data), gzipped=True, chunk=chunk if chunk > 1 else 3) == data


def test_multi_member_gzip() -> None:
    assert read(gzip.compress(b"hello ") + gzip.compress(b"world"), gzipped=True) == b"hello world"


def test_exactly_the_limit_is_accepted() -> None:
    data = b"a" * LIMIT
    assert read(gzip.compress(data), gzipped=True) == data
    assert read(data, gzipped=False) == data


def test_one_byte_over_the_limit_is_refused() -> None:
    with pytest.raises(BodyTooLarge):
        read(gzip.compress(b"a" * (LIMIT + 1)), gzipped=True)
    with pytest.raises(BodyTooLarge):
        read(b"a" * (LIMIT + 1), gzipped=False)


def test_gzip_bomb_stops_at_the_cap() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(200)) + compressor.flush()
    assert len(bomb) < 300_000  # 200 MiB of zeros
    with pytest.raises(BodyTooLarge):
        read(bomb, gzipped=True, chunk=len(bomb))


def test_compressed_size_over_raw_limit_is_refused() -> None:
    with pytest.raises(BodyTooLarge):
        read(gzip.compress(os.urandom(LIMIT + 70_000)), gzipped=True)


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(b"x" * 1000)[:-5], gzip.compress(b"ok") + b"garbage"],
)
def test_invalid_gzip(data: bytes) -> None:
    with pytest.raises(InvalidGzip):
        read(data, gzipped=True)


def test_empty_gzip_body_reads_as_empty() -> None:
    assert read(b"", gzipped=True) == b""
