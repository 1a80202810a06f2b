"""The run service: cached reads, and aborts that go out once per run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bot.errors import (
    NorthflankAPIError,
    NorthflankConflict,
    NorthflankError,
    NorthflankRateLimited,
    NorthflankServerError,
    NorthflankUnavailable,
    describe_wait,
)
from bot.metrics import Metrics
from bot.models import RunList, TemplateRun
from bot.northflank import NorthflankClient, RateLimit
from bot.store import LockHolder, Store

logger = logging.getLogger(__name__)

# Aborts normally complete within seconds; the lock outlives the client's
# retry deadline so a slow abort is never sent twice.
ABORT_LOCK_SECONDS = 120.0


@dataclass(frozen=True)
class RunView:
    """A run's last known state, and where that state came from."""

    run: TemplateRun
    fetched_at: float
    from_cache: bool = False
    stale_reason: str | None = None

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.fetched_at)


@dataclass(frozen=True)
class Aborted:
    run: TemplateRun


@dataclass(frozen=True)
class AlreadyConcluded:
    run: TemplateRun


@dataclass(frozen=True)
class AlreadyAborting:
    holder: LockHolder | None


@dataclass(frozen=True)
class AbortFailed:
    error: NorthflankError
    may_have_reached: bool
    last_known: RunView | None


AbortOutcome = Aborted | AlreadyConcluded | AlreadyAborting | AbortFailed


class BudgetExhausted(NorthflankRateLimited):
    """The shared request budget is at its reserve, so reads wait for the reset."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            429, "request budget reserved for aborts", retry_after=retry_after
        )

    def user_message(self) -> str:
        return (
            "The bot is saving Northflank's shared request budget for aborts; "
            f"reads resume in about {describe_wait(self.retry_after or 60)}."
        )


class RunService:
    def __init__(
        self,
        client: NorthflankClient,
        store: Store,
        *,
        freshness: float,
        budget_reserve: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.client = client
        self.store = store
        self.freshness = freshness
        self.budget_reserve = budget_reserve
        client.on_rate_limit = self._record_rate_limit

    async def _record_rate_limit(self, rate_limit: RateLimit) -> None:
        if self.metrics is not None:
            self.metrics.rate_limit_remaining.set(rate_limit.remaining)
        await self.store.record_budget(
            rate_limit.remaining, rate_limit.reset_seconds, rate_limit.limit
        )

    async def _reads_postponed_for(self) -> float | None:
        """Return seconds until reset when reads must wait for the budget."""
        budget = await self.store.get_budget()
        if budget is None or budget.remaining > self.budget_reserve:
            return None
        return max(1.0, budget.reset_at - time.time())

    # -- reads ------------------------------------------------------------

    async def get_run(
        self, template_id: str, run_id: str, *, max_age: float | None = None
    ) -> RunView:
        """Return the run from a fresh cache entry, else from the API.

        When the API call fails, or the shared budget is at its reserve,
        the last cached state is returned with `stale_reason` set.
        """
        window = self.freshness if max_age is None else max_age
        cached = await self.store.get_run(template_id, run_id)
        if cached is not None and cached.age() <= window:
            return RunView(cached.run, cached.fetched_at, from_cache=True)

        wait = await self._reads_postponed_for()
        if wait is not None:
            if cached is not None:
                return RunView(
                    cached.run,
                    cached.fetched_at,
                    from_cache=True,
                    stale_reason="the shared Northflank request budget is low",
                )
            raise BudgetExhausted(wait)

        try:
            run = await self.client.get_run(template_id, run_id)
        except (
            NorthflankUnavailable,
            NorthflankServerError,
            NorthflankRateLimited,
        ) as error:
            if cached is None:
                raise
            logger.warning(
                "runs.read_failed_using_cache template=%s run=%s error=%s",
                template_id,
                run_id,
                type(error).__name__,
            )
            return RunView(
                cached.run,
                cached.fetched_at,
                from_cache=True,
                stale_reason=error.user_message(),
            )
        fetched_at = time.time()
        await self.store.put_run(run, fetched_at=fetched_at)
        return RunView(run, fetched_at)

    async def list_active_runs(self, template_id: str) -> RunList:
        wait = await self._reads_postponed_for()
        if wait is not None:
            raise BudgetExhausted(wait)
        runs = await self.client.list_runs(template_id, concluded=False)
        active = [run for run in runs.runs if not run.is_concluded]
        fetched_at = time.time()
        for run in active:
            await self.store.put_run(run, fetched_at=fetched_at)
        return RunList(
            runs=active, has_next_page=runs.has_next_page, cursor=runs.cursor
        )

    # -- abort ------------------------------------------------------------

    async def abort(
        self, template_id: str, run_id: str, *, user_id: str
    ) -> AbortOutcome:
        """Send one abort per run at a time, across clicks and replicas on one Redis."""
        cached = await self.store.get_run(template_id, run_id)
        if (
            cached is not None
            and cached.age() <= self.freshness
            and cached.run.is_concluded
        ):
            return AlreadyConcluded(cached.run)

        acquired, holder = await self.store.acquire_abort_lock(
            template_id, run_id, user_id, ttl=ABORT_LOCK_SECONDS
        )
        if not acquired:
            logger.info(
                "abort.duplicate template=%s run=%s user=%s holder=%s",
                template_id,
                run_id,
                user_id,
                holder.user_id if holder else "unknown",
            )
            return AlreadyAborting(holder)

        logger.info(
            "abort.requested template=%s run=%s user=%s", template_id, run_id, user_id
        )
        try:
            run = await self.client.abort_run(template_id, run_id)
        except NorthflankConflict:
            # Northflank refuses to abort a run that has ended; show its state.
            await self.store.release_abort_lock(template_id, run_id)
            view = await self._try_read(template_id, run_id)
            if view is not None and view.run.is_concluded:
                return AlreadyConcluded(view.run)
            raise
        except NorthflankError as error:
            await self.store.release_abort_lock(template_id, run_id)
            reached = _may_have_reached(error)
            logger.warning(
                "abort.failed template=%s run=%s user=%s error=%s may_have_reached=%s",
                template_id,
                run_id,
                user_id,
                type(error).__name__,
                reached,
            )
            last_known = None
            if cached is not None:
                last_known = RunView(
                    cached.run,
                    cached.fetched_at,
                    from_cache=True,
                    stale_reason=error.user_message(),
                )
            return AbortFailed(error, reached, last_known)

        await self.store.put_run(run)
        logger.info(
            "abort.sent template=%s run=%s user=%s status=%s",
            template_id,
            run_id,
            user_id,
            run.status,
        )
        return Aborted(run)

    async def _try_read(self, template_id: str, run_id: str) -> RunView | None:
        try:
            return await self.get_run(template_id, run_id, max_age=0)
        except NorthflankError:
            return None


def _may_have_reached(error: NorthflankError) -> bool:
    if isinstance(error, NorthflankUnavailable):
        return not error.before_send
    if isinstance(error, NorthflankRateLimited):
        return False
    if isinstance(error, NorthflankAPIError):
        # A 5xx from a gateway can follow a request the API did process.
        return error.status >= 500
    return True
