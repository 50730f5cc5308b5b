"""The collector's configuration file (TOML): projects, destination tokens, forwarding, links,
retention.

Example::

    [forwarding]
    url = "https://api2.amplitude.com/2/httpapi"   # the default

    [projects.etcher]                              # project name = the client's api_key
    staging = "AMPLITUDE-TOKEN-FOR-STAGING"
    production = "AMPLITUDE-TOKEN-FOR-PRODUCTION"
    sentry_project_id = 7                          # error reports may come to /api/7/envelope/
    sentry_key = "a-public-key"                    # their sentry_key (default: the project name)
    sentry_dsn = "https://key@sentry.example/123"  # forward stored error reports there
    retention_days = 30                            # this project's rows: deleted after 30 days

    [retention]
    days = 90                                      # every other project's rows (default: kept)

    [links]                                        # the signed link tracker (GET /r/collect)
    secret = "a long random string"
    signature = "hmac-sha256"                      # or "md5" (Barnebys compatibility)
    allowed_hosts = ["github.com", ".example.com"] # redirect targets; ".x" = x and subdomains
    session_name = "_ba"
    session_max_age = 60                           # minutes

    [dashboard]                                    # GET /dashboard (see _dashboard_settings)
    token = "a long random string"

Tokens are held in :class:`Secret`, whose ``repr``/``str`` never show the value, so they cannot
reach a log line or a response by accident.
"""

from __future__ import annotations

import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from telemetry import errors
from telemetry.collector._dashboard_settings import DashboardSettings, parse_dashboard

__all__ = [
    "DEFAULT_FORWARD_URL",
    "ENVIRONMENTS",
    "CollectorConfig",
    "ConfigError",
    "LinkSettings",
    "ReportSettings",
    "Secret",
    "SentryTarget",
    "load_config",
]

ENVIRONMENTS: Final = ("staging", "production")
DEFAULT_FORWARD_URL: Final = "https://api2.amplitude.com/2/httpapi"

Environment = Literal["staging", "production"]


class ConfigError(errors.ConfigError):
    """The configuration file is missing, not TOML, or has a wrong key or value (a
    :class:`telemetry.ConfigError`, so one ``except telemetry.TelemetryError`` catches it)."""


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value (only to put it on the wire)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class LinkSettings:
    """Settings of the signed link tracker."""

    secret: Secret
    signature: Literal["hmac-sha256", "md5"] = "hmac-sha256"
    allowed_hosts: tuple[str, ...] = ()
    session_name: str = "_ba"
    session_max_age_minutes: float = 60.0
    site_url: str | None = None


@dataclass(frozen=True)
class SentryTarget:
    """Where a project's error reports are forwarded: parsed from a Sentry DSN."""

    #: ``{scheme}://{host}[:port][/prefix]/api/{id}/envelope/``
    envelope_url: str
    public_key: Secret


@dataclass(frozen=True)
class ReportSettings:
    """A project's error report settings (``sentry_*`` keys of its ``[projects.NAME]`` table)."""

    #: The numeric id a Sentry DSN may name the project by (``/api/<id>/envelope/``).
    sentry_project_id: int | None = None
    #: The ``sentry_key`` senders must give; ``None``: the project name.
    sentry_key: Secret | None = None
    #: Forwarding target (``sentry_dsn``), if any.
    forward: SentryTarget | None = None


