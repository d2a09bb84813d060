"""Output files: checked before any work, written without ever replacing what is not a file.

Every file either command line writes (traces, JSON summaries, profiles, the heatmap's
CSV and PNG) goes through here, and a path is treated by what is at it, as a Unix
tool treats it:

- nothing, or a regular file: the bytes go to a temporary file beside it, which is
  then renamed over it (a reader sees the old file or the whole new one);
- a character device (/dev/null, a terminal): the bytes are written to the device;
  nothing is created, truncated, renamed or removed;
- a FIFO: the bytes are written once a reader has opened it (at most `fifo_wait`
  seconds, then OutputError: a run never hangs on a FIFO nobody reads);
- a symlink to an existing file, device or FIFO: written through the link as above
  (a regular file behind a link is truncated and written in place; the link stays);
- a symlink to nothing, a directory, a block device or a socket: OutputError, and
  nothing is written (a block device is a disk: JSON written onto it destroys it).

`check_output` runs before any work (it also creates missing parent directories),
so a bad path costs no computation; `write_outputs` writes several files so that a
failure leaves no new regular file behind. Every error names the user's path, never
the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dsi_ref.errors import OutputError, show

Writer = Callable[[IO[bytes]], None]

# Long enough for a user to start `cat fifo` after launching a run, short enough that a
# forgotten reader ends the run with an error instead of a hang.
FIFO_WAIT = 60.0


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@dataclass(frozen=True)
class OutputPath:
    """A path `check_output` accepted; `what` names it in messages ("trace file", ...)."""

    path: Path
    what: str

    def __str__(self) -> str:
        return str(self.path)


def _name(what: str, path: Path | str) -> str:
    return f"{what} {str(path)!r}"


def _fail(what: str, path: Path | str, e: OSError) -> OutputError:
    return OutputError(f"cannot write {_name(what, path)}: {e.strerror or e}")


def _refusal(mode: int) -> str | None:
    """Why a file of this kind is never written, or None when it may be."""
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISBLK(mode):
        return "is a block device (a disk: writing there would destroy it)"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return None
    return "is not a regular file, character device or FIFO"


def _as_path(path: object, what: str) -> Path:
    if isinstance(path, Path):
        text = str(path)
    elif isinstance(path, str):
        text = path
    else:
        raise OutputError(f"{what} must be a path, got {show(path)}")
    if not text:
        raise OutputError(f"{what} needs a file name, got ''")
    if "\0" in text:
        raise OutputError(f"{what} {text!r} contains a NUL byte")
    return Path(text)


def _probe_dir(what: str, path: Path) -> None:
    """Create `path`'s parent directories and make sure a file can be created in it."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(
            f"cannot write {_name(what, path)}: {str(parent)!r} is not a directory"
        ) from None
    except OSError as e:
        raise OutputError(
            f"cannot write {_name(what, path)}: cannot create directory {str(parent)!r}: "
            f"{e.strerror or e}"
        ) from None
    try:  # the real test (access() says yes to root on a read-only file system)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _fail(what, path, e) from None
    os.close(fd)
    os.unlink(tmp)


def check_output(path: object, what: str = "output file") -> OutputPath:
    """`path` checked as an output (see the module docstring); OutputError if it cannot be.

    Missing parent directories are created, as the heatmap's `--out` always did.
    """
    p = _as_path(path, what)
    try:
        link = stat.S_ISLNK(os.lstat(p).st_mode)
    except FileNotFoundError:
        _probe_dir(what, p)
        return OutputPath(p, what)
    except OSError as e:  # e.g. a parent that is a regular file
        raise _fail(what, p, e) from None
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise OutputError(
            f"{_name(what, p)} is a symlink to {os.readlink(p)!r}, which does not exist "
            "(refusing to create a file through a link)"
        ) from None
    except OSError as e:
        raise _fail(what, p, e) from None
    why = _refusal(mode)
    if why is not None:
        raise OutputError(f"{_name(what, p)} {why}")
    if stat.S_ISREG(mode) and not link:
        _probe_dir(what, p)  # the rename needs a temporary file beside it
    elif not os.access(p, os.W_OK):
        raise OutputError(f"cannot write {_name(what, p)}: permission denied")
    return OutputPath(p, what)


# ----- writing ----------------------------------------------------------------------


