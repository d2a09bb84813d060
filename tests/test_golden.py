"""benchmarks/golden.py in CI: the frozen observable behaviour of the reference.

golden.py runs 55 specs (165 runs of non-SI, SI and DSI: summaries, trace digests and
short traces; planted faults included) and 11 exact laws of tiny instances, and
compares them with benchmarks/golden.json. The whole check is fast (about 5 s of CPU
measured here, 2026-12-04), so CI runs all of it, not a subset: this test does what
`python benchmarks/golden.py` does (the InverseCDF self-check, then every run and law
against the file) and fails with the first difference.

A wanted behaviour change must re-freeze the file (`golden.py --write`) in the same
commit, with the reason in its message. Negative control: `first_difference` finds a
single changed token, a changed time and a missing run in a copy of the file.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

GOLDEN_PY = Path(__file__).resolve().parent.parent / "benchmarks" / "golden.py"


@pytest.fixture(scope="module")
def golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_check", GOLDEN_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["golden_check"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def frozen(golden: ModuleType) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(golden.GOLDEN.read_text())
    return data


def test_golden_corpus_is_unchanged(golden: ModuleType, frozen: dict[str, Any]) -> None:
    golden.check_inverse_cdf()
    now = json.loads(golden.canonical(golden.collect()))
    assert golden.first_difference(frozen, now) is None, golden.first_difference(frozen, now)
    runs = sum(len(v) for v in now["runs"].values())
    assert (runs, len(now["laws"])) == (165, 11)


def test_first_difference_sees_small_changes(golden: ModuleType, frozen: dict[str, Any]) -> None:
    name = "float0"
    for path, change in (
        (("runs", name, "dsi", "summary", "tokens"), lambda xs: [xs[0] + 1, *xs[1:]]),
        (("runs", name, "si", "summary", "latency"), lambda t: t + "1"),
    ):
        bad = copy.deepcopy(frozen)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = change(node[path[-1]])
        assert golden.first_difference(frozen, bad) is not None, path
    bad = copy.deepcopy(frozen)
    del bad["runs"][name]
    assert golden.first_difference(frozen, bad) is not None
