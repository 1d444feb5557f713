"""`python -m localcloud serve|demo`: run a local cloud, or watch one work."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from importlib import resources
from pathlib import Path

from localcloud.cloud import LocalCloud
from localcloud.scenario import Scenario, ScenarioError


def bundled_scenario(name: str) -> Path:
    return Path(str(resources.files("localcloud") / "scenarios" / f"{name}.yml"))


def _load(path: str | None) -> Scenario:
    return Scenario.load(path) if path else Scenario.load(bundled_scenario("demo"))


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to any interface


def serve(args: argparse.Namespace) -> int:
    from localcloud.server import LocalCloudServer

    # Cloud Assistant (RunCommand/InvokeCommand) runs scripts on this host: anyone who can reach the port can run
    # code here, so only loopback is served unless the operator says otherwise.
    if not is_loopback(args.host):
        if not args.allow_remote:
            print(f"localcloud: refusing to serve on non-loopback host {args.host!r}: Cloud Assistant runs "
                  "scripts on this machine for anyone who can reach the port. Pass --allow-remote to do it "
                  "anyway.", file=sys.stderr)  # fmt: skip
            return 2
        print(f"localcloud: WARNING: serving on {args.host!r} (--allow-remote): anyone who can reach this port "
              "can call every API without credentials; Cloud Assistant scripts run confined to their guest (user, "
              "mount, pid and network namespaces) and are refused where confinement is unavailable.",
              file=sys.stderr)  # fmt: skip
    cloud = LocalCloud(_load(args.scenario))
    server = LocalCloudServer(cloud, host=args.host, port=args.port, speed=args.speed).start()
    clock = (
        f"--speed {args.speed} (simulated s per real s)"
        if args.speed
        else "moves only via POST /_localcloud/clock/advance"
    )
    print(f"localcloud serving {cloud.region} (account {cloud.account_id}) from {cloud.scenario.source}")
    print(
        f"  endpoint: {server.endpoint}   ->  Config(endpoint='{server.endpoint}', protocol='http', region_id='{cloud.region}')"
    )
    print(f"  admin:    http://{server.endpoint}/_localcloud/state")
    print(f"  clock:    {clock}")
    sys.stdout.flush()
    server.serve_until_signalled()
    cloud.close()
    return 0


def demo(args: argparse.Namespace) -> int:
    from localcloud.demo import run_demo

    return run_demo(_load(args.scenario), transport=args.transport)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p_serve = commands.add_parser("serve", help="serve a scenario over HTTP until stopped")
    p_serve.add_argument("--scenario", help="scenario YAML (default: the bundled demo region)")
    p_serve.add_argument("--host", default="127.0.0.1", help="a loopback address unless --allow-remote")
    p_serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve on a non-loopback --host (Cloud Assistant runs scripts on this host: a warning is printed)",
    )
    p_serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p_serve.add_argument("--speed", type=float, default=None, help="simulated seconds per real second")
    p_serve.set_defaults(run=serve)
    p_demo = commands.add_parser("demo", help="drive a scenario with the real SDKs and narrate it")
    p_demo.add_argument("--scenario", help="scenario YAML (default: the bundled demo region)")
    p_demo.add_argument("--transport", choices=("http", "inprocess"), default="http")
    p_demo.set_defaults(run=demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ScenarioError as exc:
        print(f"localcloud: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"localcloud: {exc} (is the port in use? try --port 0)", file=sys.stderr)
        return 2
