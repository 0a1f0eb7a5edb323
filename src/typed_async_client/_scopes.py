"""
Whether a cancel scope can be exited from where the code runs now.

A manually opened client (``await client.open()``) holds its task group open in the opener's
task; ``close()`` exits it. Exiting a task group is only sound from the task that entered it and
when its cancel scope is that task's innermost one: ``await client.close()`` inside an
``anyio.fail_after(...)`` opened after ``open()`` would otherwise raise anyio's ``RuntimeError``
on asyncio after the task group was half exited, and corrupt trio's cancel scope stack (which
ends ``trio.run``). ``close()`` asks here first and refuses with a clear error instead.

Written by hand because anyio has no public way to read the current cancel scope; each backend
is read the way its own ``CancelScope.__exit__`` checks nesting. When the backend's internals are
not what we expect (a future anyio or trio), the answer is ``None``: unknown, and ``close()``
then proceeds as it did before this check.
"""

from __future__ import annotations

from typing import Any

import anyio


def is_innermost(scope: anyio.CancelScope) -> bool | None:
    """
    Whether ``scope`` is the current task's innermost cancel scope (``None``: cannot tell).
    """
    module = type(scope).__module__
    try:
        if module.endswith("_asyncio"):
            import asyncio

            from anyio._backends import _asyncio

            state: Any = _asyncio._task_states.get(asyncio.current_task())  # type: ignore[arg-type]
            return state is not None and state.cancel_scope is scope
        if module.endswith("_trio"):
            import trio

            original: Any = scope._CancelScope__original  # type: ignore[attr-defined]
            task: Any = trio.lowlevel.current_task()
            return bool(task._cancel_status is original._cancel_status)
    except (AttributeError, ImportError, RuntimeError):  # pragma: no cover
        return None
    return None  # pragma: no cover
