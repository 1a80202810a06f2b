"""Permission checks for the Slack user who acts, in the channel where they act."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import PermissionDenied
from bot.permissions import PermissionMap, Role
from bot.store import Store

logger = logging.getLogger(__name__)


class AccessControl:
    """Decides each request from the permission map and Slack user group members.

    Nothing is allowed by default: a user with no mapped role, or whose user
    group members cannot be read, is denied.
    """

    def __init__(
        self,
        permissions: PermissionMap,
        *,
        store: Store,
        slack: AsyncWebClient,
        usergroup_ttl: int,
    ) -> None:
        self.permissions = permissions
        self.store = store
        self.slack = slack
        self.usergroup_ttl = usergroup_ttl

    async def require(
        self, grant: str, *, user_id: str, channel_id: str, template_id: str
    ) -> None:
        """Raise PermissionDenied unless the user has `grant` for this template."""
        if self.permissions.allows(
            grant, user_id=user_id, template_id=template_id, channel_id=channel_id
        ):
            return
        groups = await self.usergroups_of(user_id)
        if groups and self.permissions.allows(
            grant,
            user_id=user_id,
            template_id=template_id,
            channel_id=channel_id,
            usergroup_ids=groups,
        ):
            return
        logger.info(
            "access.denied user=%s channel=%s template=%s grant=%r",
            user_id,
            channel_id,
            template_id,
            grant,
        )
        raise PermissionDenied(user_id, grant, template_id, channel_id)

    async def roles_of(self, user_id: str) -> tuple[list[Role], list[str]]:
        groups = await self.usergroups_of(user_id)
        return self.permissions.roles_of(user_id, groups), groups

    async def usergroups_of(self, user_id: str) -> list[str]:
        """List the mapped user groups that have the user as a member."""
        member_of = []
        for group_id in self.permissions.usergroups:
            members = await self._members(group_id)
            if user_id in members:
                member_of.append(group_id)
        return member_of

    async def _members(self, group_id: str) -> set[str]:
        cached = await self.store.get_usergroup_members(group_id)
        if cached is not None:
            return cached
        try:
            response = await self.slack.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            logger.warning(
                "access.usergroup_read_failed usergroup=%s error=%s",
                group_id,
                error.response.get("error", "unknown"),
            )
            return set()
        except Exception as error:  # noqa: BLE001 - network errors of any kind deny
            logger.warning(
                "access.usergroup_read_failed usergroup=%s error=%s",
                group_id,
                type(error).__name__,
            )
            return set()
        members = {str(u) for u in response.get("users") or []}
        await self.store.put_usergroup_members(
            group_id, members, ttl=self.usergroup_ttl
        )
        return members
