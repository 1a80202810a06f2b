"""Block Kit rendering: escaping, Slack's limits, truncation at graphemes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import render
from bot.models import TemplateRun
from bot.mrkdwn import ELLIPSIS, escape, escape_truncated, slack_date, truncate

RUN = "3dd592f6-ce63-45ee-acf8-13dc5ec5235c"


def make_run(**overrides: Any) -> TemplateRun:
    data: dict[str, Any] = {
        "id": RUN,
        "templateId": "nightly-backup",
        "name": "Nightly Backup",
        "status": "aborting",
        "concluded": False,
        "createdAt": "2021-01-01 12:00:00.000Z",
        "updatedAt": "2021-01-01 12:05:00.000Z",
    }
    data.update(overrides)
    return TemplateRun.model_validate(data)


def check_limits(message: render.Message) -> None:
    """Fail when a message breaks one of Slack's Block Kit limits."""
    payload = message.payload()
    assert payload["text"]
    assert len(payload["text"]) <= render.MAX_FALLBACK_TEXT
    blocks = payload["blocks"]
    assert len(blocks) <= render.MAX_BLOCKS
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= render.MAX_HEADER_TEXT
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= render.MAX_SECTION_TEXT
            assert len(block.get("fields", [])) <= 10
            for field in block.get("fields", []):
                assert len(field["text"]) <= render.MAX_FIELD_TEXT
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= render.MAX_BUTTON_TEXT
                assert len(element.get("value", "")) <= 2000
                if "confirm" in element:
                    assert (
                        len(element["confirm"]["title"]["text"])
                        <= render.MAX_CONFIRM_TITLE
                    )
                    assert (
                        len(element["confirm"]["text"]["text"])
                        <= render.MAX_CONFIRM_TEXT
                    )
    json.dumps(payload)


def test_escape_metacharacters() -> None:
    assert (
        escape("<!channel> & <@U1> > x") == "&lt;!channel&gt; &amp; &lt;@U1&gt; &gt; x"
    )


def test_truncate_keeps_emoji_sequences() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    text = "ab" + family * 3

    cut = truncate(text, 6)

    assert cut.endswith(ELLIPSIS)
    assert len(cut) <= 6
    kept = cut[:-1]
    assert kept in ("ab", "ab" + family)


def test_truncate_keeps_combining_marks() -> None:
    text = "e\u0301" * 10

    cut = truncate(text, 4)

    assert cut == "e\u0301" + ELLIPSIS


def test_truncate_flags_stay_whole() -> None:
    flags = "\U0001f1e9\U0001f1ea" * 4

    cut = truncate(flags, 4)

    assert cut == "\U0001f1e9\U0001f1ea" + ELLIPSIS


def test_escape_truncated_never_splits_entity() -> None:
    cut = escape_truncated("&" * 10, 8)

    assert cut == "&amp;" + ELLIPSIS


def test_slack_date_has_fallback() -> None:
    moment = datetime(2021, 1, 1, 12, tzinfo=UTC)

    assert slack_date(moment) == (
        "<!date^1609502400^{date_short_pretty} at {time_secs}|2021-01-01 12:00:00 UTC>"
    )
    assert slack_date(None) == "not reported"


def test_summary_has_required_parts() -> None:
    message = render.run_card(
        make_run(),
        kind="summary",
        aborted_by="U01RESPOND",
        run_url="https://app.northflank.com/x",
    )

    text = json.dumps(message.payload())
    check_limits(message)
    assert "Template run aborting" in text
    assert "Nightly Backup" in text
    assert "nightly-backup" in text
    assert RUN in text
    assert ":octagonal_sign: aborting" in text
    assert "<@U01RESPOND>" in text
    assert text.count("<!date^") == 2
    assert "refresh_run" in text
    assert "Open in Northflank" in text


def test_run_list_caps_blocks() -> None:
    runs = [make_run(id=f"{i:08d}-ce63-45ee-acf8-13dc5ec5235c") for i in range(120)]

    message = render.run_list_message("nightly-backup", runs, has_more=True)

    check_limits(message)
    assert "more not shown" in json.dumps(message.payload())


@pytest.mark.parametrize("status", ["running", "aborted", "teleporting", "unknown"])
def test_status_card_within_limits(status: str) -> None:
    check_limits(render.run_card(make_run(status=status), kind="status"))


run_objects = st.fixed_dictionaries(
    {"id": st.just(RUN), "templateId": st.just("nightly-backup")},
    optional={
        "name": st.text(max_size=400),
        "description": st.text(max_size=3000),
        "status": st.one_of(
            st.text(max_size=80), st.sampled_from(sorted(render.STATUS_EMOJI))
        ),
        "concluded": st.booleans(),
        "createdAt": st.one_of(st.text(max_size=40), st.integers(0, 4_000_000_000)),
        "updatedAt": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        "extraField": st.text(max_size=20),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    run_objects, st.sampled_from(["summary", "status", "confirm"]), st.text(max_size=50)
)
def test_any_run_renders_within_limits(
    data: dict[str, Any], kind: str, note: str
) -> None:
    run = TemplateRun.model_validate(data)

    message = render.run_card(
        run,
        kind=kind,
        aborted_by="U01RESPOND",
        note=escape(note),
        with_abort=True,
    )

    check_limits(message)
    raw = json.dumps(message.payload(), ensure_ascii=False)
    # The only markup the bot itself writes: the mention and the date tokens.
    markup_free = re.sub(r"<@U01RESPOND>|<!date\^\d+\^[^|<>]*\|[^<>]*>", "", raw)
    assert "<" not in markup_free
    assert ">" not in markup_free


@settings(max_examples=60, deadline=None)
@given(st.lists(run_objects, max_size=80))
def test_any_run_list_within_limits(items: list[dict[str, Any]]) -> None:
    runs = [TemplateRun.model_validate(item) for item in items]

    check_limits(render.run_list_message("nightly-backup", runs, has_more=False))


@given(st.text(max_size=200), st.integers(min_value=1, max_value=120))
def test_truncate_is_bounded(text: str, limit: int) -> None:
    cut = truncate(text, limit)

    assert len(cut) <= max(limit, len(ELLIPSIS))
    if len(text) <= limit:
        assert cut == text
    else:
        assert cut.endswith(ELLIPSIS)
        assert text.startswith(cut[: -len(ELLIPSIS)])
