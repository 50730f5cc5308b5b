"""The collector's configuration file (TOML): projects, destination tokens, forwarding, links.

Example::

    [forwarding]
    url = "https://api2.amplitude.com/2/httpapi"   # the default

    [projects.etcher]                              # project name = the client's api_key
    staging = "AMPLITUDE-TOKEN-FOR-STAGING"
    production = "AMPLITUDE-TOKEN-FOR-PRODUCTION"

    [links]                                        # the signed link tracker (GET /r/collect)
    secret = "a long random string"
    signature = "hmac-sha256"                      # or "md5" (Barnebys compatibility)
    allowed_hosts = ["github.com", ".example.com"] # redirect targets; ".x" = x and subdomains
    session_name = "_ba"
    session_max_age = 60                           # minutes

Tokens are held in :class:`Secret`, whose ``repr``/``str`` never show the value, so they cannot
reach a log line or a response by accident.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from telemetry import errors

__all__ = [
    "DEFAULT_FORWARD_URL",
    "ENVIRONMENTS",
    "CollectorConfig",
    "ConfigError",
    "LinkSettings",
    "Secret",
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

    def knows(self, project: str) -> bool:
        """Whether events of ``project`` are accepted."""
        return self.projects is None or project in self.projects

    def token(self, project: str, environment: str) -> Secret | None:
        """The destination token of ``project`` in ``environment``, if forwarding is set up."""
        if self.projects is None:
            return None
        return self.projects.get(project, {}).get(environment)

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


def parse_config(data: dict[str, Any], *, source: str = "(inline)") -> CollectorConfig:
    """Build a :class:`CollectorConfig` from parsed TOML; raise :class:`ConfigError` if invalid.

    Error messages name keys, never values (a value may be a token).
    """
    _check_keys(data, {"forwarding", "projects", "links", "rate_limit"}, "the top level")
    forwarding = data.get("forwarding", {})
    if not isinstance(forwarding, dict):
        raise ConfigError("[forwarding] must be a table")
    _check_keys(forwarding, {"url"}, "[forwarding]")
    url = _str(forwarding, "url", "[forwarding]") if "url" in forwarding else DEFAULT_FORWARD_URL
    if not url.startswith(("http://", "https://")):
        raise ConfigError("[forwarding].url must be an http(s) URL")

    projects: dict[str, dict[str, Secret]] | None = None
    if "projects" in data:
        raw = data["projects"]
        if not isinstance(raw, dict):
            raise ConfigError("[projects] must be a table of projects")
        projects = {}
        for name, tokens in raw.items():
            where = f"[projects.{name}]"
            if not isinstance(tokens, dict):
                raise ConfigError(f"{where} must be a table")
            _check_keys(tokens, set(ENVIRONMENTS), where)
            projects[name] = {env: Secret(_str(tokens, env, where)) for env in tokens}

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

    return CollectorConfig(
        projects=projects,
        forward_url=url,
        links=_links(data["links"]) if "links" in data else None,
        device_events_per_second=float(eps),
        device_burst_events=burst,
        source=source,
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
