"""The start of a bake: the trigger (`bakery:bake=true`, or `bakery:Bake:Requested`), claiming the instance
(`bakery:bake-id`, state `preflight`), the static gate (what the API alone can judge) and the guest preflight
(Cloud Assistant runs preflight/preflight.sh). A claim is never made twice: a second trigger while a bake is
in flight is reported `already-baking` and changes nothing."""

from __future__ import annotations

import re
from dataclasses import replace

from bakery import events, state, tags
from bakery.config import Settings
from bakery.errors import BakeFailure, NotATrigger, RetryableError
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Instance
from bakery.preflight.report import parse_report, preflight_script
from bakery.stages import create, failure
from bakery.stages.context import SWEPT, Context, bake_id_for

log = get_logger(__name__)

TRANSITIONAL = ("Pending", "Starting", "Stopping")
LOCAL_DISK_TYPE = re.compile(r"^ecs\.[id]\d")  # i/d-series: local SSD/HDD, never imaged
PREFLIGHT_COMMAND = "bakery-preflight"
_INSTANCE_ID = re.compile(r"^i-[\w-]+$")


def foreign_bake_id(
    ctx: Context, bake_id: str, instance_id: str | None, snapshot_ids: tuple[str, ...] | list[str]
) -> bool:
    """Does `bake_id` (chosen by a requester) already name a bake of another source? Two tag queries."""
    for image in ctx.ecs.images_tagged(tags.BAKE_ID, bake_id):
        if instance_id is not None and image.tags.get(tags.SOURCE_INSTANCE) != instance_id:
            return True
        if instance_id is None and tags.unpack_snapshot_ids(image.tags) != list(snapshot_ids):
            return True
    return any(i.instance_id != instance_id for i in ctx.ecs.instances_tagged(tags.BAKE_ID, bake_id))


def preflight_script_for(settings: Settings, skip_rules: list[str]) -> str:
    """The shipped preflight script, with its parameters set as the environment it reads."""
    prelude = f"export MIN_FREE_MB={settings.min_free_mb}\nexport SKIP_RULES='{' '.join(sorted(skip_rules))}'\n"
    return prelude + preflight_script()


# == the trigger and the claim ======================================================================


def trigger_call(event: events.CloudEvent) -> events.TagCall:
    """The TagResources record as a possible trigger; NotATrigger when it surely sets no `bakery:bake=true` on
    an instance (any tag write in the account reaches bake; Bakery's own are filtered by the trigger pattern)."""
    call = events.TagCall.parse(event.data, tags.TRIGGER, tags.truthy)
    if call.resource_type not in (None, "instance") or call.trigger is False:
        raise NotATrigger(f"TagResources event {event.id} sets no {tags.TRIGGER}=true on an instance")
    return call


def on_tagged(ctx: Context, event: events.CloudEvent) -> None:
    """ActionTrail TagResources: start a bake for each instance that got `bakery:bake=true`."""
    call = trigger_call(event)
    trigger_id = str(event.data.get("eventId") or event.id)
    for instance_id in call.resource_ids:
        if _INSTANCE_ID.match(instance_id):
            # A record that does not carry the tags (trigger None) cannot tell a second trigger from
            # any other tag write: it may start a bake the instance's tags ask for, never refuse one.
            begin(ctx, instance_id, bake_id_for(trigger_id, instance_id), certain=call.trigger is True)