@dataclass(frozen=True)
class CollectorConfig:
    """The parsed configuration; the default (no file) accepts every project, forwards nothing."""

    #: project name -> environment -> destination token; ``None``: any project is accepted.
    projects: dict[str, dict[str, Secret]] | None = None
    forward_url: str = DEFAULT_FORWARD_URL
    links: LinkSettings | None = None
    #: Per-device rate limit: events per second (sustained) and burst.
    device_events_per_second: float = 1000.0
    device_burst_events: int = 30_000
    source: str = field(default="(embedded default)")
    #: project name -> its error report settings (only projects with a ``sentry_*`` key).
    reports: dict[str, ReportSettings] = field(default_factory=dict)
    #: ``[retention] days``: events, reports and tombstones received more than this many days
    #: ago are deleted; ``None``: kept forever (projects without their own ``retention_days``).
    retention_days: float | None = None
    #: project name -> its own ``retention_days`` (overrides ``[retention] days``).
    project_retention_days: dict[str, float] = field(default_factory=dict)
    #: The dashboard's login and refresh settings; ``None``: no dashboard is served.
    dashboard: DashboardSettings | None = None

    def retention_rules(self) -> list[tuple[str | None, float]]:
        """What retention deletes: ``(project, days)`` for each project with its own age, then
        ``(None, days)`` for every other project when ``[retention] days`` is set."""
        rules: list[tuple[str | None, float]] = sorted(self.project_retention_days.items())
        if self.retention_days is not None:
            rules.append((None, self.retention_days))
        return rules

    def knows(self, project: str) -> bool:
        """Whether events of ``project`` are accepted."""
        return self.projects is None or project in self.projects

    def token(self, project: str, environment: str) -> Secret | None:
        """The destination token of ``project`` in ``environment``, if forwarding is set up."""
        if self.projects is None:
            return None
        return self.projects.get(project, {}).get(environment)

    def report_project(self, name_or_id: str) -> str | None:
        """The project an envelope path's ``<project>`` names: a configured project name, or a
        ``sentry_project_id`` mapped to one; with no ``[projects]``, any name is itself."""
        if self.projects is None:
            return name_or_id
        if name_or_id in self.projects:
            return name_or_id
        if name_or_id.isascii() and name_or_id.isdigit():
            for name, settings in self.reports.items():
                if str(settings.sentry_project_id) == name_or_id.lstrip("0"):
                    return name
        return None

    def report_key(self, project: str) -> str:
        """The ``sentry_key`` that error reports of ``project`` must carry."""
        settings = self.reports.get(project)
        if settings is not None and settings.sentry_key is not None:
            return settings.sentry_key.reveal()
        return project

    def report_target(self, project: str) -> SentryTarget | None:
        """Where ``project``'s error reports are forwarded (its ``sentry_dsn``), if anywhere."""
        settings = self.reports.get(project)
        return settings.forward if settings is not None else None

    def forwarding_reports(self) -> bool:
        """Whether any project has a ``sentry_dsn``."""
        return any(s.forward is not None for s in self.reports.values())

    def forwarding(self, environment: str) -> bool:
        """Whether any project has a token for ``environment``."""
        return bool(self.projects) and any(
            environment in tokens for tokens in (self.projects or {}).values()
        )


def _str(table: dict[str, Any], key: str, where: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)}")


