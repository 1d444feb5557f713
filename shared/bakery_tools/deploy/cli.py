"""`bakery deploy` and `bakery destroy`: template.yml to a running stack in one command (like `sam deploy`).

    bakery deploy [--stack bakery] [--region R] [--endpoint HOST:PORT] [--bucket B] [--prefix bakery]
                  [--parameter KEY=VALUE ...] [--template template.yml] [--timeout MIN] [--artifacts DIR]
                  [--config FILE] [--dry-run] [--json]
    bakery destroy [--stack bakery] [--yes] [--keep-buses] [--json]

Settings come from a `[tool.bakery.deploy]` table in ./pyproject.toml, then `--config FILE` (the same keys), then
the flags (later wins; `parameters` merge key by key). The engine is the rest of bakery_tools.deploy (its
__init__ says which file does what); this module parses and prints. Exit codes: 0 done, 1 refused or failed (ROS refused, the stack failed, a missing permission, the cloud
unreachable, still in progress at --timeout), 2 bad input (no region, no credentials, a missing parameter, an
invalid template or setting).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bakery_tools.exits import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE

ROS_ACTIONS = {"CreateStack", "UpdateStack", "DeleteStack", "GetStack", "ListStacks", "GetTemplate", "ListStackEvents"}
PERMISSION_CODE_PREFIXES = ("Forbidden", "NoPermission", "AccessDenied", "NotAuthorized", "Unauthorized")
EVENTBRIDGE_ACTIONS = {"GetEventBus", "CreateEventBus", "DeleteEventBus"}
CREDENTIAL_CODES = {"InvalidCredentials", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                    "InvalidAccessKeyId.Inactive", "InvalidSecurityToken.Expired", "InvalidSecurityToken.Malformed"}  # fmt: skip


def register(commands: Any) -> None:
    """Add `deploy` and `destroy` to the `bakery` parser."""
    deploy = commands.add_parser(
        "deploy",
        help="deploy template.yml as a ROS stack: buses, code bucket and uploads, create/update, follow",
        description="Validate template.yml locally, create the custom buses it uses, build the function zips and "
        "upload them under <prefix>/<hash> (unchanged code keeps its prefix), then create or update the ROS stack "
        "and follow its events to the end. --dry-run shows exactly what would change and changes nothing.",
        epilog="settings: [tool.bakery.deploy] in ./pyproject.toml < --config FILE < flags; e.g.\n"
        '  [tool.bakery.deploy]\n  region = "cn-hangzhou"\n  bucket = "my-bakery-code"\n'
        '  [tool.bakery.deploy.parameters]\n  RepairZoneId = "cn-hangzhou-h"\n\n'
        "examples:\n  bakery deploy --dry-run\n  bakery deploy --bucket my-code --parameter RepairVSwitchId=vsw-1 "
        "--parameter RepairSecurityGroupId=sg-1 --parameter RepairZoneId=cn-hangzhou-h",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(deploy)
    deploy.add_argument("--bucket", help="OSS bucket for the code (created in the region if missing)")
    deploy.add_argument("--prefix", help="object prefix before the artifacts' hash (default: bakery)")
    deploy.add_argument("--timeout", type=int, help="minutes: ROS's TimeoutInMinutes and how long to follow (30)")
    deploy.add_argument("--artifacts", help="deploy the zips in DIR (from `make package`) instead of building them")
    deploy.add_argument("--dry-run", action="store_true", help="show the plan; change nothing in the cloud")
    deploy.set_defaults(run=cmd_deploy)

    destroy = commands.add_parser(
        "destroy",
        help="delete the stack and its buses; says what it leaves (images, snapshots, tags, code objects)",
        description="DeleteStack, follow it to DELETE_COMPLETE, then delete the custom buses the template uses "
        "(unless --keep-buses). Never deletes images or snapshots: it lists the images Bakery made, their "
        "snapshots, instances still tagged bakery:* and the code objects, with how to remove them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(destroy)
    destroy.add_argument("--yes", action="store_true", help="do not ask (required when stdin is not a terminal)")
    destroy.add_argument("--keep-buses", action="store_true", help="leave the custom buses in place")
    destroy.add_argument("--bucket", help="the code bucket, when the stack is gone (default: its CodeBucket)")
    destroy.add_argument("--prefix", help="the code prefix to report objects under (default: bakery)")
    destroy.set_defaults(run=cmd_destroy)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="stack name (default: bakery)")
    parser.add_argument("--region", help="region id (default: $ALIBABA_CLOUD_REGION_ID)")
    parser.add_argument("--endpoint", help="a local cloud's host:port (default: $BAKERY_CLOUD_ENDPOINT; unset = Alibaba "
                        "Cloud with the standard credential chain)")  # fmt: skip
    parser.add_argument("--template", help="the ROS template (default: ./template.yml)")
    parser.add_argument("--parameter", action="append", metavar="KEY=VALUE",
                        help="a template parameter, e.g. RepairZoneId=cn-hangzhou-h (repeatable)")  # fmt: skip
    parser.add_argument("--config", help="a TOML file with the [tool.bakery.deploy] keys")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def settings_from(args: argparse.Namespace, cwd: Path | None = None) -> Any:
    from bakery_tools.deploy.settings import (
        config_layer,
        flag_layer,
        parse_parameter_flags,
        pyproject_layer,
        resolve_settings,
    )

    cwd = cwd or Path.cwd()
    layers = [layer for layer in [pyproject_layer(cwd / "pyproject.toml")] if layer is not None]
    if args.config:
        layers.append(config_layer(Path(args.config)))
    layers.append(flag_layer({
        "stack": args.stack, "region": args.region, "endpoint": args.endpoint, "template": args.template,
        "bucket": getattr(args, "bucket", None), "prefix": getattr(args, "prefix", None),
        "timeout": getattr(args, "timeout", None), "artifacts": getattr(args, "artifacts", None),
        "parameters": parse_parameter_flags(args.parameter or []),
    }))  # fmt: skip
    return resolve_settings(layers)


# == deploy ========================================================================================


def cmd_deploy(args: argparse.Namespace) -> int:
    from bakery_tools.deploy.deployer import Deployer

    out = _Output(args.json)
    try:
        settings = settings_from(args)
        deployer = Deployer(settings, on_step=out.step)
        plan = deployer.plan()
        out.lines(_plan_lines(plan))
        if args.dry_run:
            out.line("Dry run: nothing was changed in the cloud. Run it again without --dry-run to apply.")
            return out.done(EXIT_OK, {"ok": True, "dryRun": True, **plan.as_json()})
        result = deployer.apply(plan, on_event=out.event)
    except Exception as exc:  # every failure becomes an exit code and an actionable message
        return out.refuse(args, _refusal(exc, args))
    return _deploy_outcome(out, result)


def _plan_lines(plan: Any) -> list[str]:
    s = plan.settings
    where = f"the local cloud at {s.endpoint}" if s.endpoint else "Alibaba Cloud"
    lines = [f"Stack {s.stack} in {s.region} ({where}), from {plan.template_name}: {plan.resource_count} resources."]
    if plan.buses_to_create:
        lines.append(f"  buses     create {', '.join(plan.buses_to_create)}"
                     + (f" (exist: {', '.join(b for b in plan.buses if b not in plan.buses_to_create)})"
                        if len(plan.buses_to_create) < len(plan.buses) else ""))  # fmt: skip
    elif plan.buses:
        lines.append(f"  buses     {', '.join(plan.buses)} exist")
    if plan.bucket:
        lines.append(f"  bucket    {plan.bucket} exists" if plan.bucket_exists
                     else f"  bucket    create {plan.bucket} in {s.region}")  # fmt: skip
        lines.append(f"  code      oss://{plan.bucket}/{plan.code_prefix}/")
        for a in plan.artifacts:
            lines.append(f"              {a.state:<10} {a.name:<14} {a.size / 1e6:6.1f} MB  sha256 {a.sha256[:12]}")
    if plan.action == "create":
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(plan.resource_types.items()))
        lines.append(f"  stack     create {s.stack}: {kinds}")
    elif plan.action == "busy":
        lines.append(f"  stack     {s.stack} is {plan.stack.status}: deploy waits for that to end, then plans again")
    elif plan.action == "none":
        lines.append(f"  stack     no changes ({s.stack} is {plan.stack.status} with this template and parameters)")
    else:
        count = len(plan.changes)
        lines.append(f"  stack     update {s.stack} ({plan.stack.status}): {count} change{'s' if count != 1 else ''}")
        lines += [f"              {c.line()}" for c in plan.changes]
    return lines


def _deploy_outcome(out: _Output, result: Any) -> int:
    plan, s, follow = result.plan, result.plan.settings, result.follow
    payload = {"ok": result.ok, "dryRun": False, **plan.as_json(), "action": result.action, "stackId": result.stack_id,
               "busesCreated": result.buses_created, "bucketCreated": result.bucket_created,
               "uploaded": result.uploaded}  # fmt: skip
    if follow is None:  # no changes
        out.line(f"No changes: stack {s.stack} already runs this template with these parameters.")
        payload.update(status=plan.stack.status if plan.stack else None, next=_next_steps(s, plan))
        out.lines(["Next:", *[f"  {n}" for n in _next_steps(s, plan)]])
        return out.done(EXIT_OK, payload)
    payload.update(status=follow.status, statusReason=follow.status_reason, timedOut=follow.timed_out,
                   seconds=round(follow.elapsed, 1), events=[e.as_json() for e in follow.events],
                   failedResources=[e.as_json() for e in follow.failed],
                   outputs={o.get("OutputKey"): o.get("OutputValue") for o in follow.outputs})  # fmt: skip
    took = _duration(follow.elapsed) + (" simulated" if s.endpoint else "")
    if follow.timed_out:
        again = f"bakery deploy --stack {s.stack}{_flags(s)}"
        out.lines([f"Stack {s.stack} is still {follow.status} after {took} (--timeout {s.timeout} min): ROS goes on "
                   "without us.", f"Follow it to its end: `{again}` (it waits for an operation in progress before "
                   "doing anything), or"
                   f" aliyun ros ListStackEvents --RegionId {s.region} --StackId {result.stack_id}"])  # fmt: skip
        return out.done(EXIT_PROBLEM, {**payload, "ok": False, "reason": "timeout"})
    if not follow.ok:
        out.line(f"Stack {s.stack}: {follow.status} after {took}: {follow.status_reason or 'ROS gave no reason'}")
        if follow.failed:
            out.line("Failed resources:")
            out.lines([f"  {e.logical_id} ({e.resource_type}) {e.status}: {e.reason or 'no reason given'}"
                       for e in follow.failed])  # fmt: skip
        hint = ("Fix the cause and run bakery deploy again: it updates the rolled-back stack (should ROS refuse, "
                f"delete it first: bakery destroy --stack {s.stack} --yes)." if follow.operation == "create"
                else "Fix the cause and run bakery deploy again.")  # fmt: skip
        out.line(hint)
        return out.done(EXIT_PROBLEM, {**payload, "ok": False, "reason": "stack-failed"})
    out.line(f"Stack {s.stack}: {follow.status} in {took}.")
    if follow.outputs:
        from bakery_tools.terminal import table_lines

        out.line("Outputs:")
        out.lines(table_lines([[o.get("OutputKey", ""), o.get("OutputValue", ""), o.get("Description") or ""]
                               for o in follow.outputs], ["output", "value", "description"]))  # fmt: skip
    steps = _next_steps(s, plan)
    payload["next"] = steps
    out.lines(["Next:", *[f"  {n}" for n in steps]])
    return out.done(EXIT_OK, payload)


def _next_steps(settings: Any, plan: Any) -> list[str]:
    flags = _flags(settings)
    bus = plan.parameters.get("NotificationBus", "bakery")
    if bus != "bakery":
        flags += f" --bus {bus}"
    return [f"bakery bake INSTANCE --family FAMILY{flags}   (tag an instance: Bakery bakes it into FAMILY)",
            f"bakery status{flags}   (bakes in flight and recent outcomes)"]  # fmt: skip


def _flags(settings: Any) -> str:
    """The target flags to repeat in a suggested command (those not already in the environment)."""
    flags = ""
    if settings.region and settings.region != os.environ.get("ALIBABA_CLOUD_REGION_ID"):
        flags += f" --region {settings.region}"
    if settings.endpoint and settings.endpoint != os.environ.get("BAKERY_CLOUD_ENDPOINT"):
        flags += f" --endpoint {settings.endpoint}"
    return flags


# == destroy =======================================================================================


def cmd_destroy(args: argparse.Namespace) -> int:
    from bakery_tools.deploy.deployer import Deployer
    from bakery_tools.deploy.errors import DeployError

    out = _Output(args.json)
    if not args.yes and not sys.stdin.isatty():
        return out.refuse(args, DeployError(EXIT_USAGE, "confirm", "bakery destroy deletes the stack and its buses: "
                                            "add --yes to confirm (stdin is not a terminal, so it cannot ask)."))  # fmt: skip
    try:
        settings = settings_from(args)
        deployer = Deployer(settings, on_step=out.step)
        plan = deployer.destroy_plan()
        what = []
        if plan.stack is not None:
            out.line(f"Stack {settings.stack} in {settings.region}: {plan.stack.status}, {plan.resource_count} "
                     "resources.")  # fmt: skip
            what.append(f"stack {settings.stack}")
        else:
            out.line(f"No stack {settings.stack} in {settings.region} (ListStacks found none that is not deleted).")
        buses = [] if args.keep_buses else plan.buses
        if buses:
            what.append(f"bus{'es' if len(buses) > 1 else ''} {', '.join(buses)}")
        elif plan.buses:
            out.line(f"Buses {', '.join(plan.buses)} stay (--keep-buses).")
        if not what:
            out.line("Nothing to delete.")
            return out.done(EXIT_OK, {"ok": True, "stack": None, "buses": {}, "deleted": False})
        if not args.yes:
            answer = input(f"Delete {' and '.join(what)} in {settings.region}? Images and snapshots are kept. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                out.line("Nothing deleted.")
                return out.done(EXIT_PROBLEM, {"ok": False, "reason": "not-confirmed"})
        result = deployer.destroy(plan, keep_buses=args.keep_buses, on_event=out.event)
    except Exception as exc:  # every failure becomes an exit code and an actionable message
        return out.refuse(args, _refusal(exc, args))
    return _destroy_outcome(out, result)


def _destroy_outcome(out: _Output, result: Any) -> int:
    s, follow = result.plan.settings, result.follow
    payload: dict[str, Any] = {
        "ok": result.ok, "stack": s.stack, "region": s.region,
        "stackId": result.plan.stack.stack_id if result.plan.stack else None,
        "status": follow.status if follow else None, "statusReason": follow.status_reason if follow else None,
        "timedOut": follow.timed_out if follow else False, "events": [e.as_json() for e in follow.events] if follow else [],
        "failedResources": [e.as_json() for e in follow.failed] if follow else [], "buses": result.buses,
        "left": {"images": result.images, "snapshots": result.snapshots, "instances": result.instances,
                 "objects": [{"key": k, "size": n} for k, n in result.objects], "bucket": result.plan.bucket or None},
        "notes": result.notes,
    }  # fmt: skip
    if follow is not None:
        took = _duration(follow.elapsed) + (" simulated" if s.endpoint else "")
        if follow.timed_out:
            out.line(f"Stack {s.stack} is still {follow.status} after {took}: run bakery destroy again to follow it.")
        elif follow.ok:
            out.line(f"Stack {s.stack}: DELETE_COMPLETE in {took}.")
        else:
            out.line(f"Stack {s.stack}: {follow.status} after {took}: {follow.status_reason or 'ROS gave no reason'}")
            out.lines([f"  {e.logical_id} ({e.resource_type}) {e.status}: {e.reason or 'no reason given'}"
                       for e in follow.failed])  # fmt: skip
            out.line("Fix the cause (often: a resource someone changed by hand) and run bakery destroy again.")
    for bus, outcome in result.buses.items():
        out.line(f"Bus {bus}: {outcome}.")
    out.lines(_left_lines(result))
    return out.done(EXIT_OK if result.ok else EXIT_PROBLEM, payload)


def _left_lines(result: Any) -> list[str]:
    s = result.plan.settings
    lines = ["Left in place (destroy never deletes images or snapshots):"]
    if result.images:
        lines.append(f"  {len(result.images)} image(s) Bakery made (tag bakery:bake-id) and their "
                     f"{len(result.snapshots)} snapshot(s):")  # fmt: skip
        lines += [f"    {i['imageId']}  {i['status']:<12} family {i['family'] or '-':<10} {i['name']}"
                  for i in result.images]  # fmt: skip
        lines.append(f"    to delete one: aliyun ecs DeleteImage --RegionId {s.region} --ImageId m-..., then "
                     "DeleteSnapshot for each of its snapshots")  # fmt: skip
    else:
        lines.append("  no image made by Bakery (tag bakery:bake-id)")
    if result.instances:
        lines.append(f"  {len(result.instances)} instance(s) still tagged bakery:*: "
                     + ", ".join(f"{i['instanceId']} ({', '.join(sorted(i['tags']))})" for i in result.instances))  # fmt: skip
    if result.plan.bucket:
        if result.objects:
            size = sum(n for _, n in result.objects)
            lines.append(f"  {len(result.objects)} code object(s), {size / 1e6:.1f} MB, in oss://{result.plan.bucket}/"
                         f"{result.plan.prefix}/: remove them with `ossutil rm oss://{result.plan.bucket}/"
                         f"{result.plan.prefix}/ -r -f` (and the bucket, if only Bakery used it)")  # fmt: skip
        else:
            lines.append(f"  no code object under oss://{result.plan.bucket}/{result.plan.prefix}/")
    lines += [f"  note: {n}" for n in result.notes]
    return lines


# == output and errors =============================================================================


class _Output:
    """Lines for a person as they happen, or one JSON document at the end (--json)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def line(self, text: str) -> None:
        if not self.as_json:
            print(text, flush=True)

    def lines(self, texts: list[str]) -> None:
        for text in texts:
            self.line(text)

    def step(self, step: Any) -> None:
        d = step.detail
        texts = {
            "validated": f"{step.subject}: valid ({d.get('resources')} resources; checked locally as ROS would).",
            "build-log": f"  | {step.subject}",
            "built": f"Artifacts: {d.get('count')} zips in {step.subject}.",
            "bus-created": f"Created bus {step.subject}.",
            "bucket-created": f"Created bucket {step.subject} in {d.get('region')}.",
            "uploaded": f"Uploaded {step.subject} ({d.get('size', 0) / 1e6:.1f} MB) to oss://{d.get('bucket')}/"
                        f"{d.get('key')}.",
            "unchanged": f"{step.subject}: already in oss://{d.get('bucket')}/{d.get('key')} (same sha256).",
            "stack-create": f"Creating stack {step.subject} ({d.get('resources')} resources); ROS events:",
            "stack-update": f"Updating stack {step.subject}; ROS events:",
            "stack-busy": f"Stack {step.subject} is {d.get('status')}: following it to its end first.",
            "stack-deleting": f"Deleting stack {step.subject}; ROS events:",
        }  # fmt: skip
        if step.kind in texts:
            self.line(texts[step.kind])

    def event(self, event: Any, done: int, total: int) -> None:
        when = event.time.split("T")[-1][:8] if event.time else "--:--:--"
        progress = f"[{done:>2}/{total}]" if total else f"[{done:>2}]"
        reason = f"  {event.reason}" if event.reason and event.status.endswith("_FAILED") else ""
        self.line(f"  {when}  {progress}  {event.status:<22} {event.resource_type:<32} {event.logical_id}{reason}")

    def done(self, code: int, payload: dict[str, Any]) -> int:
        if self.as_json:
            print(json.dumps(payload, indent=2, default=str))
        return code

    def refuse(self, args: argparse.Namespace, refused: Any) -> int:
        if self.as_json:
            print(json.dumps({"ok": False, "reason": refused.reason, "message": refused.message}, indent=2))
        else:
            print(f"bakery {args.command}: {refused.message}", file=sys.stderr)
        return refused.exit_code


