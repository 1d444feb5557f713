"""The admin API (moto-api style), shared by both transports: JSON under /_localcloud/."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan, FaultSpecError

PREFIX = "/_localcloud/"
MAX_ADVANCE_SECONDS = 10 * 365 * 86400


def handle_admin(cloud: LocalCloud, method: str, url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Route one admin request. Returns (HTTP status, JSON body)."""
    parts = urlsplit(url)
    route = parts.path[len(PREFIX) :].strip("/")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        if (method, route) == ("GET", "clock"):
            return 200, cloud.clock_info()
        if (method, route) == ("POST", "clock/advance"):
            if "seconds" in query:
                seconds = float(query["seconds"])
                if not math.isfinite(seconds) or not 0 <= seconds <= MAX_ADVANCE_SECONDS:
                    return 400, {"error": f"seconds must be a finite number from 0 to {MAX_ADVANCE_SECONDS:g} "
                                          f"(ten years), got {query['seconds']!r}"}  # fmt: skip
                return 200, cloud.advance(seconds)
            if "until_idle" in query:
                return 200, cloud.run_until_idle()
            return 400, {"error": "give ?seconds=N (simulated seconds) or ?until_idle=1"}
        if (method, route) == ("POST", "reset"):
            cloud.reset()
            return 200, {"reset": True, **cloud.clock_info()}
        if (method, route) == ("GET", "state"):
            return 200, cloud.state()
        if (method, route) == ("GET", "events"):
            since = int(query.get("since", 0))
            if since < 0:
                return 400, {"error": f"since is a cursor from a previous answer (>= 0), got {since}"}
            with cloud.lock:
                events = [e.to_json() for e in cloud.events.read(since, query.get("bus"))]
                return 200, {"events": events, "cursor": cloud.events.cursor, "dropped": list(cloud.events.dropped)}
        if (method, route) == ("GET", "calls"):
            return 200, cloud.call_counts()
        if (method, route) == ("GET", "faults"):
            with cloud.lock:
                return 200, cloud.faults.describe()
        if (method, route) == ("DELETE", "faults"):
            # Clears every installed fault and rate limit (the scenario's too) until the next reset.
            with cloud.lock:
                cloud.faults.clear()
                return 200, cloud.faults.describe()
        if (method, route) == ("POST", "faults"):
            # A list of faults, or {faults: [...], rate_limits: {...}} as in a scenario. Any other key used
            # to be ignored silently (a single fault mapping installed nothing and answered 200).
            payload = json.loads(body or b"[]")
            entries, limits = payload, {}
            if isinstance(payload, dict):
                unknown = sorted(set(payload) - {"faults", "rate_limits"})
                if unknown:
                    raise FaultSpecError(
                        f"unknown key(s) {unknown}; send a list of faults or {{faults: [...], rate_limits: {{...}}}}"
                    )
                entries, limits = payload.get("faults") or [], payload.get("rate_limits") or {}
            with cloud.lock:
                FaultPlan.check(entries)  # all or nothing: validate the faults before changing anything
                cloud.faults.set_rate_limits(limits)
                return 200, cloud.install_faults(entries)
    except FaultSpecError as exc:
        return 400, {"error": str(exc)}
    except (ValueError, json.JSONDecodeError) as exc:
        return 400, {"error": f"bad admin request: {exc}"}
    return 404, {
        "error": f"no admin route {method} {parts.path}",
        "routes": [
            "GET /_localcloud/clock", "POST /_localcloud/clock/advance?seconds=N", "POST /_localcloud/reset",
            "GET /_localcloud/state", "GET /_localcloud/events?since=N", "GET /_localcloud/calls",
            "GET|POST|DELETE /_localcloud/faults",
        ],
    }  # fmt: skip
