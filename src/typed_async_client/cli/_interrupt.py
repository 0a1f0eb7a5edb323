"""
Ctrl-C as an event the command handles, the same way on asyncio and trio.

Left alone, SIGINT raises ``KeyboardInterrupt`` wherever the event loop happens to be: it tears
through the client's task group and comes out as a traceback (inside an ``ExceptionGroup`` on
trio), with no summary. While a command runs, :func:`handle_interrupts` receives SIGINT (and
any other signal it is given) through ``anyio.open_signal_receiver`` instead:

* the first signal calls the command's ``stop`` coroutine in a task of its own (cancel what is
  queued, cancel the requests in flight, so that their results still come back), and sets
  :attr:`Interrupts.received`;
* a second one, if ``stop`` has not finished, cancels the whole block: the way out when a
  clean stop takes too long.

Where signals cannot be received this way (asyncio on Windows), the block runs without the
watcher and ``KeyboardInterrupt`` reaches :func:`typed_async_client.cli.main`, which reports it
without a traceback.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from typing import final

import anyio
from anyio.abc import TaskGroup, TaskStatus


@final
class Interrupts:
    """What the watcher saw: the signals received, the first one's name."""

    def __init__(self) -> None:
        self.received = 0
        self.first: signal.Signals | None = None

    @property
    def interrupted(self) -> bool:
        """Whether a signal arrived (and ``stop`` was called)."""
        return self.received > 0


@asynccontextmanager
async def handle_interrupts(
    stop: Callable[[], Awaitable[None]],
    *,
    signals: tuple[signal.Signals, ...] = (signal.SIGINT,),
) -> AsyncIterator[Interrupts]:
    """
    Within the block, the first of ``signals`` calls ``stop()``, a second cancels the block.

    Args:
        stop: the clean stop; it must return soon (bounded in time).
        signals: the signals to receive.

    Yields:
        The :class:`Interrupts` record, to tell afterwards whether the run was interrupted.
    """
    state = Interrupts()
    async with anyio.create_task_group() as tg:
        await tg.start(_watch, state, stop, tg, signals)
        yield state
        tg.cancel_scope.cancel()


async def _watch(
    state: Interrupts,
    stop: Callable[[], Awaitable[None]],
    tg: TaskGroup,
    signals: tuple[signal.Signals, ...],
    *,
    task_status: TaskStatus[None],
) -> None:
    with ExitStack() as stack:
        try:
            receiver = stack.enter_context(anyio.open_signal_receiver(*signals))
        except NotImplementedError:
            # No signal receiver on this platform: KeyboardInterrupt goes to main().
            task_status.started()
            return
        task_status.started()
        stopped = anyio.Event()

        async def stop_then_note() -> None:
            try:
                await stop()
            finally:
                stopped.set()

        async for signum in receiver:
            state.received += 1
            if state.first is None:
                state.first = signal.Signals(signum)
                tg.start_soon(stop_then_note)
            elif not stopped.is_set():
                tg.cancel_scope.cancel()
