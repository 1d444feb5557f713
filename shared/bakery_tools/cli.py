"""`bakery`: the operator's command line.

    bakery demo                                  the bundled local scenario, narrated
    bakery local run SCENARIO --report OUT.json  a scenario through template.yml against the local cloud
    bakery invoke FUNCTION EVENT_FILE            one function, one event (like `sam local invoke`)

Exit codes (bakery_tools.exits): 0 done, 1 the run broke a safety promise or a bake did not finish, 2 bad input.
The operator commands live in their own modules: ops (status, bake), families (plan, cost, rollback, restore),
deploy.cli (deploy, destroy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bakery_tools.exits import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from bakery_tools.terminal import print_json, print_table

_EVENT_LINES = {
    "bakery:Image:CreationStarted": lambda d: f"CreateImage {d['imageId']} (attempt {d.get('attempt')})",
    "bakery:Image:CheckFailed": lambda d: (
        f"image check FAILED on {d['imageId']}: "
        + ", ".join(f"{i['name']} ({i.get('riskCode')})" for i in d.get("items", []))
    ),
    "bakery:Image:RepairStarted": lambda d: (
        f"ACS-ECS-RepairImage {d['executionId']} repairItems={d.get('repairItems')}"
    ),
    "bakery:Image:Repaired": lambda d: f"repaired image {d['imageId']} (from {d['repairedFrom']}): checking it",
    "bakery:Image:Ready": lambda d: (
        f"READY {d['imageId']} promoted into family {d.get('family') or '(none)'}"
        + (
            f", with the identity of {d['originalImageId']}"
            if d.get("adopted") and d.get("originalImageId") != d["imageId"]
            else ""
        )
    ),
    "bakery:Bake:Failed": lambda d: f"FAILED ({d.get('reason')}): {d.get('message')}",
    "bakery:Image:Adopted": lambda d: (
        f"ADOPTED {d['imageId']} ({d.get('name')}, made outside Bakery, family {d.get('family') or '(none)'}): "
        "following its image check"
    ),
    "bakery:Image:NotAdopted": lambda d: f"not adopted ({d.get('reason')}): {d.get('message')}",
    "bakery:Family:RetentionApplied": lambda d: (
        f"retention on family {d.get('family')}: kept "
        f"{len(d.get('kept', []))}, deprecated {d.get('deprecated') or '-'}, deleted {d.get('deleted') or '-'}"
    ),
}


def _scenario(path: str | None) -> Any:
    from localcloud import Scenario
    from localcloud.cli import bundled_scenario

    return Scenario.load(path) if path else Scenario.load(bundled_scenario("bakery-demo"))


def _summary(run: Any, report: dict[str, Any]) -> int:
    """The bakes table, then the verdict (`_verdict_lines`); EXIT_PROBLEM unless the run is clean."""
    print()
    print_table(
        [
            [
                b["instanceId"] or (f"adopted {b['originalImageId']}" if b.get("originalImageId") else "-"),
                b["state"],
                b["imageId"] or "-",
                b["family"] or "-",
                str(b["attempts"]),
                b["reason"] or "",
            ]
            for b in report["bakes"]
        ],
        ["source", "bake", "image", "family", "images made", "reason"],
    )
    d = report["deliveries"]
    print(f"\n  simulated {report['simulated_seconds'] / 60:.1f} min · {sum(report['api_calls'].values())} API calls · "
          f"{d['count']} deliveries ({d['retries']} retries, {d['dead_letters']} dead letters)")  # fmt: skip
    problems = run.problems(report)
    for line in _verdict_lines(report, problems):
        print(f"  {line}")
    return EXIT_PROBLEM if problems else EXIT_OK


def _verdict(report: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """What the run shows, and no more: the bakes' outcomes, what was checked, every problem."""
    from bakery_tools.local import PROMISES

    states = [b["state"] for b in report["bakes"]]
    return {
        "ok": not problems,
        "bakes": {s: states.count(s) for s in dict.fromkeys(states)},
        "noBakeHappened": not report["bakes"],
        "checked": list(PROMISES),
        "problems": problems,
    }


