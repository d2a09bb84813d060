"""Token chains shared by reference: O(1) views instead of O(n) copies per command.

The scheduler's commands carry the chain a draft or a task conditions on. Copying it
into a tuple costs O(n) per command, so a run's cost would grow as n^2. Instead a
command carries a `ChainView`: the first `length` tokens of a `TokenChain`.

Contract. A `TokenChain` is append-only: its owner (the scheduler) never changes a
token it holds, so a view of its first `length` tokens shows the same tokens forever,
however long the chain grows. When the owner must replace tokens (a rejection), it
makes a new chain with `fork` and appends to that; old views keep seeing the old
tokens. `fork` shares the old chain's full blocks of `BLOCK` tokens (never changed
again) and copies only the last partial block, so a rejection costs O(n / BLOCK +
BLOCK), not O(n).

Readers see a plain `Sequence[int]`: `len`, indexing, iteration, and equality with
any tuple, list or view holding the same tokens. `view[:j]` is O(1) and is a view;
any other slice copies only what it returns. `with_prompt` puts a fixed prompt in
front of a view in O(1), for workers that condition on prompt + chain. `as_tuple`
copies any token sequence, a view a block at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

_SHIFT = 8
BLOCK = 1 << _SHIFT  # tokens per shared block
_MASK = BLOCK - 1


class TokenChain:
    """An append-only token list stored in blocks of BLOCK tokens.

    Every block but the last is full and never changes again, so `fork` shares them;
    only the last (partial) block is appended to, and `fork` copies it.
    """

    __slots__ = ("_blocks", "n")

    def __init__(self, tokens: Sequence[int] = ()) -> None:
        self._blocks: list[list[int]] = [[]]
        self.n = 0  # the length (read it, never set it: the owner only appends)
        for t in tokens:
            self.append(t)

    def __len__(self) -> int:
        return self.n

    def append(self, token: int) -> None:
        last = self._blocks[-1]
        if len(last) == BLOCK:
            last = []
            self._blocks.append(last)
        last.append(token)
        self.n += 1

    def at(self, i: int) -> int:
        """The token at 0 <= i < len (unchecked: views check their own bounds)."""
        return self._blocks[i >> _SHIFT][i & _MASK]

    def fork(self, length: int) -> TokenChain:
        """A new chain holding this one's first `length` tokens; this one is unchanged."""
        if not 0 <= length <= self.n:
            raise IndexError(f"fork at {length} of a chain of {self.n} tokens")
        new = TokenChain()
        full, part = length >> _SHIFT, length & _MASK
        blocks = self._blocks
        new._blocks = blocks[:full]  # full blocks: shared, never appended to again
        new._blocks.append(blocks[full][:part] if part else [])
        new.n = length
        return new

    def copy_range(self, start: int, stop: int) -> tuple[int, ...]:
        """The tokens at start..stop-1 (0 <= start <= stop <= len), copied."""
        if start >= stop:
            return ()
        q = start >> _SHIFT
        if (stop - 1) >> _SHIFT == q:  # one block: a C slice
            return tuple(self._blocks[q][start & _MASK : ((stop - 1) & _MASK) + 1])
        out: list[int] = []
        for b in range(q, ((stop - 1) >> _SHIFT) + 1):  # a C slice per block
            lo = start - (b << _SHIFT) if b == q else 0
            hi = stop - (b << _SHIFT)
            out += self._blocks[b][lo:hi]
        return tuple(out)

    def view(self, length: int | None = None) -> ChainView:
        """A view of the first `length` tokens (all of them by default)."""
        if length is None:
            return ChainView(self, self.n)
        if not 0 <= length <= self.n:
            raise IndexError(f"view of {length} tokens of a chain of {self.n}")
        return ChainView(self, length)


class ChainView(Sequence[int]):
    """prompt + chain[:length], read-only, without copying either."""

    __slots__ = ("_chain", "_len", "_p", "_prompt")

    def __init__(
        self, chain: TokenChain, length: int, prompt: tuple[int, ...] = (), p: int = 0
    ) -> None:
        # Unchecked (p == len(prompt)): built by TokenChain.view, which checks, by
        # with_prompt and by slicing, valid by construction.
        self._chain = chain
        self._len = length
        self._prompt = prompt
        self._p = p

    def __len__(self) -> int:
        return self._p + self._len

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...

    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        n = self._p + self._len
        if type(i) is slice:
            start = i.start
            if not self._p and i.stop is None and i.step is None and type(start) is int:
                # x[a:] (a Markov model's context): one copy of the last tokens
                if start < 0:
                    start = n + start if n + start > 0 else 0
                if start >= n:
                    return ()
                q = start >> _SHIFT
                if (n - 1) >> _SHIFT == q:  # within one block: one C slice
                    return tuple(self._chain._blocks[q][start & _MASK : ((n - 1) & _MASK) + 1])
                return self._chain.copy_range(start, n)
            start, stop, step = i.indices(n)
            if step != 1:
                return tuple([self[j] for j in range(start, stop, step)])
            p = self._p
            if stop < start:
                stop = start
            if start == 0 and stop >= p:
                return ChainView(self._chain, stop - p, self._prompt, p)
            if start >= p:
                return self._chain.copy_range(start - p, stop - p)
            rest = self._chain.copy_range(0, stop - p) if stop > p else ()
            return self._prompt[start : min(stop, p)] + rest
        assert isinstance(i, int)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"token index {i} outside a chain of {n}")
        if i < self._p:
            return self._prompt[i]
        i -= self._p
        return self._chain._blocks[i >> _SHIFT][i & _MASK]

    def __iter__(self) -> Iterator[int]:
        yield from self._prompt
        left = self._len
        for block in self._chain._blocks:  # whole blocks: iterated in C, not per index
            if left >= len(block):
                yield from block
                left -= len(block)
            else:
                yield from block[:left]
                return

    def to_tuple(self) -> tuple[int, ...]:
        """The tokens as a tuple, copied a block at a time (C slices, not a Python loop:
        a real driver copies each pass's chain to send it to a worker process)."""
        return self._prompt + self._chain.copy_range(0, self._len)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ChainView, tuple, list)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"ChainView({list(self)!r})"


def with_prompt(prompt: tuple[int, ...], tokens: Sequence[int], length: int) -> Sequence[int]:
    """prompt + tokens[:length]: O(1) for a view without a prompt of its own, else a copy."""
    if type(tokens) is ChainView and not tokens._p and length <= tokens._len:
        if not prompt and length == tokens._len:
            return tokens
        return ChainView(tokens._chain, length, prompt, len(prompt))
    return prompt + tuple(tokens[:length])


def as_tuple(tokens: Sequence[int]) -> tuple[int, ...]:
    """`tokens` as a tuple: a view's `to_tuple`, else `tuple(tokens)`."""
    return tokens.to_tuple() if type(tokens) is ChainView else tuple(tokens)
