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
to http. httpx's own INFO log line prints URLs whole; the first client created adds a filter to
the ``httpx`` logger that redacts them (:class:`HttpxLogRedactor`).
"""

from __future__ import annotations

import logging
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
class _Chain:
    """The redirect chain of one attempt: the scheme and origin of its latest hop."""

    scheme: str = ""
    origin: tuple[str, str, int | None] | None = None


#: The redirect chain of the attempt in progress, set by the engine around each attempt, in the
#: request's own task, where httpx runs the request hooks of every redirect hop. Outside an
#: attempt (the user calling ``client.http_client`` directly) it is ``None`` and the guard
#: stays out of the way.
_CHAIN: ContextVar[_Chain | None] = ContextVar("typed_async_client_redirect_chain", default=None)


def start_attempt() -> None:
    """A new attempt starts a new redirect chain."""
    _CHAIN.set(_Chain())


def end_attempt() -> None:
    """The attempt is over: requests made after it are not part of its chain."""
    _CHAIN.set(None)


class RedirectGuard:
    """An httpx request hook stripping sensitive headers from cross-origin or downgraded hops."""

    __slots__ = ("sensitive",)

    def __init__(self, sensitive: frozenset[str]) -> None:
        self.sensitive = sensitive

    async def __call__(self, request: httpx.Request) -> None:
        chain = _CHAIN.get()
        if chain is None:
            return
        url = request.url
        origin = (url.scheme, url.host, url.port)
        previous_scheme, previous_origin = chain.scheme, chain.origin
        chain.scheme, chain.origin = url.scheme, origin
        if previous_origin is None:
            return  # the first request of the chain
        downgraded = previous_scheme == "https" and url.scheme != "https"
        if downgraded or previous_origin != origin:
            for name in self.sensitive:
                if name in request.headers:
                    del request.headers[name]


class HttpxLogRedactor(logging.Filter):
    """
    A filter for the ``httpx`` logger: URLs in its records lose credentials and secret query
    values (httpx's INFO line prints both, RELIABILITY.md fact 6).

    Installed once, on the ``httpx`` logger, by the first client created; every client adds
    its sensitive query keys to it (the logger is shared, so the keys are the union of all
    clients'). It rewrites only the record's arguments that are URLs, and never drops a record.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
            keys = self.sensitive_query_keys
            record.args = tuple(
                redact_url(a, keys) if isinstance(a, httpx.URL) else a for a in args
            )
        return True


_HTTPX_LOGGER: Final[str] = "httpx"


def install_httpx_log_redaction(sensitive_query_keys: frozenset[str]) -> None:
    """Add the redacting filter to httpx's logger once, and teach it these query keys."""
    target = logging.getLogger(_HTTPX_LOGGER)
    for existing in target.filters:
        if isinstance(existing, HttpxLogRedactor):
            redactor = existing
            break
    else:
        redactor = HttpxLogRedactor()
        target.addFilter(redactor)
    redactor.sensitive_query_keys |= sensitive_query_keys
