"""A registry of machine checks. Each theorem module (proofs/t<N>_*.py) registers
its checks with @check; `python -m proofs check` discovers and runs them all."""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass

CheckFn = Callable[[], tuple[int, str]]  # returns (instances covered, detail); raises on failure


@dataclass(frozen=True)
class Check:
    theorem: str  # "T1" .. "T6"
    name: str
    method: str  # "enumeration", "z3", "hypothesis", "exhaustive", ...
    fn: CheckFn


@dataclass(frozen=True)
class CheckResult:
    theorem: str
    name: str
    method: str
    instances: int
    ok: bool
    detail: str
    seconds: float


CHECKS: list[Check] = []


def check(theorem: str, method: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        CHECKS.append(Check(theorem, fn.__name__, method, fn))
        return fn

    return register


def discover() -> list[Check]:
    """Import every proofs/t*_*.py module so that its checks register."""
    import proofs

    for info in sorted(pkgutil.iter_modules(proofs.__path__), key=lambda m: m.name):
        if info.name.startswith("t") and info.name[1:2].isdigit():
            importlib.import_module(f"proofs.{info.name}")
    return sorted(CHECKS, key=lambda c: (c.theorem, c.name))


def run_checks(only: set[str] | None = None) -> list[CheckResult]:
    out = []
    for c in discover():
        if only and c.theorem not in only:
            continue
        t0 = time.perf_counter()
        try:
            n, detail = c.fn()
            ok = True
        except AssertionError as e:
            n, detail, ok = 0, f"FAILED: {e}", False
        out.append(
            CheckResult(c.theorem, c.name, c.method, n, ok, detail, time.perf_counter() - t0)
        )
    return out
