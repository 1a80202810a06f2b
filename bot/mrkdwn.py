"""Text helpers for Slack mrkdwn: escaping, safe truncation, dates."""

from __future__ import annotations

from datetime import UTC, datetime

import regex

ELLIPSIS = "…"
_GRAPHEME = regex.compile(r"\X")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Escape the three characters Slack treats as markup in mrkdwn and plain text.

    With `<`, `>` and `&` escaped, API or user text cannot form a link, a user
    mention or a special mention such as `<!channel>`.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, *, marker: str = ELLIPSIS) -> str:
    """Cut text to at most `limit` characters at a grapheme boundary, plus a marker."""
    if len(text) <= limit:
        return text
    budget = max(0, limit - len(marker))
    kept = 0
    for match in _GRAPHEME.finditer(text):
        if match.end() > budget:
            break
        kept = match.end()
    return text[:kept] + marker


def escape_truncated(text: str, limit: int, *, marker: str = ELLIPSIS) -> str:
    """Escape text, then fit it into `limit` characters without splitting an entity."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    budget = max(0, limit - len(marker))
    parts: list[str] = []
    used = 0
    for match in _GRAPHEME.finditer(text):
        piece = escape(match.group())
        if used + len(piece) > budget:
            break
        parts.append(piece)
        used += len(piece)
    return "".join(parts) + marker


def code(text: str, limit: int = 200) -> str:
    """Show text as inline code; backticks are replaced so the span cannot break."""
    return "`" + escape_truncated(text.replace("`", "'"), limit) + "`"


def slack_date(moment: datetime | None, *, missing: str = "not reported") -> str:
    """Format a time with Slack's date token, with UTC fallback text for old clients."""
    if moment is None:
        return missing
    moment = moment.astimezone(UTC)
    fallback = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    epoch = int(moment.timestamp())
    if epoch < 0:
        # Slack's date token takes seconds since 1970; older times show as text.
        return fallback
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time_secs}}|{fallback}>"
