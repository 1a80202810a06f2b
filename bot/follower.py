"""Following aborting runs until they really stop.

Each followed run has a watch record in Redis and a lease. The replica that
holds the lease polls the run. When that replica dies, its lease expires, and
another replica's scan takes the run over from the watch record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from bot.errors import NorthflankError
from bot.logs import describe_exception
from bot.runs import RunService, RunView
from bot.store import Store
from bot.tasks import TaskRegistry

logger = logging.getLogger(__name__)

MAX_POLL_INTERVAL_SECONDS = 60.0
BACKOFF_FACTOR = 1.5


@dataclass(frozen=True)
class Watch:
    template_id: str
    run_id: str
    channel_id: str
    message_ts: str | None
    aborted_by: str
    started_at: float
    deadline: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Watch:
        return cls(
            template_id=str(record["template_id"]),
            run_id=str(record["run_id"]),
            channel_id=str(record["channel_id"]),
            message_ts=record.get("message_ts"),
            aborted_by=str(record["aborted_by"]),
            started_at=float(record["started_at"]),
            deadline=float(record["deadline"]),
        )


# Called with the watch, the latest view and whether following has ended
# (True once the run concluded or the deadline passed).
Publisher = Callable[[Watch, RunView, bool], Awaitable[None]]


class Follower:
    def __init__(
        self,
        runs: RunService,
        store: Store,
        tasks: TaskRegistry,
        *,
        interval: float,
        timeout: float,
        publish: Publisher,
        lease_margin: float,
        replica_id: str | None = None,
    ) -> None:
        """Set up following; `lease_margin` is how long a lease outlives a sleep.

        The margin must exceed the longest poll (the Northflank client's
        deadline), so that a live holder never loses its lease.
        """
        self.runs = runs
        self.store = store
        self.tasks = tasks
        self.interval = interval
        self.timeout = timeout
        self.publish = publish
        self.lease_margin = lease_margin
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self._following: dict[tuple[str, str], Watch] = {}
        self._scanner: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def following(self) -> list[tuple[str, str]]:
        return list(self._following)

    async def follow(
        self,
        template_id: str,
        run_id: str,
        *,
        channel_id: str,
        message_ts: str | None,
        aborted_by: str,
    ) -> None:
        now = time.time()
        watch = Watch(
            template_id=template_id,
            run_id=run_id,
            channel_id=channel_id,
            message_ts=message_ts,
            aborted_by=aborted_by,
            started_at=now,
            deadline=now + self.timeout,
        )
        await self.store.save_watch(asdict(watch), ttl=self.timeout + 60)
        claimed = await self.store.claim_lease(
            template_id,
            run_id,
            self.replica_id,
            ttl=self.interval + self.lease_margin,
        )
        if claimed is False:
            return
        self._start(watch)

    def _start(self, watch: Watch) -> None:
        key = (watch.template_id, watch.run_id)
        if key in self._following:
            return
        self._following[key] = watch
        self.tasks.spawn(
            self._follow_loop(watch), name=f"follow:{watch.template_id}:{watch.run_id}"
        )

    async def _follow_loop(self, watch: Watch) -> None:
        key = (watch.template_id, watch.run_id)
        wait = self.interval
        logger.info(
            "follow.started template=%s run=%s replica=%s",
            watch.template_id,
            watch.run_id,
            self.replica_id,
        )
        try:
            while True:
                timed_out = time.time() + wait > watch.deadline
                sleep_for = (
                    max(0.0, watch.deadline - time.time()) if timed_out else wait
                )
                claimed = await self.store.claim_lease(
                    watch.template_id,
                    watch.run_id,
                    self.replica_id,
                    ttl=sleep_for + self.lease_margin,
                )
                if claimed is False:
                    logger.info(
                        "follow.lease_lost template=%s run=%s",
                        watch.template_id,
                        watch.run_id,
                    )
                    return
                await asyncio.sleep(sleep_for)
                view = await self._poll(watch)
                if view is not None and view.run.is_concluded:
                    await self._finish(watch, view)
                    return
                if timed_out:
                    if view is None:
                        view = await self._last_known(watch)
                    if view is not None:
                        await self.publish(watch, view, True)
                    logger.warning(
                        "follow.timed_out template=%s run=%s after=%.0fs",
                        watch.template_id,
                        watch.run_id,
                        time.time() - watch.started_at,
                    )
                    await self._forget(watch)
                    return
                wait = min(
                    wait * BACKOFF_FACTOR, max(self.interval, MAX_POLL_INTERVAL_SECONDS)
                )
        finally:
            self._following.pop(key, None)

    async def _poll(self, watch: Watch) -> RunView | None:
        try:
            view = await self.runs.get_run(watch.template_id, watch.run_id, max_age=0)
        except NorthflankError as error:
            logger.warning(
                "follow.poll_failed template=%s run=%s error=%s",
                watch.template_id,
                watch.run_id,
                type(error).__name__,
            )
            return None
        if view.stale_reason is not None:
            # A cached state adds nothing new about the run.
            return None
        return view

    async def _last_known(self, watch: Watch) -> RunView | None:
        cached = await self.store.get_run(watch.template_id, watch.run_id)
        if cached is None:
            return None
        return RunView(cached.run, cached.fetched_at, from_cache=True)

    async def _finish(self, watch: Watch, view: RunView) -> None:
        logger.info(
            "follow.concluded template=%s run=%s status=%s",
            watch.template_id,
            watch.run_id,
            view.run.status,
        )
        await self.publish(watch, view, True)
        await self._forget(watch)

    async def _forget(self, watch: Watch) -> None:
        await self.store.delete_watch(watch.template_id, watch.run_id)
        await self.store.release_lease(watch.template_id, watch.run_id, self.replica_id)

    # -- takeover ---------------------------------------------------------

    def start_scanning(self) -> None:
        if self._scanner is None:
            self._scanner = asyncio.get_running_loop().create_task(
                self._scan_forever(), name="follow:scanner"
            )

    async def _scan_forever(self) -> None:
        # The loop checks a flag as well as cancellation, because a Redis
        # command interrupted by a cancel can end with an ordinary exception.
        while not self._stopping:
            try:
                await self.scan_once()
            except Exception as error:
                logger.error("follow.scan_failed error=%s", describe_exception(error))
            await asyncio.sleep(min(self.interval, 5.0))

    async def scan_once(self) -> int:
        """Take over watched runs whose lease has expired; return how many."""
        taken = 0
        for record in await self.store.load_watches():
            try:
                watch = Watch.from_record(record)
            except (KeyError, TypeError, ValueError):
                continue
            if (watch.template_id, watch.run_id) in self._following:
                continue
            claimed = await self.store.claim_lease(
                watch.template_id,
                watch.run_id,
                self.replica_id,
                ttl=self.interval + self.lease_margin,
            )
            if claimed:
                logger.info(
                    "follow.taken_over template=%s run=%s replica=%s",
                    watch.template_id,
                    watch.run_id,
                    self.replica_id,
                )
                self._start(watch)
                taken += 1
        return taken

    async def stop(self) -> None:
        """Stop scanning and release the leases this replica holds."""
        self._stopping = True
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._scanner, 5.0)
            self._scanner = None
        for template_id, run_id in list(self._following):
            await self.store.release_lease(template_id, run_id, self.replica_id)
            logger.info("follow.released template=%s run=%s", template_id, run_id)
