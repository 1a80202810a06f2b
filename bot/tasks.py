"""The registry of work that runs after a listener has acknowledged Slack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.logs import describe_exception

logger = logging.getLogger(__name__)


class TaskRegistry:
    """Keeps a handle on every background task so shutdown and tests can await it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], *, name: str
    ) -> asyncio.Task[Any] | None:
        if not self.accepting:
            coroutine.close()
            logger.warning("tasks.rejected name=%s: shutting down", name)
            return None
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error(
                "tasks.failed name=%s error=%s",
                task.get_name(),
                describe_exception(error),
            )

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no task runs, including tasks spawned by finishing tasks."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await self._idle.wait()

    async def drain(self, timeout: float) -> int:
        """Stop accepting work, wait up to `timeout` seconds, cancel the rest.

        Returns the number of tasks that had to be cancelled.
        """
        self.accepting = False
        pending = set(self._tasks)
        if not pending:
            return 0
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=1.0)
        return len(still_running)


class JobLimiter:
    """Bounds how many listener jobs run at once, and how many may wait.

    Every ack can start a job, so a storm of clicks would otherwise run
    hundreds of jobs together and exhaust the Redis and HTTP pools.
    """

    def __init__(self, *, concurrency: int, max_waiting: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.max_waiting = max_waiting
        self.waiting = 0

    def admit(self) -> bool:
        """Return False when the queue is full and a new job must be dropped."""
        return self.waiting < self.max_waiting

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release()
