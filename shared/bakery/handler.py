"""The FC edge: bytes → validated event → one pipeline call, under one error policy.

- InvalidEvent (malformed or foreign): logged and dropped — no retry storm, no API mutation. Foreign: a
  CloudEvent of another account or region than the function's own (README "Trust boundary").
- RetryableError (throttling, 5xx, transitional state): re-raised, so FC's async retry comes back.
- BakeFailure escaping a step: the pipeline already ended the bake; logged here as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bakery.config import Settings
from bakery.errors import BakeFailure, ConfigError, InvalidEvent, NotATrigger, RetryableError
from bakery.events import CloudEvent, TimerEvent, parse_invocation, show
from bakery.log import bound, configure, get_logger
from bakery.pipeline import Pipeline

log = get_logger("bakery.handler")

Route = Callable[[Pipeline, "CloudEvent | TimerEvent"], Any]


def fc_handler(name: str, route: Route, *, swept: bool = False) -> Callable[[bytes, Any], str]:
    """Wrap `route` as an FC handler `handler(event: bytes, context) -> str` (JSON).

    `swept`: the sweep resumes whatever this function leaves unfinished, so throttling is flow control,
    not failure — the step is left to the next sweep instead of burning FC's retries into the dead letter.
    """

    def handler(event: bytes, context: Any) -> str:
        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            configure("INFO")
            log.error("configuration error: fix the function's environment variables", reason=str(exc), function=name)
            raise
        configure(settings.log_level)
        with bound(function=name, request_id=getattr(context, "request_id", None)):
            try:
                parsed = parse_invocation(event)
            except InvalidEvent as exc:
                log.warning("dropped an invalid event", reason=str(exc))
                return json.dumps({"status": "dropped", "reason": str(exc)})
            if isinstance(parsed, CloudEvent):
                try:
                    check_origin(parsed, own_account(settings, context), settings.region)
                except InvalidEvent as exc:
                    log.warning("dropped an event from outside this account and region", reason=str(exc),
                                event_id=parsed.id, event_type=parsed.type)  # fmt: skip
                    return json.dumps({"status": "dropped", "reason": str(exc)})
            event_fields = (
                {"event_id": parsed.id, "event_type": parsed.type}
                if isinstance(parsed, CloudEvent)
                else {"timer": parsed.trigger_name}
            )
            with bound(**event_fields):
                try:
                    outcome = route(Pipeline.from_settings(settings), parsed)
                except NotATrigger as exc:  # every tag write in the account can reach bake: no warning each
                    log.info("dropped an event that asks nothing of Bakery", reason=str(exc))
                    return json.dumps({"status": "dropped", "reason": str(exc)})
                except InvalidEvent as exc:
                    log.warning("dropped an event this function does not handle", reason=str(exc))
                    return json.dumps({"status": "dropped", "reason": str(exc)})
                except RetryableError as exc:
                    if swept and exc.throttled:
                        log.warning("throttled; the sweep resumes this within a minute", reason=str(exc), code=exc.code)
                        return json.dumps({"status": "deferred", "reason": exc.code})
                    log.warning("will be retried", reason=str(exc), code=exc.code)
                    raise
                except BakeFailure as exc:
                    log.error("bake failed", reason=exc.reason, detail=exc.message)
                    return json.dumps({"status": "failed", "reason": exc.reason})
                except Exception:  # unknown: log it with the event's context, then let FC retry
                    log.exception("unhandled error; FC will retry the event")
                    raise
                return json.dumps({"status": "ok", **(outcome or {})}, default=str)

    handler.__name__ = f"{name}_handler"
    return handler


def own_account(settings: Settings, context: Any) -> str:
    """The account the function runs in: FC_ACCOUNT_ID, else the context's account_id (both documented for
    every FC runtime: "Configure environment variables" and the Python "Context" page). Neither → ConfigError:
    without it no event can be checked, and failing loudly keeps the events in FC's retries / dead letter."""
    account = settings.account_id or getattr(context, "account_id", None)
    if not isinstance(account, str) or not account:
        log.error("configuration error: FC did not say which account this function runs in")
        raise ConfigError("FC_ACCOUNT_ID is not set and the context has no account_id: Bakery accepts only "
                          "events of its own account, so it cannot accept any (FC sets both on every instance).")  # fmt: skip
    return account


def check_origin(event: CloudEvent, account: str, region: str) -> None:
    """EventBridge stamps every event it delivers with aliyunaccountid / aliyunregionid (EventBridge "Event
    overview"); Bakery acts only in its own account and region, so anything else — or an event without the
    stamps, which did not come through EventBridge's envelope — is dropped before it is routed."""
    if event.account_id is None or event.region_id is None:
        missing = [k for k, v in (("aliyunaccountid", event.account_id), ("aliyunregionid", event.region_id))
                   if v is None]  # fmt: skip
        raise InvalidEvent(f"event {show(event.id)} has no {' or '.join(missing)}: only EventBridge events of "
                           f"account {account} in {region} are accepted")  # fmt: skip
    if event.account_id != account:
        raise InvalidEvent(f"event {show(event.id)} is from account {show(event.account_id)}, not this "
                           f"function's ({account})")  # fmt: skip
    if event.region_id != region:
        raise InvalidEvent(f"event {show(event.id)} is from region {show(event.region_id)}, not this "
                           f"function's ({region})")  # fmt: skip
