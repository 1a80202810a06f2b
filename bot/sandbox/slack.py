"""A local Slack stand-in: it sends signed requests to the bot and serves the
Web API methods, response URLs and a Socket Mode WebSocket the bot calls.

Every call the bot makes is recorded, and the messages it produces are kept
as Slack would show them, so a test or the demo can read them and press
their buttons.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import WSMsgType, web

from bot.signing import signed_headers


@dataclass
class ApiCall:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class SlackMessage:
    """A message as a Slack client would display it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    ephemeral: bool
    user: str | None = None  # the only viewer of an ephemeral message
    source: str = ""  # ack, response_url, chat.postMessage, chat.postEphemeral
    edits: int = 0
    # Every earlier (text, blocks) version, oldest first, before each edit.
    history: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    def buttons(self) -> list[dict[str, Any]]:
        found = []
        for block in self.blocks:
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button":
                found.append({**accessory, "block_id": block.get("block_id")})
            for element in block.get("elements") or []:
                if element.get("type") == "button":
                    found.append({**element, "block_id": block.get("block_id")})
        return found

    def raw_text(self) -> str:
        """Return the fallback text and blocks as sent, mrkdwn escapes included."""
        return json.dumps(
            {"text": self.text, "blocks": self.blocks}, ensure_ascii=False
        )

    def all_text(self) -> str:
        """Return the text and blocks as a reader sees them, with escapes decoded."""
        raw = self.raw_text()
        return raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class _ResponseTarget:
    channel: str
    user: str
    message_ts: str | None
    uses: int = 0


@dataclass
class Reply:
    """The bot's HTTP response to one request."""

    status: int
    body: dict[str, Any] | None
    text: str
    seconds: float


@dataclass
class Fault:
    method: str
    error: str
    times: int
    retry_after: int | None = None


