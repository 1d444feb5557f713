"""Errors the local cloud answers with, shaped like the real services' errors.

Every error carries the real HTTP status and `Code`; the SDK turns 4xx into ClientException,
5xx into ServerException and anything with `x-acs-retry-after` into ThrottlingException.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API error as the real service returns it: HTTP status + Code + Message."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        retry_after_ms: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_ms = retry_after_ms
        self.extra = extra or {}


# Documented HTTP status of the codes that can be injected as faults by name alone
# (alibaba-apis.md §2.1, §2.2, §2.7, §2.8). Unknown codes fall back on their shape.
_STATUS_BY_CODE = {
    "Throttling": 400,
    "Throttling.User": 400,
    "Throttling.Api": 400,
    "Rejected.Throttling": 400,
    "TooManyRequests": 429,  # EventBridge's throttling (EventBridge "Error codes" doc)
    "ServiceUnavailable": 503,
    "ServiceUnavailable.RegionMaintaining": 503,
    "InternalError": 500,
    "UnknownError": 400,
    "OperationConflict": 409,
    "Forbidden.RAM": 403,
    "Forbidden.SubUser": 403,
    "Forbidden.Unauthorized": 403,
    "Forbidden": 403,
    "NoPermission.Tag": 403,
    "QuotaExceed.Image": 403,
    "QuotaExceed.Snapshot": 403,
    "QuotaExceed.Tags": 403,
    "InstanceLockedForSecurity": 400,
    "IncorrectInstanceStatus": 400,
    "IncorrectDiskStatus.CreatingSnapshot": 403,
    "InvalidParamter.Conflict": 403,
    "IdempotenceParamNotMatch": 400,
    "SnapshotCreatedImage": 403,
    "ImageUsingByInstance": 403,
}

_MESSAGE_BY_CODE = {
    "Throttling": "Request was denied due to request throttling.",
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server.",
    "InternalError": "The request processing has failed due to some unknown error, exception or failure.",
    "OperationConflict": "Request was denied due to conflict with a previous request.",
    "Forbidden.RAM": "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
    "QuotaExceed.Image": "The Image Quota exceeds.",
    "InstanceLockedForSecurity": "The specified operation is denied as your instance is locked for security reasons.",
    "IncorrectInstanceStatus": "The current status of the instance does not support this operation.",
}


def is_throttling(code: str) -> bool:
    return code.startswith("Throttling") or code in ("Rejected.Throttling", "TooManyRequests")


def status_for(code: str) -> int:
    """The documented HTTP status of an error code (used by injected faults)."""
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    if code.endswith(".NotFound") or code.startswith("EntityNotExists"):
        return 404
    if code.startswith(("Forbidden", "NoPermission", "QuotaExceed")):
        return 403
    return 400


def injected_error(code: str, message: str | None = None, status: int | None = None) -> ApiError:
    """An error as a fault plan injects it; throttling codes carry a retry hint."""
    return ApiError(
        code,
        message or _MESSAGE_BY_CODE.get(code, f"Injected fault: {code}."),
        status or status_for(code),
        retry_after_ms=1000 if is_throttling(code) else None,
    )


# -- constructors for the shapes every API shares -------------------------------------------------


def missing_parameter(name: str) -> ApiError:
    return ApiError(
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def invalid_parameter(name: str, reason: str, code: str = "InvalidParameter") -> ApiError:
    return ApiError(code, f'The specified parameter "{name}" is not valid: {reason}')


def not_found(code: str, what: str) -> ApiError:
    return ApiError(code, f"The specified {what} does not exist.", 404)
