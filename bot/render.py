"""Block Kit messages, built with slack_sdk's block models.

Every text that comes from a user or from Northflank is escaped and cut to
Slack's limits here, so the models never reject a message at send time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.models import TemplateRun
from bot.mrkdwn import code, escape, escape_truncated, slack_date, truncate

# Slack's published Block Kit limits.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 3000
MAX_BUTTON_TEXT = 75
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
# Slack truncates a message's top-level text beyond 40,000 characters; a
# fallback line needs far less.
MAX_FALLBACK_TEXT = 3000

ABORT_ACTION = "abort_run"
REFRESH_ACTION = "refresh_run"
OPEN_ACTION = "open_run"

STATUS_EMOJI = {
    "pending": ":hourglass_flowing_sand:",
    "queued": ":hourglass:",
    "running": ":arrow_forward:",
    "aborting": ":octagonal_sign:",
    "aborted": ":no_entry_sign:",
    "success": ":white_check_mark:",
    "failure": ":x:",
    "skipped": ":fast_forward:",
    "waiting": ":double_vertical_bar:",
    "async_wait": ":double_vertical_bar:",
    "approval_wait": ":raised_hand:",
    "retrying": ":repeat:",
    "unknown": ":grey_question:",
}
CONCLUDED_WORDS = {
    "aborted": "already aborted",
    "success": "already succeeded",
    "failure": "already failed",
    "skipped": "already skipped",
}


@dataclass
class Message:
    """A Slack message: fallback text plus blocks, ready for the Web API."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    ephemeral: bool = True

    def blocks_json(self) -> list[dict[str, Any]]:
        return [block.to_dict() for block in self.blocks[:MAX_BLOCKS]]

    def payload(self) -> dict[str, Any]:
        return {
            "text": truncate(self.text, MAX_FALLBACK_TEXT),
            "blocks": self.blocks_json(),
        }


@dataclass
class RawMessage(Message):
    """A message whose blocks are already Block Kit dictionaries."""

    raw_blocks: list[dict[str, Any]] = field(default_factory=list)

    def blocks_json(self) -> list[dict[str, Any]]:
        return self.raw_blocks[:MAX_BLOCKS]


def status_label(status: str) -> str:
    emoji = STATUS_EMOJI.get(status, ":grey_question:")
    return f"{emoji} {escape_truncated(status, 60)}"


def encode_run_value(template_id: str, run_id: str) -> str:
    return json.dumps(
        {"template_id": template_id, "run_id": run_id}, separators=(",", ":")
    )


# -- plain notices ---------------------------------------------------------


def notice(text: str, *, ephemeral: bool = True) -> Message:
    """Wrap bot-written mrkdwn (already escaped where it quotes input) in a section."""
    body = truncate(text, MAX_SECTION_TEXT)
    return Message(
        text=_fallback(body),
        blocks=[SectionBlock(text=MarkdownTextObject(text=body))],
        ephemeral=ephemeral,
    )


def usage_error(problem: str, usage: str) -> Message:
    """Show what was wrong (bot-written mrkdwn) and the usage line to type instead."""
    return notice(f":warning: {problem}\nUsage: {code(usage, 300)}")


def help_message(command: str, lines: Sequence[tuple[str, str]]) -> Message:
    rows = "\n".join(
        f"{code(command + ' ' + syntax)}: {escape(meaning)}"
        for syntax, meaning in lines
    )
    return notice(f"*Abort Northflank template runs from Slack*\n{rows}")