def _refusal(exc: Exception, args: argparse.Namespace) -> Any:
    """Any failure as a DeployError whose message says what to do next."""
    from bakery.errors import BakeFailure, CloudError, ConfigError, RetryableError
    from bakery_tools.deploy.errors import DeployError

    if isinstance(exc, DeployError):
        return exc
    if isinstance(exc, ConfigError):
        return DeployError(EXIT_USAGE, "no-region", str(exc))
    endpoint = getattr(args, "endpoint", None) or os.environ.get("BAKERY_CLOUD_ENDPOINT")
    region = getattr(args, "region", None) or os.environ.get("ALIBABA_CLOUD_REGION_ID") or "the region"
    if isinstance(exc, RetryableError):
        if exc.code == "Unreachable":
            where = (f"the local cloud at {endpoint}: is it running? Start a bare region to deploy into with "
                     "`bakery local serve --bare --port 8080` and pass the endpoint it prints" if endpoint
                     else f"Alibaba Cloud in {region}: check the network and the region id")  # fmt: skip
            return DeployError(EXIT_PROBLEM, "unreachable", f"Cannot reach {where} ({str(exc).split(':', 1)[0]}).")
        return DeployError(EXIT_PROBLEM, "try-again", f"{exc}. Try again in a moment.")
    if isinstance(exc, BakeFailure):  # missing-permission from the SDK layer
        action = exc.details.get("action", "")
        return DeployError(EXIT_PROBLEM, exc.reason, f"Your credentials may not call {action} "
                           f"({exc.details.get('code', '')}): allow it for the deployer in RAM, or use credentials "
                           f"that have it. ({exc.message})" if action else exc.message)  # fmt: skip
    if isinstance(exc, CloudError):
        if exc.code == "InvalidRegionId.NotFound":
            return DeployError(EXIT_USAGE, "unknown-region", f"Region {region!r} is not known here ({exc.message}). "
                               "Pass the stack's region with --region (or ALIBABA_CLOUD_REGION_ID).")  # fmt: skip
        if exc.code in CREDENTIAL_CODES:
            return DeployError(EXIT_USAGE, "credentials", f"No usable Alibaba Cloud credentials ({exc.code}): set "
                               "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (or a profile with "
                               "`aliyun configure`); for a local cloud, pass --endpoint HOST:PORT.")  # fmt: skip
        if exc.code.startswith(PERMISSION_CODE_PREFIXES):
            action = f"{_service_of(exc.action)}:{exc.action}"
            return DeployError(EXIT_PROBLEM, "missing-permission", f"Your credentials may not call {action} "
                               f"({exc.code}: {exc.message}): allow it for the deployer in RAM, or use credentials "
                               "that have it.")  # fmt: skip
        if exc.action in ROS_ACTIONS:
            return DeployError(EXIT_PROBLEM, "ros-refused", f"ROS refused {exc.action}: {exc.code}: {exc.message}")
        return DeployError(EXIT_PROBLEM, "cloud-error", f"{exc.action or 'a call'} failed: {exc.code}: {exc.message}")
    if type(exc).__name__ in ("CredentialException", "CredentialsEmptyError"):
        return DeployError(EXIT_USAGE, "credentials", f"No usable Alibaba Cloud credentials ({exc}): set "
                           "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or pass --endpoint.")  # fmt: skip
    if isinstance(exc, (FileNotFoundError, ValueError)):
        return DeployError(EXIT_USAGE, "bad-input", str(exc))
    raise exc


def _service_of(action: str) -> str:
    if action in ROS_ACTIONS:
        return "ros"
    if action in EVENTBRIDGE_ACTIONS:
        return "eventbridge"
    if action in ("DescribeImages", "DescribeInstances"):
        return "ecs"
    return "oss"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
