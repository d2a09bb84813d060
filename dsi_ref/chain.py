"""Token chains shared by reference: O(1) views instead of O(n) copies per command.

The scheduler's commands carry the chain a draft or a task conditions on. Copying it
into a tuple costs O(n) per command, so a run's cost would grow as n^2. Instead a
command carries a `ChainView`: the first `length` tokens of a `TokenChain`.

Contract. A `TokenChain` is append-only: its owner (the scheduler) never changes a
token it holds, so a view of its first `length` tokens shows the same tokens forever,
however long the chain grows. When the owner must replace tokens (a rejection), it
makes a new chain with `fork` and appends to that; old views keep seeing the old
tokens. `fork` shares the old chain's full blocks of `BLOCK` tokens (immutable
tuples) and copies only the last partial block, so a rejection costs O(n / BLOCK +
BLOCK), not O(n).

Readers see a plain `Sequence[int]`: `len`, indexing, iteration, and equality with
any tuple, list or view holding the same tokens. `view[:j]` is O(1) and is a view;
any other slice copies only what it returns. `with_prompt` puts a fixed prompt in
front of a view in O(1), for workers that condition on prompt + chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

_SHIFT = 8
BLOCK = 1 << _SHIFT  # tokens per shared block
_MASK = BLOCK - 1


class TokenChain:
    """An append-only token list stored as shared full blocks plus a private tail."""

    __slots__ = ("_blocks", "_n", "_tail")

    def __init__(self, tokens: Sequence[int] = ()) -> None:
        self._blocks: list[tuple[int, ...]] = []
        self._tail: list[int] = []
        self._n = 0
        for t in tokens:
            self.append(t)

    def __len__(self) -> int:
        return self._n

    def append(self, token: int) -> None:
        tail = self._tail
        tail.append(token)
        self._n += 1
        if len(tail) == BLOCK:
            self._blocks.append(tuple(tail))
            self._tail = []  # a new list: views resolve old indices through _blocks now

    def at(self, i: int) -> int:
        """The token at 0 <= i < len (unchecked: views check their own bounds)."""
        q = i >> _SHIFT
        blocks = self._blocks
        return blocks[q][i & _MASK] if q < len(blocks) else self._tail[i & _MASK]

    def fork(self, length: int) -> TokenChain:
        """A new chain holding this one's first `length` tokens; this one is unchanged."""
        if not 0 <= length <= self._n:
            raise IndexError(f"fork at {length} of a chain of {self._n} tokens")
        new = TokenChain()
        full = length >> _SHIFT
        new._blocks = self._blocks[:full]
        new._tail = [self.at(i) for i in range(full << _SHIFT, length)]
        new._n = length
        return new

    def view(self, length: int | None = None) -> ChainView:
        return ChainView(self, self._n if length is None else length)


class ChainView(Sequence[int]):
    """prompt + chain[:length], read-only, without copying either."""

    __slots__ = ("_chain", "_len", "_p", "_prompt")

    def __init__(self, chain: TokenChain, length: int, prompt: tuple[int, ...] = ()) -> None:
        if not 0 <= length <= len(chain):
            raise IndexError(f"view of {length} tokens of a chain of {len(chain)}")
        self._chain = chain
        self._len = length
        self._prompt = prompt
        self._p = len(prompt)

    def __len__(self) -> int:
        return self._p + self._len

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...

    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        n = self._p + self._len
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if start == 0 and step == 1:
                stop = max(stop, 0)
                if stop >= self._p:
                    return ChainView(self._chain, stop - self._p, self._prompt)
                return self._prompt[:stop]
            return tuple(self[j] for j in range(start, stop, step))
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"token index {i} outside a chain of {n}")
        if i < self._p:
            return self._prompt[i]
        return self._chain.at(i - self._p)

    def __iter__(self) -> Iterator[int]:
        yield from self._prompt
        at = self._chain.at
        for i in range(self._len):
            yield at(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ChainView, tuple, list)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"ChainView({list(self)!r})"


def with_prompt(prompt: tuple[int, ...], tokens: Sequence[int]) -> Sequence[int]:
    """prompt + tokens: O(1) for a view without a prompt of its own, else a tuple copy."""
    if not prompt:
        return tokens
    if isinstance(tokens, ChainView) and not tokens._p:
        return ChainView(tokens._chain, tokens._len, prompt)
    return prompt + tuple(tokens)
