"""
Run the test server as a process: ``python -m typed_async_client.testing --port 8000``.
"""

from __future__ import annotations

import argparse

import anyio

from ._server import LocalServer


async def main(host: str, port: int, duration: float | None) -> None:
    async with LocalServer(host, port) as server:
        print(f"serving on {server.url}", flush=True)
        if duration is None:
            await anyio.sleep_forever()
        else:
            await anyio.sleep(duration)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m typed_async_client.testing")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks one; default 8000)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.host, args.port, args.duration, backend=args.backend)


if __name__ == "__main__":
    cli()
