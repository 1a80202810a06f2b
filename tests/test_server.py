"""The HTTP surface: signature checks, health, unknown paths."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

import httpx
import pytest

from bot.sandbox.harness import Harness
from tests.conftest import CHANNEL, RESPONDER


def help_body() -> bytes:
    return urlencode(
        {
            "command": "/nf",
            "text": "help",
            "user_id": RESPONDER,
            "channel_id": CHANNEL,
            "team_id": "T0SANDBOX",
            "response_url": "http://127.0.0.1:1/none",
        }
    ).encode()


async def test_signed_request_is_accepted(bot: Harness) -> None:
    reply = await bot.slack.send(help_body())

    assert reply.status == 200


async def test_bad_signature_is_rejected(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await bot.slack.send(help_body(), secret="not-the-secret")

    assert reply.status == 401
    assert "reason=bad signature" in caplog.text
    assert "help" not in caplog.text.split("reason=bad signature")[1].splitlines()[0]


async def test_old_timestamp_is_rejected(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await bot.slack.send(help_body(), timestamp=int(time.time()) - 301)

    assert reply.status == 401
    assert "outside the 5 minute window" in caplog.text
    assert "check the clock" in caplog.text


async def test_body_changed_after_signing_is_rejected(bot: Harness) -> None:
    from bot.signing import signed_headers

    headers = signed_headers(bot.slack.signing_secret, help_body())
    async with httpx.AsyncClient() as client:
        response = await client.post(
            bot.slack.bot_url or "",
            content=help_body() + b"&text=runs",
            headers=headers,
        )

    assert response.status_code == 401


async def test_missing_signature_is_rejected(bot: Harness) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(bot.slack.bot_url or "", content=help_body())

    assert response.status_code == 401


async def test_healthz_reports_redis_up(bot: Harness) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(bot.url + "/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["redis"] == "up"
    assert body["mode"] == "http"


@pytest.mark.parametrize("path", ["/", "/slack/other", "/healthz/x"])
async def test_unknown_path_is_404(bot: Harness, path: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(bot.url + path)

    assert response.status_code == 404


async def test_get_on_events_path_is_405(bot: Harness) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(bot.url + "/slack/events")

    assert response.status_code == 405


async def test_oversized_body_is_rejected(bot: Harness) -> None:
    reply = await bot.slack.send(b"text=" + b"a" * (1024 * 1024 + 10))

    assert reply.status == 413


async def test_signing_matches_slack_published_example() -> None:
    from bot.signing import sign

    # The example from Slack's "Verifying requests from Slack" page.
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        "commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
        "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    signature = sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body.encode())

    assert (
        signature
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_log_silences_client_libraries() -> None:
    from bot.logs import quiet_client_loggers

    quiet_client_loggers()

    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("slack_sdk").getEffectiveLevel() >= logging.WARNING


async def test_non_ascii_signature_is_rejected(bot: Harness) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            bot.slack.bot_url or "",
            content=help_body(),
            headers={
                "X-Slack-Request-Timestamp": str(int(time.time())),
                "X-Slack-Signature": "v0=\u00e9\u00e9".encode(),
            },
        )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"payload={not-json", "application/x-www-form-urlencoded"),
        (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
        (b"[1,2,3]", "application/json"),
        (b'"just a string"', "application/json"),
    ],
)
async def test_unreadable_signed_body_is_400(
    bot: Harness, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    reply = await bot.slack.send(body, headers={"Content-Type": content_type})

    assert reply.status == 400
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "changes",
    [
        {"actions": []},
        {"actions": ["x"]},
        {"user": "U01RESPOND"},
        {"container": "x"},
        {"message": {"blocks": "x"}},
        {"channel": None},
    ],
)
async def test_malformed_click_payload_is_handled(
    bot: Harness, caplog: pytest.LogCaptureFixture, changes: dict[str, object]
) -> None:
    import json
    from urllib.parse import urlencode

    run_id = bot.northflank.add_run("nightly-backup", status="running")
    await bot.slack.command(
        f"abort nightly-backup {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await bot.settle()
    [card] = [m for m in bot.slack.messages if m.user == RESPONDER]
    payload = bot.slack.click_payload(card, user=RESPONDER, action_id="abort_run")
    payload.update(changes)

    reply = await bot.slack.send(urlencode({"payload": json.dumps(payload)}).encode())
    await bot.settle()

    assert reply.status in (200, 400)
    assert "Traceback" not in caplog.text
    assert "internal error" not in " ".join(m.all_text() for m in bot.slack.messages)
