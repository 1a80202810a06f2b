"""The audit trail of abort attempts: a capped Redis stream and one log line each."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.metrics import Metrics
from bot.store import Store

logger = logging.getLogger("bot.audit")

OUTCOMES = ("requested", "denied", "aborted", "failed", "skipped")


@dataclass(frozen=True)
class AuditEntry:
    at: float
    outcome: str
    user_id: str
    channel_id: str
    template_id: str
    run_id: str
    error_id: str | None = None
    detail: str | None = None

    def fields(self) -> dict[str, str]:
        fields = {
            "at": f"{self.at:.3f}",
            "outcome": self.outcome,
            "user": self.user_id,
            "channel": self.channel_id,
            "template": self.template_id,
            "run": self.run_id,
        }
        if self.error_id:
            fields["error_id"] = self.error_id
        if self.detail:
            fields["detail"] = self.detail
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> AuditEntry:
        return cls(
            at=float(fields["at"]),
            outcome=str(fields["outcome"]),
            user_id=str(fields["user"]),
            channel_id=str(fields["channel"]),
            template_id=str(fields["template"]),
            run_id=str(fields.get("run", "")),
            error_id=fields.get("error_id"),
            detail=fields.get("detail"),
        )


class AuditLog:
    def __init__(self, store: Store, metrics: Metrics, *, max_length: int) -> None:
        self.store = store
        self.metrics = metrics
        self.max_length = max_length

    async def record(
        self,
        outcome: str,
        *,
        user_id: str,
        channel_id: str,
        template_id: str,
        run_id: str,
        error_id: str | None = None,
        detail: str | None = None,
    ) -> AuditEntry:
        """Append an entry to the stream and log it.

        While Redis is down only the log line is written.
        """
        assert outcome in OUTCOMES, outcome
        entry = AuditEntry(
            at=time.time(),
            outcome=outcome,
            user_id=user_id,
            channel_id=channel_id,
            template_id=template_id,
            run_id=run_id,
            error_id=error_id,
            detail=detail,
        )
        self.metrics.aborts.labels(outcome=outcome).inc()
        stored = await self.store.append_audit(
            entry.fields(), max_length=self.max_length
        )
        logger.info(
            "audit outcome=%s user=%s channel=%s template=%s run=%s error_id=%s "
            "detail=%s",
            outcome,
            user_id,
            channel_id,
            template_id,
            run_id,
            error_id or "-",
            detail or "-",
            extra={"audit": {**entry.fields(), "stored": stored}},
        )
        return entry

    async def recent(
        self, *, count: int, template_ids: set[str] | None = None, allowed: Any = None
    ) -> list[AuditEntry]:
        """Return up to `count` newest entries, filtered by template and `allowed`."""
        entries = []
        for fields in await self.store.read_audit(scan=max(count * 50, 1000)):
            try:
                entry = AuditEntry.from_fields(fields)
            except (KeyError, ValueError):
                continue
            if template_ids is not None and entry.template_id not in template_ids:
                continue
            if allowed is not None and not allowed(entry.template_id):
                continue
            entries.append(entry)
            if len(entries) >= count:
                break
        return entries
