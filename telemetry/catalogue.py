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

Types are ``string``, ``integer`` (an int: not bool, not float), ``number`` (int or float),
``boolean``, ``array`` (a list of JSON values) and ``null``, or a list of them
(``["string", "null"]``).
There is no ``object``: nested objects are flattened to dotted, lower-cased keys, so
``{"drive": {"size": 1}}`` is declared as ``"drive.size"``. Property names match
case-insensitively. Declared properties are optional. Event names starting with ``$`` (the
library's own ``$identify``) are always allowed and never checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Final

from telemetry.errors import ConfigError, InvalidEventError
from telemetry.events import validate_event_type

#: JSON types a property may declare, and the Python types of a normalized value of each.
TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "null": (type(None),),
}
#: Data categories a property may be classified in: Mozilla's data-collection categories 1
#: (technical data) and 2 (interaction data). Categories 3 and 4 (browsing activity, data that
#: identifies a person) are not offered: a desktop app's usage statistics never need them.
CLASSIFICATIONS: Final = ("technical", "interaction")

_EVENT_KEYS: Final = frozenset({"description", "properties"})
_PROPERTY_KEYS: Final = frozenset({"type", "description", "classification"})


@dataclass(frozen=True)
class PropertySpec:
    """One declared property: its type (a name from :data:`TYPES`, or a sequence of them),
    a one-line description and an optional classification (``technical`` or ``interaction``).
    A sequence of types is stored as a tuple."""

    type: str | tuple[str, ...]
    description: str
    classification: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.type, list):  # from a file, or a list given in code
            object.__setattr__(self, "type", tuple(self.type))

    @property
    def types(self) -> tuple[str, ...]:
        """The allowed type names, always as a tuple."""
        return (self.type,) if isinstance(self.type, str) else self.type


@dataclass(frozen=True)
class EventSpec:
    """One declared event type: its exact name, a one-line description and its properties
    (property name to :class:`PropertySpec`)."""

    name: str
    description: str
    properties: Mapping[str, PropertySpec] = field(default_factory=dict)


class EventCatalogue:
    """The event types and properties an app may send; see the module docstring.

    Raises:
        ConfigError: a declaration is unusable (unknown type, missing description, duplicate
            names, a reserved or malformed event name...); the message names the entry.
    """

    def __init__(self, events: Iterable[EventSpec]) -> None:
        specs = tuple(events)
        by_name: dict[str, EventSpec] = {}
        by_event_props: dict[str, dict[str, tuple[str, PropertySpec]]] = {}
        for spec in specs:
            if not isinstance(spec, EventSpec):
                raise ConfigError(
                    f"event catalogue entries must be EventSpec, not {type(spec).__name__}"
                )
            where = f"event {spec.name!r}"
            _check_event_name(spec.name)
            if spec.name in by_name:
                raise ConfigError(f"{where} is declared twice in the event catalogue")
            _check_description(spec.description, where)
            if not isinstance(spec.properties, Mapping):
                raise ConfigError(f"{where}: properties must be a mapping of name to PropertySpec")
            props: dict[str, tuple[str, PropertySpec]] = {}
            for prop_name, prop in spec.properties.items():
                lowered = _check_property(spec.name, prop_name, prop)
                if lowered in props:
                    raise ConfigError(
                        f"{where}: properties {props[lowered][0]!r} and {prop_name!r} are the "
                        "same name (property names are matched case-insensitively)"
                    )
                props[lowered] = (prop_name, prop)
            by_name[spec.name] = spec
            by_event_props[spec.name] = props
        self._events = specs
        self._by_name = by_name
        self._props = by_event_props

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventCatalogue:
        """A catalogue from the file's structure: ``{"events": {name: {"description": ...,
        "properties": {prop: {"type": ..., "description": ...}}}}}``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"an event catalogue must be a table/object, not {_kind(data)}")
        _check_keys(data, frozenset({"events"}), "the event catalogue")
        if "events" not in data:
            raise ConfigError('the event catalogue has no "events" table')
        events = data["events"]
        if not isinstance(events, Mapping):
            raise ConfigError(
                f'the catalogue\'s "events" must be a table/object, not {_kind(events)}'
            )
        specs: list[EventSpec] = []
        for name, entry in events.items():
            where = f"event {name!r}"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where} must be a table/object, not {_kind(entry)}")
            _check_keys(entry, _EVENT_KEYS, where)
            if "description" not in entry:
                raise ConfigError(f"{where} has no description")
            raw_props = entry.get("properties", {})
            if not isinstance(raw_props, Mapping):
                raise ConfigError(
                    f"{where}: properties must be a table/object, not {_kind(raw_props)}"
                )
            props: dict[str, PropertySpec] = {}
            for prop_name, prop in raw_props.items():
                pwhere = f"property {prop_name!r} of {where}"
                if not isinstance(prop, Mapping):
                    raise ConfigError(
                        f"{pwhere} must be a table/object with type and description, "
                        f"not {_kind(prop)}"
                    )
                _check_keys(prop, _PROPERTY_KEYS, pwhere)
                for required in ("type", "description"):
                    if required not in prop:
                        raise ConfigError(f"{pwhere} has no {required}")
                props[prop_name] = PropertySpec(
                    prop["type"], prop["description"], prop.get("classification")
                )
            specs.append(EventSpec(name, entry["description"], props))
        return cls(specs)

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

    def __contains__(self, event_type: object) -> bool:
        return isinstance(event_type, str) and (
            event_type in self._by_name or event_type.startswith("$")
        )

    def __len__(self) -> int:
        return len(self._events)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventCatalogue):
            return NotImplemented
        return self._events == other._events

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventCatalogue({len(self._events)} events)"

    def check(self, event_type: str, properties: Mapping[str, Any]) -> None:
        """Raise InvalidEventError unless the event and every property are declared, with
        values of the declared types.

        ``properties`` is the already-normalized dict (flattened, dotted keys); names
        match case-insensitively. ``key`` names the undeclared event or the bad property.
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
        declared = self._props[event_type]
        for key, value in properties.items():
            entry = declared.get(key.lower())
            if entry is None:
                names = ", ".join(sorted(n for n, _ in declared.values())) or "none"
                raise InvalidEventError(
                    f"property {key!r} of event {event_type!r} is not declared in the event "
                    f"catalogue (declared: {names})",
                    key=key,
                )
            spec = entry[1]
            if not any(_is_type(value, name) for name in spec.types):
                raise InvalidEventError(
                    f"property {key!r} of event {event_type!r} must be {' or '.join(spec.types)}, "
                    f"not {_value_kind(value)} ({value!r:.60})",
                    key=key,
                )

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        """The file structure (JSON-ready); ``from_dict(to_dict())`` gives an equal catalogue."""
        events: dict[str, Any] = {}
        for spec in self._events:
            props: dict[str, Any] = {}
            for name, prop in spec.properties.items():
                entry: dict[str, Any] = {
                    "type": prop.type if isinstance(prop.type, str) else list(prop.type),
                    "description": prop.description,
                }
                if prop.classification is not None:
                    entry["classification"] = prop.classification
                props[name] = entry
            events[spec.name] = {"description": spec.description, "properties": props}
        return {"events": events}

    def to_text(self) -> str:
        """A plain-text table of every event and property, for a privacy review."""
        count = sum(len(spec.properties) for spec in self._events)
        lines = [
            f"Event catalogue: {_plural(len(self._events), 'event type')}, "
            f"{_plural(count, 'property', 'properties')}.",
            "Events and properties not listed here are refused before anything is stored.",
        ]
        rows = [
            (name, " | ".join(prop.types), prop.classification or "-", prop.description)
            for spec in self._events
            for name, prop in spec.properties.items()
        ]
        header = ("property", "type", "classification", "description")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        for spec in self._events:
            lines += ["", spec.name, f"  {spec.description}"]
            if not spec.properties:
                lines.append("  (no properties)")
                continue
            lines.append(_row(header, widths))
            lines += [
                _row((name, " | ".join(p.types), p.classification or "-", p.description), widths)
                for name, p in spec.properties.items()
            ]
        return "\n".join(lines) + "\n"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  " + "  ".join([*padded, cells[-1]]).rstrip()


