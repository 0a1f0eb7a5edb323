"""
The checks at the call (``_request``): what they accept and refuse, with their caches warm.

The client remembers the methods and the absolute URLs it has already accepted, to skip the
checks on the hot path; these tests make sure a remembered good value never lets a bad one
through and that the caches stay bounded.
"""

from __future__ import annotations

import pytest

from typed_async_client import _request
from typed_async_client._request import check_method, check_url


def test_known_and_new_methods_are_upper_cased() -> None:
    assert check_method("GET") == "GET"
    assert check_method("get") == "GET"
    assert check_method("get") == "GET"  # now remembered
    assert check_method("PROPFIND") == "PROPFIND"


@pytest.mark.parametrize("method", ["", "GE T", "GET\r\n", "G\x00"])
def test_bad_methods_are_refused_even_after_good_ones(method: str) -> None:
    check_method("GET")
    with pytest.raises(ValueError, match="method"):
        check_method(method)


def test_method_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="method must be a str"):
        check_method(b"GET")


def test_an_accepted_absolute_url_is_remembered_and_bad_ones_still_refused() -> None:
    url = "http://127.0.0.1:8000/remembered"
    check_url(url, has_base_url=False)
    assert url in _request._CHECKED_URLS
    check_url(url, has_base_url=False)  # the remembered path
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        check_url(url + "\r\n", has_base_url=False)
    with pytest.raises(ValueError, match="scheme"):
        check_url("ftp://127.0.0.1/remembered", has_base_url=False)


def test_relative_urls_are_not_remembered() -> None:
    """A relative URL is valid only with a base URL: it is checked every time."""
    check_url("/relative", has_base_url=True)
    assert "/relative" not in _request._CHECKED_URLS
    with pytest.raises(ValueError, match="absolute"):
        check_url("/relative", has_base_url=False)


def test_the_url_cache_is_bounded() -> None:
    for i in range(_request._CHECKED_URLS_MAX + 10):
        check_url(f"http://127.0.0.1/{i}", has_base_url=False)
    assert len(_request._CHECKED_URLS) <= _request._CHECKED_URLS_MAX


def test_the_method_cache_is_bounded() -> None:
    for i in range(200):
        check_method(f"X-M{i}")
    assert len(_request._METHODS) <= 64
