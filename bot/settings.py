"""Configuration read from the environment."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Mode = Literal["http", "socket", "demo", "check"]

RUN_URL_FIELDS = {"team_id", "template_id", "run_id"}
SECRET_VARIABLES = frozenset(
    {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "NORTHFLANK_API_TOKEN",
    }
)


class SettingsError(Exception):
    """Raised when the environment cannot configure the bot: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, case_sensitive=True
    )

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    northflank_api_token: SecretStr | None = Field(None, alias="NORTHFLANK_API_TOKEN")
    northflank_api_base_url: str = Field(
        "https://api.northflank.com", alias="NORTHFLANK_API_BASE_URL"
    )
    northflank_team_id: str | None = Field(None, alias="NORTHFLANK_TEAM_ID")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    redis_prefix: str = Field("nfbot:", alias="BOT_REDIS_PREFIX")
    data_dir: Path = Field(Path("./.bot-data"), alias="BOT_DATA_DIR")
    permissions_file: Path = Field(
        Path("./permissions.yaml"), alias="BOT_PERMISSIONS_FILE"
    )
    command: str = Field("/nf", alias="BOT_COMMAND")
    watch_interval: float = Field(5.0, gt=0, le=3600, alias="BOT_WATCH_INTERVAL")
    watch_timeout: float = Field(900.0, gt=0, le=86400, alias="BOT_WATCH_TIMEOUT")
    cache_freshness: float = Field(10.0, ge=0, le=3600, alias="BOT_CACHE_FRESHNESS")
    usergroup_cache_ttl: int = Field(
        300, ge=1, le=86400, alias="BOT_USERGROUP_CACHE_TTL"
    )
    northflank_deadline: float = Field(
        10.0, gt=0, le=120, alias="BOT_NORTHFLANK_DEADLINE"
    )
    northflank_timeout: float = Field(6.0, gt=0, le=120, alias="BOT_NORTHFLANK_TIMEOUT")
    audit_max_length: int = Field(
        10_000, ge=10, le=10_000_000, alias="BOT_AUDIT_MAXLEN"
    )
    rate_limit_reserve: int = Field(50, ge=0, le=100000, alias="BOT_RATE_LIMIT_RESERVE")
    shutdown_grace: float = Field(20.0, ge=0, le=600, alias="BOT_SHUTDOWN_GRACE")
    run_url_template: str | None = Field(None, alias="BOT_RUN_URL_TEMPLATE")
    host: str = Field("0.0.0.0", alias="HOST")
    port: int = Field(3000, ge=0, le=65535, alias="PORT")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings passes the environment in explicitly, so a caller's
        # mapping is the only source and tests see exactly what they pass.
        return (init_settings,)

    @field_validator("slack_bot_token")
    @classmethod
    def _check_bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if (
            value is not None
            and value.get_secret_value()
            and not value.get_secret_value().startswith("xoxb-")
        ):
            raise ValueError("must be a bot token, which starts with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _check_app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token, which starts with xapp-")
        return value

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: str) -> str:
        if not value.startswith("/") or len(value) < 2 or " " in value:
            raise ValueError("must be a slash command such as /nf")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _check_slack_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("northflank_api_base_url")
    @classmethod
    def _check_northflank_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be an http(s) URL such as https://api.northflank.com"
            )
        return value.rstrip("/")

    @field_validator("northflank_team_id")
    @classmethod
    def _check_team_id(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        # Reuse the template id rule: Northflank team ids are slugs as well.
        from bot.ids import is_slug

        if not is_slug(value):
            raise ValueError("must be a Northflank team id such as my-team")
        return value

    @field_validator("run_url_template")
    @classmethod
    def _check_run_url_template(cls, value: str | None) -> str | None:
        if not value:
            return None
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        unknown = fields - RUN_URL_FIELDS
        if unknown:
            raise ValueError(
                "may only use {team_id}, {template_id} and {run_id}, "
                f"not {{{sorted(unknown)[0]}}}"
            )
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def secret_values(self) -> list[str]:
        """List every configured secret, for log and message redaction."""
        secrets = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.northflank_api_token,
        ]
        return [s.get_secret_value() for s in secrets if s and s.get_secret_value()]


def load_settings(mode: Mode, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings for a mode; SettingsError lists every problem."""
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(env)
    except ValidationError as error:
        for item in error.errors():
            variable = str(item["loc"][0]) if item["loc"] else "environment"
            message = item["msg"].removeprefix("Value error, ")
            if variable in SECRET_VARIABLES:
                # Never echo a secret, not even an invalid one.
                problems.append(f"{variable}: {message}")
            else:
                shown = _shown(item.get("input"))
                problems.append(f"{variable}: {message} (got {shown})")

    if mode != "demo":
        problems.extend(_missing_secrets(env))
    if problems or settings is None:
        raise SettingsError(problems)
    return settings


def _missing_secrets(env: Mapping[str, str]) -> list[str]:
    missing = []
    if not env.get("SLACK_BOT_TOKEN"):
        missing.append("SLACK_BOT_TOKEN: missing; set it to the bot token (xoxb-...)")
    if not env.get("NORTHFLANK_API_TOKEN"):
        missing.append(
            "NORTHFLANK_API_TOKEN: missing; set it to a Northflank API token"
        )
    if not env.get("SLACK_APP_TOKEN") and not env.get("SLACK_SIGNING_SECRET"):
        missing.append(
            "SLACK_SIGNING_SECRET: missing; set it to the app's signing secret, "
            "or set SLACK_APP_TOKEN to use Socket Mode"
        )
    return missing


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
