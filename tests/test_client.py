"""
The client facade: lifecycle, submission, handles, input checks, results and state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncResilientClient,
    ClientClosedError,
    ClientNotOpenError,
    ClientStateError,
    DuplicateRequestIdError,
    RequestCancelledError,
    RequestContext,
    RequestStatus,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio


async def test_submit_before_open_raises() -> None:
    """Submitting to a client that was never opened raises ClientNotOpenError."""
    client = AsyncResilientClient()
    with pytest.raises(ClientNotOpenError, match="not open"):
        await client.get("http://127.0.0.1:1/")
    await client.close()
    assert client.is_closed


async def test_submit_after_close_raises(server: LocalServer) -> None:
    """Submitting after close raises ClientClosedError, and closing again does nothing."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            await (await client.get(server.url_for("/a")))
        assert client.is_closed
        with pytest.raises(ClientClosedError):
            await client.get(server.url_for("/a"))
        await client.close()
        assert client.http_client.is_closed


async def test_open_twice_raises() -> None:
    """A client can be opened once."""
    async with AsyncResilientClient() as client:
        with pytest.raises(ClientStateError, match="opened once"):
            await client.open()


async def test_manual_lifecycle_with_seed_alias(server: LocalServer) -> None:
    """The seed's _initialize_client() opens the client by hand and close() ends it."""
    with anyio.fail_after(10):
        client = AsyncResilientClient()
        assert client is await client._initialize_client()
        assert not client.is_closed
        response = await (await client.get(server.url_for("/manual")))
        assert 200 == response.status_code
        await client.close()
        assert client.is_closed
        assert client.http_client.is_closed


async def test_close_from_another_task_is_refused(server: LocalServer) -> None:
    """close() from a task other than the opener raises a clear error instead of corrupting."""
    with anyio.fail_after(10):
        client = await AsyncResilientClient().open()
        errors: list[BaseException] = []

        async def close_elsewhere() -> None:
            try:
                await client.close()
            except ClientStateError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_elsewhere)
        assert 1 == len(errors)
        assert "same task" in str(errors[0]) or "opened the client" in str(errors[0])
        await client.close()
        assert client.is_closed


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_verb_reaches_the_server(server: LocalServer, method: str) -> None:
    """Each verb method sends its own HTTP method."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            submit = getattr(client, method.lower())
            response = await (await submit(server.url_for("/verb")))
            assert method == response.json()["method"]


async def test_head_and_request(server: LocalServer) -> None:
    """head() sends HEAD (no body comes back) and request() takes any method."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            head = await (await client.head(server.url_for("/h")))
            assert 200 == head.status_code
            assert b"" == head.content
            custom = await (await client.request("get", server.url_for("/r")))
            assert "GET" == custom.json()["method"]
        assert 2 == sum(server.hits.values())


async def test_request_options_pass_through(server: LocalServer) -> None:
    """Headers, query params and JSON bodies reach the server unchanged."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(headers={"X-Default": "d"}) as client:
            handle = await client.post(
                server.url_for("/echo"),
                headers={"X-Custom": "c"},
                params={"q": "1"},
                json={"k": [1, 2]},
            )
            echo = (await handle).json()
        assert "c" == echo["headers"]["x-custom"]
        assert "d" == echo["headers"]["x-default"]
        assert {"q": "1"} == echo["query"]
        assert {"k": [1, 2]} == json.loads(echo["body"])


async def test_handle_awaited_twice_and_its_state(server: LocalServer) -> None:
    """A handle can be awaited more than once and reports its result when done."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(
                server.url_for("/twice"), context=RequestContext(request_id="t")
            )
            assert "t" == handle.request_id
            first = await handle
            second = await handle
            assert first is second
            assert handle.done()
            assert handle.result is not None
            assert RequestStatus.SUCCESS == handle.result.status
            assert "success" in repr(handle)
            assert 1 == server.hits["/twice"]


async def test_handle_error_raised_on_each_await(refused_url: str) -> None:
    """A failed request raises the httpx error of its last attempt every time it is awaited."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(refused_url, context=RequestContext(max_retries=0))
            for _ in range(2):
                with pytest.raises(httpx.ConnectError):
                    await handle
            result = await handle.wait_result()
            assert RequestStatus.ERROR == result.status
            assert isinstance(result.error, httpx.ConnectError)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_handles_work_with_asyncio_gather(server: LocalServer) -> None:
    """Handles can be passed to asyncio.gather, as the seed's examples do."""
    import asyncio

    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handles = [await client.get(server.url_for(f"/g{i}")) for i in range(5)]
            responses = await asyncio.gather(*handles, return_exceptions=True)
        assert [200] * 5 == [r.status_code for r in responses if isinstance(r, httpx.Response)]