@dataclass
class SlackStandIn:
    signing_secret: str
    bot_token: str = "xoxb-sandbox-token"
    app_token: str | None = None
    team_id: str = "T0SANDBOX"
    bot_user_id: str = "U0BOTUSER"
    bot_url: str | None = None
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    channels_without_bot: set[str] = field(default_factory=set)
    user_names: dict[str, str] = field(default_factory=dict)
    calls: list[ApiCall] = field(default_factory=list)
    messages: list[SlackMessage] = field(default_factory=list)
    response_posts: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._targets: dict[str, _ResponseTarget] = {}
        self._ts = itertools.count(1)
        self._http = httpx.AsyncClient(timeout=30.0)
        self._socket: web.WebSocketResponse | None = None
        self._socket_ready = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Condition()

    # -- serving ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{token}", self._response_url)
        app.router.add_get("/socket", self._websocket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        await self._http.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail(
        self, method: str, error: str, *, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Fail the next `times` calls of a Web API method with an error code."""
        self.faults.append(Fault(method, error, times, retry_after))

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    # -- Web API ------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth else args.pop("token", None)
        self.calls.append(ApiCall(method, args, token))

        for fault in self.faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                headers = {}
                status = 200
                if fault.error == "ratelimited":
                    status = 429
                    headers["Retry-After"] = str(fault.retry_after or 1)
                return web.json_response(
                    {"ok": False, "error": fault.error}, status=status, headers=headers
                )

        expected = (
            self.app_token if method == "apps.connections.open" else self.bot_token
        )
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = await handler(args)
        return web.json_response(result)

    async def _api_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://sandbox.slack.invalid/",
            "team": "Sandbox",
            "user": "northflank-aborts",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "B0SANDBOX",
        }

    async def _api_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel in self.channels_without_bot:
            return {"ok": False, "error": "not_in_channel"}
        message = await self._add(
            SlackMessage(
                channel=channel,
                ts=self._next_ts(),
                text=str(args.get("text") or ""),
                blocks=_blocks(args),
                ephemeral=False,
                source="chat.postMessage",
            )
        )
        return {"ok": True, "channel": channel, "ts": message.ts}

    async def _api_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self.find(channel=str(args.get("channel")), ts=str(args.get("ts")))
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        await self._edit(found, str(args.get("text") or ""), _blocks(args))
        return {"ok": True, "channel": found.channel, "ts": found.ts}

    async def _api_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel in self.channels_without_bot:
            return {"ok": False, "error": "not_in_channel"}
        message = await self._add(
            SlackMessage(
                channel=channel,
                ts=self._next_ts(),
                text=str(args.get("text") or ""),
                blocks=_blocks(args),
                ephemeral=True,
                user=str(args.get("user")),
                source="chat.postEphemeral",
            )
        )
        return {"ok": True, "message_ts": message.ts}

    async def _api_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    async def _api_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    # -- response URLs ------------------------------------------------------

    def _response_url_for(self, channel: str, user: str, message_ts: str | None) -> str:
        token = uuid.uuid4().hex
        self._targets[token] = _ResponseTarget(channel, user, message_ts)
        return f"{self.url}/response/{token}"

    async def _response_url(self, request: web.Request) -> web.Response:
        target = self._targets.get(request.match_info["token"])
        if target is None:
            return web.Response(status=404, text="no_such_url")
        body = await request.json()
        self.response_posts.append(body)
        target.uses += 1
        if target.uses > 5:
            return web.Response(status=404, text="used_up")
        text = str(body.get("text") or "")
        blocks = list(body.get("blocks") or [])
        if body.get("replace_original") and target.message_ts:
            found = self.find(channel=target.channel, ts=target.message_ts)
            if found is not None:
                await self._edit(found, text, blocks)
                return web.Response(text="ok")
        in_channel = body.get("response_type") == "in_channel"
        await self._add(
            SlackMessage(
                channel=target.channel,
                ts=self._next_ts(),
                text=text,
                blocks=blocks,
                ephemeral=not in_channel,
                user=None if in_channel else target.user,
                source="response_url",
            )
        )
        return web.Response(text="ok")

    # -- sending requests to the bot ---------------------------------------

    async def command(
        self, text: str, *, user: str, channel: str, command: str = "/nf"
    ) -> Reply:
        """Send a signed slash command, as Slack does when a user types it."""
        form = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": "incident",
            "user_id": user,
            "user_name": self.user_names.get(user, user.lower()),
            "command": command,
            "text": text,
            "api_app_id": "A0SANDBOX",
            "response_url": self._response_url_for(channel, user, None),
            "trigger_id": f"{uuid.uuid4().int % 10**12}.trigger",
        }
        reply = await self.send(urlencode(form).encode())
        if reply.body and (reply.body.get("text") or reply.body.get("blocks")):
            await self._add(
                SlackMessage(
                    channel=channel,
                    ts=self._next_ts(),
                    text=str(reply.body.get("text") or ""),
                    blocks=list(reply.body.get("blocks") or []),
                    ephemeral=reply.body.get("response_type") != "in_channel",
                    user=user,
                    source="ack",
                )
            )
        return reply

    def click_payload(
        self,
        message: SlackMessage,
        *,
        user: str,
        action_id: str,
        index: int = 0,
        value: str | None = None,
    ) -> dict[str, Any]:
        buttons = [b for b in message.buttons() if b.get("action_id") == action_id]
        if not buttons:
            raise LookupError(f"no {action_id} button in message {message.ts}")
        button = buttons[index]
        return {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": self.user_names.get(user, user.lower()),
                "team_id": self.team_id,
            },
            "api_app_id": "A0SANDBOX",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": message.ephemeral,
            },
            "trigger_id": f"{uuid.uuid4().int % 10**12}.trigger",
            "team": {"id": self.team_id, "domain": "sandbox"},
            "channel": {"id": message.channel, "name": "incident"},
            "message": {
                "type": "message",
                "ts": message.ts,
                "text": message.text,
                "blocks": message.blocks,
                "user": self.bot_user_id,
            },
            "response_url": self._response_url_for(message.channel, user, message.ts),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": button.get("block_id") or "",
                    "value": button.get("value") if value is None else value,
                    "text": button.get("text"),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    async def click(
        self,
        message: SlackMessage,
        *,
        user: str,
        action_id: str,
        index: int = 0,
        value: str | None = None,
        url: str | None = None,
    ) -> Reply:
        """Press a button of a message, as the given user."""
        payload = self.click_payload(
            message, user=user, action_id=action_id, index=index, value=value
        )
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.send(body, url=url)

    async def send(
        self,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
        url: str | None = None,
    ) -> Reply:
        """POST a body to the bot (`url`, else `bot_url`), signed with the secret."""
        target = url or self.bot_url
        assert target is not None, "set bot_url before sending requests"
        signed = signed_headers(
            secret or self.signing_secret, body, timestamp=timestamp
        )
        all_headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed,
            **(headers or {}),
        }
        started = time.perf_counter()
        response = await self._http.post(target, content=body, headers=all_headers)
        seconds = time.perf_counter() - started
        parsed = None
        if (
            response.headers.get("content-type", "").startswith("application/json")
            and response.content
        ):
            parsed = response.json()
        return Reply(response.status_code, parsed, response.text, seconds)

    # -- Socket Mode --------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "connection_info": {"app_id": "A0SANDBOX"},
            }
        )
        self._socket_ready.set()
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                continue
            data = json.loads(frame.data)
            self.socket_acks.append(data)
            future = self._acks.pop(str(data.get("envelope_id")), None)
            if future is not None and not future.done():
                future.set_result(data)
        return socket

    async def socket_command(
        self,
        text: str,
        *,
        user: str,
        channel: str,
        command: str = "/nf",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Push a slash command envelope over Socket Mode and return the ack."""
        await asyncio.wait_for(self._socket_ready.wait(), timeout)
        assert self._socket is not None
        envelope_id = str(uuid.uuid4())
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._acks[envelope_id] = future
        payload = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "channel_id": channel,
            "user_id": user,
            "command": command,
            "text": text,
            "api_app_id": "A0SANDBOX",
            "response_url": self._response_url_for(channel, user, None),
            "trigger_id": "1.trigger",
        }
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": "slash_commands",
                "payload": payload,
                "accepts_response_payload": True,
            }
        )
        return await asyncio.wait_for(future, timeout)

    # -- reading what users see --------------------------------------------

    def find(self, *, channel: str, ts: str) -> SlackMessage | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts:
                return message
        return None

    def visible_to(self, user: str, channel: str) -> list[SlackMessage]:
        return [
            m
            for m in self.messages
            if m.channel == channel and (not m.ephemeral or m.user == user)
        ]

    async def wait_for(self, predicate: Any, *, timeout: float = 10.0) -> SlackMessage:
        """Wait until some message satisfies `predicate`, and return it."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for message in reversed(self.messages):
                    if predicate(message):
                        return message
                await self._changed.wait()

    async def _add(self, message: SlackMessage) -> SlackMessage:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return message

    async def _edit(
        self, message: SlackMessage, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        async with self._changed:
            message.history.append((message.text, message.blocks))
            message.text = text
            message.blocks = blocks
            message.edits += 1
            self._changed.notify_all()

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"


async def _arguments(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            args.update(await request.json())
        else:
            args.update(dict(await request.post()))
    return args


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return list(blocks)


def event_body(
    event: dict[str, Any], *, event_id: str, team_id: str = "T0SANDBOX"
) -> bytes:
    """Build an Events API callback body as Slack sends it."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "api_app_id": "A0SANDBOX",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": team_id, "user_id": "U0BOTUSER", "is_bot": True}
            ],
        }
    ).encode()
