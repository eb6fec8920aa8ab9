"""One exception tree for everything the Fly client raises.

Every error names the HTTP method, the API path, the status Fly answered with (``None`` when no answer came
back at all), Fly's own error text and the ``fly-request-id`` that Fly support asks for. The token is never
part of any of them: the client redacts it from Fly's text before an error is built. As in superfly/fly-go,
the status code decides the class; the message text is only shown, never parsed.
"""

from __future__ import annotations

from typing import Any

from components.errors import CatwalkError


class FlyApiError(CatwalkError):
    """A Fly Machines API call failed (after any retries the call was allowed)."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        body: str | None = None,
    ) -> None:
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.request_id = request_id
        self.code = code  # Fly's machine-readable `status` field, e.g. "name_taken"
        self.body = body
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        rid = f" (fly-request-id {self.request_id})" if self.request_id else ""
        return f"Fly API {where}: {status}: {self.message}{rid}"

    def restated(self, message: str) -> FlyApiError:
        """The same failure (class, call, status, request id, code) told in ``message``, which the caller has
        already written for the user, in place of Fly's text; Fly's body is left out."""
        return type(self)(
            message,
            method=self.method,
            path=self.path,
            status=self.status,
            request_id=self.request_id,
            code=self.code,
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields survive pickling (errors cross processes)
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[FlyApiError], message: str, state: dict[str, Any]) -> FlyApiError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class FlyUnauthorized(FlyApiError):
    """401/403: the token is missing, invalid, or lacks access to this app or organization."""

    hint = "set the token with `pulumi config set --secret catwalk:flyApiToken …` or FLY_API_TOKEN"


class FlyNotFound(FlyApiError):
    """404: the app, machine, lease or IP does not exist (or is not visible to this token)."""


class FlyConflict(FlyApiError):
    """409, or 422 ``name_taken``: the request clashes with the current state (stale version, taken name, lease)."""


class FlyRateLimited(FlyApiError):
    """429 still answered after every retry the call was allowed."""


class FlyWaitTimeout(FlyApiError):
    """A machine did not reach the awaited state within the overall deadline."""


def error_class(status: int | None, code: str | None = None) -> type[FlyApiError]:
    """The exception class for an HTTP status (and Fly's ``status`` code field)."""
    if status in (401, 403):
        return FlyUnauthorized
    if status == 404:
        return FlyNotFound
    if status == 409 or (status == 422 and code == "name_taken"):
        return FlyConflict
    if status == 429:
        return FlyRateLimited
    return FlyApiError
