"""A bare Bolt AsyncApp whose listeners only ack: the benchmark's baseline.

It acks the same slash command and Abort button as the bot, verifies
Slack's signature with Bolt's own middleware (signing_secret is set), and is
served by uvicorn through Bolt's ASGI adapter on 127.0.0.1. uvicorn picks its
event loop and HTTP parser as usual: uvloop and httptools when installed.

Settings come from SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN and SLACK_API_URL,
the variables the bot reads, pointed at the Slack stand-in.
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn
from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.render import ABORT_ACTION
from bot.server import bind_socket

MODES = {"default": False, "process-before-response": True}


def build_app(*, process_before_response: bool) -> AsyncApp:
    # The client points at the Slack stand-in, where Bolt's single-workspace
    # authorization sends its one auth.test call, as it does for the bot.
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    )
    app = AsyncApp(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=process_before_response,
        logger=logging.getLogger("bare_app"),
    )

    @app.command("/nf")
    async def on_command(ack: AsyncAck) -> None:
        await ack()

    @app.action(ABORT_ACTION)
    async def on_abort(ack: AsyncAck) -> None:
        await ack()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--mode", choices=sorted(MODES), required=True,
        help="Bolt's default ack handling, or process_before_response=True",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    app = build_app(process_before_response=MODES[args.mode])
    config = uvicorn.Config(
        AsyncSlackRequestHandler(app),
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
    )
    sock = bind_socket("127.0.0.1", args.port)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
