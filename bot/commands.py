"""Parsing of slash command text into a command, or a usage problem."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot import ids

HELP_LINES: tuple[tuple[str, str], ...] = (
    ("help", "show this help"),
    ("whoami", "show your roles, grants, templates and channels"),
    (
        "runs <templateId>",
        "post the active runs of a template, each with an Abort button",
    ),
    (
        "status <templateId> <runId>",
        "show a run's status to you, with a Refresh button",
    ),
    ("abort <templateId> <runId>", "show a run and a button that aborts it"),
    ("audit [templateId]", "show the last 20 abort attempts, for one template or all"),
)
USAGE = {
    "help": "help",
    "whoami": "whoami",
    "runs": "runs <templateId>",
    "status": "status <templateId> <runId>",
    "abort": "abort <templateId> <runId>",
    "audit": "audit [templateId]",
}
# Usage lines without the command name; the handler prefixes BOT_COMMAND.
GENERAL_USAGE = (
    "help | whoami | runs <templateId> | status <templateId> <runId> "
    "| abort <templateId> <runId> | audit [templateId]"
)

# Longer than any valid id plus a pasted URL; longer text is rejected unread.
MAX_TEXT_LENGTH = 1000

# Characters that autocorrect or copy-paste put where a user typed ASCII.
_TRANSLATE = str.maketrans(
    {
        "\u00a0": " ",  # no-break space
        "\u2007": " ",
        "\u202f": " ",
        "\u2009": " ",
        "\u200a": " ",
        "\u3000": " ",
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2212": "-",  # minus sign
        "\u200b": None,  # zero-width space
        "\u200c": None,
        "\u200d": None,
        "\u2060": None,
        "\ufeff": None,
    }
)
_QUOTES = "\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2039\u203a\u00ab\u00bb"
_TRAILING_PUNCTUATION = ".,;:!?)]}"
_SLACK_LINK = re.compile(r"^<([^<>|]*)(?:\|([^<>]*))?>$")
_RUN_PATH = re.compile(r"/templates/([^/]+)/runs/([^/]+)")


@dataclass(frozen=True)
class Command:
    name: str
    template_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class UsageProblem:
    """Text that is not a valid command: what was wrong and the usage to show."""

    problem: str
    usage: str


def parse_command(text: str) -> Command | UsageProblem:
    """Parse the text after the slash command (never raises, as tests check)."""
    if len(text) > MAX_TEXT_LENGTH:
        return UsageProblem("The command text is too long.", GENERAL_USAGE)
    words = _split(text)
    if not words:
        return Command("help")

    name = words[0].lower().rstrip(_TRAILING_PUNCTUATION)
    arguments = words[1:]
    if name not in USAGE:
        shown = _quote(words[0])
        return UsageProblem(f"Unknown subcommand {shown}.", GENERAL_USAGE)
    usage = USAGE[name]

    if name in ("help", "whoami"):
        if arguments:
            return UsageProblem(f"`{name}` takes no arguments.", usage)
        return Command(name)

    # A pasted run URL carries both ids.
    if len(arguments) == 1 and name in ("status", "abort"):
        from_url = _ids_from_url(arguments[0])
        if from_url is not None:
            arguments = list(from_url)

    if name == "audit":
        if not arguments:
            return Command(name)
        if len(arguments) > 1:
            return UsageProblem("`audit` takes at most a template id.", usage)

    expected = 1 if name in ("runs", "audit") else 2
    if len(arguments) != expected:
        wanted = "a template id" if expected == 1 else "a template id and a run id"
        if len(arguments) > expected:
            return UsageProblem(
                f"`{name}` takes only {wanted}, but got {len(arguments)} words.", usage
            )
        return UsageProblem(f"`{name}` needs {wanted}.", usage)

    template_id = _clean_id(arguments[0]).lower()
    if not ids.is_template_id(template_id):
        return UsageProblem(
            f"{_quote(arguments[0])} is not a template id: use lowercase letters, "
            "digits and single hyphens, such as `nightly-backup`.",
            usage,
        )
    if expected == 1:
        return Command(name, template_id=template_id)

    run_id = _clean_id(arguments[1]).lower()
    if not ids.is_run_id(run_id):
        return UsageProblem(
            f"{_quote(arguments[1])} is not a run id: use the run's UUID, such as "
            "`3dd592f6-ce63-45ee-acf8-13dc5ec5235c`.",
            usage,
        )
    return Command(name, template_id=template_id, run_id=run_id)


def _split(text: str) -> list[str]:
    normalised = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    words = []
    for word in normalised.split():
        word = word.strip(_QUOTES)
        if word:
            words.append(word)
    return words


def _clean_id(word: str) -> str:
    """Unwrap a Slack auto-link and strip quotes and trailing punctuation.

    Slack wraps text it turned into a link as `<http://text|text>`; only that
    form is unwrapped. Mentions (`<@U…>`, `<#C…>`, `<!…>`) and links whose
    label differs from their target are returned wrapped, so they fail the
    id checks instead of passing their label off as an id.
    """
    match = _SLACK_LINK.match(word)
    if match:
        target, label = match.group(1), match.group(2)
        bare = re.sub(r"^https?://", "", target).rstrip("/")
        if label is None or label != bare:
            return word
        word = label
    word = word.strip(_QUOTES)
    while word and word[-1] in _TRAILING_PUNCTUATION:
        word = word[:-1]
    return word.strip(_QUOTES)


def _ids_from_url(word: str) -> tuple[str, str] | None:
    """Take the template and run ids from a pasted Northflank run URL."""
    match = _SLACK_LINK.match(word)
    target = match.group(1) if match else word
    if not target.startswith(("http://", "https://")):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    # Match on the decoded path, then let the id checks reject anything odd.
    found = _RUN_PATH.search(parts.path)
    if found is None:
        return None
    return unquote(found.group(1)), unquote(found.group(2))


def _quote(word: str) -> str:
    shown = word if len(word) <= 60 else word[:57] + "..."
    shown = shown.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;")
    return "`" + shown.replace(">", "&gt;") + "`"
