"""Events API listeners: a mention of the bot gets the help in a thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import ids, render
from bot.app import Services
from bot.commands import HELP_LINES
from bot.slack import SlackPostError

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any]) -> None:
        channel_id = str(event.get("channel") or "")
        if not ids.is_slack_channel_id(channel_id):
            return
        thread_ts = str(event.get("thread_ts") or event.get("ts") or "")

        async def job() -> None:
            message = render.help_message(services.settings.command, HELP_LINES)
            message.ephemeral = False
            try:
                await services.sender.post(
                    channel_id, message, thread_ts=thread_ts or None
                )
            except SlackPostError as error:
                logger.warning(
                    "event.mention_reply_failed channel=%s error=%s",
                    channel_id,
                    error.code,
                )

        services.tasks.spawn(job(), name="event:app_mention")
