"""`python -m bot check`: check the settings and every service the bot needs.

Prints one line per check: the status ("ok", "warn", "FAIL" or "skip"), the
check's name, and what was found. A FAIL line also states the fix. The
network checks run concurrently, each bounded by a timeout, and none of them
retries. Lines name errors by type and URLs without their credentials, so no
token, password or stack trace is printed. Every line also goes through
RedactionFilter with the configured secrets, which ignores values shorter than
MIN_SECRET_LENGTH.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TextIO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
from pydantic import SecretStr
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import (
    InvalidRunData,
    NorthflankAPIError,
    NorthflankForbidden,
    NorthflankNotFound,
    NorthflankUnauthorized,
    NorthflankUnavailable,
)
from bot.logs import (
    RedactionFilter,
    describe_exception,
    quiet_client_loggers,
    secrets_from_environment,
)
from bot.northflank import NorthflankClient
from bot.permissions import READ, PermissionFileError, load_permission_file
from bot.redis_server import EmbeddedRedis
from bot.settings import Settings, SettingsError, load_settings
from bot.store import Store

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 5.0

SETTINGS = "Settings"
PERMISSION_FILE = "Permission file"
REDIS = "Redis"
SLACK_TOKEN = "Slack token"
NORTHFLANK_TOKEN = "Northflank token"

# auth.test error codes that mean the token itself is wrong, revoked or expired.
SLACK_REJECTED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)

Status = Literal["ok", "warn", "FAIL", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, printed as one line of the checklist."""

    status: Status
    name: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


async def run_check(
    environ: dict[str, str] | None = None,
    out: TextIO | None = None,
    *,
    timeout_seconds: float = CHECK_TIMEOUT_SECONDS,
) -> int:
    """Run every check, print the checklist to `out`, and return the exit code.

    `environ` defaults to os.environ and `out` to sys.stdout. `timeout_seconds`
    bounds each network check. Returns 0 when no check failed, else 1.
    """
    stream = out if out is not None else sys.stdout
    quiet_client_loggers()

    settings, results = check_settings(environ)
    if settings is None:
        secrets = secrets_from_environment(environ)
        reason = "not checked because the settings are invalid"
        for name in (PERMISSION_FILE, REDIS, SLACK_TOKEN, NORTHFLANK_TOKEN):
            results.append(CheckResult("skip", name, reason))
    else:
        secrets = settings.secret_values() + _url_passwords(settings)
        results.append(_guarded_call(PERMISSION_FILE, check_permission_file, settings))
        results.extend(await _run_network_checks(settings, timeout_seconds))

    redaction = RedactionFilter(secrets)
    for result in results:
        print(redaction.redact(result.line()), file=stream)
    print(_summary(results), file=stream)
    return 1 if any(result.failed for result in results) else 0


async def _run_network_checks(
    settings: Settings, timeout_seconds: float
) -> list[CheckResult]:
    limit = timeout_seconds
    checks = [
        (REDIS, check_redis(settings, timeout_seconds=limit)),
        (SLACK_TOKEN, check_slack(settings, timeout_seconds=limit)),
        (NORTHFLANK_TOKEN, check_northflank(settings, timeout_seconds=limit)),
    ]
    return list(await asyncio.gather(*(_guarded(n, c) for n, c in checks)))


# -- settings and permission file -------------------------------------------


def check_settings(
    environ: dict[str, str] | None,
) -> tuple[Settings | None, list[CheckResult]]:
    """Load the settings and return them with one result line per problem.

    The settings are None when they cannot be loaded at all. When only a
    required token or secret is missing, they are loaded as the demo loads
    them, so the checks that do not need the missing value can still run.
    """
    try:
        settings = load_settings("check", environ)
    except SettingsError as error:
        problems = [CheckResult("FAIL", SETTINGS, p) for p in error.problems]
    else:
        mode = "Socket Mode" if settings.socket_mode else "HTTP mode"
        detail = f"environment is valid ({mode}, slash command {settings.command})"
        return settings, [CheckResult("ok", SETTINGS, detail)]

    try:
        partial = load_settings("demo", environ)
    except SettingsError:
        return None, problems
    return partial, problems


def check_permission_file(settings: Settings) -> CheckResult:
    """Load and validate BOT_PERMISSIONS_FILE."""
    path = settings.permissions_file
    try:
        permissions = load_permission_file(path)
    except PermissionFileError as error:
        detail = str(error)
        if path.is_file():
            detail += "; fix the file and run the check again"
        return CheckResult("FAIL", PERMISSION_FILE, detail)

    if permissions.is_empty:
        return CheckResult(
            "warn",
            PERMISSION_FILE,
            f"{path} maps no users or user groups, so the bot denies every request; "
            "map Slack user ids or user group ids to roles in it",
        )
    return CheckResult(
        "ok",
        PERMISSION_FILE,
        f"{path} maps {_count(len(permissions.users), 'user')} and "
        f"{_count(len(permissions.usergroups), 'user group')} to "
        f"{_count(len(permissions.roles), 'role')}",
    )


