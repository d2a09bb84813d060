"""gpu_runner model side: byte tokenizer, tiny pairs, offline loading, hf_compat cache helpers.

CPU, float64, one torch thread; each test runs in well under a few seconds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from dsi_ref.errors import DSIError, InvalidConfig  # noqa: E402
from gpu_runner import tokenizer  # noqa: E402
from gpu_runner.errors import (  # noqa: E402
    DeviceError,
    IncompatiblePair,
    InvalidInput,
    ModelLoadError,
)
from gpu_runner.hf_compat import cache_kwarg, cached_forward, crop, new_cache  # noqa: E402
from gpu_runner.loading import (  # noqa: E402
    check_pair,
    context_window,
    load_model,
    resolve_device,
)
from gpu_runner.tiny import load_tiny_pair, tiny_pair_paths, tiny_vocab_pair  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# --- tokenizer ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "def f(x):\n    return x\n", "héllo wörld ☃ 𝔘", "\x00\x7f"])
def test_tokenizer_round_trip(text: str) -> None:
    ids = tokenizer.encode(text)
    assert ids == list(text.encode("utf-8"))
    assert all(0 <= i < 256 for i in ids)
    assert tokenizer.decode(ids) == text


def test_tokenizer_decode_never_raises_on_bad_ids() -> None:
    # invalid UTF-8 (a lone continuation byte, a truncated 2-byte sequence), specials,
    # ids beyond the vocabulary and negative ids
    ids = [104, 0x80, 105, 0xC3, tokenizer.EOS_ID, tokenizer.BOS_ID, 10**9, -1, 33]
    assert tokenizer.decode(ids) == "h\ufffdi\ufffd\ufffd\ufffd!"
    assert tokenizer.decode(torch.tensor([104, 105])) == "hi"
    assert tokenizer.vocab_size == 259 == tokenizer.ByteTokenizer().vocab_size


@pytest.mark.parametrize("bad", [b"bytes", 3, None, ["a"]])
def test_tokenizer_rejects_non_str(bad: object) -> None:
    with pytest.raises(InvalidInput, match=type(bad).__name__):
        tokenizer.encode(bad)  # type: ignore[arg-type]


def test_tokenizer_decode_rejects_non_int_ids() -> None:
    with pytest.raises(InvalidInput, match=r"1\.5"):
        tokenizer.decode([104, 1.5])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="str"):
        tokenizer.decode("abc")  # type: ignore[arg-type]


# --- trained tiny pair -------------------------------------------------------------------


SNIPPET = """import os
import sys


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    for name in argv:
        print(os.path.abspath(name))
    return 0
