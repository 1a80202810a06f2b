"""Start the real bot server against the local stand-ins, in this event loop."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app import Services, create_services
from bot.permissions import PermissionMap, parse_permissions
from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackStandIn
from bot.server import BotProcess
from bot.settings import load_settings


@dataclass
class Harness:
    northflank: NorthflankSandbox
    slack: SlackStandIn
    services: Services
    process: BotProcess

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until the bot has finished all work started by earlier requests."""
        await self.services.tasks.wait_idle(timeout)

    async def stop(self) -> None:
        await self.process.stop()
        await self.slack.stop()
        await self.northflank.stop()


async def start_harness(
    *,
    permissions: PermissionMap | dict[str, Any],
    redis_url: str | None,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
    northflank: NorthflankSandbox | None = None,
    slack: SlackStandIn | None = None,
) -> Harness:
    """Start the stand-ins (unless given) and the bot server on 127.0.0.1."""
    signing_secret = secrets.token_hex(16)
    northflank = northflank or NorthflankSandbox(token="nf-" + secrets.token_hex(12))
    slack = slack or SlackStandIn(
        signing_secret=signing_secret, bot_token="xoxb-" + secrets.token_hex(12)
    )
    if northflank.port == 0:
        await northflank.start()
    if slack.port == 0:
        await slack.start()

    environ = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "NORTHFLANK_API_TOKEN": northflank.token,
        "NORTHFLANK_API_BASE_URL": northflank.url,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "BOT_REDIS_PREFIX": f"nfbot-{secrets.token_hex(4)}:",
        "BOT_WATCH_INTERVAL": "0.2",
        "BOT_SHUTDOWN_GRACE": "5",
    }
    if northflank.team_id:
        environ["NORTHFLANK_TEAM_ID"] = northflank.team_id
    if redis_url:
        environ["REDIS_URL"] = redis_url
    if data_dir is not None:
        environ["BOT_DATA_DIR"] = str(data_dir)
    environ.update(env or {})
    settings = load_settings("http", environ=environ)
    if isinstance(permissions, dict):
        permissions = parse_permissions(permissions)

    services = await create_services(settings, permissions)
    process = BotProcess(services)
    try:
        await process.start()
    except BaseException:
        await services.aclose()
        raise
    slack.bot_url = f"http://127.0.0.1:{process.port}/slack/events"
    return Harness(northflank, slack, services, process)
