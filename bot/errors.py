"""Errors raised by the bot's services.

BotError
 ├── NorthflankError              any failed exchange with the Northflank API
 │    ├── NorthflankUnavailable   no response: connect error or timeout
 │    └── NorthflankAPIError      an error response; keeps status, message, id
 │         ├── NorthflankUnauthorized    401
 │         ├── NorthflankForbidden       403
 │         ├── NorthflankNotFound        404
 │         ├── NorthflankConflict        409
 │         ├── NorthflankRateLimited     429
 │         └── NorthflankServerError     5xx
 ├── InvalidRunData               a success response the bot cannot read
 └── PermissionDenied             the Slack user lacks a grant
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""

    def user_message(self) -> str:
        """Return a plain sentence for the Slack user; never contains secrets."""
        return "Something went wrong inside the bot."


class NorthflankError(BotError):
    pass


class NorthflankUnavailable(NorthflankError):
    """Northflank did not respond: the request may or may not have reached it."""

    def __init__(self, reason: str, *, timed_out: bool, before_send: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out
        # True when the request cannot have left: no connection was made.
        self.before_send = before_send

    def user_message(self) -> str:
        if self.timed_out:
            return "Northflank did not answer in time."
        return "The bot could not reach Northflank."


class NorthflankAPIError(NorthflankError):
    """An error response from the API, with the fields of its error envelope."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        error_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"Northflank answered {status}: {message or 'no message'}")
        self.status = status
        self.message = message
        self.error_id = error_id
        self.retry_after = retry_after

    def user_message(self) -> str:
        return f"Northflank rejected the request (HTTP {self.status})."

    def _with_detail(self, sentence: str) -> str:
        if self.message:
            return f"{sentence} Northflank said: {self.message}"
        return sentence


class NorthflankUnauthorized(NorthflankAPIError):
    def user_message(self) -> str:
        return self._with_detail(
            "Northflank rejected the bot's API token; an admin must renew "
            "NORTHFLANK_API_TOKEN."
        )


class NorthflankForbidden(NorthflankAPIError):
    def user_message(self) -> str:
        return self._with_detail(
            "The bot's Northflank API role lacks the permission for this; an admin "
            "must grant it to the token's role."
        )


class NorthflankNotFound(NorthflankAPIError):
    def user_message(self) -> str:
        return self._with_detail(
            "Northflank has no such template or run; check the ids with `runs`."
        )


class NorthflankConflict(NorthflankAPIError):
    def user_message(self) -> str:
        return self._with_detail(
            "Northflank refused because the run is not in a state that allows this."
        )


class NorthflankRateLimited(NorthflankAPIError):
    def user_message(self) -> str:
        if self.retry_after is not None:
            return (
                "Northflank's rate limit is used up; try again in about "
                f"{describe_wait(self.retry_after)}."
            )
        return "Northflank's rate limit is used up; try again in a minute."


class NorthflankServerError(NorthflankAPIError):
    def user_message(self) -> str:
        return f"Northflank had an internal error (HTTP {self.status})."


class InvalidRunData(BotError):
    def user_message(self) -> str:
        return "Northflank sent a run the bot could not read."


class PermissionDenied(BotError):
    """The Slack user lacks `grant` for `template_id` in `channel_id`."""

    def __init__(self, user_id: str, grant: str, template_id: str, channel_id: str):
        super().__init__(f"{user_id} lacks {grant!r} on {template_id} in {channel_id}")
        self.user_id = user_id
        self.grant = grant
        self.template_id = template_id
        self.channel_id = channel_id

    def user_message(self) -> str:
        return (
            f"You need the permission `{self.grant}` on template "
            f"`{self.template_id}` in this channel. Ask an admin to map it to you "
            "in the bot's permission file."
        )


def describe_wait(seconds: float) -> str:
    """Say how long to wait in words: seconds below two minutes, else minutes."""
    if seconds < 120:
        return f"{max(1, round(seconds))} seconds"
    return f"{round(seconds / 60)} minutes"


_BY_STATUS: dict[int, type[NorthflankAPIError]] = {
    401: NorthflankUnauthorized,
    403: NorthflankForbidden,
    404: NorthflankNotFound,
    409: NorthflankConflict,
    429: NorthflankRateLimited,
}


def api_error_for(
    status: int,
    message: str | None,
    *,
    error_id: str | None = None,
    retry_after: float | None = None,
) -> NorthflankAPIError:
    """Build the typed error for an HTTP error status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = NorthflankServerError if status >= 500 else NorthflankAPIError
    return cls(status, message, error_id=error_id, retry_after=retry_after)