def whoami_message(
    user_id: str, roles: Sequence[Any], group_ids: Sequence[str]
) -> Message:
    if not roles:
        return notice(
            f"<@{user_id}> has no roles in the bot's permission file, so every "
            "request is denied. Ask an admin to map your user id or a user group."
        )
    lines = [f"*Roles of <@{user_id}>*"]
    for role in roles:
        grants = ", ".join(code(g) for g in sorted(role.grants)) or "none"
        templates = ", ".join(code(t, 80) for t in role.templates) or "none"
        channels = (
            ", ".join("any channel" if c == "*" else f"<#{c}>" for c in role.channels)
            or "none"
        )
        lines.append(
            f"• *{escape_truncated(role.name, 80)}*: grants {grants}; templates "
            f"{templates}; channels {channels}"
        )
    if group_ids:
        lines.append(
            "Through user groups: " + ", ".join(f"<!subteam^{g}>" for g in group_ids)
        )
    return notice("\n".join(lines))


# -- runs ------------------------------------------------------------------


def run_list_message(
    template_id: str, runs: Sequence[TemplateRun], *, has_more: bool
) -> Message:
    title = f"Active runs of {template_id}"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=truncate(title, MAX_HEADER_TEXT)))
    ]
    if not runs:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=f"No active runs of {code(template_id)}.")
            )
        )
        return Message(
            text=f"No active runs of {template_id}.", blocks=blocks, ephemeral=False
        )

    # Block ids must be unique, so a run the API lists twice is shown once.
    unique = list({run.id: run for run in runs}.values())
    # One header, one section per run, and one context line for the rest.
    room = MAX_BLOCKS - 2
    shown = unique[:room]
    for run in shown:
        blocks.append(
            SectionBlock(
                block_id=truncate(f"run:{run.id}", 255, marker=""),
                text=MarkdownTextObject(text=_run_line(run)),
                accessory=_abort_button(run),
            )
        )
    hidden = len(unique) - len(shown)
    if hidden or has_more:
        more = f"{hidden} more" if hidden else "More runs"
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"{more} not shown. Use `status` with a run id."
                    )
                ]
            )
        )
    noun = "run" if len(unique) == 1 else "runs"
    return Message(
        text=f"{len(unique)} active {noun} of {template_id}",
        blocks=blocks,
        ephemeral=False,
    )


def _run_line(run: TemplateRun) -> str:
    name = escape_truncated(run.name, 100) if run.name else code(run.template_id)
    return truncate(
        f"*{name}*  {status_label(run.status)}\nRun {code(run.id, 80)} · started "
        f"{slack_date(_utc(run.created_at))}",
        MAX_SECTION_TEXT,
    )


def _abort_button(run: TemplateRun) -> ButtonElement:
    # Slack reads `&`, `<` and `>` as markup in every text field, so escape here too.
    name = escape_truncated(run.name or run.template_id, 60)
    confirm_text = truncate(
        f"Abort run {escape(run.id)} of template {name} ({run.template_id})? "
        "Northflank stops it and this cannot be undone.",
        MAX_CONFIRM_TEXT,
    )
    return ButtonElement(
        text="Abort",
        action_id=ABORT_ACTION,
        value=encode_run_value(run.template_id, run.id),
        style="danger",
        confirm=ConfirmObject(
            title=truncate(f"Abort {name}?", MAX_CONFIRM_TITLE),
            text=PlainTextObject(text=confirm_text),
            confirm="Abort run",
            deny="Cancel",
            style="danger",
        ),
    )


