"""Declared properties of the event catalogue: the spec, its file form and validation, and the
check of values against declarations (event properties, items of arrays, user properties).

A declaration is indexed by lower-cased name (names match case-insensitively); an array
property may declare its items' properties (``items``), indexed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from telemetry.errors import ConfigError, InvalidEventError

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

_PROPERTY_KEYS: Final = frozenset({"type", "description", "classification", "items"})


@dataclass(frozen=True)
class PropertySpec:
    """One declared property: its type (a name from :data:`TYPES`, or a sequence of them),
    a one-line description, an optional classification (``technical`` or ``interaction``)
    and, for an array of objects, ``items``: the properties of each item (name to
    :class:`PropertySpec`, nested objects flattened to dotted keys as in events).
    A sequence of types is stored as a tuple."""

    type: str | tuple[str, ...]
    description: str
    classification: str | None = None
    items: Mapping[str, PropertySpec] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.type, list):  # from a file, or a list given in code
            object.__setattr__(self, "type", tuple(self.type))

    @property
    def types(self) -> tuple[str, ...]:
        """The allowed type names, always as a tuple."""
        return (self.type,) if isinstance(self.type, str) else self.type


#: Lower-cased name to (declared name, spec, index of the items' properties or None).
Declared = dict[str, tuple[str, PropertySpec, "Declared | None"]]


def parse_properties(raw: object, where: str, prefix: str = "") -> dict[str, PropertySpec]:
    """The :class:`PropertySpec` of each entry of a file's properties table."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: properties must be a table/object, not {kind(raw)}")
    props: dict[str, PropertySpec] = {}
    for name, entry in raw.items():
        pwhere = f"property {prefix + str(name)!r} of {where}"
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{pwhere} must be a table/object with type and description, not {kind(entry)}"
            )
        check_keys(entry, _PROPERTY_KEYS, pwhere)
        for required in ("type", "description"):
            if required not in entry:
                raise ConfigError(f"{pwhere} has no {required}")
        items = entry.get("items")
        props[name] = PropertySpec(
            entry["type"],
            entry["description"],
            entry.get("classification"),
            None if items is None else parse_properties(items, where, f"{prefix}{name}[]."),
        )
    return props


def index_properties(props: object, where: str, prefix: str = "") -> Declared:
    """Validate declared properties (``ConfigError`` naming the entry) and index them."""
    if not isinstance(props, Mapping):
        raise ConfigError(f"{where}: properties must be a mapping of name to PropertySpec")
    index: Declared = {}
    for name, prop in props.items():
        pwhere = f"property {prefix + str(name)!r} of {where}"
        lowered = _check_property(name, prop, pwhere)
        if lowered in index:
            raise ConfigError(
                f"{where}: properties {prefix + index[lowered][0]!r} and {prefix + name!r} are "
                "the same name (property names are matched case-insensitively)"
            )
        items = None
        if prop.items is not None:
            if "array" not in prop.types:
                raise ConfigError(f"{pwhere}: items are declared for arrays only")
            items = index_properties(prop.items, where, f"{prefix}{name}[].")
        index[lowered] = (name, prop, items)
    return index


def properties_to_dict(props: Mapping[str, PropertySpec]) -> dict[str, Any]:
    """The file form of declared properties."""
    out: dict[str, Any] = {}
    for name, prop in props.items():
        entry: dict[str, Any] = {
            "type": prop.type if isinstance(prop.type, str) else list(prop.type),
            "description": prop.description,
        }
        if prop.classification is not None:
            entry["classification"] = prop.classification
        if prop.items is not None:
            entry["items"] = properties_to_dict(prop.items)
        out[name] = entry
    return out


def property_rows(props: Mapping[str, PropertySpec], prefix: str = "") -> list[tuple[str, ...]]:
    """(name, types, classification, description) of each property and item property."""
    rows: list[tuple[str, ...]] = []
    for name, prop in props.items():
        rows.append(
            (prefix + name, " | ".join(prop.types), prop.classification or "-", prop.description)
        )
        if prop.items is not None:
            rows += property_rows(prop.items, f"{prefix}{name}[].")
    return rows