def _verdict_lines(report: dict[str, Any], problems: list[str]) -> list[str]:
    verdict = _verdict(report, problems)
    counts = ", ".join(f"{n} {s}" for s, n in verdict["bakes"].items())
    checked = "checked on the final state: " + "; ".join(verdict["checked"])
    if problems:
        kinds = sorted({p.split(":", 1)[0] for p in problems})
        head = f"verdict: NOT CLEAN, {len(problems)} problem(s) ({', '.join(kinds)})"
        return [*problems, f"{head}; bakes: {counts or 'none'}", checked]
    if verdict["noBakeHappened"]:
        # Nothing was asked: the checks still ran, but they say nothing about a bake.
        return ["verdict: no bake happened (the scenario tagged no instance for baking); "
                "no dead letters; the final state breaks no safety promise", checked]  # fmt: skip
    return [f"verdict: every bake finished ({counts}), no dead letters; safety promises kept", checked]


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# The narrator's bound: a run that keeps publishing (a retry storm, a stuck sweep) must not flood the terminal.
PROGRESS_MAX_LINES = 400


def _narrator(start: float, max_lines: int = PROGRESS_MAX_LINES) -> Any:
    """on_step for LocalRun.run: one line per Bakery event, an identical repeat collapsed, at most `max_lines`
    (then one line saying so, and silence until the run ends and the summary prints)."""
    seen, printed, repeats, last = 0, 0, 0, ""

    def say(line: str) -> None:
        nonlocal printed
        if printed < max_lines:
            print(line)
            printed += 1
            if printed == max_lines:
                print(f"  ... progress stops here ({max_lines} lines); the summary follows when the run ends")

    def on_step(run: Any) -> None:
        nonlocal seen, repeats, last
        for published in run.cloud.events.read(seen, None):
            event = published.event
            if published.bus != "bakery" or event.get("type") not in _EVENT_LINES:
                continue
            data = event.get("data") if isinstance(event.get("data"), dict) else {}
            try:
                text = _EVENT_LINES[event["type"]](data)
            except (KeyError, TypeError):  # anyone may put events on the bus: a malformed one is not narrated
                continue
            who = data.get("instanceId") or data.get("family") or data.get("imageId") or ""
            line = f"{who:<10} {text}"
            if line == last:
                repeats += 1
                continue
            if repeats:
                say(f"           (the line above, {repeats} more time(s))")
            repeats, last = 0, line
            elapsed = _epoch(event.get("time", "")) - start if event.get("time") else run.cloud.clock.now - start
            say(f"  t+{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}  {line}")
        seen = run.cloud.events.cursor

    return on_step


def cmd_demo(args: argparse.Namespace) -> int:
    from bakery_tools.local import LocalRun

    scenario = _scenario(args.scenario)
    tagged = sum(1 for a in scenario.actions if "tag" in a)
    made = sum(1 for a in scenario.actions if "create_image" in a)
    outside = f", {made} image(s) made outside Bakery" if made else ""
    print(f"Bakery demo: {Path(scenario.source).name} — {tagged} instances tagged bakery:bake=true{outside} "
          "in a local cloud;\nthe functions and their wiring come from template.yml. Simulated time:")  # fmt: skip
    with LocalRun(scenario, **_template_args(args)) as run:
        report = run.run(on_step=_narrator(run.cloud.clock.now), step_seconds=30)
        code = _summary(run, report)
        from alibabacloud_ecs20140526 import models as m

        families = sorted({b["family"] for b in report["bakes"] if b["state"] == "ready" and b["family"]})
        for family in families:
            image = run.cloud_env.ecs.describe_image_from_family(
                m.DescribeImageFromFamilyRequest(region_id=run.cloud.region, image_family=family)).body.image  # fmt: skip
            print(f"  DescribeImageFromFamily {family} -> {image.image_id}")
        if args.report:
            from bakery_tools.local import write_report

            problems = run.problems(report)
            verdict = _verdict(report, problems)
            write_report({**report, "invariantViolations": run.invariant_violations(report), "verdict": verdict},
                         args.report)  # fmt: skip
            print(f"  report written to {args.report}")
    return code


