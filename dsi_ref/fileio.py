"""Reading JSON input files defensively and writing output files atomically.

`read_json_file` turns every way a file can fail to be a JSON document (missing,
a directory or device, too large, empty, not UTF-8, nested too deeply, an integer
too long to convert, NaN/Infinity literals, not JSON at all) into one typed error
whose message names the file and the problem, so a command line never crashes on
input. Output files are written by `dsi_ref.outputs` (`write_atomic` here is its
one-file entry point, kept for callers of this module).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from dsi_ref.errors import DSIError

# 256 MiB: a version-2 trace takes ~2.1 kB per token at a 32-token vocabulary
# (docs/trace-format.md), and reading and checking one takes ~30x its size in memory.
MAX_JSON_BYTES = 256 * 1024 * 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"the literal {name} is not JSON (numbers must be finite)")


def read_json_file(
    path: str | Path, what: str, error: type[DSIError], max_bytes: int = MAX_JSON_BYTES
) -> Any:
    """The JSON document in `path`; raise `error` naming `what`, the file and the problem."""
    name = f"{what} {str(path)!r}"

    def check_kind(mode: int) -> None:
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise error(f"{name} is {kind}")

    try:
        check_kind(os.stat(path).st_mode)  # before open(): opening a FIFO would block
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            check_kind(info.st_mode)
            if info.st_size > max_bytes:
                raise error(f"{name} has {info.st_size} bytes, more than the limit {max_bytes}")
            data = f.read(max_bytes + 1)  # the file may have grown since fstat
    except IsADirectoryError:
        raise error(f"{name} is a directory") from None
    except OSError as e:
        raise error(f"cannot read {name}: {e.strerror or e}") from None
    except ValueError as e:  # a path with a NUL byte
        raise error(f"cannot read {name}: {e}") from None
    if len(data) > max_bytes:
        raise error(f"{name} has more than the limit of {max_bytes} bytes")
    if not data.strip():
        raise error(f"{name} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = f"byte {data[e.start]:#04x} at offset {e.start}"
        raise error(f"{name} is not UTF-8 text: {bad}") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise error(f"{name} is not JSON: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise error(f"{name} is not usable JSON: nested too deeply") from None
    except ValueError as e:  # NaN/Infinity literals, integers beyond int_max_str_digits
        why = str(e).split(";")[0]  # drop Python's advice on sys.set_int_max_str_digits
        raise error(f"{name} is not usable JSON: {why}") from None


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """`dsi_ref.outputs.write_output`: a regular file is replaced atomically, a device or
    FIFO is written in place, anything else is refused (OutputError naming `path`)."""
    from dsi_ref.outputs import write_output

    write_output(path, write)
