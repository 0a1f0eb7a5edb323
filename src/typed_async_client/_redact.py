"""
Keeping secrets out of what the library shows: URLs, headers, and the headers a redirect sends.

What counts as secret: the headers in ``SENSITIVE_HEADERS`` plus those the user declares, URL
credentials (``user:password@``), and the values of the query keys in ``SENSITIVE_QUERY_KEYS``
plus those the user declares. Results and events carry URLs redacted this way; the library's
logs print only redacted URLs.

httpx drops ``Authorization`` and ``Cookie`` when a redirect leaves the origin, but keeps
``Proxy-Authorization`` and custom secrets such as ``X-Api-Key`` (RELIABILITY.md, fact 5).
:class:`RedirectGuard`, an httpx request hook installed on the clients the library creates,
strips every sensitive header from a redirected request that changes origin or goes from https
to http.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

REDACTED: Final[str] = "[REDACTED]"

SENSITIVE_HEADERS: Final[frozenset[str]] = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

SENSITIVE_QUERY_KEYS: Final[frozenset[str]] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "key",
        "password",
        "secret",
        "sig",
        "signature",
        "token",
    }
)


def normalize_names(names: Iterable[str], kind: str) -> frozenset[str]:
    """Lower-cased names, checked to be non-empty strings."""
    result = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{kind} must be non-empty strings, got {name!r}")
        result.add(name.strip().lower())
    return frozenset(result)


def redact_url(
    url: httpx.URL | str, sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS
) -> str:
    """``url`` as text, without its credentials and with sensitive query values replaced."""
    text = str(url)
    if "@" not in text and "?" not in text:
        return text  # the common case, kept cheap
    try:
        parts = urlsplit(text)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in sensitive_query_keys for key, _ in pairs):
            query = urlencode(
                [(k, REDACTED if k.lower() in sensitive_query_keys else v) for k, v in pairs],
                safe="[]",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(
    headers: httpx.Headers | Iterable[tuple[str, str]],
    sensitive: frozenset[str] = SENSITIVE_HEADERS,
) -> list[tuple[str, str]]:
    """The headers with the values of sensitive ones replaced."""
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers
    return [(k, REDACTED if k.lower() in sensitive else v) for k, v in items]


@dataclass(slots=True)
class _Hop:
    scheme: str
    origin: tuple[str, str, int | None]


#: The previous request of the attempt in progress, set by the engine per attempt; it lives in
#: the request's own task, where httpx runs the request hooks of every redirect hop.
_PREVIOUS_HOP: ContextVar[_Hop | None] = ContextVar("typed_async_client_previous_hop", default=None)


def start_attempt() -> None:
    """Forget the previous hop: a new attempt starts a new redirect chain."""
    _PREVIOUS_HOP.set(None)


class RedirectGuard:
    """An httpx request hook stripping sensitive headers from cross-origin or downgraded hops."""

    __slots__ = ("sensitive",)

    def __init__(self, sensitive: frozenset[str]) -> None:
        self.sensitive = sensitive

    async def __call__(self, request: httpx.Request) -> None:
        url = request.url
        hop = _Hop(url.scheme, (url.scheme, url.host, url.port))
        previous = _PREVIOUS_HOP.get()
        _PREVIOUS_HOP.set(hop)
        if previous is None:
            return
        downgraded = previous.scheme == "https" and hop.scheme != "https"
        if downgraded or previous.origin != hop.origin:
            for name in self.sensitive:
                if name in request.headers:
                    del request.headers[name]
