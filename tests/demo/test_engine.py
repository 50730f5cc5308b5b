"""The flashing engine without Qt: image sources, writing, validation, cancel and errors.

Errors come from the kernel, not from mocks: ``/dev/full`` answers ENOSPC, ``/proc/self/mem``
at address 0 answers EIO, a file owned by root refuses an unprivileged writer (EACCES), and a
target whose path is replaced mid-flash is a vanished drive.
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from demo_app.flasher import (
    FILE_DIALOG_FILTERS,
    Flasher,
    FlashError,
    FlashProgress,
    FlashResult,
    Target,
    iter_chunks,
    open_image,
)

from .conftest import image_bytes, write_image

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["img", "xz", "gz", "bz2", "zip"])
def test_sources_describe_and_stream_every_format(tmp_path: Path, kind: str) -> None:
    raw = image_bytes(3 << 20, random_bytes=1 << 19)
    path = write_image(tmp_path, raw, kind, name="raspios.img")
    source = open_image(path)
    assert source.name == "raspios.img"
    assert source.extension == "img"
    assert source.compression == (None if kind == "img" else kind)
    if kind == "img":
        assert source.compressed_size is None
        assert source.size == len(raw)
    else:
        assert source.compressed_size == path.stat().st_size
        # bzip2 records no size; gzip's trailer is exact below 4 GiB but flagged.
        assert source.size == (None if kind == "bz2" else len(raw))
        assert source.size_is_estimate is (kind == "gz")
    chunks = list(iter_chunks(source, chunk_size=1 << 20))
    assert b"".join(chunks) == raw
    assert max(len(c) for c in chunks) <= 1 << 20
    props = source.telemetry_properties()
    assert "raspios" not in repr(props) and str(tmp_path) not in repr(props)


def test_xz_size_sums_every_stream_of_a_concatenated_file(tmp_path: Path) -> None:
    parts = [os.urandom(300_000), bytes(700_000), os.urandom(5)]
    path = tmp_path / "multi.iso.xz"
    path.write_bytes(b"".join(lzma.compress(p, preset=0) for p in parts))
    source = open_image(path)
    assert source.extension == "iso"
    assert source.size == sum(len(p) for p in parts)
    assert b"".join(iter_chunks(source)) == b"".join(parts)


def test_zip_must_hold_exactly_one_image(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.img", b"a" * 10)
        archive.writestr("README.txt", b"b")
    with pytest.raises(FlashError) as info:
        open_image(path)
    assert info.value.code == "EBADIMAGE" and "exactly one" in info.value.message


def test_misnamed_and_truncated_images_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fake.img.xz"
    fake.write_bytes(b"not compressed at all" * 100)
    with pytest.raises(FlashError) as info:
        open_image(fake)
    assert info.value.code == "EBADIMAGE"

    raw = image_bytes(2 << 20)
    whole = lzma.compress(raw, preset=0)
    cut = tmp_path / "cut.img.xz"
    cut.write_bytes(whole[: len(whole) // 2])
    source = open_image(cut)
    assert source.size is None  # the index at the end is gone
    with pytest.raises(FlashError) as info:
        Flasher(source, Target.file(tmp_path / "out.img")).run()
    assert info.value.code == "EBADIMAGE"


def test_file_dialog_filters_list_every_supported_extension() -> None:
    first = FILE_DIALOG_FILTERS[0]
    for ext in ("img", "iso", "raw", "bin", "gz", "xz", "bz2", "zip"):
        assert f"*.{ext}" in first


def test_flash_writes_validates_and_reports_progress(tmp_path: Path) -> None:
    raw = image_bytes(20 << 20, random_bytes=4 << 20)
    source = open_image(write_image(tmp_path, raw, "xz"))
    target = tmp_path / "target.img"
    target.write_bytes(b"old content that must go" * 1_000_000)  # longer than the image
    reports: list[FlashProgress] = []
    flasher = Flasher(
        source, Target.file(target), chunk_size=1 << 20, on_progress=reports.append,
        progress_interval=0.0,
    )  # fmt: skip
    result = flasher.run()
    assert result.status == "finished" and result.validation == "passed"
    assert target.read_bytes() == raw
    assert result.bytes_written == len(raw)
    assert result.checksum == hashlib.sha256(raw).hexdigest()
    for phase in ("flashing", "validating"):
        fractions = [r.fraction for r in reports if r.phase == phase]
        assert fractions and fractions[-1] == 1.0
        assert fractions == sorted(fractions)
    assert all(r.speed >= 0 for r in reports)
    assert [r.phase for r in reports] == sorted(
        (r.phase for r in reports), key=("flashing", "validating").index
    )


def test_flash_without_validation(tmp_path: Path) -> None:
    raw = image_bytes(2 << 20)
    source = open_image(write_image(tmp_path, raw, "img"))
    result = Flasher(source, Target.file(tmp_path / "t.img"), validate=False).run()
    assert result.validation == "skipped" and result.validate_seconds == 0.0
    assert (tmp_path / "t.img").read_bytes() == raw


@pytest.mark.parametrize("phase", ["flashing", "validating"])
def test_cancel_in_each_phase(tmp_path: Path, phase: str) -> None:
    raw = image_bytes(16 << 20)
    source = open_image(write_image(tmp_path, raw, "img"))
    flasher: Flasher

    def on_progress(progress: FlashProgress) -> None:
        if progress.phase == phase and progress.bytes_done > 0:
            flasher.cancel()

    flasher = Flasher(
        source, Target.file(tmp_path / "t.img"), chunk_size=1 << 20, on_progress=on_progress,
        progress_interval=0.0,
    )  # fmt: skip
    result = flasher.run()
    assert result.status == "cancelled"
    assert result.cancelled_in == phase
    assert result.validation == "cancelled"
    if phase == "flashing":
        assert result.bytes_written < len(raw)


def test_validation_error_when_read_back_differs(tmp_path: Path) -> None:
    raw = image_bytes(8 << 20)
    source = open_image(write_image(tmp_path, raw, "gz"))
    target = tmp_path / "t.img"

    def corrupt(progress: FlashProgress) -> None:
        # The last write report comes before the sync: flip bytes behind the flasher's back,
        # as a counterfeit card that drops writes would.
        if progress.phase == "flashing" and progress.fraction == 1.0:
            with open(target, "r+b") as f:
                f.seek(4096)
                f.write(b"\xff" * 512)

    with pytest.raises(FlashError) as info:
        Flasher(source, Target.file(target), on_progress=corrupt).run()
    assert info.value.code == "EVALIDATION"
    assert info.value.event_name == "Validation error"


def test_no_space_from_the_kernel(tmp_path: Path) -> None:
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    with pytest.raises(FlashError) as info:
        Flasher(source, Target(Path("/dev/full"), False)).run()
    assert info.value.code == "ENOSPC" and info.value.errno == errno.ENOSPC
    assert info.value.event_name == "Out of space"


def test_too_small_drive_is_refused_before_writing(tmp_path: Path) -> None:
    source = open_image(write_image(tmp_path, image_bytes(2 << 20), "img"))
    target = Target(tmp_path / "never-created", False, capacity=1 << 20)
    with pytest.raises(FlashError) as info:
        Flasher(source, target).run()
    assert info.value.code == "ENOSPC" and "larger" in info.value.message
    assert not target.path.exists()


def test_io_error_from_the_kernel(tmp_path: Path) -> None:
    # Writing /proc/self/mem at offset 0 (an unmapped address) makes the kernel answer EIO.
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    with pytest.raises(FlashError) as info:
        Flasher(source, Target(Path("/proc/self/mem"), False)).run()
    assert info.value.code == "EIO" and info.value.errno == errno.EIO
    assert info.value.event_name == "Input/output error"


def test_permission_denied_tells_how_to_get_privileges() -> None:
    # Root ignores file modes, so as root the child drops to "nobody" first (after importing
    # everything it needs); the files sit in a world-traversable folder under /tmp.
    folder = Path(tempfile.mkdtemp(prefix="demo-eacces-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        image = write_image(folder, image_bytes(1 << 20), "img")
        image.chmod(0o644)
        target = folder / "protected.img"
        target.write_bytes(b"")
        target.chmod(0o444)
        script = (
            "import os\n"
            "from demo_app.flasher import Flasher, FlashError, Target, open_image\n"
            "if os.geteuid() == 0:\n"
            "    os.setgid(65534); os.setuid(65534)\n"
            "try:\n"
            f"    Flasher(open_image({str(image)!r}), Target.file({str(target)!r})).run()\n"
            "except FlashError as e:\n"
            "    print(e.code); print(e.hint)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        code, hint = proc.stdout.strip().splitlines()
        assert code == "EACCES"
        assert "sudo" in hint or "administrator" in hint
        assert target.read_bytes() == b""
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_target_replaced_mid_flash_is_unplugged(tmp_path: Path) -> None:
    # A different file now sits at the path (as a different drive would get the same node).
    raw = image_bytes(32 << 20)
    source = open_image(write_image(tmp_path, raw, "img"))
    target = tmp_path / "t.img"
    swapped: list[bool] = []

    def swap(progress: FlashProgress) -> None:
        if not swapped:
            swapped.append(True)
            other = tmp_path / "other.img"
            other.write_bytes(b"someone else")
            os.replace(other, target)

    with pytest.raises(FlashError) as info:
        Flasher(
            source, Target.file(target), chunk_size=1 << 20, on_progress=swap,
            progress_interval=0.0,
        ).run()  # fmt: skip
    assert swapped
    assert info.value.code == "EUNPLUGGED" and info.value.event_name == "Drive unplugged"
    assert target.read_bytes() == b"someone else"


@pytest.mark.parametrize(
    ("code", "present", "expected"),
    [
        (errno.EIO, False, "EUNPLUGGED"),  # the write failed because the drive went away
        (errno.ENODEV, True, "EUNPLUGGED"),
        (errno.ENXIO, True, "EUNPLUGGED"),
        (errno.EIO, True, "EIO"),
        (errno.ENOSPC, True, "ENOSPC"),
        (errno.EBUSY, True, "EBUSY"),
        (errno.EROFS, True, "EACCES"),
    ],
)
def test_target_errors_map_to_etcher_codes(code: int, present: bool, expected: str) -> None:
    error = FlashError.from_target(
        OSError(code, os.strerror(code)), target_present=present, block_device=True
    )
    assert error.code == expected
    assert error.errno == code
    assert error.message


def test_cancel_reports_the_bytes_written_before_it(tmp_path: Path) -> None:
    raw = image_bytes(16 << 20)
    source = open_image(write_image(tmp_path, raw, "img"))
    flasher: Flasher
    done_at_cancel: list[int] = []

    def on_progress(progress: FlashProgress) -> None:
        if progress.phase == "flashing" and progress.bytes_done > 0 and not done_at_cancel:
            done_at_cancel.append(progress.bytes_done)
            flasher.cancel()

    flasher = Flasher(
        source, Target.file(tmp_path / "t.img"), chunk_size=1 << 20, on_progress=on_progress,
        progress_interval=0.0,
    )  # fmt: skip
    result = flasher.run()
    assert result.status == "cancelled" and result.cancelled_in == "flashing"
    assert result.bytes_written >= done_at_cancel[0] > 0
    assert result.bytes_written == flasher.bytes_written < len(raw)


def test_missing_target_folder_is_not_an_unplugged_drive(tmp_path: Path) -> None:
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    target = tmp_path / "no-such-folder" / "t.img"
    with pytest.raises(FlashError) as info:
        Flasher(source, Target.file(target)).run()
    assert info.value.code == "ENOENT" and info.value.errno == errno.ENOENT
    assert info.value.event_name == "Flash error"
    assert "folder" in info.value.message and "removed" not in info.value.message
    assert not target.parent.exists()


def test_fallback_error_codes_are_the_errno_names(tmp_path: Path) -> None:
    # A folder as the target file: the kernel answers EISDIR, which has no Etcher code.
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(FlashError) as info:
        Flasher(source, Target.file(folder)).run()
    assert info.value.code == "EISDIR" and info.value.errno == errno.EISDIR
    assert info.value.event_name == "Flash error"
    for code in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
        error = FlashError.from_target(
            OSError(code, os.strerror(code)), target_present=True, block_device=False
        )
        assert error.code == errno.errorcode[code]


@pytest.mark.parametrize("phase", ["flashing", "validating"])
def test_cancel_removes_a_target_file_the_flash_created(tmp_path: Path, phase: str) -> None:
    raw = image_bytes(16 << 20)
    source = open_image(write_image(tmp_path, raw, "img"))
    created = tmp_path / "created.img"
    existing = tmp_path / "existing.img"
    existing.write_bytes(b"the user's file")
    for target in (created, existing):
        result = _cancelled_in(phase, Flasher(
            source, Target.file(target), chunk_size=1 << 20, progress_interval=0.0,
        ))  # fmt: skip
        assert result.status == "cancelled" and result.cancelled_in == phase
        assert result.target_removed is (target == created)
    assert not created.exists()
    # A target that existed is left as the writes left it (as Etcher leaves a drive).
    assert existing.exists() and existing.stat().st_size > 0


def _cancelled_in(phase: str, flasher: Flasher) -> FlashResult:
    """Run ``flasher``, cancelling it at its first report of ``phase``."""

    def on_progress(progress: FlashProgress) -> None:
        if progress.phase == phase and progress.bytes_done > 0:
            flasher.cancel()

    flasher._on_progress = on_progress
    return flasher.run()


def test_failure_removes_a_target_file_the_flash_created(tmp_path: Path) -> None:
    raw = image_bytes(2 << 20)
    whole = lzma.compress(raw, preset=0)
    cut = tmp_path / "cut.img.xz"
    cut.write_bytes(whole[: len(whole) // 2])
    target = tmp_path / "out.img"
    with pytest.raises(FlashError) as info:
        Flasher(open_image(cut), Target.file(target)).run()
    assert info.value.code == "EBADIMAGE" and info.value.target_removed
    assert not target.exists()

    source = open_image(write_image(tmp_path, image_bytes(8 << 20), "img"))

    def corrupt(progress: FlashProgress) -> None:
        if progress.phase == "flashing" and progress.fraction == 1.0:
            with open(target, "r+b") as f:
                f.write(b"\xff" * 512)

    with pytest.raises(FlashError) as info:
        Flasher(source, Target.file(target), on_progress=corrupt).run()
    assert info.value.code == "EVALIDATION" and info.value.target_removed
    assert not target.exists()


def test_the_image_itself_is_refused_as_target(tmp_path: Path) -> None:
    raw = image_bytes(1 << 20)
    image = write_image(tmp_path, raw, "img")
    link = tmp_path / "link.img"
    link.symlink_to(image)
    for target in (image, link):
        with pytest.raises(FlashError) as info:
            Flasher(open_image(image), Target.file(target)).run()
        assert info.value.code == "ESOURCE"
    assert image.read_bytes() == raw
