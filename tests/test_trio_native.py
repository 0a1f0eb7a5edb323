"""
A trio-native application, run by pytest-trio: a nursery and trio.move_on_after around the client.
"""

from __future__ import annotations

import pytest
import trio

from typed_async_client import AsyncResilientClient, RequestContext, RequestStatus
from typed_async_client.testing import LocalServer


@pytest.mark.trio
async def test_trio_application_with_nursery_and_move_on_after() -> None:
    """Trio code fans requests out in a nursery and bounds a slow one with move_on_after."""
    statuses: dict[str, int] = {}
    with trio.fail_after(20):
        async with LocalServer() as server, AsyncResilientClient() as client:

            async def fetch(name: str) -> None:
                handle = await client.get(
                    server.url_for(f"/{name}"), context=RequestContext(request_id=name)
                )
                statuses[name] = (await handle).status_code

            async with trio.open_nursery() as nursery:
                for name in ("users", "posts", "comments"):
                    nursery.start_soon(fetch, name)

            slow = await client.get(
                server.url_for("/delay/30"), context=RequestContext(request_id="slow")
            )
            with trio.move_on_after(0.1) as scope:
                await slow
            assert scope.cancelled_caught
            # The awaiting code gave up; the request is the client's and is cancelled explicitly.
            slow.cancel()
            result = await slow.wait_result()
    assert {"users": 200, "posts": 200, "comments": 200} == statuses
    assert RequestStatus.CANCELLED == result.status
