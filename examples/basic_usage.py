"""
Simple use: one request with automatic retries (README section 1).

``simple_async_request`` opens a client, sends the request, retries it on connection errors, reads
the body and closes the client. Run it with ``python examples/basic_usage.py [--backend trio]``: it
starts a local test server, so no network access is needed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
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

        print(f"✅ Success: {response.status_code}")
        data = response.json()
        return data

    except Exception as e:
        print(f"❌ Error: {e!r}")
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/basic_usage.py",
        description="One GET with automatic retries, then one to a refused port.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    outcome = anyio.run(main, backend=args.backend)
    data = outcome["data"]
    print(f"/data answered {data['method']} {data['path']}" if data else "/data failed")
    print(
        f"refused URL: {'gave up after its retries' if outcome['refused'] is None else 'answered'}"
    )