@pytest.mark.parametrize(
    ("method", "url", "error", "match"),
    [
        ("GE T", "http://127.0.0.1/", ValueError, "method"),
        (1, "http://127.0.0.1/", TypeError, "method"),
        ("GET", "ftp://127.0.0.1/", ValueError, "scheme"),
        ("GET", "/relative", ValueError, "absolute"),
        ("GET", "http://127.0.0.1/\r\nX-Injected: 1", ValueError, "CR, LF"),
        ("GET", b"http://127.0.0.1/", TypeError, "url"),
    ],
)
async def test_bad_input_is_rejected_before_scheduling(
    server: LocalServer, method: Any, url: Any, error: type[Exception], match: str
) -> None:
    """Bad methods and URLs raise at the call, nothing is scheduled, the client stays usable."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            with pytest.raises(error, match=match):
                await client.request(method, url)
            assert 0 == client.stats().started
            response = await (await client.get(server.url_for("/after")))
            assert 200 == response.status_code


async def test_bad_headers_options_and_context_are_rejected() -> None:
    """CR/LF in headers, unknown options and a non-context are rejected at the call."""
    async with AsyncResilientClient() as client:
        with pytest.raises(ValueError, match="header"):
            await client.get("http://127.0.0.1/", headers={"X-A": "v\r\nX-B: injected"})
        with pytest.raises(TypeError, match="unexpected request option"):
            await client.get("http://127.0.0.1/", verify=False)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="context"):
            await client.get("http://127.0.0.1/", context={"max_retries": 1})  # type: ignore[arg-type]
        assert 0 == client.stats().started


async def test_relative_url_with_base_url(server: LocalServer) -> None:
    """A relative URL is accepted when the client has a base_url."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(base_url=server.url) as client:
            response = await (await client.get("/rel"))
        assert "/rel" == response.json()["path"]


async def test_duplicate_in_flight_id_is_rejected(server: LocalServer) -> None:
    """A second in-flight request with the same id is refused; once finished, the id is free."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            slow = await client.get(
                server.url_for("/delay/0.3"), context=RequestContext(request_id="x")
            )
            with pytest.raises(DuplicateRequestIdError, match="'x'"):
                await client.get(server.url_for("/a"), context=RequestContext(request_id="x"))
            await slow
            again = await client.get(server.url_for("/b"), context=RequestContext(request_id="x"))
            await again
            result = client.get_result("x")
            assert result is not None
            assert "/b" == result.response.json()["path"] if result.response else False


async def test_http_client_of_the_user_is_not_closed(server: LocalServer) -> None:
    """A user-supplied httpx.AsyncClient is used and left open; httpx options are refused."""
    with anyio.fail_after(10):
        async with httpx.AsyncClient(headers={"X-Own": "1"}) as own:
            async with AsyncResilientClient(http_client=own) as client:
                response = await (await client.get(server.url_for("/own")))
                assert "1" == response.json()["headers"]["x-own"]
            assert not own.is_closed
            with pytest.raises(TypeError, match="http_client"):
                AsyncResilientClient(http_client=own, headers={"A": "b"})


async def test_default_context_is_a_template(refused_url: str) -> None:
    """Requests without a context follow default_context, each with a fresh request id."""
    with anyio.fail_after(10):
        template = RequestContext(max_retries=1, base_delay=0.001, request_id="template")
        async with AsyncResilientClient(default_context=template) as client:
            handles = [await client.get(refused_url) for _ in range(2)]
            results = [await h.wait_result() for h in handles]
        assert [2, 2] == [r.attempts for r in results]
        ids = {r.request_id for r in results}
        assert 2 == len(ids)
        assert "template" not in ids


async def test_results_store_is_bounded_and_clearable(server: LocalServer) -> None:
    """max_results evicts the oldest finished results; clear_old_results removes by age."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(max_results=3) as client:
            for i in range(5):
                await (
                    await client.get(
                        server.url_for("/r"), context=RequestContext(request_id=f"r{i}")
                    )
                )
            assert ["r2", "r3", "r4"] == list(client.get_all_results())
            assert None is client.get_result("r0")
            assert 3 == client.results_count
            assert 2 == client.stats().results_evicted
            assert 0 == client.clear_old_results(max_age=3600)
            assert 3 == client.clear_old_results(max_age=0)
            assert 0 == client.results_count
            with pytest.raises(ValueError, match="max_age"):
                client.clear_old_results(max_age=-1)
            with pytest.raises(ValueError, match="max_age"):
                client.clear_old_results(max_age=float("nan"))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"event_queue_size": 0}, ValueError, "event_queue_size"),
        ({"event_queue_size": float("inf")}, TypeError, "event_queue_size"),
        ({"max_results": 0}, ValueError, "max_results"),
        ({"limits": 10}, TypeError, "limits"),
        ({"default_context": {}}, TypeError, "default_context"),
    ],
)
def test_bad_client_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    """Bad constructor arguments raise an error naming the argument."""
    with pytest.raises(error, match=match):
        AsyncResilientClient(**kwargs)


