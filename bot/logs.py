"""Logging set-up and helpers that keep secrets and stack traces out of logs.

`configure_logging` installs one stderr handler on the root logger. Its
filters run in this order on every record the handler emits:

1. `RedactionFilter` replaces configured secret values with "[redacted]".
2. `RepeatFilter` drops repeats of an identical warning or error for a window.

The formatter writes text lines by default, or JSON lines with LOG_FORMAT=json.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "[redacted]"
# Shorter values are not redacted, because replacing them would garble ordinary
# words. Slack's signing secrets are 32 characters and its tokens are longer.
MIN_SECRET_LENGTH = 6
RATE_LIMIT_WINDOW_SECONDS = 60.0
LOG_FORMATS = ("text", "json")
# The name of the handler configure_logging installs, so a second call finds it.
_HANDLER_NAME = "bot.logs"

# Attributes that every LogRecord has. Any other attribute was set by `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


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
                relative = path.split(package, 1)[1]
                location = f" at {package.strip('/')}/{relative}:{frame.lineno}"
                break
        if location:
            break
    return f"{type(error).__name__}{location}"


def configure_logging(
    *,
    default_level: str = "INFO",
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    rate_limit_window: float = RATE_LIMIT_WINDOW_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> logging.Handler:
    """Install the bot's log handler on the root logger and quiet client libraries.

    The handler writes to `stream`, or to stderr when it is None. LOG_LEVEL
    sets the root level and LOG_FORMAT picks "text" or "json", both read from
    `environ` (default: os.environ). An invalid value of either falls back to
    the default with a warning. Calling this again replaces the handler it
    installed before and leaves other handlers, such as pytest's, in place.
    Returns the installed handler.
    """
    environ = os.environ if environ is None else environ
    level_name, level_problem = _parse_level(environ.get("LOG_LEVEL"), default_level)
    log_format, format_problem = _parse_format(environ.get("LOG_FORMAT"))

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(RedactionFilter(secrets))
    handler.addFilter(RepeatFilter(window=rate_limit_window, clock=clock))

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(level_name)
    quiet_client_loggers()

    logger = logging.getLogger(__name__)
    if level_problem:
        logger.warning("logging.invalid_level %s", level_problem)
    if format_problem:
        logger.warning("logging.invalid_format %s", format_problem)
    return handler


def quiet_client_loggers() -> None:
    """Raise the level of libraries that log URLs, bodies or headers."""
    # httpx logs every URL at INFO, and a response_url is a credential;
    # slack_sdk logs request URLs and bodies at DEBUG; Bolt logs bodies at INFO.
    for name in ("httpx", "httpcore", "slack_sdk", "slack_bolt", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """List the secret values the bot's settings read from the environment.

    Uses Settings.secret_values() when the settings are valid. When they are
    not, it still returns the raw values of every SecretStr setting, so the
    log redacts them while the process reports the invalid settings.
    """
    from pydantic import SecretStr, ValidationError

    from bot.settings import Settings

    environ = os.environ if environ is None else environ
    try:
        return Settings.model_validate(dict(environ)).secret_values()
    except ValidationError:
        pass
    values = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if annotation is not SecretStr and SecretStr not in typing.get_args(annotation):
            continue
        value = environ.get(field.alias or name)
        if value:
            values.append(value)
    return values


# -- filters ----------------------------------------------------------------


class RedactionFilter(logging.Filter):
    """Replace each configured secret with "[redacted]" in a record.

    The message is formatted with its arguments first, so a secret passed as
    an argument is caught too. Exception text, stack text and string values
    given with `extra=` are redacted as well. Values shorter than
    MIN_SECRET_LENGTH are ignored. This is the last line of defence: code
    should not log secrets in the first place.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        long_enough = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        # Longer secrets first, so a secret that contains another is replaced whole.
        self.secrets = sorted(long_enough, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


@dataclass
class _Window:
    """One rate-limit window: when it started and how many records it dropped."""

    started: float
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """Rate-limit identical warnings and errors.

    The first WARNING-or-above record with a given (logger, level, formatted
    message) passes, and identical ones within `window` seconds of it are
    dropped. The first one after the window passes with "(N similar messages
    suppressed)" appended and starts a new window. Records below WARNING
    always pass.

    NOTE: repeats dropped in the last window before the process exits are
    never reported, because only a later identical record reports them.
    """

    # The maximum number of keys. When it is reached, expired windows are
    # dropped first, then the oldest ones.
    MAX_KEYS = 1024

    def __init__(
        self,
        *,
        window: float = RATE_LIMIT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        key = (record.name, record.levelno, message)
        now = self.clock()
        with self._lock:
            current = self._windows.get(key)
            if current is not None and now - current.started < self.window:
                current.suppressed += 1
                return False
            suppressed = current.suppressed if current is not None else 0
            self._windows.pop(key, None)
            self._make_room(now)
            self._windows[key] = _Window(started=now)
        if suppressed:
            noun = "message" if suppressed == 1 else "messages"
            record.msg = f"{message} ({suppressed} similar {noun} suppressed)"
            record.args = None
        return True

    def _make_room(self, now: float) -> None:
        if len(self._windows) < self.MAX_KEYS:
            return
        for key, window in list(self._windows.items()):
            if now - window.started >= self.window:
                del self._windows[key]
        # Dicts keep insertion order, so the first keys are the oldest windows.
        while len(self._windows) >= self.MAX_KEYS:
            del self._windows[next(iter(self._windows))]


# -- formatters -------------------------------------------------------------

_EXCEPTION_FORMATTER = logging.Formatter()


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the attributes a caller added to a record with `extra=`."""
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _RECORD_ATTRIBUTES and not name.startswith("_")
    }


def iso_time(created: float) -> str:
    """Format a record's `created` time as ISO 8601 UTC with milliseconds."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """Format `time LEVEL logger message key=value ...`, one record a line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            iso_time(record.created),
            record.levelname,
            record.name,
            record.getMessage(),
        ]
        for name, value in extra_fields(record).items():
            parts.append(f"{name}={value}")
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """Format one JSON object a line: time, level, logger, message, extras.

    The `extra=` fields follow the four fixed ones, and a field named like a
    fixed one is dropped. Values that JSON cannot encode are written as str().
    Exception and stack text go in "exception" and "stack".
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            payload.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


# -- environment ------------------------------------------------------------


def _parse_level(value: str | None, default: str) -> tuple[str, str | None]:
    """Return (level name, problem or None) for a LOG_LEVEL value."""
    default_name = default.upper()
    if not value:
        return default_name, None
    name = value.strip().upper()
    if isinstance(logging.getLevelNamesMapping().get(name), int):
        return name, None
    return default_name, (
        f"value={value[:40]!r}: LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or "
        f"CRITICAL; using {default_name}"
    )


def _parse_format(value: str | None) -> tuple[str, str | None]:
    """Return (format, problem or None) for a LOG_FORMAT value."""
    if not value:
        return "text", None
    name = value.strip().lower()
    if name in LOG_FORMATS:
        return name, None
    return "text", f"value={value[:40]!r}: LOG_FORMAT must be text or json; using text"
