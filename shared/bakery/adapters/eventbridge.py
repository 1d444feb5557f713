"""EventBridge (2020-04-01) through the real SDK: Bakery's events onto its custom bus."""

from __future__ import annotations

import json

from alibabacloud_eventbridge20200401 import models as m

from bakery.adapters.sdk import call
from bakery.clients import client, waiter
from bakery.config import Settings
from bakery.errors import RetryableError
from bakery.events import BakeryEvent

MAX_EVENTS = 16  # per PutEvents request (help.aliyun.com/en/eventbridge/putevents; the RPC's own: UNCONFIRMED)


class EventBus:
    def __init__(self, settings: Settings) -> None:
        self.bus = settings.event_bus
        self._client = client("eventbridge", settings)
        self._wait = waiter(settings)

    def publish(self, *events: BakeryEvent) -> None:
        """PutEvents, MAX_EVENTS to a call (EventBridge's limit: fc-eventbridge.md §2.3)."""
        for start in range(0, len(events), MAX_EVENTS):
            self._publish(events[start : start + MAX_EVENTS])

    def _publish(self, events: tuple[BakeryEvent, ...]) -> None:
        if not events:
            return
        entries = [
            m.PutEventsRequestEventList(id=e.event_id, source=e.source, type=e.type, subject=e.subject,
                                        spec_version="1.0", data_content_type="application/json", data=json.dumps(e.data))
            for e in events
        ]  # fmt: skip
        body = call("eventbridge", "PutEvents", self._client.put_events,
                    m.PutEventsRequest(event_bus_name=self.bus, event_list=entries), wait=self._wait).body  # fmt: skip
        failed = body.data.failed_entry_count if body.data else 0
        if failed:  # partial failures hide in a 200: surface them, or events silently vanish
            reasons = [f"{x.event_id}: {x.error_code} {x.error_message}" for x in body.data.entry_list if x.error_code]
            raise RetryableError(
                f"PutEvents: {failed} event(s) not published: {'; '.join(reasons)}", code="PutEventsPartial"
            )