def begin(ctx: Context, instance_id: str, bake_id: str, *, requested: bool = False, certain: bool = True) -> None:
    """Start (or resume) a bake. `requested`: asked for by a `bakery:Bake:Requested` event, so the
    trigger tag is not needed; the instance's other bakery:* tags (family, stop-first...) still apply.
    `certain`: the event itself says the trigger was set (else a bake in flight is left alone quietly)."""
    with bound(bake_id=bake_id, instance_id=instance_id):
        instance = ctx.ecs.instance(instance_id)
        if instance is None:
            log.warning("instance no longer exists; nothing to bake")
            return
        if not requested and not tags.truthy(instance.tags.get(tags.TRIGGER)):
            log.info("trigger tag is gone; not baking")
            return
        current = instance.tags.get(tags.BAKE_ID)
        if requested and current != bake_id and not tags.truthy(instance.tags.get(tags.ALLOW_REQUESTS)):
            # A bus event is a request, not authority: PutEvents on the bus is not ecs:TagResources on the
            # instance. Only the instance's own opt-in tag lets it through; nothing is claimed or changed.
            # (current == bake_id: this very bake was accepted before, and a re-delivery only resumes it.)
            log.warning("bake request refused: the instance does not accept requests", tag=tags.ALLOW_REQUESTS)
            ctx.bus.publish(BakeryEvent(events.BAKE_FAILED, instance_id, {
                "bakeId": bake_id, "instanceId": instance_id, "reason": "request-not-allowed",
                "message": f"A {events.BAKE_REQUESTED} event asked to bake {instance_id}, which does not accept "
                           f"requests; nothing was changed. To allow them, tag the instance {tags.ALLOW_REQUESTS}=true "
                           f"(tagging needs ecs:TagResources on it), or bake it directly by tagging it "
                           f"{tags.TRIGGER}=true."}))  # fmt: skip
            return
        if current and current != bake_id:
            log.info("a bake is already in flight for this instance; ignoring the second", in_flight=current)
            if not certain or (current.startswith(SWEPT) and not requested):
                # A trigger event arriving after the sweep claimed its tag (a late delivery) is that same bake:
                # telling the operator "already baking" for one tagging would be a false alarm.
                return
            # Tell the operator, without touching the instance or the bake in flight.
            ctx.bus.publish(BakeryEvent(events.BAKE_FAILED, instance_id, {
                "bakeId": bake_id, "instanceId": instance_id, "reason": "already-baking",
                "message": f"Instance {instance_id} is already being baked (bake {current}); this trigger was "
                           "ignored. Tag it again after that bake ends.", "inFlight": current}))  # fmt: skip
            return

        def start() -> None:
            claimed = instance
            if current is None:
                static_gate(ctx, instance)
                claim = {tags.BAKE_ID: bake_id, tags.STATE: state.to(state.INSTANCE, state.UNSET, state.PREFLIGHT)}
                if _guest_preflight_runs(instance):
                    # The preflight only reads, so it starts before the claim and the claim records it: one
                    # write. Two triggers racing both start one; the claim written last names the invocation
                    # TaskCompleted is matched against (on_preflight_done), so the other's result is ignored.
                    claim[tags.PREFLIGHT_INVOKE] = _run_preflight(ctx, instance, bake_id)
                ctx.ecs.tag("instance", instance_id, claim)
                log.info("bake started")
                if tags.PREFLIGHT_INVOKE in claim:
                    return  # TaskCompleted (or the sweep) brings the bake back
                claimed = replace(instance, tags={**instance.tags, **claim})  # what was just written: no re-read
            advance_instance(ctx, claimed)

        failure.guarded(ctx, instance_id, bake_id, start)


def static_gate(ctx: Context, instance: Instance) -> None:
    """What can be judged from the API alone, before anything is changed."""
    if instance.status in TRANSITIONAL:
        raise RetryableError(f"instance is {instance.status}; Bakery never acts on a transitional state")
    if instance.status not in ("Running", "Stopped"):
        raise BakeFailure("instance-status", f"Instance {instance.instance_id} is {instance.status}: only Running "
                          "or Stopped instances can be imaged.")  # fmt: skip
    for kind, tag in (("family", tags.FAMILY), ("name prefix", tags.NAME)):
        problem = create.name_problem(kind, instance.tags[tag]) if instance.tags.get(tag) else None
        if problem:  # caught before any image exists: an invalid family would strand a checked image
            raise BakeFailure("invalid-request", f"Tag {tag} on {instance.instance_id}: {problem}")
    tag_budget(ctx, instance)
    if "security" in instance.lock_reasons:
        raise BakeFailure("instance-locked", f"Instance {instance.instance_id} is locked for security reasons "
                          "(OperationLocks: security); unlock it in the console before baking.")  # fmt: skip
    local = [d for d in ctx.ecs.disks(instance.instance_id) if d.is_local]
    if LOCAL_DISK_TYPE.match(instance.instance_type) or local or instance.local_disk_count:
        names = ", ".join(f"{d.disk_id} ({d.category})" for d in local) or "local disks"
        raise BakeFailure("local-disks", f"Instance {instance.instance_id} ({instance.instance_type}) has {names}: "
                          "local disks cannot be snapshotted, so the instance cannot be imaged. Bake an instance "
                          "with cloud disks instead.")  # fmt: skip


