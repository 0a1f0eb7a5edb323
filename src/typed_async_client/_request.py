"""
What a request accepts, checked at the call before anything is scheduled.

Whatever httpx (0.28) or h11 would refuse later, inside the request's task, is refused here:
there it would end the request as ERROR, count as started, perhaps be retried, and its error's
message could show a secret (``UnicodeEncodeError`` and h11's ``LocalProtocolError`` quote the
header value whole). A wrong type raises ``TypeError``, a bad value ``ValueError``; the message
names the argument, and never shows a header value, a cookie or a password: URLs are shown
redacted (``_redact.redact_url``), header and cookie values not at all.

These checks run on every request. The common shapes take a fast path: an absolute ``str`` URL
already accepted is remembered, and a header whose name and value are ASCII ``str`` is checked
with ``isascii``, ``isprintable`` and one regex; the precise diagnosis runs only on failure.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from http.cookiejar import CookieJar
from typing import Any, Final, TypedDict

import httpx

from ._redact import SENSITIVE_QUERY_KEYS, redact_url

#: An HTTP token (RFC 9110): what h11 accepts as a header name.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_BYTES: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN: Final = ("\r", "\n", "\x00")
_FORBIDDEN_BYTES: Final = (b"\r", b"\n", b"\x00")
_SCHEMES: Final = frozenset({"http", "https"})
#: ASCII control characters: httpx refuses a URL holding any (``InvalidURL``).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
#: A scheme at the start of a URL (``mailto:``, ``localhost:``): httpx would take it as one.
_SCHEME_PREFIX: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
#: What a host name (after IDNA encoding) may hold: letters, digits, dots, hyphens and the
#: underscore some internal names use. httpx accepts more (it percent-encodes a space), but
#: no resolver finds such a name, and the failure would be a retried connection error.
_HOST: Final = re.compile(r"[A-Za-z0-9._\-]+")
#: httpx validates a host shaped like an IPv4 address with ``ipaddress.IPv4Address``, which
#: refuses an octet past 255 or with a leading zero; ``_IPV4`` says the same 5 times faster.
_IPV4_STYLE: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV4: Final = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.|$)){4}")
_MAX_URL_LENGTH: Final = 65_536  # httpx's MAX_URL_LENGTH


class RequestOptionsWithoutTimeout(TypedDict, total=False):
    """The options of :class:`RequestOptions` but ``timeout`` (for helpers that own it)."""

    content: str | bytes | AsyncIterable[bytes]
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

    They mean what they mean in httpx; an option left out takes the client's default. A
    ``content`` must be ``str``, ``bytes`` or an async iterable of bytes: an async client cannot
    send a sync iterable.
    """

    timeout: httpx.Timeout | float | None


_OPTION_NAMES: Final = frozenset(RequestOptions.__annotations__)


