"""The permission map: which Slack users hold which Northflank grants, where."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot import ids

logger = logging.getLogger(__name__)

ABORT = "Account > Templates > Runs > Abort"
READ = "Account > Templates > General > Read"
# The grants the bot checks, in Northflank's permission names.
KNOWN_GRANTS = frozenset({ABORT, READ})


# Template ids are lowercase slugs, so other characters in a pattern never match.
_TEMPLATE_GLOB = re.compile(r"[a-z0-9*?\[\]!-]+")


class PermissionFileError(Exception):
    """The permission file is missing or invalid; the message names the entry."""


@dataclass(frozen=True)
class Role:
    name: str
    grants: frozenset[str]
    templates: tuple[str, ...] = ("*",)
    channels: tuple[str, ...] = ("*",)

    def covers(self, grant: str, template_id: str, channel_id: str) -> bool:
        return (
            grant in self.grants
            and any(fnmatch.fnmatchcase(template_id, p) for p in self.templates)
            and any(p == "*" or p == channel_id for p in self.channels)
        )


@dataclass(frozen=True)
class PermissionMap:
    roles: dict[str, Role] = field(default_factory=dict)
    users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    usergroups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.users and not self.usergroups

    def roles_of(self, user_id: str, usergroup_ids: Iterable[str] = ()) -> list[Role]:
        """List the roles of a user: direct ones, then those of their user groups."""
        names = list(self.users.get(user_id, ()))
        for group in usergroup_ids:
            names.extend(self.usergroups.get(group, ()))
        seen: dict[str, Role] = {}
        for name in names:
            seen.setdefault(name, self.roles[name])
        return list(seen.values())

    def allows(
        self,
        grant: str,
        *,
        user_id: str,
        template_id: str,
        channel_id: str,
        usergroup_ids: Iterable[str] = (),
    ) -> bool:
        return any(
            role.covers(grant, template_id, channel_id)
            for role in self.roles_of(user_id, usergroup_ids)
        )


def load_permission_file(path: Path) -> PermissionMap:
    """Read and validate the YAML permission file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PermissionFileError(
            f"BOT_PERMISSIONS_FILE: {path} not found; create it (see README) or point "
            "BOT_PERMISSIONS_FILE at it"
        ) from None
    except OSError as error:
        raise PermissionFileError(
            f"BOT_PERMISSIONS_FILE: cannot read {path}: {error.strerror}"
        ) from None
    except UnicodeDecodeError as error:
        raise PermissionFileError(
            f"BOT_PERMISSIONS_FILE: {path} is not UTF-8 text (invalid byte at "
            f"offset {error.start}); save it as UTF-8 YAML"
        ) from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as error:
        raise PermissionFileError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PermissionFileError(f"{path}: invalid YAML{where}") from None

    permissions = parse_permissions(document, source=str(path))
    if permissions.is_empty:
        logger.warning(
            "permissions.empty file=%s: no users or user groups are mapped, so every "
            "request will be denied",
            path,
        )
    return permissions


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a key given twice in one mapping.

    PyYAML keeps the last of two equal keys, so a second `users:` block would
    silently drop every grant of the first.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise _DuplicateKey(f"key {key!r} appears twice (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_permissions(document: Any, *, source: str = "permissions") -> PermissionMap:
    """Validate a parsed permission document; every problem names its entry."""
    if document is None:
        return PermissionMap()
    if not isinstance(document, dict):
        raise PermissionFileError(f"{source}: the top level must be a mapping")
    unknown_keys = set(document) - {"roles", "users", "usergroups"}
    if unknown_keys:
        raise PermissionFileError(
            f"{source}: unknown top-level key {sorted(map(str, unknown_keys))[0]!r}; "
            "use roles, users and usergroups"
        )

    roles = _parse_roles(document.get("roles") or {}, source)
    users = _parse_members(
        document.get("users") or {},
        roles,
        f"{source}: users",
        ids.is_slack_user_id,
        "a Slack user id such as U01ABCDEF",
    )
    usergroups = _parse_members(
        document.get("usergroups") or {},
        roles,
        f"{source}: usergroups",
        ids.is_slack_usergroup_id,
        "a Slack user group id such as S01ABCDEF",
    )
    return PermissionMap(roles=roles, users=users, usergroups=usergroups)


def _parse_roles(raw: Any, source: str) -> dict[str, Role]:
    if not isinstance(raw, dict):
        raise PermissionFileError(f"{source}: roles must be a mapping of role names")
    roles: dict[str, Role] = {}
    for name, body in raw.items():
        where = f"{source}: roles.{name}"
        if not isinstance(name, str) or not name:
            raise PermissionFileError(f"{source}: role names must be strings")
        if not isinstance(body, dict):
            raise PermissionFileError(f"{where} must be a mapping with grants")
        unknown = set(body) - {"grants", "templates", "channels"}
        if unknown:
            raise PermissionFileError(
                f"{where}: unknown key {sorted(map(str, unknown))[0]!r}; "
                "use grants, templates and channels"
            )
        grants = _string_list(body.get("grants"), f"{where}.grants")
        for grant in grants:
            if grant not in KNOWN_GRANTS:
                raise PermissionFileError(
                    f"{where}.grants: unknown grant {grant!r}; known grants are "
                    + ", ".join(repr(g) for g in sorted(KNOWN_GRANTS))
                )
        templates = _string_list(body.get("templates", ["*"]), f"{where}.templates")
        channels = _string_list(body.get("channels", ["*"]), f"{where}.channels")
        for key, values in (("templates", templates), ("channels", channels)):
            if not values:
                raise PermissionFileError(
                    f"{where}.{key} is empty, so the role would apply nowhere; "
                    'list patterns, or ["*"] for all'
                )
        for pattern in templates:
            if not _TEMPLATE_GLOB.fullmatch(pattern):
                raise PermissionFileError(
                    f"{where}.templates: {pattern!r} can never match a template id; "
                    "use lowercase letters, digits, hyphens and the wildcards * ? [ ]"
                )
        for channel in channels:
            if channel != "*" and not ids.is_slack_channel_id(channel):
                raise PermissionFileError(
                    f"{where}.channels: {channel!r} is not a Slack channel id such as "
                    "C01ABCDEF, or *"
                )
        roles[name] = Role(
            name=name,
            grants=frozenset(grants),
            templates=tuple(templates),
            channels=tuple(channels),
        )
    return roles


def _parse_members(
    raw: Any,
    roles: dict[str, Role],
    where: str,
    is_valid_id: Any,
    id_example: str,
) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise PermissionFileError(f"{where} must be a mapping of ids to role lists")
    members: dict[str, tuple[str, ...]] = {}
    for member_id, role_names in raw.items():
        if not isinstance(member_id, str) or not is_valid_id(member_id):
            raise PermissionFileError(f"{where}: {member_id!r} is not {id_example}")
        names = _string_list(role_names, f"{where}.{member_id}")
        for role_name in names:
            if role_name not in roles:
                raise PermissionFileError(
                    f"{where}.{member_id}: unknown role {role_name!r}"
                )
        members[member_id] = tuple(names)
    return members


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PermissionFileError(f"{where} must be a list of strings")
    return [v.strip() for v in value]
