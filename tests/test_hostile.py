"""Hostile and odd input through the real app: nothing odd reaches Northflank."""

from __future__ import annotations

import json
import re

import pytest

from bot.sandbox.harness import Harness
from tests.conftest import (
    CHANNEL,
    RESPONDER,
    TEMPLATE,
    channel_posts,
    ephemeral_for,
    summaries,
)

ALLOWED_PATH = re.compile(
    r"^/v1/templates/[a-z0-9-]{1,63}/runs"
    r"(?:/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:/abort)?)?$"
)
RUN = "3dd592f6-ce63-45ee-acf8-13dc5ec5235c"
HOSTILE_TEXTS = [
    f"status ../../v1/secrets {RUN}",
    f"status nightly-backup/../../x {RUN}",
    f"status nightly%2Fbackup {RUN}",
    f"status nightly-backup {RUN}%2F..%2F..",
    f"status nightly-backup {RUN}?per_page=1000",
    f"status nightly-backup {RUN}#x",
    f"abort nightly-backup {RUN}/abort",
    f"abort nightly-backup\t{RUN}\n--all",
    f"abort {'a' * 500} {RUN}",
    f"abort nightly-backup {RUN * 3}",
    "abort <!channel> <!here>",
    "abort <@U01RESPOND> <#C0INCIDENT|incident>",
    f"status <https://evil.example/templates/..%2F..%2Fv1/runs/{RUN}>",
    f"status <https://app.northflank.com/t/x/templates/a%2Fb/runs/{RUN}>",
    "runs \u202enightly-backup",
    "runs nightly-backup\u0000",
    "runs NIGHTLY\u00a0BACKUP",
    "status \u201cnightly-backup\u201d \u201c" + RUN.replace("-", "\u2014") + "\u201d",
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
async def test_hostile_text_gets_usage(bot: Harness, text: str) -> None:
    reply = await bot.slack.command(text, user=RESPONDER, channel=CHANNEL)
    await bot.settle()

    assert reply.status == 200
    assert reply.body is not None
    assert "Usage:" in json.dumps(reply.body)
    assert bot.northflank.requests == []


async def test_normalised_text_stays_on_allowed_paths(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    texts = [
        f"status Nightly-Backup {run_id.upper()}.",
        f"status \u2018nightly-backup\u2019 \u2018{run_id}\u2019",
        f"status nightly\u2011backup\u00a0{run_id}!",
        "runs `nightly-backup`",
        f"abort nightly-backup {run_id}",
    ]
    for text in texts:
        await bot.slack.command(text, user=RESPONDER, channel=CHANNEL)
        await bot.settle()

    assert bot.northflank.requests
    for request in bot.northflank.requests:
        assert ALLOWED_PATH.match(request.raw_path.split("?")[0]), request.raw_path
    answers = [m for m in bot.slack.messages if m.user == RESPONDER or not m.ephemeral]
    assert all("Usage:" not in m.all_text() for m in answers)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not json",
        "[]",
        json.dumps({"template_id": TEMPLATE}),
        json.dumps({"template_id": TEMPLATE, "run_id": RUN + "/../../x"}),
        json.dumps({"template_id": "../" + TEMPLATE, "run_id": RUN}),
        json.dumps({"template_id": TEMPLATE, "run_id": 7}),
        json.dumps({"template_id": TEMPLATE, "run_id": RUN, "pad": "x" * 3000}),
    ],
)
async def test_edited_button_values_rejected(bot: Harness, value: str) -> None:
    bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()
    [listing] = channel_posts(bot.slack)
    requests_before = len(bot.northflank.requests)

    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run", value=value)
    await bot.settle()

    assert len(bot.northflank.requests) == requests_before
    [answer] = ephemeral_for(bot.slack, RESPONDER)
    assert "does not name a valid template and run" in answer.all_text()


async def test_click_on_stale_card_gets_current_state(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()
    [listing] = channel_posts(bot.slack)
    stale_payload = bot.slack.click_payload(
        listing, user=RESPONDER, action_id="abort_run"
    )
    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()
    assert listing.edits == 1

    from urllib.parse import urlencode

    await bot.slack.send(urlencode({"payload": json.dumps(stale_payload)}).encode())
    await bot.settle()

    assert bot.northflank.aborts() == 1
    assert len(summaries(bot.slack)) == 1
    answers = [m.all_text() for m in ephemeral_for(bot.slack, RESPONDER)]
    assert any(
        "already aborting" in text or "already aborted" in text for text in answers
    ), answers
    assert run_id in " ".join(answers)


async def test_slack_markup_in_command_is_not_echoed(bot: Harness) -> None:
    reply = await bot.slack.command(
        "<!channel> please", user=RESPONDER, channel=CHANNEL
    )

    assert reply.body is not None
    raw = json.dumps(reply.body)
    assert "<!channel>" not in raw
    assert "&lt;!channel&gt;" in raw
