"""Hypothesis strategies for chaos runs: a random fleet, random operator requests and a random fault schedule.

A generated case is one mapping: a localcloud scenario (every key `Scenario.from_mapping` accepts) plus one
`chaos:` key the harness pops before loading it, for what a scenario cannot say yet:
  env:            function environment (retention keep/action, retire policy: documented settings)
  requests:       `bakery:Bake:Requested {"instanceId": ...}` published at the start
  snapshot_bakes: operator snapshots of (instance, disk type), then one `{"snapshotIds": [...]}` request
  event_faults:   events delayed or reordered in transit (localcloud's faults only drop or duplicate)
Every case is valid by construction (the harness refuses a case the scenario loader refuses): operator tags
plus user tags never exceed ECS's 20 per instance, so the operator's own TagResources cannot fail.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from bakery import tags

FAMILIES = ("web", "app", "db")
# Check items ACS-ECS-RepairImage fixes, and one no repair covers (the bake must fail with a reason).
REPAIRABLE = ("Virtio", "Nvme", "Fstab", "Grub", "Dhcp", "Selinux", "CloudAssistant", "CloudInit")
UNREPAIRABLE = ("KernelModuleSigning",)
# The actions Bakery (and the operator) call: where a 5xx, throttling or latency can land.
FAULTABLE_ACTIONS = (
    "CreateImage", "DescribeImages", "DescribeInstances", "DescribeDisks", "StopInstance", "StartInstance",
    "TagResources", "UntagResources", "ModifyImageAttribute", "DeleteImage", "DeleteSnapshot", "DescribeSnapshots",
    "RunCommand", "DescribeInvocations", "DescribeInvocationResults", "StartExecution", "ListExecutions",
    "PutEvents", "DescribeImageFromFamily",
)  # fmt: skip
SERVER_ERRORS = ("ServiceUnavailable", "InternalError")
THROTTLING = "Throttling"
EVENT_TYPES = (
    "ecs:ActionTrail:ApiCall", "ecs:CloudAssistant:TaskCompleted", "ecs:Instance:StateChange",
    "ecs:Snapshot:CreateSnapshotCompleted", "oos:CloudMonitor:ExecutionStatusChange",
    "bakery:Image:CreationStarted", "bakery:Image:CheckFailed", "bakery:Image:RepairStarted",
    "bakery:Image:Repaired", "bakery:Image:Ready", "bakery:Bake:Failed", "ecs:ActionTrail:ConsoleOperation",
    "bakery:Image:Adopted",
)  # fmt: skip
MAX_TAGS = tags.MAX_TAGS_PER_RESOURCE


@st.composite
def instance_cases(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """One instance and what the operator does with it: `how` is tag (the trigger), request
    (Bake:Requested) or none (a bystander that must come out untouched)."""
    instance_id = f"i-chaos{index}"
    windows = draw(st.integers(0, 5)) == 5  # the simplest draw (0) is the shrinker's goal: linux
    spec: dict[str, Any] = {
        "id": instance_id,
        "status": draw(st.sampled_from(["Running", "Running", "Running", "Stopped"])),
        "disks": [{"type": "system", "size": draw(st.sampled_from([20, 40]))}]
        + [{"type": "data", "size": size} for size in draw(st.lists(st.sampled_from([10, 20, 50]), max_size=2))],
    }
    if windows:
        spec.update(os="windows", platform="Windows Server 2022")
    failures = draw(
        st.one_of(
            st.just([]),
            st.lists(st.sampled_from(REPAIRABLE), min_size=1, max_size=2, unique=True),
            st.just(list(UNREPAIRABLE)),
        )
    )
    if failures:
        spec["guest"] = {"check_failures": failures}
    create_failures = draw(st.sampled_from([0, 0, 0, 1, 2]))
    if create_failures:
        spec["create_image_failures"] = create_failures

    how = draw(st.sampled_from(["tag", "tag", "request", "none"]))
    bakery_tags: dict[str, str] = {}
    if how != "none":
        family = draw(st.none() | st.sampled_from(FAMILIES))
        if family:
            bakery_tags[tags.FAMILY] = family
        if draw(st.booleans()):
            bakery_tags[tags.STOP_FIRST] = "true"
        if draw(st.integers(0, 3)) == 3:
            bakery_tags[tags.NAME] = f"chaos{index}"
    # Instance tags before the run. A request needs the standing opt-in, and carries its bakery:* options as
    # instance tags (the request itself names only the instance).
    initial: dict[str, str] = {}
    operator: dict[str, str] = {}
    if how == "request":
        initial.update({tags.ALLOW_REQUESTS: "true", **bakery_tags})
    elif how == "tag":
        operator.update({tags.TRIGGER: "true", **bakery_tags})
    budget = MAX_TAGS - len(initial) - len(operator)
    # Many user tags near the limit is the interesting end (QuotaExceed.Tags on Bakery's own work tags).
    count = draw(st.one_of(st.integers(0, 2), st.integers(max(0, budget - 4), budget)))
    user = {f"user-{n:02d}": f"v{n}" for n in range(count)}
    spec["tags"] = {**user, **initial}
    return {"spec": spec, "how": how, "operator_tags": operator, "at": draw(st.sampled_from([0, 0, 30, 300]))}


@st.composite
def action_faults(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(FAULTABLE_ACTIONS))
    kind = draw(st.sampled_from(["5xx", "5xx", "throttling", "latency"]))
    if kind == "latency":
        # latency_ms is real time: kept tiny so a run stays fast; its point is the code path, not the wait.
        return {"action": action, "latency_ms": draw(st.integers(1, 3))}
    code = draw(st.sampled_from(SERVER_ERRORS)) if kind == "5xx" else THROTTLING
    if draw(st.booleans()):
        return {"action": action, "code": code, "nth": draw(st.integers(1, 8))}
    return {"action": action, "code": code, "probability": draw(st.sampled_from([0.02, 0.05, 0.1, 0.2]))}


@st.composite
def event_faults(draw: st.DrawFn) -> dict[str, Any]:
    """A delivery fault: drop / duplicate (localcloud's own) or delay / reorder (the harness's)."""
    mode = draw(st.sampled_from(["drop", "duplicate", "delay", "reorder"]))
    fault: dict[str, Any] = {"events": mode, "probability": draw(st.sampled_from([0.05, 0.2, 0.5, 1.0]))}
    if mode == "drop" and fault["probability"] == 1.0:
        fault["probability"] = 0.5  # every event of every type lost is test_delivery_faults' own case
    if draw(st.booleans()):
        fault["type"] = draw(st.sampled_from(EVENT_TYPES))
    if mode == "delay":
        fault["seconds"] = draw(st.sampled_from([5, 60, 600]))
    return fault


@st.composite
def chaos_cases(draw: st.DrawFn, max_instances: int = 4, max_fuzz_events: int = 0) -> dict[str, Any]:
    """A whole case: fleet, family history, requests, faults, settings (see the module docstring), and up to
    `max_fuzz_events` foreign or malformed events on the bakery bus."""
    instances = [draw(instance_cases(n)) for n in range(draw(st.integers(1, max_instances)))]
    families = sorted({i["operator_tags"].get(tags.FAMILY) or i["spec"]["tags"].get(tags.FAMILY) for i in instances}
                      - {None})  # fmt: skip
    history = []
    for family in families:
        for n in range(draw(st.integers(0, 3))):
            # Bakery's own earlier bakes (bake id, state ready): retention never touches an operator's image.
            history.append({"id": f"m-{family}-v{n + 1}", "family": family, "age_days": 30 - 5 * n,
                            "check_failures": [], "tags": {tags.BAKE_ID: f"b-{family}{n + 1:014d}",
                                                           tags.STATE: tags.READY}})  # fmt: skip
    faults = draw(st.lists(action_faults(), max_size=4)) + draw(st.lists(event_faults(), max_size=3))
    if draw(st.integers(0, 3)) == 0:  # a storm: 5xx on every action at once (issue 10's "10% 5xx everywhere")
        rate = draw(st.sampled_from([0.1, 0.2, 0.3]))
        code = draw(st.sampled_from(["ServiceUnavailable", THROTTLING]))  # throttling storms too (the red team's)
        faults += [{"action": a, "code": code, "probability": rate} for a in FAULTABLE_ACTIONS]
    native = [f for f in faults if f.get("events") not in ("delay", "reorder")]
    harness = [f for f in faults if f.get("events") in ("delay", "reorder")]

    scenario: dict[str, Any] = {
        "seed": draw(st.integers(0, 2**16)),
        "timings": {
            "image_seconds_per_gib": draw(st.sampled_from([1, 5, 10])),
            "snapshot_seconds_per_gib": 1,
            "api_call_seconds": draw(st.sampled_from([0, 0, 0.05])),
        },
        "event_shapes": {
            "actiontrail_parameters": draw(st.sampled_from(["flat", "flat", "json", "absent"])),
            "assistant_invoke_id": draw(st.booleans()),
        },
        "oos_events": draw(st.sampled_from(["documented", "documented", "failed", "all"])),
        "instances": [i["spec"] for i in instances],
        "images": history,
        "faults": native,
        "actions": [
            {"at": i["at"], "tag": {"instance": i["spec"]["id"], "tags": i["operator_tags"]}}
            for i in instances
            if i["how"] == "tag"
        ],
    }
    if draw(st.integers(0, 3)) == 3:
        scenario["rate_limits"] = {draw(st.sampled_from(["CreateImage", "DescribeImages", "TagResources"])):
                                   draw(st.sampled_from([1, 2, 5]))}  # fmt: skip
    if history and draw(st.integers(0, 5)) == 5:
        scenario["quotas"] = {"images": len(history) + draw(st.integers(1, 2))}  # room for one or two more images

    snapshot_bakes = []
    if draw(st.integers(0, 3)) == 3:
        system_of = draw(st.sampled_from([i["spec"]["id"] for i in instances]))
        sources = [[system_of, "system"]]
        for other in instances:
            if any(d["type"] == "data" for d in other["spec"]["disks"]) and draw(st.booleans()):
                sources.append([other["spec"]["id"], "data"])
        bake: dict[str, Any] = {"sources": sources}
        family = draw(st.none() | st.sampled_from(FAMILIES))
        if family:
            bake["family"] = family
        snapshot_bakes.append(bake)
    chaos: dict[str, Any] = {
        "env": {
            "BAKERY_RETENTION_KEEP": str(draw(st.sampled_from([3, 1, 2]))),  # the default first
            "BAKERY_RETENTION_ACTION": draw(st.sampled_from(["deprecate", "delete"])),
            "BAKERY_RETIRE_POLICY": draw(st.sampled_from(["delete", "deprecate"])),
        },
        "requests": [i["spec"]["id"] for i in instances if i["how"] == "request"],
        "snapshot_bakes": snapshot_bakes,
        "event_faults": harness,
    }
    bystanders = [i["spec"]["id"] for i in instances if i["how"] == "none"]
    if bystanders and draw(st.integers(0, 2)) == 2:
        # Images made outside Bakery (issue 12) from instances nobody bakes: adopted or not by the policy drawn,
        # with or without the check, via the API or the console, with the record in each plausible shape.
        # One image per instance: a second CreateImage on a disk still being snapshotted is refused (real ECS too).
        for n, instance_id in enumerate(
            draw(st.lists(st.sampled_from(bystanders), min_size=1, max_size=2, unique=True))
        ):
            outside: dict[str, Any] = {"instance": instance_id, "name": f"outside{n}-{instance_id}",
                                       "check": draw(st.sampled_from([True, True, False])),
                                       "via": draw(st.sampled_from(["api", "console"]))}  # fmt: skip
            family = draw(st.none() | st.sampled_from(FAMILIES))
            if family:
                outside["family"] = family
            if draw(st.booleans()):
                outside["tags"] = {tags.ADOPT: "true", "team": f"t{n}"}
            if draw(st.booleans()):
                outside["share"] = ["1111222233334444"]
            scenario["actions"].append({"at": draw(st.sampled_from([0, 60, 900])), "create_image": outside})
        policy = draw(st.sampled_from(["tag", "all", "families"]))
        chaos["env"]["BAKERY_ADOPT_IMAGES"] = policy
        if policy == "families":
            chaos["env"]["BAKERY_ADOPT_FAMILIES"] = ",".join(draw(st.lists(st.sampled_from(FAMILIES), min_size=1,
                                                                           unique=True)))  # fmt: skip
        chaos["env"]["BAKERY_ADOPTED_ORIGINAL"] = draw(st.sampled_from(["deprecate", "delete", "leave"]))
        scenario["event_shapes"]["actiontrail_response"] = draw(st.booleans())
        scenario["event_shapes"]["repair_create_image"] = draw(st.sampled_from(["caller", "service", "none"]))
        if "quotas" in scenario:  # the operator's own images count too: their CreateImage must not be refused
            made = sum(1 for a in scenario["actions"] if "create_image" in a)
            scenario["quotas"]["images"] += made
    if max_fuzz_events:
        chaos["fuzz_events"] = draw(st.lists(fuzz_events(), max_size=max_fuzz_events))
    return {**scenario, "chaos": chaos}


# Foreign or malformed events anyone allowed to PutEvents may send. None names an existing instance (that is a
# real request, and will need bakery:allow-requests) and none carries a bakeId (the run's report would count
# a forged one as a bake of its own).
FUZZ_SHAPES: tuple[tuple[str, Any], ...] = (
    ("bakery:Bake:Requested", {"instanceId": "i-gone1"}),
    ("bakery:Bake:Requested", {"instanceId": "i-x; rm -rf /"}),
    ("bakery:Bake:Requested", {"snapshotIds": ["s-missing1", "s-missing1"]}),
    ("bakery:Bake:Requested", {"snapshotIds": ["s-gone1"]}),
    ("bakery:Bake:Requested", {"note": "no instance"}),
    ("bakery:Image:Ready", {"imageId": "m-forged1"}),
    ("bakery:Image:CreationStarted", {"imageId": "m-nosuch"}),
    ("bakery:Image:CheckFailed", [1, 2, 3]),
    ("bakery:Image:Repaired", "not an object"),
    ("x:Unrelated:Thing", {"hello": "world"}),
)


@st.composite
def fuzz_events(draw: st.DrawFn) -> dict[str, Any]:
    kind, data = draw(st.sampled_from(FUZZ_SHAPES))
    return {"type": kind, "data": data, "at": draw(st.sampled_from([0, 60, 600]))}
