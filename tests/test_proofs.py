"""Every machine check of proofs/ (T1..T7) runs here, through the registry, and must pass.

The checks are exact (z3, enumeration, exhaustive patterns) or derandomized
hypothesis runs, so a failure is a counterexample, never noise.
"""

from __future__ import annotations

import pytest

from proofs.__main__ import main
from proofs.registry import CHECKS, Check, CheckResult, discover, run_checks

THEOREMS = ("T1", "T2", "T3", "T4", "T5", "T6", "T7")


@pytest.fixture(scope="module")
def results() -> dict[str, CheckResult]:
    out = run_checks()
    return {f"{r.theorem}:{r.name}": r for r in out}


def _ids() -> list[str]:
    return [f"{c.theorem}:{c.name}" for c in discover()]


@pytest.mark.parametrize("check_id", _ids())
def test_check_passes(results: dict[str, CheckResult], check_id: str) -> None:
    r = results[check_id]
    assert r.ok, f"{check_id} ({r.method}): {r.detail}"
    assert r.instances > 0, f"{check_id} reports no instances covered"


def test_every_theorem_has_a_check(results: dict[str, CheckResult]) -> None:
    covered = {r.theorem for r in results.values()}
    missing = [t for t in THEOREMS if t not in covered]
    assert not missing, f"theorems without a machine check: {missing}"


def test_a_failing_check_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry turns an AssertionError into ok=False (the suite above relies on it)."""

    def broken() -> tuple[int, str]:
        raise AssertionError("planted")

    monkeypatch.setattr("proofs.registry.CHECKS", [*CHECKS, Check("T0", "broken", "x", broken)])
    (r,) = run_checks({"T0"})
    assert not r.ok and "planted" in r.detail


def test_cli_rejects_unknown_theorem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--only", "T99"]) == 2
    assert "T99" in capsys.readouterr().err
