"""Lifecycle commands: plan, cost, rollback, restore."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add this module's subcommands to the `bakery` parser."""
    _ = (commands, argparse)
