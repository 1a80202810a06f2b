"""Rendering of Slack messages as readable terminal text."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from bot.sandbox.slack import SlackMessage

_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_USER = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|[^>]*)?>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")


def plain(text: str, names: dict[str, str]) -> str:
    """Turn Slack mrkdwn into terminal text: names for ids, fallbacks for dates."""
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _USER.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + names.get(m.group(1), m.group(1)), text)
    text = _SUBTEAM.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _LINK.sub(lambda m: f"{m.group(2) or m.group(1)} ({m.group(1)})", text)
    text = text.replace("*", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def describe(
    message: SlackMessage,
    names: dict[str, str],
    *,
    buttons: list[tuple[SlackMessage, str, int]] | None = None,
) -> str:
    """Render a message; numbered buttons are appended to `buttons` when given."""
    where = "#" + names.get(message.channel, message.channel)
    audience = (
        f"only visible to @{names.get(message.user or '', message.user)}"
        if message.ephemeral
        else "visible to everyone"
    )
    lines = [f"┌─ {where}, {audience}"]
    per_action: dict[str, int] = {}
    for block in message.blocks:
        lines.extend(_block_lines(block, names))
        for element in _block_buttons(block):
            action_id = str(element.get("action_id"))
            index = per_action.get(action_id, 0)
            per_action[action_id] = index + 1
            label = plain(str((element.get("text") or {}).get("text", "")), names)
            if element.get("url"):
                lines.append(f"│   [link] {label}: {element['url']}")
                continue
            number = ""
            if buttons is not None:
                buttons.append((message, action_id, index))
                number = f"{len(buttons)}"
            else:
                number = "-"
            style = (
                " (danger, asks to confirm)" if element.get("style") == "danger" else ""
            )
            lines.append(f"│   [{number}] {label}{style}")
    if not message.blocks:
        lines.append("│ " + plain(message.text, names))
    lines.append("└─")
    return "\n".join(lines)


def _block_lines(block: dict[str, Any], names: dict[str, str]) -> list[str]:
    kind = block.get("type")
    out: list[str] = []
    if kind == "header":
        out.append("│ " + plain(block["text"]["text"], names).upper())
    elif kind == "section":
        if block.get("text"):
            out.extend(_wrapped(plain(block["text"]["text"], names)))
        for item in block.get("fields") or []:
            label, _, value = plain(item["text"], names).partition("\n")
            out.append(f"│ {label}: {value}")
    elif kind == "context":
        for element in block.get("elements") or []:
            if "text" in element:
                out.extend(_wrapped("(" + plain(element["text"], names) + ")"))
    return out


def _block_buttons(block: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    accessory = block.get("accessory")
    if accessory and accessory.get("type") == "button":
        found.append(accessory)
    found.extend(e for e in block.get("elements") or [] if e.get("type") == "button")
    return found


def _wrapped(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend("│ " + line for line in textwrap.wrap(paragraph, 96) or [""])
    return lines
