"""
Keeping secrets out of what the library shows: URLs, headers, and the headers a redirect sends.

What counts as secret: the headers in ``SENSITIVE_HEADERS`` plus those the user declares, URL
credentials (``user:password@``), and the values of the query (or fragment) keys in
``SENSITIVE_QUERY_KEYS`` plus those the user declares, whether the pairs are separated by ``&``
or ``;``. Results, events and the library's own error messages carry URLs redacted this way;
the library's logs print only redacted URLs.

httpx drops ``Authorization`` and ``Cookie`` when a redirect leaves the origin, but keeps
``Proxy-Authorization`` and custom secrets such as ``X-Api-Key`` (RELIABILITY.md, fact 5).
:class:`RedirectGuard`, an httpx request hook installed on the clients the library creates,
strips every sensitive header from a redirected request that changes origin or goes from https
to http.

httpx's INFO line prints URLs whole, and httpcore's DEBUG trace prints response heads (a
redirect's ``Location``, ``Set-Cookie``) as reprs of ``(name, value)`` byte pairs; hpack's DEBUG
log (HTTP/2) prints header pairs as tuples. The first client created adds one
:class:`HttpxLogRedactor` to each of those loggers (``_REDACTED_LOGGERS``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

import httpx

REDACTED: Final[str] = "[REDACTED]"

SENSITIVE_HEADERS: Final[frozenset[str]] = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

#: Lower case: keys are compared case-insensitively. The cloud signatures are those of presigned
#: URLs (AWS SigV4 query auth, Google Cloud Storage V4 signing), whose security token is as
#: secret as the signature.
SENSITIVE_QUERY_KEYS: Final[frozenset[str]] = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "client_secret",
        "key",
        "password",
        "refresh_token",
        "secret",
        "sig",
        "signature",
        "token",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-signature",
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


#: The authority of a URL with a scheme or a scheme-relative URL: what follows ``//`` up to the
#: path, query or fragment (the same split as httpx's ``URL_REGEX``).
_AUTHORITY: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#]*)")
#: A ``key=value`` pair of a query or fragment, after its ``?``, ``#``, ``&`` or ``;``.
_PAIR: Final = re.compile(r"([?#&;])([^=?#&;]*)=([^#&;]*)")
#: The same in free text (log messages), where a quote or a space ends the value.
_TEXT_PAIR: Final = re.compile(r"([?#&;])([^=?#&;\s'\"]*)=([^#&;\s'\"]*)")
#: ``//userinfo@`` in free text: up to the last ``@`` before the path, a quote or a space.
_TEXT_USERINFO: Final = re.compile(r"(?<=//)[^/?#\s'\"]*@")


def _is_sensitive_key(key: str, sensitive_query_keys: frozenset[str]) -> bool:
    key = key.lower()
    if "%" in key or "+" in key:
        key = unquote_plus(key)  # "api%5Fkey" is "api_key"
    return key in sensitive_query_keys


def _redact_pairs(pattern: re.Pattern[str], text: str, keys: frozenset[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        separator, key = match.group(1, 2)
        if _is_sensitive_key(key, keys):
            return f"{separator}{key}={REDACTED}"
        return match.group()

    return pattern.sub(replace, text)


def redact_url(
    url: httpx.URL | str, sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS
) -> str:
    """
    ``url`` as text, without its credentials and with sensitive query values replaced.

    It works on the text as given, so that it never fails, even on a URL httpx would refuse
    (the call-site checks show such URLs in their errors), and changes nothing else: the
    userinfo before the last ``@`` of the authority becomes ``[REDACTED]``, and so does the value
    of every sensitive key in the query and the fragment (``?a=1&token=x;sig=y#access_token=z``).
    """
    text = str(url)
    if "@" not in text and "?" not in text and "#" not in text:
        return text  # the common case, kept cheap
    match = _AUTHORITY.match(text)
    if match is not None and "@" in match.group(1):
        start, end = match.span(1)
        host = match.group(1).rpartition("@")[2]
        text = f"{text[:start]}{REDACTED}@{host}{text[end:]}"
    # The authority holds no "?" or "#": the first one starts the query or the fragment.
    cut = len(text)
    for mark in "?#":
        index = text.find(mark)
        if index != -1 and index < cut:
            cut = index
    if cut == len(text):
        return text
    return text[:cut] + _redact_pairs(_PAIR, text[cut:], sensitive_query_keys)


#: A ``(name, value)`` pair as httpcore's trace prints header lists: ``(b'Name', b'value')``.
_TEXT_HEADER: Final = re.compile(
    r"""\((b?)'([!#$%&*+\-.^_`|~0-9A-Za-z]+)', (b?)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)"""
)


def redact_text(
    text: str,
    sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS,
    sensitive_headers: frozenset[str] = SENSITIVE_HEADERS,
) -> str:
    """
    Free text (a log message) with URL credentials, sensitive query values and the values of
    sensitive ``(name, value)`` header pairs (as ``repr`` prints them) replaced.
    """
    if "(" in text:

        def replace(match: re.Match[str]) -> str:
            name_prefix, name, value_prefix = match.group(1, 2, 3)
            if name.lower() in sensitive_headers:
                return f"({name_prefix}'{name}', {value_prefix}'{REDACTED}')"
            return match.group()

        text = _TEXT_HEADER.sub(replace, text)
    if "@" in text:
        text = _TEXT_USERINFO.sub(f"{REDACTED}@", text)
    if "=" in text:
        text = _redact_pairs(_TEXT_PAIR, text, sensitive_query_keys)
    return text


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
    A filter for the loggers of httpx, httpcore and hpack: what their records show loses URL
    credentials, secret query values and the values of sensitive headers (httpx's INFO line
    prints URLs whole, RELIABILITY.md fact 6; httpcore's DEBUG trace prints response heads).

    One instance is installed on every logger of ``_REDACTED_LOGGERS`` by the first client
    created; every client adds its sensitive query keys and headers to it (the loggers are
    process-wide, so the names are the union of all clients'). It rewrites the record's
    arguments (httpx passes URLs as arguments, hpack header pairs) or, for a record without
    arguments (httpcore formats its trace messages itself), the message. It never drops a
    record, and never raises: a record it cannot redact is replaced by a notice.

    Logging calls a logger's filters only for records that pass its level, so the filter costs
    nothing while those loggers are quiet.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS
        self.sensitive_headers: frozenset[str] = SENSITIVE_HEADERS

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            args = record.args
            if isinstance(args, tuple):
                if args:
                    record.args = tuple(self._redact_arg(arg) for arg in args)
                elif isinstance(record.msg, str):
                    record.msg = redact_text(
                        record.msg, self.sensitive_query_keys, self.sensitive_headers
                    )
            elif isinstance(args, dict):
                record.args = {key: self._redact_arg(arg) for key, arg in args.items()}
        except Exception:
            # Raising here would fail the request whose trace is being logged.
            record.msg, record.args = "[log record withheld: it could not be redacted]", ()
        return True

    def _redact_arg(self, arg: object) -> object:
        keys = self.sensitive_query_keys
        if isinstance(arg, httpx.URL):
            return redact_url(arg, keys)
        if isinstance(arg, str):
            return redact_text(arg, keys, self.sensitive_headers)
        if isinstance(arg, tuple) and len(arg) == 2:
            name, value = arg
            if isinstance(name, (str, bytes)) and isinstance(value, (str, bytes)):
                return (name, self._redact_header_value(name, value))
        return arg

    def _redact_header_value(self, name: str | bytes, value: str | bytes) -> str | bytes:
        """A header pair's value, as hpack logs them: masked if sensitive, else URL-redacted."""
        text_name = name.decode("latin-1") if isinstance(name, bytes) else name
        sensitive = text_name.lower() in self.sensitive_headers
        if isinstance(value, bytes):
            if sensitive:
                return REDACTED.encode()
            return redact_text(value.decode("latin-1"), self.sensitive_query_keys).encode("latin-1")
        return REDACTED if sensitive else redact_text(value, self.sensitive_query_keys)


#: The loggers whose records can show request or response secrets: httpx's INFO line, and the
#: DEBUG traces of httpcore (one logger per module: ``logging.getLogger("httpcore.http11")``...
#: in ``httpcore/_async/*.py`` and ``_sync/*.py``) and of hpack (HTTP/2 header pairs). A
#: logger's filters see only the records logged on that very logger, so each gets the filter.
_REDACTED_LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "hpack.hpack",
)


def install_httpx_log_redaction(
    sensitive_query_keys: frozenset[str], sensitive_headers: frozenset[str] = frozenset()
) -> None:
    """Add the redacting filter to each logger of ``_REDACTED_LOGGERS`` once; teach it names."""
    loggers = [logging.getLogger(name) for name in _REDACTED_LOGGERS]
    redactor = next(
        (f for logger in loggers for f in logger.filters if isinstance(f, HttpxLogRedactor)),
        None,
    )
    if redactor is None:
        redactor = HttpxLogRedactor()
    for logger in loggers:
        logger.addFilter(redactor)  # a no-op where it is already installed
    redactor.sensitive_query_keys |= sensitive_query_keys
    redactor.sensitive_headers |= sensitive_headers
