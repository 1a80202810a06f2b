"""Sending messages to Slack: response_url posts and Web API calls."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.render import Message

logger = logging.getLogger(__name__)

# Slack accepts at most five posts to one response_url, within 30 minutes.
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_LIFETIME = 30 * 60
RESPONSE_URL_TIMEOUT = aiohttp.ClientTimeout(total=5.0)
# Past this many URLs in 30 minutes the oldest are forgotten. Slack rejects a
# forgotten URL that is used up, so the reply then goes through the Web API.
MAX_TRACKED_RESPONSE_URLS = 100_000

ADMIN_HINTS = {
    "not_in_channel": "Invite the bot to this channel (`/invite @Northflank Aborts`) "
    "so it can post run summaries here.",
    "channel_not_found": "The bot cannot see this channel. Invite it to the channel, "
    "or use the bot in a channel it is a member of.",
    "is_archived": "This channel is archived, so the bot cannot post in it.",
    "restricted_action": "A workspace admin has restricted posting in this channel.",
    "missing_scope": "The Slack app lacks a scope it needs; reinstall it from "
    "app.yaml.",
    "invalid_auth": "The bot token is invalid; an admin must renew SLACK_BOT_TOKEN.",
    "token_revoked": "The bot token was revoked; an admin must reinstall the app.",
}


@dataclass(frozen=True)
class SlackRequest:
    """The acting user, their channel, and the ways to reply to them."""

    user_id: str
    channel_id: str
    team_id: str | None
    response_url: str | None
    message_ts: str | None = None
    is_ephemeral: bool = True


class SlackPostError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    def admin_hint(self) -> str:
        return ADMIN_HINTS.get(self.code, f"Slack rejected the message ({self.code}).")


class SlackSender:
    def __init__(
        self,
        client: AsyncWebClient,
        http: aiohttp.ClientSession,
        *,
        response_url_hosts: frozenset[str],
        secrets: tuple[str, ...] = (),
    ) -> None:
        # Longer secrets first, so a secret that contains another is replaced whole.
        self.secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
        self.client = client
        self.http = http
        self.response_url_hosts = response_url_hosts
        self._uses: dict[str, tuple[int, float]] = {}

    # -- replies to the acting user ----------------------------------------

    async def reply(
        self,
        request: SlackRequest,
        message: Message,
        *,
        replace_original: bool = False,
        in_channel: bool = False,
    ) -> bool:
        """Reply through response_url, or through the Web API once it is used up.

        Returns True when Slack accepted the reply.
        """
        if request.response_url and self._may_use(request.response_url):
            body: dict[str, Any] = self._payload(message)
            body["response_type"] = "in_channel" if in_channel else "ephemeral"
            if replace_original:
                body["replace_original"] = True
            if await self._post_response_url(request.response_url, body):
                return True
        if replace_original and request.message_ts and not request.is_ephemeral:
            return await self.update(request.channel_id, request.message_ts, message)
        if in_channel:
            return await self.post(request.channel_id, message) is not None
        return await self.ephemeral(request, message)

    async def ephemeral(self, request: SlackRequest, message: Message) -> bool:
        try:
            await self.client.chat_postEphemeral(
                channel=request.channel_id,
                user=request.user_id,
                **self._payload(message),
            )
        except SlackApiError as error:
            logger.warning(
                "slack.ephemeral_failed user=%s channel=%s error=%s",
                request.user_id,
                request.channel_id,
                _code(error),
            )
            return False
        return True

    def _payload(self, message: Message) -> dict[str, Any]:
        """Build a message body with every configured secret replaced."""
        payload = message.payload()
        if not self.secrets:
            return payload
        text = json.dumps(payload)
        if not any(secret in text for secret in self.secrets):
            return payload
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        logger.warning("slack.secret_redacted: a message contained a configured secret")
        redacted: dict[str, Any] = json.loads(text)
        return redacted

    def _may_use(self, url: str) -> bool:
        if urlsplit(url).hostname not in self.response_url_hosts:
            logger.warning("slack.response_url_rejected: host is not a Slack host")
            return False
        now = time.monotonic()
        count, first = self._uses.get(url, (0, now))
        if count >= RESPONSE_URL_MAX_USES or now - first > RESPONSE_URL_LIFETIME:
            return False
        self._uses[url] = (count + 1, first)
        self._forget_expired(now)
        return True

    def _forget_expired(self, now: float) -> None:
        """Drop expired URLs from the oldest end, and the oldest beyond the cap.

        A dict keeps insertion order, which here is the order of first use,
        so this stops at the first URL that is still fresh.
        """
        while self._uses:
            oldest = next(iter(self._uses))
            expired = now - self._uses[oldest][1] > RESPONSE_URL_LIFETIME
            if not expired and len(self._uses) <= MAX_TRACKED_RESPONSE_URLS:
                return
            del self._uses[oldest]

    async def _post_response_url(self, url: str, body: dict[str, Any]) -> bool:
        # aiohttp, as slack_sdk uses it too: httpx's connection pool costs
        # more CPU per request than the rest of a cached status read.
        try:
            async with self.http.post(
                url, json=body, timeout=RESPONSE_URL_TIMEOUT
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning("slack.response_url_failed error=%s", type(error).__name__)
            return False
        if status >= 400:
            # The URL itself is a credential, so only the status is logged.
            logger.warning("slack.response_url_failed status=%d", status)
            return False
        return True

    # -- channel messages ------------------------------------------------

    async def post(
        self, channel_id: str, message: Message, *, thread_ts: str | None = None
    ) -> str | None:
        """Post in a channel; raise SlackPostError when Slack rejects it."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        try:
            response = await self.client.chat_postMessage(
                channel=channel_id,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
                **self._payload(message),
            )
        except SlackApiError as error:
            code = _code(error)
            logger.warning("slack.post_failed channel=%s error=%s", channel_id, code)
            raise SlackPostError(code) from None
        ts = response.get("ts")
        return str(ts) if ts else None

    async def update(self, channel_id: str, ts: str, message: Message) -> bool:
        try:
            await self.client.chat_update(
                channel=channel_id, ts=ts, **self._payload(message)
            )
        except SlackApiError as error:
            logger.warning(
                "slack.update_failed channel=%s ts=%s error=%s",
                channel_id,
                ts,
                _code(error),
            )
            return False
        return True


def _code(error: SlackApiError) -> str:
    try:
        return str(error.response.get("error") or "unknown_error")
    except AttributeError:
        return "unknown_error"
