"""Serve the Slack and Northflank stand-ins of the benchmark in their own process.

bench/run.py starts this script so that the stand-ins share neither the
bot's process nor its event loop. It serves three aiohttp apps on
127.0.0.1: the Northflank sandbox, the Slack stand-in, and a control API
through which the benchmark adds runs, builds request bodies and reads the
arrival times that the stand-ins recorded. It writes the three URLs to the
ready file as JSON and serves until SIGTERM or SIGINT.

The tokens and the signing secret come from the environment variables
BENCH_SIGNING_SECRET, BENCH_SLACK_BOT_TOKEN and BENCH_NORTHFLANK_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import signal
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot import render
from bot.models import TemplateRun
from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackMessage, SlackStandIn

# Web API methods whose message text is kept, so a summary can be matched to
# its run by the run id in its fallback text.
METHODS_WITH_TEXT = frozenset({"chat.postMessage", "chat.update"})
# High enough that the bench never reaches the sandbox's hourly rate limit,
# which would make the bot postpone reads and skew the call counts.
RATE_LIMIT_PER_HOUR = 10_000_000


@dataclass
class ApiArrival:
    """A Web API call as it reached the Slack stand-in."""

    method: str
    at: float
    message_ts: str | None = None
    text: str | None = None


@dataclass
class ResponseArrival:
    """A POST to a response URL, and the message it created or edited."""

    token: str
    at: float
    message_ts: str | None = None


_current_response: contextvars.ContextVar[ResponseArrival | None] = (
    contextvars.ContextVar("current_response", default=None)
)


class TimedSlackStandIn(SlackStandIn):
    """The Slack stand-in, recording when each Web API call and response URL
    post arrives (time.time(), taken before the body is read)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.api_arrivals: list[ApiArrival] = []
        self.response_arrivals: list[ResponseArrival] = []

    async def _api(self, request: web.Request) -> web.Response:
        arrival = ApiArrival(method=request.match_info["method"], at=time.time())
        response = await super()._api(request)
        if arrival.method in METHODS_WITH_TEXT and isinstance(response.body, bytes):
            result = json.loads(response.body)
            ts = result.get("ts")
            message = self.find(channel=str(result.get("channel")), ts=str(ts))
            arrival.message_ts = ts
            arrival.text = message.text if message else None
        self.api_arrivals.append(arrival)
        return response

    async def _response_url(self, request: web.Request) -> web.Response:
        arrival = ResponseArrival(token=request.match_info["token"], at=time.time())
        self.response_arrivals.append(arrival)
        # The parent class adds or edits the message deeper in this call. The
        # context variable lets _add and _edit find the arrival it was for.
        reset = _current_response.set(arrival)
        try:
            return await super()._response_url(request)
        finally:
            _current_response.reset(reset)

    async def _add(self, message: SlackMessage) -> SlackMessage:
        arrival = _current_response.get()
        if arrival is not None:
            arrival.message_ts = message.ts
        return await super()._add(message)

    async def _edit(
        self, message: SlackMessage, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        arrival = _current_response.get()
        if arrival is not None:
            arrival.message_ts = message.ts
        await super()._edit(message, text, blocks)

    def response_token(self, channel: str, user: str, message_ts: str | None) -> str:
        """Register a response URL and return its token, the last path segment."""
        url = self._response_url_for(channel, user, message_ts)
        return url.rsplit("/", 1)[1]


class Control:
    """The control API: set-up and records for bench/run.py, never for the bot."""

    def __init__(self, northflank: NorthflankSandbox, slack: TimedSlackStandIn) -> None:
        self.northflank = northflank
        self.slack = slack

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/runs", self.add_run)
        app.router.add_post("/slash", self.slash_body)
        app.router.add_post("/card", self.card)
        app.router.add_post("/click", self.click_body)
        app.router.add_get("/records", self.records)
        app.router.add_post("/reset", self.reset)
        return app

    async def add_run(self, request: web.Request) -> web.Response:
        data = await request.json()
        template_id = str(data["template_id"])
        if template_id not in self.northflank.templates:
            name = template_id.replace("-", " ").title()
            self.northflank.add_template(template_id, name, f"{name} (benchmark)")
        run_id = self.northflank.add_run(
            template_id, status=str(data.get("status", "running"))
        )
        return web.json_response({"run_id": run_id})

    async def slash_body(self, request: web.Request) -> web.Response:
        """Build `count` slash command bodies, as Slack sends them, each with its
        own live response URL."""
        data = await request.json()
        bodies = []
        tokens = []
        for _ in range(int(data.get("count", 1))):
            body, token = self._slash_body(data)
            bodies.append(body)
            tokens.append(token)
        return web.json_response({"bodies": bodies, "tokens": tokens})

    def _slash_body(self, data: dict[str, Any]) -> tuple[str, str]:
        user = str(data["user"])
        channel = str(data["channel"])
        token = self.slack.response_token(channel, user, None)
        form = {
            "token": "legacy-verification-token",
            "team_id": self.slack.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": "incident",
            "user_id": user,
            "user_name": user.lower(),
            "command": str(data.get("command", "/nf")),
            "text": str(data["text"]),
            "api_app_id": "A0SANDBOX",
            "response_url": f"{self.slack.url}/response/{token}",
            "trigger_id": f"{uuid.uuid4().int % 10**12}.trigger",
        }
        return urlencode(form), token

    async def card(self, request: web.Request) -> web.Response:
        """Show the confirmation card of a run, as the bot renders it for
        `/nf abort`, without asking the bot, and return a token to click it by.

        Load rows use this so that their set-up does not depend on the bot
        still reaching Northflank after an earlier row.
        """
        data = await request.json()
        user = str(data["user"])
        channel = str(data["channel"])
        key = (str(data["template_id"]), str(data["run_id"]))
        run = TemplateRun.model_validate(self.northflank.runs[key])
        payload = render.run_card(run, kind="confirm", with_abort=True).payload()
        token = self.slack.response_token(channel, user, None)
        message = SlackMessage(
            channel=channel,
            ts=self.slack._next_ts(),
            text=payload["text"],
            blocks=payload["blocks"],
            ephemeral=True,
            user=user,
            source="response_url",
        )
        self.slack.messages.append(message)
        self.slack.response_arrivals.append(
            ResponseArrival(token=token, at=time.time(), message_ts=message.ts)
        )
        return web.json_response({"token": token})

    async def click_body(self, request: web.Request) -> web.Response:
        """Build `count` block_actions bodies that press a button of the message
        that a response URL post created, each with its own response URL."""
        data = await request.json()
        message = self._message_for(str(data["token"]))
        if message is None:
            raise web.HTTPNotFound(
                text=f"no message for response token {data['token']}"
            )
        bodies = []
        tokens = []
        for _ in range(int(data.get("count", 1))):
            payload = self.slack.click_payload(
                message, user=str(data["user"]), action_id=str(data["action_id"])
            )
            tokens.append(str(payload["response_url"]).rsplit("/", 1)[1])
            bodies.append(urlencode({"payload": json.dumps(payload)}))
        return web.json_response({"bodies": bodies, "tokens": tokens})

    def _message_for(self, token: str) -> SlackMessage | None:
        for arrival in reversed(self.slack.response_arrivals):
            if arrival.token == token and arrival.message_ts is not None:
                for message in reversed(self.slack.messages):
                    if message.ts == arrival.message_ts:
                        return message
        return None

    async def records(self, request: web.Request) -> web.Response:
        """Return what arrived at or after `since` (epoch seconds)."""
        since = float(request.query.get("since", "0"))
        northflank = [
            {"method": r.method, "path": r.path, "at": r.at}
            for r in self.northflank.requests
            if r.at >= since
        ]
        slack = [asdict(a) for a in self.slack.api_arrivals if a.at >= since]
        responses = [asdict(a) for a in self.slack.response_arrivals if a.at >= since]
        return web.json_response(
            {"northflank": northflank, "slack": slack, "responses": responses}
        )

    async def reset(self, request: web.Request) -> web.Response:
        """Drop the records and the ephemeral messages of a load run.

        Channel messages stay, because the bot still edits its summaries.
        """
        self.northflank.requests.clear()
        self.slack.calls.clear()
        self.slack.response_posts.clear()
        self.slack.api_arrivals.clear()
        self.slack.response_arrivals.clear()
        self.slack.messages[:] = [m for m in self.slack.messages if not m.ephemeral]
        return web.json_response({})


async def serve(ready_file: Path) -> None:
    northflank = NorthflankSandbox(
        token=os.environ["BENCH_NORTHFLANK_TOKEN"], rate_limit=RATE_LIMIT_PER_HOUR
    )
    slack = TimedSlackStandIn(
        signing_secret=os.environ["BENCH_SIGNING_SECRET"],
        bot_token=os.environ["BENCH_SLACK_BOT_TOKEN"],
    )
    await northflank.start()
    await slack.start()
    control = web.AppRunner(Control(northflank, slack).app(), access_log=None)
    await control.setup()
    site = web.TCPSite(control, "127.0.0.1", 0)
    await site.start()
    control_port = control.addresses[0][1]

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    ready = {
        "northflank_url": northflank.url,
        "slack_url": slack.url,
        "slack_api_url": slack.api_url,
        "control_url": f"http://127.0.0.1:{control_port}",
    }
    partial = ready_file.with_suffix(".partial")
    partial.write_text(json.dumps(ready))
    partial.rename(ready_file)
    try:
        await stopping.wait()
    finally:
        await control.cleanup()
        await slack.stop()
        await northflank.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ready-file", type=Path, required=True,
        help="file that receives the stand-in URLs as JSON once they serve",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.ready_file))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.ready_file))


if __name__ == "__main__":
    main()
