"""Image-family commands (the code is bakery.families): plan, cost, rollback, restore — against a local cloud
(`--endpoint`) or Alibaba Cloud.

    bakery plan [FAMILY] [--keep N] [--action deprecate|delete] [--apply [--force]] [--json]
    bakery cost [FAMILY] [--price-per-gib-month X] [--currency C] [--json]
    bakery rollback FAMILY [--to IMAGE] [--force] [--json]
    bakery restore IMAGE [--force] [--json]

Rollback and restore refuse to make a family resolve to an image unfit to resolve (its check failed or did
not finish, or it lacks bakery:state=ready) unless --force: the rule is bakery.families.fitness, the one
retention uses for "last good".

Exit codes: 0 done, 1 refused or failed (e.g. rolling back a family's last Available image), 2 bad input
(unknown family or image, bad option). Retention's N and action default to $BAKERY_RETENTION_KEEP and
$BAKERY_RETENTION_ACTION (as the deployed function reads them), else 3 and deprecate.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bakery.errors import BakeFailure, BakeryError, CloudError, ConfigError, RetryableError
from bakery.families.cost import DEFAULT_CURRENCY, DEFAULT_PRICE_PER_GIB_MONTH, cost
from bakery.families.plan import ApplyResult, FamilyPlan, apply, plan_families
from bakery.families.retention import ACTIONS, KEEP
from bakery.families.rollback import NotFound, Refused, restore, rollback
from bakery_tools.exits import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from bakery_tools.terminal import print_json, print_table

_IMAGE_ID = re.compile(r"^m-[\w.-]+$")


def register(commands: Any) -> None:
    """Add this module's subcommands to the `bakery` parser."""
    from bakery_tools.target import add_target_arguments

    plan_parser = commands.add_parser(
        "plan", help="what retention would keep, deprecate or delete in a family, and why",
        description="Retention per family: the newest N finished Available images are kept (tag "
        "bakery:retention-keep=<n> on the family's newest tagged image overrides N); Deprecated images and "
        "promotions in flight do not count. Kept too: bakery:protected=true images, the last image fit to resolve, "
        "images Bakery did not make, promotions in flight, Deprecated images newer than the oldest kept one. "
        "Older images are deprecated or deleted. An image in use (instances, launch templates' latest/default "
        "versions) is never deleted without --force. The lifecycle function applies the same plan after each bake.",
    )  # fmt: skip
    plan_parser.add_argument("family", nargs="?", help="image family (default: every family holding Bakery images)")
    _retention_arguments(plan_parser)
    plan_parser.add_argument(
        "--apply", action="store_true", help="do it (what the lifecycle function does after a bake)"
    )
    plan_parser.add_argument("--force", action="store_true", help="with --apply: delete images even while in use")
    add_target_arguments(plan_parser)
    plan_parser.set_defaults(run=cmd_plan)

    cost_parser = commands.add_parser(
        "cost", help="snapshot storage per family and image, and what the plan would free"
    )
    cost_parser.add_argument("family", nargs="?", help="image family (default: every family holding Bakery images)")
    cost_parser.add_argument("--price-per-gib-month", type=_price,
                      default=os.environ.get("BAKERY_SNAPSHOT_PRICE_PER_GIB_MONTH", DEFAULT_PRICE_PER_GIB_MONTH),
                      help="snapshot price per GiB-month (default: $BAKERY_SNAPSHOT_PRICE_PER_GIB_MONTH or 0.12)")  # fmt: skip
    cost_parser.add_argument("--currency", default=os.environ.get("BAKERY_CURRENCY", DEFAULT_CURRENCY),
                      help="currency of the price (default: $BAKERY_CURRENCY or USD)")  # fmt: skip
    _retention_arguments(cost_parser)
    add_target_arguments(cost_parser)
    cost_parser.set_defaults(run=cmd_cost)

    rollback_parser = commands.add_parser(
        "rollback", help="deprecate the family's newest Available image, so the family resolves to the previous one",
        description="Refused when the image the family would resolve to failed its check, was not checked to the "
        "end, or lacks bakery:state=ready (Bakery's promotion); the refusal names the newest image fit to resolve.",
    )  # fmt: skip
    rollback_parser.add_argument("family", help="image family")
    rollback_parser.add_argument("--to", metavar="IMAGE", type=_image_id,
                                 help="roll back onto this Available image: deprecate every Available image newer than it")  # fmt: skip
    rollback_parser.add_argument("--force", action="store_true",
                                 help="roll back even onto an image unfit to resolve (check failed or unfinished)")  # fmt: skip
    add_target_arguments(rollback_parser)
    rollback_parser.set_defaults(run=cmd_rollback)

    restore_parser = commands.add_parser("restore", help="make a Deprecated image Available again (undoes a rollback)")
    restore_parser.add_argument("image", help="image id, e.g. m-bp1...")
    restore_parser.add_argument("--force", action="store_true",
                                help="restore even when the family would resolve to an image unfit to resolve")  # fmt: skip
    add_target_arguments(restore_parser)
    restore_parser.set_defaults(run=cmd_restore)


