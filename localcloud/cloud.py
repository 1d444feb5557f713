"""The local cloud: one process-local region of ECS, OOS and EventBridge behind one dispatcher.

Both transports (real HTTP in `server.py`, in-process `responses` in `mock.py`) hand requests to
`LocalCloud.handle`; everything stateful lives in the services, everything time-dependent runs on
the virtual clock, and every random choice comes from one seeded RNG.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import traceback
from collections import Counter
from typing import Any

from localcloud.clock import VirtualClock
from localcloud.errors import ApiError
from localcloud.events import EventHub
from localcloud.faults import FaultPlan
from localcloud.fc.service import FcService
from localcloud.ids import IdFactory
from localcloud.reply import Reply
from localcloud.scenario import Scenario
from localcloud.services.ecs import EcsService
from localcloud.services.eventbridge import EventBridgeService
from localcloud.services.oos import OosService
from localcloud.services.oss import OssService
from localcloud.services.ros import RosService
from localcloud.wire import ApiRequest, Params, RestRequest

_RESOURCE_ID = re.compile(r"^(i|m|s|d|t|c|exec)-[\w-]+$")
_RESOURCE_TYPE_BY_PREFIX = {
    "i": "ACS::ECS::Instance",
    "m": "ACS::ECS::Image",
    "s": "ACS::ECS::Snapshot",
    "d": "ACS::ECS::Disk",
    "t": "ACS::ECS::Invocation",
    "c": "ACS::ECS::Command",
    "exec": "ACS::OOS::Execution",
}


def _strings_in(value: Any) -> list[str]:
    """Every string inside a response body (ids sit at any depth: StartExecution's Execution.ExecutionId)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []


def _no_rest_service(service_name: str, request: RestRequest, request_id: str) -> Reply:
    """A REST protocol the local cloud routes but does not serve (yet): FC 3.0 answers in FC's error shape."""
    message = f"{request.method!r} against {request.path!r} is not supported (the local cloud has no {service_name})."
    return Reply(
        400, {"Code": "PathNotSupported", "Message": message, "RequestId": request_id}
    )  # FC error codes doc: 400


CONSOLE_USER_AGENT = "ecs.console.aliyun.com"  # what ActionTrail records as a console operation's userAgent


class LocalCloud:
    """An emulated Alibaba Cloud region. Thread-safe: every request and clock move holds `lock`."""

    def __init__(self, scenario: Scenario | None = None, *, record_replies: bool = False) -> None:
        self.lock = threading.RLock()
        self.http_endpoint: str | None = None  # set while a LocalCloudServer serves this cloud
        self.record_replies = record_replies
        self.scenario = scenario or Scenario()
        self._boot()

    # -- lifecycle ------------------------------------------------------------------------------

    def _boot(self) -> None:
        scenario = self.scenario
        self.region = scenario.region
        self.account_id = scenario.account_id
        self.timings = scenario.timings
        self.quotas = scenario.quotas
        self.rng = random.Random(scenario.seed)
        self.ids = IdFactory(self.rng)
        self.clock = VirtualClock(scenario.start_time)
        self.faults = FaultPlan(self.clock, random.Random(scenario.seed + 1))
        self.events = EventHub(self)
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # access key id -> (role name, session name): STS credentials ActionTrail records as an assumed role
        self.role_sessions: dict[str, tuple[str, str]] = {}
        self.caller: tuple[str, str] = ("", "")  # (access key id, user agent) of the call being handled
        self.write_calls = 0  # successful write API calls: "something changed", even when its event is lost
        # (service, action, reply) of every API call, kept only when someone asks (contract tests, traces).
        self.replies: list[tuple[str, str, Reply]] | None = [] if self.record_replies else None
        self.ecs = EcsService(self)
        self.oos = OosService(self)
        self.eventbridge = EventBridgeService(self)
        self.oss = OssService(self)
        self.services = {"ecs": self.ecs, "oos": self.oos, "eventbridge": self.eventbridge}
        self.ecs.load_images(scenario.images)
        self.ecs.load(scenario.instances)
        self.services["oss"] = self.oss  # REST: answered through handle_rest, not by action
        self.fc = FcService(self)
        self.services["fc"] = self.fc  # FC 3.0's ROA API over the functions this cloud runs
        self.services["ros"] = self.ros = RosService(self)  # stacks: created resource by resource on the clock
        self.oss.load(scenario.buckets)
        self.faults.set_rate_limits(scenario.rate_limits)
        self.faults.install(scenario.faults)

    def reset(self, scenario: Scenario | None = None) -> None:
        """Back to the scenario's initial state (or a new scenario): same seed, same run."""
        self.fc.close()  # outside the lock: its driver thread may be waiting for it
        with self.lock:
            self.ecs.close()  # the guest sandboxes of the old state
            self.ros.close()  # the stacks' unpacked code
            if scenario is not None:
                self.scenario = scenario
            self._boot()

    def close(self) -> None:
        self.fc.close()
        with self.lock:
            self.ecs.close()
            self.ros.close()

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: ApiRequest, user_agent: str = "") -> Reply:
        with self.lock:
            reply = self._handle(request, user_agent)
            if self.timings.api_call_seconds:
                self.clock.advance(self.timings.api_call_seconds)
            if self.replies is not None:
                self.replies.append((request.service, request.action, reply))
            return reply

    def handle_rest(self, service_name: str, request: RestRequest) -> Reply:
        """One call of a REST-style service (OSS, FC 3.0 ROA), answered by its `handle_rest(request)`.

        Unlike `handle`, the lock is NOT held around the service: each REST service locks for itself
        (FC's handlers call back into the cloud). The service counts its call with `rest_call` once it
        knows the action, and names it in `request.action`.
        """
        service = self.services.get(service_name)
        if service is None or not hasattr(service, "handle_rest"):
            with self.lock:
                request_id = self.ids.request_id()
            return _no_rest_service(service_name, request, request_id)
        try:
            reply = service.handle_rest(request)
        except Exception as exc:  # an emulator bug: answer, never drop the connection
            traceback.print_exc()
            with self.lock:
                self.errors[f"{request.action or service_name}:InternalError"] += 1
                request_id = self.ids.request_id()
            message = f"The request processing has failed due to some unknown error (local cloud: {type(exc).__name__}: {exc})."
            reply = Reply(500, {"Code": "InternalError", "Message": message, "RequestId": request_id})
        with self.lock:
            if self.timings.api_call_seconds:
                self.clock.advance(self.timings.api_call_seconds)
            if self.replies is not None:
                self.replies.append((service_name, request.action or f"{request.method} {request.path}", reply))
        return reply

    def rest_call(self, action: str) -> tuple[ApiError | None, int]:
        """Count one call of a REST service's `action` and consult the fault plan, as `_handle` does for RPC:
        (the error this call must fail with or None, latency to add in ms)."""
        with self.lock:
            self.calls[action] += 1
            return self.faults.before_call(action)

    def rest_error(self, action: str, code: str) -> None:
        """Count one failed call of a REST service's `action` (same keys as RPC: `Action:Code`)."""
        with self.lock:
            self.errors[f"{action}:{code}"] += 1

    def _handle(self, request: ApiRequest, user_agent: str) -> Reply:
        """One API call; the caller holds the lock."""
        request_id = self.ids.request_id()
        service = self.services[request.service]
        self.calls[request.action] += 1
        spec = service.actions.get(request.action)
        latency = 0
        try:
            if spec is None:
                raise ApiError(
                    "InvalidAction.NotFound",
                    f"Specified api is not found, please check your url and method. "
                    f"(The local cloud does not implement {service.product} {request.action}.)",
                    404,
                )
            fault, latency = self.faults.before_call(request.action)
            if fault is not None:
                raise fault
            self.caller = (request.access_key_id, user_agent)  # who a service's own later calls act as (OOS)
            body = spec.method(service, request.params)
        except ApiError as error:
            self.errors[f"{request.action}:{error.code}"] += 1
            reply = self._error_reply(service, error, request_id)
            reply.latency_ms = latency
            return reply
        except Exception as exc:  # an emulator bug: answer like the service would, never drop the connection
            traceback.print_exc()
            self.errors[f"{request.action}:InternalError"] += 1
            error = ApiError("InternalError", f"The request processing has failed due to some unknown error "
                             f"(local cloud: {type(exc).__name__}: {exc}).", 500)  # fmt: skip
            return self._error_reply(service, error, request_id)
        if spec.write:
            self.write_calls += 1
            self._publish_api_call(service, request, body, request_id, user_agent)
        return Reply(200, {"RequestId": request_id, **body}, latency_ms=latency)

    def _error_reply(self, service: Any, error: ApiError, request_id: str) -> Reply:
        body = {
            "RequestId": request_id,
            "HostId": service.host,
            "Code": error.code,
            "Message": error.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product={service.product}"
            f"&requestId={request_id}",
            **error.extra,
        }
        headers = {}
        if error.retry_after_ms is not None:
            headers["x-acs-retry-after"] = str(error.retry_after_ms)
        return Reply(error.status, body, headers)

    def _publish_api_call(
        self,
        service: Any,
        request: ApiRequest,
        body: dict[str, Any],
        request_id: str,
        user_agent: str,
        *,
        unnamed: bool = False,
    ) -> None:
        """ActionTrail ApiCall event for a successful write call (only writes reach EventBridge)."""
        referenced: dict[str, list[str]] = {}
        for value in [*request.params.flat.values(), *_strings_in(body)]:
            if _RESOURCE_ID.match(value):
                kind = _RESOURCE_TYPE_BY_PREFIX[value.split("-", 1)[0]]
                if not kind.startswith(f"ACS::{service.product.upper()}::"):
                    continue  # an OOS TemplateId "t-..." is no ECS invocation
                if value not in referenced.setdefault(kind, []):
                    referenced[kind].append(value)
        first = next((ids[0] for ids in referenced.values()), "")
        # The ECS console calls the same APIs; ActionTrail records its operations as eventType ConsoleOperation
        # (ActionTrail "Management event structure"; a console record's userAgent is ecs.console.aliyun.com).
        event_type = "ConsoleOperation" if CONSOLE_USER_AGENT in user_agent else "ApiCall"
        data: dict[str, Any] = {
            "eventId": self.ids.uuid(),
            "eventVersion": 1,
            "eventRW": "Write",
            "eventType": event_type,
            "eventName": request.action,
            "serviceName": service.product,
            "acsRegion": self.region,
            "requestId": request_id,
            "eventTime": self.clock.iso(),
            "isGlobal": False,
            "sourceIpAddress": "127.0.0.1",
            "userAgent": user_agent,
            "userIdentity": (
                {"type": "system", "accountId": self.account_id}
                if unnamed
                else self._user_identity(request.access_key_id)
            ),
            "referencedResources": referenced,
        }
        if self.scenario.event_shapes.actiontrail_response:
            # "the API response" (ActionTrail management event structure): the body the caller got
            data["responseElements"] = {"RequestId": request_id, **body}
        # Alibaba's ActionTrail samples keep RPC params flat and add the platform's own keys; whether the
        # EventBridge record carries them (or only requestParameterJson, or neither) is unpublished, so the
        # scenario's event_shapes picks one (README: wiring).
        shape = self.scenario.event_shapes.actiontrail_parameters
        if shape == "flat":
            data["requestParameters"] = {"RegionId": self.region, **request.params.flat,
                                         "AcsProduct": service.product, "AcsHost": service.host, "RequestId": request_id}  # fmt: skip
        elif shape == "json":
            data["requestParameterJson"] = json.dumps({"RegionId": self.region, **request.params.nested})
        self.events.emit(f"acs.{service.name}", f"{service.name}:ActionTrail:{event_type}", first, data)

    def record_call(self, service_name: str, action: str, params: dict[str, str], body: dict[str, Any],
                    caller: tuple[str, str], *, identity: str = "caller") -> None:  # fmt: skip
        """ActionTrail's record of a write a service makes itself (ACS-ECS-RepairImage's CreateImage: an OOS
        template without a RAM role acts as whoever started the execution). `identity`: caller (the starter's
        key), service (a record without userName: another plausible answer, UNCONFIRMED) or none (no record)."""
        if identity == "none":
            return
        request = ApiRequest(service_name, "", action, Params(params), caller[0])
        self._publish_api_call(self.services[service_name], request, body, self.ids.request_id(), "oos.aliyuncs.com",
                               unnamed=identity == "service")  # fmt: skip

    def _user_identity(self, access_key_id: str) -> dict[str, Any]:
        """ActionTrail's userIdentity: a RAM user, or (STS credentials of a role session, e.g. the local FC
        runtime's) an assumed role, shaped as ActionTrail's own sample ("Query ActionTrail events by assuming
        a RAM role": type assumed-role, principalId "<roleId>:<session>", userName "<roleName>:<session>")."""
        number = str(int(hashlib.sha256(access_key_id.encode()).hexdigest(), 16) % 10**16)
        session = self.role_sessions.get(access_key_id)
        if session is None:
            return {"type": "ram-user", "accountId": self.account_id, "principalId": number,
                    "accessKeyId": access_key_id, "userName": access_key_id}  # fmt: skip
        role, name = session
        return {"type": "assumed-role", "accountId": self.account_id, "principalId": f"{number}:{name}",
                "accessKeyId": access_key_id, "userName": f"{role}:{name}",
                "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}}  # fmt: skip

    # -- admin ----------------------------------------------------------------------------------

    def advance(self, seconds: float) -> dict[str, Any]:
        with self.lock:
            fired = self.clock.advance(seconds)
            return {"now": self.clock.iso(), "elapsed": self.clock.elapsed, "timers_fired": fired}

    def advance_to(self, at: float) -> dict[str, Any]:
        with self.lock:
            fired = self.clock.advance_to(at)
            return {"now": self.clock.iso(), "elapsed": self.clock.elapsed, "timers_fired": fired}

    def run_until_idle(self, limit_seconds: float = 7 * 24 * 3600) -> dict[str, Any]:
        """Advance timer by timer until nothing is scheduled (bounded: a run must end)."""
        with self.lock:
            deadline = self.clock.now + limit_seconds
            fired = 0
            while (due := self.clock.next_due()) is not None and due <= deadline:
                fired += self.clock.advance_to(due)
            return {"now": self.clock.iso(), "elapsed": self.clock.elapsed, "timers_fired": fired}

    def clock_info(self) -> dict[str, Any]:
        with self.lock:
            return {
                "now": self.clock.iso(),
                "epoch": self.clock.now,
                "elapsed": self.clock.elapsed,
                "pending_timers": self.clock.pending(),
                "next_due_in": (None if (d := self.clock.next_due()) is None else d - self.clock.now),
            }

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "region": self.region,
                "account_id": self.account_id,
                "clock": self.clock.iso(),
                **self.ecs.state(),
                **self.oos.state(),
                **self.eventbridge.state(),
                **self.oss.state(),
                **self.ros.state(),
            }

    def call_counts(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": dict(self.calls), "errors": dict(self.errors), "total": sum(self.calls.values())}

    def install_faults(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            self.faults.install(entries)
            return self.faults.describe()