def instance_tags_needed(instance: Instance) -> list[str]:
    """The tag keys a bake of `instance` may add to it at its peak (a failure while winding down)."""
    keys = [tags.BAKE_ID, tags.STATE, tags.IMAGE, tags.ENDING, tags.LAST_ERROR]
    if not tags.truthy(instance.tags.get(tags.SKIP_GUEST_CHECKS)):
        keys.append(tags.PREFLIGHT_INVOKE)
    if tags.truthy(instance.tags.get(tags.STOP_FIRST)):
        keys.append(tags.STOPPED_BY_BAKERY)
    return [k for k in keys if k not in instance.tags]


def tag_budget(ctx: Context, instance: Instance) -> None:
    """Refuse up front, before anything is made, a bake whose tags cannot fit ECS' 20 per resource: a tag write
    refused half-way (QuotaExceed.Tags) would strand the bake."""
    limit = tags.MAX_TAGS_PER_RESOURCE
    needed = instance_tags_needed(instance)
    have = len([k for k in instance.tags if not k.startswith("acs:")])  # system tags do not count (ECS tag docs)
    over = have + len(needed) - limit
    if over > 0:
        raise BakeFailure("tag-limit", f"Instance {instance.instance_id} has {have} tags and a bake "
                          f"needs room for {len(needed)} more ({', '.join(needed)}); ECS allows {limit} per resource. "
                          f"Remove {over} tag(s) from the instance, then tag it again.", remove=over)  # fmt: skip
    create.image_tag_budget(ctx)


def advance_instance(ctx: Context, instance: Instance) -> None:
    """Move a claimed bake one step further from whatever state its instance tags record."""
    current = instance.tags.get(tags.STATE)
    if current == state.PREFLIGHT:
        if tags.PREFLIGHT_INVOKE in instance.tags:
            _finish_preflight(ctx, instance)
        else:
            _start_preflight(ctx, instance)
    elif current == state.STOPPING:
        create.when_stopped(ctx, instance)
    # creating and later: the image carries the state; the check function follows it


# == the guest preflight ============================================================================


def _start_preflight(ctx: Context, instance: Instance) -> None:
    bake_id = instance.tags[tags.BAKE_ID]
    if tags.truthy(instance.tags.get(tags.SKIP_GUEST_CHECKS)):
        log.warning("guest checks skipped by tag", tag=tags.SKIP_GUEST_CHECKS)
        return create.after_preflight(ctx, instance)
    if instance.status != "Running":
        return _unchecked_guest(ctx, instance, f"the instance is {instance.status}, so Cloud Assistant cannot "
                                "inspect its disk", f"Start it and tag {tags.STOP_FIRST}=true (Bakery checks the guest, "
                                "stops it for a consistent image and starts it again), or tag "
                                f"{tags.SKIP_GUEST_CHECKS}=true to image it as it is without the guest checks.")  # fmt: skip
    if instance.os_type != "linux":
        # The preflight is a RunShellScript: on Windows Cloud Assistant refuses it (status Invalid) and the
        # bake used to end "preflight-error: output could not be read", which tells nobody what to do.
        return _unchecked_guest(ctx, instance, f"the preflight is a Linux shell script and the instance runs "
                                f"{instance.os_type}", f"Tag {tags.SKIP_GUEST_CHECKS}=true to bake it without the guest "
                                "checks (the ECS image check still runs).")  # fmt: skip
    ctx.ecs.tag("instance", instance.instance_id, {tags.PREFLIGHT_INVOKE: _run_preflight(ctx, instance, bake_id)})


def _guest_preflight_runs(instance: Instance) -> bool:
    """Will `_start_preflight` run the guest preflight (rather than skip it or refuse the bake)?"""
    return (not tags.truthy(instance.tags.get(tags.SKIP_GUEST_CHECKS)) and instance.status == "Running"
            and instance.os_type == "linux")  # fmt: skip


def _run_preflight(ctx: Context, instance: Instance, bake_id: str) -> str:
    """RunCommand the preflight (read-only: safe to start twice); returns its InvokeId."""
    skip = [rule for rule, tag in tags.ALLOW.items() if tags.truthy(instance.tags.get(tag))]
    invoke_id = ctx.ecs.run_script(instance.instance_id, preflight_script_for(ctx.settings, skip),
                                   name=f"{PREFLIGHT_COMMAND}-{bake_id}")  # fmt: skip
    log.info("guest preflight started", invoke_id=invoke_id)
    return invoke_id


