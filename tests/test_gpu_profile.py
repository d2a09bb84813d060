"""gpu_runner.profile on CPU: positive medians, a pairs file that dsi_ref's table loader reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from dsi_ref.errors import InvalidConfig  # noqa: E402
from dsi_ref.theory.pairs_table import evaluate, format_table, load_pairs  # noqa: E402
from gpu_runner.errors import DeviceError, IncompatiblePair  # noqa: E402
from gpu_runner.profile import (  # noqa: E402
    acceptance_rates,
    profile_main,
    profile_model,
    profile_pair,
)
from gpu_runner.tiny import load_tiny_pair, tiny_pair_paths, tiny_vocab_pair  # noqa: E402

FAST = {"prompt_len": 16, "k": 3, "repeats": 3, "warmup": 1}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_profile_model_positive_medians() -> None:
    target, _ = tiny_vocab_pair(6)
    prof = profile_model(target, **FAST)
    assert prof.ttft_ms > 0 and prof.tpot_ms > 0
    assert len(prof.per_position_ms) == FAST["k"] + 1
    assert all(x > 0 for x in prof.per_position_ms)
    assert prof.tpot_ms == prof.per_position_ms[0]
    assert (prof.prompt_len, prof.repeats, prof.warmup) == (16, 3, 1)
    assert prof.device == "cpu" and prof.dtype == "float64"


def test_profile_model_rejects_bad_settings() -> None:
    target, _ = tiny_vocab_pair(4)
    with pytest.raises(InvalidConfig, match="context window 64"):
        profile_model(target, prompt_len=62, k=2)
    with pytest.raises(InvalidConfig, match="repeats must be an int >= 1, got 0"):
        profile_model(target, repeats=0)


def test_profile_pair_of_tiny_pair_writes_a_loadable_pairs_file(tmp_path: Path) -> None:
    target, drafter = load_tiny_pair()
    out = tmp_path / "pairs.json"
    doc = profile_pair(target, drafter, target_name="tiny-target", out=out, **FAST)
    assert json.loads(out.read_text()) == doc
    (pair,) = load_pairs(out)
    assert pair.target == "tiny-target" and pair.drafter == "drafter"
    for f in ("target_ttft_ms", "target_tpot_ms", "drafter_ttft_ms", "drafter_tpot_ms"):
        value = pair.numbers[f].value
        assert value is not None and value > 0
        assert pair.numbers[f].provenance.startswith("measured here: gpu_runner.profile on cpu")
    # no acceptance given: unknown, and the table says the row is incomplete
    assert pair.numbers["acceptance_rate"].value is None
    (row,) = evaluate([pair])
    assert row.prediction is None and "acceptance_rate" in row.problem


def test_profile_pair_with_acceptance_predicts(tmp_path: Path) -> None:
    target, drafter = tiny_vocab_pair(6)
    out = tmp_path / "pairs.json"
    profile_pair(
        target,
        drafter,
        acceptance=0.7,
        acceptance_source="tiny_vocab_pair seed 0",
        out=out,
        **FAST,
    )
    (pair,) = load_pairs(out)
    a = pair.numbers["acceptance_rate"]
    assert a.value == 0.7 and a.provenance == "measured here: tiny_vocab_pair seed 0"
    # same model size: drafter TPOT may exceed target TPOT, then the row says why
    (row,) = evaluate([pair])
    assert row.prediction is not None or "drafter TPOT" in row.problem
    assert "tiny_vocab_pair seed 0" in format_table([row], 1000)


def test_profile_pair_refuses_incompatible_pair() -> None:
    t6, _ = tiny_vocab_pair(6)
    _, d5 = tiny_vocab_pair(5)
    with pytest.raises(IncompatiblePair):
        profile_pair(t6, d5, **FAST)
    with pytest.raises(InvalidConfig, match=r"1\.5"):
        profile_pair(t6, tiny_vocab_pair(6)[1], acceptance=1.5, **FAST)


def test_acceptance_rates_of_identical_models_are_one() -> None:
    target, drafter = tiny_vocab_pair(6, seed=1)
    ids = torch.randint(0, 6, (4, 5), generator=torch.Generator().manual_seed(0))
    same_s, same_g = acceptance_rates(target, target, ids)
    assert same_s == pytest.approx(1.0, abs=1e-12) and same_g == 1.0
    s, g = acceptance_rates(target, drafter, ids)
    assert 0.0 < s < 1.0 and 0.0 <= g <= 1.0


def test_profile_main_writes_file_and_prints_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t, d = tiny_pair_paths()
    out = tmp_path / "measured.json"
    argv = ["--target", str(t), "--drafter", str(d), "--device", "cpu", "--out", str(out)]
    argv += ["--prompt-len", "16", "--k", "2", "--repeats", "2", "--warmup", "0", "--threads", "1"]
    argv += ["--acceptance", "0.6", "--acceptance-source", "test"]
    assert profile_main(argv) == 0
    printed = capsys.readouterr().out
    assert "TTFT" in printed and f"wrote {out}" in printed
    assert "target / drafter on random prompt of 16 tokens" in printed
    (pair,) = load_pairs(out)
    assert pair.numbers["acceptance_rate"].value == 0.6


def test_profile_main_reports_bad_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t, d = tiny_pair_paths()
    argv = ["--target", str(t), "--drafter", str(d), "--device", "cuda:7", "--out"]
    argv.append(str(tmp_path / "x.json"))
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert profile_main(argv) == 2
    assert "cuda:7" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    assert issubclass(DeviceError, Exception)
