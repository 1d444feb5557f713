"""The local cloud: one process-local region of ECS, OOS and EventBridge behind one dispatcher.

Both transports (real HTTP in `server.py`, in-process `responses` in `mock.py`) hand requests to
`LocalCloud.handle`; everything stateful lives in the services, everything time-dependent runs on
the virtual clock, and every random choice comes from one seeded RNG.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
import threading
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from localcloud.clock import VirtualClock
from localcloud.errors import ApiError
from localcloud.events import EventHub
from localcloud.faults import FaultPlan
from localcloud.scenario import Scenario
from localcloud.wire import ApiRequest


class IdFactory:
    """Resource ids shaped like the real ones (`m-bp1…`), drawn from the seeded RNG."""

    _ALPHABET = string.ascii_lowercase + string.digits

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def resource(self, prefix: str) -> str:
        return f"{prefix}-bp1" + "".join(self.rng.choice(self._ALPHABET) for _ in range(17))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def request_id(self) -> str:
        return self.uuid().upper()


@dataclass
class Reply:
    """What a transport sends back: HTTP status, JSON body, extra headers, latency to add."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: int = 0


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


class LocalCloud:
    """An emulated Alibaba Cloud region. Thread-safe: every request and clock move holds `lock`."""

    def __init__(self, scenario: Scenario | None = None, *, record_replies: bool = False) -> None:
        self.lock = threading.RLock()
        self.record_replies = record_replies
        self.scenario = scenario or Scenario()
        self._boot()

    # -- lifecycle ------------------------------------------------------------------------------

    def _boot(self) -> None:
        from localcloud.services.ecs import EcsService
        from localcloud.services.eventbridge import EventBridgeService
        from localcloud.services.oos import OosService

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
        self.write_calls = 0  # successful write API calls: "something changed", even when its event is lost
        # (service, action, reply) of every API call, kept only when someone asks (contract tests, traces).
        self.replies: list[tuple[str, str, Reply]] | None = [] if self.record_replies else None
        self.ecs = EcsService(self)
        self.oos = OosService(self)
        self.eventbridge = EventBridgeService(self)
        self.services = {"ecs": self.ecs, "oos": self.oos, "eventbridge": self.eventbridge}
        self.ecs.load_images(scenario.images)
        self.ecs.load(scenario.instances)
        self.faults.set_rate_limits(scenario.rate_limits)
        self.faults.install(scenario.faults)

    def reset(self, scenario: Scenario | None = None) -> None:
        """Back to the scenario's initial state (or a new scenario): same seed, same run."""
        with self.lock:
            self.ecs.close()  # the guest sandboxes of the old state
            if scenario is not None:
                self.scenario = scenario
            self._boot()

    def close(self) -> None:
        with self.lock:
            self.ecs.close()

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: ApiRequest, user_agent: str = "") -> Reply:
        with self.lock:
            reply = self._handle(request, user_agent)
            if self.timings.api_call_seconds:
                self.clock.advance(self.timings.api_call_seconds)
            if self.replies is not None:
                self.replies.append((request.service, request.action, reply))
            return reply

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
        self, service: Any, request: ApiRequest, body: dict[str, Any], request_id: str, user_agent: str
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
        subject = f"acs.{service.name}:{self.region}:{self.account_id}:{first}"
        data = {
            "eventId": self.ids.uuid(),
            "eventVersion": 1,
            "eventRW": "Write",
            "eventType": "ApiCall",
            "eventName": request.action,
            "serviceName": service.product,
            "acsRegion": self.region,
            "requestId": request_id,
            "eventTime": self.clock.iso(),
            "isGlobal": False,
            "sourceIpAddress": "127.0.0.1",
            "userAgent": user_agent,
            "userIdentity": {
                "type": "ram-user",
                "accountId": self.account_id,
                "principalId": str(int(hashlib.sha256(request.access_key_id.encode()).hexdigest(), 16) % 10**16),
                "accessKeyId": request.access_key_id,
                "userName": request.access_key_id,
            },
            "requestParameters": {"RegionId": self.region, **request.params.flat},
            "referencedResources": referenced,
        }
        self.events.emit(f"acs.{service.name}", f"{service.name}:ActionTrail:ApiCall", subject, data)

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
            }

    def call_counts(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": dict(self.calls), "errors": dict(self.errors), "total": sum(self.calls.values())}

    def install_faults(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            self.faults.install(entries)
            return self.faults.describe()
