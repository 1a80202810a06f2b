"""Log set-up: text and JSON lines, LOG_LEVEL, repeat rate limiting, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.logs import (
    RedactionFilter,
    RepeatFilter,
    configure_logging,
    secrets_from_environment,
)
from bot.settings import Settings
from tests.conftest import BOT_TOKEN, NORTHFLANK_TOKEN, SECRET_MARKER, SIGNING_SECRET

LOGGER = "tests.logs"


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """Undo configure_logging: its handler, the root level, the library levels."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    libraries = {name: logging.getLogger(name).level for name in ("httpx", "slack_sdk")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, library_level in libraries.items():
        logging.getLogger(name).setLevel(library_level)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every bot variable, because the settings also read os.environ."""
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.alias or name, raising=False)


def configure(
    environ: dict[str, str] | None = None, **options: Any
) -> tuple[io.StringIO, logging.Logger]:
    """Configure logging into a string buffer, reading only `environ`."""
    stream = io.StringIO()
    configure_logging(environ=environ or {}, stream=stream, **options)
    return stream, logging.getLogger(LOGGER)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- formats ---------------------------------------------------------------------


def test_json_lines_carry_fields() -> None:
    stream, logger = configure({"LOG_FORMAT": "json"})

    logger.info(
        "abort.sent template=%s", "nightly-backup", extra={"run_id": "r-1", "n": 2}
    )
    logger.warning("redis.down")

    first, second = records(stream)
    assert first["level"] == "INFO"
    assert first["logger"] == LOGGER
    assert first["message"] == "abort.sent template=nightly-backup"
    assert first["run_id"] == "r-1"
    assert first["n"] == 2
    assert isinstance(first["time"], str)
    assert first["time"].endswith("Z")
    moment = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert moment.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60
    assert second["level"] == "WARNING"
    assert second["message"] == "redis.down"


def test_json_exception_is_one_line() -> None:
    stream, logger = configure({"LOG_FORMAT": "json"})

    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("task.failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    [record] = records(stream)
    assert record["level"] == "ERROR"
    assert "ValueError: broken" in str(record["exception"])


def test_json_keeps_fixed_fields_over_extras() -> None:
    stream, logger = configure({"LOG_FORMAT": "json"})

    logger.info("hello", extra={"level": "fake", "logger": "fake"})

    [record] = records(stream)
    assert record["level"] == "INFO"
    assert record["logger"] == LOGGER


def test_text_is_default() -> None:
    stream, logger = configure()

    logger.info("abort.sent", extra={"template_id": "nightly-backup"})

    line = stream.getvalue().rstrip("\n")
    stamp, level, name, rest = line.split(" ", 3)
    assert stamp.endswith("Z")
    assert level == "INFO"
    assert name == LOGGER
    assert rest == "abort.sent template_id=nightly-backup"


def test_invalid_format_falls_back_to_text() -> None:
    stream, logger = configure({"LOG_FORMAT": "xml"})

    logger.info("hello")

    lines = stream.getvalue().splitlines()
    assert "WARNING bot.logs logging.invalid_format" in lines[0]
    assert "LOG_FORMAT must be text or json; using text" in lines[0]
    assert lines[1].endswith(f"INFO {LOGGER} hello")


def test_configure_twice_keeps_one_handler() -> None:
    configure()
    stream, logger = configure()

    logger.info("once")

    assert stream.getvalue().count("once") == 1
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "bot.logs"]
    assert len(ours) == 1


def test_client_loggers_stay_quiet() -> None:
    configure({"LOG_LEVEL": "DEBUG"})

    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("slack_sdk").level == logging.WARNING


# -- LOG_LEVEL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [("WARNING", logging.WARNING), ("debug", logging.DEBUG), ("", logging.INFO)],
)
def test_log_level_sets_root(value: str, level: int) -> None:
    configure({"LOG_LEVEL": value})

    assert logging.getLogger().level == level


def test_log_level_filters_records() -> None:
    stream, logger = configure({"LOG_LEVEL": "WARNING"})

    logger.info("hidden")
    logger.warning("shown")

    assert "hidden" not in stream.getvalue()
    assert "shown" in stream.getvalue()


def test_default_level_used_without_log_level() -> None:
    configure(default_level="WARNING")

    assert logging.getLogger().level == logging.WARNING


def test_invalid_log_level_falls_back_with_warning() -> None:
    stream, _ = configure({"LOG_LEVEL": "LOUD", "LOG_FORMAT": "json"})

    assert logging.getLogger().level == logging.INFO
    [record] = records(stream)
    assert record["level"] == "WARNING"
    assert record["logger"] == "bot.logs"
    assert "LOG_LEVEL must be DEBUG, INFO" in str(record["message"])
    assert "using INFO" in str(record["message"])


# -- repeat rate limiting ------------------------------------------------------------


def make_record(
    message: str,
    *args: object,
    level: int = logging.WARNING,
    name: str = LOGGER,
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_repeats_suppressed_then_counted() -> None:
    clock = FakeClock()
    limiter = RepeatFilter(window=60, clock=clock)

    assert limiter.filter(make_record("redis.down"))
    clock.advance(1)
    assert not limiter.filter(make_record("redis.down"))
    clock.advance(58)
    assert not limiter.filter(make_record("redis.down"))
    clock.advance(1)
    after_window = make_record("redis.down")
    assert limiter.filter(after_window)
    assert after_window.getMessage() == "redis.down (2 similar messages suppressed)"


def test_repeat_count_singular() -> None:
    clock = FakeClock()
    limiter = RepeatFilter(window=60, clock=clock)

    limiter.filter(make_record("redis.down"))
    limiter.filter(make_record("redis.down"))
    clock.advance(60)
    record = make_record("redis.down")

    assert limiter.filter(record)
    assert record.getMessage() == "redis.down (1 similar message suppressed)"


def test_repeat_window_restarts_after_report() -> None:
    clock = FakeClock()
    limiter = RepeatFilter(window=60, clock=clock)

    limiter.filter(make_record("redis.down"))
    clock.advance(61)
    plain = make_record("redis.down")
    assert limiter.filter(plain)
    assert plain.getMessage() == "redis.down"
    clock.advance(1)
    assert not limiter.filter(make_record("redis.down"))


def test_repeats_keyed_by_logger_level_message() -> None:
    limiter = RepeatFilter(window=60, clock=FakeClock())

    assert limiter.filter(make_record("down host=%s", "a"))
    assert limiter.filter(make_record("down host=%s", "b"))
    assert limiter.filter(make_record("down host=%s", "a", level=logging.ERROR))
    assert limiter.filter(make_record("down host=%s", "a", name="other"))
    assert not limiter.filter(make_record("down host=%s", "a"))


def test_info_never_rate_limited() -> None:
    limiter = RepeatFilter(window=60, clock=FakeClock())

    for _ in range(5):
        assert limiter.filter(make_record("request.done", level=logging.INFO))


def test_repeat_keys_bounded() -> None:
    limiter = RepeatFilter(window=60, clock=FakeClock())

    limiter.filter(make_record("first"))
    for number in range(RepeatFilter.MAX_KEYS):
        limiter.filter(make_record("other %d", number))

    # The oldest window was dropped to make room, so "first" passes again.
    assert limiter.filter(make_record("first"))


def test_repeats_rate_limited_through_handler() -> None:
    clock = FakeClock()
    stream, logger = configure(
        {"LOG_FORMAT": "json"}, rate_limit_window=30.0, clock=clock
    )

    for _ in range(4):
        logger.warning("slack.retry method=%s", "chat.update")
    clock.advance(30)
    logger.warning("slack.retry method=%s", "chat.update")

    messages = [record["message"] for record in records(stream)]
    assert messages == [
        "slack.retry method=chat.update",
        "slack.retry method=chat.update (3 similar messages suppressed)",
    ]


# -- redaction ---------------------------------------------------------------------


def test_secret_redacted_everywhere() -> None:
    stream, logger = configure(
        {"LOG_FORMAT": "json"}, secrets=[BOT_TOKEN, NORTHFLANK_TOKEN]
    )

    logger.warning("slack.token token=%s", BOT_TOKEN)
    logger.warning(f"inline {NORTHFLANK_TOKEN}")
    logger.info("header", extra={"authorization": f"Bearer {BOT_TOKEN}"})
    try:
        raise RuntimeError(f"failed with {NORTHFLANK_TOKEN}")
    except RuntimeError:
        logger.exception("call.failed")

    output = stream.getvalue()
    assert SECRET_MARKER not in output
    first, second, third, fourth = records(stream)
    assert first["message"] == "slack.token token=[redacted]"
    assert second["message"] == "inline [redacted]"
    assert third["authorization"] == "Bearer [redacted]"
    assert "RuntimeError: failed with [redacted]" in str(fourth["exception"])


def test_secret_redacted_in_text_format() -> None:
    stream, logger = configure(secrets=[SIGNING_SECRET])

    logger.error("signature secret=%s", SIGNING_SECRET)

    assert SECRET_MARKER not in stream.getvalue()
    assert "signature secret=[redacted]" in stream.getvalue()


def test_longer_secret_redacted_first() -> None:
    redaction = RedactionFilter(["abcdef", "abcdefghij"])

    assert redaction.redact("x abcdefghij y abcdef") == "x [redacted] y [redacted]"


def test_short_secrets_ignored() -> None:
    redaction = RedactionFilter(["", "s", "token", "token-1"])

    assert redaction.redact("a token-1 b token s") == "a [redacted] b token s"


def test_secrets_from_valid_environment() -> None:
    environ = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "NORTHFLANK_API_TOKEN": NORTHFLANK_TOKEN,
    }

    found = secrets_from_environment(environ)

    assert sorted(found) == sorted([BOT_TOKEN, SIGNING_SECRET, NORTHFLANK_TOKEN])


def test_secrets_from_invalid_environment() -> None:
    environ = {"SLACK_BOT_TOKEN": BOT_TOKEN, "PORT": "not-a-port"}

    found = secrets_from_environment(environ)

    assert BOT_TOKEN in found
