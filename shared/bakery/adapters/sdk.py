"""One way to call an SDK method: name the action, map every failure onto bakery.errors."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from bakery.adapters.pacing import Pacer
from bakery.errors import BakeFailure, CloudError, RetryableError, is_throttling

T = TypeVar("T")

# Codes that say "try again later" (alibaba-apis.md §1.7, §2.1; the Terraform provider retries these too).
RETRYABLE_CODES = {
    "ServiceUnavailable", "InternalError", "OperationConflict", "Operation.Conflict", "LastTokenProcessing",
    "IncorrectDiskStatus.CreatingSnapshot", "UnknownError",
}  # fmt: skip
PERMISSION_CODES = {"Forbidden.RAM", "Forbidden", "Forbidden.SubUser", "Forbidden.Unauthorized", "NoPermission.Tag",
                    "Forbidden.NotSupportRAM"}  # fmt: skip


THROTTLE_RETRIES = 2  # quick retries of a throttled (or 5xx) call before handing it to FC / the sweep
MAX_WAIT_SECONDS = 2.0
# A 5xx may come back from a call that did take effect. Every call Bakery makes is safe to send again: reads,
# idempotent writes (tags, attributes, deletes of what is gone), ClientTokens (CreateImage, StartExecution),
# deterministic event ids (PutEvents), a read-only preflight (RunCommand: a second invocation reports the same),
# and Stop/StartInstance, whose IncorrectInstanceStatus on a repeat the ECS adapter hands back as retryable
# (the step then re-reads the instance). A call that is not would be listed here.
NOT_REPEATABLE: frozenset[str] = frozenset()


def call(service: str, action: str, method: Callable[..., T], *args: Any,
         wait: Callable[[float], None] | None = None, pacer: Pacer | None = None) -> T:  # fmt: skip
    """Run `method(*args)` for the RAM action `<service>:<action>`, translating SDK errors.

    A throttled call is retried up to THROTTLE_RETRIES times after `wait`ing what `x-acs-retry-after`
    asks (capped, with jitter), so a brief burst does not cost a whole FC retry or sweep cycle; so is a 5xx
    of a call that is safe to repeat (not NOT_REPEATABLE): a step of several calls under a few percent of
    5xx would otherwise exhaust FC's retries into the dead letter. With a `pacer` (a rate-limited action), each
    call first waits its turn and a throttle sets the pace (bakery.adapters.pacing) instead of a blind wait."""
    for attempt in range(THROTTLE_RETRIES + 1):
        if pacer is not None:
            pacer.admit()
        try:
            return _translated(service, action, method, *args)
        except RetryableError as exc:
            repeatable = exc.throttled or (exc.code in _SERVER_ERRORS and action not in NOT_REPEATABLE)
            if not repeatable or wait is None or attempt == THROTTLE_RETRIES:
                if pacer is not None and exc.throttled:
                    pacer.throttled((exc.retry_after_ms or 1000) / 1000)
                raise
            hint = (exc.retry_after_ms or 200 * 2**attempt) / 1000
            if pacer is not None and exc.throttled:
                pacer.throttled(min(MAX_WAIT_SECONDS, hint))  # the next admit() waits the pace
            else:
                wait(min(MAX_WAIT_SECONDS, hint * random.uniform(1.0, 1.25)))
    raise AssertionError("unreachable")


_SERVER_ERRORS = frozenset({"ServiceUnavailable", "InternalError", "UnknownError", ""})  # not Unreachable: no endpoint


def _translated(service: str, action: str, method: Callable[..., T], *args: Any) -> T:
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
    from darabonba.exceptions import UnretryableException

    try:
        return method(*args)
    except ThrottlingException as exc:
        raise RetryableError(
            f"{action} was throttled", code=exc.code or "Throttling", retry_after_ms=exc.retry_after
        ) from exc
    except AlibabaCloudException as exc:
        code = exc.code or ""
        status = getattr(exc, "status_code", 0) or 0
        message = (exc.data or {}).get("Message", str(exc)) if isinstance(exc.data, dict) else str(exc)
        if is_throttling(code) or code in RETRYABLE_CODES or status >= 500:
            raise RetryableError(f"{action}: {code}: {message}", code=code) from exc
        if code in PERMISSION_CODES:
            ram_action = f"{service}:{action}"
            detail = exc.access_denied_detail if isinstance(getattr(exc, "access_denied_detail", None), dict) else {}
            ram_action = detail.get("AuthAction", ram_action) if detail else ram_action
            raise BakeFailure(
                "missing-permission",
                f"The function's RAM role may not call {ram_action} ({code}). Add "
                f'{{"Effect": "Allow", "Action": ["{ram_action}"], "Resource": "*"}} to its policy '
                "(template.yml FunctionRole)."
                + (
                    " CreateImage also needs snapshot and instance read permissions." if action == "CreateImage" else ""
                ),
                action=ram_action,
                code=code,
            ) from exc
        raise CloudError(code, message, status=status, action=action) from exc
    except UnretryableException as exc:  # connection refused, timeouts, TLS: the endpoint may be back later
        raise RetryableError(f"{action}: cannot reach the API: {exc}", code="Unreachable") from exc
