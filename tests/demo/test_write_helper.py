"""The write helper through its own protocol: launched directly (no pkexec), as a process.

File targets run the helper as it is; drive targets run it inside ``umockdev-run`` with the
drive fixtures of ``tests/drives``, where ``/dev/sdb`` is a USB stick the kernel (umockdev)
reports as a block device, its partition ``/dev/sdb1`` and the NVMe system disk sit next to
it, and writes land in umockdev's backing file. The GUI's side (``HelperFlasher``) is tested
against the same helper, including the pkexec path with a stand-in ``pkexec`` that runs the
command as pkexec does after authentication (``PKEXEC_UID`` set) or exits as pkexec does
when the prompt is dismissed (126).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from demo_app.flasher import (
    FlashError,
    FlashProgress,
    FlashResult,
    HelperFlasher,
    Target,
    helper_command,
    open_image,
)
from demo_app.flasher._protocol import HELPER_FLAG
from demo_app.ui.worker import FlashJob
from tests.drives._umockdev import PROCFS, child_env, description, merge, split_devices

from .conftest import image_bytes, write_image

REPO = Path(__file__).resolve().parents[2]
HELPER_CHILD = Path(__file__).resolve().parent / "helper_child.py"
POLICY = REPO / "packaging" / "linux" / "io.github.desktop_telemetry.DemoFlasher.policy"
TIMEOUT = 120


# ------------------------------------------------------------------------------ the protocol


class Helper:
    """The helper as a child process, spoken to through its protocol."""

    def __init__(self, *, command: list[str] | None = None, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "demo_app.write_helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env=env or child_env(),
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout

    def send(self, message: dict[str, Any] | bytes) -> None:
        line = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.stdin.write(line)
        self.stdin.flush()

    def read(self) -> dict[str, Any]:
        line = self.stdout.readline()
        assert line, self.proc.stderr.read().decode() if self.proc.stderr else "no output"
        message: dict[str, Any] = json.loads(line)
        return message

    def until_final(self, on_progress: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every message up to the final ``result`` or ``error`` line."""
        seen: list[dict[str, Any]] = []
        while True:
            message = self.read()
            seen.append(message)
            if message["type"] in ("result", "error"):
                return seen, message
            if on_progress is not None and message["type"] == "progress":
                on_progress(message)

    def finish(self) -> int:
        """Close stdin, check nothing follows the final line, and return the exit status."""
        self.stdin.close()
        assert self.stdout.read() == b""
        return self.proc.wait(TIMEOUT)


def request(
    source: Path | str, target: Path | str, size: int | None, **extra: Any
) -> dict[str, Any]:
    return {
        "op": "flash",
        "version": 1,
        "source": str(source),
        "target": str(target),
        "expected_size": size,
        "validate": True,
        **extra,
    }


def test_helper_flashes_a_file_streams_progress_and_a_result(tmp_path: Path) -> None:
    raw = image_bytes(24 << 20, random_bytes=2 << 20)
    image = write_image(tmp_path, raw, "xz")
    target = tmp_path / "out.img"
    helper = Helper()
    helper.send(request(image, target, len(raw)))
    messages, final = helper.until_final()
    assert messages[0] == {"type": "accepted", "target": "file", "size": len(raw)}
    progress = [m for m in messages if m["type"] == "progress"]
    for phase in ("flashing", "validating"):
        fractions = [m["fraction"] for m in progress if m["phase"] == phase]
        assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert final["type"] == "result" and final["status"] == "finished"
    assert final["validation"] == "passed" and final["bytes_written"] == len(raw)
    assert helper.finish() == 0
    assert target.read_bytes() == raw


@pytest.mark.parametrize("how", ["message", "close-stdin"])
def test_helper_cancels_on_a_message_or_when_stdin_closes(tmp_path: Path, how: str) -> None:
    image = tmp_path / "big.img"
    with open(image, "wb") as f:
        f.truncate(512 << 20)
    target = tmp_path / "out.img"
    helper = Helper()
    helper.send(request(image, target, 512 << 20))
    assert helper.read()["type"] == "accepted"
    done_at_cancel: list[int] = []

    def cancel(message: dict[str, Any]) -> None:
        if not done_at_cancel and message["bytes_done"] > 0:
            done_at_cancel.append(message["bytes_done"])
            if how == "message":
                helper.send({"op": "cancel"})
            else:
                helper.stdin.close()

    _, final = helper.until_final(cancel)
    assert final["type"] == "result" and final["status"] == "cancelled"
    assert final["bytes_written"] >= done_at_cancel[0] > 0
    # The helper created the target file: a cancelled flash removes it.
    assert final["target_removed"] is True and not target.exists()
    if how == "message":
        assert helper.finish() == 0
    else:
        assert helper.stdout.read() == b"" and helper.proc.wait(TIMEOUT) == 0


