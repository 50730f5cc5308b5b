"""Made-up but demo-shaped events for the dashboard's tests and bench (no pytest import).

``demo_events(devices, days, end_day, seed)`` yields Amplitude events like the demo's
(``demo_app/analytics.py``): launches, the Select image -> Toggle drive -> Flash -> Done/Write
failed/Cancel workflow with drive types, image compression and MB/s, on several app versions,
operating systems and languages. Deterministic for a seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = ["DAY_MS", "demo_events"]

DAY_MS = 86_400_000
_OS = (("Linux", 0.5), ("Windows", 0.35), ("Mac OS X", 0.15))
_LANGUAGES = ("en-US", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP")
_DRIVES = ("usb-flash", "usb-card-reader", "sd-internal", "usb-disk", "nvme")
_COMPRESSION = (None, "gz", "xz", "zip")
_VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0")


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, weight in weighted:
        x -= weight
        if x < 0:
            return value
    return weighted[-1][0]


def demo_events(
    *, devices: int, days: int, end_day: int, seed: int = 1, events_per_active_day: int = 12
) -> Iterator[dict[str, Any]]:
    """Events of ``devices`` devices over the ``days`` days ending on day number ``end_day``
    (days since 1970-01-01), each device active on some of them."""
    rng = random.Random(seed)
    first_day = end_day - days + 1
    for _ in range(devices):
        device = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        os_name = _pick(rng, _OS)
        language = rng.choice(_LANGUAGES)
        start = first_day + rng.randrange(days)
        active_days = sorted({start + rng.randrange(end_day - start + 1) for _ in range(4)})
        for day in active_days:
            # Newer versions are adopted over time.
            progress = (day - first_day) / max(1, days - 1)
            version = _VERSIONS[min(len(_VERSIONS) - 1, int(progress * 3 + rng.random()))]
            base = {
                "device_id": device,
                "app_version": version,
                "os_name": os_name,
                "language": language,
                "platform": "Desktop",
            }
            t = day * DAY_MS + rng.randrange(DAY_MS - 3_600_000)
            session = str(uuid.uuid4())
            produced = 0

            def event(
                name: str,
                props: dict[str, Any],
                *,
                when: int = 0,
                base: dict[str, Any] = base,
                t: int = t,
                session: str = session,
            ) -> dict[str, Any]:
                nonlocal produced
                produced += 1
                return {
                    **base,
                    "event_type": f"[Etcher] {name}",
                    "time": t + when + produced,
                    "insert_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "event_properties": {"applicationSessionUuid": session, **props},
                }

            yield event("Application start", {"packageType": "python", "version": version})
            while produced < events_per_active_day:
                workflow = {"flashingWorkflowUuid": str(uuid.uuid4())}
                compression = rng.choice(_COMPRESSION)
                image = {"extension": "img", "compression": compression, "size": 2**30}
                yield event("Open image selector", workflow)
                yield event("Select image", {**workflow, "image": image})
                if rng.random() < 0.15:
                    continue
                drive_type = rng.choice(_DRIVES)
                drive = {"drive_type": drive_type, "bus_type": "USB", "size_bucket": "32GB"}
                yield event(
                    "Toggle drive",
                    {
                        **workflow,
                        "targetType": "drive",
                        "drive": drive,
                        "previouslySelected": False,
                    },
                )
                if rng.random() < 0.1:
                    continue
                flash = {
                    **workflow,
                    "image": image,
                    "targetType": "drive",
                    "drives": [drive],
                    "driveCount": 1,
                }
                yield event("Flash", {**flash, "status": "started"}, when=1000)
                luck = rng.random()
                fail_rate = 0.3 if drive_type == "usb-card-reader" else 0.08
                if luck < fail_rate:
                    yield event("Drive unplugged", {**flash, "errorCode": "EUNPLUGGED"})
                    yield event("Write failed", {**flash, "status": "failed"}, when=2000)
                elif luck < fail_rate + 0.05:
                    yield event("Cancel", {**flash, "status": "cancel"}, when=2000)
                else:
                    speed = round(rng.uniform(5, 40) * (2 if drive_type == "nvme" else 1), 2)
                    yield event(
                        "Done",
                        {
                            **flash,
                            "status": "finished",
                            "mbPerSecond": speed,
                            "validation": "passed",
                        },
                        when=60_000,
                    )
