"""Async client for the Northflank template-run endpoints."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from bot import ids
from bot.errors import (
    InvalidRunData,
    NorthflankAPIError,
    NorthflankRateLimited,
    NorthflankUnavailable,
    api_error_for,
)
from bot.logs import describe_exception
from bot.models import RunList, TemplateRun

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=6.0, write=6.0, pool=3.0)
MAX_CONNECTIONS = 50


@dataclass(frozen=True)
class RateLimit:
    """The rate-limit headers of one response."""

    limit: int | None
    remaining: int
    reset_seconds: float


RateLimitListener = Callable[[RateLimit], Awaitable[None]]
CallObserver = Callable[[str, str, float], None]


class NorthflankClient:
    """Talks to the Northflank API with one pooled httpx client per process.

    Connect errors, timeouts, 429, 502, 503 and 504 are retried with
    exponential back-off and full jitter until `deadline` seconds have passed
    since the call began, so every call ends in bounded time.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        team_id: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        deadline: float = 10.0,
        max_attempts: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        on_rate_limit: RateLimitListener | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "northflank-slack-bot",
            },
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=20
            ),
        )
        # Requests wait here rather than in httpcore's pool: httpcore 1.0.9
        # rescans its whole queue on every pool event, and can lose a slot
        # when a request queued there is cancelled.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        if team_id is not None and not ids.is_slug(team_id):
            raise ValueError(f"invalid Northflank team id: {team_id!r}")
        self._prefix = f"/v1/teams/{_segment(team_id)}" if team_id else "/v1"
        self.team_id = team_id
        self._token = token
        self.deadline = deadline
        self.max_attempts = max_attempts
        self.on_rate_limit = on_rate_limit
        self.on_call = on_call

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- endpoints --------------------------------------------------------

    def run_path(self, template_id: str, run_id: str) -> str:
        _check_ids(template_id, run_id)
        return (
            f"{self._prefix}/templates/{_segment(template_id)}/runs/{_segment(run_id)}"
        )

    async def abort_run(self, template_id: str, run_id: str) -> TemplateRun:
        """Abort a run. Repeating an abort is harmless, so the POST is retried."""
        path = self.run_path(template_id, run_id) + "/abort"
        body = await self._request("POST", path, endpoint="abort_run")
        return _matching(_run_from(body), template_id, run_id)

    async def get_run(self, template_id: str, run_id: str) -> TemplateRun:
        body = await self._request(
            "GET", self.run_path(template_id, run_id), endpoint="get_run"
        )
        return _matching(_run_from(body), template_id, run_id)

    async def list_runs(
        self, template_id: str, *, concluded: bool | None = False, per_page: int = 50
    ) -> RunList:
        _check_ids(template_id, None)
        params: dict[str, Any] = {"per_page": per_page}
        if concluded is not None:
            params["concluded"] = "true" if concluded else "false"
        path = f"{self._prefix}/templates/{_segment(template_id)}/runs"
        body = await self._request("GET", path, endpoint="list_runs", params=params)
        data = body.get("data")
        items = data.get("runs") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise InvalidRunData("list of runs missing from the response")
        runs = []
        for item in items:
            if isinstance(item, dict):
                item.setdefault("templateId", template_id)
            runs.append(_run_from({"data": item}))
        pagination = body.get("pagination") or {}
        return RunList(
            runs=runs,
            has_next_page=bool(pagination.get("hasNextPage", False)),
            cursor=pagination.get("cursor"),
        )

    async def list_templates(self, *, per_page: int = 1) -> dict[str, Any]:
        """Fetch one small page of templates: a cheap read that checks the token."""
        return await self._request(
            "GET",
            f"{self._prefix}/templates",
            endpoint="list_templates",
            params={"per_page": per_page},
        )

    # -- transport --------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + self.deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                # No attempt may outlast the deadline, whatever the timeouts allow.
                remaining = max(0.05, deadline - time.monotonic())
                async with asyncio.timeout(remaining), self._slots:
                    response = await self._send_once(method, path, endpoint, params)
            except TimeoutError:
                raise NorthflankUnavailable(
                    "deadline exceeded", timed_out=True, before_send=False
                ) from None
            except NorthflankUnavailable as error:
                wait = _backoff(attempt)
                if not self._can_retry(attempt, deadline, wait):
                    raise
                logger.warning(
                    "northflank.retry endpoint=%s attempt=%d reason=%s wait=%.2fs",
                    endpoint,
                    attempt,
                    error.reason,
                    wait,
                )
                await asyncio.sleep(wait)
                continue

            if response.status_code < 400:
                return _json_object(response)

            api_error = _error_from(response, secret=self._token)
            if response.status_code not in RETRY_STATUSES:
                raise api_error
            wait = _backoff(attempt)
            if api_error.retry_after is not None:
                wait = max(wait, api_error.retry_after)
            if not self._can_retry(attempt, deadline, wait):
                raise api_error
            logger.warning(
                "northflank.retry endpoint=%s attempt=%d status=%d wait=%.2fs",
                endpoint,
                attempt,
                response.status_code,
                wait,
            )
            await asyncio.sleep(wait)

    def _can_retry(self, attempt: int, deadline: float, wait: float) -> bool:
        return attempt < self.max_attempts and time.monotonic() + wait < deadline

    async def _send_once(
        self, method: str, path: str, endpoint: str, params: dict[str, Any] | None
    ) -> httpx.Response:
        started = time.perf_counter()
        status = "error"
        try:
            response = await self._client.request(method, path, params=params)
            status = str(response.status_code)
        except httpx.TimeoutException as error:
            status = "timeout"
            raise NorthflankUnavailable(
                type(error).__name__,
                timed_out=True,
                before_send=isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from None
        except httpx.TransportError as error:
            raise NorthflankUnavailable(
                type(error).__name__,
                timed_out=False,
                before_send=isinstance(error, httpx.ConnectError),
            ) from None
        finally:
            if self.on_call is not None:
                self.on_call(endpoint, status, time.perf_counter() - started)

        rate_limit = _rate_limit_from(response.headers)
        if rate_limit is not None and self.on_rate_limit is not None:
            try:
                await self.on_rate_limit(rate_limit)
            except Exception as error:
                logger.error(
                    "northflank.rate_limit_record_failed error=%s",
                    describe_exception(error),
                )
        return response


def _segment(value: str) -> str:
    # Encode every character that is not unreserved, "/" included.
    return quote(value, safe="")


def _check_ids(template_id: str, run_id: str | None) -> None:
    # Ids are validated by the command parser too; this guard keeps any other
    # caller from building a path outside /v1/templates/<id>/runs/<id>.
    if not ids.is_template_id(template_id):
        raise ValueError(f"invalid template id: {template_id[:80]!r}")
    if run_id is not None and not ids.is_run_id(run_id):
        raise ValueError(f"invalid run id: {run_id[:80]!r}")


def _backoff(attempt: int) -> float:
    # Full jitter over an exponential ceiling: 0.25 s, 0.5 s, 1 s, ... at most 4 s.
    ceiling = min(4.0, 0.25 * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise InvalidRunData("response is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidRunData("response is not a JSON object")
    return body


def _run_from(body: dict[str, Any]) -> TemplateRun:
    data = body.get("data")
    if not isinstance(data, dict):
        raise InvalidRunData("run missing from the response")
    try:
        return TemplateRun.model_validate(data)
    except ValidationError as error:
        fields = ", ".join(str(e["loc"][0]) for e in error.errors() if e["loc"])
        raise InvalidRunData(f"run fields invalid: {fields}") from None


def _matching(run: TemplateRun, template_id: str, run_id: str) -> TemplateRun:
    """Reject a run that is not the one requested, rather than show it as that run."""
    if run.id != run_id or run.template_id != template_id:
        raise InvalidRunData("the response describes a different run")
    return run


def _error_from(response: httpx.Response, *, secret: str) -> NorthflankAPIError:
    message: str | None = None
    error_id: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        envelope = body["error"]
        if isinstance(envelope.get("message"), str):
            message = envelope["message"][:500]
            if secret and secret in message:
                # An API or proxy that echoes the token must not pass it on.
                message = message.replace(secret, "[redacted]")
        if isinstance(envelope.get("id"), str):
            error_id = envelope["id"][:100]
    retry_after = None
    if response.status_code == 429:
        retry_after = _retry_after_from(
            response.headers, ("retry-after", "x-ratelimit-reset")
        )
    elif response.status_code in RETRY_STATUSES:
        # x-ratelimit-reset is the end of the rate-limit window, not a retry hint.
        retry_after = _retry_after_from(response.headers, ("retry-after",))
    return api_error_for(
        response.status_code, message, error_id=error_id, retry_after=retry_after
    )


def _retry_after_from(headers: httpx.Headers, names: tuple[str, ...]) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue
        if 0 <= seconds <= 86400:
            return seconds
    return None


def _rate_limit_from(headers: httpx.Headers) -> RateLimit | None:
    remaining = headers.get("x-ratelimit-remaining")
    reset = headers.get("x-ratelimit-reset")
    if remaining is None or reset is None:
        return None
    try:
        limit_header = headers.get("x-ratelimit-limit")
        return RateLimit(
            limit=int(limit_header) if limit_header is not None else None,
            remaining=int(remaining),
            reset_seconds=float(reset),
        )
    except ValueError:
        return None


__all__ = ["NorthflankClient", "NorthflankRateLimited", "RateLimit"]