def test_helper_reports_failures_with_their_codes(tmp_path: Path) -> None:
    raw = image_bytes(2 << 20)
    image = write_image(tmp_path, raw, "img")
    cases = [
        (tmp_path / "no-such-folder" / "out.img", "ENOENT"),  # the folder is missing
        (image, "ESOURCE"),  # the image itself
    ]
    for target, code in cases:
        helper = Helper()
        helper.send(request(image, target, len(raw)))
        messages, final = helper.until_final()
        assert messages[0]["type"] == "accepted"
        assert final["type"] == "error" and final["code"] == code, final
        assert final["refused"] is False and final["message"]
        assert helper.finish() == 1
    assert image.read_bytes() == raw


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("empty", "No request"),
        ("not-json", "not a JSON object"),
        ("old-version", "Unknown request"),
        ("relative", "absolute"),
        ("size-changed", "image changed"),
        ("char-device", "neither a drive nor a regular file"),
        ("folder", "neither a drive nor a regular file"),
        ("file-under-pkexec", "whole drives only"),
        ("missing-image", "no longer exists"),
    ],
)
def test_helper_refuses_bad_requests(tmp_path: Path, case: str, expect: str) -> None:
    raw = image_bytes(1 << 20)
    image = write_image(tmp_path, raw, "img")
    target = tmp_path / "out.img"
    env = child_env()
    line: dict[str, Any] | bytes = request(image, target, len(raw))
    if case == "empty":
        line = b"\n"
    elif case == "not-json":
        line = b"flash /dev/sdb please\n"
    elif case == "old-version":
        line = request(image, target, len(raw), version=0)
    elif case == "relative":
        line = request("disk.img", target, len(raw))
    elif case == "size-changed":
        line = request(image, target, len(raw) + 1)
    elif case == "char-device":
        line = request(image, "/dev/null", len(raw))
    elif case == "folder":
        line = request(image, tmp_path, len(raw))
    elif case == "file-under-pkexec":
        env["PKEXEC_UID"] = str(os.getuid())
    elif case == "missing-image":
        line = request(tmp_path / "gone.img", target, len(raw))
    helper = Helper(env=env)
    helper.send(line)
    messages, final = helper.until_final()
    assert messages == [final], "nothing is accepted or written before the checks pass"
    assert final["type"] == "error"
    assert expect in final["message"], final
    if case != "missing-image":  # an unreadable image is the image's own error code
        assert final["code"] == "EREFUSED" and final["refused"] is True
    assert helper.finish() == 2
    assert not target.exists()


def test_demo_app_dispatches_the_write_helper_flag(tmp_path: Path) -> None:
    # The frozen bundle has no -m: ``demo-app --write-helper`` is how it runs the helper.
    helper = Helper(command=[sys.executable, "-m", "demo_app", HELPER_FLAG])
    helper.send(b"{}\n")
    _, final = helper.until_final()
    assert final["code"] == "EREFUSED" and "Unknown request" in final["message"]
    assert helper.finish() == 2


# ------------------------------------------------------------------------------ drives (umockdev)


STICK = "usb2-flash-stick.umockdev"


def _renumber(text: str, numbers: dict[str, tuple[int, int]]) -> str:
    """The description with the block devices named in ``numbers`` given those major:minor."""
    blocks = []
    for path, block in split_devices(text):
        name = path.rsplit("/", 1)[-1]
        if name in numbers:
            major, minor = numbers[name]
            block = re.sub(r"^E: MAJOR=\d+$", f"E: MAJOR={major}", block, flags=re.M)
            block = re.sub(r"^E: MINOR=\d+$", f"E: MINOR={minor}", block, flags=re.M)
            block = re.sub(r"^A: dev=\d+:\d+", f"A: dev={major}:{minor}", block, flags=re.M)
        blocks.append(block)
    return "\n\n".join(blocks) + "\n"


def _testbed(tmp_path: Path, image: Path, *, stick_holds_image: bool = False) -> Path:
    """A umockdev description: the USB stick ``/dev/sdb`` (with ``sdb1``) and the NVMe system
    disk. The stick's numbers never collide with the filesystem holding ``image`` unless
    ``stick_holds_image``, which gives ``sdb1`` exactly that filesystem's numbers."""
    st_dev = os.stat(image).st_dev
    here = (os.major(st_dev), os.minor(st_dev))
    if stick_holds_image:
        numbers = {"sdb": (here[0], here[1] + 1000), "sdb1": here}
    else:
        base = 240 if here[0] != 8 or here[1] not in (240, 241) else 224
        numbers = {"sdb": (8, base), "sdb1": (8, base + 1)}
    text = _renumber(merge([description(STICK), description("nvme-system.umockdev")]), numbers)
    path = tmp_path / "devices.umockdev"
    path.write_text(text, encoding="utf-8")
    return path


