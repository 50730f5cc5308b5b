"""AnalyticsUrlParams for the desktop: link device ids across components through URLs.

The analytics-client's rules, with the store in place of the ``__analytics_dids`` cookie:

- ``d_id`` carries a comma-separated list of device ids, ``s_id`` a session id, and
  ``optOutAnalytics=true`` asks embedded content not to track;
- linked device ids are persisted, newest first, de-duplicated;
- a link to another site gets ``d_id=<all ids>&s_id=<session>``; a relative link or one to
  the same main domain gets nothing.

A desktop app consumes parameters from its command line or a deep link (``myapp://open?d_id=…``)
and decorates the external links it opens (:meth:`AnalyticsUrlParams.decorate`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

URL_PARAM_DEVICE_ID: Final = "d_id"
URL_PARAM_SESSION_ID: Final = "s_id"
URL_PARAM_OPT_OUT_REQUEST: Final = "optOutAnalytics"

_SPLIT_RE: Final = re.compile(r"\s*,\s*")
_RELATIVE_RE: Final = re.compile(r"^(?!www\.|(?:http|ftp)s?://|[A-Za-z]:\\|//).*", re.IGNORECASE)
_MAIN_DOMAIN_RE: Final = re.compile(r"([a-zA-Z0-9-]+)(\.[a-zA-Z]{2,3})?(\.[a-zA-Z]+$)")


class _UrlClient(Protocol):
    @property
    def device_id(self) -> str: ...

    @property
    def session_id(self) -> int: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def uploading(self) -> bool: ...

    def set_device_id(self, device_id: str) -> None: ...

    def set_session_id(self, session_id: int) -> None: ...

    def linked_device_ids(self) -> list[str]: ...

    def save_linked_device_ids(self, device_ids: Sequence[str]) -> None: ...


class AnalyticsUrlParams:
    """Reads and writes ``d_id``/``s_id``/``optOutAnalytics`` and keeps linked device ids.

    The linked ids are kept by the client (persisted in its database). While telemetry is
    off nothing is kept or written: consumed ids are forgotten, and links get no ``d_id``.
    Links get one only while the client may upload (the user answered the first-run notice,
    or said yes), so no id leaves the machine in a link before it could in an upload.
    Before a client is attached, consumed ids are held in memory and handed to it on
    :meth:`set_client`.

    Args:
        client: the client whose device id and session are linked (may be set later with
            :meth:`set_client`).
    """

    def __init__(self, client: _UrlClient | None = None) -> None:
        self._client: _UrlClient | None = None
        self._pending: list[str] = []  # consumed before a client was attached
        self._passed_device_id: str | None = None
        self._session_id: int | None = None
        self._opt_out_requested = False
        if client is not None:
            self.set_client(client)

    def _ids(self) -> list[str]:
        client = self._client
        if client is None:
            return list(self._pending)
        return client.linked_device_ids() if client.enabled else []

    def _save(self, ids: list[str]) -> None:
        ids = list(dict.fromkeys(i for i in ids if i))
        client = self._client
        if client is None:
            self._pending = ids
        elif client.enabled:
            client.save_linked_device_ids(ids)

    # ------------------------------------------------------------------ consuming

    def consume_url_parameters(self, query: str | None) -> str | None:
        """Take ``d_id``, ``s_id`` and ``optOutAnalytics`` out of a query string.

        Returns the remaining query string, or ``None`` when nothing was consumed.
        """
        if query is None:
            return None
        raw = query[1:] if query.startswith("?") else query
        pairs = parse_qsl(raw, keep_blank_values=True)
        values = dict(pairs)
        self._opt_out_requested = values.get(URL_PARAM_OPT_OUT_REQUEST) == "true"
        consumed = False
        if URL_PARAM_DEVICE_ID in values:
            consumed = True
            passed = self._merge(values[URL_PARAM_DEVICE_ID], with_client=True)
            if passed is not None and self._client is not None:
                self._client.set_device_id(passed)
        if URL_PARAM_SESSION_ID in values:
            consumed = True
            try:
                self._session_id = int(float(values[URL_PARAM_SESSION_ID]))
            except (ValueError, OverflowError):
                self._session_id = None
            if self._session_id is not None and self._client is not None:
                self._client.set_session_id(self._session_id)
        if not consumed:
            return None
        rest = [(k, v) for k, v in pairs if k not in (URL_PARAM_DEVICE_ID, URL_PARAM_SESSION_ID)]
        return urlencode(rest)

    def set_client(self, client: _UrlClient) -> None:
        """Attach the client (once); it adopts a passed device id and session id.

        Raises:
            RuntimeError: a client is already set.
        """
        if self._client is not None:
            raise RuntimeError("Client is already set")
        self._client = client
        pending, self._pending = self._pending, []
        if not client.enabled:
            self._passed_device_id = None
            self._session_id = None
            return
        if not pending:
            stored = client.linked_device_ids()
            self._passed_device_id = stored[0] if stored else None
        self._save(pending + [i for i in client.linked_device_ids() if i not in pending])
        if self._passed_device_id and self._passed_device_id != client.device_id:
            self._merge(client.device_id, with_client=False, append=True)
            client.set_device_id(self._passed_device_id)
        if self._session_id is not None and self._session_id != client.session_id:
            client.set_session_id(self._session_id)
        self._session_id = client.session_id

    def _merge(self, id_list: str, *, with_client: bool, append: bool = False) -> str | None:
        if self._client is not None and not self._client.enabled:
            return None  # telemetry is off: nothing is kept
        new = [i for i in _SPLIT_RE.split(id_list.strip()) if i]
        if new and not append:
            self._passed_device_id = new[0]
        if with_client and self._client is not None and self._client.device_id:
            new.append(self._client.device_id)
        ids = self._ids()
        self._save(ids + new if append else new + ids)
        return new[0] if new else None

    # ------------------------------------------------------------------ reading

    def get_client(self) -> _UrlClient | None:
        """The attached client."""
        return self._client

    def get_passed_device_id(self) -> str | None:
        """The first device id passed in (or stored from an earlier link)."""
        return self._passed_device_id

    def get_session_id(self) -> int | None:
        """The client's session id, else the passed one."""
        return self._client.session_id if self._client is not None else self._session_id

    def all_device_ids(self) -> list[str]:
        """Linked ids (newest first) plus the client's current id."""
        ids = self._ids()
        if self._client is not None and self._client.device_id:
            ids.append(self._client.device_id)
        return list(dict.fromkeys(ids))

    def is_opt_out_requested(self) -> bool:
        """True when the last consumed query said ``optOutAnalytics=true``."""
        return self._opt_out_requested

    def get_device_ids_query_string(self) -> str:
        """``d_id=<ids>`` (URL-encoded, comma-joined), or ``''``: always ``''`` while the
        client may not upload (telemetry off, or the first-run notice not answered yet), since
        a link carries the device id off the machine just as an upload would."""
        if self._client is not None and not self._client.uploading:
            return ""
        ids = self.all_device_ids()
        return f"{URL_PARAM_DEVICE_ID}={quote(','.join(ids), safe='!~*()')}" if ids else ""

    def get_session_id_query_string(self) -> str:
        """``s_id=<id>``, or ``''``."""
        session = self.get_session_id()
        return f"{URL_PARAM_SESSION_ID}={session}" if session is not None and session >= 0 else ""

    def get_query_string(self, destination: str | None, current_url: str | None = None) -> str:
        """The parameters to add to a link to ``destination``, by the seed's rules."""
        if destination is not None and _RELATIVE_RE.match(destination):
            return ""
        try:
            dest_host = urlsplit(destination).hostname if destination else None
            current_host = urlsplit(current_url).hostname if current_url else None
        except ValueError:
            return ""
        dest_domain = _main_domain(dest_host)
        if dest_domain is None or dest_domain != _main_domain(current_host):
            parts = [self.get_device_ids_query_string(), self.get_session_id_query_string()]
            return "&".join(p for p in parts if p)
        return ""

    def decorate(self, url: str, current_url: str | None = None) -> str:
        """``url`` with the linking parameters appended (before any fragment)."""
        extra = self.get_query_string(url, current_url)
        if not extra:
            return url
        parts = urlsplit(url)
        query = f"{parts.query}&{extra}" if parts.query else extra
        return urlunsplit(parts._replace(query=query))

    def clear(self) -> None:
        """Forget every linked device id (the seed's ``clearCookies``)."""
        self._passed_device_id = None
        self._save([])


def _main_domain(host: str | None) -> str | None:
    if not host:
        return None
    match = _MAIN_DOMAIN_RE.search(host)
    return match.group(0) if match else host