def _has_forbidden(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return any(char in text for char in _FORBIDDEN_BYTES)
    return any(char in text for char in _FORBIDDEN)


# -- method and URL ---------------------------------------------------------------------------

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


def check_url(
    url: object,
    *,
    has_base_url: bool,
    sensitive_query_keys: frozenset[str] = SENSITIVE_QUERY_KEYS,
) -> None:
    """
    Reject URLs that cannot be sent: wrong type, control characters, a scheme other than
    http(s), no host, a host no resolver could find, a bad IP literal or port.

    A relative URL is accepted only when the client has a ``base_url``. Error messages show
    the URL with its credentials and the values of ``sensitive_query_keys`` redacted.
    """
    if url.__class__ is str and url in _CHECKED_URLS:
        return
    if isinstance(url, httpx.URL):
        text = str(url)
        scheme = url.scheme
    elif isinstance(url, str):
        text = url
        head, sep, _ = url.partition("://")
        scheme = head.lower() if sep else ""
    else:
        raise TypeError(f"url must be a str or an httpx.URL, got {type(url).__name__}")
    keys = sensitive_query_keys
    if not (text.isascii() and text.isprintable()):
        _check_characters(text, keys)
    if len(text) > _MAX_URL_LENGTH:
        raise ValueError(f"url must be at most {_MAX_URL_LENGTH:,} characters, got {len(text):,}")
    if scheme:
        if scheme not in _SCHEMES:
            raise _url_error(f"url scheme must be 'http' or 'https', got {scheme!r} in", text, keys)
        _check_authority(text, text.partition("://")[2], keys)
    elif not has_base_url:
        raise _url_error(
            "url must be absolute (http:// or https://) when the client has no base_url, got",
            text,
            keys,
        )
    elif text.startswith("//"):  # scheme-relative: the host is the URL's own
        _check_authority(text, text[2:], keys)
    elif text.startswith(":") or _SCHEME_PREFIX.match(text):
        raise _url_error(
            "url must be absolute (http:// or https://) or a path relative to base_url, got",
            text,
            keys,
        )
    if scheme and isinstance(url, str):
        if len(_CHECKED_URLS) >= _CHECKED_URLS_MAX:
            _CHECKED_URLS.clear()
        _CHECKED_URLS.add(url)


def _url_error(message: str, text: str, keys: frozenset[str]) -> ValueError:
    return ValueError(f"{message} {redact_url(text, keys)!r}")


def _check_characters(text: str, keys: frozenset[str]) -> None:
    """Control characters (httpx refuses them); other non-ASCII ones are percent-encoded."""
    bad = _CONTROL.search(text)
    if bad is None:
        return
    if _has_forbidden(text):
        raise _url_error("url must not contain CR, LF or NUL characters, got", text, keys)
    raise _url_error(
        f"url must not contain control characters ({bad.group()!r} at position {bad.start()}), got",
        text,
        keys,
    )


def _check_authority(text: str, rest: str, keys: frozenset[str]) -> None:
    """The host and port of a URL: a host is required and must be resolvable, a port 0-65535."""
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if authority.startswith("["):  # an IPv6 literal
        host, closed, after = authority[1:].partition("]")
        if not closed:
            raise _url_error("url has an IPv6 host without its closing ']', got", text, keys)
        if after and not after.startswith(":"):
            raise _url_error("url must have only ':port' after an IPv6 host, got", text, keys)
        _check_port(after[1:], text, keys)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _url_error(
                "url host must be a valid IPv6 address between '[' and ']', got", text, keys
            ) from None
        return
    host, _, port = authority.partition(":")
    if not host:
        raise _url_error("url must name a host, got", text, keys)
    _check_port(port, text, keys)
    if not host.isascii():
        try:  # httpx encodes an internationalized name with IDNA, as here
            host = httpx.URL(f"http://{host}/").raw_host.decode("ascii")
        except httpx.InvalidURL:
            raise _url_error(
                "url host must be a valid internationalized domain name, got", text, keys
            ) from None
    if not _HOST.fullmatch(host):
        valid = _HOST.match(host)
        index = valid.end() if valid else 0
        raise _url_error(
            "url host must hold only letters, digits, '.', '-' and '_' "
            f"(found {host[index]!r} at position {index} of the host), got",
            text,
            keys,
        )
    if host[0].isdigit() and _IPV4_STYLE.fullmatch(host) and not _IPV4.fullmatch(host):
        raise _url_error("url host must be a valid IPv4 address, got", text, keys)


def _check_port(port: str, text: str, keys: frozenset[str]) -> None:
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        # The port is not quoted on its own: in "http://user:password/" it is a password.
        raise _url_error("url port must be a number from 0 to 65535, got", text, keys)


# -- headers ----------------------------------------------------------------------------------


def check_headers(headers: Any) -> None:
    """
    Reject headers httpx or h11 would refuse when sending: a name that is not an HTTP token;
    a value that is not ``str`` or ``bytes``, holds CR, LF or NUL, starts or ends with a space
    or tab, or (as ``str``) is not ASCII. ``headers`` is a mapping, a list or tuple of
    ``(name, value)`` pairs, or an ``httpx.Headers``.
    """
    if isinstance(headers, dict):
        pairs: Iterable[Any] = headers.items()
    elif isinstance(headers, httpx.Headers):  # a Mapping too, whose items are decoded: use raw
        pairs = headers.raw
    elif isinstance(headers, Mapping):
        pairs = headers.items()
    elif isinstance(headers, (list, tuple)):
        pairs = headers
        for pair in pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(
                    f"headers: each item must be a (name, value) pair, got {type(pair).__name__}"
                )
    else:
        # An iterator would be spent by the first attempt, and a retry sent without headers.
        raise TypeError(
            "headers must be a mapping, a list or tuple of (name, value) pairs or an "
            f"httpx.Headers, got {type(headers).__name__}"
        )
    for name, value in pairs:
        if (
            name.__class__ is str
            and value.__class__ is str
            and value.isascii()
            and value.isprintable()  # with isascii: only characters 0x20-0x7e
            and (not value or (value[0] != " " and value[-1] != " "))
            and _TOKEN.fullmatch(name)
        ):
            continue  # the common case: 0.29 us a header (the any() scan it replaces: 0.82)
        _check_header(name, value)


def _check_header(name: object, value: object) -> None:
    """The slow path of ``check_headers``: say precisely what is wrong with this header."""
    if not isinstance(name, (str, bytes)):
        raise TypeError(f"headers: a header name must be str or bytes, got {type(name).__name__}")
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    if not text:
        raise ValueError("headers: a header name must not be empty")
    valid = _TOKEN.match(text)
    shown = repr(text) if valid and valid.end() == len(text) else _prefix(text, valid)
    if _has_forbidden(name):
        raise ValueError(f"headers: header name {shown} must not contain CR, LF or NUL characters")
    if valid is None or valid.end() != len(text):
        index = valid.end() if valid else 0
        char = text[index]
        rule = "must be ASCII" if not char.isascii() else "must be an HTTP token"
        raise ValueError(
            f"headers: header name {shown} {rule} (letters, digits and !#$%&'*+-.^_`|~), found "
            f"{char!r} at position {index}"
        )
    _check_header_value(f"the value of header {text!r}", value, "headers")


def _prefix(text: str, valid: re.Match[str] | None) -> str:
    """A bad name shown up to its first bad character: "Authorization: Bearer x" is a secret."""
    return repr(text[: valid.end()] if valid else "") + "..."


def _check_header_value(what: str, value: object, argument: str) -> None:
    """A header (or cookie) value, never shown: only where the problem is."""
    if not isinstance(value, (str, bytes)):
        raise TypeError(f"{argument}: {what} must be str or bytes, got {type(value).__name__}")
    if _has_forbidden(value):
        raise ValueError(f"{argument}: {what} must not contain CR, LF or NUL characters")
    if isinstance(value, str) and not value.isascii():
        index = next(i for i, char in enumerate(value) if not char.isascii())
        code = ord(value[index])
        hint = " (a non-breaking space)" if code == 0xA0 else ""
        tail = "; pass bytes to send other octets" if argument == "headers" else ""
        raise ValueError(
            f"{argument}: {what} must be ASCII, found U+{code:04X}{hint} at position {index}{tail}"
        )
    edge: tuple[str | bytes, ...] = (" ", "\t") if isinstance(value, str) else (b" ", b"\t")
    if value[:1] in edge or value[-1:] in edge:
        raise ValueError(f"{argument}: {what} must not start or end with a space or a tab")


# -- body, query, cookies and auth ------------------------------------------------------------

_CONTENT_TYPES: Final = "content must be str, bytes or an async iterable of bytes"


def check_content(content: object) -> None:
    """``str``, ``bytes`` or an async iterable: httpx's AsyncClient cannot send anything else."""
    if content is None or isinstance(content, (str, bytes)) or hasattr(content, "__aiter__"):
        return
    kind = type(content).__name__
    if isinstance(content, (bytearray, memoryview)):
        raise TypeError(f"{_CONTENT_TYPES}, got {kind}: pass bytes(content)")
    if isinstance(content, Iterable) and not isinstance(content, dict):
        # httpx takes it as a sync stream, then its AsyncClient raises RuntimeError sending it.
        raise TypeError(
            f"{_CONTENT_TYPES}, got {kind}: an async client cannot send a sync iterable; join "
            "it into bytes or yield it from an async generator"
        )
    raise TypeError(f"{_CONTENT_TYPES}, got {kind}")


def check_json(value: object) -> None:
    """
    Reject a body httpx cannot serialize, by serializing it as httpx does.

    Only a full serialization is sound (``{"a": object()}`` is a dict of a dict), and it is
    cheap next to the request: httpx serializes the body again for each attempt, so this is at
    most one more ``json.dumps`` (about 2 us for a small object, 20 us for 1.5 KB). Plain
    scalars skip it.
    """
    cls = value.__class__
    if value is None or cls is str or cls is int or cls is bool:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("json must not be NaN or infinite (httpx sends strict JSON)")
        return
    try:
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"json must be JSON-serializable: {exc}") from exc
    except RecursionError as exc:
        raise ValueError("json must be JSON-serializable: it is nested too deeply") from exc
    except ValueError as exc:  # NaN or infinity, a circular reference
        raise ValueError(f"json must be JSON-serializable: {exc}") from exc


