"""
``RequestContext``: defaults, validation, immutability, attempts, subclassing, and the
``current_context()`` seen from httpx event hooks and custom transports on both backends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import anyio
import httpx
import pytest

from typed_async_client import AsyncResilientClient, RequestContext, current_context
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class ApiRequestContext(RequestContext):
    """The seed's extended context, written exactly as the seed's README writes it."""

    api_version: str = "v1"
    priority: str = "normal"
    trace_id: str = ""

    def to_headers(self) -> dict[str, str]:
        return {
            "X-API-Version": self.api_version,
            "X-Priority": self.priority,
            "X-Trace-ID": self.trace_id or self.request_id,
        }


def _fields_except(context: RequestContext, *names: str) -> dict[str, Any]:
    """The field values of ``context`` (not ``dataclasses.asdict``: it deep-copies)."""
    return {
        f.name: getattr(context, f.name) for f in dataclasses.fields(context) if f.name not in names
    }


# -- defaults and ids -------------------------------------------------------------------------


def test_defaults() -> None:
    """A context built without arguments has the documented defaults and an empty metadata."""
    context = RequestContext()
    assert 3 == context.max_retries
    assert 0 == context.current_attempt
    assert 0.5 == context.base_delay
    assert 2.0 == context.backoff_factor
    assert 30.0 == context.max_delay
    assert {} == dict(context.metadata)
    assert isinstance(context.metadata, MappingProxyType)


def test_request_id_is_generated_and_unique() -> None:
    """Each context built without a request_id gets a distinct non-empty string id."""
    ids = [RequestContext().request_id for _ in range(1000)]
    assert all(isinstance(request_id, str) and request_id for request_id in ids)
    assert 1000 == len(set(ids))


def test_explicit_request_id_is_kept() -> None:
    """A request_id given by the caller is kept as is."""
    assert "custom_api_call" == RequestContext(request_id="custom_api_call").request_id


def test_integer_delays_are_accepted() -> None:
    """Delays given as ints are valid numbers of seconds."""
    context = RequestContext(base_delay=1, max_delay=2, backoff_factor=3)
    assert (1, 2, 3) == (context.base_delay, context.max_delay, context.backoff_factor)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        pytest.param("max_retries", {"max_retries": -1}, id="max_retries-negative"),
        pytest.param("current_attempt", {"current_attempt": -1}, id="current_attempt-negative"),
        pytest.param("base_delay", {"base_delay": -0.1}, id="base_delay-negative"),
        pytest.param("base_delay", {"base_delay": math.nan}, id="base_delay-nan"),
        pytest.param("base_delay", {"base_delay": math.inf}, id="base_delay-inf"),
        pytest.param("base_delay", {"base_delay": -math.inf}, id="base_delay-minus-inf"),
        pytest.param("max_delay", {"max_delay": -1.0}, id="max_delay-negative"),
        pytest.param("max_delay", {"max_delay": math.nan}, id="max_delay-nan"),
        pytest.param("max_delay", {"max_delay": math.inf}, id="max_delay-inf"),
        pytest.param("backoff_factor", {"backoff_factor": 0.5}, id="backoff_factor-below-1"),
        pytest.param("backoff_factor", {"backoff_factor": 0}, id="backoff_factor-zero"),
        pytest.param("backoff_factor", {"backoff_factor": math.nan}, id="backoff_factor-nan"),
        pytest.param("backoff_factor", {"backoff_factor": math.inf}, id="backoff_factor-inf"),
        pytest.param(
            "base_delay", {"base_delay": 2.0, "max_delay": 1.0}, id="base_delay-above-max_delay"
        ),
        pytest.param("request_id", {"request_id": ""}, id="request_id-empty"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(
    field: str, kwargs: dict[str, Any]
) -> None:
    """An out-of-range value raises ValueError at construction, naming the field first."""
    with pytest.raises(ValueError, match=f"^{field}\\b"):
        RequestContext(**kwargs)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        pytest.param("max_retries", {"max_retries": True}, id="max_retries-bool"),
        pytest.param("max_retries", {"max_retries": 1.5}, id="max_retries-float"),
        pytest.param("max_retries", {"max_retries": math.nan}, id="max_retries-nan"),
        pytest.param("max_retries", {"max_retries": "3"}, id="max_retries-str"),
        pytest.param("current_attempt", {"current_attempt": False}, id="current_attempt-bool"),
        pytest.param("base_delay", {"base_delay": "0.1"}, id="base_delay-str"),
        pytest.param("base_delay", {"base_delay": True}, id="base_delay-bool"),
        pytest.param("max_delay", {"max_delay": None}, id="max_delay-none"),
        pytest.param("backoff_factor", {"backoff_factor": "2"}, id="backoff_factor-str"),
        pytest.param("request_id", {"request_id": 123}, id="request_id-int"),
        pytest.param("metadata", {"metadata": [("a", 1)]}, id="metadata-list"),
        pytest.param("metadata", {"metadata": "abc"}, id="metadata-str"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_field(field: str, kwargs: dict[str, Any]) -> None:
    """A value of the wrong type raises TypeError at construction, naming the field first."""
    with pytest.raises(TypeError, match=f"^{field}\\b"):
        RequestContext(**kwargs)


def test_zero_delays_are_valid() -> None:
    """Zero delays and zero retries are valid values, not errors."""
    context = RequestContext(max_retries=0, base_delay=0.0, max_delay=0.0, backoff_factor=1.0)
    assert (0, 0.0, 0.0) == (context.max_retries, context.base_delay, context.max_delay)


# -- metadata, immutability, hashing ----------------------------------------------------------


def test_metadata_is_read_only() -> None:
    """The metadata mapping is a MappingProxyType that rejects item assignment."""
    context = RequestContext(metadata={"user": "alice"})
    assert isinstance(context.metadata, MappingProxyType)
    with pytest.raises(TypeError):
        context.metadata["user"] = "mallory"  # type: ignore[index]
    assert {"user": "alice"} == dict(context.metadata)


def test_metadata_is_copied_from_the_callers_dict() -> None:
    """Changing the caller's dict after construction does not change the context's metadata."""
    source: dict[str, Any] = {"user": "alice"}
    context = RequestContext(metadata=source)
    source["user"] = "mallory"
    source["extra"] = 1
    assert {"user": "alice"} == dict(context.metadata)


def test_metadata_given_as_a_proxy_is_copied_too() -> None:
    """A MappingProxyType over the caller's dict is copied too, so later changes do not leak."""
    source: dict[str, Any] = {"user": "alice"}
    context = RequestContext(metadata=MappingProxyType(source))
    source["user"] = "mallory"
    assert {"user": "alice"} == dict(context.metadata)


