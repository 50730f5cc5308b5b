"""The event catalogue: the event types and properties an app declares it may send.

An app that declares a catalogue (in a TOML or JSON file, or in code) gets every ``track()``
checked against it before anything is stored, so a forgotten debug property or a file path
slipped into an event can never leave the machine: an undeclared event type, an undeclared
property or a value of the wrong type raises :class:`~telemetry.errors.InvalidEventError`.
``telemetry catalogue`` prints the catalogue so that a privacy review (or a user) can read
exactly what the app may send, and the first-run notice lists it.

This module owns the catalogue's file format, its strict validation (a bad file raises
:class:`~telemetry.errors.ConfigError` naming the bad entry) and the check of one event::

    [events."[Etcher] Flash"]
    description = "A flash started."
    [events."[Etcher] Flash".properties]
    flashInstanceUuid = { type = "string", description = "Random id of this flash." }
    "drive.size" = { type = "integer", description = "Size of the target drive in bytes." }

    drives = { type = "array", description = "Target drives.", items = {
        size = { type = "integer", description = "Bytes." } } }

    [user_properties]
    plan = { type = "string", description = "Subscription plan." }

Types are ``string``, ``integer`` (an int: not bool, not float), ``number`` (int or float),
``boolean``, ``array`` and ``null``, or a list of them (``["string", "null"]``).
There is no ``object``: nested objects are flattened to dotted, lower-cased keys, so
``{"drive": {"size": 1}}`` is declared as ``"drive.size"``. An array holds scalars and
arrays of them, unless it declares ``items``: then each item is an object whose (flattened)
keys are declared there. Property names match case-insensitively. Declared properties are
optional. User properties (``identify``, ``set_user_properties``) are declared in
``[user_properties]``; with a catalogue, an undeclared one is refused. The library's own
``$identify`` of the app's name and library version is always allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Final

from telemetry._catalogue_spec import (
    CLASSIFICATIONS,
    TYPES,
    Declared,
    PropertySpec,
    check_description,
    check_keys,
    check_values,
    flat_view,
    index_properties,
    kind,
    parse_properties,
    properties_to_dict,
    property_rows,
)
from telemetry.errors import ConfigError, InvalidEventError
from telemetry.events import validate_event_type

__all__ = ["CLASSIFICATIONS", "TYPES", "EventCatalogue", "EventSpec", "PropertySpec"]

_EVENT_KEYS: Final = frozenset({"description", "properties"})
_TOP_KEYS: Final = frozenset({"events", "user_properties"})
#: ``$identify`` operations whose values are checked against the declared types (the others,
#: such as ``$unset`` or ``$add``, only need declared names).
_TYPED_OPS: Final = frozenset({"$set", "$setOnce"})


@dataclass(frozen=True)
class EventSpec:
    """One declared event type: its exact name, a one-line description and its properties
    (property name to :class:`PropertySpec`)."""

    name: str
    description: str
    properties: Mapping[str, PropertySpec] = field(default_factory=dict)


class EventCatalogue:
    """The event types, properties and user properties an app may send; see the module
    docstring.

    Raises:
        ConfigError: a declaration is unusable (unknown type, missing description, duplicate
            names, a reserved or malformed event name...); the message names the entry.
    """

    def __init__(
        self,
        events: Iterable[EventSpec],
        *,
        user_properties: Mapping[str, PropertySpec] | None = None,
    ) -> None:
        specs = tuple(events)
        by_name: dict[str, EventSpec] = {}
        by_event_props: dict[str, Declared] = {}
        for spec in specs:
            if not isinstance(spec, EventSpec):
                raise ConfigError(
                    f"event catalogue entries must be EventSpec, not {type(spec).__name__}"
                )
            where = f"event {spec.name!r}"
            _check_event_name(spec.name)
            if spec.name in by_name:
                raise ConfigError(f"{where} is declared twice in the event catalogue")
            check_description(spec.description, where)
            by_event_props[spec.name] = index_properties(spec.properties, where)
            by_name[spec.name] = spec
        self._events = specs
        self._by_name = by_name
        self._props = by_event_props
        self._user_properties: Mapping[str, PropertySpec] = dict(user_properties or {})
        self._user_index = index_properties(self._user_properties, "the user properties")

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventCatalogue:
        """A catalogue from the file's structure: ``{"events": {name: {"description": ...,
        "properties": {prop: {"type": ..., "description": ..., "items": {...}}}}},
        "user_properties": {prop: {...}}}`` (``user_properties`` optional)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"an event catalogue must be a table/object, not {kind(data)}")
        check_keys(data, _TOP_KEYS, "the event catalogue")
        if "events" not in data:
            raise ConfigError('the event catalogue has no "events" table')
        events = data["events"]
        if not isinstance(events, Mapping):
            raise ConfigError(
                f'the catalogue\'s "events" must be a table/object, not {kind(events)}'
            )
        specs: list[EventSpec] = []
        for name, entry in events.items():
            where = f"event {name!r}"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where} must be a table/object, not {kind(entry)}")
            check_keys(entry, _EVENT_KEYS, where)
            if "description" not in entry:
                raise ConfigError(f"{where} has no description")
            props = parse_properties(entry.get("properties", {}), where)
            specs.append(EventSpec(name, entry["description"], props))
        user = parse_properties(data.get("user_properties", {}), "the user properties")
        return cls(specs, user_properties=user)

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> EventCatalogue:
        """A catalogue from a ``.toml`` or ``.json`` file (chosen by the extension)."""
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix not in (".toml", ".json"):
            raise ConfigError(f"event catalogue {file.name!r}: the file must end in .toml or .json")
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read event catalogue {str(file)!r}: {exc.strerror}") from exc
        import tomllib  # only a catalogue file needs the TOML parser

        try:
            data: Any = tomllib.loads(raw.decode()) if suffix == ".toml" else json.loads(raw)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"event catalogue {file.name!r} is not valid {suffix[1:].upper()}: {exc}"
            ) from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"event catalogue {file.name!r}: {exc}") from exc

    # ------------------------------------------------------------------ use

    @property
    def events(self) -> tuple[EventSpec, ...]:
        """The declared events, in declaration order."""
        return self._events

    @property
    def user_properties(self) -> Mapping[str, PropertySpec]:
        """The declared user properties (name to :class:`PropertySpec`)."""
        return self._user_properties

    def __contains__(self, event_type: object) -> bool:
        return isinstance(event_type, str) and (
            event_type in self._by_name or event_type.startswith("$")
        )

    def __len__(self) -> int:
        return len(self._events)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventCatalogue):
            return NotImplemented
        return self._events == other._events and self._user_properties == other._user_properties

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventCatalogue({len(self._events)} events)"

    def check(self, event_type: str, properties: Mapping[str, Any]) -> None:
        """Raise InvalidEventError unless the event and every property are declared, with
        values of the declared types, and the keys of array items are declared.

        ``properties`` is the already-normalized dict (flattened, dotted keys); names
        match case-insensitively. ``key`` names the undeclared event or the bad property
        (``drives[0].serial`` inside an array).
        """
        if event_type.startswith("$"):
            return
        if event_type not in self._by_name:
            hint = [n for n in self._by_name if n.lower() == event_type.lower()]
            import difflib  # only a refused event needs a suggestion

            hint = hint or difflib.get_close_matches(event_type, self._by_name, n=1)
            raise InvalidEventError(
                f"event type {event_type!r} is not declared in the event catalogue"
                + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                key=event_type,
            )
        check_values(self._props[event_type], properties, ("property", f" of event {event_type!r}"))

    def check_user_properties(self, operation: str, values: Mapping[str, Any]) -> None:
        """Raise InvalidEventError unless every user property of one ``$identify``
        operation is declared in ``user_properties`` (and, for ``$set`` and ``$setOnce``,
        has a value of a declared type). Nested objects are matched by dotted keys."""
        what = ("user property", f" ({operation})")
        if operation in _TYPED_OPS:
            check_values(self._user_index, flat_view(values), what)
            return
        for key in flat_view(values):
            if key.lower() not in self._user_index:
                names = ", ".join(sorted(n for n, _, _ in self._user_index.values())) or "none"
                raise InvalidEventError(
                    f"user property {key!r} ({operation}) is not declared in the event "
                    f"catalogue (declared: {names})",
                    key=key,
                )

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        """The file structure (JSON-ready); ``from_dict(to_dict())`` gives an equal catalogue."""
        events = {
            spec.name: {
                "description": spec.description,
                "properties": properties_to_dict(spec.properties),
            }
            for spec in self._events
        }
        out: dict[str, Any] = {"events": events}
        if self._user_properties:
            out["user_properties"] = properties_to_dict(self._user_properties)
        return out

    def to_text(self) -> str:
        """A plain-text table of every event, property and user property, for a review."""
        sections = [(spec.name, spec.description, property_rows(spec.properties))
                    for spec in self._events]  # fmt: skip
        if self._user_properties:
            sections.append(
                ("User properties", "Set with identify().", property_rows(self._user_properties))
            )
        count = sum(len(rows) for _, _, rows in sections)
        lines = [
            f"Event catalogue: {_plural(len(self._events), 'event type')}, "
            f"{_plural(count, 'property', 'properties')}.",
            "Events and properties not listed here are refused before anything is stored.",
        ]
        header = ("property", "type", "classification", "description")
        every = [header, *(row for _, _, rows in sections for row in rows)]
        widths = [max(len(r[i]) for r in every) for i in range(3)]
        for name, description, rows in sections:
            lines += ["", name, f"  {description}"]
            if not rows:
                lines.append("  (no properties)")
                continue
            lines.append(_row(header, widths))
            lines += [_row(row, widths) for row in rows]
        return "\n".join(lines) + "\n"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  " + "  ".join([*padded, cells[-1]]).rstrip()


def _check_event_name(name: object) -> None:
    try:
        validate_event_type(name)
    except InvalidEventError as exc:
        raise ConfigError(f"bad event name in the event catalogue: {exc}") from exc