def check_data(data: object) -> None:
    """Form fields: a mapping (httpx still sends ``str`` or ``bytes``, deprecated, as content)."""
    if data is None or isinstance(data, (Mapping, str, bytes)):
        return
    raise TypeError(
        f"data must be a mapping of form fields, got {type(data).__name__}; "
        "send a raw body as content="
    )


def check_files(files: object) -> None:
    """A mapping or a list of ``(field, file)`` pairs, as httpx's multipart encoder takes."""
    if files is None or isinstance(files, (Mapping, list, tuple)):
        return
    raise TypeError(
        f"files must be a mapping or a list of (name, file) pairs, got {type(files).__name__}"
    )


def check_params(params: object) -> None:
    """A mapping, a list or tuple of pairs, a query string or an ``httpx.QueryParams``."""
    if params is None or isinstance(params, (Mapping, str, bytes, httpx.QueryParams)):
        return  # httpx turns every key and value into text
    if isinstance(params, (list, tuple)):
        for pair in params:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(
                    f"params: each item must be a (key, value) pair, got {type(pair).__name__}"
                )
        return
    raise TypeError(
        "params must be a mapping, a list of (key, value) pairs, a str or an "
        f"httpx.QueryParams, got {type(params).__name__}"
    )


def check_cookies(cookies: object) -> None:
    """
    A dict, a list of ``(name, value)`` pairs, an ``httpx.Cookies`` or a ``CookieJar`` (httpx
    takes anything else for a jar, and fails when sending). Names and values must be ASCII
    ``str`` without CR, LF, NUL or edge whitespace: they end up in the ``Cookie`` header.
    """
    if cookies is None:
        return
    if isinstance(cookies, dict):  # httpx checks for a dict, not any mapping
        pairs: Iterable[tuple[object, object]] = cookies.items()
    elif isinstance(cookies, list):  # and for a list, not any sequence
        pairs = cookies
        for pair in pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(
                    f"cookies: each item must be a (name, value) pair, got {type(pair).__name__}"
                )
    elif isinstance(cookies, (httpx.Cookies, CookieJar)):
        jar = cookies.jar if isinstance(cookies, httpx.Cookies) else cookies
        pairs = [(cookie.name, cookie.value) for cookie in jar if cookie.value is not None]
    else:
        raise TypeError(
            "cookies must be a dict, a list of (name, value) pairs, an httpx.Cookies or a "
            f"CookieJar, got {type(cookies).__name__}"
        )
    for name, value in pairs:
        if not isinstance(name, str):
            raise TypeError(f"cookies: a cookie name must be a str, got {type(name).__name__}")
        if not name:
            raise ValueError("cookies: a cookie name must not be empty")
        valid = _TOKEN.match(name)
        if valid is None or valid.end() != len(name):
            raise ValueError(
                f"cookies: cookie name {_prefix(name, valid)} must be an HTTP token (letters, "
                "digits and !#$%&'*+-.^_`|~)"
            )
        if not isinstance(value, str):
            raise TypeError(
                f"cookies: the value of cookie {name!r} must be a str, got {type(value).__name__}"
            )
        _check_header_value(f"the value of cookie {name!r}", value, "cookies")


