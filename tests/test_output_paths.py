"""Output paths of both command lines (dsi_ref.outputs): a device node stays a device
node, a FIFO gets the bytes, a directory or block device is refused before any work,
a failed run writes nothing, and every error names the user's path.

Special files are made here, in the test's own temporary directory (never the
machine's /dev): character devices 1:3 (null) and 1:7 (full), and block device 7:200
(a loop device number no machine has: if a bug ever wrote to it, the open would fail).
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from dsi_ref.checker import check_trace
from dsi_ref.cli import main
from dsi_ref.errors import OutputError
from dsi_ref.outputs import (
    check_output,
    check_outputs,
    per_name_paths,
    write_bytes,
    write_output,
    write_outputs,
)
from dsi_ref.trace import load_trace, save_trace


def _mknod(path: Path, kind: int, major: int, minor: int) -> Path:
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except PermissionError:  # not root, or a container without CAP_MKNOD
        pytest.skip("cannot create device nodes here")
    return path


@pytest.fixture
def null(tmp_path: Path) -> Path:
    return _mknod(tmp_path / "null", stat.S_IFCHR, 1, 3)


@pytest.fixture
def full(tmp_path: Path) -> Path:
    return _mknod(tmp_path / "full", stat.S_IFCHR, 1, 7)


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return _mknod(tmp_path / "disk", stat.S_IFBLK, 7, 200)


def _is(path: Path, test: Callable[[int], bool]) -> bool:
    return test(os.lstat(path).st_mode)


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


RUN = ("run", "--max-tokens", "6")


# ----- the destructive case: device nodes stay device nodes -------------------------


def test_trace_to_a_character_device_writes_into_it(null: Path) -> None:
    rc, _ = run_cli(*RUN, "--algorithm", "dsi", "--trace", str(null))
    assert rc == 0
    assert _is(null, stat.S_ISCHR) and os.stat(null).st_rdev == os.makedev(1, 3)
    assert os.listdir(null.parent) == ["null"]  # no temporary file left beside it


def test_a_full_device_is_a_typed_error_and_stays_a_device(
    full: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _ = run_cli(*RUN, "--algorithm", "dsi", "--trace", str(full))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert str(full) in err and "No space left" in err and ".tmp" not in err
    assert _is(full, stat.S_ISCHR) and os.listdir(full.parent) == ["full"]


def test_a_block_device_is_refused_before_the_run(
    disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dsi_ref.cli

    def no_run(*a: object, **k: object) -> None:
        raise AssertionError("the run started before its output path was checked")

    monkeypatch.setattr(dsi_ref.cli, "run_algorithm", no_run)
    rc, _ = run_cli(*RUN, "--algorithm", "si", "--trace", str(disk))
    err = capsys.readouterr().err
    assert rc == 2 and "block device" in err and str(disk) in err
    assert _is(disk, stat.S_ISBLK)


def test_symlink_to_a_device_writes_through_it(null: Path, tmp_path: Path) -> None:
    link = tmp_path / "stdout"
    link.symlink_to(null)
    assert run_cli(*RUN, "--algorithm", "si", "--trace", str(link))[0] == 0
    assert _is(link, stat.S_ISLNK) and _is(null, stat.S_ISCHR)


# ----- FIFOs -----------------------------------------------------------------------


def _reader(fifo: Path, got: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_a_fifo_with_a_reader_gets_the_trace(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    t = _reader(fifo, got)
    assert run_cli(*RUN, "--algorithm", "dsi", "--trace", str(fifo))[0] == 0
    t.join(10)
    assert check_trace(json.loads(got[0])).ok
    assert _is(fifo, stat.S_ISFIFO) and os.listdir(tmp_path) == ["pipe"]


def test_a_fifo_nobody_reads_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = check_output(fifo, "trace file")
    with pytest.raises(OutputError, match=r"FIFO that no process opened .* within 0.2 s"):
        write_outputs([(out, write_bytes(b"{}"))], fifo_wait=0.2)
    assert _is(fifo, stat.S_ISFIFO)


# ----- what is refused, and what it says ---------------------------------------------


def test_refusals_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        str(tmp_path / "d"): "is a directory",
        str(tmp_path / "file" / "x.json"): "Not a directory",
        str(tmp_path / "dangling"): "does not exist",
        "": "needs a file name",
        "a\0b": "NUL byte",
    }
    for path, why in cases.items():
        with pytest.raises(OutputError, match=why) as e:
            check_output(path, "trace file")
        assert repr(path)[1:-1] in str(e.value) or path == ""
    with pytest.raises(OutputError, match="must be a path, got 3"):
        check_output(3)
    assert not (tmp_path / "nowhere").exists()  # a dangling link is never followed


def test_missing_directories_are_created_before_the_run(tmp_path: Path) -> None:
    target = tmp_path / "out" / "sub" / "run.json"
    assert run_cli(*RUN, "--algorithm", "si", "--trace", str(target))[0] == 0
    assert check_trace(load_trace(target)).ok


def test_symlink_to_a_regular_file_is_written_in_place(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_output(link, write_bytes(b"new"))
    assert _is(link, stat.S_ISLNK) and real.read_bytes() == b"new"


def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("old")
    path.chmod(0o640)
    write_output(path, write_bytes(b"new"))
    assert path.read_bytes() == b"new" and stat.S_IMODE(os.stat(path).st_mode) == 0o640


# ----- all or nothing ---------------------------------------------------------------


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    paths = check_outputs(per_name_paths(str(tmp_path / "t.json"), ("a", "b"), "--trace"), "x")
    (tmp_path / "t.a.json").write_text("old")

    def broken(f: IO[bytes]) -> None:
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"'.*t\.b\.json': No space left"):
        write_outputs([(paths["a"], write_bytes(b"new")), (paths["b"], broken)])
    assert os.listdir(tmp_path) == ["t.a.json"] and (tmp_path / "t.a.json").read_text() == "old"


def test_all_with_one_bad_path_runs_nothing_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "t.dsi.json").mkdir()  # the third of three paths is a directory
    rc, _ = run_cli(*RUN, "--trace", str(tmp_path / "t.json"))
    assert rc == 2 and os.listdir(tmp_path) == ["t.dsi.json"]


def test_two_algorithms_on_one_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="would both be"):
        check_outputs({"si": tmp_path / "x", "dsi": tmp_path / "x"}, "trace file")


def test_save_trace_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        save_trace({"format": "dsi-trace"}, tmp_path)


# ----- gpu_runner's command line uses the same rules ---------------------------------

GPU_RUN = ("run", "--max-new-tokens", "4", "--k", "2", "--quiet", "--dtype", "float64")


def _gpu_cli(monkeypatch: pytest.MonkeyPatch, *argv: str, load: bool) -> int:
    pytest.importorskip("transformers")
    import gpu_runner.generate
    from gpu_runner.cli import main as gpu_main

    if not load:

        def no_load(*a: object, **k: object) -> None:
            raise AssertionError("a model was loaded before the output paths were checked")

        monkeypatch.setattr(gpu_runner.generate, "generate", no_load)
    return gpu_main(list(argv))


def test_gpu_runner_checks_outputs_before_loading(
    tmp_path: Path, disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (("--trace", str(disk)), ("--json", str(tmp_path)), ("--trace", "")):
        assert _gpu_cli(monkeypatch, *GPU_RUN, "--algorithm", "si", *argv, load=False) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert _is(disk, stat.S_ISBLK)


def test_gpu_runner_outputs(tmp_path: Path, null: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc = _gpu_cli(monkeypatch, *GPU_RUN, "--trace", ".json", "--json", str(null), load=True)
    assert rc == 0
    assert sorted(os.listdir(tmp_path)) == ["dsi.json", "nonsi.json", "null", "si.json"]
    assert _is(null, stat.S_ISCHR)
    d = tmp_path / "traces"
    d.mkdir()
    rc = _gpu_cli(monkeypatch, *GPU_RUN, "--algorithm", "si", "--trace", str(d), load=True)
    assert rc == 0 and check_trace(load_trace(d / "si.json")).ok