def cmd_local_run(args: argparse.Namespace) -> int:
    from bakery_tools.local import LocalRun, write_report

    scenario = _scenario(args.scenario)
    with LocalRun(scenario, **_template_args(args)) as run:
        report = run.run(on_step=_narrator(run.cloud.clock.now) if args.progress and not args.json else None,
                         step_seconds=60)  # fmt: skip
        problems = run.problems(report)
        # The file carries the verdict too: a pipeline that reads only the file must learn what the exit code says.
        judged = {
            **report,
            "invariantViolations": run.invariant_violations(report),
            "verdict": _verdict(report, problems),
        }
        write_report(judged, args.report)
        if args.json:
            print_json(judged)
            return EXIT_PROBLEM if problems else EXIT_OK
        if args.trace:
            print(run.runtime.trace())
        code = _summary(run, report)
        print(f"  report written to {args.report}")
    return code


def _serve_bare(args: argparse.Namespace, scenario: Any) -> int:
    """A region with nothing deployed: `bakery deploy --endpoint` brings Bakery up in it, as ROS would."""
    from localcloud import LocalCloud
    from localcloud.server import LocalCloudServer

    cloud = LocalCloud(scenario)
    server = LocalCloudServer(cloud, port=args.port, speed=args.speed).start()
    flags = f"--endpoint {server.endpoint} --region {cloud.region}"
    print(f"A bare local {cloud.region} ({Path(scenario.source).name}: {len(scenario.instances)} instances, nothing "
          f"deployed), served at {server.endpoint};\nsimulated time runs {args.speed:g}x real time. "
          "Deploy Bakery into it from another terminal:")  # fmt: skip
    print(
        f"  bakery deploy --bucket bakery-code {flags} --parameter RepairVSwitchId=vsw-local "
        "--parameter RepairSecurityGroupId=sg-local --parameter RepairZoneId=" + f"{cloud.region}-h"
    )
    print(f"  bakery bake {next(iter(cloud.ecs.instances), 'i-...')} --family web {flags}")
    print(f"  bakery destroy --yes {flags}        (Ctrl-C stops)", flush=True)
    server.serve_until_signalled()
    cloud.close()
    return EXIT_OK


