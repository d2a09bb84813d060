"""A byte-level tokenizer in code: ids 0..255 are the bytes of the UTF-8 text, then a few specials.

No files, no downloads: encode is `text.encode("utf-8")` (a str holding a lone surrogate has
no UTF-8 bytes and is refused; raw bytes, e.g. a command line's, go through `encode_bytes`);
decode maps ids back to bytes and decodes with errors="replace", so it never raises on an int
id (special ids decode to "", ids outside the vocabulary to U+FFFD, invalid UTF-8 to U+FFFD).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from gpu_runner.errors import InvalidInput

BYTES = 256
PAD_ID = 256
BOS_ID = 257
EOS_ID = 258
SPECIALS = {PAD_ID: "<pad>", BOS_ID: "<bos>", EOS_ID: "<eos>"}
VOCAB_SIZE = BYTES + len(SPECIALS)
REPLACEMENT = "\ufffd"


class ByteTokenizer:
    """Bytes as tokens. `vocab_size` = 259: 256 bytes, <pad> = 256, <bos> = 257, <eos> = 258."""

    vocab_size: int = VOCAB_SIZE
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def encode(self, text: str) -> list[int]:
        return encode(text)

    def encode_bytes(self, data: bytes) -> list[int]:
        return encode_bytes(data)

    def decode(self, ids: Iterable[int]) -> str:
        return decode(ids)


def encode(text: str) -> list[int]:
    """The UTF-8 bytes of `text` as ids 0..255 (no specials added)."""
    if not isinstance(text, str):
        raise InvalidInput(f"encode needs a str, got {type(text).__name__} {text!r:.80}")
    try:
        return list(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        bad = text[e.start]
        raise InvalidInput(
            f"text holds U+{ord(bad):04X} (a lone surrogate) at index {e.start}: it has no UTF-8 "
            "bytes; pass the raw bytes to encode_bytes instead"
        ) from None


def encode_bytes(data: bytes) -> list[int]:
    """The given bytes as ids 0..255, as they are (UTF-8 or not)."""
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInput(f"encode_bytes needs bytes, got {type(data).__name__} {data!r:.80}")
    return list(data)


def decode(ids: Iterable[int]) -> str:
    """Text of the ids: bytes decoded with errors="replace"; specials dropped; other ids U+FFFD.

    Accepts any iterable of ints (list, tuple, 1-D tensor, numpy array: anything whose items
    support `__index__`); an item that is not an integer raises InvalidInput.
    """
    if isinstance(ids, (str, bytes)):
        raise InvalidInput(f"decode needs an iterable of int ids, got {type(ids).__name__}")
    try:
        items = list(ids)
    except TypeError:
        raise InvalidInput(f"decode needs an iterable of int ids, got {ids!r:.80}") from None
    out: list[str] = []
    run = bytearray()
    for item in items:
        if isinstance(item, bool):
            raise InvalidInput(f"token id must be an int, got {item!r}")
        try:
            i = operator.index(item)
        except TypeError:
            raise InvalidInput(f"token id must be an int, got {item!r:.80}") from None
        if 0 <= i < BYTES:
            run.append(i)
            continue
        out.append(run.decode("utf-8", errors="replace"))
        run.clear()
        if i not in SPECIALS:
            out.append(REPLACEMENT)
    out.append(run.decode("utf-8", errors="replace"))
    return "".join(out)


vocab_size = VOCAB_SIZE
