"""
FastAPI integration: one client for the whole application (README section 4).

The application below is the seed's: a global client opened by a startup handler with
``await http_client._initialize_client()`` (an alias of ``open()``) and closed by a shutdown
handler. Both handlers run in the ASGI lifespan task, which satisfies the client's rule that
``open()`` and ``close()`` run in the same task; request handlers, in other tasks, only submit
requests.

``main()`` runs the application in-process: it drives the ASGI lifespan itself and sends requests
through ``httpx.ASGITransport``, with the "external API" pointed at a local test server. It works
on asyncio and trio: ``python examples/fastapi_integration.py [--backend trio]``. To serve the app
for real, run ``python -m typed_async_client.testing --port 8000`` (the external API, at the
default ``EXTERNAL_API_URL``) and ``uvicorn fastapi_integration:app`` from ``examples/``.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, HTTPException

from typed_async_client import AsyncResilientClient, RequestContext
from typed_async_client.testing import LocalServer, refusing_url

app = FastAPI()
# Where the "external API" lives; main() points it at a local server.
app.state.external_api_url = os.environ.get("EXTERNAL_API_URL", "http://127.0.0.1:8000")

# Global client (opened at startup)
http_client: AsyncResilientClient | None = None

# The seed registers its handlers with @app.on_event, which FastAPI deprecates in favour of
# lifespan handlers. The code is kept as the seed wrote it; only that warning is silenced, here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"\s*on_event is deprecated", DeprecationWarning)

    @app.on_event("startup")
    async def startup() -> None:
        global http_client
        http_client = AsyncResilientClient()
        await http_client._initialize_client()

    @app.on_event("shutdown")
    async def shutdown() -> None:
        global http_client
        if http_client:
            await http_client.close()


@app.get("/api/external-data/{data_id}")
async def get_external_data(data_id: str) -> Any:
    if http_client is None:
        raise HTTPException(status_code=503, detail="Client HTTP non initialisé")
    # As in the seed, the id is derived from data_id: two concurrent calls for the same data_id
    # would share it, and the second would raise DuplicateRequestIdError (a 503 below).
    context = RequestContext(request_id=f"external_data_{data_id}", max_retries=2)

    try:
        task = await http_client.get(
            f"{app.state.external_api_url}/data/{data_id}",
            context=context,
        )
        response = await task

        if response.status_code == 200:
            return response.json()
        else:
            raise HTTPException(
                status_code=response.status_code,
                detail="Erreur API externe",
            )

    except HTTPException:
        # Not in the seed: without this, the HTTPException above was caught by the broad
        # handler below and every upstream status became a 503.
        raise
    except Exception as e:
        # Read the metrics back for logging
        result = http_client.get_result(context.request_id)
        if result:
            print(f"Failed after {result.attempts} attempts: {e!r}")

        raise HTTPException(
            status_code=503,
            detail="Service externe indisponible",
        ) from e


# --- Running the application in-process ----------------------------------------------------

Message = MutableMapping[str, Any]


@asynccontextmanager
async def lifespan(application: FastAPI) -> AsyncIterator[None]:
    """
    Drive the ASGI lifespan protocol as a server does: startup on entry, shutdown on exit.

    The application's lifespan runs in one task of this task group, so its startup and shutdown
    handlers share a task, as under uvicorn.
    """
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)

    async def run_lifespan() -> None:
        async with app_inbox, app_outbox:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            await application(scope, app_inbox.receive, app_outbox.send)

    async with anyio.create_task_group() as tg, to_app, from_app:
        tg.start_soon(run_lifespan)
        await to_app.send({"type": "lifespan.startup"})
        message = await from_app.receive()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {message.get('message', '')}")
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            message = await from_app.receive()
            if message["type"] != "lifespan.shutdown.complete":
                raise RuntimeError(f"shutdown failed: {message.get('message', '')}")


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Call the application twice: with the external API up, then with it refusing connections.

    Returns:
        ``{"ok": (status, json), "down": (status, json), "client_closed": bool}``.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    outcome: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as api,
    ):
        app.state.external_api_url = base_url
        response = await api.get("/api/external-data/42")
        print(f"API up: {response.status_code}, proxied {response.json()['path']}")
        outcome["ok"] = (response.status_code, response.json())

        with refusing_url() as refused:
            app.state.external_api_url = refused
            response = await api.get("/api/external-data/43")
        print(f"API down: {response.status_code}, detail {response.json()['detail']!r}")
        outcome["down"] = (response.status_code, response.json())
    # The shutdown handler closed the shared client.
    outcome["client_closed"] = http_client is not None and http_client.is_closed
    return outcome


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/fastapi_integration.py",
        description="A FastAPI app proxying an external API through one shared client.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    outcome = anyio.run(main, backend=args.backend)
    print(f"shared client closed at shutdown: {'yes' if outcome['client_closed'] else 'no'}")
