"""
The invariant checker itself: it passes on a healthy run and catches a leaked secret.
"""

from __future__ import annotations

import anyio
import pytest

from typed_async_client import RequestContext

from .conftest import CANARY, Observed

pytestmark = pytest.mark.anyio


async def test_healthy_run_passes_every_invariant(observed: Observed) -> None:
    """Plain successful requests with secrets in headers and URL keep every invariant."""
    with anyio.fail_after(10):
        url = observed.server.url_for(f"/ok?token={CANARY}").replace(
            "http://", f"http://u:{CANARY}@"
        )
        for i in range(5):
            await observed.submit(
                "GET",
                url,
                headers={"Authorization": CANARY},
                context=RequestContext(request_id=f"r{i}"),
            )
        results = await observed.check()
    assert [True] * 5 == [r.is_success for r in results]
    assert "[REDACTED]" in results[0].url


async def test_checker_catches_a_planted_secret(observed: Observed) -> None:
    """Metadata shown in a result's repr is the user's: the checker flags the canary there."""
    with anyio.fail_after(10):
        await observed.submit(
            "GET", observed.server.url_for("/ok"), context=RequestContext(metadata={"k": CANARY})
        )
        with pytest.raises(AssertionError):
            await observed.check()
