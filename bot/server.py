"""The ASGI server: Slack requests for Bolt, plus health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import __version__, signing
from bot.app import Services, build_bolt_app
from bot.logs import describe_exception

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SLACK_EVENTS_PATH = "/slack/events"
# Slack's payloads are far smaller; anything larger is not from Slack.
MAX_BODY_BYTES = 1024 * 1024


class BotServer:
    """An ASGI app that verifies Slack's signature over the raw body, then
    dispatches to Bolt."""

    def __init__(self, services: Services, bolt_app: AsyncApp | None = None) -> None:
        self.services = services
        self.bolt = bolt_app or build_bolt_app(services)
        settings = services.settings
        secret = settings.slack_signing_secret
        self.signing_secret = secret.get_secret_value() if secret else ""
        self.accept_http_events = not settings.socket_mode
        self.started_at = time.time()
        self.socket_handler: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        if path == SLACK_EVENTS_PATH and self.accept_http_events:
            if method != "POST":
                await _respond(send, 405, b"method not allowed\n", allow="POST")
                return
            try:
                await self._slack_events(scope, receive, send)
            except Exception as error:
                # Logged by type and place only: the message may quote the body.
                logger.error("slack.request_failed error=%s", describe_exception(error))
                await _respond(send, 500, b"internal error\n")
        elif path == "/healthz" and method in ("GET", "HEAD"):
            await self._healthz(send)
        elif path == "/metrics" and method in ("GET", "HEAD"):
            metrics = self.services.metrics
            await _respond(
                send, 200, metrics.exposition(), content_type=metrics.content_type
            )
        else:
            await _respond(send, 404, b"not found\n")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.services.follower.start_scanning()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        """Stop taking requests, let in-flight work finish within the grace period,
        release follow leases, and close every client."""
        logger.info("server.stopping in_flight=%d", len(self.services.tasks))
        if self.socket_handler is not None:
            await self.socket_handler.close_async()
            self.socket_handler = None
        grace = self.services.settings.shutdown_grace
        cancelled = await self.services.tasks.drain(grace)
        if cancelled:
            logger.warning("server.shutdown cancelled=%d after=%.0fs", cancelled, grace)
        await self.services.aclose()
        logger.info("server.stopped")

    async def _slack_events(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()
        body = await _read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await _respond(send, 413, b"body too large\n")
            return
        headers = _headers(scope)
        verdict = signing.verify(
            self.signing_secret,
            body,
            headers.get("x-slack-request-timestamp"),
            headers.get("x-slack-signature"),
        )
        if not verdict.ok:
            logger.warning("slack.request_rejected reason=%s", verdict.reason)
            await _respond(send, 401, b"invalid request signature\n")
            return

        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            await _respond(send, 400, b"body is not UTF-8\n")
            return
        event_id = _event_id(text, headers.get("content-type", ""))
        if event_id is not None and not await self.services.store.first_delivery(
            event_id
        ):
            # Slack redelivers an event it thinks was missed; process it once.
            logger.info(
                "slack.event_duplicate event=%s retry=%s",
                event_id,
                headers.get("x-slack-retry-num", "0"),
            )
            await _respond(send, 200, b"")
            return
        try:
            request = AsyncBoltRequest(
                body=text,
                query=dict(parse_qs(scope.get("query_string", b"").decode("latin-1"))),
                headers={name: [value] for name, value in headers.items()},
            )
        except (ValueError, AttributeError, TypeError):
            # Bolt parses the body here and fails on JSON that is not an object.
            logger.warning("slack.request_rejected reason=unreadable body")
            await _respond(send, 400, b"unreadable body\n")
            return
        if not isinstance(request.body, dict):
            logger.warning("slack.request_rejected reason=body is not an object")
            await _respond(send, 400, b"unreadable body\n")
            return
        try:
            response = await self.bolt.async_dispatch(request)
        except (LookupError, AttributeError, TypeError, ValueError) as error:
            # Bolt reads fields such as actions[0] while matching listeners, so
            # a signed payload with the wrong shape fails inside dispatch.
            logger.warning(
                "slack.request_rejected reason=malformed payload error=%s",
                describe_exception(error),
            )
            await _respond(send, 400, b"malformed payload\n")
            return
        kind = _request_kind(request.body)
        body_out = (
            response.body.encode("utf-8")
            if isinstance(response.body, str)
            else response.body
        )
        response_headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, values in response.headers.items()
            for value in values
            if name.lower() != "content-length"
        ]
        response_headers.append((b"content-length", str(len(body_out)).encode()))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers,
            }
        )
        await send({"type": "http.response.body", "body": body_out})
        self.services.metrics.ack_seconds.labels(kind=kind).observe(
            time.perf_counter() - arrived
        )

    async def _healthz(self, send: Send) -> None:
        redis_up = await self.services.store.ping()
        status = {
            "status": "ok",
            "version": __version__,
            "mode": "socket" if self.services.settings.socket_mode else "http",
            "redis": "up" if redis_up else "down",
            "in_flight": len(self.services.tasks),
            "following": len(self.services.follower.following),
            "uptime_seconds": round(time.time() - self.started_at),
        }
        await _respond(
            send,
            200,
            json.dumps(status).encode() + b"\n",
            content_type="application/json",
        )


def _request_kind(body: dict[str, Any]) -> str:
    if "command" in body:
        return "command"
    kind = body.get("type")
    if kind == "block_actions":
        return "action"
    if kind == "event_callback":
        return "event"
    return "other"


def _event_id(text: str, content_type: str) -> str | None:
    """Return the event id of an Events API callback, None for anything else."""
    if not content_type.startswith("application/json"):
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("type") != "event_callback":
        return None
    event_id = payload.get("event_id")
    return event_id if isinstance(event_id, str) and 0 < len(event_id) <= 100 else None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope["headers"]
    }


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    allow: str | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so the chosen port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # accepted sockets inherit it from this one. Without it, Nagle's algorithm
    # delays a response body behind its headers until the client's delayed ACK
    # (about 40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def uvicorn_server(app: BotServer, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(app.services.settings.shutdown_grace)),
    )
    return uvicorn.Server(config)


class BotProcess:
    """The serving part of one bot process: uvicorn, plus Socket Mode when set."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.app = BotServer(services)
        self.uvicorn = uvicorn_server(self.app)
        self.port = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.services.settings
        sock = bind_socket(settings.host, settings.port)
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(
            self.uvicorn.serve(sockets=[sock]), name="uvicorn"
        )
        while not self.uvicorn.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        logger.info(
            "server.started host=%s port=%d mode=%s",
            settings.host,
            self.port,
            "socket" if settings.socket_mode else "http",
        )
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import (
                AsyncSocketModeHandler,
            )

            assert settings.slack_app_token is not None
            handler = AsyncSocketModeHandler(
                self.app.bolt, settings.slack_app_token.get_secret_value()
            )
            await handler.connect_async()  # type: ignore[no-untyped-call]
            self.app.socket_handler = handler
            logger.info("socket_mode.connected")

    async def wait(self) -> None:
        """Wait until the server has stopped (after SIGTERM, SIGINT or `stop`)."""
        assert self._task is not None
        await self._task

    async def stop(self, timeout: float = 30.0) -> None:
        self.uvicorn.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout)


async def serve(services: Services) -> None:
    """Serve until SIGTERM or SIGINT: HTTP mode, or Socket Mode plus /healthz."""
    process = BotProcess(services)
    await process.start()
    await process.wait()
