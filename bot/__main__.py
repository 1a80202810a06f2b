"""Command line: `python -m bot serve | demo | check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from bot.logs import configure_logging, secrets_from_environment
from bot.permissions import PermissionFileError, load_permission_file
from bot.settings import SettingsError, load_settings

logger = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Abort Northflank template runs from Slack."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="serve Slack requests (HTTP mode, or Socket Mode)"
    )
    demo = commands.add_parser(
        "demo", help="play an incident against local stand-ins, with no accounts needed"
    )
    demo.add_argument(
        "--interactive",
        action="store_true",
        help="type slash commands as a chosen user and press buttons by number",
    )
    commands.add_parser(
        "check", help="check the configuration, Redis, Slack and Northflank"
    )
    args = parser.parse_args(argv)

    # The demo prints a transcript and the check a checklist, so their logs
    # show only warnings unless LOG_LEVEL sets a lower level.
    configure_logging(
        default_level="WARNING" if args.command in ("demo", "check") else "INFO",
        secrets=secrets_from_environment(),
    )
    if args.command == "demo":
        from bot.demo import run_demo

        return asyncio.run(run_demo(interactive=args.interactive))
    if args.command == "check":
        from bot.check import run_check

        return asyncio.run(run_check())
    return _serve()


def _serve() -> int:
    try:
        settings = load_settings("http")
        permissions = load_permission_file(settings.permissions_file)
    except SettingsError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except PermissionFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from bot.app import create_services
    from bot.server import serve

    # uvicorn handles SIGTERM and SIGINT while it serves, then raises the
    # signal again under the handler that was in place before. A no-op handler
    # there lets a graceful shutdown end with exit status 0.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _ignore_signal)

    async def run() -> None:
        services = await create_services(settings, permissions)
        try:
            await serve(services)
        finally:
            await services.aclose()

    _run_event_loop(run())
    logger.info("bot.exited")
    return 0


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (uvicorn's standard extras bring it)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _ignore_signal(number: int, frame: object) -> None:
    logger.info("bot.signal_after_shutdown signal=%s", signal.Signals(number).name)


if __name__ == "__main__":
    sys.exit(main())
