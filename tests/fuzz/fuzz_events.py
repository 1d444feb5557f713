"""Event fuzzer: every sample in events/, mutated deterministically from a seed, delivered to every function's
handler (bake, check, repair, lifecycle) in-process against a LocalCloud, the way FC calls them (bytes, a
context, FC's environment, BAKERY_CLOUD_ENDPOINT pointing the SDKs at the cloud).

Each mutation declares what it makes of the event:
- "invalid"  — malformed by construction (truncated, not UTF-8, nested too deep, a lone surrogate, a field a
  route reads removed or of the wrong type, an unknown type, NaN, a 5,000-digit number...);
- "foreign"  — well-formed but stamped with another account or region (or without the stamps);
- "maybe"    — anything else (a field Bakery does not read changed, extra keys...): it may still be valid.

and the promises checked are: no exception other than RetryableError escapes any handler (all kinds); an
invalid or foreign event is dropped, with a log line, and makes no API call at all — so no write (every kind
but "maybe"). Every log line any handler prints must be one JSON object.

    .venv/bin/python tests/fuzz/fuzz_events.py --events 10000 --seed 1 --out tests/chaos/results/fuzz.json

exits 1 when a promise is broken; the JSON file holds the figures (events; per function: delivered, dropped,
ok, crashes, writes-on-invalid...) and the first failures with the mutation that caused them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable (tests.*, localcloud)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bakery.clients import reset_clients
from bakery.config import Settings
from bakery.errors import RetryableError
from localcloud import LocalCloud, Scenario

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTIONS = ("bake", "check", "repair", "lifecycle")
# Any API action that changes something (the brief's list, by prefix: Tag/Untag/Create*/Delete*/Stop/Start/
# Run*/Invoke*/StartExecution/PutEvents/Modify*, and the few other verbs the local cloud implements).
WRITE_PREFIXES = ("Tag", "Untag", "Create", "Delete", "Stop", "Start", "Run", "Invoke", "Put", "Modify", "Cancel",
                  "Reboot", "Copy", "Import", "Export", "Reset", "Attach", "Detach", "Update", "Notify")  # fmt: skip
OTHER_ACCOUNT = "9999888877776666"
OTHER_REGION = "cn-shanghai"
RESET_EVERY = 250  # mutated events between cloud resets: bounded state, same run for the same seed

# The cloud the events land in: the samples' resources exist, so a mutation that slipped past validation would
# have something to write to (i-web1 is tagged to bake and accepts requests; skip-guest-checks keeps the
# preflight's real bash run out of the loop).
SCENARIO: dict[str, Any] = {
    "seed": 5,
    "images": [
        {"id": "m-bp1example000000001", "family": "web", "check_failures": ["Nvme"]},
        {"id": "m-bp1example000000002", "family": "web", "check_failures": []},
    ],
    "instances": [
        {
            "id": "i-web1",
            "tags": {
                "bakery:bake": "true",
                "bakery:allow-requests": "true",
                "bakery:family": "web",
                "bakery:skip-guest-checks": "true",
            },
        },
        {"id": "i-db1", "tags": {"bakery:allow-requests": "true", "bakery:skip-guest-checks": "true"}},
    ],
}

# Per event type: the data fields its route reads. Removing one, or giving it a wrong type, must make the event
# invalid. "required": absent / null / wrong type are all invalid; "typed": only a wrong non-null type is.
CRITICAL: dict[str, dict[str, str]] = {
    "ecs:ActionTrail:ApiCall": {
        "eventName": "required",
        "requestParameters": "typed",
        "eventId": "typed",
        "referencedResources": "typed",
    },
    "ecs:CloudAssistant:TaskCompleted": {"instanceId": "required", "invokeId": "typed", "commandName": "typed"},
    "ecs:Instance:StateChange": {"resourceId": "required", "state": "required"},
    "ecs:Snapshot:CreateSnapshotCompleted": {"snapshotId": "required"},
    "oos:CloudMonitor:Execution[StatusChange]": {"executionId": "required"},
    "bakery:Image:CreationStarted": {"imageId": "required"},
    "bakery:Image:Repaired": {"imageId": "required"},
    "bakery:Image:CheckFailed": {"imageId": "required"},
    "bakery:Image:Ready": {"imageId": "required", "family": "typed"},
    "bakery:Bake:Requested": {"bakeId": "typed", "family": "typed", "name": "typed"},
}
PATTERNED = {"imageId", "snapshotId", "executionId", "instanceId", "resourceId", "bakeId"}
ENVELOPE_REQUIRED = ("id", "source", "type", "data", "aliyunaccountid", "aliyunregionid")
# Values no string field accepts (each paired with the field kinds it is wrong for).
WRONG_TYPES: list[Any] = [0, 1, -1, 3.5, True, False, [], ["m-x"], {}, {"a": "b"}, 10**30]
ID_LIKE_BAD = ["", "x" * 300, "m-abc\n", "i-\u00fcber", "../../etc/passwd", "m-a b", "i-web1;rm -rf /", "\x00"]


@dataclass
class Mutation:
    kind: str  # invalid | foreign | maybe
    label: str
    payload: bytes


# -- mutations ----------------------------------------------------------------------------------------------


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=True).encode()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `value` (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _set(body: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        body = body[step]
    body[path[-1]] = value


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


def _delete(body: Any, path: tuple[Any, ...]) -> None:
    parent = _get(body, path[:-1])
    del parent[path[-1]]


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for n in range(depth):
        value = [value] if n % 2 else {"n": value}
    return value


def _random_value(rng: random.Random) -> Any:
    return rng.choice([
        None, True, False, 0, -7, 2**63, 1e308, -0.0, "", " ", "true", "yes", "\u00e9\u00e8", "\U0001f600" * 3,
        "\u202e\u200b", "x" * rng.choice([1, 64, 129, 4000]), "m-", "i-", "s-", "exec-", [], [1, "a", None],
        {"nested": {"a": [1, 2]}}, "2026-01-05T09:05:00Z", "NaN",
    ])  # fmt: skip


def _is_timer(body: dict[str, Any]) -> bool:
    return "triggerName" in body and "triggerTime" in body


def _invalid_bytes(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    """Byte-level damage: never valid JSON of a UTF-8 object."""
    choice = rng.randrange(9)
    if choice == 0:  # truncated before the closing brace: the object never ends
        end = raw.rstrip().rfind(b"}")
        return "truncated", raw[: rng.randrange(0, end)]
    if choice == 1:  # a byte that is never UTF-8, inside the text
        at = rng.randrange(1, len(raw) - 1)
        return "not-utf8", raw[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + raw[at:]
    if choice == 2:
        return "utf16", raw.decode().encode("utf-16")
    if choice == 3:
        return "bom", b"\xef\xbb\xbf" + raw
    if choice == 4:
        return "not-an-object", rng.choice([b"[]", b'"text"', b"42", b"null", b"true", b"", b" ", b"[" + raw + b"]"])
    if choice == 5:  # JSON that Python's json would take but JSON is not (NaN), or a number Python refuses
        token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1" * 5000, b"1e999999"])
        return "bad-number", raw.replace(b"{", b'{"zz": ' + token + b", ", 1)
    if choice == 6:  # deep enough that json.loads itself recurses out
        depth = rng.choice([2_000, 100_000])
        return "deep-raw", raw.replace(b"{", b'{"zz": ' + b"[" * depth + b"]" * depth + b", ", 1)
    if choice == 7:
        return "oversize", raw.replace(b"{", b'{"zz": "' + b"x" * (300 * 1024) + b'", ', 1)
    return "garbage", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))


def _invalid_tree(rng: random.Random, body: dict[str, Any]) -> str | None:
    """Structure-level damage to a parsed sample that makes it invalid whatever its type; None if not applicable."""
    paths = list(_paths(body))
    choice = rng.randrange(4)
    if choice == 0:  # a lone surrogate in any string or key (json escapes it as \\udXXX)
        strings = [p for p in paths if isinstance(_get(body, p), str)]
        path = rng.choice(strings)
        value = _get(body, path)
        at = rng.randrange(len(value) + 1)
        _set(body, path, value[:at] + rng.choice(["\ud800", "\udfff", "\udc80"]) + value[at:])
        return "surrogate-value"
    if choice == 1:
        dicts = [()] + [p for p in paths if isinstance(_get(body, p), dict)]
        _set(body, (*rng.choice(dicts), "k\udc00ey"), "v")
        return "surrogate-key"
    if choice == 2:  # nesting beyond any limit, anywhere
        path = rng.choice(paths)
        _set(body, path, _nested(rng.choice([40, 200, 900])))
        return f"deep-at-{'.'.join(map(str, path))}"
    if _is_timer(body):
        return None
    # a CloudEvent envelope attribute removed or of the wrong type
    key = rng.choice(ENVELOPE_REQUIRED)
    if rng.random() < 0.4:
        body.pop(key, None)
        return f"drop-{key}"
    bad = rng.choice([*WRONG_TYPES, None] if key != "data" else [0, True, [], ["x"], "not json", "[1]", None])
    if key in ("id", "source", "type") and rng.random() < 0.3:
        bad = rng.choice(["", "x" * 300])
    body[key] = bad
    return f"wrong-{key}"


def _invalid_field(rng: random.Random, body: dict[str, Any]) -> str | None:
    """A field the route reads, removed or given a value it cannot be."""
    if _is_timer(body):
        key = rng.choice(["triggerTime", "triggerName"])
        bad = (
            ["yesterday", "2026-01-05 09:05", "2026-01-05T09:05:00Z\n"] if key == "triggerTime" else ["a b", "sw\neep"]
        )
        body[key] = rng.choice([*WRONG_TYPES, None, "", "x" * 300, *bad])
        return f"timer-{key}"
    event_type = body.get("type")
    data = body.get("data")
    critical = CRITICAL.get(event_type)
    if not critical or not isinstance(data, dict):
        return None
    if event_type == "bakery:Bake:Requested":  # either form: its id list, or its instance id
        critical = {
            **critical,
            **({"snapshotIds": "required"} if "snapshotIds" in data else {"instanceId": "required"}),
        }
    key = rng.choice(sorted(critical))
    if critical[key] == "required" and rng.random() < 0.3:
        data.pop(key, None)
        return f"drop-data.{key}"
    if key == "requestParameters":  # an object of strings: a tag value that is a number, or not an object
        params = data.get(key)
        if isinstance(params, dict) and params and rng.random() < 0.5:
            victim = rng.choice(sorted(params))
            params[victim] = rng.choice([5, 1.0, True, None, ["true"], {"v": "true"}])
            return f"requestParameters.{victim}-not-a-string"
        data[key] = rng.choice([0, True, "Tag.1.Key=bakery:bake", ["ResourceId.1"], [{"Key": "bakery:bake"}]])
        return "requestParameters-not-an-object"
    if key == "referencedResources":
        data[key] = rng.choice([0, "i-web1", ["i-web1"], {"ACS::ECS::Instance": "i-web1"},
                                {"ACS::ECS::Instance": [5]}])  # fmt: skip
        return "referencedResources-wrong"
    if key == "snapshotIds":
        data[key] = rng.choice(["s-web1sys0000001", [], [5], ["s-a", "s-a"], ["s-" + "a" * 100], ["s-a"] * 18,
                                None, {"0": "s-a"}])  # fmt: skip
        return "snapshotIds-wrong"
    values = [*WRONG_TYPES, "x" * 300] if critical[key] == "typed" else [*WRONG_TYPES, None, "x" * 300]
    if key in PATTERNED:
        values += ID_LIKE_BAD  # ids: their pattern is checked as well as their type
    data[key] = rng.choice(values)
    return f"wrong-data.{key}"


def _maybe(rng: random.Random, body: dict[str, Any], *, data_only: bool = False) -> str:
    """A change that may leave the event valid: a field Bakery need not read, replaced, removed or added."""
    root: Any = body.get("data") if data_only and isinstance(body.get("data"), dict) else body
    paths = list(_paths(root))
    choice = rng.randrange(4)
    if choice == 0 and paths:
        path = rng.choice(paths)
        _set(root, path, _random_value(rng))
        return f"replace-{'.'.join(map(str, path))}"
    if choice == 1 and paths:
        path = rng.choice(paths)
        _delete(root, path)
        return f"drop-{'.'.join(map(str, path))}"
    if choice == 2:
        dicts = [()] + [p for p in paths if isinstance(_get(root, p), dict)]
        _set(root, (*rng.choice(dicts), rng.choice(["extra", "Tag.9.Key", "eventName", "invokeId", "\u00fc"])),
             _random_value(rng))  # fmt: skip
        return "add-key"
    if isinstance(body.get("data"), dict) and not data_only and rng.random() < 0.5:  # data as a JSON string
        body["data"] = json.dumps(body["data"])
        return "data-as-string"
    body["id"] = rng.choice(["", "\u00e9v\u00e9nement", "x" * 200, "1", "a b"])
    return "replace-id"


def mutate(rng: random.Random, samples: list[tuple[str, bytes]]) -> Mutation:
    """One mutated event from one sample, deterministically from `rng`."""
    name, raw = samples[rng.randrange(len(samples))]
    body = json.loads(raw)
    roll = rng.random()
    if roll < 0.15:
        label, payload = _invalid_bytes(rng, raw)
        return Mutation("invalid", f"{name}:{label}", payload)
    if roll < 0.35:
        label = _invalid_tree(rng, body)
        if label is not None:
            return Mutation("invalid", f"{name}:{label}", _dumps(body))
    if roll < 0.60:
        label = _invalid_field(rng, body)
        if label is not None:
            return Mutation("invalid", f"{name}:{label}", _dumps(body))
    if roll < 0.70 and not _is_timer(body):
        body["type"] = rng.choice(["bakery:Image:Exploded", "ecs:Instance:Teleported", "acs:Unknown", "x",
                                   "bakery:Bake:requested", "Bakery:Image:Ready", " bakery:Image:Ready"])  # fmt: skip
        return Mutation("invalid", f"{name}:unknown-type", _dumps(body))
    if roll < 0.75 and not _is_timer(body):
        source = body.get("source")
        body["source"] = rng.choice(["evil", "acs.ecs" if source != "acs.ecs" else "bakery", "", "acs.oss"])
        return Mutation("invalid", f"{name}:wrong-source", _dumps(body))
    if roll < 0.87 and not _is_timer(body):
        what = rng.randrange(5)
        if what == 0:
            body["aliyunaccountid"] = rng.choice([OTHER_ACCOUNT, "", "1234567890123457", " 1234567890123456"])
        elif what == 1:
            body["aliyunregionid"] = rng.choice([OTHER_REGION, "", "CN-HANGZHOU", "cn-hangzhou "])
        elif what == 2:
            body.pop(rng.choice(["aliyunaccountid", "aliyunregionid"]))
        elif what == 3:
            body["aliyunaccountid"], body["aliyunregionid"] = OTHER_ACCOUNT, OTHER_REGION
        else:
            body["aliyunaccountid"] = OTHER_ACCOUNT
            for _ in range(rng.randrange(1, 4)):  # foreign whatever else the event says
                _maybe(rng, body, data_only=True)
        return Mutation("foreign", f"{name}:foreign-{what}", _dumps(body))
    labels = [_maybe(rng, body) for _ in range(rng.randrange(1, 4))]
    return Mutation("maybe", f"{name}:{'+'.join(labels)}", _dumps(body))


# -- delivery -----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    delivered: int = 0
    dropped: int = 0
    ok: int = 0
    failed: int = 0
    deferred: int = 0
    retried: int = 0
    crashes: int = 0
    writes_on_invalid: int = 0
    calls_on_invalid: int = 0
    invalid_not_dropped: int = 0  # an invalid or foreign event that a handler did not drop
    silent_drops: int = 0  # dropped without a log line saying so
    bad_log_lines: int = 0


@dataclass
class Run:
    events: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    functions: dict[str, Figures] = field(default_factory=lambda: {f: Figures() for f in FUNCTIONS})
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def failed(self) -> bool:
        return any(f.crashes or f.writes_on_invalid or f.calls_on_invalid or f.invalid_not_dropped or f.silent_drops
                   or f.bad_log_lines for f in self.functions.values())  # fmt: skip

    def to_json(self, seed: int) -> dict[str, Any]:
        return {
            "seed": seed,
            "events": self.events,
            "deliveries": self.events * len(FUNCTIONS),
            "by_kind": dict(sorted(self.by_kind.items())),
            "functions": {name: vars(f) for name, f in self.functions.items()},
            "ok": not self.failed(),
            "failures": self.failures[:50],
            "seconds": round(self.seconds, 2),
        }


def _writes(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    return {a: n - before.get(a, 0) for a, n in after.items() if n > before.get(a, 0) and a.startswith(WRITE_PREFIXES)}


@contextlib.contextmanager
def fc_environment(endpoint: str, cloud: LocalCloud) -> Iterator[None]:
    """FC's environment for the handlers (localcloud/fc/context.py sets the same), nothing else of Bakery's."""
    saved = dict(os.environ)
    for name in Settings.variables():
        os.environ.pop(name, None)
    os.environ.update({
        "FC_REGION": cloud.region, "FC_ACCOUNT_ID": cloud.account_id, "ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.fuzz",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "fuzz", "ALIBABA_CLOUD_SECURITY_TOKEN": "fuzz",
        "BAKERY_CLOUD_ENDPOINT": endpoint, "BAKERY_EVENT_BUS": "bakery",
    })  # fmt: skip
    reset_clients()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_clients()


def _create_bus(env: Any) -> None:
    from alibabacloud_eventbridge20200401 import models as eb

    env.eventbridge.create_event_bus(eb.CreateEventBusRequest(event_bus_name="bakery"))


def _check_lines(out: str) -> tuple[list[dict[str, Any]], int]:
    lines, bad = [], 0
    for text in out.splitlines():
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            bad += 1
            continue
        if isinstance(line, dict):
            lines.append(line)
        else:
            bad += 1
    return lines, bad


def run(events: int, seed: int, *, time_budget: float | None = None,
        progress: Callable[[int], None] | None = None) -> Run:  # fmt: skip
    """Deliver `events` mutated events to each of the four handlers; stop early past `time_budget` seconds."""
    from bakery import entrypoints
    from localcloud.testing import running

    handlers = {name: getattr(entrypoints, name) for name in FUNCTIONS}
    samples = [(p.name, p.read_bytes()) for p in sorted(EVENTS.glob("*.json"))]
    rng = random.Random(seed)
    result = Run()
    started = time.monotonic()
    cloud = LocalCloud(Scenario.from_mapping(copy.deepcopy(SCENARIO)))
    try:
        with running(cloud, "inprocess") as env, fc_environment(env.endpoint, cloud):
            _create_bus(env)
            for n in range(events):
                if time_budget is not None and time.monotonic() - started > time_budget:
                    break
                if n and n % RESET_EVERY == 0:
                    cloud.reset()
                    _create_bus(env)
                mutation = mutate(rng, samples)
                result.events += 1
                result.by_kind[mutation.kind] += 1
                for name, handler in handlers.items():
                    _deliver(result, name, handler, mutation, cloud, n)
                if progress is not None:
                    progress(n + 1)
    finally:
        cloud.close()
    result.seconds = time.monotonic() - started
    return result


def _deliver(result: Run, name: str, handler: Callable[[bytes, Any], str], mutation: Mutation, cloud: LocalCloud,
             n: int) -> None:  # fmt: skip
    figures = result.functions[name]
    figures.delivered += 1
    before = Counter(cloud.calls)
    context = SimpleNamespace(request_id=f"fuzz-{n}-{name}", account_id=cloud.account_id, region=cloud.region)
    out = io.StringIO()
    status, error = None, None
    with contextlib.redirect_stdout(out):
        try:
            status = json.loads(handler(mutation.payload, context))["status"]
        except RetryableError:
            figures.retried += 1
        except Exception as exc:  # anything else escaping a handler is the crash being counted
            error = exc
            tb = traceback.format_exc(limit=-4)
    lines, bad = _check_lines(out.getvalue())
    figures.bad_log_lines += bad
    problems = []
    if error is not None:
        figures.crashes += 1
        problems.append(f"crash: {type(error).__name__}: {str(error)[:200]}")
    elif status is not None:
        setattr(figures, status, getattr(figures, status) + 1)
    # A drop is logged at WARNING; a tag write that sets no bakery:bake=true (any tag write in the account can
    # reach bake) is dropped at INFO: not a problem, but still said.
    if status == "dropped" and not any(line.get("level") in ("WARNING", "INFO") and "dropped" in line.get("message", "")
                                       for line in lines):  # fmt: skip
        figures.silent_drops += 1
        problems.append("dropped without a log line")
    if bad:
        problems.append(f"{bad} log line(s) that are not JSON")
    if mutation.kind != "maybe":
        calls = {a: c - before.get(a, 0) for a, c in cloud.calls.items() if c > before.get(a, 0)}
        writes = _writes(before, Counter(cloud.calls))
        if writes:
            figures.writes_on_invalid += 1
            problems.append(f"writes on an {mutation.kind} event: {writes}")
        elif calls:
            figures.calls_on_invalid += 1
            problems.append(f"API calls on an {mutation.kind} event: {calls}")
        if error is None and status not in ("dropped", None):
            figures.invalid_not_dropped += 1
            problems.append(f"an {mutation.kind} event was not dropped: {status}")
    if problems:
        result.failures.append({
            "function": name, "kind": mutation.kind, "mutation": mutation.label, "problems": problems,
            "payload": mutation.payload[:300].decode("utf-8", "backslashreplace"),
            **({"traceback": tb} if error is not None else {}),
        })  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="mutated events (each goes to all four functions)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args(argv)

    def progress(done: int) -> None:
        if done % 1000 == 0:
            print(f"fuzz: {done}/{args.events} events", file=sys.stderr)

    result = run(args.events, args.seed, progress=progress)
    figures = result.to_json(args.seed)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    summary = {k: v for k, v in figures.items() if k != "failures"}
    print(json.dumps(summary, indent=2))
    for failure in result.failures[:10]:
        print(json.dumps(failure), file=sys.stderr)
    return 1 if result.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
