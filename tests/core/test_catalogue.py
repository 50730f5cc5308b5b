"""The event catalogue: file validation, checking events, output, and `telemetry catalogue`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry._store import EventStore
from telemetry.catalogue import TYPES, EventCatalogue, EventSpec, PropertySpec
from telemetry.cli import main
from telemetry.errors import ConfigError, InvalidEventError
from telemetry.events import normalize_properties

FLASH = "[Etcher] Flash"

TOML = """
[events."[Etcher] Flash"]
description = "A flash started."
[events."[Etcher] Flash".properties]
flashInstanceUuid = { type = "string", description = "Random id of this flash.", \
classification = "technical" }
"drive.size" = { type = "integer", description = "Size of the target drive in bytes." }
"drive.isUSB" = { type = "boolean", description = "Whether the drive is on USB." }
error = { type = ["string", "null"], description = "Error code, if any.", \
classification = "interaction" }
speeds = { type = "array", description = "MB/s samples." }
ratio = { type = "number", description = "Fraction written." }

[events."Toggle setting"]
description = "The user changed a setting."
"""


@pytest.fixture
def toml_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(TOML, encoding="utf-8")
    return path


@pytest.fixture
def cat(toml_file: Path) -> EventCatalogue:
    return EventCatalogue.from_file(toml_file)


def catalogue(properties: dict[str, Any] | None = None, **event: Any) -> dict[str, Any]:
    """A one-event catalogue dict with the given property entries and event fields."""
    entry: dict[str, Any] = {"description": "An event.", **event}
    if properties is not None:
        entry["properties"] = properties
    return {"events": {"Flash": entry}}


def prop(type_: Any = "string", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": "A property.", **extra}


# ---------------------------------------------------------------------- loading and round trips


def test_toml_file_loads_in_declaration_order(cat: EventCatalogue) -> None:
    assert [e.name for e in cat.events] == [FLASH, "Toggle setting"]
    flash = cat.events[0]
    assert flash.description == "A flash started."
    assert flash.properties["error"] == PropertySpec(
        ("string", "null"), "Error code, if any.", "interaction"
    )
    assert flash.properties["drive.size"].types == ("integer",)
    assert cat.events[1].properties == {}
    assert FLASH in cat and "Toggle setting" in cat and "Flash" not in cat
    assert len(cat) == 2


def test_file_round_trip_through_to_dict_toml_and_json(
    cat: EventCatalogue, toml_file: Path, tmp_path: Path
) -> None:
    data = cat.to_dict()
    assert EventCatalogue.from_dict(data) == cat
    assert EventCatalogue.from_dict(json.loads(json.dumps(data))) == cat
    json_file = tmp_path / "catalogue.json"
    json_file.write_text(json.dumps(data), encoding="utf-8")
    assert EventCatalogue.from_file(json_file) == cat
    assert EventCatalogue.from_file(json_file).to_dict() == data
    assert data["events"][FLASH]["properties"]["error"] == {
        "type": ["string", "null"],
        "description": "Error code, if any.",
        "classification": "interaction",
    }
    assert "classification" not in data["events"][FLASH]["properties"]["drive.size"]


def test_catalogue_declared_in_code_equals_the_file(cat: EventCatalogue) -> None:
    in_code = EventCatalogue(
        [
            EventSpec(
                FLASH,
                "A flash started.",
                {
                    "flashInstanceUuid": PropertySpec(
                        "string", "Random id of this flash.", "technical"
                    ),
                    "drive.size": PropertySpec("integer", "Size of the target drive in bytes."),
                    "drive.isUSB": PropertySpec("boolean", "Whether the drive is on USB."),
                    "error": PropertySpec(["string", "null"], "Error code, if any.", "interaction"),
                    "speeds": PropertySpec("array", "MB/s samples."),
                    "ratio": PropertySpec("number", "Fraction written."),
                },
            ),
            EventSpec("Toggle setting", "The user changed a setting."),
        ]
    )
    assert in_code == cat
    assert in_code.to_dict() == cat.to_dict()


# ---------------------------------------------------------------------- file validation


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, 'no "events" table'),
        ({"events": [], "x": 1}, "unknown field 'x'"),
        ({"events": ["Flash"]}, '"events" must be a table'),
        ({"events": {"Flash": "A flash."}}, "event 'Flash' must be a table"),
        ({"events": {"Flash": {}}}, "event 'Flash' has no description"),
        (catalogue(description="  "), "event 'Flash' needs a description"),
        (catalogue(description="two\nlines"), "event 'Flash': the description must be one line"),
        (catalogue(descripton="typo"), "event 'Flash': unknown field 'descripton'"),
        (catalogue({"size": "integer"}), "property 'size' of event 'Flash' must be a table"),
        (
            catalogue({"size": {"type": "integer"}}),
            "property 'size' of event 'Flash' has no description",
        ),
        (
            catalogue({"size": {"description": "Size."}}),
            "property 'size' of event 'Flash' has no type",
        ),
        (catalogue({"size": prop("int")}), "property 'size' of event 'Flash': unknown type 'int'"),
        (catalogue({"size": prop(["integer", "float"])}), "unknown type 'float'"),
        (
            catalogue({"drive": prop("object")}),
            'type "object" is not allowed; nested objects are flattened',
        ),
        (catalogue({"size": prop(5)}), "type must be a type name or a list of them"),
        (
            catalogue({"size": prop([])}),
            "property 'size' of event 'Flash': the list of types is empty",
        ),
        (catalogue({"size": prop(["null", "null"])}), "a type is listed twice"),
        (catalogue({"size": prop(classification="personal")}), "unknown classification 'personal'"),
        (catalogue({"size": prop(unit="bytes")}), "unknown field 'unit'"),
        (
            catalogue({"size": prop(description="")}),
            "property 'size' of event 'Flash' needs a description",
        ),
        (
            catalogue({"Drive.Size": prop(), "drive.size": prop()}),
            "'Drive.Size' and 'drive.size' are the same name",
        ),
        (catalogue({"": prop()}), "property names must be non-empty strings"),
        (catalogue(properties=["size"]), "event 'Flash': properties must be a table"),
    ],
)
def test_bad_catalogue_is_refused_naming_the_entry(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        EventCatalogue.from_dict(data)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("$identify", "reserved"),
        ("$flash", "reserved"),
        ("[Amplitude] Page Viewed", "reserved"),
        ("   ", "must not be empty or blank"),
        ("x" * 1025, "1025 characters long"),
    ],
)
def test_bad_event_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match="bad event name in the event catalogue") as info:
        EventCatalogue.from_dict({"events": {name: {"description": "An event."}}})
    assert message in str(info.value)


def test_catalogue_in_code_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="'Flash' is declared twice"):
        EventCatalogue([EventSpec("Flash", "One."), EventSpec("Flash", "Two.")])
    with pytest.raises(ConfigError, match="unknown type 'str'"):
        EventCatalogue([EventSpec("Flash", "One.", {"a": PropertySpec("str", "A.")})])
    with pytest.raises(ConfigError, match="must be a PropertySpec, not str"):
        EventCatalogue([EventSpec("Flash", "One.", {"a": "string"})])  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="must be EventSpec, not dict"):
        EventCatalogue([{"name": "Flash"}])  # type: ignore[list-item]


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    yaml = tmp_path / "catalogue.yaml"
    yaml.write_text("events: {}")
    with pytest.raises(
        ConfigError, match=r"'catalogue.yaml': the file must end in \.toml or \.json"
    ):
        EventCatalogue.from_file(yaml)
    with pytest.raises(ConfigError, match=r"cannot read event catalogue .*missing\.toml"):
        EventCatalogue.from_file(tmp_path / "missing.toml")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[events\n")
    with pytest.raises(ConfigError, match=r"'bad\.toml' is not valid TOML"):
        EventCatalogue.from_file(bad_toml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"events": {')
    with pytest.raises(ConfigError, match=r"'bad\.json' is not valid JSON"):
        EventCatalogue.from_file(bad_json)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(catalogue({"size": prop("float")})))
    with pytest.raises(ConfigError, match=r"'wrong\.json': property 'size' of event 'Flash'"):
        EventCatalogue.from_file(wrong)


# ---------------------------------------------------------------------- checking events


def test_declared_event_with_normalized_nested_properties_passes(cat: EventCatalogue) -> None:
    props = normalize_properties(
        {
            "FlashInstanceUUID": "3f0c",
            "drive": {"Size": 8_000_000_000, "isUSB": True},
            "error": None,
            "speeds": [10.5, 12],
            "ratio": 1,
        }
    )
    assert set(props) == {
        "FlashInstanceUUID",
        "drive.size",
        "drive.isusb",
        "error",
        "speeds",
        "ratio",
    }
    cat.check(FLASH, props)
    cat.check(FLASH, {})  # declared properties are optional
    cat.check("Toggle setting", {})


def test_undeclared_event_is_refused_with_its_name_as_key(cat: EventCatalogue) -> None:
    with pytest.raises(InvalidEventError) as info:
        cat.check("Flash", {})
    assert info.value.key == "Flash"
    assert "event type 'Flash' is not declared in the event catalogue" in str(info.value)
    with pytest.raises(InvalidEventError, match=r"did you mean 'Toggle setting'\?") as info:
        cat.check("toggle setting", {})
    assert info.value.key == "toggle setting"


def test_undeclared_property_is_refused_with_its_key(cat: EventCatalogue) -> None:
    props = normalize_properties({"drive": {"path": "/home/alice/disk.img"}})
    with pytest.raises(InvalidEventError) as info:
        cat.check(FLASH, props)
    assert info.value.key == "drive.path"
    assert "property 'drive.path' of event '[Etcher] Flash' is not declared" in str(info.value)
    assert "declared: drive.isUSB, drive.size, error" in str(info.value)
    with pytest.raises(InvalidEventError, match=r"\(declared: none\)") as info:
        cat.check("Toggle setting", {"value": 1})
    assert info.value.key == "value"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("drive.size", True, "must be integer, not a boolean"),
        ("drive.size", 1.5, "must be integer, not a number"),
        ("drive.size", "8GB", "must be integer, not a string"),
        ("drive.isusb", 1, "must be boolean, not an integer"),
        ("ratio", False, "must be number, not a boolean"),
        ("error", 3, "must be string or null, not an integer"),
        ("FLASHINSTANCEUUID", None, "must be string, not null"),
        ("speeds", {}, "must be array, not an object (declare its flattened keys instead)"),
    ],
)
def test_wrong_type_is_refused_with_its_key(
    cat: EventCatalogue, key: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidEventError) as info:
        cat.check(FLASH, {key: value})
    assert info.value.key == key
    assert f"property {key!r} of event '[Etcher] Flash' {message}" in str(info.value)


def test_library_events_are_always_allowed() -> None:
    empty = EventCatalogue([])
    empty.check("$identify", {"anything": object()})
    empty.check("$groupidentify", {})
    assert "$identify" in empty
    with pytest.raises(InvalidEventError):
        empty.check("Flash", {})


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=10),
    "integer": st.integers(),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "array": st.lists(st.integers() | st.text(max_size=3), max_size=3),
    "null": st.none(),
}


@settings(deadline=None)
@given(
    declared=st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=3, unique=True),
    kind_and_value=st.sampled_from(sorted(_VALUES)).flatmap(
        lambda kind: st.tuples(st.just(kind), _VALUES[kind])
    ),
)
def test_value_is_accepted_exactly_when_its_kind_is_declared(
    declared: list[str], kind_and_value: tuple[str, Any]
) -> None:
    kind, value = kind_and_value
    cat = EventCatalogue([EventSpec("E", "An event.", {"p": PropertySpec(declared, "P.")})])
    accepted = kind in declared or (kind == "integer" and "number" in declared)
    if accepted:
        cat.check("E", {"P": value})
    else:
        with pytest.raises(InvalidEventError) as info:
            cat.check("E", {"P": value})
        assert info.value.key == "P"


# ---------------------------------------------------------------------- output and CLI


def _description_columns(text: str) -> set[int]:
    rows = [line for line in text.splitlines() if line.startswith("  ") and "  " in line[2:]]
    return {line.index(line.split("  ")[-1].strip()) for line in rows}


def test_to_text_lists_every_event_property_type_and_classification(cat: EventCatalogue) -> None:
    text = cat.to_text()
    assert text.startswith("Event catalogue: 2 event types, 6 properties.")
    for spec in cat.events:
        assert f"\n{spec.name}\n  {spec.description}\n" in text
        for name, p in spec.properties.items():
            line = next(line for line in text.splitlines() if line.startswith(f"  {name} "))
            assert " | ".join(p.types) in line and p.description in line
            assert (p.classification or "-") in line
    assert "string | null" in text
    assert "(no properties)" in text
    assert len(_description_columns(text)) == 1  # one aligned description column
    one = EventCatalogue([EventSpec("E", "An event.", {"p": PropertySpec("null", "P.")})])
    assert one.to_text().startswith("Event catalogue: 1 event type, 1 property.")


def test_cli_prints_the_catalogue_the_app_declared(
    cat: EventCatalogue, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EventStore(data_dir) as store:
        store.set_state("catalogue", cat.to_dict())
    assert main(["--data-dir", str(data_dir), "catalogue"]) == 0
    assert capsys.readouterr().out == cat.to_text()
    assert main(["--data-dir", str(data_dir), "catalogue", "--json"]) == 0
    assert EventCatalogue.from_dict(json.loads(capsys.readouterr().out)) == cat


def test_cli_says_when_the_app_declared_none(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EventStore(data_dir) as store:
        store.set_state("consent", "granted")
    assert main(["--data-dir", str(data_dir), "catalogue"]) == 0
    assert "declared no event catalogue" in capsys.readouterr().out


def test_cli_prints_a_file_and_reports_a_bad_one(
    toml_file: Path, tmp_path: Path, cat: EventCatalogue
) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "telemetry", "catalogue", "--file", str(toml_file), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(ok.stdout) == cat.to_dict()
    text = subprocess.run(
        [sys.executable, "-m", "telemetry", "catalogue", "--file", str(toml_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert text.stdout == cat.to_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('[events.Flash]\ndescription = "A flash."\nproperties = { size = "integer" }\n')
    failed = subprocess.run(
        [sys.executable, "-m", "telemetry", "catalogue", "--file", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert "property 'size' of event 'Flash' must be a table" in failed.stderr