def _check_event_name(name: object) -> None:
    try:
        validate_event_type(name)
    except InvalidEventError as exc:
        raise ConfigError(f"bad event name in the event catalogue: {exc}") from exc


def _check_description(description: object, where: str) -> None:
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where} needs a description (a non-empty one-line string)")
    if "\n" in description.strip():
        raise ConfigError(f"{where}: the description must be one line")


def _check_property(event: str, name: object, prop: object) -> str:
    where = f"property {name!r} of event {event!r}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: property names must be non-empty strings")
    if not isinstance(prop, PropertySpec):
        raise ConfigError(f"{where} must be a PropertySpec, not {type(prop).__name__}")
    types: object = prop.type
    if not isinstance(types, (str, tuple)):
        raise ConfigError(
            f"{where}: type must be a type name or a list of them, not {_kind(types)}"
        )
    if isinstance(types, tuple):
        if not types:
            raise ConfigError(f"{where}: the list of types is empty")
        if len(set(types)) != len(types):
            raise ConfigError(f"{where}: a type is listed twice in {list(types)}")
    for type_name in prop.types:
        if type_name == "object":
            raise ConfigError(
                f'{where}: type "object" is not allowed; nested objects are flattened, so '
                f'declare each nested key instead (e.g. "{name}.size")'
            )
        if not isinstance(type_name, str) or type_name not in TYPES:
            raise ConfigError(
                f"{where}: unknown type {type_name!r} (use one of {', '.join(TYPES)}, "
                "or a list of them)"
            )
    _check_description(prop.description, where)
    if prop.classification is not None and prop.classification not in CLASSIFICATIONS:
        raise ConfigError(
            f"{where}: unknown classification {prop.classification!r} "
            f"(use one of {', '.join(CLASSIFICATIONS)})"
        )
    return name.lower()


def _check_keys(entry: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in entry if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _is_type(value: object, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "boolean"
    return isinstance(value, TYPES[type_name])


def _value_kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "an object (declare its flattened keys instead)"
    if value is None:
        return "null"
    for name in ("boolean", "integer", "number", "string", "array"):
        if _is_type(value, name):
            return {"integer": "an integer", "array": "an array"}.get(name, f"a {name}")
    return f"a {type(value).__name__}"


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
