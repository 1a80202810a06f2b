"""Helpers shared by the listeners: request fields, safe background jobs."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot import ids, render
from bot.app import Services
from bot.errors import BotError, PermissionDenied
from bot.logs import describe_exception
from bot.mrkdwn import escape
from bot.slack import SlackRequest

logger = logging.getLogger(__name__)

INTERNAL_ERROR = (
    ":x: The bot hit an internal error and did not finish. Nothing else was "
    "changed by this request; the error is in the bot's log."
)


def request_from_command(body: dict[str, Any]) -> SlackRequest | None:
    user_id = str(body.get("user_id") or "")
    channel_id = str(body.get("channel_id") or "")
    if not ids.is_slack_user_id(user_id) or not ids.is_slack_channel_id(channel_id):
        return None
    return SlackRequest(
        user_id=user_id,
        channel_id=channel_id,
        team_id=body.get("team_id"),
        response_url=_string_or_none(body.get("response_url")),
    )


def request_from_action(body: dict[str, Any]) -> SlackRequest | None:
    user_id = str(_field(body, "user", "id"))
    channel_id = str(_field(body, "channel", "id"))
    container = body.get("container")
    if not isinstance(container, dict):
        container = {}
    if not ids.is_slack_user_id(user_id) or not ids.is_slack_channel_id(channel_id):
        return None
    return SlackRequest(
        user_id=user_id,
        channel_id=channel_id,
        team_id=_field(body, "team", "id") or None,
        response_url=_string_or_none(body.get("response_url")),
        message_ts=_string_or_none(container.get("message_ts")),
        is_ephemeral=bool(container.get("is_ephemeral", False)),
    )


def first_action_value(body: dict[str, Any]) -> Any:
    """Return the `value` of the pressed button, or None in a malformed payload."""
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return None
    return actions[0].get("value")


def _field(body: dict[str, Any], name: str, key: str) -> Any:
    value = body.get(name)
    return value.get(key) or "" if isinstance(value, dict) else ""


def _string_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def decode_run_value(value: Any) -> tuple[str, str] | None:
    """Read the template and run ids from a button value; None when invalid."""
    if not isinstance(value, str) or len(value) > 500:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    template_id = data.get("template_id")
    run_id = data.get("run_id")
    if not isinstance(template_id, str) or not isinstance(run_id, str):
        return None
    if not ids.is_template_id(template_id) or not ids.is_run_id(run_id):
        return None
    return template_id, run_id


def error_message(error: BotError) -> render.Message:
    return render.notice(":x: " + escape(error.user_message()))


def spawn_job(
    services: Services,
    request: SlackRequest,
    name: str,
    job: Callable[[], Awaitable[None]],
) -> None:
    """Run a listener's slow work after the ack; any failure is reported to the user."""

    kind, _, short_name = name.partition(":")
    counter = services.metrics.requests
    if not services.jobs.admit():
        logger.warning(
            "job.dropped name=%s user=%s channel=%s: too many jobs waiting",
            name,
            request.user_id,
            request.channel_id,
        )
        counter.labels(kind=kind, name=short_name, outcome="dropped").inc()
        return

    async def guarded() -> None:
        outcome = "ok"
        try:
            async with services.jobs:
                await job()
        except PermissionDenied as error:
            outcome = "denied"
            await services.sender.reply(request, error_message(error))
        except BotError as error:
            outcome = "error"
            logger.warning(
                "job.failed name=%s user=%s channel=%s error=%s",
                name,
                request.user_id,
                request.channel_id,
                type(error).__name__,
            )
            await services.sender.reply(request, error_message(error))
        except Exception as error:
            outcome = "crashed"
            logger.error(
                "job.crashed name=%s user=%s channel=%s error=%s",
                name,
                request.user_id,
                request.channel_id,
                describe_exception(error),
            )
            await services.sender.reply(request, render.notice(INTERNAL_ERROR))
        finally:
            counter.labels(kind=kind, name=short_name, outcome=outcome).inc()

    services.tasks.spawn(guarded(), name=name)
