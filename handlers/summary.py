"""The run summary in the channel: posting it, and updating it as the run stops."""

from __future__ import annotations

import logging
import re
from typing import Any

from bot import render
from bot.app import Services
from bot.follower import Watch
from bot.models import TemplateRun
from bot.mrkdwn import escape
from bot.runs import RunView
from bot.slack import SlackPostError, SlackRequest

logger = logging.getLogger(__name__)

FOLLOWING_NOTE = "Following the run: this message updates when it has stopped."
UNFOLLOWED_NOTE = (
    "The bot cannot update this message, because it is not in the channel. "
    "Press Refresh to see when the run has stopped."
)
_ABORTED_BY = re.compile(r"\*Aborted by\*\n<@([UW][A-Z0-9]{2,20})>")


def view_note(view: RunView) -> str | None:
    """Describe where a shown state came from, when it is not fresh from the API."""
    if view.stale_reason is None:
        return None
    age = round(view.age)
    return (
        f":warning: Showing the state cached {age} s ago, because "
        f"{escape(_lower_first(view.stale_reason))}"
    )


def summary_message(
    services: Services,
    run: TemplateRun,
    *,
    aborted_by: str,
    note: str | None,
) -> render.Message:
    return render.run_card(
        run,
        kind="summary",
        aborted_by=aborted_by,
        note=note,
        run_url=services.run_url(run.template_id, run.id),
        ephemeral=False,
    )


async def post_summary(
    services: Services,
    request: SlackRequest,
    message: render.Message,
    *,
    fallback: render.Message | None = None,
) -> str | None:
    """Post the summary in the channel and return its ts.

    When Slack rejects the post (the bot is not in the channel, say), the
    `fallback` message, or `message`, goes through the response_url instead.
    Such a message cannot be updated later, so None is returned, and the user
    learns what a workspace admin must do.
    """
    try:
        return await services.sender.post(request.channel_id, message)
    except SlackPostError as error:
        await services.sender.reply(request, fallback or message, in_channel=True)
        await services.sender.reply(
            request, render.notice(f":information_source: {escape(error.admin_hint())}")
        )
        return None


async def publish_summary(
    services: Services, watch: Watch, view: RunView, finished: bool
) -> None:
    """Update the summary of a followed run with its latest state."""
    note: str | None
    if view.run.is_concluded:
        note = None
    elif finished:
        minutes = max(1, round((watch.deadline - watch.started_at) / 60))
        note = (
            f":warning: The run has not stopped after {minutes} min, so the bot "
            "stopped following it. Press Refresh for its current state."
        )
    else:
        note = FOLLOWING_NOTE
    message = summary_message(
        services, view.run, aborted_by=watch.aborted_by, note=note
    )
    if watch.message_ts is not None:
        await services.sender.update(watch.channel_id, watch.message_ts, message)
    else:
        try:
            await services.sender.post(watch.channel_id, message)
        except SlackPostError:
            logger.warning(
                "summary.final_post_failed template=%s run=%s channel=%s",
                watch.template_id,
                watch.run_id,
                watch.channel_id,
            )


def aborted_by_in(message: dict[str, Any] | None) -> str | None:
    """Find who aborted a run in a summary the bot posted earlier."""
    if not isinstance(message, dict) or not isinstance(message.get("blocks"), list):
        return None
    for block in message["blocks"]:
        fields = block.get("fields") if isinstance(block, dict) else None
        for field in fields if isinstance(fields, list) else []:
            text = field.get("text") if isinstance(field, dict) else None
            found = _ABORTED_BY.search(str(text or ""))
            if found:
                return found.group(1)
    return None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text
