"""
Simple use: one request with automatic retries (README section 1).

``simple_async_request`` opens a client, sends the request, retries it on connection errors, reads
the body and closes the client. Run it with ``python examples/basic_usage.py [asyncio|trio]``: it
starts a local test server, so no network access is needed.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

from typed_async_client import simple_async_request
from typed_async_client.testing import LocalServer, refusing_url


async def exemple_simple(url: str, max_retries: int = 2) -> Any:
    try:
        # GET request with automatic retries on connection errors
        response = await simple_async_request(
            "GET",
            url,
            max_retries=max_retries,
            timeout=10.0,
        )

        print(f"✅ Succès: {response.status_code}")
        data = response.json()
        return data

    except Exception as e:
        print(f"❌ Erreur: {e}")
        return None


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Fetch one URL that answers and one that refuses connections.

    Returns:
        ``{"data": <decoded JSON body>, "refused": None}``: the refused URL ends in ``None``
        after its retries, as the seed's ``except Exception`` branch does.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    data = await exemple_simple(f"{base_url}/data")
    with refusing_url() as refused:
        # One retry only, so the demo does not wait through the default backoff.
        failed = await exemple_simple(f"{refused}/data", max_retries=1)
    return {"data": data, "refused": failed}


if __name__ == "__main__":
    backend = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    print(anyio.run(main, backend=backend))
