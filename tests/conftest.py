"""
Shared fixtures: every async test runs on asyncio and on trio, against a real loopback server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from typed_async_client.testing import LocalServer, refusing_url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    Slow tests run only when ``-m`` names them (``-m slow``, ``nox -s soak``): a marker
    expression of its own, such as the specification's ``-m "not integration"``, leaves them out.
    """
    if "slow" in config.option.markexpr:
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each anyio test once per backend."""
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    """A loopback HTTP server running in the test's own event loop."""
    async with LocalServer() as local_server:
        yield local_server


@pytest.fixture
def refused_url() -> Iterator[str]:
    """The URL of a loopback port that refuses every connection."""
    with refusing_url() as url:
        yield url
