"""
End-to-end over real loopback sockets: the one-shot helpers and the seed's flows.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    EventType,
    RequestContext,
    create_async_resilient_client,
    simple_async_request,
)
from typed_async_client.testing import LocalServer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_simple_async_request_returns_a_read_response(server: LocalServer) -> None:
    """simple_async_request returns a response whose body is readable after its client closed."""
    with anyio.fail_after(10):
        response = await simple_async_request(
            "GET", server.url_for("/data"), max_retries=2, timeout=10.0
        )
    assert 200 == response.status_code
    assert "/data" == response.json()["path"]


async def test_simple_async_request_passes_options(server: LocalServer) -> None:
    """simple_async_request forwards httpx options such as json and headers."""
    with anyio.fail_after(10):
        response = await simple_async_request(
            "POST", server.url_for("/p"), json={"a": 1}, headers={"X-T": "v"}
        )
    echo = response.json()
    assert ("POST", "v", '{"a":1}') == (echo["method"], echo["headers"]["x-t"], echo["body"])


async def test_simple_async_request_raises_connect_error(refused_url: str) -> None:
    """A refused connection raises httpx.ConnectError after max_retries retries."""
    with anyio.fail_after(20), pytest.raises(httpx.ConnectError):
        await simple_async_request("GET", refused_url, max_retries=1, timeout=2.0)


async def test_simple_async_request_rejects_bad_retries() -> None:
    """A negative max_retries is rejected before any connection."""
    with pytest.raises(ValueError, match="max_retries"):
        await simple_async_request("GET", "http://127.0.0.1:9/", max_retries=-1)


async def test_factory_passes_its_arguments(server: LocalServer) -> None:
    """create_async_resilient_client builds a client with the given httpx options."""
    with anyio.fail_after(10):
        async with create_async_resilient_client(
            timeout=httpx.Timeout(connect=5.0, read=30.0, write=5.0, pool=5.0),
            limits=httpx.Limits(max_connections=50),
            event_queue_size=100,
            headers={"X-From": "factory"},
        ) as client:
            assert isinstance(client, AsyncResilientClient)
            response = await (await client.get(server.url_for("/f")))
    assert "factory" == response.json()["headers"]["x-from"]


async def test_seed_advanced_flow(server: LocalServer, refused_url: str) -> None:
    """The seed's advanced example: callbacks see retries and errors; results keep metrics."""
    retries: list[AsyncEvent] = []
    errors: list[AsyncEvent] = []

    async def on_retry(event: AsyncEvent) -> None:
        retries.append(event)

    async def on_error(event: AsyncEvent) -> None:
        errors.append(event)

    with anyio.fail_after(20):
        async with create_async_resilient_client(event_queue_size=100) as client:
            client.add_event_callback(EventType.RETRY, on_retry)
            client.add_event_callback(EventType.ERROR, on_error)
            context = RequestContext(
                max_retries=3,
                base_delay=0.01,
                request_id="api_data_fetch",
                metadata={"priority": "high"},
            )
            response = await (
                await client.get(
                    server.url_for("/data"),
                    context=context,
                    headers={"Authorization": "Bearer YOUR_TOKEN"},
                )
            )
            assert 200 == response.status_code
            result = client.get_result("api_data_fetch")
            assert result is not None
            assert (1, True) == (result.attempts, result.is_success)
            assert {"priority": "high"} == dict(result.context.metadata)
            failing = await client.get(refused_url, context=context.clone(request_id="down"))
            with pytest.raises(httpx.ConnectError):
                await failing
    assert [1, 2, 3] == [e.context.current_attempt for e in retries]
    assert ["down"] == [e.context.request_id for e in errors]
    assert isinstance(errors[0].error, httpx.ConnectError)


async def test_redirects_are_followed_when_asked(server: LocalServer) -> None:
    """follow_redirects is an httpx option that passes through per request."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            not_followed = await (await client.get(server.url_for("/status/302")))
            assert 302 == not_followed.status_code


async def test_server_stop_mid_flight_is_an_error_not_a_hang() -> None:
    """A server that goes away while a request waits ends that request with an httpx error."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(timeout=5.0) as client:
            async with LocalServer() as server:
                handle = await client.get(server.url_for("/delay/30"))
                await anyio.sleep(0.1)
            result = await handle.wait_result()
    assert result.is_error
    assert isinstance(result.error, httpx.TransportError)
    assert 1 == result.attempts
