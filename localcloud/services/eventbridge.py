"""Emulated EventBridge (2020-04-01): PutEvents to custom buses, and bus management.

The `default` bus receives Alibaba Cloud service events only; custom events go to custom buses
(fc-eventbridge.md §2.1). Limits assumed from the data-plane API: 16 events a request, 64 KB an event.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from localcloud.errors import ApiError, missing_parameter
from localcloud.events import DEFAULT_BUS, EventBus
from localcloud.services.base import Service, api
from localcloud.wire import Params

_BUS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,126}$")
MAX_EVENTS = 16
MAX_EVENT_BYTES = 64 * 1024


class EventBridgeService(Service):
    name = "eventbridge"
    product = "EventBridge"
    host = "eventbridge.aliyuncs.com"

    def state(self) -> dict[str, Any]:
        return {
            "event_buses": [
                {"EventBusName": b.name, "Description": b.description} for b in self.cloud.events.buses.values()
            ]
        }

    def _arn(self, name: str) -> str:
        return f"acs:eventbridge:{self.cloud.region}:{self.cloud.account_id}:eventbus/{name}"

    def _bus(self, name: str) -> EventBus:
        bus = self.cloud.events.buses.get(name)
        if bus is None:
            raise ApiError("EventBusNotExist", f"The event bus {name!r} does not exist.", 404)
        return bus

    @staticmethod
    def _ok(data: Any) -> dict[str, Any]:
        return {"Code": "Success", "Message": "", "Success": True, "Data": data}

    @api("CreateEventBus", write=True)
    def create_event_bus(self, p: Params) -> dict[str, Any]:
        name = p.required("EventBusName")
        if not _BUS_NAME.match(name) or name == DEFAULT_BUS or name.startswith("eventbridge-reserved-"):
            raise ApiError(
                "InvalidArgument",
                f"EventBusName {name!r} is not valid: 1-127 of [A-Za-z0-9-], starting with a letter or digit, "
                "not 'default' nor eventbridge-reserved-*.",
            )
        if name in self.cloud.events.buses:
            raise ApiError("EventBusAlreadyExist", f"The event bus {name!r} already exists.", 409)
        clock = self.cloud.clock
        self.cloud.events.buses[name] = EventBus(name, p.str("Description", "") or "", clock.iso(), clock.now)
        return self._ok({"EventBusARN": self._arn(name)})

    @api("GetEventBus")
    def get_event_bus(self, p: Params) -> dict[str, Any]:
        bus = self._bus(p.required("EventBusName"))
        return self._ok(self._bus_json(bus))

    @api("ListEventBuses")
    def list_event_buses(self, p: Params) -> dict[str, Any]:
        prefix = p.str("NamePrefix", "") or ""
        buses = [self._bus_json(b) for b in self.cloud.events.buses.values() if b.name.startswith(prefix)]
        return self._ok({"EventBuses": buses, "NextToken": "", "Total": len(buses)})

    @api("DeleteEventBus", write=True)
    def delete_event_bus(self, p: Params) -> dict[str, Any]:
        name = p.required("EventBusName")
        if name == DEFAULT_BUS:
            raise ApiError("InvalidArgument", "The default bus cannot be deleted.")
        self._bus(name)
        del self.cloud.events.buses[name]
        return self._ok(None)

    def _bus_json(self, bus: EventBus) -> dict[str, Any]:
        return {
            "EventBusName": bus.name,
            "Description": bus.description,
            "EventBusARN": self._arn(bus.name),
            # When the bus was created (was: the clock's start for every bus); the default bus always existed.
            "CreateTimestamp": int((bus.created_epoch or self.cloud.clock.start) * 1000),
        }

    @api("PutEvents")
    def put_events(self, p: Params) -> dict[str, Any]:
        """Per-entry results: an invalid entry fails alone (FailedEntryCount), the others are published."""
        name = p.str("EventBusName")
        if not name:
            raise missing_parameter("EventBusName")
        if name == DEFAULT_BUS:
            raise ApiError(
                "InvalidArgument",
                "The default bus receives Alibaba Cloud service events only; put custom events on a custom bus.",
            )
        self._bus(name)
        entries = p.json("EventList")
        if not isinstance(entries, list) or not entries:
            raise ApiError("InvalidArgument", "EventList must be a non-empty JSON array of events.")
        if len(entries) > MAX_EVENTS:
            raise ApiError("InvalidArgument", f"At most {MAX_EVENTS} events may be put in one request.")
        results, failed = [], 0
        for entry in entries:
            error = _entry_error(entry)
            if error:
                failed += 1
                results.append({"EventId": (entry or {}).get("Id", "") if isinstance(entry, dict) else "",
                                "TraceId": "", "ErrorCode": "InvalidArgument", "ErrorMessage": error})  # fmt: skip
                continue
            self.cloud.events.publish(self._to_cloudevent(entry, name), bus=name)
            results.append(
                {"EventId": entry["Id"], "TraceId": self.cloud.ids.uuid(), "ErrorCode": "", "ErrorMessage": ""}
            )
        return self._ok({"FailedEntryCount": failed, "EntryList": results})

    def _to_cloudevent(self, entry: dict[str, Any], bus: str) -> dict[str, Any]:
        data = entry.get("Data")
        if isinstance(data, str):
            with contextlib.suppress(json.JSONDecodeError):  # non-JSON data stays a string, as CloudEvents allows
                data = json.loads(data)
        event = self.cloud.events.envelope(
            source=entry["Source"],
            event_type=entry["Type"],
            subject=entry.get("Subject", ""),
            data=data,
            bus=bus,
            event_id=entry["Id"],
            time=entry.get("Time") or None,
        )
        if entry.get("DataContentType"):
            event["datacontenttype"] = entry["DataContentType"]
        if entry.get("DataSchema"):
            event["dataschema"] = entry["DataSchema"]
        return event


def _entry_error(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "each event must be a JSON object"
    for key in ("Id", "Source", "Type"):
        if not entry.get(key):
            return f"{key} is required"
        if not isinstance(entry[key], str):
            return f"{key} must be a string"
    if len(entry["Source"]) > 128:
        return "Source is at most 128 characters"
    if len(entry["Type"]) > 64:
        return "Type is at most 64 characters"
    if len(json.dumps(entry).encode()) > MAX_EVENT_BYTES:
        return f"an event is at most {MAX_EVENT_BYTES // 1024} KB"
    return ""