# -- Redis --------------------------------------------------------------------


async def check_redis(settings: Settings, *, timeout_seconds: float) -> CheckResult:
    """PING REDIS_URL, or the embedded server in BOT_DATA_DIR when it is unset."""
    if settings.redis_url:
        where = display_url(settings.redis_url)
        return await _ping_redis(settings.redis_url, where, settings, timeout_seconds)

    where = f"the embedded server in {settings.data_dir}"
    embedded = EmbeddedRedis(settings.data_dir)
    try:
        try:
            url = await asyncio.to_thread(embedded.start)
        except (
            OSError,
            RedisError,
        ) as error:
            return CheckResult(
                "FAIL",
                REDIS,
                f"could not start {where} ({type(error).__name__}); make "
                "BOT_DATA_DIR a writable directory, or set REDIS_URL to a running "
                "Redis",
            )
        return await _ping_redis(url, where, settings, timeout_seconds)
    finally:
        # This shuts the server down only when no other process, such as a
        # running bot, still uses it.
        await asyncio.to_thread(embedded.stop)


async def _ping_redis(
    url: str, where: str, settings: Settings, timeout_seconds: float
) -> CheckResult:
    try:
        store = Store.from_url(
            url,
            prefix=settings.redis_prefix,
            team=settings.northflank_team_id or "default",
        )
    except ValueError:
        return CheckResult(
            "FAIL",
            REDIS,
            "REDIS_URL is not a Redis URL; use redis://host:port/db, "
            "rediss://host:port/db or unix:///path/to/socket",
        )

    try:
        async with asyncio.timeout(timeout_seconds):
            answered = await store.ping()
    except TimeoutError:
        return CheckResult(
            "FAIL",
            REDIS,
            f"PING to {where} timed out after {timeout_seconds:g} s; check that "
            "Redis runs there and that REDIS_URL names the right host and port",
        )
    finally:
        await store.aclose()

    if not answered:
        return CheckResult(
            "FAIL",
            REDIS,
            f"PING to {where} failed; start Redis there, or fix the host, port and "
            "password in REDIS_URL (unset it to use the embedded server)",
        )
    return CheckResult("ok", REDIS, f"{where} replied to PING")


# -- Slack --------------------------------------------------------------------


async def check_slack(settings: Settings, *, timeout_seconds: float) -> CheckResult:
    """Call auth.test with SLACK_BOT_TOKEN."""
    token = _secret(settings.slack_bot_token)
    if token is None:
        return CheckResult(
            "skip", SLACK_TOKEN, "not checked because SLACK_BOT_TOKEN is missing"
        )
    api_url = display_url(settings.slack_api_url)
    client = AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        # slack_sdk's timeout is in whole seconds, so the asyncio timeout below
        # enforces the exact limit.
        timeout=max(1, math.ceil(timeout_seconds)),
        retry_handlers=[],
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            response = await client.auth_test()
    except TimeoutError:
        return CheckResult(
            "FAIL",
            SLACK_TOKEN,
            f"auth.test got no response from {api_url} within {timeout_seconds:g} s; "
            "check SLACK_API_URL and the network",
        )
    except SlackApiError as error:
        return CheckResult("FAIL", SLACK_TOKEN, _slack_error_detail(error, api_url))
    except aiohttp.ClientError as error:
        return CheckResult(
            "FAIL",
            SLACK_TOKEN,
            f"could not reach Slack at {api_url} ({type(error).__name__}); check "
            "SLACK_API_URL and the network",
        )

    team = _short(response.get("team")) or _short(response.get("team_id"))
    user_id = _short(response.get("user_id"))
    if not response.get("bot_id"):
        return CheckResult(
            "warn",
            SLACK_TOKEN,
            f"auth.test accepted a token that is not a bot token (team {team}, user "
            f"{user_id}); set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...)",
        )
    return CheckResult(
        "ok",
        SLACK_TOKEN,
        f"auth.test accepted (team {team}, bot user {user_id})",
    )


def _slack_error_detail(error: SlackApiError, api_url: str) -> str:
    data = error.response.data
    code = _short(data.get("error")) if isinstance(data, dict) else ""
    if code in SLACK_REJECTED_TOKEN_ERRORS:
        return (
            f"Slack rejected SLACK_BOT_TOKEN ({code}); set it to the Bot User OAuth "
            "Token (xoxb-...) from the app's OAuth & Permissions page"
        )
    if code:
        return (
            f"auth.test failed with {code}; check SLACK_BOT_TOKEN and that the app "
            "is installed in the workspace"
        )
    return (
        f"{api_url} returned HTTP {error.response.status_code} for auth.test with no "
        "Slack error code; check that SLACK_API_URL is the Slack Web API"
    )


