"""The demo end to end in a real Qt window (offscreen): flash, cancel, unplug, telemetry off.

Everything is real: the window built as ``python -m demo_app`` builds it, the flasher thread,
files on disk, the client's SQLite database, and the collector as a child process on
127.0.0.1 (with, for the consent test, a recording HTTP relay in front of it).
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from demo_app.flasher import FlashProgress, Target
from demo_app.targets import SOURCE_DRIVE_REASON
from demo_app.ui.target_dialog import TargetDialog
from telemetry.drives import Drive, Mountpoint
from tests.collector_process import CollectorProcess
from tests.delivery.fault_server import FaultServer

from .conftest import (
    Demo,
    ModalDriver,
    answer_notice,
    image_bytes,
    type_file_name,
    write_image,
)

FLASH_TIMEOUT_MS = 120_000


def _counter(client: Any, name: str) -> int:
    """One of the client's counters, from its public status."""
    return int(client.status()["counters"].get(name, 0))


def _props(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event.get("event_properties") or {})


def _by_name(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == f"[Etcher] {name}"]


def _collector_events(collector: CollectorProcess) -> list[dict[str, Any]]:
    return [json.loads(r["event"]) for r in collector.rows()]


def _assert_private(events: list[dict[str, Any]], secrets: list[str]) -> None:
    for event in events:
        text = json.dumps(event)
        for secret in secrets:
            assert secret not in text, (secret, event["event_type"])


def _flash_and_wait(qtbot: QtBot, demo: Demo) -> None:
    window = demo.window
    assert window.flash_card.button.isEnabled()
    qtbot.mouseClick(window.flash_card.button, Qt.MouseButton.LeftButton)
    assert window.state == "flashing"
    qtbot.waitUntil(lambda: window.state != "flashing", timeout=FLASH_TIMEOUT_MS)