def run_card(
    run: TemplateRun,
    *,
    kind: str,
    aborted_by: str | None = None,
    note: str | None = None,
    run_url: str | None = None,
    with_abort: bool = False,
    ephemeral: bool = True,
) -> Message:
    """Render one run: a status card, an abort confirmation or the run summary.

    `note` is bot-written mrkdwn and is not escaped again.
    """
    header = {
        "confirm": "Abort this template run?",
        "status": "Template run status",
    }.get(kind, f"Template run {escape_truncated(run.status, 60)}")
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=truncate(header, MAX_HEADER_TEXT)))
    ]

    name = escape_truncated(run.name, 120) if run.name else "name not reported"
    fields = [
        MarkdownTextObject(text=f"*Template*\n{name} ({code(run.template_id, 80)})"),
        MarkdownTextObject(text=f"*Run*\n{code(run.id, 80)}"),
        MarkdownTextObject(text=f"*Status*\n{status_label(run.status)}"),
        MarkdownTextObject(text=f"*Created*\n{slack_date(_utc(run.created_at))}"),
        MarkdownTextObject(text=f"*Updated*\n{slack_date(_utc(run.updated_at))}"),
    ]
    if aborted_by:
        fields.append(MarkdownTextObject(text=f"*Aborted by*\n<@{aborted_by}>"))
    blocks.append(SectionBlock(fields=fields))

    if run.description:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=escape_truncated(run.description, 1000))
            )
        )
    if not run.is_known_status:
        note = _join(
            note,
            "Northflank reported a status the bot does not know: "
            f"{code(run.status, 60)}.",
        )
    if note:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=truncate(note, MAX_CONTEXT_TEXT))]
            )
        )

    buttons: list[ButtonElement] = []
    value = encode_run_value(run.template_id, run.id)
    if with_abort and not run.is_concluded:
        button = _abort_button(run)
        button.text = PlainTextObject(text="Abort run")
        buttons.append(button)
    buttons.append(ButtonElement(text="Refresh", action_id=REFRESH_ACTION, value=value))
    if run_url:
        buttons.append(
            ButtonElement(text="Open in Northflank", action_id=OPEN_ACTION, url=run_url)
        )
    blocks.append(ActionsBlock(block_id="run_actions", elements=buttons))

    fallback = (
        f"{header}: {escape(run.name or run.template_id)} run {escape(run.id)} is "
        f"{escape(run.status)}"
    )
    if aborted_by:
        fallback += f", aborted by <@{aborted_by}>"
    return Message(text=fallback, blocks=blocks, ephemeral=ephemeral)


def run_list_without_button(
    blocks: list[dict[str, Any]], run_id: str, line: str
) -> list[dict[str, Any]]:
    """Rewrite a posted run list so the given run's section has no Abort button."""
    rewritten = []
    for block in blocks[:MAX_BLOCKS]:
        if not isinstance(block, dict):
            continue
        if block.get("block_id") == f"run:{run_id}":
            block = {
                "type": "section",
                "block_id": block["block_id"],
                "text": {"type": "mrkdwn", "text": truncate(line, MAX_SECTION_TEXT)},
            }
        rewritten.append(block)
    return rewritten


def _join(first: str | None, second: str) -> str:
    return f"{first}\n{second}" if first else second


def _fallback(mrkdwn_text: str) -> str:
    return truncate(mrkdwn_text, MAX_FALLBACK_TEXT)


def _utc(moment: Any) -> Any:
    return moment.astimezone(UTC) if moment is not None else None


_SLACK_USER_ID = re.compile(r"\b[UW][A-Z0-9]{2,20}\b")
AUDIT_EMOJI = {
    "requested": ":arrow_right:",
    "denied": ":no_entry:",
    "aborted": ":octagonal_sign:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
}


def audit_message(entries: Sequence[Any], template_id: str | None) -> Message:
    """List audit entries, newest first, one line each."""
    scope = code(template_id) if template_id else "templates you may read here"
    if not entries:
        return notice(f"No abort attempts recorded on {scope}.")
    lines = [f"*Last {len(entries)} abort attempts on {scope}*"]
    for entry in entries:
        moment = datetime.fromtimestamp(entry.at, tz=UTC)
        line = (
            f"{AUDIT_EMOJI.get(entry.outcome, '•')} {slack_date(moment)} "
            f"*{escape(entry.outcome)}* <@{entry.user_id}> in <#{entry.channel_id}>: "
            f"{code(entry.template_id, 80)} run {code(entry.run_id, 80)}"
        )
        if entry.detail:
            detail = escape_truncated(entry.detail, 120)
            line += " (" + _SLACK_USER_ID.sub(r"<@\g<0>>", detail) + ")"
        if entry.error_id:
            line += f", Northflank error id {code(entry.error_id, 100)}"
        lines.append(line)
    return notice("\n".join(lines))