def _stage(out: OutputPath, write: Writer) -> str:
    """Write to a temporary file beside `out` and return its name (not yet renamed)."""
    fd, tmp = tempfile.mkstemp(dir=out.path.parent, prefix=f".{out.path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:  # keep the mode of the file it replaces; a new file gets the umask's
            mode = stat.S_IMODE(os.stat(out.path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _open_fifo(out: OutputPath, fifo_wait: float) -> int:
    deadline = time.monotonic() + fifo_wait
    while True:
        try:  # non-blocking: a FIFO with no reader fails with ENXIO instead of hanging
            fd = os.open(out.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            if time.monotonic() >= deadline:
                raise OutputError(
                    f"{_name(out.what, out.path)} is a FIFO that no process opened for "
                    f"reading within {fifo_wait:g} s"
                ) from None
            time.sleep(0.02)
            continue
        os.set_blocking(fd, True)
        return fd


def _write_stream(out: OutputPath, mode: int, write: Writer, fifo_wait: float) -> None:
    """Write into what is at `out` (a device, a FIFO, or a file behind a link) in place."""
    if stat.S_ISFIFO(mode):
        fd = _open_fifo(out, fifo_wait)
    else:  # no O_CREAT: a link that stopped pointing anywhere is not followed into a new file
        flags = os.O_WRONLY | os.O_NOCTTY | (os.O_TRUNC if stat.S_ISREG(mode) else 0)
        fd = os.open(out.path, flags)
    with os.fdopen(fd, "wb") as f:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFMT(mode):  # it changed since it was looked at
            raise OutputError(f"{_name(out.what, out.path)} changed kind while being written")
        write(f)
        f.flush()


def _kind(out: OutputPath) -> tuple[bool, int]:
    """(replace by rename, mode of what is there now); OutputError for what is never written."""
    try:
        lmode = os.lstat(out.path).st_mode
    except FileNotFoundError:
        return True, stat.S_IFREG
    mode = os.stat(out.path).st_mode if stat.S_ISLNK(lmode) else lmode
    why = _refusal(mode)
    if why is not None:
        raise OutputError(f"{_name(out.what, out.path)} {why}")
    return stat.S_ISREG(lmode), mode


def write_outputs(
    items: Sequence[tuple[OutputPath, Writer]] | Iterable[tuple[OutputPath, Writer]],
    fifo_wait: float = FIFO_WAIT,
) -> None:
    """Write each `(out, write)`: all renamed files are staged first, then streams written,
    then the staged files renamed into place. An error before the renames (a writer that
    raises, a full disk, a FIFO nobody reads) leaves every regular file as it was and no
    temporary file behind; it is raised as OutputError naming the user's path (a writer's
    own DSIError or ValueError propagates unchanged).
    """
    staged: list[tuple[OutputPath, str]] = []
    streams: list[tuple[OutputPath, int, Writer]] = []
    current: OutputPath | None = None
    renamed = 0  # staged[:renamed] are in place; the rest are removed on the way out
    try:
        for out, write in items:
            current = out
            rename, mode = _kind(out)
            if rename:
                staged.append((out, _stage(out, write)))
            else:
                streams.append((out, mode, write))
        for out, mode, write in streams:
            current = out
            _write_stream(out, mode, write, fifo_wait)
        for out, tmp in staged:
            current = out
            os.replace(tmp, out.path)
            renamed += 1
    except OSError as e:
        if current is None:
            raise
        raise _fail(current.what, current.path, e) from None
    finally:
        for _, tmp in staged[renamed:]:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_output(path: object, write: Writer, what: str = "output file") -> None:
    """Check `path` and write it with `write` (one file: see `write_outputs`)."""
    out = path if isinstance(path, OutputPath) else check_output(path, what)
    write_outputs([(out, write)])


def write_bytes(data: bytes) -> Writer:
    """A writer for bytes already in memory."""

    def write(f: IO[bytes]) -> None:
        f.write(data)

    return write


# ----- several files from one name ---------------------------------------------------


def per_name_paths(spec: object, names: Sequence[str], what: str) -> dict[str, Path]:
    """Where each of `names` (algorithms) is written, given one `--trace` value.

    A directory (existing, or named with a trailing slash): DIR/<name>.json.
    A file name: as given for one name, STEM.<name>.EXT for several. A name that is all
    extension (".json") has no stem: <name>.json, never a hidden file.
    """
    p = _as_path(spec, what)
    text = str(spec)
    if text.endswith(("/", os.sep)) or p.name in ("", ".", "..") or p.is_dir():
        return {n: p / f"{n}.json" for n in names}
    name = p.name
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot >= 0 else (name, "")
    if not stem.strip("."):
        return {n: p.with_name(f"{n}{ext or '.json'}") for n in names}
    if len(names) == 1:
        return {names[0]: p}
    return {n: p.with_name(f"{stem}.{n}{ext}") for n in names}


def check_outputs(paths: dict[str, Path], what: str) -> dict[str, OutputPath]:
    """`check_output` for each path; two names that land on one file are an error."""
    seen: dict[Path, str] = {}
    for n, p in paths.items():
        if p in seen:
            raise OutputError(f"{what}s for {seen[p]} and {n} would both be {str(p)!r}")
        seen[p] = n
    return {
        n: check_output(p, f"{what} ({n})" if len(paths) > 1 else what) for n, p in paths.items()
    }