async def test_state_properties_while_in_flight(server: LocalServer) -> None:
    """active_tasks_count counts requests in flight and wait_for_all_requests drains them."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handles = [await client.get(server.url_for("/delay/0.2")) for _ in range(3)]
            assert 3 == client.active_tasks_count
            assert 0 == client.event_queue_size
            results = await client.wait_for_all_requests()
            assert 0 == client.active_tasks_count
            assert {h.request_id for h in handles} == set(results)
            assert 3 == client.results_count
            assert not client.is_closed
            assert "open" in repr(client)


async def test_close_waits_for_requests_in_flight(server: LocalServer) -> None:
    """Leaving the block normally waits for the requests in flight to finish."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/0.2"))
        assert handle.result is not None
        assert RequestStatus.SUCCESS == handle.result.status


async def test_close_with_cancel_cancels_requests(server: LocalServer) -> None:
    """close(cancel=True) ends every request in flight as CANCELLED."""
    with anyio.fail_after(10):
        client = await AsyncResilientClient().open()
        handles = [await client.get(server.url_for("/delay/30")) for _ in range(3)]
        await client.close(cancel=True)
        for handle in handles:
            with pytest.raises(RequestCancelledError):
                await handle
        assert 3 == client.stats().cancelled


async def test_block_error_cancels_requests(server: LocalServer) -> None:
    """An exception in the client's block cancels its requests and propagates unchanged."""
    handles = []
    with anyio.fail_after(10), pytest.raises(KeyError):
        async with AsyncResilientClient() as client:
            handles.append(await client.get(server.url_for("/delay/30")))
            raise KeyError("boom")
    assert RequestStatus.CANCELLED == handles[0].result.status


async def test_request_survives_a_cancelled_awaiter(server: LocalServer) -> None:
    """A task awaiting a handle can be cancelled without cancelling the request itself."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/0.3"))
            with anyio.move_on_after(0.05) as scope:
                await handle
            assert scope.cancelled_caught
            response = await handle
            assert 200 == response.status_code


def _client_tasks() -> set[str]:
    """Names of the running tasks started by a client: its requests and its dispatcher."""
    names = {t.name for t in anyio.get_running_tasks()}
    return {n for n in names if n.startswith("request ") or "EventBus" in n}


async def test_no_task_left_after_close(server: LocalServer) -> None:
    """Closing the client leaves no task of its own running."""
    with anyio.fail_after(10):
        assert set() == _client_tasks()
        async with AsyncResilientClient() as client:
            for i in range(5):
                await client.get(
                    server.url_for("/delay/0.05"), context=RequestContext(request_id=f"t{i}")
                )
            during = _client_tasks()
            assert {f"request t{i}" for i in range(5)} < during
        assert set() == _client_tasks()


async def test_close_inside_a_nested_task_group(server: LocalServer) -> None:
    """close() from inside the user's own task group drains; leaving the block finishes it."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/0.05"))
            async with anyio.create_task_group():
                await client.close()
                assert client.is_closed
                assert set() == _client_tasks()
            with pytest.raises(ClientClosedError):
                await client.get(server.url_for("/late"))
        assert client.http_client.is_closed
        assert RequestStatus.SUCCESS == (await handle.wait_result()).status


@pytest.mark.parametrize("capped", [False, True], ids=["plain", "capped"])
async def test_kept_response_releases_the_transport_stream(
    server: LocalServer, capped: bool
) -> None:
    """
    A kept result's response no longer references the connection pool's objects: its stream is
    its body. The response reads as before, and reading the consumed stream raises as in httpx.
    """
    options: dict[str, Any] = {"max_response_bytes": 1_000_000} if capped else {}
    with anyio.fail_after(10):
        async with AsyncResilientClient(**options) as client:
            handle = await client.get(server.url_for("/kept"))
            response = await handle
            assert isinstance(response.stream, httpx.ByteStream)
            assert response.is_closed
            assert response.status_code == 200
            assert response.content == b"".join([chunk async for chunk in response.stream])
            assert response.text == response.content.decode()
            with pytest.raises(httpx.StreamConsumed):
                async for _ in response.aiter_raw():
                    pass
            result = client.get_result(handle.request_id)
            assert result is not None
            assert result.response is response


async def test_release_stream_leaves_an_unread_response_alone() -> None:
    """A response consumed by iteration, or still open, keeps its own stream."""
    from typed_async_client._body import release_stream

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        async with http.stream("GET", "http://127.0.0.1/s") as open_response:
            stream = open_response.stream
            release_stream(open_response)  # open: untouched
            assert open_response.stream is stream
            chunks = [chunk async for chunk in open_response.aiter_raw()]
        assert chunks == [b"streamed"]
        release_stream(open_response)  # consumed by iteration, never read: untouched
        assert open_response.stream is stream


async def test_awaiting_a_finished_handle_is_still_a_checkpoint(server: LocalServer) -> None:
    """Awaiting a handle that has ended yields and honours the caller's cancellation."""
    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/done"))
            response = await handle
            reached = []
            with anyio.CancelScope() as scope:
                scope.cancel()
                await handle
                reached.append("await")
            with anyio.CancelScope() as scope_result:
                scope_result.cancel()
                await handle.wait_result()
                reached.append("wait_result")
            assert reached == []
            assert scope.cancelled_caught
            assert scope_result.cancelled_caught
            assert await handle is response  # outside a cancelled scope: the response
