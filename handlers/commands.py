"""The slash command listener (`/nf` by default)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import render
from bot.app import Services
from bot.commands import HELP_LINES, Command, UsageProblem, parse_command
from bot.errors import PermissionDenied
from bot.mrkdwn import code, escape
from bot.permissions import ABORT, READ
from bot.render import CONCLUDED_WORDS
from bot.slack import SlackRequest
from handlers.common import request_from_command, spawn_job
from handlers.summary import view_note

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    command_name = services.settings.command

    @app.command(command_name)
    async def on_command(ack: AsyncAck, body: dict[str, Any]) -> None:
        await handle_command(services, ack, body)


async def handle_command(
    services: Services, ack: AsyncAck, body: dict[str, Any]
) -> None:
    command_name = services.settings.command
    parsed = parse_command(str(body.get("text") or ""))
    request = request_from_command(body)

    counter = services.metrics.requests
    if isinstance(parsed, UsageProblem):
        message = render.usage_error(parsed.problem, f"{command_name} {parsed.usage}")
        await _ack_with(ack, message)
        counter.labels(kind="command", name="invalid", outcome="usage").inc()
        return
    if parsed.name == "help":
        help_payload = _help_payload(command_name)
        await ack(
            text=help_payload["text"],
            blocks=help_payload["blocks"],
            response_type="ephemeral",
        )
        counter.labels(kind="command", name="help", outcome="ok").inc()
        return
    if request is None:
        await _ack_with(
            ack, render.notice(":warning: This command needs a user and a channel.")
        )
        return

    await ack()
    logger.info(
        "command.received name=%s user=%s channel=%s template=%s run=%s",
        parsed.name,
        request.user_id,
        request.channel_id,
        parsed.template_id,
        parsed.run_id,
    )

    async def job() -> None:
        await run_command(services, request, parsed)

    spawn_job(services, request, f"command:{parsed.name}", job)


async def run_command(
    services: Services, request: SlackRequest, command: Command
) -> None:
    if command.name == "whoami":
        roles, groups = await services.access.roles_of(request.user_id)
        await services.sender.reply(
            request, render.whoami_message(request.user_id, roles, groups)
        )
        return

    if command.name == "audit":
        await show_audit(services, request, command.template_id)
        return

    assert command.template_id is not None
    if command.name == "runs":
        await services.access.require(
            READ,
            user_id=request.user_id,
            channel_id=request.channel_id,
            template_id=command.template_id,
        )
        runs = await services.runs.list_active_runs(command.template_id)
        message = render.run_list_message(
            command.template_id, runs.runs, has_more=runs.has_next_page
        )
        await services.sender.reply(request, message, in_channel=True)
        return

    assert command.run_id is not None
    grant = ABORT if command.name == "abort" else READ
    try:
        await services.access.require(
            grant,
            user_id=request.user_id,
            channel_id=request.channel_id,
            template_id=command.template_id,
        )
    except PermissionDenied:
        if command.name == "abort":
            await services.audit.record(
                "denied",
                user_id=request.user_id,
                channel_id=request.channel_id,
                template_id=command.template_id,
                run_id=command.run_id,
                detail="abort command",
            )
        raise
    view = await services.runs.get_run(command.template_id, command.run_id)
    run_url = services.run_url(command.template_id, command.run_id)

    if command.name == "status":
        card = render.run_card(
            view.run, kind="status", note=view_note(view), run_url=run_url
        )
        await services.sender.reply(request, card)
        return

    if view.run.is_concluded:
        word = CONCLUDED_WORDS.get(view.run.status, f"already {view.run.status}")
        message = render.notice(
            f"Run {code(view.run.id)} of {code(view.run.template_id)} {word}; "
            "there is nothing to abort."
        )
        await services.sender.reply(request, message)
        return
    card = render.run_card(
        view.run, kind="confirm", note=view_note(view), run_url=run_url, with_abort=True
    )
    await services.sender.reply(request, card)


AUDIT_ENTRIES_SHOWN = 20


async def show_audit(
    services: Services, request: SlackRequest, template_id: str | None
) -> None:
    """Show the newest abort attempts on templates the user may read here."""
    if template_id is not None:
        await services.access.require(
            READ,
            user_id=request.user_id,
            channel_id=request.channel_id,
            template_id=template_id,
        )
        entries = await services.audit.recent(
            count=AUDIT_ENTRIES_SHOWN, template_ids={template_id}
        )
    else:
        groups = await services.access.usergroups_of(request.user_id)
        if not services.permissions.roles_of(request.user_id, groups):
            message = render.notice(
                f":x: You have no roles in the bot's permission file, so you need "
                f"`{escape(READ)}` on a template to read its audit trail. Ask an "
                "admin to map your user id or a user group."
            )
            await services.sender.reply(request, message)
            return

        def readable(entry_template: str) -> bool:
            return services.permissions.allows(
                READ,
                user_id=request.user_id,
                template_id=entry_template,
                channel_id=request.channel_id,
                usergroup_ids=groups,
            )

        entries = await services.audit.recent(
            count=AUDIT_ENTRIES_SHOWN, allowed=readable
        )
    await services.sender.reply(request, render.audit_message(entries, template_id))


@functools.cache
def _help_payload(command_name: str) -> dict[str, Any]:
    # The help never changes while the process runs, so it is rendered once.
    return render.help_message(command_name, HELP_LINES).payload()


async def _ack_with(ack: AsyncAck, message: render.Message) -> None:
    payload = message.payload()
    await ack(text=payload["text"], blocks=payload["blocks"], response_type="ephemeral")