def check_values(
    declared: Declared, values: Mapping[str, Any], what: tuple[str, str], prefix: str = ""
) -> None:
    """Raise InvalidEventError unless every key of ``values`` (flattened) is declared with a
    value of a declared type, items of arrays included.

    ``what`` names a key in messages: ``("property", " of event 'Flash'")`` gives
    ``property 'size' of event 'Flash'``.
    """
    noun, owner = what
    for key, value in values.items():
        path = prefix + key
        entry = declared.get(key.lower())
        if entry is None:
            names = ", ".join(sorted(prefix + n for n, _, _ in declared.values())) or "none"
            raise InvalidEventError(
                f"{noun} {path!r}{owner} is not declared in the event catalogue "
                f"(declared: {names})",
                key=path,
            )
        _name, spec, items = entry
        if not any(is_type(value, name) for name in spec.types):
            raise InvalidEventError(
                f"{noun} {path!r}{owner} must be {' or '.join(spec.types)}, "
                f"not {value_kind(value)} ({value!r:.60})",
                key=path,
            )
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                _check_item(items, item, what, f"{path}[{index}]")


def _check_item(items: Declared | None, item: object, what: tuple[str, str], path: str) -> None:
    noun, owner = what
    if items is None:
        if _holds_object(item):
            raise InvalidEventError(
                f"{noun} {path!r}{owner} is an object; declare the keys of the array's items "
                "(items = {...}) in the event catalogue",
                key=path,
            )
    elif not isinstance(item, Mapping):
        raise InvalidEventError(
            f"{noun} {path!r}{owner} must be an object (the event catalogue declares the "
            f"properties of the array's items), not {value_kind(item)}",
            key=path,
        )
    else:
        check_values(items, flat_view(item), what, path + ".")


def flat_view(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``mapping`` with nested objects flattened to dotted keys (for matching only)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(flat_view(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _holds_object(value: object) -> bool:
    if isinstance(value, Mapping):
        return True
    return isinstance(value, (list, tuple)) and any(_holds_object(v) for v in value)


def _check_property(name: object, prop: object, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: property names must be non-empty strings")
    if not isinstance(prop, PropertySpec):
        raise ConfigError(f"{where} must be a PropertySpec, not {type(prop).__name__}")
    types: object = prop.type
    if not isinstance(types, (str, tuple)):
        raise ConfigError(f"{where}: type must be a type name or a list of them, not {kind(types)}")
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
    check_description(prop.description, where)
    if prop.classification is not None and prop.classification not in CLASSIFICATIONS:
        raise ConfigError(
            f"{where}: unknown classification {prop.classification!r} "
            f"(use one of {', '.join(CLASSIFICATIONS)})"
        )
    return name.lower()


def check_description(description: object, where: str) -> None:
    """ConfigError unless ``description`` is a non-empty one-line string."""
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where} needs a description (a non-empty one-line string)")
    if "\n" in description.strip():
        raise ConfigError(f"{where}: the description must be one line")


def check_keys(entry: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    """ConfigError for the first field of ``entry`` not in ``allowed``."""
    unknown = sorted(str(k) for k in entry if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def is_type(value: object, type_name: str) -> bool:
    """Whether a normalized ``value`` is of the JSON type ``type_name``."""
    if isinstance(value, bool):
        return type_name == "boolean"
    return isinstance(value, TYPES[type_name])


def value_kind(value: object) -> str:
    """``value``'s JSON type for a message (``an integer``, ``null``...)."""
    if isinstance(value, Mapping):
        return "an object (declare its flattened keys instead)"
    if value is None:
        return "null"
    for name in ("boolean", "integer", "number", "string", "array"):
        if is_type(value, name):
            return {"integer": "an integer", "array": "an array"}.get(name, f"a {name}")
    return f"a {type(value).__name__}"


def kind(value: object) -> str:
    """What a file entry is, for a message (``a table``, ``a list``, ``a str``...)."""
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
