"""The permission file: validation errors name the entry, and deny by default."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.permissions import (
    ABORT,
    READ,
    PermissionFileError,
    load_permission_file,
    parse_permissions,
)

EXAMPLE = """
roles:
  responder:
    grants:
      - Account > Templates > Runs > Abort
      - Account > Templates > General > Read
    templates: ["*"]
    channels: ["*"]
  viewer:
    grants: [Account > Templates > General > Read]
  prod:
    grants: [Account > Templates > Runs > Abort]
    templates: ["prod-*"]
    channels: [C0PROD]
users:
  U01RESPOND: [responder]
  U02VIEWER: [viewer]
  U03PROD: [prod]
usergroups:
  S01ONCALL: [responder]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "permissions.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads(tmp_path: Path) -> None:
    permissions = load_permission_file(write(tmp_path, EXAMPLE))

    assert permissions.allows(
        ABORT, user_id="U01RESPOND", template_id="x", channel_id="C1"
    )
    assert permissions.allows(
        READ, user_id="U02VIEWER", template_id="x", channel_id="C1"
    )
    assert not permissions.allows(
        ABORT, user_id="U02VIEWER", template_id="x", channel_id="C1"
    )


def test_template_and_channel_scopes(tmp_path: Path) -> None:
    permissions = load_permission_file(write(tmp_path, EXAMPLE))

    def allows(template_id: str, channel_id: str) -> bool:
        return permissions.allows(
            ABORT, user_id="U03PROD", template_id=template_id, channel_id=channel_id
        )

    assert allows("prod-deploy", "C0PROD")
    assert not allows("staging-deploy", "C0PROD")
    assert not allows("prod-deploy", "C0OTHER")


def test_usergroup_roles(tmp_path: Path) -> None:
    permissions = load_permission_file(write(tmp_path, EXAMPLE))

    assert not permissions.allows(
        ABORT, user_id="U09X", template_id="t", channel_id="C1"
    )
    assert permissions.allows(
        ABORT,
        user_id="U09X",
        template_id="t",
        channel_id="C1",
        usergroup_ids=["S01ONCALL"],
    )


def test_unknown_user_denied_everything(tmp_path: Path) -> None:
    permissions = load_permission_file(write(tmp_path, EXAMPLE))

    for grant in (ABORT, READ):
        assert not permissions.allows(
            grant, user_id="U0STRANGE", template_id="t", channel_id="C1"
        )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "roles:\n  r:\n    grants: [Account > Templates > Runs > Delete]\n",
            "roles.r.grants",
        ),
        (
            "roles:\n  r:\n    grants: [Account > Templates > Runs > Delete]\n",
            "unknown grant",
        ),
        ("roles: {}\nusers:\n  U01A: [ghost]\n", "unknown role 'ghost'"),
        ("roles: {}\nusers:\n  alice: []\n", "'alice' is not a Slack user id"),
        ("roles: {}\nusergroups:\n  U01A: []\n", "'U01A' is not a Slack user group id"),
        (
            "roles:\n  r:\n    grants: []\n    channels: [general]\n",
            "'general' is not a Slack channel id",
        ),
        ("roles:\n  r:\n    grant: []\n", "unknown key 'grant'"),
        ("rolez: {}\n", "unknown top-level key 'rolez'"),
        ("roles: [a, b]\n", "roles must be a mapping"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("roles:\n  r:\n    grants: [1, 2]\n", "must be a list of strings"),
        ("roles: {\n", "invalid YAML at line"),
    ],
)
def test_invalid_file_names_entry(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(PermissionFileError) as caught:
        load_permission_file(write(tmp_path, text))

    assert named in str(caught.value)


def test_missing_file_stops_startup(tmp_path: Path) -> None:
    with pytest.raises(PermissionFileError) as caught:
        load_permission_file(tmp_path / "absent.yaml")

    assert "BOT_PERMISSIONS_FILE" in str(caught.value)
    assert "not found" in str(caught.value)


def test_empty_file_denies_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    permissions = load_permission_file(write(tmp_path, ""))

    assert permissions.is_empty
    assert not permissions.allows(
        READ, user_id="U01A", template_id="t", channel_id="C1"
    )
    assert "every request will be denied" in caplog.text


def test_parse_none_is_empty() -> None:
    assert parse_permissions(None).is_empty


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "roles:\n  r:\n    grants: []\n    channels: []\n",
            "roles.r.channels is empty",
        ),
        (
            "roles:\n  r:\n    grants: []\n    templates: []\n",
            "roles.r.templates is empty",
        ),
        ("roles:\n  r:\n    grants: []\n    templates: [NIGHTLY]\n", "can never match"),
        ("roles:\n  r:\n    grants: []\n    templates: ['../*']\n", "can never match"),
        ("roles: {}\nusers: {}\nusers: {}\n", "key 'users' appears twice (line 3)"),
    ],
)
def test_silent_mistakes_are_rejected(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(PermissionFileError) as caught:
        load_permission_file(write(tmp_path, text))

    assert named in str(caught.value)


def test_non_utf8_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "permissions.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")

    with pytest.raises(PermissionFileError) as caught:
        load_permission_file(path)

    assert "BOT_PERMISSIONS_FILE" in str(caught.value)
    assert "not UTF-8" in str(caught.value)