def _umockdev_command(devices: Path) -> list[str]:
    return ["umockdev-run", "-d", str(devices), "--", sys.executable, str(HELPER_CHILD)]


def _umockdev_env() -> dict[str, str]:
    return child_env(DRIVES_TEST_PROCFS=str(PROCFS / "empty"))


def test_helper_writes_a_whole_drive_and_validates_it(tmp_path: Path) -> None:
    raw = image_bytes(6 << 20)
    image = write_image(tmp_path / "images", raw, "gz")
    reports: list[FlashProgress] = []
    flasher = HelperFlasher(
        open_image(image),
        Target(Path("/dev/sdb"), True),
        on_progress=reports.append,
        elevate=False,
        command=_umockdev_command(_testbed(tmp_path, image)),
        env=_umockdev_env(),
    )
    result = flasher.run()
    assert result.status == "finished" and result.validation == "passed"
    assert result.bytes_written == len(raw) and flasher.bytes_written == len(raw)
    assert reports and reports[-1].phase == "validating" and reports[-1].fraction == 1.0


@pytest.mark.parametrize(
    ("device", "expect"),
    [
        ("/dev/sdb1", "partition"),
        ("/dev/nvme0n1", "system drive"),
        ("/dev/sdb", "holds the image"),  # sdb1 is the filesystem the image lives on
    ],
)
def test_helper_refuses_partitions_system_drives_and_the_source_drive(
    tmp_path: Path, device: str, expect: str
) -> None:
    raw = image_bytes(1 << 20)
    image = write_image(tmp_path / "images", raw, "img")
    devices = _testbed(tmp_path, image, stick_holds_image=device == "/dev/sdb")
    helper = Helper(command=_umockdev_command(devices), env=_umockdev_env())
    helper.send(request(image, device, len(raw)))
    messages, final = helper.until_final()
    assert messages == [final]
    assert final["code"] == "EREFUSED" and expect in final["message"], final
    assert helper.finish() == 2


# ------------------------------------------------------------------------------ the GUI's side