def _retention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", type=_keep, default=os.environ.get("BAKERY_RETENTION_KEEP") or None,
                        help="images each family keeps (default: $BAKERY_RETENTION_KEEP or 3)")  # fmt: skip
    parser.add_argument("--action", choices=ACTIONS, default=os.environ.get("BAKERY_RETENTION_ACTION") or None,
                        help="what happens to older images (default: $BAKERY_RETENTION_ACTION or deprecate)")  # fmt: skip


def _keep(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _image_id(text: str) -> str:
    if not _IMAGE_ID.match(text):
        raise argparse.ArgumentTypeError(f"must be an image id like m-bp1..., got {text!r}")
    return text


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number like 0.12, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


# -- commands ------------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    if args.force and not args.apply:
        print("bakery: --force only matters with --apply (a plan changes nothing); add --apply to act", file=sys.stderr)
        return EXIT_USAGE

    def run(ecs: Any, settings: Any) -> int:
        plans = plan_families(ecs, settings, args.family, force=args.force)
        if args.family and not plans:
            raise NotFound(f"no image in family {args.family!r} in {settings.region}: check the name "
                                     "(`bakery plan` without a family lists the families with Bakery images)")  # fmt: skip
        applied = apply(ecs, settings, args.family, force=args.force) if args.apply else None
        if args.json:
            out: dict[str, Any] = {"region": settings.region, "families": [p.to_dict() for p in plans]}
            if applied is not None:
                out["applied"] = {k: v for k, v in applied.to_dict().items() if k != "decisions"}
            print_json(out)
            return EXIT_OK
        if not plans:
            print(f"No family holds Bakery images in {settings.region} (images tagged bakery:bake-id). "
                  "Name one: bakery plan FAMILY")  # fmt: skip
            return EXIT_OK
        for family_plan in plans:
            _print_family_plan(family_plan)
        if applied is None:
            acting = [d for p in plans for d in p.decisions if d.action != KEEP and not d.done]
            print(f"\n{len(acting)} image(s) to change." + (" Run again with --apply to do it." if acting else ""))
        else:
            _print_applied(applied)
        return EXIT_OK

    return _run(args, run, retention=True)


def cmd_cost(args: argparse.Namespace) -> int:
    def run(ecs: Any, settings: Any) -> int:
        report = cost(ecs, settings, args.family, price_per_gib_month=args.price_per_gib_month,
                                currency=args.currency)  # fmt: skip
        if args.family and not report.families:
            raise NotFound(f"no image in family {args.family!r} in {settings.region}: check the name")
        if args.json:
            print_json({"region": settings.region, **report.to_dict()})
            return EXIT_OK
        if not report.families:
            print(f"No family holds Bakery images in {settings.region}. Name one: bakery cost FAMILY")
            return EXIT_OK
        cur, price = report.currency, report.price_per_gib_month
        print(f"Snapshot storage at {price:g} {cur} per GiB-month (snapshots' SourceDiskSize: an upper bound)\n")
        rows = [[f.family, i.image_id, i.status, f"{i.action} (done)" if i.done else i.action, str(i.size_gib),
                 f"{i.monthly:.2f}"]
                for f in report.families for i in f.images]  # fmt: skip
        print_table(rows, ["family", "image", "status", "plan", "GiB", f"{cur}/month"])
        print()
        for f in report.families:
            print(f"  {f.family}: {f.size_gib} GiB, {f.monthly:.2f} {cur}/month; the plan frees {f.freed_gib} GiB "
                  f"({f.freed_monthly:.2f} {cur}/month); deprecated images still bill {f.deprecated_gib} GiB "
                  f"({f.deprecated_monthly:.2f} {cur}/month)")  # fmt: skip
        print(f"\nTotal: {report.size_gib} GiB, {report.monthly:.2f} {cur}/month; "
              f"the plan frees {report.freed_monthly:.2f} {cur}/month.")  # fmt: skip
        if any(f.deprecated_gib for f in report.families) and not any(f.freed_gib for f in report.families):
            print("Deprecated images keep their snapshots: `--action delete` (or BAKERY_RETENTION_ACTION=delete) "
                  "frees them.")  # fmt: skip
        return EXIT_OK

    return _run(args, run, retention=True)


def cmd_rollback(args: argparse.Namespace) -> int:
    def run(ecs: Any, settings: Any) -> int:
        result = rollback(ecs, args.family, to=args.to, force=args.force)
        if args.json:
            print_json({"region": settings.region, **result.to_dict()})
            return EXIT_OK
        deprecated = (result.deprecated, *result.also_deprecated)
        verb = "are" if len(deprecated) > 1 else "is"
        print(f"Rolled back family {result.family}: {', '.join(deprecated)} {verb} Deprecated.")
        if result.forced:
            print(f"  Forced (--force) although {'; '.join(result.forced)}.")
        if result.unshared:
            print(f"  It was shared with {', '.join(result.unshared)}; it is not any more (a Deprecated image "
                  "cannot be shared). Share it again after a restore if they need it.")  # fmt: skip
        print(f"  DescribeImageFromFamily {result.family} -> {result.resolves_to or '(nothing)'}")
        print(f"  Undo: {'; '.join(f'bakery restore {i}' for i in reversed(deprecated))}")
        return EXIT_OK

    return _run(args, run)


def cmd_restore(args: argparse.Namespace) -> int:
    if not _IMAGE_ID.match(args.image):
        return _fail(args, EXIT_USAGE, "bad-input", f"IMAGE must be an image id like m-bp1..., got {args.image!r}")

    def run(ecs: Any, settings: Any) -> int:
        result = restore(ecs, args.image, force=args.force)
        if args.json:
            print_json({"region": settings.region, **result.to_dict()})
            return EXIT_OK
        was = "already Available" if result.previous_status == "Available" else f"was {result.previous_status}"
        print(f"{result.image_id} is Available ({was}).")
        if result.family:
            print(f"  DescribeImageFromFamily {result.family} -> {result.resolves_to or '(nothing)'}")
            if result.resolves_to and result.resolves_to != result.image_id:
                print(f"  A newer Available image wins the family; `bakery rollback {result.family}` deprecates it.")
        return EXIT_OK

    return _run(args, run)


# -- plumbing --------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace, body: Callable[[Any, Any], int], retention: bool = False) -> int:
    """Build the target's settings and ECS adapter, run `body`, and map every failure to an exit code."""
    from bakery.adapters.ecs import Ecs
    from bakery_tools.target import settings_for

    try:
        settings = settings_for(args)
        if retention:
            settings = replace(
                settings,
                retention_keep=args.keep if args.keep is not None else settings.retention_keep,
                retention_action=args.action or settings.retention_action,
            )
            if isinstance(settings.retention_keep, str):  # from $BAKERY_RETENTION_KEEP
                settings = replace(settings, retention_keep=_keep(settings.retention_keep))
            if settings.retention_action not in ACTIONS:
                raise ConfigError(f"BAKERY_RETENTION_ACTION must be one of {', '.join(ACTIONS)}, "
                                  f"got {settings.retention_action!r}")  # fmt: skip
        # The functions' JSON log lines would land in this command's output (they go to stdout, for FC):
        # everything they say is printed here anyway.
        bakery_logger = logging.getLogger("bakery")
        level = bakery_logger.level
        bakery_logger.setLevel(logging.CRITICAL + 1)
        try:
            return body(Ecs(settings), settings)
        finally:
            bakery_logger.setLevel(level)
    except (ConfigError, argparse.ArgumentTypeError) as exc:
        return _fail(args, EXIT_USAGE, "bad-input", str(exc))
    except NotFound as exc:
        return _fail(args, EXIT_USAGE, "not-found", str(exc))
    except Refused as exc:
        return _fail(args, EXIT_PROBLEM, "refused", str(exc))
    except RetryableError as exc:
        where = f"the local cloud at {args.endpoint}" if args.endpoint else "Alibaba Cloud"
        hint = (
            f"cannot reach {where}: is it running (python -m localcloud serve)? Check --endpoint."
            if exc.code == "Unreachable"
            else "try again in a moment."
        )
        return _fail(args, EXIT_PROBLEM, exc.code or "retryable", f"{exc} — {hint}")
    except BakeFailure as exc:  # missing-permission: the message names the RAM action to allow
        return _fail(args, EXIT_PROBLEM, exc.reason, exc.message)
    except CloudError as exc:
        return _fail(args, EXIT_PROBLEM, exc.code, str(exc))
    except BakeryError as exc:
        return _fail(args, EXIT_PROBLEM, "error", str(exc))


def _fail(args: argparse.Namespace, code: int, kind: str, message: str) -> int:
    if getattr(args, "json", False):
        print_json({"error": kind, "message": message, "exitCode": code})
    print(f"bakery {args.command}: {message}", file=sys.stderr)
    return code


def _print_family_plan(family_plan: FamilyPlan) -> None:
    retention = family_plan.retention
    print(f"\nFamily {family_plan.family}: keep the newest {retention.keep} ({retention.source}); "
          f"older images: {family_plan.action}")  # fmt: skip
    for problem in retention.ignored:
        print(f"  note: {problem}")
    rows = []
    for d in family_plan.decisions:
        action = f"{d.action} (done)" if d.done else d.action
        rows.append([d.image_id, d.status, d.created, action, "; ".join(d.reasons)])
    print_table(rows, ["image", "status", "created", "action", "why"])


def _print_applied(result: ApplyResult) -> None:
    print()
    print(f"Applied: {len(result.deprecated)} deprecated, {len(result.deleted)} deleted "
          f"({len(result.deleted_snapshots)} snapshot(s) deleted), {len(result.kept)} kept.")  # fmt: skip
    for image_id in result.deprecated:
        print(f"  deprecated {image_id}")
    for image_id in result.deleted:
        print(f"  deleted    {image_id}")
    for skipped in result.skipped:
        print(f"  skipped    {skipped['imageId']}: {skipped['why']}")
