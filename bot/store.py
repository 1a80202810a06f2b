"""Redis-backed state: run cache, abort locks, leases, group members, budget.

Every operation degrades instead of failing when Redis is unreachable: reads
become misses, the abort lock falls back to an in-process lock, and writes are
skipped. The client reconnects on its own, so Redis is used again as soon as it
responds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.models import TemplateRun

logger = logging.getLogger(__name__)

# The run cache keeps entries much longer than the freshness window, so a
# failed read can still fall back to the last known state, marked with its age.
RUN_CACHE_TTL_SECONDS = 24 * 3600
# Event ids remembered in process while Redis is down; Slack retries within minutes.
LOCAL_EVENT_MEMORY = 10_000
# How long this process remembers that another process holds a run's lock.
OTHER_HOLDER_SECONDS = 2.0
# In-process abort locks kept before expired ones are swept.
MAX_LOCAL_LOCKS = 1_000
# Redis connections per process; a burst waits this long for a free one.
REDIS_MAX_CONNECTIONS = 64
REDIS_POOL_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class CachedRun:
    run: TemplateRun
    fetched_at: float

    def age(self, now: float | None = None) -> float:
        return max(0.0, (now or time.time()) - self.fetched_at)


@dataclass(frozen=True)
class LockHolder:
    user_id: str
    started_at: float


@dataclass(frozen=True)
class Budget:
    remaining: int
    reset_at: float
    limit: int | None


class Store:
    def __init__(self, client: aioredis.Redis, *, prefix: str, team: str) -> None:
        self.client = client
        self.prefix = prefix
        self.team = team
        self.up = True
        self._local_locks: dict[str, tuple[LockHolder, float]] = {}
        self._warned_fallback = False
        self._local_events: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_url(cls, url: str, *, prefix: str, team: str) -> Store:
        # A blocking pool makes a burst wait for a free connection instead of
        # failing at once, which would look like Redis being down.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            retry_on_timeout=False,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=REDIS_POOL_WAIT_SECONDS,
        )
        client = aioredis.Redis.from_pool(pool)
        return cls(client, prefix=prefix, team=team)

    async def aclose(self) -> None:
        await self.client.aclose()

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def run_key(self, kind: str, template_id: str, run_id: str) -> str:
        return self.key(kind, self.team, template_id, run_id)

    # -- health -----------------------------------------------------------

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except (RedisError, OSError):
            self._mark_down()
            return False
        self._mark_up()
        return True

    def _mark_down(self) -> None:
        if self.up:
            logger.warning("redis.down: using in-process fallbacks until it returns")
        self.up = False

    def _mark_up(self) -> None:
        if not self.up:
            logger.info("redis.up: using Redis again")
        self.up = True

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command; raise RedisUnavailable when Redis cannot respond."""
        try:
            result = await getattr(self.client, method)(*args, **kwargs)
        except (RedisError, OSError) as error:
            self._mark_down()
            raise RedisUnavailable(type(error).__name__) from None
        self._mark_up()
        return result

    # -- run cache --------------------------------------------------------

    async def get_run(self, template_id: str, run_id: str) -> CachedRun | None:
        try:
            raw = await self._call("get", self.run_key("run", template_id, run_id))
        except RedisUnavailable:
            return None
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            return CachedRun(
                run=TemplateRun.model_validate(entry["run"]),
                fetched_at=float(entry["fetched_at"]),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning(
                "cache.invalid_entry template=%s run=%s", template_id, run_id
            )
            return None

    async def put_run(
        self, run: TemplateRun, *, fetched_at: float | None = None
    ) -> None:
        entry = {"run": run.to_cache(), "fetched_at": fetched_at or time.time()}
        with contextlib.suppress(RedisUnavailable):
            await self._call(
                "set",
                self.run_key("run", run.template_id, run.id),
                json.dumps(entry),
                ex=RUN_CACHE_TTL_SECONDS,
            )

    # -- abort lock -------------------------------------------------------

    async def acquire_abort_lock(
        self, template_id: str, run_id: str, user_id: str, *, ttl: float
    ) -> tuple[bool, LockHolder | None]:
        """Take the per-run abort lock; return (acquired, current holder)."""
        key = self.run_key("abort-lock", template_id, run_id)
        holder = LockHolder(user_id=user_id, started_at=time.time())
        # Clicks in this process meet the in-process lock first, so they never
        # depend on Redis, and Redis decides only between processes.
        local = self._local_locks.get(key)
        if local is not None and local[1] > time.monotonic():
            return False, local[0]
        self._local_locks[key] = (holder, time.monotonic() + ttl)
        self._forget_local_locks()
        value = json.dumps({"user_id": user_id, "started_at": holder.started_at})
        try:
            acquired = await self._call("set", key, value, nx=True, px=int(ttl * 1000))
            if acquired:
                return True, holder
            current = await self._call("get", key)
        except RedisUnavailable:
            self._warn_local_lock()
            return True, holder
        # Another process holds the lock. Its holder is remembered here only
        # briefly, because that process may fail and release the lock.
        other = _holder_from(current)
        self._local_locks[key] = (
            other or holder,
            time.monotonic() + OTHER_HOLDER_SECONDS,
        )
        return False, other

    async def release_abort_lock(self, template_id: str, run_id: str) -> None:
        key = self.run_key("abort-lock", template_id, run_id)
        self._local_locks.pop(key, None)
        with contextlib.suppress(RedisUnavailable):
            await self._call("delete", key)

    def _warn_local_lock(self) -> None:
        if not self._warned_fallback:
            logger.warning(
                "abort_lock.local_fallback: Redis is down, so abort locks are "
                "per process and replicas may send duplicate aborts"
            )
            self._warned_fallback = True

    def _forget_local_locks(self) -> None:
        if len(self._local_locks) <= MAX_LOCAL_LOCKS:
            return
        now = time.monotonic()
        for key, (_, expires) in list(self._local_locks.items()):
            if expires <= now:
                del self._local_locks[key]

    # -- Slack user group members ----------------------------------------

    async def get_usergroup_members(self, usergroup_id: str) -> set[str] | None:
        try:
            raw = await self._call("get", self.key("usergroup", usergroup_id))
        except RedisUnavailable:
            return None
        if raw is None:
            return None
        try:
            return set(json.loads(raw))
        except (ValueError, TypeError):
            return None

    async def put_usergroup_members(
        self, usergroup_id: str, members: set[str], *, ttl: int
    ) -> None:
        with contextlib.suppress(RedisUnavailable):
            await self._call(
                "set",
                self.key("usergroup", usergroup_id),
                json.dumps(sorted(members)),
                ex=ttl,
            )

    # -- shared rate-limit budget -----------------------------------------

    async def record_budget(
        self, remaining: int, reset_seconds: float, limit: int | None
    ) -> None:
        mapping = {
            "remaining": remaining,
            "reset_at": time.time() + reset_seconds,
            "limit": limit if limit is not None else "",
        }
        try:
            await self._call("hset", self.key("ratelimit", self.team), mapping=mapping)
            await self._call(
                "expire", self.key("ratelimit", self.team), int(reset_seconds) + 60
            )
        except RedisUnavailable:
            pass

    async def get_budget(self) -> Budget | None:
        try:
            raw = await self._call("hgetall", self.key("ratelimit", self.team))
        except RedisUnavailable:
            return None
        if not raw:
            return None
        try:
            budget = Budget(
                remaining=int(raw["remaining"]),
                reset_at=float(raw["reset_at"]),
                limit=int(raw["limit"]) if raw.get("limit") else None,
            )
        except (KeyError, ValueError):
            return None
        if budget.reset_at <= time.time():
            return None
        return budget

    # -- event de-duplication ---------------------------------------------

    async def first_delivery(self, event_id: str, *, ttl: int = 3600) -> bool:
        """Return True the first time an Events API event id is seen.

        While Redis is down the ids seen by this process are remembered instead,
        so a retry that reaches another replica may then run twice.
        """
        try:
            return bool(
                await self._call(
                    "set", self.key("event", event_id), "1", nx=True, ex=ttl
                )
            )
        except RedisUnavailable:
            if event_id in self._local_events:
                return False
            self._local_events[event_id] = None
            while len(self._local_events) > LOCAL_EVENT_MEMORY:
                self._local_events.popitem(last=False)
            return True

    # -- audit stream -----------------------------------------------------

    async def append_audit(self, fields: dict[str, str], *, max_length: int) -> bool:
        """Append to the audit stream, trimmed to about `max_length` entries."""
        try:
            await self._call(
                "xadd",
                self.key("audit", self.team),
                fields,
                maxlen=max_length,
                approximate=False,
            )
        except RedisUnavailable:
            return False
        return True

    async def read_audit(self, *, scan: int) -> list[dict[str, str]]:
        """Return up to `scan` newest audit entries, newest first."""
        try:
            rows = await self._call(
                "xrevrange", self.key("audit", self.team), count=scan
            )
        except RedisUnavailable:
            return []
        return [dict(fields) for _, fields in rows]

    # -- followed runs and their leases --------------------------------

    async def save_watch(self, watch: dict[str, Any], *, ttl: float) -> None:
        name = f"{watch['template_id']}:{watch['run_id']}"
        try:
            await self._call(
                "set",
                self.key("watch", self.team, name),
                json.dumps(watch),
                px=int(ttl * 1000),
            )
            await self._call("sadd", self.key("watches", self.team), name)
        except RedisUnavailable:
            pass

    async def load_watches(self) -> list[dict[str, Any]]:
        """Return every watch record; drop registry entries whose record expired."""
        try:
            names = await self._call("smembers", self.key("watches", self.team))
            watches = []
            for name in sorted(names):
                raw = await self._call("get", self.key("watch", self.team, name))
                if raw is None:
                    await self._call("srem", self.key("watches", self.team), name)
                    continue
                try:
                    watches.append(json.loads(raw))
                except ValueError:
                    await self._call("srem", self.key("watches", self.team), name)
            return watches
        except RedisUnavailable:
            return []

    async def delete_watch(self, template_id: str, run_id: str) -> None:
        name = f"{template_id}:{run_id}"
        try:
            await self._call("delete", self.key("watch", self.team, name))
            await self._call("srem", self.key("watches", self.team), name)
        except RedisUnavailable:
            pass

    async def claim_lease(
        self, template_id: str, run_id: str, owner: str, *, ttl: float
    ) -> bool | None:
        """Take or renew the follow lease; None when Redis cannot decide."""
        key = self.run_key("lease", template_id, run_id)
        try:
            result = await self._call(
                "eval", _CLAIM_LEASE, 1, key, owner, int(ttl * 1000)
            )
        except RedisUnavailable:
            return None
        return bool(result)

    async def release_lease(self, template_id: str, run_id: str, owner: str) -> None:
        key = self.run_key("lease", template_id, run_id)
        with contextlib.suppress(RedisUnavailable):
            await self._call("eval", _RELEASE_LEASE, 1, key, owner)


# Take the lease when it is free or already ours, and extend it either way.
_CLAIM_LEASE = """
local holder = redis.call('get', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisUnavailable(Exception):
    pass


def _holder_from(raw: str | None) -> LockHolder | None:
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        return LockHolder(
            user_id=str(entry["user_id"]), started_at=float(entry["started_at"])
        )
    except (ValueError, KeyError, TypeError):
        return None