def test_flash_compressed_image_to_file_end_to_end(
    qtbot: QtBot, make_demo: Any, collector: CollectorProcess, tmp_path: Path
) -> None:
    raw = image_bytes(24 << 20)
    image = write_image(tmp_path / "images", raw, "xz", name="holiday-pi.img")
    target = tmp_path / "out" / "card.img"
    target.parent.mkdir()
    demo: Demo = make_demo(collector.url)
    window = demo.window
    answer_notice(qtbot, demo)

    # Through the real buttons and dialogs, answered as a person would.
    seen_filters: list[str] = []

    def pick_image(dialog: QWidget) -> None:
        assert isinstance(dialog, QFileDialog)
        seen_filters.extend(dialog.nameFilters())
        type_file_name(dialog, image)

    def use_file_target(dialog: QWidget) -> None:
        assert isinstance(dialog, TargetDialog)
        dialog.file_button.click()  # opens the save dialog (answered next)

    def save_as(dialog: QWidget) -> None:
        assert isinstance(dialog, QFileDialog)
        type_file_name(dialog, target)

    driver = ModalDriver([pick_image, use_file_target, save_as])
    qtbot.mouseClick(window.image_card.button, Qt.MouseButton.LeftButton)
    assert any("*.xz" in f and "*.img" in f and "*.zip" in f for f in seen_filters)
    assert window.image_card.title.text() == "<b>holiday-pi.img.xz</b>"  # the picked file
    assert "xz" in window.image_card.detail.text()
    qtbot.mouseClick(window.target_card.button, Qt.MouseButton.LeftButton)
    assert driver.pending == 0
    assert window.target is not None and window.target.path == target
    _flash_and_wait(qtbot, demo)

    assert window.state == "done", window.flash_status.text()
    assert window.last_result.validation == "passed"
    assert target.read_bytes() == raw
    assert "validated" in window.flash_status.text()

    # Delivered: wait (bounded) until the collector has the Done event.
    assert demo.client.flush(timeout=20)
    qtbot.waitUntil(
        lambda: any(r["event_type"] == "[Etcher] Done" for r in collector.rows()), timeout=20_000
    )
    expected = [
        "[Etcher] Application start",
        "[Etcher] Open image selector",
        "[Etcher] Select image",
        "[Etcher] Open drive selector",
        "[Etcher] Toggle drive",
        "[Etcher] Flash",
        "[Etcher] Done",
    ]
    local = demo.events()
    remote = _collector_events(collector)
    for events in (local, remote):
        names = [e["event_type"] for e in events]
        assert [n for n in names if n in expected] == expected
        assert {e["insert_id"] for e in events if e["event_type"] in expected} <= {
            e["insert_id"] for e in local
        }
    flash = _props(_by_name(remote, "Flash")[0])
    done = _props(_by_name(remote, "Done")[0])
    select = _props(_by_name(remote, "Select image")[0])
    toggle = _props(_by_name(remote, "Toggle drive")[0])
    start = _props(_by_name(remote, "Application start")[0])
    session = start["applicationSessionUuid"]
    workflow = start["flashingWorkflowUuid"]
    for props in (flash, done, select, toggle):
        assert props["applicationSessionUuid"] == session
        assert props["flashingWorkflowUuid"] == workflow
    assert flash["flashInstanceUuid"] == done["flashInstanceUuid"] == flash["uuid"]
    assert flash["status"] == "started" and done["status"] == "finished"
    assert select["image.compression"] == "xz"
    assert select["image.extension"] == "img"
    assert select["image.size"] == len(raw)
    assert select["image.compressed_size"] == image.stat().st_size
    assert toggle["targetType"] == "file" and toggle["previouslySelected"] is False
    assert flash["targetType"] == "file" and flash["drives"] == [] and flash["driveCount"] == 1
    assert done["bytesWritten"] == len(raw)
    assert done["validation"] == "passed"
    assert isinstance(done["durationMs"], int) and done["durationMs"] >= 0
    assert done["mbPerSecond"] > 0
    device_ids = {e["device_id"] for e in remote}
    assert device_ids == {demo.client.device_id}

    secrets = [str(image), image.name, "holiday-pi", str(target), str(tmp_path), str(Path.home())]
    user = getpass.getuser()
    _assert_private(local + remote, secrets)
    for event in local + remote:
        assert user not in json.dumps(event.get("event_properties", {})), event["event_type"]


def test_cancel_mid_flash(qtbot: QtBot, make_demo: Any, tmp_path: Path) -> None:
    # A sparse 512 MiB image: cheap to make, long enough to be cancelled while writing or
    # validating (both phases honour cancel between chunks).
    image = tmp_path / "big.img"
    with open(image, "wb") as f:
        f.truncate(512 << 20)
    target = tmp_path / "target.img"
    demo: Demo = make_demo()
    window = demo.window
    assert window.load_image(image)
    window.select_target(window_target(target))
    qtbot.mouseClick(window.flash_card.button, Qt.MouseButton.LeftButton)
    assert window.cancel_button.isVisible()
    with qtbot.waitSignal(window.job.progress, timeout=FLASH_TIMEOUT_MS):
        pass
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.state != "flashing", timeout=FLASH_TIMEOUT_MS)

    assert window.state == "cancelled"
    assert window.last_result.status == "cancelled"
    assert window.again_button.isVisible() and not window.cancel_button.isVisible()
    events = demo.events()
    cancels = _by_name(events, "Cancel")
    assert len(cancels) == 1 and not _by_name(events, "Done")
    props = _props(cancels[0])
    assert props["status"] == "cancel"
    assert props["phase"] in ("flashing", "validating")
    assert props["flashInstanceUuid"] == _props(_by_name(events, "Flash")[0])["flashInstanceUuid"]
    assert props["bytesWritten"] == window.last_result.bytes_written
    # What reached the target before the cancel (at least the chunk that was reported).
    assert 0 < props["bytesWritten"] <= 512 << 20
    # The flash created the target file: a cancelled flash removes it, and says so.
    assert window.last_result.target_removed and not target.exists()
    assert "removed" in window.flash_status.text()

    # "Flash another" starts a new workflow.
    old_workflow = props["flashingWorkflowUuid"]
    qtbot.mouseClick(window.again_button, Qt.MouseButton.LeftButton)
    assert window.state == "idle"
    assert _by_name(demo.events(), "Restart")
    assert window.analytics.flashing_workflow_uuid != old_workflow