def cmd_local_serve(args: argparse.Namespace) -> int:
    """A local region with Bakery deployed, served over HTTP, its clock running: for the operator commands."""
    import signal
    import threading
    import time

    from bakery_tools.local import LocalRun
    from localcloud.server import LocalCloudServer

    scenario = _scenario(args.scenario)
    if not args.scenario:
        scenario.actions = []  # the demo region, waiting for the operator's own `bakery bake`
    if args.bare:
        return _serve_bare(args, scenario)
    with LocalRun(scenario, **_template_args(args)) as run:
        server = LocalCloudServer(run.cloud, port=args.port).start()
        flags = f"--endpoint {server.endpoint} --region {run.cloud.region}"
        print(
            f"Bakery deployed from {run.template_path.name} into a local {run.cloud.region} ({Path(scenario.source).name}),"
        )
        print(f"served at {server.endpoint}; simulated time runs {args.speed:g}x real time. Try, in another terminal:")
        print(f"  bakery status {flags}")
        print(f"  bakery bake {next(iter(run.cloud.ecs.instances), 'i-...')} --family web {flags}")
        print(f"  bakery plan {flags}        (Ctrl-C stops)", flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        start, actions = run.cloud.clock.now, sorted(scenario.actions, key=lambda a: float(a.get("at", 0)))
        last = time.monotonic()
        while not stop.wait(0.1):
            now = time.monotonic()
            target = run.cloud.clock.now + (now - last) * args.speed
            last = now
            while actions and start + float(actions[0].get("at", 0)) <= target:
                run.runtime.run_until(max(run.cloud.clock.now, start + float(actions[0].get("at", 0))))
                run.apply(actions.pop(0))
            run.runtime.run_until(target)
        server.stop()
    return EXIT_OK


def _invoke_remote(args: argparse.Namespace, payload: bytes) -> int:
    """FC 3.0's InvokeFunction against a served region (local, or a real FC endpoint), like `sam local start-lambda`."""
    import base64

    from alibabacloud_fc20230330 import models as fc_models
    from alibabacloud_fc20230330.client import Client as FcClient
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
    from alibabacloud_tea_openapi.utils_models import Config
    from darabonba.runtime import RuntimeOptions

    from bakery_tools.target import settings_for

    settings = settings_for(argparse.Namespace(**{"bus": "bakery", **vars(args)}))
    local = not args.endpoint.endswith(".aliyuncs.com")
    config = Config(access_key_id=settings.access_key_id or None, access_key_secret=settings.access_key_secret or None,
                    security_token=settings.security_token or None, region_id=settings.region, endpoint=args.endpoint,
                    protocol="http" if local else "https", read_timeout=330_000)  # fmt: skip
    name = f"bakery-{args.function}" if args.function in ("bake", "check", "repair", "lifecycle") else args.function
    mode = "Async" if args.async_ else "Sync"
    try:
        response = FcClient(config).invoke_function_with_options(
            name, fc_models.InvokeFunctionRequest(body=payload),
            fc_models.InvokeFunctionHeaders(x_fc_invocation_type=mode, x_fc_log_type="Tail"), RuntimeOptions())  # fmt: skip
    except AlibabaCloudException as exc:
        print(f"bakery: InvokeFunction {name}: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if getattr(exc, "status_code", 0) == 404 else EXIT_PROBLEM
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    body = response.body.read() if response.body is not None else b""
    error = headers.get("x-fc-error-type")
    logs = base64.b64decode(headers.get("x-fc-log-result", "")).decode("utf-8", "replace").splitlines()
    if args.json:
        print_json({"function": name, "requestId": headers.get("x-fc-request-id"), "statusCode": response.status_code,
                    "invocationType": mode, "errorType": error, "result": body.decode("utf-8", "replace"),
                    "logs": logs})  # fmt: skip
    else:
        print(f"{name}  request {headers.get('x-fc-request-id')}  {mode}  HTTP {response.status_code}"
              + (f"  {error}" if error else ""))  # fmt: skip
        for line in logs:
            print(f"  | {line}")
        if mode == "Async":
            print("accepted: FC delivers it with the function's async retries and dead letter")
        else:
            print(f"result: {body.decode('utf-8', 'replace')}")
    return EXIT_PROBLEM if error else EXIT_OK


def cmd_invoke(args: argparse.Namespace) -> int:
    from bakery_tools.local import LocalRun

    payload = Path(args.event).read_bytes()
    if args.endpoint:
        return _invoke_remote(args, payload)
    with LocalRun(_scenario(args.scenario), **_template_args(args)) as run:
        name = args.function if args.function in run.template.functions else f"bakery-{args.function}"
        if name not in run.template.functions:
            print(f"bakery: no function {args.function!r} in {run.template_path}; functions: "
                  f"{', '.join(sorted(run.template.functions))}", file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        cursor = run.cloud.events.cursor
        delivery = run.runtime.invoke(name, payload)
        if args.json:
            print_json({"function": name, "requestId": delivery.request_id, "outcome": delivery.outcome,
                        "result": delivery.result, "error": delivery.error, "logs": delivery.logs,
                        "published": [e.event for e in run.cloud.events.read(cursor)]})  # fmt: skip
            return EXIT_OK if delivery.outcome == "ok" else EXIT_PROBLEM
        print(f"{name}  request {delivery.request_id}  outcome {delivery.outcome}  ({delivery.wall_ms:.0f} ms)")
        for line in delivery.logs:
            print(f"  | {line}")
        print(f"result: {delivery.result if delivery.error is None else delivery.error}")
        published = [e.event for e in run.cloud.events.read(cursor)]
        if published:
            print("published:")
            for event in published:
                print(f"  {event['aliyuneventbusname']:<8} {event['type']}  {json.dumps(event.get('data'))[:160]}")
        return EXIT_OK if delivery.outcome == "ok" else EXIT_PROBLEM


def _template_args(args: argparse.Namespace) -> dict[str, Any]:
    """--template and --parameter KEY=VALUE (template.yml Parameters, e.g. MandatoryTags, RetentionKeep)."""
    out: dict[str, Any] = {"template_path": Path(args.template)} if getattr(args, "template", None) else {}
    parameters = {}
    for item in getattr(args, "parameter", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--parameter takes KEY=VALUE (a template.yml parameter), got {item!r}")
        parameters[key] = value
    if parameters:
        out["parameters"] = parameters
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bakery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the bundled local scenario, narrated")
    demo.add_argument("--scenario", help="another scenario YAML")
    demo.add_argument("--report", help="also write the report JSON here")
    demo.set_defaults(run=cmd_demo)

    local = commands.add_parser("local", help="run things against the local cloud")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    local_run = local_commands.add_parser("run", help="a scenario through template.yml; writes a report")
    local_run.add_argument("scenario", help="scenario YAML (with `actions:`)")
    local_run.add_argument("--report", required=True, help="where to write the report JSON")
    local_run.add_argument("--progress", action="store_true", help="narrate Bakery's events as they happen")
    local_run.add_argument("--trace", action="store_true", help="print every function delivery")
    local_run.set_defaults(run=cmd_local_run)

    local_serve = local_commands.add_parser("serve", help="serve a local region with Bakery deployed, clock running")
    local_serve.add_argument("scenario", nargs="?", help="scenario YAML (default: the demo region, untagged)")
    local_serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    local_serve.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)")
    local_serve.add_argument("--bare", action="store_true",
                             help="deploy nothing: a region to `bakery deploy --endpoint` into, as to Alibaba Cloud")  # fmt: skip
    local_serve.set_defaults(run=cmd_local_serve)

    invoke = commands.add_parser("invoke", help="one function, one event file, against the local cloud")
    invoke.add_argument("function", help="bake | check | repair | lifecycle (or the full FunctionName)")
    invoke.add_argument("event", help="event JSON as FC receives it, e.g. events/bakery-image-checkfailed.json")
    invoke.add_argument("--scenario", help="the region to run against (default: the demo region)")
    invoke.add_argument("--endpoint", help="call FC's InvokeFunction on a served region (bakery local serve, or a "
                        "real <account>.<region>.fc.aliyuncs.com) instead of a throwaway local one")  # fmt: skip
    invoke.add_argument("--region", default=os.environ.get("ALIBABA_CLOUD_REGION_ID", "cn-hangzhou"),
                        help="with --endpoint: the region (default $ALIBABA_CLOUD_REGION_ID or cn-hangzhou)")  # fmt: skip
    invoke.add_argument("--async", dest="async_", action="store_true",
                        help="with --endpoint: an asynchronous invocation (retries, dead letter)")  # fmt: skip
    invoke.set_defaults(run=cmd_invoke)

    for sub in (demo, local_run, local_serve, invoke):
        sub.add_argument("--template", help="template.yml to deploy locally (default: ./template.yml)")
        sub.add_argument("--parameter", action="append", metavar="KEY=VALUE",
                         help='a template parameter, e.g. MandatoryTags=\'{"cost-center":"42"}\' (repeatable)')  # fmt: skip
    for sub in (local_run, invoke):
        sub.add_argument("--json", action="store_true", help="machine-readable output")

    # Operator commands against a cloud (local or real) live in their own modules.
    from bakery_tools import families, ops
    from bakery_tools.deploy import cli as deploy_cli

    ops.register(commands)
    families.register(commands)
    deploy_cli.register(commands)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FileNotFoundError as exc:
        print(f"bakery: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # ScenarioError, TemplateError: the message names the key
        print(f"bakery: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
