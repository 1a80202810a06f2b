"""The run model: unknown fields, unknown statuses and both timestamp forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.models import TemplateRun, parse_timestamp


def run_data(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "3dd592f6-ce63-45ee-acf8-13dc5ec5235c",
        "templateId": "example-template",
        "name": "Example Template",
        "status": "success",
        "concluded": True,
        "createdAt": "2021-01-01 12:00:00.000Z",
        "updatedAt": "2021-01-01T12:00:00.000Z",
        "spec": {"kind": "Workflow"},
        "refs": {},
        "$schema": "x",
    }
    data.update(overrides)
    return data


def test_published_example_parses() -> None:
    run = TemplateRun.model_validate(run_data())

    expected = datetime(2021, 1, 1, 12, 0, tzinfo=UTC)
    assert run.created_at == expected
    assert run.updated_at == expected
    assert run.is_concluded


def test_unknown_status_is_kept() -> None:
    run = TemplateRun.model_validate(run_data(status="approval_wait", concluded=False))

    assert run.status == "approval_wait"
    assert not run.is_concluded


def test_brand_new_status_is_kept() -> None:
    run = TemplateRun.model_validate(run_data(status="teleporting", concluded=False))

    assert run.status == "teleporting"
    assert not run.is_known_status


@pytest.mark.parametrize("status", [None, "", 42])
def test_missing_status_reads_unknown(status: object) -> None:
    run = TemplateRun.model_validate(run_data(status=status))

    assert run.status == "unknown"


def test_bad_timestamp_does_not_hide_run() -> None:
    run = TemplateRun.model_validate(run_data(createdAt="yesterday"))

    assert run.created_at is None
    assert run.status == "success"


def test_optional_fields_may_be_missing() -> None:
    run = TemplateRun.model_validate(
        {"id": "3dd592f6-ce63-45ee-acf8-13dc5ec5235c", "templateId": "t"}
    )

    assert run.name is None
    assert run.status == "unknown"
    assert run.created_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-01-01 12:00:00.000Z", datetime(2021, 1, 1, 12, tzinfo=UTC)),
        ("2021-01-01T12:00:00Z", datetime(2021, 1, 1, 12, tzinfo=UTC)),
        ("2021-01-01T12:00:00+00:00", datetime(2021, 1, 1, 12, tzinfo=UTC)),
        ("2021-01-01T12:00:00", datetime(2021, 1, 1, 12, tzinfo=UTC)),
        (1609502400, datetime(2021, 1, 1, 12, tzinfo=UTC)),
        (1609502400000, datetime(2021, 1, 1, 12, tzinfo=UTC)),
        (None, None),
    ],
)
def test_parse_timestamp_forms(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected
