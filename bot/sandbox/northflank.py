"""A local Northflank API sandbox that speaks the template-run endpoints.

It keeps templates and runs in memory, records every request, sends the
rate-limit headers, and lets tests inject faults (an error status, a delay,
a dropped connection) for the next matching requests.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

_ROUTE = re.compile(
    r"^/v1(?:/teams/(?P<team>[^/]+))?/templates"
    r"(?:/(?P<template>[^/]+)(?:/runs(?:/(?P<run>[^/]+)(?P<abort>/abort)?)?)?)?$"
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    authorization: str | None
    at: float


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    delay: float = 0.0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class NorthflankSandbox:
    def __init__(
        self,
        *,
        token: str = "sandbox-northflank-token",
        team_id: str | None = None,
        polls_until_aborted: int = 2,
        rate_limit: int = 1000,
    ) -> None:
        self.token = token
        self.team_id = team_id
        self.polls_until_aborted = polls_until_aborted
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.window_started = time.time()
        self.templates: dict[str, dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._polls_left: dict[tuple[str, str], int] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- set-up -------------------------------------------------------------

    def add_template(self, template_id: str, name: str, description: str = "") -> None:
        self.templates[template_id] = {"name": name, "description": description}

    def add_run(
        self,
        template_id: str,
        *,
        status: str = "running",
        run_id: str | None = None,
        concluded: bool | None = None,
        created_at: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        run_id = run_id or str(uuid.uuid4())
        template = self.templates.get(
            template_id, {"name": template_id, "description": ""}
        )
        stamp = created_at or _timestamp(time.time() - 600)
        run = {
            "id": run_id,
            "templateId": template_id,
            "name": template["name"],
            "description": template["description"],
            "apiVersion": "v1.2",
            "status": status,
            "concluded": status in ("aborted", "success", "failure", "skipped")
            if concluded is None
            else concluded,
            "createdAt": stamp,
            "updatedAt": stamp,
            "spec": {"kind": "Workflow", "spec": {"steps": []}},
        }
        run.update(extra or {})
        self.runs[(template_id, run_id)] = run
        return run_id

    def set_status(self, template_id: str, run_id: str, status: str) -> None:
        run = self.runs[(template_id, run_id)]
        run["status"] = status
        run["concluded"] = status in ("aborted", "success", "failure", "skipped")
        run["updatedAt"] = _timestamp(time.time())

    def inject(
        self,
        method: str,
        path_pattern: str,
        status: int = 503,
        *,
        times: int = 1,
        delay: float = 0.0,
        body: Any = None,
        headers: dict[str, str] | None = None,
        drop: bool = False,
    ) -> None:
        """Fail the next `times` matching requests with a fault."""
        self.faults.append(
            Fault(
                method=method.upper(),
                pattern=re.compile(path_pattern),
                status=status,
                times=times,
                delay=delay,
                body=body,
                headers=headers or {},
                drop=drop,
            )
        )

    def count(self, method: str, suffix: str = "") -> int:
        """Count recorded requests by method whose path ends with `suffix`."""
        return sum(
            1 for r in self.requests if r.method == method and r.path.endswith(suffix)
        )

    def aborts(self) -> int:
        return self.count("POST", "/abort")

    # -- serving ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                raw_path=request.raw_path,
                query=dict(request.query),
                authorization=request.headers.get("Authorization"),
                at=time.time(),
            )
        )
        fault = self._take_fault(request.method, request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if fault.status < 400:
                return await self._route(request)
            return self._error(
                fault.status, "injected fault", headers=fault.headers, body=fault.body
            )

        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "Unauthorized: invalid or missing API token")
        self._spend()
        if self.remaining < 0:
            return self._error(429, "Rate limit exceeded")
        return await self._route(request)

    async def _route(self, request: web.Request) -> web.Response:
        match = _ROUTE.match(request.raw_path.split("?", 1)[0])
        if match is None:
            return self._error(404, "Route not found")
        if match["team"] is not None and match["team"] != self.team_id:
            return self._error(404, "Team not found")
        template_id = _decode(match["template"])
        run_id = _decode(match["run"])
        if template_id is None:
            if request.method != "GET":
                return self._error(405, "Method not allowed")
            templates = [{"id": t, **v} for t, v in sorted(self.templates.items())]
            return self._ok(
                {"templates": templates}, pagination=True, count=len(templates)
            )
        if template_id not in self.templates:
            return self._error(404, f"Template {template_id} not found")
        if run_id is None:
            if request.method != "GET":
                return self._error(405, "Method not allowed")
            return self._list_runs(template_id, request.query)
        key = (template_id, run_id)
        if key not in self.runs:
            return self._error(404, f"Template run {run_id} not found")
        if match["abort"]:
            if request.method != "POST":
                return self._error(405, "Method not allowed")
            return self._abort(key)
        if request.method != "GET":
            return self._error(405, "Method not allowed")
        self._advance(key)
        return self._ok(self.runs[key])

    def _list_runs(self, template_id: str, query: Any) -> web.Response:
        runs = [r for (t, _), r in self.runs.items() if t == template_id]
        for run in runs:
            self._advance((template_id, run["id"]))
        concluded = query.get("concluded")
        if concluded in ("true", "false"):
            runs = [r for r in runs if r["concluded"] == (concluded == "true")]
        per_page = min(100, int(query.get("per_page", 50) or 50))
        page = runs[:per_page]
        return self._ok(
            {"runs": page},
            pagination=True,
            has_next=len(runs) > per_page,
            count=len(page),
        )

    def _abort(self, key: tuple[str, str]) -> web.Response:
        run = self.runs[key]
        if run["concluded"]:
            return self._error(
                409, f"Template run has already concluded ({run['status']})"
            )
        if run["status"] != "aborting":
            run["status"] = "aborting"
            run["updatedAt"] = _timestamp(time.time())
            self._polls_left[key] = self.polls_until_aborted
        return self._ok(run)

    def _advance(self, key: tuple[str, str]) -> None:
        """Move an aborting run towards `aborted` each time it is read."""
        if key not in self._polls_left:
            return
        self._polls_left[key] -= 1
        if self._polls_left[key] <= 0:
            del self._polls_left[key]
            self.set_status(*key, "aborted")

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (
                fault.times > 0
                and fault.method in (method, "*")
                and fault.pattern.search(path)
            ):
                fault.times -= 1
                return fault
        return None

    def _spend(self) -> None:
        if time.time() - self.window_started >= 3600:
            self.window_started = time.time()
            self.remaining = self.rate_limit
        self.remaining -= 1

    def _rate_headers(self) -> dict[str, str]:
        reset = max(0, int(3600 - (time.time() - self.window_started)))
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(0, self.remaining)),
            "x-ratelimit-reset": str(reset),
        }

    def _ok(
        self,
        data: Any,
        *,
        pagination: bool = False,
        has_next: bool = False,
        count: int = 0,
    ) -> web.Response:
        body: dict[str, Any] = {"data": data}
        if pagination:
            body["pagination"] = {
                "hasNextPage": has_next,
                "cursor": None,
                "count": count,
            }
        return web.json_response(body, headers=self._rate_headers())

    def _error(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> web.Response:
        merged = {**self._rate_headers(), **(headers or {})}
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=merged)
        payload = (
            body
            if body is not None
            else {
                "error": {
                    "status": status,
                    "message": message,
                    "id": f"err-{uuid.uuid4().hex[:8]}",
                }
            }
        )
        return web.json_response(payload, status=status, headers=merged)


def _decode(segment: str | None) -> str | None:
    if segment is None:
        return None
    from urllib.parse import unquote

    return unquote(segment)


def _timestamp(epoch: float) -> str:
    # The API's published example writes a space between date and time.
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
