"""Button listeners: Abort, Refresh and the Northflank link."""

from __future__ import annotations

import functools
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import render
from bot.app import Services
from bot.errors import (
    NorthflankAPIError,
    NorthflankRateLimited,
    NorthflankServerError,
    PermissionDenied,
)
from bot.models import TemplateRun
from bot.mrkdwn import code, escape
from bot.permissions import ABORT, READ
from bot.render import ABORT_ACTION, CONCLUDED_WORDS, OPEN_ACTION, REFRESH_ACTION
from bot.runs import Aborted, AbortFailed, AlreadyAborting, AlreadyConcluded, RunView
from bot.slack import SlackRequest
from handlers.common import (
    decode_run_value,
    first_action_value,
    request_from_action,
    spawn_job,
)
from handlers.summary import (
    FOLLOWING_NOTE,
    UNFOLLOWED_NOTE,
    aborted_by_in,
    post_summary,
    summary_message,
    view_note,
)

logger = logging.getLogger(__name__)

INVALID_BUTTON = (
    ":warning: This button does not name a valid template and run. Type "
    "`{command} runs <templateId>` for a fresh list."
)


def register(app: AsyncApp, services: Services) -> None:
    @app.action(ABORT_ACTION)
    async def on_abort(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        _start(services, body, "abort", handle_abort)

    @app.action(REFRESH_ACTION)
    async def on_refresh(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        _start(services, body, "refresh", handle_refresh)

    @app.action(OPEN_ACTION)
    async def on_open(ack: AsyncAck) -> None:
        # A link button still sends an action; Slack opens the URL itself.
        await ack()


def _start(services: Services, body: dict[str, Any], name: str, handler: Any) -> None:
    request = request_from_action(body)
    if request is None:
        logger.warning("action.rejected name=%s: no valid user or channel", name)
        return
    ids = decode_run_value(first_action_value(body))

    async def job() -> None:
        if ids is None:
            logger.warning(
                "action.invalid_value name=%s user=%s channel=%s",
                name,
                request.user_id,
                request.channel_id,
            )
            text = INVALID_BUTTON.format(command=services.settings.command)
            await services.sender.reply(request, render.notice(text))
            return
        await handler(services, request, body, ids[0], ids[1])

    spawn_job(services, request, f"action:{name}", job)


async def handle_abort(
    services: Services,
    request: SlackRequest,
    body: dict[str, Any],
    template_id: str,
    run_id: str,
) -> None:
    audit = functools.partial(
        services.audit.record,
        user_id=request.user_id,
        channel_id=request.channel_id,
        template_id=template_id,
        run_id=run_id,
    )
    try:
        await services.access.require(
            ABORT,
            user_id=request.user_id,
            channel_id=request.channel_id,
            template_id=template_id,
        )
    except PermissionDenied:
        await audit("denied", detail="abort button")
        raise
    await audit("requested")
    outcome = await services.runs.abort(template_id, run_id, user_id=request.user_id)
    await _audit_outcome(audit, outcome)

    if isinstance(outcome, AlreadyAborting):
        holder = f"<@{outcome.holder.user_id}>" if outcome.holder else "another user"
        await services.sender.reply(
            request,
            render.notice(
                f"Run {code(run_id)} is already aborting, started by {holder}."
            ),
        )
        return

    if isinstance(outcome, AlreadyConcluded):
        await _show_concluded(services, request, outcome.run)
        return

    if isinstance(outcome, AbortFailed):
        await _report_failure(services, request, template_id, run_id, outcome)
        return

    assert isinstance(outcome, Aborted)
    run = outcome.run
    note = None if run.is_concluded else FOLLOWING_NOTE
    summary = summary_message(services, run, aborted_by=request.user_id, note=note)
    unfollowed = summary_message(
        services,
        run,
        aborted_by=request.user_id,
        note=None if run.is_concluded else UNFOLLOWED_NOTE,
    )
    ts = await post_summary(services, request, summary, fallback=unfollowed)
    if not run.is_concluded and ts is not None:
        await services.follower.follow(
            template_id,
            run_id,
            channel_id=request.channel_id,
            message_ts=ts,
            aborted_by=request.user_id,
        )
    await _rewrite_card(services, request, body, run)


async def _audit_outcome(audit: Any, outcome: Any) -> None:
    if isinstance(outcome, Aborted):
        await audit("aborted", detail=f"status {outcome.run.status}")
    elif isinstance(outcome, AbortFailed):
        error = outcome.error
        error_id = error.error_id if isinstance(error, NorthflankAPIError) else None
        reached = "may have reached" if outcome.may_have_reached else "did not reach"
        await audit(
            "failed", error_id=error_id, detail=f"{type(error).__name__}, {reached}"
        )
    elif isinstance(outcome, AlreadyAborting):
        holder = outcome.holder.user_id if outcome.holder else "unknown"
        await audit("skipped", detail=f"already aborting, started by {holder}")
    elif isinstance(outcome, AlreadyConcluded):
        await audit("skipped", detail=f"already {outcome.run.status}")


async def _show_concluded(
    services: Services, request: SlackRequest, run: TemplateRun
) -> None:
    word = CONCLUDED_WORDS.get(run.status, f"already {run.status}")
    card = render.run_card(
        run,
        kind="status",
        note=f"This run {escape(word)}; no abort was sent.",
        run_url=services.run_url(run.template_id, run.id),
    )
    await services.sender.reply(request, card)


async def _report_failure(
    services: Services,
    request: SlackRequest,
    template_id: str,
    run_id: str,
    outcome: AbortFailed,
) -> None:
    error = outcome.error
    reason = escape(error.user_message())
    transient = not isinstance(error, NorthflankAPIError) or isinstance(
        error, NorthflankServerError | NorthflankRateLimited
    )
    if outcome.may_have_reached:
        headline = (
            f":warning: The abort of run {code(run_id)} may have reached Northflank, "
            f"but no answer came back. {reason} Press Refresh before trying again."
        )
    else:
        headline = (
            f":x: The abort of run {code(run_id)} did not reach Northflank, so the run "
            f"was not changed. {reason}"
        )
    await services.sender.reply(request, render.notice(headline))
    if not transient:
        return

    # The run's state is now uncertain: show it as unknown instead of guessing.
    last = outcome.last_known.run if outcome.last_known else None
    unknown = TemplateRun.model_validate(
        {
            "id": run_id,
            "templateId": template_id,
            "status": "unknown",
            "concluded": False,
            "name": last.name if last else None,
            "createdAt": last.created_at if last else None,
            "updatedAt": last.updated_at if last else None,
        }
    )
    note = (
        "The abort may have reached Northflank; press Refresh for the run's state."
        if outcome.may_have_reached
        else "The abort did not reach Northflank; press Refresh for the run's state."
    )
    summary = summary_message(services, unknown, aborted_by=request.user_id, note=note)
    await post_summary(services, request, summary)


async def _rewrite_card(
    services: Services, request: SlackRequest, body: dict[str, Any], run: TemplateRun
) -> None:
    """Replace the clicked card so its Abort button cannot be pressed again."""
    message = body.get("message")
    if not isinstance(message, dict):
        message = {}
    line = (
        f"{render.status_label(run.status)} Run {code(run.id, 80)}: abort sent by "
        f"<@{request.user_id}>"
    )
    if not request.is_ephemeral and isinstance(message.get("blocks"), list):
        blocks = render.run_list_without_button(message["blocks"], run.id, line)
        rewritten = render.RawMessage(
            text=str(message.get("text") or "Template runs"), raw_blocks=blocks
        )
        await services.sender.reply(
            request, rewritten, replace_original=True, in_channel=True
        )
        return
    card = render.run_card(
        run,
        kind="status",
        note="Abort sent; the run summary is in the channel.",
        run_url=services.run_url(run.template_id, run.id),
    )
    await services.sender.reply(request, card, replace_original=True)


async def handle_refresh(
    services: Services,
    request: SlackRequest,
    body: dict[str, Any],
    template_id: str,
    run_id: str,
) -> None:
    await services.access.require(
        READ,
        user_id=request.user_id,
        channel_id=request.channel_id,
        template_id=template_id,
    )
    view: RunView = await services.runs.get_run(template_id, run_id)
    aborted_by = aborted_by_in(body.get("message"))
    if aborted_by and not request.is_ephemeral:
        note = view_note(view)
        if not view.run.is_concluded and view.run.status == "aborting":
            note = note or FOLLOWING_NOTE
        message = summary_message(services, view.run, aborted_by=aborted_by, note=note)
        await services.sender.reply(
            request, message, replace_original=True, in_channel=True
        )
        return
    card = render.run_card(
        view.run,
        kind="status",
        note=view_note(view),
        run_url=services.run_url(template_id, run_id),
    )
    await services.sender.reply(request, card, replace_original=True)
