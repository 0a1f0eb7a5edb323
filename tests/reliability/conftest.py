"""
Fixtures of the reliability suite: an observed client, and the invariants every case checks.

Each case of ../../../shared/RELIABILITY.md runs a scenario through ``observed`` and then calls
``await observed.check(...)``, which asserts the catalogue's invariants:

* nothing lost: every submitted request ended with exactly one stored result;
* one final event per request (SUCCESS, ERROR or CANCELLED), or a counted drop;
* no leaks: nothing in flight, and a burst of follow-up requests as large as the pool succeeds
  (a stuck connection would make it time out);
* no secrets: the planted canary appears in no result, event, repr, stats or log record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    EventType,
    RequestContext,
    RequestHandle,
    RequestResult,
    RetryPolicy,
)
from typed_async_client.testing import LocalServer

#: A secret planted in headers, URL credentials and query strings; it must never be shown.
CANARY = "canary-5ec7e7-do-not-leak"

FINAL_EVENTS = frozenset({EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED})

#: Pool size of observed clients; the follow-up burst uses every connection.
POOL = 4

#: Retries nearly everything for idempotent requests, without sleeping.
EAGER = RetryPolicy.transient(backoff=Backoff(base=0.0, cap=0.0))


@dataclass
class Observed:
    """A client whose every event is recorded, and the requests submitted through it."""

    client: AsyncResilientClient
    server: LocalServer
    events: list[AsyncEvent] = field(default_factory=list)
    handles: list[RequestHandle] = field(default_factory=list)

    async def submit(self, method: str, url: str, **kwargs: Any) -> RequestHandle:
        """Submit through the client and remember the handle."""
        handle = await self.client.request(method, url, **kwargs)
        self.handles.append(handle)
        return handle

    async def results(self) -> list[RequestResult]:
        """Wait for every submitted request and return their results, in order."""
        return [await handle.wait_result() for handle in self.handles]

    async def check(self, caplog: pytest.LogCaptureFixture | None = None) -> list[RequestResult]:
        """Assert the catalogue's invariants; return the results for case-specific checks."""
        with anyio.fail_after(30):
            results = await self.results()
            await self.client.wait_for_all_requests()
            # Let the dispatcher deliver what is queued before counting events (an event can
            # be handed straight to the waiting dispatcher, so wait for the count itself).
            for _ in range(200):
                stats = self.client.stats()
                delivered = sum(e.event_type in FINAL_EVENTS for e in self.events)
                if delivered + stats.events_dropped >= len(self.handles):
                    break
                await anyio.sleep(0.01)
        stats = self.client.stats()
        # Nothing lost: one stored result per request.
        assert len(self.handles) == len(results)
        for handle, result in zip(self.handles, results, strict=True):
            assert handle.request_id == result.request_id
            assert result is self.client.get_result(handle.request_id)
        assert 0 == stats.in_flight
        # One final event per request, or a counted drop.
        finals = [e for e in self.events if e.event_type in FINAL_EVENTS]
        ids = [e.context.request_id for e in finals]
        assert len(ids) == len(set(ids))
        assert len(self.handles) == len(finals) + stats.events_dropped
        # No leaks: the whole pool is usable again.
        with anyio.fail_after(10):
            follow_ups = [
                await self.client.get(self.server.url_for("/follow-up")) for _ in range(POOL)
            ]
            responses = [await h for h in follow_ups]
        assert [200] * POOL == [r.status_code for r in responses]
        # No secrets anywhere the library shows things.
        shown = [repr(results), repr(self.events), repr(stats), repr(self.client)]
        shown += [repr(h) for h in self.handles]
        shown += [str(r.error) for r in results if r.error is not None]
        shown += [r.url for r in results]
        if caplog is not None:
            shown += [record.getMessage() for record in caplog.records]
        for text in shown:
            assert CANARY not in text
        return results


@pytest.fixture
async def observed(server: LocalServer) -> AsyncIterator[Observed]:
    """An open client over a pool of POOL connections, recording every event."""
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    async with AsyncResilientClient(limits=limits, timeout=5.0, event_queue_size=10_000) as client:
        observed = Observed(client=client, server=server)
        for event_type in EventType:
            client.add_event_callback(event_type, observed.events.append)
        yield observed


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the library's and httpx's logs at DEBUG, to look for secrets in them."""
    caplog.set_level(logging.DEBUG, logger="typed_async_client")
    caplog.set_level(logging.DEBUG, logger="httpx")
    return caplog


async def refused_at_the_call(
    observed: Observed, error: type[Exception], match: str, url: Any, **options: Any
) -> str:
    """
    Submitting raises ``error`` at once, schedules nothing, shows no secret, and the client
    stays usable; return the error's message.
    """
    client = observed.client
    before = client.stats()
    with pytest.raises(error, match=match) as excinfo:
        await observed.client.request(
            "GET",
            url,
            context=RequestContext(max_retries=5, idempotent=True),
            retry_policy=EAGER,
            **options,
        )
    after = client.stats()
    assert (before.started, before.attempts, before.in_flight) == (
        after.started,
        after.attempts,
        after.in_flight,
    )
    message = str(excinfo.value)
    assert CANARY not in message
    assert CANARY not in repr(excinfo.value)
    await observed.submit("GET", observed.server.url_for("/still-usable"))
    return message
