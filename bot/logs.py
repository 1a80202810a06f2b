"""Logging set-up and helpers that keep secrets and stack traces out of logs."""

from __future__ import annotations

import os
import traceback


def describe_exception(error: BaseException) -> str:
    """Name an exception and where it was raised, without its message.

    Exception messages can carry URLs, tokens or request bodies, so logs get
    the type and the innermost frame of the bot's own code only.
    """
    frames = traceback.extract_tb(error.__traceback__)
    location = ""
    for frame in reversed(frames):
        path = frame.filename.replace(os.sep, "/")
        for package in ("/bot/", "/handlers/"):
            if package in path:
                location = f" at {package.strip('/')}/{path.split(package, 1)[1]}:{frame.lineno}"
                break
        if location:
            break
    return f"{type(error).__name__}{location}"


def configure_logging(*, default_level: str = "INFO") -> None:
    """Log to stderr; keep client libraries from logging URLs, bodies or tokens."""
    import logging

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", default_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=None,
    )
    quiet_client_loggers()


def quiet_client_loggers() -> None:
    """Raise the level of libraries that log URLs, bodies or headers."""
    import logging

    # httpx logs every URL at INFO, and a response_url is a credential;
    # slack_sdk logs request URLs and bodies at DEBUG; Bolt logs bodies at INFO.
    for name in ("httpx", "httpcore", "slack_sdk", "slack_bolt", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
