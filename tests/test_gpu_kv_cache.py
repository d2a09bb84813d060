"""KV-cache workers: every span they score equals a full recompute, whatever the cache held.

A worker crops back to the longest prefix it shares with the new chain and extends
from there; the logits must equal a forward over the whole sequence with no cache
(1e-10 in float64), through prefill, verification of k positions, a crop after a
rejection, an extension, and a jump to an unrelated chain. Servers on one device
share one weight copy and keep separate caches.
"""

from __future__ import annotations

import random

from gpu_fixtures import VOCAB, pair, torch

from gpu_runner.api import place_servers
from gpu_runner.kv_worker import ModelWorker

TARGET, _ = pair()
PROMPT = [3, 1, 4, 1, 5]


def full(chain: list[int], first: int, last: int) -> torch.Tensor:
    ids = torch.tensor([PROMPT + chain[:last]])
    with torch.no_grad():
        logits = TARGET(input_ids=ids, use_cache=False).logits[0]
    n0 = len(PROMPT)
    return logits[n0 + first - 1 : n0 + last]


def test_spans_equal_full_recompute_through_crop_and_extend() -> None:
    w = ModelWorker(TARGET, PROMPT, "t")
    a = [7, 8, 9, 10, 11, 12]
    b = [7, 8, 20, 21, 22, 23, 24]  # diverges at position 2: a rejection there
    steps = [
        (a, 0, 0),  # prefill
        (a, 1, 4),  # verify k=3 (+1) positions
        (b, 2, 5),  # crop back to 2, extend with the new tokens
        (b, 6, 7),  # plain extension
        (a, 3, 6),  # back to the other chain
        (b, 0, 3),  # rescoring from the prompt's end
    ]
    for chain, first, last in steps:
        got = w.logits(chain, first, last)
        want = full(chain, first, last)
        assert got.shape == (last - first + 1, VOCAB)
        err = (got - want).abs().max().item()
        assert err < 1e-10, f"span {first}..{last} of {chain}: max |diff| = {err}"
        assert w.held == PROMPT + chain[:last]


def test_random_walks_of_spans_equal_full_recompute() -> None:
    rng = random.Random(5)
    w = ModelWorker(TARGET, PROMPT, "t")
    chain = [rng.randrange(VOCAB) for _ in range(12)]
    for _ in range(40):
        cut = rng.randrange(len(chain) + 1)  # rewrite the chain from `cut` on
        chain = chain[:cut] + [rng.randrange(VOCAB) for _ in range(rng.randrange(1, 6))]
        last = rng.randrange(len(chain) + 1)
        first = rng.randrange(last + 1)
        err = (w.logits(chain, first, last) - full(chain, first, last)).abs().max().item()
        assert err < 1e-10, (chain, first, last, err)


def test_servers_on_one_device_share_weights_and_keep_their_own_caches() -> None:
    models = place_servers(TARGET, [torch.device("cpu")] * 3)
    assert all(m is TARGET for m in models)
    ws = [ModelWorker(m, PROMPT, f"s{i}") for i, m in enumerate(models)]
    ws[0].logits([1, 2, 3], 0, 3)
    ws[1].logits([9], 0, 1)
    assert ws[0].cache is not ws[1].cache
    assert ws[0].held == [*PROMPT, 1, 2, 3] and ws[1].held == [*PROMPT, 9] and ws[2].held == []
    got = ws[0].logits([1, 2, 3, 4], 4, 4)  # its own cache still holds its own chain
    assert (got - full([1, 2, 3, 4], 4, 4)).abs().max().item() < 1e-10
    assert ws[0].tokens_fed == len(PROMPT) + 3 + 1
