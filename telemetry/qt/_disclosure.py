"""What the consent notice lists, taken from the app's declared event catalogue.

The notice must not promise less than the app sends, so its list is built from the same
:class:`~telemetry.EventCatalogue` that every ``track()`` is checked against: an event or a
property the app may send is one the notice names. This module only turns the catalogue into
(name, description) pairs; the notice words and lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telemetry.catalogue import EventCatalogue

__all__ = ["Disclosure", "disclosure"]


@dataclass(frozen=True)
class Disclosure:
    """The declared events and the details they carry, each as ``(name, description)``.

    A property declared by several events is listed once; when its descriptions differ,
    they are joined with " / " so that none is lost.
    """

    events: tuple[tuple[str, str], ...]
    properties: tuple[tuple[str, str], ...]


def disclosure(catalogue: EventCatalogue) -> Disclosure:
    """The notice's lists for ``catalogue``, in declaration order."""
    events = tuple((spec.name, spec.description.strip()) for spec in catalogue.events)
    descriptions: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for spec in catalogue.events:
        for name, prop in spec.properties.items():
            key = name.lower()  # property names match case-insensitively
            names.setdefault(key, name)
            seen = descriptions.setdefault(key, [])
            text = prop.description.strip()
            if text not in seen:
                seen.append(text)
    properties = tuple((names[key], " / ".join(texts)) for key, texts in descriptions.items())
    return Disclosure(events, properties)