def _links(table: Any) -> LinkSettings:
    if not isinstance(table, dict):
        raise ConfigError("[links] must be a table")
    allowed = {
        "secret",
        "signature",
        "allowed_hosts",
        "session_name",
        "session_max_age",
        "site_url",
    }
    _check_keys(table, allowed, "[links]")
    if "secret" not in table:
        raise ConfigError("[links] needs a secret")
    signature = table.get("signature", "hmac-sha256")
    if signature not in ("hmac-sha256", "md5"):
        raise ConfigError('[links].signature must be "hmac-sha256" or "md5"')
    hosts = table.get("allowed_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError("[links].allowed_hosts must be a list of host names")
    max_age = table.get("session_max_age", 60)
    if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0:
        raise ConfigError("[links].session_max_age must be a positive number of minutes")
    return LinkSettings(
        secret=Secret(_str(table, "secret", "[links]")),
        signature=signature,
        allowed_hosts=tuple(h.lower() for h in hosts),
        session_name=_str(table, "session_name", "[links]") if "session_name" in table else "_ba",
        session_max_age_minutes=float(max_age),
        site_url=_str(table, "site_url", "[links]") if "site_url" in table else None,
    )


def parse_sentry_dsn(dsn: str) -> SentryTarget:
    """The envelope endpoint and public key of a Sentry DSN
    (``{scheme}://{key}@{host}[:port][/prefix]/{project_id}``); :class:`ConfigError` (naming no
    value) when it is not one."""
    try:
        parts = urllib.parse.urlsplit(dsn)
        port = parts.port
    except ValueError:
        raise ConfigError("a sentry_dsn is not a URL") from None
    prefix, _, project_id = parts.path.rstrip("/").rpartition("/")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not parts.username
        or not (project_id.isascii() and project_id.isdigit())
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            "a sentry_dsn must look like https://KEY@HOST/PROJECT_ID (numeric project id)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    url = f"{parts.scheme}://{netloc}{prefix}/api/{project_id}/envelope/"
    return SentryTarget(envelope_url=url, public_key=Secret(urllib.parse.unquote(parts.username)))


_REPORT_KEYS: Final = frozenset({"sentry_project_id", "sentry_key", "sentry_dsn"})


def _report_settings(table: dict[str, Any], where: str) -> ReportSettings:
    project_id = table.get("sentry_project_id")
    if project_id is not None and (
        isinstance(project_id, bool) or not isinstance(project_id, int) or project_id <= 0
    ):
        raise ConfigError(f"{where}.sentry_project_id must be a positive integer")
    key = Secret(_str(table, "sentry_key", where)) if "sentry_key" in table else None
    dsn = parse_sentry_dsn(_str(table, "sentry_dsn", where)) if "sentry_dsn" in table else None
    return ReportSettings(sentry_project_id=project_id, sentry_key=key, forward=dsn)


def _days(value: Any, where: str) -> float:
    """A retention age: a positive number of days."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{where} must be a positive number of days")
    return float(value)


def parse_config(data: dict[str, Any], *, source: str = "(inline)") -> CollectorConfig:
    """Build a :class:`CollectorConfig` from parsed TOML; raise :class:`ConfigError` if invalid.

    Error messages name keys, never values (a value may be a token).
    """
    _check_keys(
        data,
        {"forwarding", "projects", "links", "rate_limit", "retention", "dashboard"},
        "the top level",
    )
    forwarding = data.get("forwarding", {})
    if not isinstance(forwarding, dict):
        raise ConfigError("[forwarding] must be a table")
    _check_keys(forwarding, {"url"}, "[forwarding]")
    url = _str(forwarding, "url", "[forwarding]") if "url" in forwarding else DEFAULT_FORWARD_URL
    if not url.startswith(("http://", "https://")):
        raise ConfigError("[forwarding].url must be an http(s) URL")

    projects: dict[str, dict[str, Secret]] | None = None
    reports: dict[str, ReportSettings] = {}
    project_retention: dict[str, float] = {}
    if "projects" in data:
        raw = data["projects"]
        if not isinstance(raw, dict):
            raise ConfigError("[projects] must be a table of projects")
        projects = {}
        for name, tokens in raw.items():
            where = f"[projects.{name}]"
            if not isinstance(tokens, dict):
                raise ConfigError(f"{where} must be a table")
            _check_keys(tokens, set(ENVIRONMENTS) | _REPORT_KEYS | {"retention_days"}, where)
            if "retention_days" in tokens:
                project_retention[name] = _days(tokens["retention_days"], f"{where}.retention_days")
            projects[name] = {
                env: Secret(_str(tokens, env, where)) for env in tokens if env in ENVIRONMENTS
            }
            if _REPORT_KEYS & set(tokens):
                reports[name] = _report_settings(tokens, where)
        ids = [r.sentry_project_id for r in reports.values() if r.sentry_project_id is not None]
        if len(ids) != len(set(ids)):
            raise ConfigError("two projects have the same sentry_project_id")
        for name in projects:
            # /api/<project>/envelope/ takes a name first: a project named "7" would capture
            # the reports sent to another project's sentry_project_id 7.
            own = reports[name].sentry_project_id if name in reports else None
            if name.isascii() and name.isdigit() and int(name) in ids and int(name) != own:
                raise ConfigError(
                    f"project name {name!r} is another project's sentry_project_id; "
                    "rename one of them"
                )

    rate = data.get("rate_limit", {})
    if not isinstance(rate, dict):
        raise ConfigError("[rate_limit] must be a table")
    _check_keys(rate, {"device_events_per_second", "device_burst_events"}, "[rate_limit]")
    eps = rate.get("device_events_per_second", 1000.0)
    burst = rate.get("device_burst_events", 30_000)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or eps <= 0:
        raise ConfigError("[rate_limit].device_events_per_second must be a positive number")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst <= 0:
        raise ConfigError("[rate_limit].device_burst_events must be a positive integer")

    retention = data.get("retention", {})
    if not isinstance(retention, dict):
        raise ConfigError("[retention] must be a table")
    _check_keys(retention, {"days"}, "[retention]")
    days = _days(retention["days"], "[retention].days") if "days" in retention else None
    dashboard = None
    if "dashboard" in data:
        try:
            dashboard = parse_dashboard(data["dashboard"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    return CollectorConfig(
        retention_days=days,
        project_retention_days=project_retention,
        projects=projects,
        forward_url=url,
        links=_links(data["links"]) if "links" in data else None,
        device_events_per_second=float(eps),
        device_burst_events=burst,
        source=source,
        reports=reports,
        dashboard=dashboard,
    )


def load_config(path: str | Path | None) -> CollectorConfig:
    """Read the TOML file at ``path``; ``None`` gives the embedded default."""
    if path is None:
        return CollectorConfig()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        # The message quotes no value, only a position.
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, source=str(path))