def _stand_in(tmp_path: Path, name: str, body: str) -> Path:
    """An executable script standing in for ``pkexec``."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_helper_flasher_runs_cancels_and_fails_like_the_in_process_flasher(
    tmp_path: Path,
) -> None:
    raw = image_bytes(8 << 20)
    source = open_image(write_image(tmp_path, raw, "zip"))
    reports: list[FlashProgress] = []
    target = tmp_path / "ok.img"
    flasher = HelperFlasher(source, Target.file(target), on_progress=reports.append)
    assert flasher.elevate is False  # the folder is writable: no pkexec
    assert flasher.command == helper_command()
    result = flasher.run()
    assert result.status == "finished" and result.validation == "passed"
    assert result.bytes_written == len(raw) and target.read_bytes() == raw
    assert {r.phase for r in reports} == {"flashing", "validating"}

    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(512 << 20)
    cancelled = tmp_path / "cancelled.img"
    flasher = HelperFlasher(open_image(big), Target.file(cancelled))
    seen: list[int] = []

    def cancel(progress: FlashProgress) -> None:
        if progress.bytes_done > 0 and not seen:
            seen.append(progress.bytes_done)
            flasher.cancel()

    flasher._on_progress = cancel
    result = flasher.run()
    assert result.status == "cancelled" and result.cancelled_in == "flashing"
    assert result.bytes_written >= seen[0] > 0 and flasher.bytes_written == result.bytes_written
    assert result.target_removed and not cancelled.exists()

    with pytest.raises(FlashError) as info:
        HelperFlasher(source, Target.file(tmp_path / "gone" / "t.img")).run()
    assert info.value.code == "ENOENT" and info.value.event_name == "Flash error"


def test_pkexec_path_runs_the_helper_as_pkexec_does(tmp_path: Path) -> None:
    """pkexec, once the user authenticated, runs the command with ``PKEXEC_UID`` set to the
    user who asked: the helper then writes drives only and opens the image as that user."""
    raw = image_bytes(2 << 20)
    image = write_image(tmp_path / "images", raw, "img")
    pkexec = _stand_in(
        tmp_path,
        "pkexec",
        '[ "$1" = --disable-internal-agent ] || exit 99\nshift\nPKEXEC_UID=$(id -u) exec "$@"',
    )
    flasher = HelperFlasher(
        open_image(image),
        Target(Path("/dev/sdb"), True),
        elevate=True,
        pkexec=str(pkexec),
        command=_umockdev_command(_testbed(tmp_path, image)),
        env=_umockdev_env(),
    )
    command = flasher.command
    assert command[:2] == [str(pkexec), "--disable-internal-agent"]
    assert command[2:] == _umockdev_command(_testbed(tmp_path, image))
    result = flasher.run()
    assert result.status == "finished" and result.bytes_written == len(raw)

    with pytest.raises(FlashError) as info:
        HelperFlasher(
            open_image(image), Target.file(tmp_path / "t.img"), elevate=True, pkexec=str(pkexec)
        ).run()
    assert info.value.code == "EREFUSED" and "whole drives only" in info.value.message
    assert not (tmp_path / "t.img").exists()


def test_pkexec_dismissed_or_missing_is_a_permission_error(tmp_path: Path) -> None:
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    dismissed = _stand_in(tmp_path, "pkexec-dismissed", "exit 126")
    with pytest.raises(FlashError) as info:
        HelperFlasher(
            source, Target(Path("/dev/sdb"), True), elevate=True, pkexec=str(dismissed)
        ).run()
    assert info.value.code == "EACCES" and "dismissed" in info.value.message

    refused = _stand_in(tmp_path, "pkexec-refused", "exit 127")
    with pytest.raises(FlashError) as info:
        HelperFlasher(
            source, Target(Path("/dev/sdb"), True), elevate=True, pkexec=str(refused)
        ).run()
    assert info.value.code == "EACCES" and "Not authorised" in info.value.message

    with pytest.raises(FlashError) as info:
        HelperFlasher(
            source, Target(Path("/dev/sdb"), True), elevate=True,
            pkexec=str(tmp_path / "no-pkexec-here"),
        ).run()  # fmt: skip
    assert info.value.code == "EACCES" and "pkexec" in info.value.message
    assert info.value.hint and "sudo" in info.value.hint


def test_cancel_while_pkexec_waits_for_the_password_ends_cancelled(tmp_path: Path) -> None:
    # A prompt nobody answers: cancel terminates the launcher (the helper never started).
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    started = tmp_path / "prompt-up"
    waiting = _stand_in(tmp_path, "pkexec-prompt", f"touch {started}; exec sleep 600")
    flasher = HelperFlasher(
        source, Target(Path("/dev/sdb"), True), elevate=True, pkexec=str(waiting)
    )
    outcome: list[FlashResult] = []
    thread = threading.Thread(target=lambda: outcome.append(flasher.run()))
    thread.start()
    deadline = threading.Event()
    while not started.exists() and not deadline.wait(0.02):
        pass
    flasher.cancel()
    thread.join(TIMEOUT)
    assert outcome and outcome[0].status == "cancelled" and outcome[0].bytes_written == 0


def test_flash_job_runs_the_helper_and_reports_through_signals(
    qtbot: QtBot, tmp_path: Path
) -> None:
    raw = image_bytes(4 << 20)
    source = open_image(write_image(tmp_path, raw, "bz2"))
    target = tmp_path / "t.img"
    job = FlashJob(source, Target.file(target), use_helper=True)
    assert isinstance(job.flasher, HelperFlasher)
    progress: list[FlashProgress] = []
    job.progress.connect(progress.append)
    with (
        qtbot.waitSignal(job.ended, timeout=TIMEOUT * 1000),
        qtbot.waitSignal(job.finished, timeout=TIMEOUT * 1000) as finished,
    ):
        job.start()
    result = finished.args[0]
    assert isinstance(result, FlashResult) and result.validation == "passed"
    assert target.read_bytes() == raw and progress


def test_drive_targets_go_through_the_helper_by_default(tmp_path: Path) -> None:
    source = open_image(write_image(tmp_path, image_bytes(1 << 20), "img"))
    drive_job = FlashJob(source, Target(Path("/dev/sdb"), True))
    file_job = FlashJob(source, Target.file(tmp_path / "t.img"))
    assert isinstance(drive_job.flasher, HelperFlasher)
    assert not isinstance(file_job.flasher, HelperFlasher)


def test_polkit_policy_describes_the_frozen_helper() -> None:
    root = ET.parse(POLICY).getroot()
    assert root.tag == "policyconfig"
    (action,) = root.findall("action")
    assert action.get("id") == "io.github.desktop_telemetry.DemoFlasher.write"
    annotations = {a.get("key"): a.text for a in action.findall("annotate")}
    assert annotations["org.freedesktop.policykit.exec.path"] == (
        "/usr/lib/desktop-telemetry-demo/demo-app"
    )
    assert annotations["org.freedesktop.policykit.exec.argv1"] == HELPER_FLAG
    defaults = {d.tag: d.text for d in action.find("defaults") or []}
    assert defaults["allow_active"] == "auth_admin_keep"
    assert defaults["allow_any"] == defaults["allow_inactive"] == "auth_admin"
    assert action.findtext("message")
