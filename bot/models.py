"""Pydantic models of the Northflank objects the bot reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

# Statuses of the published reference plus those of the current API spec.
# Any other string is kept as it is, because the API adds statuses over time.
KNOWN_STATUSES = frozenset(
    {
        "pending",
        "running",
        "success",
        "failure",
        "aborted",
        "aborting",
        "queued",
        "unknown",
        "skipped",
        "waiting",
        "retrying",
        "async_wait",
        "approval_wait",
    }
)
CONCLUDED_STATUSES = frozenset({"aborted", "success", "failure", "skipped"})


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an API timestamp: ISO 8601 with `T` or with a space, or epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Epoch milliseconds are larger than any plausible epoch in seconds.
        seconds = value / 1000 if value > 1e11 else value
        parsed = datetime.fromtimestamp(seconds, tz=UTC)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a timestamp: {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


class TemplateRun(BaseModel):
    """A template run as returned by the get, list and abort endpoints."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    id: str
    template_id: str = Field(validation_alias=AliasChoices("templateId", "template_id"))
    status: str = "unknown"
    concluded: bool = False
    name: str | None = None
    description: str | None = None
    created_at: datetime | None = Field(
        None, validation_alias=AliasChoices("createdAt", "created_at")
    )
    updated_at: datetime | None = Field(
        None, validation_alias=AliasChoices("updatedAt", "updated_at")
    )

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> datetime | None:
        try:
            return parse_timestamp(value)
        except (ValueError, OverflowError, OSError):
            # A malformed timestamp must not hide the run's status.
            return None

    @field_validator("status", mode="before")
    @classmethod
    def _normalise_status(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            return "unknown"
        return value.strip()

    @property
    def is_concluded(self) -> bool:
        return self.concluded or self.status in CONCLUDED_STATUSES

    @property
    def is_known_status(self) -> bool:
        return self.status in KNOWN_STATUSES

    def to_cache(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=False)


class RunList(BaseModel):
    """One page of runs and whether more exist."""

    runs: list[TemplateRun]
    has_next_page: bool = False
    cursor: str | None = None
