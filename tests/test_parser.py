"""The slash command parser: normalisation, validation, and that it never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import ids
from bot.commands import Command, UsageProblem, parse_command

RUN = "3dd592f6-ce63-45ee-acf8-13dc5ec5235c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", Command("help")),
        ("", Command("help")),
        ("  WHOAMI  ", Command("whoami")),
        ("runs nightly-backup", Command("runs", "nightly-backup")),
        ("Runs Nightly-Backup.", Command("runs", "nightly-backup")),
        (f"status nightly-backup {RUN}", Command("status", "nightly-backup", RUN)),
        (
            f"abort nightly-backup {RUN.upper()}",
            Command("abort", "nightly-backup", RUN),
        ),
        (
            f"abort\u00a0nightly-backup\u00a0{RUN}",
            Command("abort", "nightly-backup", RUN),
        ),
        (
            f"abort \u201cnightly-backup\u201d \u2018{RUN}\u2019",
            Command("abort", "nightly-backup", RUN),
        ),
        (f"abort nightly\u2013backup {RUN}", Command("abort", "nightly-backup", RUN)),
        (f"abort nightly-backup {RUN}.", Command("abort", "nightly-backup", RUN)),
        (f"abort nightly-backup {RUN}!?", Command("abort", "nightly-backup", RUN)),
        (f"abort `nightly-backup` `{RUN}`", Command("abort", "nightly-backup", RUN)),
        (
            f"status nightly-backup\u200b {RUN}",
            Command("status", "nightly-backup", RUN),
        ),
        (
            f"status <https://app.northflank.com/t/acme/templates/nightly-backup/runs/{RUN}>",
            Command("status", "nightly-backup", RUN),
        ),
        (
            f"abort <https://app.northflank.com/t/acme/templates/nightly-backup/runs/{RUN}|run>",
            Command("abort", "nightly-backup", RUN),
        ),
        (
            f"abort https://app.northflank.com/t/acme/templates/nightly-backup/runs/{RUN}",
            Command("abort", "nightly-backup", RUN),
        ),
        (
            "runs <http://nightly-backup|nightly-backup>",
            Command("runs", "nightly-backup"),
        ),
        ("audit", Command("audit")),
        ("audit nightly-backup", Command("audit", "nightly-backup")),
    ],
)
def test_parse_valid(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "frobnicate",
        "runs",
        "runs a b",
        "status nightly-backup",
        f"abort ../nightly {RUN}",
        f"abort nightly%2Fbackup {RUN}",
        f"abort nightly/backup {RUN}",
        f"abort nightly-backup {RUN}/../../x",
        f"abort nightly-backup {RUN}?x=1",
        f"abort nightly-backup {RUN}#frag",
        f"abort nightly-backup {RUN[:-1]}",
        f"abort nightly-backup {RUN}0",
        f"abort nightly--backup {RUN}",
        f"abort -nightly {RUN}",
        f"abort {'a' * 64} {RUN}",
        "abort nightly-backup <@U01RESPOND>",
        "abort <!channel> " + RUN,
        f"abort n\u0131ghtly-backup {RUN}",
        f"status <https://app.northflank.com/t/acme/templates/a%2F..%2Fb/runs/{RUN}>",
        f"status <https://app.northflank.com/t/acme/templates/ok/runs/{RUN}%3Fx>",
        "x" * 2000,
        "runs <@U01RESPOND|alice>",
        "runs <#C0INCIDENT|incident>",
        "runs <!subteam^S01ONCALL|oncall>",
        "runs <mailto:a@b.c|nightly-backup>",
        "runs <https://evil.example/x|nightly-backup>",
        "runs nightly-backup nightly-backup",
        "audit a b",
    ],
)
def test_parse_rejects(text: str) -> None:
    result = parse_command(text)

    assert isinstance(result, UsageProblem)
    assert result.usage


@given(st.text(max_size=300))
def test_parse_never_raises(text: str) -> None:
    result = parse_command(text)

    assert isinstance(result, Command | UsageProblem)
    if isinstance(result, Command):
        assert result.template_id is None or ids.is_template_id(result.template_id)
        assert result.run_id is None or ids.is_run_id(result.run_id)


@given(
    st.sampled_from(["status", "abort"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
)
def test_parsed_ids_are_always_valid(name: str, junk: str) -> None:
    result = parse_command(f"{name} {junk} {RUN}")

    if isinstance(result, Command):
        assert result.template_id is not None
        assert ids.is_template_id(result.template_id)
        assert result.run_id == RUN
