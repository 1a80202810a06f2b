"""The Northflank client: routes, encoding, error envelope, retries, deadline."""

from __future__ import annotations

import time

import httpx
import pytest

from bot.errors import (
    InvalidRunData,
    NorthflankAPIError,
    NorthflankConflict,
    NorthflankForbidden,
    NorthflankNotFound,
    NorthflankRateLimited,
    NorthflankServerError,
    NorthflankUnauthorized,
    NorthflankUnavailable,
)
from bot.northflank import NorthflankClient, RateLimit
from bot.sandbox.northflank import NorthflankSandbox

RUN = "3dd592f6-ce63-45ee-acf8-13dc5ec5235c"
RUN_BODY = {
    "data": {"id": RUN, "templateId": "t1", "status": "aborting", "concluded": False}
}


def client_for(handler: object, **kwargs: object) -> NorthflankClient:
    return NorthflankClient(
        base_url="http://127.0.0.1:9",
        token="tok",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


async def test_abort_route_and_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RUN_BODY)

    client = client_for(handler)
    run = await client.abort_run("t1", RUN)

    assert run.status == "aborting"
    [request] = seen
    assert request.method == "POST"
    assert request.url.raw_path == f"/v1/templates/t1/runs/{RUN}/abort".encode()
    assert request.headers["authorization"] == "Bearer tok"
    assert request.content == b""


async def test_team_route() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=RUN_BODY)

    await client_for(handler, team_id="acme").get_run("t1", RUN)

    assert seen == [f"/v1/teams/acme/templates/t1/runs/{RUN}"]


@pytest.mark.parametrize(
    ("template_id", "run_id"),
    [
        ("../x", RUN),
        ("t1", "../../v1/secrets"),
        ("t1/..", RUN),
        ("t1", RUN + "?a=b"),
        ("t1", RUN + "#x"),
        ("t 1", RUN),
        ("t1", "%2F"),
        ("a" * 64, RUN),
    ],
)
async def test_bad_ids_never_sent(template_id: str, run_id: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=RUN_BODY)

    with pytest.raises(ValueError):
        await client_for(handler).abort_run(template_id, run_id)
    assert sent == []


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, NorthflankUnauthorized),
        (403, NorthflankForbidden),
        (404, NorthflankNotFound),
        (409, NorthflankConflict),
        (500, NorthflankServerError),
        (418, NorthflankAPIError),
    ],
)
async def test_error_envelope_is_typed(
    status: int, error_type: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={"error": {"status": status, "message": "nope <b>", "id": "e-1"}},
        )

    with pytest.raises(error_type) as caught:
        await client_for(handler, max_attempts=1).get_run("t1", RUN)
    assert isinstance(caught.value, NorthflankAPIError)
    assert caught.value.status == status
    assert caught.value.message == "nope <b>"
    assert caught.value.error_id == "e-1"
    assert caught.value.user_message()


async def test_non_json_error_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>gateway</html>")

    with pytest.raises(NorthflankNotFound) as caught:
        await client_for(handler).get_run("t1", RUN)
    assert caught.value.message is None


async def test_invalid_success_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"status": "running"}})

    with pytest.raises(InvalidRunData):
        await client_for(handler).get_run("t1", RUN)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_transient_status_is_retried(status: int) -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            return httpx.Response(status, headers={"retry-after": "0"})
        return httpx.Response(200, json=RUN_BODY)

    run = await client_for(handler).abort_run("t1", RUN)

    assert run.status == "aborting"
    assert attempts == 3


async def test_connect_error_is_retried() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=RUN_BODY)

    await client_for(handler).get_run("t1", RUN)

    assert attempts == 2


async def test_retry_after_beyond_deadline_gives_up() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(429, headers={"x-ratelimit-reset": "120"})

    started = time.monotonic()
    with pytest.raises(NorthflankRateLimited) as caught:
        await client_for(handler, deadline=2.0).abort_run("t1", RUN)

    assert attempts == 1
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 120
    assert "2 minutes" in caught.value.user_message()


async def test_retry_after_within_deadline_is_honoured() -> None:
    stamps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            return httpx.Response(429, headers={"retry-after": "1"})
        return httpx.Response(200, json=RUN_BODY)

    await client_for(handler, deadline=5.0).abort_run("t1", RUN)

    assert len(stamps) == 2
    assert stamps[1] - stamps[0] >= 1.0


async def test_deadline_bounds_slow_api() -> None:
    sandbox = NorthflankSandbox(token="tok")
    sandbox.add_template("t1", "Template One")
    run_id = sandbox.add_run("t1")
    sandbox.inject("GET", "/runs/", delay=5.0, times=10, status=200)
    await sandbox.start()
    client = NorthflankClient(
        base_url=sandbox.url,
        token="tok",
        deadline=2.0,
        timeout=httpx.Timeout(0.5),
    )
    started = time.monotonic()
    try:
        with pytest.raises(NorthflankUnavailable) as caught:
            await client.get_run("t1", run_id)
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
        await sandbox.stop()

    assert elapsed < 3.0
    assert caught.value.timed_out
    assert not caught.value.before_send


async def test_connection_refused_did_not_send() -> None:
    client = NorthflankClient(base_url="http://127.0.0.1:1", token="tok", deadline=1.0)
    try:
        with pytest.raises(NorthflankUnavailable) as caught:
            await client.abort_run("t1", RUN)
    finally:
        await client.aclose()

    assert caught.value.before_send


async def test_rate_limit_headers_are_reported() -> None:
    reported: list[RateLimit] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {
            "x-ratelimit-limit": "1000",
            "x-ratelimit-remaining": "42",
            "x-ratelimit-reset": "600",
        }
        return httpx.Response(200, json=RUN_BODY, headers=headers)

    async def record(rate_limit: RateLimit) -> None:
        reported.append(rate_limit)

    await client_for(handler, on_rate_limit=record).get_run("t1", RUN)

    assert reported == [RateLimit(limit=1000, remaining=42, reset_seconds=600.0)]
