"""Validation of Northflank and Slack identifiers."""

from __future__ import annotations

import re

# Northflank template and team ids are lowercase slugs: letters, digits and
# single hyphens, at most 63 characters, like DNS labels.
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,62}")
# Template run ids are UUIDs in every response the API sends.
_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_SLACK_USERGROUP = re.compile(r"S[A-Z0-9]{2,20}")
_SLACK_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,20}")

MAX_SLUG_LENGTH = 63


def is_slug(value: str) -> bool:
    return _SLUG.fullmatch(value) is not None


def is_template_id(value: str) -> bool:
    return is_slug(value)


def is_run_id(value: str) -> bool:
    return _RUN_ID.fullmatch(value) is not None


def is_slack_user_id(value: str) -> bool:
    return _SLACK_USER.fullmatch(value) is not None


def is_slack_usergroup_id(value: str) -> bool:
    return _SLACK_USERGROUP.fullmatch(value) is not None


def is_slack_channel_id(value: str) -> bool:
    return _SLACK_CHANNEL.fullmatch(value) is not None
