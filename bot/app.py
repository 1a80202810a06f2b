"""Wiring: the services of one bot process and the Bolt app that uses them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import httpx
from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AccessControl
from bot.audit import AuditLog
from bot.follower import Follower
from bot.logs import describe_exception, quiet_client_loggers
from bot.metrics import Metrics
from bot.northflank import NorthflankClient
from bot.permissions import PermissionMap
from bot.redis_server import EmbeddedRedis
from bot.runs import RunService
from bot.settings import Settings
from bot.slack import SlackSender
from bot.store import Store
from bot.tasks import JobLimiter, TaskRegistry

logger = logging.getLogger(__name__)

SLACK_RESPONSE_URL_HOST = "hooks.slack.com"


@dataclass
class Services:
    settings: Settings
    permissions: PermissionMap
    store: Store
    northflank: NorthflankClient
    runs: RunService
    access: AccessControl
    sender: SlackSender
    follower: Follower
    tasks: TaskRegistry
    slack_client: AsyncWebClient
    aiohttp_session: aiohttp.ClientSession
    metrics: Metrics = field(default_factory=Metrics)
    # Below the Redis pool (64) and the Northflank client's 50 connections.
    jobs: JobLimiter = field(
        default_factory=lambda: JobLimiter(concurrency=32, max_waiting=1_000)
    )
    audit: AuditLog = None  # type: ignore[assignment]  # set by create_services
    embedded_redis: EmbeddedRedis | None = None
    closed: bool = field(default=False)

    def run_url(self, template_id: str, run_id: str) -> str | None:
        template = self.settings.run_url_template
        if not template:
            return None
        return template.format(
            team_id=self.settings.northflank_team_id or "",
            template_id=template_id,
            run_id=run_id,
        )

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self.follower.stop()
        await self.northflank.aclose()
        await self.aiohttp_session.close()
        await self.store.aclose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


async def create_services(settings: Settings, permissions: PermissionMap) -> Services:
    """Open the clients of one process; call `aclose()` when done."""
    quiet_client_loggers()
    embedded = None
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = embedded.start()
    team = settings.northflank_team_id or "default"
    store = Store.from_url(redis_url, prefix=settings.redis_prefix, team=team)
    await store.ping()

    tasks = TaskRegistry()
    metrics = Metrics()
    northflank = NorthflankClient(
        base_url=settings.northflank_api_base_url,
        token=_secret(settings.northflank_api_token),
        team_id=settings.northflank_team_id,
        timeout=httpx.Timeout(settings.northflank_timeout, connect=3.0),
        deadline=settings.northflank_deadline,
        on_call=metrics.observe_northflank,
    )
    runs = RunService(
        northflank,
        store,
        freshness=settings.cache_freshness,
        budget_reserve=settings.rate_limit_reserve,
        metrics=metrics,
    )
    session = aiohttp.ClientSession()
    slack_client = AsyncWebClient(
        token=_secret(settings.slack_bot_token) or None,
        base_url=settings.slack_api_url,
        session=session,
        timeout=10,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )
    sender = SlackSender(
        slack_client,
        session,
        response_url_hosts=_response_url_hosts(settings.slack_api_url),
        secrets=tuple(settings.secret_values()),
    )
    access = AccessControl(
        permissions,
        store=store,
        slack=slack_client,
        usergroup_ttl=settings.usergroup_cache_ttl,
    )
    services = Services(
        settings=settings,
        permissions=permissions,
        store=store,
        northflank=northflank,
        runs=runs,
        access=access,
        sender=sender,
        follower=None,  # type: ignore[arg-type]  # set just below, it needs `services`
        tasks=tasks,
        slack_client=slack_client,
        aiohttp_session=session,
        embedded_redis=embedded,
        metrics=metrics,
        audit=AuditLog(store, metrics, max_length=settings.audit_max_length),
    )
    from handlers.summary import publish_summary

    async def publish(watch, view, finished):  # type: ignore[no-untyped-def]
        await publish_summary(services, watch, view, finished)

    services.follower = Follower(
        runs,
        store,
        tasks,
        interval=settings.watch_interval,
        timeout=settings.watch_timeout,
        publish=publish,
        lease_margin=settings.northflank_deadline + 2.0,
    )
    metrics.bind_gauges(
        redis_up=lambda: store.up,
        in_flight=lambda: len(tasks),
        followed=lambda: len(services.follower.following),
    )
    return services


def build_bolt_app(services: Services) -> AsyncApp:
    """Build the Bolt app with every listener registered.

    Requests are verified over the raw body by the HTTP server before they
    reach Bolt, and Socket Mode needs no signature, so Bolt's own check is off.
    Listeners ack first and hand slow work to the task registry, so with
    `process_before_response` the ack leaves without Bolt's ack polling.
    """
    from handlers import actions, commands, events

    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _SkipTokenNotice) for f in bolt_logger.filters):
        bolt_logger.addFilter(_SkipTokenNotice())
    app = AsyncApp(
        client=services.slack_client,
        signing_secret="",
        request_verification_enabled=False,
        process_before_response=True,
        logger=bolt_logger,
    )

    @app.error
    async def on_error(error: Exception) -> BoltResponse | None:
        # Replaces Bolt's handler, which logs the traceback and the message.
        described = describe_exception(error)
        if " at " not in described:
            # Raised inside Bolt while it matched listeners: a malformed payload.
            logger.warning(
                "slack.request_rejected reason=malformed payload error=%s", described
            )
            return BoltResponse(status=400, body="malformed payload")
        logger.error("bolt.listener_failed error=%s", described)
        return None

    commands.register(app, services)
    actions.register(app, services)
    events.register(app, services)
    return app


class _SkipTokenNotice(logging.Filter):
    """Drop Bolt's notice that SLACK_BOT_TOKEN is unused when a client is given.

    Bolt reads SLACK_BOT_TOKEN from the environment even when it is given a
    client, and warns at every start although the client carries that token.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else ""


def _response_url_hosts(slack_api_url: str) -> frozenset[str]:
    hosts = {SLACK_RESPONSE_URL_HOST}
    api_host = urlsplit(slack_api_url).hostname
    # A Slack stand-in serves the Web API and response URLs on one host.
    if api_host and api_host not in ("slack.com", "www.slack.com"):
        hosts.add(api_host)
    return frozenset(hosts)