def test_metadata_accepts_any_mapping() -> None:
    """Any Mapping is accepted as metadata and stored as a read-only copy."""
    context = RequestContext(metadata=MappingProxyType({"a": 1}))
    assert {"a": 1} == dict(context.metadata)


@pytest.mark.parametrize("name", ["max_retries", "current_attempt", "request_id", "metadata"])
def test_context_is_frozen(name: str) -> None:
    """Assigning or deleting a field raises FrozenInstanceError."""
    context = RequestContext()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(context, name, getattr(context, name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(context, name)


def test_context_is_hashable_despite_metadata() -> None:
    """A context is hashable even when its metadata holds unhashable values."""
    context = RequestContext(request_id="r", metadata={"tags": ["a", "b"]})
    twin = RequestContext(request_id="r", metadata={"tags": ["a", "b"]})
    assert twin == context
    assert hash(twin) == hash(context)
    assert 1 == len({context, twin})


def test_contexts_with_different_ids_differ() -> None:
    """Two contexts that differ only by request_id are not equal."""
    assert RequestContext(request_id="a") != RequestContext(request_id="b")


# -- attempts ---------------------------------------------------------------------------------


def test_next_attempt_increments_current_attempt_and_keeps_the_rest() -> None:
    """next_attempt() returns a new context one attempt further, every other field unchanged."""
    context = RequestContext(
        max_retries=2, base_delay=0.25, max_delay=4.0, request_id="r", metadata={"k": "v"}
    )
    following = context.next_attempt()
    assert 0 == context.current_attempt
    assert 1 == following.current_attempt
    assert _fields_except(context, "current_attempt") == _fields_except(
        following, "current_attempt"
    )
    assert context.started_at == following.started_at


def test_next_attempt_without_retry_left_raises() -> None:
    """next_attempt() raises ValueError once current_attempt has reached max_retries."""
    context = RequestContext(max_retries=1, request_id="last").next_attempt()
    with pytest.raises(ValueError, match="no retry left"):
        context.next_attempt()
    with pytest.raises(ValueError, match="no retry left"):
        RequestContext(max_retries=0).next_attempt()


def test_attempt_counters_along_the_retries() -> None:
    """attempt_number, remaining_retries and can_retry follow each attempt of a request."""
    context = RequestContext(max_retries=3)
    observed = []
    for _ in range(4):
        observed.append((context.attempt_number, context.remaining_retries, context.can_retry))
        if context.can_retry:
            context = context.next_attempt()
    assert [(1, 3, True), (2, 2, True), (3, 1, True), (4, 0, False)] == observed


def test_remaining_retries_is_never_negative() -> None:
    """A context past its last retry reports zero remaining retries and no retry."""
    context = RequestContext(max_retries=1, current_attempt=3)
    assert 0 == context.remaining_retries
    assert not context.can_retry


def test_clone_copies_and_applies_changes() -> None:
    """clone() returns an equal copy, or one with the given changes applied."""
    context = RequestContext(request_id="r", metadata={"k": "v"})
    copy = context.clone()
    assert context == copy
    assert context is not copy
    changed = context.clone(max_retries=7, request_id="other")
    assert (7, "other") == (changed.max_retries, changed.request_id)
    assert _fields_except(context, "max_retries", "request_id") == _fields_except(
        changed, "max_retries", "request_id"
    )


def test_renewed_is_clone_with_a_new_start_and_id() -> None:
    """The client's unchecked copy (_renewed) equals clone(), field for field, for every field."""
    context = RequestContext(
        max_retries=5,
        current_attempt=2,
        base_delay=0.2,
        backoff_factor=3.0,
        max_delay=9.0,
        request_id="r",
        metadata={"k": "v"},
        total_timeout=4.0,
        inherit_deadline=False,
        idempotent=True,
    )
    renewed = context._renewed(123.0, "new-id")
    assert renewed == context.clone(started_at=123.0, request_id="new-id")
    assert [getattr(renewed, f.name) for f in dataclasses.fields(renewed)] == [
        getattr(context.clone(started_at=123.0, request_id="new-id"), f.name)
        for f in dataclasses.fields(context)
    ]
    assert renewed._renewed(5.0).request_id == "new-id"
    assert type(renewed) is RequestContext


def test_renewed_subclass_goes_through_its_own_checks() -> None:
    """A subclass is copied by clone(): its type, its fields and its validation are kept."""
    context = ApiRequestContext(api_version="v2", request_id="r")
    renewed = context._renewed(7.0, "other")
    assert type(renewed) is ApiRequestContext
    assert (renewed.api_version, renewed.request_id, renewed.started_at) == ("v2", "other", 7.0)


def test_clone_validates_the_changes() -> None:
    """clone() validates the resulting context like a new one."""
    with pytest.raises(ValueError, match=r"^base_delay"):
        RequestContext().clone(base_delay=-1.0)


def test_elapsed_time_is_non_negative_and_grows() -> None:
    """elapsed_time is non-negative, never decreases, and counts from started_at."""
    context = RequestContext()
    first = context.elapsed_time
    second = context.elapsed_time
    assert 0.0 <= first <= second
    old = RequestContext(started_at=time.monotonic() - 100.0)
    assert old.elapsed_time >= 100.0


# -- the seed's subclass ----------------------------------------------------------------------


def test_seed_subclass_builds_with_its_fields() -> None:
    """The seed's ApiRequestContext builds with the seed's arguments and renders its headers."""
    context = ApiRequestContext(
        request_id="custom_api_call",
        max_retries=3,
        api_version="v2",
        priority="high",
        trace_id="trace_12345",
    )
    assert {
        "X-API-Version": "v2",
        "X-Priority": "high",
        "X-Trace-ID": "trace_12345",
    } == context.to_headers()
    assert (
        "custom_api_call"
        == ApiRequestContext(request_id="custom_api_call").to_headers()["X-Trace-ID"]
    )


def test_seed_subclass_keeps_type_and_fields_through_next_attempt_and_clone() -> None:
    """next_attempt() and clone() of the subclass return the subclass with its own fields."""
    context = ApiRequestContext(max_retries=2, api_version="v2", priority="high", trace_id="t")
    for derived in (context.next_attempt(), context.clone(max_retries=5)):
        assert ApiRequestContext is type(derived)
        assert ("v2", "high", "t") == (derived.api_version, derived.priority, derived.trace_id)
    assert 1 == context.next_attempt().current_attempt
    assert "v3" == context.clone(api_version="v3").api_version


def test_seed_subclass_still_validates() -> None:
    """The base class validation runs for the subclass too."""
    with pytest.raises(ValueError, match=r"^max_retries"):
        ApiRequestContext(max_retries=-1, api_version="v2")
    with pytest.raises(ValueError, match=r"^base_delay"):
        ApiRequestContext(base_delay=math.nan)


def test_seed_subclass_is_frozen_and_hashable() -> None:
    """The subclass's own fields are frozen too, and its instances are hashable."""
    context = ApiRequestContext(request_id="r", metadata={"tags": []})
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.priority = "low"  # type: ignore[misc]
    assert hash(ApiRequestContext(request_id="r")) == hash(context)


# -- current_context() ------------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """A real loopback transport that records current_context() on each attempt."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[RequestContext | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(current_context())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_current_context_is_none_outside_a_request() -> None:
    """current_context() is None outside any request."""
    assert current_context() is None


async def test_current_context_in_event_hook_on_success(server: LocalServer) -> None:
    """An httpx request hook sees the request's own context; the caller's task sees None."""
    seen: list[RequestContext | None] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(current_context())

    context = RequestContext(request_id="hooked", metadata={"k": "v"})
    with anyio.fail_after(10):
        async with AsyncResilientClient(event_hooks={"request": [hook]}) as client:
            assert current_context() is None
            response = await (await client.get(server.url_for("/ok"), context=context))
            assert current_context() is None
    assert 200 == response.status_code
    assert 1 == len(seen)
    assert seen[0] is not None
    assert ("hooked", 0, {"k": "v"}) == (
        seen[0].request_id,
        seen[0].current_attempt,
        dict(seen[0].metadata),
    )


async def test_current_context_in_event_hook_on_each_retry(refused_url: str) -> None:
    """A request hook sees the context of each attempt in turn while a request is retried."""
    seen: list[RequestContext | None] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(current_context())

    context = RequestContext(request_id="retried", max_retries=2, base_delay=0.001, max_delay=0.01)
    with anyio.fail_after(10):
        async with AsyncResilientClient(event_hooks={"request": [hook]}) as client:
            handle = await client.get(refused_url, context=context)
            with pytest.raises(httpx.ConnectError):
                await handle
    assert [("retried", 0), ("retried", 1), ("retried", 2)] == [
        (c.request_id, c.current_attempt) if c is not None else None for c in seen
    ]


async def test_current_context_in_custom_transport_on_each_retry(refused_url: str) -> None:
    """A custom transport sees the context of each attempt in turn while a request is retried."""
    transport = RecordingTransport()
    context = RequestContext(request_id="via-transport", max_retries=1, base_delay=0.001)
    with anyio.fail_after(10):
        async with AsyncResilientClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError):
                await (await client.get(refused_url, context=context))
    assert [("via-transport", 0), ("via-transport", 1)] == [
        (c.request_id, c.current_attempt) if c is not None else None for c in transport.seen
    ]


async def test_current_context_in_custom_transport_on_success(server: LocalServer) -> None:
    """A custom transport sees the seed subclass context, with its type and fields."""
    transport = RecordingTransport()
    context = ApiRequestContext(request_id="api", api_version="v2", trace_id="trace_1")
    with anyio.fail_after(10):
        async with AsyncResilientClient(transport=transport) as client:
            handle = await client.get(
                server.url_for("/api"), context=context, headers=context.to_headers()
            )
            response = await handle
            result = client.get_result("api")
    assert 1 == len(transport.seen)
    seen = transport.seen[0]
    assert isinstance(seen, ApiRequestContext)
    assert ("api", 0, "v2") == (seen.request_id, seen.current_attempt, seen.api_version)
    assert "trace_1" == json.loads(response.content)["headers"]["x-trace-id"]
    assert result is not None
    assert ApiRequestContext is type(result.context)


async def test_concurrent_requests_each_see_their_own_context(server: LocalServer) -> None:
    """Two requests in flight at the same time each see their own context, before and after
    the other one ran."""
    all_arrived = anyio.Event()
    records: list[tuple[str, str | None, str | None]] = []

    class BarrierTransport(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()
            self.arrived = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            before = current_context()
            self.arrived += 1
            if 2 == self.arrived:
                all_arrived.set()
            await all_arrived.wait()  # both requests are now in flight at once
            after = current_context()
            records.append(
                (
                    request.url.path,
                    None if before is None else before.request_id,
                    None if after is None else after.request_id,
                )
            )
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    with anyio.fail_after(10):
        async with AsyncResilientClient(transport=BarrierTransport()) as client:
            first = await client.get(
                server.url_for("/first"), context=RequestContext(request_id="first")
            )
            second = await client.get(
                server.url_for("/second"), context=RequestContext(request_id="second")
            )
            assert 200 == (await first).status_code
            assert 200 == (await second).status_code
    assert [("/first", "first", "first"), ("/second", "second", "second")] == sorted(records)