def window_target(path: Path) -> Any:
    from demo_app.flasher import Target

    return Target.file(path)


def test_target_disappearing_mid_flash_is_drive_unplugged(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    """The target vanishes while being written, as a pulled-out USB stick does.

    When a drive is unplugged, Linux removes its device node and sysfs entry while the
    flasher still holds it open. Here the file target's directory entry is removed at the
    first progress report, while the flasher holds it open: writes keep "succeeding" into the
    orphaned inode, the case where no write error comes to tell the app. The flasher must
    notice by itself (it re-checks that the path still names what it opened, while writing
    and again after fsync, so the outcome does not depend on timing) and report
    ``Drive unplugged``.
    """
    raw = image_bytes(256 << 20, random_bytes=1 << 20)
    image = write_image(tmp_path, raw, "gz")
    target = tmp_path / "stick.img"
    demo: Demo = make_demo()
    window = demo.window
    assert window.load_image(image)
    window.select_target(window_target(target))
    removed: list[bool] = []

    def unplug(progress: FlashProgress) -> None:
        if not removed and progress.bytes_done > 0:
            removed.append(True)
            os.unlink(target)

    assert window.start_flash()
    window.job.progress.connect(unplug, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: window.state != "flashing", timeout=FLASH_TIMEOUT_MS)

    assert removed
    assert window.state == "failed"
    assert window.last_error.code == "EUNPLUGGED"
    assert "removed" in window.flash_status.text()
    events = demo.events()
    unplugged = _by_name(events, "Drive unplugged")
    failed = _by_name(events, "Write failed")
    assert len(unplugged) == 1 and len(failed) == 1 and not _by_name(events, "Done")
    assert _props(failed[0])["errorCode"] == "EUNPLUGGED"
    assert _props(failed[0])["status"] == "failed"
    assert _props(unplugged[0])["flashInstanceUuid"] == _props(failed[0])["flashInstanceUuid"]


def test_missing_target_folder_is_reported_as_such_not_as_unplugged(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    image = write_image(tmp_path, image_bytes(2 << 20), "img")
    target = tmp_path / "removed-folder" / "card.img"
    demo: Demo = make_demo()
    window = demo.window
    assert window.load_image(image)
    window.select_target(window_target(target))
    _flash_and_wait(qtbot, demo)

    assert window.state == "failed"
    assert window.last_error.code == "ENOENT"
    assert "folder" in window.flash_status.text()
    assert "removed while" not in window.flash_status.text()
    events = demo.events()
    assert not _by_name(events, "Drive unplugged")
    failed = _by_name(events, "Write failed")
    assert len(failed) == 1 and _props(failed[0])["errorCode"] == "ENOENT"
    assert len(_by_name(events, "Flash error")) == 1
    assert not target.parent.exists()


def test_the_drive_holding_the_image_cannot_be_picked(
    qtbot: QtBot, make_demo: Any, umockdev_drives: list[Drive], tmp_path: Path
) -> None:
    # The SanDisk stick (/dev/sdi) with its partition mounted where the image lives.
    images = tmp_path / "stick-mount"
    image = write_image(images, image_bytes(2 << 20), "img")
    stick = next(d for d in umockdev_drives if d.device == "/dev/sdi")
    source_stick = dataclasses.replace(stick, mountpoints=(Mountpoint(str(images), "BOOT"),))
    other = next(d for d in umockdev_drives if d.device == "/dev/sdc")  # the UAS disk
    other = dataclasses.replace(other, mountpoints=(Mountpoint("/proc"),))  # elsewhere
    demo: Demo = make_demo(drives=[source_stick, other])
    window = demo.window
    qtbot.waitUntil(lambda: len(demo.watcher.drives()) == 2, timeout=10_000)

    # Picked before the image: loading an image that lives on it deselects it.
    window.select_target(Target.for_drive(source_stick))
    assert window.target is not None
    assert window.load_image(image)
    assert window.target is None

    dialog = window.open_target_dialog()
    qtbot.waitExposed(dialog)
    rows = {r.drive.device: r for r in dialog.rows()}
    assert not rows["/dev/sdi"].enabled
    assert rows["/dev/sdi"].reason == SOURCE_DRIVE_REASON
    assert "holds the image" in rows["/dev/sdi"].reason
    assert not dialog.select_device("/dev/sdi")
    assert rows["/dev/sdc"].enabled and dialog.select_device("/dev/sdc")
    dialog.reject()


def test_telemetry_off_in_settings_then_flash_sends_only_the_deletion_request(
    qtbot: QtBot, make_demo: Any, collector: CollectorProcess, tmp_path: Path
) -> None:
    raw = image_bytes(4 << 20)
    image = write_image(tmp_path, raw, "zip")
    with FaultServer(collector.url) as relay:
        demo: Demo = make_demo(relay.url)
        client = demo.client
        device_id = client.device_id
        # The notice was answered, so the opt-out default delivers what was recorded so far.
        answer_notice(qtbot, demo)
        assert client.flush(timeout=20)
        assert relay.wait_for(lambda rs: any(r.events for r in rs), timeout=20)
        assert any(r["device_id"] == device_id for r in collector.rows())
        before = len(relay.requests)

        dialog = demo.window.open_settings()
        checkbox = dialog.telemetry.checkbox
        assert checkbox.isChecked()
        qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton)
        assert not checkbox.isChecked()
        assert not client.enabled
        dialog.close()

        assert demo.window.load_image(image)
        demo.window.select_target(window_target(tmp_path / "t.img"))
        _flash_and_wait(qtbot, demo)
        assert demo.window.state == "done"
        assert (tmp_path / "t.img").read_bytes() == raw

        assert relay.wait_for(lambda rs: any("deletion" in r.target for r in rs), timeout=20)
        # Answered and taken off the client's queue (counted after that): close() cannot
        # abandon it in flight, and the relay has recorded the collector's answer.
        qtbot.waitUntil(lambda: _counter(client, "deletion_requests_sent") == 1, timeout=30_000)
        client.flush(timeout=5)
        assert list(client.queued_events()) == []  # nothing was recorded while off
        client.close()  # nothing more can be sent after this
        after = relay.requests[before:]
        assert [(r.method, r.target.split("?")[0]) for r in after] == [
            ("POST", after[0].target.split("?")[0])
        ]
        assert after[0].target.rstrip("/").endswith("deletion")
        body = json.loads(after[0].body)
        assert body["device_id"] == device_id and body["project"] == client.project_name
        assert after[0].status == 200
    # The collector deleted what it had for the device.
    assert not any(r["device_id"] == device_id for r in collector.rows())


def test_closing_while_flashing_asks_then_cancels(
    qtbot: QtBot, make_demo: Any, tmp_path: Path
) -> None:
    image = tmp_path / "big.img"
    with open(image, "wb") as f:
        f.truncate(512 << 20)
    demo: Demo = make_demo()
    window = demo.window
    assert window.load_image(image)
    window.select_target(window_target(tmp_path / "t.img"))
    assert window.start_flash()
    with qtbot.waitSignal(window.job.progress, timeout=FLASH_TIMEOUT_MS):
        pass
    asked: list[str] = []

    def answer(box: QWidget) -> None:
        assert isinstance(box, QMessageBox)
        asked.append(box.text())
        yes = box.button(QMessageBox.StandardButton.Yes)
        assert yes is not None
        yes.click()

    driver = ModalDriver([answer])
    window.close()
    assert driver.pending == 0 and "flash is running" in asked[0]
    assert window.job is None and window.state == "cancelled"
    names = demo.names()
    assert names.index("[Etcher] Cancel") < names.index("[Etcher] Close application")
