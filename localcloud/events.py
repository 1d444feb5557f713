"""The event stream: what ECS, OOS and PutEvents publish to EventBridge buses.

Events are CloudEvents 1.0 with Alibaba's extensions (`aliyunaccountid`, `aliyunregionid`,
`aliyuneventbusname`, `aliyunpublishtime`...). Consumers pull: the log is append-only and read
from a cursor, so nothing is called back while an API request holds the cloud's lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

DEFAULT_BUS = "default"


@dataclass
class EventBus:
    name: str
    description: str = ""
    created_at: str = ""
    created_epoch: float | None = None  # None: exists from the start (the built-in default bus)


@dataclass
class PublishedEvent:
    seq: int
    bus: str
    event: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "bus": self.bus, "event": self.event}


@dataclass
class EventHub:
    cloud: LocalCloud
    buses: dict[str, EventBus] = field(default_factory=dict)
    log: list[PublishedEvent] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.buses.setdefault(DEFAULT_BUS, EventBus(DEFAULT_BUS, "Alibaba Cloud service events"))

    def envelope(
        self,
        *,
        source: str,
        event_type: str,
        subject: str,
        data: dict[str, Any],
        bus: str = DEFAULT_BUS,
        event_id: str | None = None,
        time: str | None = None,
    ) -> dict[str, Any]:
        cloud = self.cloud
        return {
            "id": event_id or cloud.ids.uuid(),
            "source": source,
            "specversion": "1.0",
            "type": event_type,
            "subject": subject,
            "time": time or cloud.clock.iso(),
            "datacontenttype": "application/json;charset=utf-8",
            "aliyunaccountid": cloud.account_id,
            "aliyunpublishtime": cloud.clock.iso_millis(),
            "aliyuneventbusname": bus,
            "aliyunregionid": cloud.region,
            "aliyunpublishaddr": "127.0.0.1",
            "data": data,
        }

    def publish(self, event: dict[str, Any], bus: str = DEFAULT_BUS) -> int:
        """Append an event, subject to event faults. Returns how many copies were delivered."""
        copies = self.cloud.faults.copies_of_event(event.get("type", ""))
        if copies == 0:
            self.dropped.append({"bus": bus, "event": event})
        for _ in range(copies):
            self.log.append(PublishedEvent(len(self.log), bus, event))
        return copies

    def emit(self, source: str, event_type: str, resource_id: str, data: dict[str, Any]) -> None:
        """A system event from an emulated service onto the default bus. Its subject is Alibaba's service-event
        form `acs.<service>:<region>:<account>:<resource id>` (every EventBridge service-event sample, e.g. the
        Cloud Assistant and EBS ones); consumers read ids from `data`, never from the subject."""
        cloud = self.cloud
        subject = f"{source}:{cloud.region}:{cloud.account_id}:{resource_id}"
        self.publish(self.envelope(source=source, event_type=event_type, subject=subject, data=data))

    def read(self, since: int = 0, bus: str | None = None) -> list[PublishedEvent]:
        # Clamped: a negative cursor would slice from the end of the log instead of its start.
        return [e for e in self.log[max(0, since) :] if bus is None or e.bus == bus]

    @property
    def cursor(self) -> int:
        return len(self.log)