def check_auth(auth: object) -> None:
    """An ``httpx.Auth``, a ``(username, password)`` pair, a callable, or ``None``; never shown."""
    if auth is None or auth is httpx.USE_CLIENT_DEFAULT or isinstance(auth, httpx.Auth):
        return
    if isinstance(auth, tuple):
        if len(auth) != 2:
            raise TypeError(
                f"auth must be a (username, password) pair, got a tuple of {len(auth)} item(s)"
            )
        kinds = [type(part).__name__ for part in auth if not isinstance(part, (str, bytes))]
        if kinds:
            raise TypeError(f"auth: username and password must be str or bytes, got {kinds[0]}")
        return
    if callable(auth):
        return  # httpx wraps a callable taking and returning the request
    raise TypeError(
        "auth must be an httpx.Auth, a (username, password) tuple, a callable or None, got "
        f"{type(auth).__name__}"
    )


def check_follow_redirects(follow_redirects: object) -> None:
    """A bool (httpx would take any object for its truth)."""
    if not isinstance(follow_redirects, bool) and follow_redirects is not httpx.USE_CLIENT_DEFAULT:
        raise TypeError(f"follow_redirects must be a bool, got {type(follow_redirects).__name__}")


def check_extensions(extensions: object) -> None:
    """A mapping of httpx extensions (the client adds its ``trace`` to it)."""
    if extensions is not None and not isinstance(extensions, Mapping):
        raise TypeError(f"extensions must be a mapping, got {type(extensions).__name__}")


# -- durations --------------------------------------------------------------------------------


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


# -- all the options --------------------------------------------------------------------------

#: One check per option of ``RequestOptions``.
_OPTION_CHECKS: Final[dict[str, Callable[[Any], None]]] = {
    "content": check_content,
    "data": check_data,
    "files": check_files,
    "json": check_json,
    "params": check_params,
    "headers": lambda headers: None if headers is None else check_headers(headers),
    "cookies": check_cookies,
    "auth": check_auth,
    "follow_redirects": check_follow_redirects,
    "extensions": check_extensions,
    "timeout": check_timeout,
}


def check_options(options: Mapping[str, Any]) -> None:
    """Reject unknown request options, and options httpx would refuse when sending."""
    if not _OPTION_NAMES.issuperset(options):
        unknown = options.keys() - _OPTION_NAMES
        raise TypeError(
            f"unexpected request option(s) {sorted(unknown)}; accepted: {sorted(_OPTION_NAMES)}"
        )
    for name, value in options.items():
        _OPTION_CHECKS[name](value)
