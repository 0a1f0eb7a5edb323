"""
Error handling: what each kind of failure looks like to the caller.

* a refused connection is retried, then raises the original ``httpx.ConnectError``;
* an HTTP error status is a response, not an exception, and is not retried;
* a read timeout is not retried either (the request may have reached the server);
* ``handle.cancel()`` ends a request with ``RequestCancelledError``;
* a client that is closed refuses new requests with ``ClientClosedError``;
* bad input raises ``ValueError`` (or ``TypeError``) at the call, before anything is sent.

Run it with ``python examples/error_handling.py [--backend trio]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import anyio
import httpx

from typed_async_client import (
    AsyncResilientClient,
    ClientClosedError,
    ClientNotOpenError,
    DuplicateRequestIdError,
    RequestCancelledError,
    RequestContext,
)
from typed_async_client.testing import LocalServer, refusing_url


async def main(base_url: str | None = None) -> dict[str, str]:
    """
    Provoke each failure once.

    Returns:
        ``{case: outcome}``, the outcome being the exception type name (with the attempts made
        where retries matter) or the HTTP status.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)

    outcomes: dict[str, str] = {}
    client = AsyncResilientClient(timeout=2.0)

    # Before the client is open: ClientNotOpenError.
    try:
        await client.get(f"{base_url}/data")
    except ClientNotOpenError as exc:
        outcomes["not_open"] = type(exc).__name__

    async with client:
        # 1. Connection refused: retried max_retries times, then the httpx exception itself.
        with refusing_url() as refused:
            context = RequestContext(request_id="refused", max_retries=2, base_delay=0.05)
            handle = await client.get(f"{refused}/data", context=context)
            try:
                await handle
            except httpx.ConnectError as exc:
                result = client.get_result("refused")
                assert result is not None
                print(f"🔌 {type(exc).__name__} after {result.attempts} attempts")
                outcomes["refused"] = f"{type(exc).__name__} after {result.attempts} attempts"

        # 2. HTTP 503: a response. Nothing is raised and nothing is retried.
        response = await (await client.get(f"{base_url}/status/503"))
        print(f"🚦 HTTP {response.status_code} (not retried)")
        outcomes["http_503"] = str(response.status_code)
        try:
            response.raise_for_status()  # opt in to an exception, as with httpx
        except httpx.HTTPStatusError as exc:
            outcomes["raise_for_status"] = type(exc).__name__

        # 3. A read timeout is not retried: the server may already have acted on the request.
        context = RequestContext(request_id="slow", max_retries=3)
        handle = await client.get(f"{base_url}/delay/1", context=context, timeout=0.1)
        try:
            await handle
        except httpx.ReadTimeout as exc:
            result = client.get_result("slow")
            assert result is not None
            outcomes["read_timeout"] = f"{type(exc).__name__} after {result.attempts} attempts"

        # 4. Cancelling the request itself.
        handle = await client.get(f"{base_url}/delay/10")
        handle.cancel()
        try:
            await handle
        except RequestCancelledError as exc:
            print(f"🛑 {exc}")
            outcomes["cancelled"] = type(exc).__name__

        # 5. Bad input is refused at the call, before anything is scheduled.
        try:
            RequestContext(max_retries=-1)
        except ValueError as exc:
            outcomes["bad_context"] = f"ValueError: {exc}"
        try:
            await client.get("ftp://127.0.0.1/file")
        except ValueError as exc:
            outcomes["bad_url"] = f"ValueError: {exc}"
        slow = await client.get(f"{base_url}/delay/0.2", context=RequestContext(request_id="dup"))
        try:
            await client.get(f"{base_url}/data", context=RequestContext(request_id="dup"))
        except DuplicateRequestIdError as exc:  # also a ValueError
            outcomes["duplicate_id"] = type(exc).__name__
        await slow

    # 6. After close: ClientClosedError.
    try:
        await client.get(f"{base_url}/data")
    except ClientClosedError as exc:
        outcomes["closed"] = type(exc).__name__

    for case, outcome in outcomes.items():
        print(f"{case:>16}: {outcome}")
    return outcomes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/error_handling.py",
        description="Each failure a request can meet, and how it surfaces.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, backend=args.backend)
