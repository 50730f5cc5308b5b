"""Image sources: what an image file is (name, kind, sizes) and a streaming reader for it.

Plain images (``.img``, ``.iso``, ``.raw``, ``.bin``) are read as they are; compressed ones
(``.gz``, ``.xz``, ``.bz2``, ``.zip`` holding exactly one image) are decompressed on the fly,
one chunk at a time, so an image is never held in memory. The uncompressed size comes from the
container's headers where it is recorded (zip's central directory, xz's index, gzip's ISIZE
trailer, the last only modulo 4 GiB and so flagged as an estimate); bzip2 records none.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, cast

from demo_app.flasher.errors import FlashError

__all__ = [
    "COMPRESSED_EXTENSIONS",
    "FILE_DIALOG_FILTERS",
    "IMAGE_EXTENSIONS",
    "ImageReader",
    "ImageSource",
    "open_image",
]

IMAGE_EXTENSIONS: Final = ("img", "iso", "raw", "bin")
COMPRESSED_EXTENSIONS: Final = ("gz", "xz", "bz2", "zip")

#: Name filters for a file dialog (Qt's ``"Label (*.a *.b)"`` syntax).
FILE_DIALOG_FILTERS: Final = (
    "Disk images (" + " ".join(f"*.{e}" for e in IMAGE_EXTENSIONS + COMPRESSED_EXTENSIONS) + ")",
    "Uncompressed images (" + " ".join(f"*.{e}" for e in IMAGE_EXTENSIONS) + ")",
    "Compressed images (" + " ".join(f"*.{e}" for e in COMPRESSED_EXTENSIONS) + ")",
    "All files (*)",
)

_GZIP_MAGIC: Final = b"\x1f\x8b"
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"
_BZ2_MAGIC: Final = b"BZh"
_ZIP_MAGIC: Final = b"PK\x03\x04"
_XZ_FOOTER_MAGIC: Final = b"YZ"


@dataclass(frozen=True, slots=True)
class ImageSource:
    """An image file, described without reading it through.

    ``name`` is the image's own name (the member of a zip, the file name without the
    compression suffix otherwise); ``extension`` its image extension (``img``, ``iso``...,
    ``""`` if unknown); ``compression`` ``None``, ``"gz"``, ``"xz"``, ``"bz2"`` or ``"zip"``;
    ``size`` the uncompressed size in bytes (``None`` when unknown); ``size_is_estimate`` when
    it came from gzip's 32-bit trailer; ``compressed_size`` the file's size on disk when
    compressed, else ``None``.
    """

    path: Path
    name: str
    extension: str
    compression: str | None
    size: int | None
    compressed_size: int | None
    size_is_estimate: bool = False
    member: str | None = None

    @property
    def file_size(self) -> int:
        """Bytes on disk (what progress is measured against for compressed images)."""
        return self.compressed_size if self.compressed_size is not None else (self.size or 0)

    def telemetry_properties(self) -> dict[str, str | int | bool | None]:
        """What may leave the machine: kinds and sizes, never the path or the file name."""
        return {
            "extension": self.extension or None,
            "compression": self.compression,
            "size": self.size,
            "compressed_size": self.compressed_size,
            "size_is_estimate": self.size_is_estimate,
        }

    def open(self, chunk_size: int = 4 << 20) -> ImageReader:
        """A streaming reader of the uncompressed bytes."""
        return ImageReader(self, chunk_size)


class ImageReader:
    """Reads an image's uncompressed bytes into caller buffers, tracking the bytes on disk read.

    ``position`` is how far into the file on disk the reader is (compressed bytes for a
    compressed image), so progress can be shown when the uncompressed size is unknown.
    """

    def __init__(self, source: ImageSource, chunk_size: int) -> None:
        self.source = source
        self._file: BinaryIO = open(source.path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self._zip: zipfile.ZipFile | None = None
        # A raw file, a gzip/lzma/bz2 decompressing file or a zip member: all have readinto.
        self._stream: Any
        _advise_sequential(self._file)
        try:
            if source.compression is None:
                self._stream = self._file
            elif source.compression == "gz":
                self._stream = gzip.GzipFile(fileobj=_blocked(self._file, chunk_size), mode="rb")
            elif source.compression == "xz":
                self._stream = lzma.LZMAFile(_blocked(self._file, chunk_size), "rb")  # noqa: SIM115
            elif source.compression == "bz2":
                self._stream = bz2.BZ2File(_blocked(self._file, chunk_size), "rb")
            else:
                self._zip = zipfile.ZipFile(self._file)
                self._stream = self._zip.open(source.member or "", "r")
        except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
            self.close()
            raise FlashError.from_source(exc, source) from exc

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far."""
        try:
            return self._file.tell()
        except (OSError, ValueError):
            return 0

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` as far as the image allows; 0 at the end."""
        filled = 0
        total = len(buffer)
        try:
            while filled < total:
                n = self._stream.readinto(buffer[filled:])
                if not n:
                    break
                filled += n
        except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error) as exc:
            raise FlashError.from_source(exc, self.source) from exc
        if self.source.compression is None and filled:
            _drop_cache(self._file, self.position - filled, filled)
        return filled

    def close(self) -> None:
        """Release the files."""
        for item in (self._stream if hasattr(self, "_stream") else None, self._zip, self._file):
            if item is not None:
                with contextlib.suppress(Exception):
                    item.close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blocked(raw: BinaryIO, block: int) -> BinaryIO:
    """``raw`` read in large blocks, typed as the file object the decompressors take."""
    return cast("BinaryIO", _Counted(raw, block))


class _Counted:
    """A raw file read in large blocks by the decompressors (fewer system calls)."""

    def __init__(self, raw: BinaryIO, block: int) -> None:
        self._raw = raw
        self._block = max(block, 1 << 16)

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(self._block if size is None or size < 0 else max(size, 1))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        """The reader closes the raw file itself."""


def _advise_sequential(file: BinaryIO) -> None:
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)


def _drop_cache(file: BinaryIO, offset: int, length: int) -> None:
    """Tell the kernel the bytes just read are not needed again (keeps the page cache calm)."""
    if hasattr(os, "posix_fadvise") and offset >= 0:
        with contextlib.suppress(OSError):
            os.posix_fadvise(file.fileno(), offset, length, os.POSIX_FADV_DONTNEED)


# ---------------------------------------------------------------------------------- describing


def open_image(path: str | os.PathLike[str]) -> ImageSource:
    """Describe the image at ``path`` (reading only headers and trailers).

    Raises:
        FlashError: the file cannot be read, is not a supported image, or is a zip that does
            not hold exactly one file.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(6)
            file_size = os.fstat(f.fileno()).st_size
            if not p.is_file():
                raise FlashError("ENOTFILE", "The image is not a regular file.")
            compression = _compression_of(p, head)
            if compression is None:
                ext = _image_extension(p.name)
                return ImageSource(p, p.name, ext, None, file_size, None)
            if compression == "zip":
                return _describe_zip(p, file_size)
            inner = (
                p.name[: -len(p.suffix)] if p.suffix.lower().lstrip(".") == compression else p.name
            )
            size: int | None = None
            estimate = False
            if compression == "xz":
                size = _xz_uncompressed_size(f, file_size)
            elif compression == "gz":
                size = _gzip_isize(f, file_size)
                estimate = size is not None
            return ImageSource(
                p, inner, _image_extension(inner), compression, size, file_size, estimate
            )
    except FlashError:
        raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise FlashError.from_source(exc, None) from exc


def _compression_of(path: Path, head: bytes) -> str | None:
    if head.startswith(_GZIP_MAGIC):
        return "gz"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_BZ2_MAGIC) and path.suffix.lower() == ".bz2":
        return "bz2"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    suffix = path.suffix.lower().lstrip(".")
    if suffix in COMPRESSED_EXTENSIONS:
        raise FlashError(
            "EBADIMAGE", f"The file is named .{suffix} but is not {suffix}-compressed."
        )
    return None


def _image_extension(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    return suffix if suffix in IMAGE_EXTENSIONS else ""


def _describe_zip(path: Path, file_size: int) -> ImageSource:
    with zipfile.ZipFile(path) as archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
    if len(members) != 1:
        raise FlashError(
            "EBADIMAGE",
            f"The zip archive holds {len(members)} files; it must hold exactly one image.",
        )
    member = members[0]
    inner = Path(member.filename).name
    return ImageSource(
        path,
        inner,
        _image_extension(inner),
        "zip",
        member.file_size,
        file_size,
        member=member.filename,
    )


def _gzip_isize(f: BinaryIO, file_size: int) -> int | None:
    """gzip's ISIZE trailer: the uncompressed size modulo 2**32 (of the last member)."""
    if file_size < 18:
        return None
    f.seek(file_size - 4)
    (isize,) = struct.unpack("<I", f.read(4))
    return int(isize)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad xz varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _xz_uncompressed_size(f: BinaryIO, file_size: int) -> int | None:
    """Sum the uncompressed sizes in the index of every xz stream (walking back from the end)."""
    total = 0
    end = file_size
    try:
        while end > 0:
            # Skip stream padding (multiples of four NUL bytes).
            f.seek(end - 4)
            while end >= 4 and f.read(4) == b"\x00\x00\x00\x00":
                end -= 4
                f.seek(end - 4)
            if end < 24:
                return None
            f.seek(end - 12)
            footer = f.read(12)
            if footer[10:12] != _XZ_FOOTER_MAGIC:
                return None
            backward_size = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
            index_start = end - 12 - backward_size
            if index_start < 12:
                return None
            f.seek(index_start)
            index = f.read(backward_size)
            if index[0] != 0:
                return None
            count, pos = _read_varint(index, 1)
            stream_blocks = 0
            for _ in range(count):
                unpadded, pos = _read_varint(index, pos)
                uncompressed, pos = _read_varint(index, pos)
                total += uncompressed
                stream_blocks += unpadded + (-unpadded % 4)
            end = index_start - stream_blocks - 12  # minus the stream header
    except (ValueError, IndexError, struct.error, OSError):
        return None
    return total if end == 0 else None


def iter_chunks(source: ImageSource, chunk_size: int = 4 << 20) -> Iterator[bytes]:
    """The uncompressed image in chunks (a convenience for tests and tools)."""
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    with source.open(chunk_size) as reader:
        while n := reader.readinto(view):
            yield bytes(view[:n])
