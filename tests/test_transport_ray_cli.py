"""The CLI's pools: --ray-* flags checked and passed on, one pool for --algorithm all.

No Ray needed: a spy pool (workers as threads) stands in for RayBackend, so these
check the CLI's wiring; tests/test_transport_ray.py runs the real backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from gpu_runner.cli import main
from gpu_runner.passes import PassMaker
from gpu_runner.transport import backends
from gpu_runner.transport.interface import WorkerFailure
from gpu_runner.transport.recovery import Supervised
from gpu_runner.transport.threads import ThreadWorkers


def _exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code or 0)


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--ray-address", "auto"),
        ("--ray-gpus-per-worker", "1"),
        ("--ray-cpus-per-worker", "1"),
        ("--ray-strategy", "SPREAD"),
    ],
)
@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_ray_flags_need_the_ray_backend(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, backend: str
) -> None:
    assert _exit(["run", "--backend", backend, flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} needs --backend ray" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "flag,value,shown",
    [
        ("--ray-gpus-per-worker", "-1", "-1"),
        ("--ray-gpus-per-worker", "nan", "nan"),
        ("--ray-gpus-per-worker", "1.5", "whole number"),
        ("--ray-cpus-per-worker", "inf", "inf"),
        ("--ray-cpus-per-worker", "two", "'two'"),
        ("--ray-address", " ", "empty"),
        ("--ray-strategy", "spread", "'spread'"),
        ("--ray-strategy", "SPREAD", "needs --ray-gpus-per-worker"),
    ],
)
def test_bad_ray_values_exit_2_naming_them(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, shown: str
) -> None:
    assert _exit(["run", "--backend", "ray", f"{flag}={value}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert flag in err and shown in err and "Traceback" not in err, err


class SpyPool:
    """An open-able pool that runs the workers as threads and records its life."""

    def __init__(self, name: str, options: dict[str, Any], fail_at: int | None) -> None:
        self.name, self.options, self.fail_at = name, options, fail_at
        self.opens = self.closes = 0

    def open(
        self,
        models: Sequence[Any],
        prompt: Sequence[int],
        vocab: int,
        passes: PassMaker,
    ) -> Supervised:
        self.opens += 1
        if self.opens == self.fail_at:
            raise WorkerFailure("planted: the pool cannot start run 2")
        return Supervised(ThreadWorkers(models, prompt, vocab, passes))

    def close(self) -> None:
        self.closes += 1


@pytest.mark.parametrize("fail_at", [None, 2])
def test_all_algorithms_share_one_pool_closed_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fail_at: int | None
) -> None:
    made: list[SpyPool] = []

    def new_pool(name: str, **options: Any) -> SpyPool:
        made.append(SpyPool(name, options, fail_at))
        return made[-1]

    monkeypatch.setattr(backends, "new_pool", new_pool)
    argv = ["run", "--backend", "ray", "--ray-address", "auto", "--ray-gpus-per-worker", "0.5"]
    argv += ["--ray-cpus-per-worker", "2", "--max-new-tokens", "4", "--servers", "2", "--quiet"]
    code = _exit([*argv, "--ray-strategy", "SPREAD"])
    assert len(made) == 1, "one pool for the three algorithms"
    pool = made[0]
    assert pool.name == "ray"
    assert {k: pool.options[k] for k in ("address", "num_gpus", "num_cpus", "strategy")} == {
        "address": "auto",
        "num_gpus": 0.5,
        "num_cpus": 2.0,
        "strategy": "SPREAD",
    }
    assert pool.closes == 1, "the pool is closed once, at the end"
    if fail_at is None:
        assert code == 0 and pool.opens == 3
    else:  # the error ends the run at once, and still closes the pool
        assert code == 2 and pool.opens == 2
        assert "planted: the pool cannot start run 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kw,shown",
    [
        ({"strategy": "spread", "num_gpus": 1}, "'spread'"),
        ({"strategy": None, "num_gpus": 1}, "None"),
        ({"strategy": "SPREAD"}, "needs num_cpus or num_gpus"),
    ],
)
def test_ray_backend_refuses_a_strategy_it_cannot_use(kw: dict[str, Any], shown: str) -> None:
    from dsi_ref.errors import InvalidConfig
    from gpu_runner.transport.ray import RayBackend

    with pytest.raises(InvalidConfig, match="strategy") as info:
        RayBackend(**kw)
    assert shown in str(info.value)
    assert RayBackend(strategy="SPREAD", num_gpus=1).strategy == "SPREAD"  # nothing started
