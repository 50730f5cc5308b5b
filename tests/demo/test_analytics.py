"""The demo's telemetry without Qt: every event it can send fits its declared catalogue, and
nothing identifying gets in."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from demo_app.analytics import FlashAnalytics
from demo_app.app import CATALOGUE_PATH, make_client
from demo_app.flasher import ERROR_EVENTS, FlashError, FlashResult, Target, open_image

from .conftest import image_bytes, write_image


@pytest.fixture
def client(tmp_path: Path) -> Any:
    c = make_client(tmp_path / "telemetry", None)  # with the catalogue, recording only
    yield c
    c.close()


def test_every_event_of_the_demo_is_declared_and_recorded(
    client: Any, tmp_path: Path, umockdev_drives: list[Any]
) -> None:
    analytics = FlashAnalytics(client, version="1.2.3")
    source = open_image(write_image(tmp_path / "secret-folder", image_bytes(1 << 20), "xz"))
    stick = next(d for d in umockdev_drives if d.device == "/dev/sdi")  # mounted SanDisk
    drive = Target.for_drive(stick)
    file_target = Target.file(tmp_path / "out.img")
    finished = FlashResult("finished", 1 << 20, 1.5, 1.0, 0.5, "ab" * 32, "passed")
    cancelled = FlashResult("cancelled", 1 << 19, 0.7, 0.7, 0.0, "", "cancelled", "flashing")

    analytics.application_start()
    analytics.open_image_selector()
    analytics.image_selector_closed()
    analytics.select_image(source)
    analytics.image_error(FlashError("EBADIMAGE", "bad"))
    analytics.open_drive_selector()
    analytics.toggle_drive(drive, previously_selected=False)
    analytics.toggle_drive(file_target, previously_selected=False)
    for target in (drive, file_target):
        analytics.flash(source, target, validate=True)
        analytics.done(finished)
    analytics.flash(source, drive, validate=False)
    analytics.cancel(cancelled)
    for code in [*ERROR_EVENTS, "EACCES"]:
        analytics.flash(source, drive, validate=True)
        analytics.failed(FlashError(code, "x", os_errno=5), duration=0.25, bytes_written=4096)
    analytics.restart()
    analytics.toggle_setting("errorReporting", True)
    analytics.open_external_link("https://www.balena.io/os?d_id=linked-device-77&s_id=1#top")
    analytics.close_application(is_flashing=False)

    events = [e.as_dict() for e in client.queued_events()]
    names = {e["event_type"] for e in events if not e["event_type"].startswith("$")}
    declared = set(tomllib.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))["events"])
    assert names == declared  # every declared event is sent somewhere, and nothing else

    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["event_type"], []).append(event.get("event_properties", {}))
    flash = by_name["[Etcher] Flash"][0]
    assert flash["drives"] == [stick.telemetry_properties()]
    assert by_name["[Etcher] Toggle drive"][0]["drive.drive_type"] == "usb-flash"
    assert by_name["[Etcher] Open external link"][0]["url"] == "https://www.balena.io/os"
    failed_codes = [p["errorCode"] for p in by_name["[Etcher] Write failed"]]
    assert failed_codes == [*ERROR_EVENTS, "EACCES"]
    assert by_name["[Etcher] Flash error"][0]["errorCode"] == "EACCES"
    workflows = {p["flashingWorkflowUuid"] for p in by_name["[Etcher] Toggle setting"]}
    assert workflows.isdisjoint({flash["flashingWorkflowUuid"]})  # new after Restart
    text = json.dumps(events)
    for secret in ("secret-folder", str(tmp_path), "/dev/sdi", "/media/user", "linked-device-77"):
        assert secret not in text, secret


def test_an_undeclared_property_is_refused_but_never_raises(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    analytics = FlashAnalytics(client, version="1")
    assert analytics.track("Flash", {"imagePath": "/home/someone/x.img"}) is None
    assert list(client.queued_events())[-1].event_type == "$identify"
    assert any("could not record" in r.getMessage() for r in caplog.records)
    caplog.clear()  # the refusal is what this test wants; the autouse guard must not fail