def on_preflight_done(ctx: Context, event: events.CloudEvent) -> None:
    """Cloud Assistant TaskCompleted: read the preflight's report, if the command is this bake's."""
    instance_id = str(event.data.get("instanceId", ""))
    instance = ctx.ecs.instance(instance_id) if instance_id else None
    if instance is None or tags.PREFLIGHT_INVOKE not in instance.tags:
        return
    # Alibaba's TaskCompleted sample shows commandName but may not carry invokeId (README: wiring): without
    # it, the command named after this bake is ours; with it, it must be the invocation the bake recorded.
    if "invokeId" in event.data:
        ours = event.data["invokeId"] == instance.tags[tags.PREFLIGHT_INVOKE]
    else:
        ours = event.data.get("commandName") == f"{PREFLIGHT_COMMAND}-{instance.tags.get(tags.BAKE_ID)}"
    if not ours:
        return  # someone else's command, or a bake that already moved on
    if instance.tags.get(tags.STATE) != state.PREFLIGHT:
        # A duplicated TaskCompleted after the first copy moved the bake on (stopping/creating): the
        # invoke tag is still there, so without this guard the copy re-ran after_preflight and called
        # CreateImage on a Stopping instance (IncorrectInstanceStatus, retried into the dead letter).
        return
    with bound(bake_id=instance.tags.get(tags.BAKE_ID), instance_id=instance_id):
        failure.guarded(ctx, instance_id, instance.tags[tags.BAKE_ID], lambda: _finish_preflight(ctx, instance))


def _finish_preflight(ctx: Context, instance: Instance) -> None:
    result = ctx.ecs.command_result(instance.tags[tags.PREFLIGHT_INVOKE], instance.instance_id)
    if result is None or not result.finished:
        return  # TaskCompleted (or the sweep) brings us back
    if result.error_code in ("ClientNotRunning", "ClientNotResponse", "ClientNeedUpgrade", "InstanceNotRunning",
                             "DeliveryTimeout"):  # fmt: skip
        return _unchecked_guest(ctx, instance, f"Cloud Assistant could not run the preflight ({result.error_code})",
                                "Make sure the Cloud Assistant agent is installed and running on the instance, or "
                                f"tag {tags.SKIP_GUEST_CHECKS}=true to bake without the guest checks.")  # fmt: skip
    try:
        report = parse_report(result.output, result.exit_code if result.exit_code is not None else -1)
    except ValueError as exc:
        if result.error_code and result.error_code != "ExitCodeNonzero":  # Cloud Assistant's own reason
            raise BakeFailure("preflight-error", f"Cloud Assistant could not run the preflight ({result.error_code}: "
                              f"{result.error_info or 'no detail'}); status {result.invocation_status}.") from None  # fmt: skip
        raise BakeFailure("preflight-error", f"The preflight script's output could not be read ({exc}); "
                          f"status {result.invocation_status}, exit code {result.exit_code}.") from None  # fmt: skip
    if report.errors:
        raise BakeFailure("preflight-error", "The preflight could not check: " + "; ".join(report.errors))
    if not report.passed:
        lines = [f"{f.rule}: {f.target} {f.detail}".strip() for f in report.findings]
        overrides = sorted({tags.ALLOW[f.rule] for f in report.findings if f.rule in tags.ALLOW})
        raise BakeFailure("preflight", "Preflight found: " + "; ".join(lines) + ". Fix them on the instance, or "
                          f"override with the tag(s) {', '.join(f'{o}=true' for o in overrides)}.",
                          findings=lines)  # fmt: skip
    log.info("guest preflight passed")
    create.after_preflight(ctx, instance)


def _unchecked_guest(ctx: Context, instance: Instance, why: str, way: str) -> None:
    """`why` the guest checks cannot run, `way`: what the operator can do about it (it differs by cause)."""
    if ctx.settings.unchecked_guest_policy == "warn":
        log.warning("guest checks could not run; continuing (BAKERY_UNCHECKED_GUEST_POLICY=warn)", why=why)
        return create.after_preflight(ctx, instance)
    raise BakeFailure("guest-unchecked", f"Guest checks could not run: {why}. {way}")