"""


def _nll(model: torch.nn.Module, ids: torch.Tensor) -> float:
    with torch.inference_mode():
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    return float(-logp.gather(-1, ids[0, 1:, None]).mean())


def test_tiny_pair_loads_offline_with_equal_vocabs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    target, drafter = load_tiny_pair()
    assert not target.training and not drafter.training
    assert target.dtype == drafter.dtype == torch.float64
    assert target.config.vocab_size == drafter.config.vocab_size == tokenizer.vocab_size
    check_pair(target, drafter)
    n_t = sum(p.numel() for p in target.parameters())
    n_d = sum(p.numel() for p in drafter.parameters())
    assert n_d < n_t / 4
    ids = torch.tensor([tokenizer.encode(SNIPPET)])
    with torch.inference_mode():
        logits = target(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], tokenizer.vocab_size)
    # trained on Python: far below the uniform log(259) = 5.56 nats per byte
    assert _nll(target, ids) < 3.0 and _nll(drafter, ids) < 3.5
    for d in tiny_pair_paths():
        assert (d / "config.json").is_file()
        assert list(d.glob("*.safetensors")) and not list(d.glob("*.bin"))


# --- small-vocabulary pairs --------------------------------------------------------------


def _next_dists(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = model(input_ids=ids).logits.softmax(-1)
    return out


def test_tiny_vocab_pair_deterministic_by_seed_and_leaves_global_rng() -> None:
    state = torch.random.get_rng_state()
    t1, d1 = tiny_vocab_pair(6, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    t2, d2 = tiny_vocab_pair(6, seed=3)
    t3, _ = tiny_vocab_pair(6, seed=4)
    ids = torch.tensor([[0, 5, 2, 3]])
    assert torch.equal(_next_dists(t1, ids), _next_dists(t2, ids))
    assert torch.equal(_next_dists(d1, ids), _next_dists(d2, ids))
    assert not torch.allclose(_next_dists(t1, ids), _next_dists(t3, ids))
    assert t1.dtype == d1.dtype == torch.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_vocab_pair_non_degenerate(seed: int) -> None:
    vocab = 6
    target, drafter = tiny_vocab_pair(vocab, seed=seed)
    check_pair(target, drafter)
    ids = torch.randint(0, vocab, (32, 6), generator=torch.Generator().manual_seed(seed))
    p, q = _next_dists(target, ids), _next_dists(drafter, ids)
    assert p.shape == (32, 6, vocab)
    entropy = -(p * p.log()).sum(-1)
    max_entropy = torch.log(torch.tensor(float(vocab), dtype=torch.float64))
    # neither one-hot nor uniform, on average and everywhere
    assert 0.3 * max_entropy < entropy.mean() < 0.95 * max_entropy
    assert float(p.max()) < 0.99
    acceptance = float(torch.minimum(p, q).sum(-1).mean())
    assert 0.5 < acceptance < 0.9
    assert not torch.allclose(p, q, atol=1e-3)


@pytest.mark.parametrize("vocab", [1, 9, 2.0, True])
def test_tiny_vocab_pair_rejects_bad_vocab(vocab: object) -> None:
    with pytest.raises(InvalidConfig, match=repr(vocab)):
        tiny_vocab_pair(vocab)  # type: ignore[arg-type]


# --- loading -----------------------------------------------------------------------------


def _tiny_dir_copy(tmp_path: Path) -> Path:
    src = tiny_pair_paths()[1]
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def test_load_refuses_pickle_only_dir(tmp_path: Path) -> None:
    d = _tiny_dir_copy(tmp_path)
    for f in d.glob("*.safetensors"):
        f.rename(f.with_name("pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match=r"pickle.*pytorch_model\.bin"):
        load_model(d, dtype=torch.float64, device="cpu")


def test_load_refuses_missing_dir_and_missing_weights(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_model(missing, dtype=torch.float64, device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("some-org/some-hub-id", dtype=torch.float64, device="cpu")
    d = _tiny_dir_copy(tmp_path)
    for f in d.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelLoadError, match=r"no \*\.safetensors"):
        load_model(d, dtype=torch.float64, device="cpu")
    (d / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(d, dtype=torch.float64, device="cpu")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "model_type"),
        (b'{"model_type": "llama", "hidden_size": "big"}', "cannot load"),
        (b'{"model_type": "no-such-architecture"}', "cannot load"),
        (
            b'{"model_type": "custom", "auto_map": {"AutoModelForCausalLM": "m.Custom"}}',
            "cannot load",
        ),
    ],
)
def test_load_refuses_garbage_config(tmp_path: Path, content: bytes, why: str) -> None:
    d = _tiny_dir_copy(tmp_path)
    (d / "config.json").write_bytes(content)
    with pytest.raises(ModelLoadError, match=why) as info:
        load_model(d, dtype=torch.float64, device="cpu")
    assert str(d) in str(info.value)


@pytest.mark.parametrize("device", ["cuda:3", "npu", "cpu:x", "cpu:1", "bogus:0", "meta"])
def test_load_refuses_nonexistent_device_before_loading(tmp_path: Path, device: str) -> None:
    if device == "cuda:3" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    # the path does not exist either: the device error must come first
    with pytest.raises(DeviceError, match=device.split(":")[0]):
        load_model(tmp_path / "absent", dtype=torch.float64, device=device)


def test_resolve_device_accepts_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")).type == "cpu"


def test_load_model_accepts_a_built_model_and_casts() -> None:
    target, _ = tiny_vocab_pair(4)
    m = load_model(target.train(), dtype=torch.float32, device="cpu")
    assert m.dtype == torch.float32 and not m.training
    assert context_window(m) == 64


def test_load_model_is_a_dsi_error() -> None:
    assert issubclass(ModelLoadError, DSIError)
    assert issubclass(DeviceError, DSIError) and issubclass(IncompatiblePair, DSIError)


def test_check_pair_catches_vocab_and_dtype_mismatch() -> None:
    t6, d6 = tiny_vocab_pair(6)
    _, d5 = tiny_vocab_pair(5)
    check_pair(t6, d6)
    with pytest.raises(IncompatiblePair, match="vocab_size = 5"):
        check_pair(t6, d5)
    with pytest.raises(IncompatiblePair, match="float32"):
        check_pair(t6, d6.to(torch.float32))
    # config says 6, but the output embedding has been resized to 7 rows
    t7, _ = tiny_vocab_pair(6)
    t7.lm_head.weight = torch.nn.Parameter(torch.zeros(7, 16, dtype=torch.float64))
    with pytest.raises(IncompatiblePair, match="target output rows = 7"):
        check_pair(t7, d6)


def test_context_window_reads_max_positions() -> None:
    target, drafter = load_tiny_pair()
    assert context_window(target) == context_window(drafter) == 1024


# --- hf_compat ---------------------------------------------------------------------------


def test_cache_kwarg_matches_forward_signature() -> None:
    import inspect

    target, _ = tiny_vocab_pair(4)
    name = cache_kwarg(target)
    assert name in ("cache", "past_key_values")
    assert name in inspect.signature(target.forward).parameters


class _OldForward(torch.nn.Module):
    def forward(self, input_ids: object = None, past_key_values: object = None) -> None:
        return None


class _NoCache(torch.nn.Module):
    def forward(self, input_ids: object = None) -> None:
        return None


def test_cache_kwarg_reads_the_signature_not_the_version() -> None:
    assert cache_kwarg(_OldForward()) == "past_key_values"
    with pytest.raises(InvalidConfig, match="_NoCache"):
        cache_kwarg(_NoCache())


@pytest.mark.parametrize("seed", [0, 1, "trained"])
def test_crop_then_extend_equals_full_recompute(seed: int | str) -> None:
    if seed == "trained":
        target, _ = load_tiny_pair()
        vocab, seed = tokenizer.vocab_size, 2
    else:
        vocab = 6
        target, _ = tiny_vocab_pair(vocab, seed=int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    prefix = torch.randint(0, vocab, (1, 7), generator=gen)
    rejected = torch.randint(0, vocab, (1, 4), generator=gen)
    replacement = torch.randint(0, vocab, (1, 3), generator=gen)
    with torch.inference_mode():
        cache = new_cache(target)
        cached_forward(target, prefix, cache)
        cached_forward(target, rejected, cache)
        assert cache.get_seq_length() == 11
        crop(cache, 0)  # a no-op
        assert cache.get_seq_length() == 11
        crop(cache, 4)
        assert cache.get_seq_length() == 7
        extended = cached_forward(target, replacement, cache)
        full = target(input_ids=torch.cat([prefix, replacement], 1)).logits[:, 7:]
    assert extended.dtype == torch.float64
    assert torch.allclose(extended, full, rtol=0, atol=1e-10)
    # and the cropped-away tokens really mattered: without the crop the logits differ
    with torch.inference_mode():
        stale = new_cache(target)
        cached_forward(target, torch.cat([prefix, rejected], 1), stale)
        wrong = cached_forward(target, replacement, stale)
    assert not torch.allclose(wrong, full, rtol=0, atol=1e-6)


def test_cached_forward_last_positions_match_all() -> None:
    target, _ = tiny_vocab_pair(6, seed=2)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        full = cached_forward(target, ids, new_cache(target))
        cache = new_cache(target)
        last = cached_forward(target, ids, cache, last=2)
    assert full.shape == (1, 5, 6) and last.shape == (1, 2, 6)
    assert torch.allclose(last, full[:, -2:], rtol=0, atol=1e-12)
    assert cache.get_seq_length() == 5
    with pytest.raises(InvalidConfig, match="got 0"):
        cached_forward(target, ids, new_cache(target), last=0)


@pytest.mark.parametrize("r", [-1, 1.0, True, 99])
def test_crop_rejects_bad_counts(r: object) -> None:
    target, _ = tiny_vocab_pair(4)
    cache = new_cache(target)
    with torch.inference_mode():
        cached_forward(target, torch.tensor([[0, 1, 2]]), cache)
    with pytest.raises(InvalidConfig, match=re.escape(repr(r))):
        crop(cache, r)  # type: ignore[arg-type]
    assert cache.get_seq_length() == 3


def test_small_vocab_pair_runs_with_cache_keyword() -> None:
    # the forward takes the cache under the keyword cache_kwarg names, no warning needed
    target, _ = tiny_vocab_pair(4)
    cache = new_cache(target)
    with torch.inference_mode():
        out = target(
            input_ids=torch.tensor([[1, 2]]), use_cache=True, **{cache_kwarg(target): cache}
        )
    assert cache.get_seq_length() == 2
    assert out.logits.shape == (1, 2, 4)
