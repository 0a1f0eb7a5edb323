"""
What a request accepts, checked at the call before anything is scheduled.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from typing import Any, Final, TypedDict

import httpx

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN: Final = ("\r", "\n", "\x00")
_SCHEMES: Final = frozenset({"http", "https"})


class RequestOptionsWithoutTimeout(TypedDict, total=False):
    """The options of :class:`RequestOptions` but ``timeout`` (for helpers that own it)."""

    content: str | bytes | Iterable[bytes] | AsyncIterable[bytes]
    data: Mapping[str, Any]
    files: Any
    json: Any
    params: httpx.QueryParams | Mapping[str, Any] | Sequence[tuple[str, Any]] | str
    headers: httpx.Headers | Mapping[str, str] | Sequence[tuple[str, str]]
    cookies: httpx.Cookies | dict[str, str]
    auth: httpx.Auth | tuple[str, str] | None
    follow_redirects: bool
    extensions: Mapping[str, Any]


class RequestOptions(RequestOptionsWithoutTimeout, total=False):
    """
    The httpx request arguments a request accepts, passed to ``httpx.AsyncClient.request``.

    They mean what they mean in httpx; an option left out takes the client's default.
    """

    timeout: httpx.Timeout | float | None


_OPTION_NAMES: Final = frozenset(RequestOptions.__annotations__)


_FORBIDDEN_BYTES: Final = (b"\r", b"\n", b"\x00")


def _has_forbidden(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return any(char in text for char in _FORBIDDEN_BYTES)
    return any(char in text for char in _FORBIDDEN)


def _check_authority(text: str, rest: str) -> None:
    """The host and port of an absolute URL: a host is required, a port is 0-65535."""
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if authority.startswith("["):  # an IPv6 literal
        host, _, port = authority[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = authority.partition(":")
    if not host:
        raise ValueError(f"url must name a host, got {text!r}")
    if port and not (port.isdigit() and int(port) <= 65535):
        raise ValueError(f"url port must be a number from 0 to 65535, got {port!r} in {text!r}")


#: Methods already checked, to their upper-case form (the common ones from the start).
_METHODS: Final[dict[str, str]] = {
    m: m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
}
#: Absolute ``str`` URLs that passed ``check_url`` (valid whatever the base URL), bounded.
_CHECKED_URLS: Final[set[str]] = set()
_CHECKED_URLS_MAX: Final = 1024


def check_method(method: object) -> str:
    """Return the method in upper case, or raise ``ValueError``/``TypeError`` at the call."""
    known = _METHODS.get(method) if isinstance(method, str) else None
    if known is not None:
        return known
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"method must be an HTTP token such as 'GET', got {method!r}")
    upper = method.upper()
    if len(_METHODS) < 64:
        _METHODS[method] = upper
    return upper


def check_url(url: object, *, has_base_url: bool) -> None:
    """
    Reject URLs that cannot be sent: wrong type, CR/LF/NUL, a scheme other than http(s).

    A relative URL is accepted only when the client has a ``base_url``.
    """
    if url.__class__ is str and url in _CHECKED_URLS:
        return
    rest = ""
    if isinstance(url, httpx.URL):
        scheme = url.scheme
        text = str(url)
        if scheme:
            rest = text.partition("://")[2]
    elif isinstance(url, str):
        text = url
        head, sep, rest = url.partition("://")
        scheme = head.lower() if sep else ""
    else:
        raise TypeError(f"url must be a str or an httpx.URL, got {type(url).__name__}")
    if _has_forbidden(text):
        raise ValueError(f"url must not contain CR, LF or NUL characters, got {text!r}")
    if scheme:
        if scheme not in _SCHEMES:
            raise ValueError(f"url scheme must be 'http' or 'https', got {scheme!r} in {text!r}")
        _check_authority(text, rest)
    elif not has_base_url:
        raise ValueError(
            "url must be absolute (http:// or https://) when the client has no base_url, "
            f"got {text!r}"
        )
    if scheme and isinstance(url, str):
        if len(_CHECKED_URLS) >= _CHECKED_URLS_MAX:
            _CHECKED_URLS.clear()
        _CHECKED_URLS.add(url)


def check_options(options: Mapping[str, Any]) -> None:
    """Reject unknown request options and header names or values with CR/LF/NUL."""
    unknown = options.keys() - _OPTION_NAMES
    if unknown:
        raise TypeError(
            f"unexpected request option(s) {sorted(unknown)}; accepted: {sorted(_OPTION_NAMES)}"
        )
    headers = options.get("headers")
    if headers is not None:
        check_headers(headers)
    if "timeout" in options:
        check_timeout(options["timeout"])


def check_headers(headers: Any) -> None:
    """Reject header names or values (str or bytes) with CR, LF or NUL."""
    items = headers.items() if isinstance(headers, (Mapping, httpx.Headers)) else headers
    for name, value in items:
        if (isinstance(name, (str, bytes)) and _has_forbidden(name)) or (
            isinstance(value, (str, bytes)) and _has_forbidden(value)
        ):
            raise ValueError(f"header {name!r} must not contain CR, LF or NUL characters")


def _check_seconds(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0 or None, got {value}")


def check_timeout(timeout: object, name: str = "timeout") -> None:
    """Reject negative, NaN or infinite timeouts (httpx would fail later, and unclearly)."""
    if isinstance(timeout, httpx.Timeout):
        for part in ("connect", "read", "write", "pool"):
            _check_seconds(f"{name}.{part}", getattr(timeout, part))
    else:
        _check_seconds(name, timeout)
