"""CLI subcommands of the latency theory (heatmap, table), registered by dsi_ref.cli."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this module's subcommands to `sub` (an argparse subparsers object).

    Each added parser must set `func=<callable(argparse.Namespace) -> int>`.
    """
    _ = (sub, argparse)