# -- Northflank -----------------------------------------------------------------


async def check_northflank(
    settings: Settings, *, timeout_seconds: float
) -> CheckResult:
    """List one template with NORTHFLANK_API_TOKEN."""
    token = _secret(settings.northflank_api_token)
    if token is None:
        return CheckResult(
            "skip",
            NORTHFLANK_TOKEN,
            "not checked because NORTHFLANK_API_TOKEN is missing",
        )
    api_url = display_url(settings.northflank_api_base_url)
    team = settings.northflank_team_id
    where = f"{api_url} (team {team})" if team else api_url
    client = NorthflankClient(
        base_url=settings.northflank_api_base_url,
        token=token,
        team_id=team,
        timeout=httpx.Timeout(timeout_seconds),
        deadline=timeout_seconds,
        max_attempts=1,
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            await client.list_templates(per_page=1)
    except TimeoutError:
        return _northflank_timeout(where, timeout_seconds)
    except NorthflankUnavailable as error:
        if error.timed_out:
            return _northflank_timeout(where, timeout_seconds)
        return CheckResult(
            "FAIL",
            NORTHFLANK_TOKEN,
            f"could not reach Northflank at {api_url} ({error.reason}); check "
            "NORTHFLANK_API_BASE_URL and the network",
        )
    except NorthflankAPIError as error:
        return CheckResult("FAIL", NORTHFLANK_TOKEN, _northflank_error_detail(error))
    except InvalidRunData:
        return CheckResult(
            "FAIL",
            NORTHFLANK_TOKEN,
            f"{api_url} did not respond with a JSON object; check that "
            "NORTHFLANK_API_BASE_URL is the Northflank API",
        )
    finally:
        await client.aclose()
    return CheckResult("ok", NORTHFLANK_TOKEN, f"listed templates at {where}")


def _northflank_timeout(where: str, timeout_seconds: float) -> CheckResult:
    return CheckResult(
        "FAIL",
        NORTHFLANK_TOKEN,
        f"listing templates at {where} timed out after {timeout_seconds:g} s; check "
        "NORTHFLANK_API_BASE_URL and the network",
    )


def _northflank_error_detail(error: NorthflankAPIError) -> str:
    if isinstance(error, NorthflankUnauthorized):
        return error.user_message()
    if isinstance(error, NorthflankForbidden):
        return (
            f"Northflank returned 403 for listing templates; grant {READ!r} to the "
            "API role of NORTHFLANK_API_TOKEN"
        )
    if isinstance(error, NorthflankNotFound):
        return (
            "Northflank returned 404 for listing templates; check NORTHFLANK_TEAM_ID "
            "and NORTHFLANK_API_BASE_URL"
        )
    return f"listing templates failed: {error.user_message()}"


# -- helpers --------------------------------------------------------------------


def _guarded_call(
    name: str, check: Callable[[Settings], CheckResult], settings: Settings
) -> CheckResult:
    """Run a check and turn an error it did not expect into a FAIL line."""
    try:
        return check(settings)
    except Exception as error:
        return _unexpected(name, error)


async def _guarded(name: str, check: Awaitable[CheckResult]) -> CheckResult:
    """Await a check and turn an error it did not expect into a FAIL line."""
    try:
        return await check
    except Exception as error:
        return _unexpected(name, error)


def _unexpected(name: str, error: Exception) -> CheckResult:
    described = describe_exception(error)
    logger.error("check.unexpected_error check=%s error=%s", name, described)
    return CheckResult(
        "FAIL",
        name,
        f"the check itself failed ({described}); rerun it, and report this line "
        "if it repeats",
    )


def display_url(url: str) -> str:
    """Return a URL without its user name, password, query or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured URL"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _url_passwords(settings: Settings) -> list[str]:
    passwords = []
    urls = (
        settings.redis_url,
        settings.slack_api_url,
        settings.northflank_api_base_url,
    )
    for url in urls:
        if not url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            passwords.append(password)
    return passwords


def _secret(value: SecretStr | None) -> str | None:
    """Return a secret setting's value, or None when it is unset or empty."""
    if value is None or not value.get_secret_value():
        return None
    return value.get_secret_value()


def _short(value: object, limit: int = 80) -> str:
    """Return an API field as printable text of at most `limit` characters."""
    if value is None:
        return ""
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text[:limit]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _summary(results: list[CheckResult]) -> str:
    failed = sum(1 for r in results if r.status == "FAIL")
    skipped = sum(1 for r in results if r.status == "skip")
    warned = sum(1 for r in results if r.status == "warn")
    if failed:
        return (
            f"{_count(failed, 'check')} failed, {skipped} skipped; fix the FAIL "
            "lines and run `python -m bot check` again"
        )
    if warned:
        return f"all checks passed, with {_count(warned, 'warning')}"
    return "all checks passed"
