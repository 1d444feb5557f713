"""Which cloud an operator command talks to: a local cloud (`--endpoint 127.0.0.1:8080`, as printed
by `python -m localcloud serve`) or Alibaba Cloud itself, with the standard credential chain
(ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET[/SECURITY_TOKEN] env vars, then the CLI profile, ...)."""

from __future__ import annotations

import argparse
import os

from bakery.config import Settings
from bakery.errors import ConfigError


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default=os.environ.get("ALIBABA_CLOUD_REGION_ID"),
                        help="region id (default: $ALIBABA_CLOUD_REGION_ID)")  # fmt: skip
    parser.add_argument("--endpoint", default=os.environ.get("BAKERY_CLOUD_ENDPOINT"),
                        help="a local cloud's host:port (default: $BAKERY_CLOUD_ENDPOINT; unset = Alibaba Cloud)")  # fmt: skip
    parser.add_argument("--bus", default=os.environ.get("BAKERY_EVENT_BUS", "bakery"), help="Bakery's event bus")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def settings_for(args: argparse.Namespace) -> Settings:
    if not args.region:
        raise ConfigError("no region: pass --region (e.g. cn-hangzhou) or set ALIBABA_CLOUD_REGION_ID")
    env = os.environ
    return Settings(
        region=args.region,
        cloud_endpoint=args.endpoint or "",
        event_bus=args.bus,
        # Empty keys leave the SDK to its default credential chain (profiles, ECS RAM role...).
        access_key_id=env.get("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIoperator" if args.endpoint else ""),
        access_key_secret=env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "local" if args.endpoint else ""),
        security_token=env.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""),
    )
