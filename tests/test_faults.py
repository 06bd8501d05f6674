"""Faults with real processes: Ctrl-C, a second build, a read-only folder, a full disk."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import DATA

pytestmark = pytest.mark.soffice


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LibreOffice profiles of the builds under test live here, so `ps` finds only ours."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o777)
    monkeypatch.setenv("TMPDIR", str(scratch))
    return scratch


def start_build(data: Path, out: Path, *extra: str, user: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "reportgen", "build", str(data), "-o", str(out), *extra]
    if user:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def soffice_processes() -> list[str]:
    """LibreOffice processes started by this test's builds (their profiles are under TMPDIR)."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    marker = f"file://{os.environ['TMPDIR']}/reportgen-lo-"
    return [line for line in listing.splitlines() if marker in line]


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".reportgen" not in p.parts
    }


def leftovers(root: Path) -> list[str]:
    """Anything half-written: temporary names, or a staging folder still present."""
    partial = [str(p) for p in root.rglob("*.part")]
    staging = [str(p) for p in root.rglob(".staging-*")]
    return partial + staging


def test_ctrl_c_during_conversion_leaves_no_process_and_no_partial_file(tmp_path: Path) -> None:
    process = start_build(DATA, tmp_path / "out", "--jobs", "2")
    wait_for(lambda: soffice_processes() != [])
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert "已中断：未完成的文件已删除，之前生成的文件保持不变。" in errors
    assert "Traceback" not in errors
    assert soffice_processes() == []
    assert leftovers(tmp_path / "out") == []
    assert list((tmp_path / "out").rglob("*.pdf")) == []  # nothing was finished, nothing half-done


def test_sigterm_is_cleaned_up_like_ctrl_c(tmp_path: Path) -> None:
    process = start_build(DATA, tmp_path / "out")
    wait_for(lambda: soffice_processes() != [])
    process.terminate()
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert soffice_processes() == []
    assert leftovers(tmp_path / "out") == []


def test_second_build_into_the_same_folder_fails_clearly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = start_build(DATA, out)
    wait_for(lambda: soffice_processes() != [])
    second = start_build(DATA, out)
    _, errors = second.communicate(timeout=60)
    assert second.returncode == 1
    assert errors == f"错误：另一个 reportgen build 正在写入 {out}，请等它结束后再运行\n"
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert len(list(out.rglob("*.zip"))) == 4


def test_read_only_output_folder_keeps_earlier_outputs() -> None:
    base = Path(tempfile.mkdtemp(prefix="reportgen-ro-"))  # outside pytest's private folder
    try:
        base.chmod(0o755)
        data, out = base / "data", base / "out"
        shutil.copytree(DATA / "2020", data / "2020")
        assert start_build(data, out).wait(timeout=300) == 0
        before = digests(out)
        # The same build as an unprivileged user: a real folder it may read but not write.
        process = start_build(data, out, "--force", user="65534")
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 1
        assert errors == f"错误：无法写入输出文件夹 {out}：Permission denied\n"
        assert digests(out) == before
    finally:
        shutil.rmtree(base)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Mounts a tmpfs of a given size (bytes, rounded up to pages) and returns its folder."""
    mounts: list[Path] = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=False).returncode:
            pytest.skip("cannot mount a small tmpfs here (needs root)")
        mounts.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounts:
            subprocess.run(["umount", str(folder)], check=False)


def _bytes_under(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_full_disk_gives_a_clear_error_and_keeps_earlier_outputs(
    tmp_path: Path, small_disk: Callable[[int], Path]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA / "2020", data / "2020")
    # A disk that holds the build of one form with room to spare, but not five more forms.
    assert start_build(data, tmp_path / "probe").wait(timeout=300) == 0
    out = small_disk(_bytes_under(tmp_path / "probe") * 2) / "out"
    assert start_build(data, out).wait(timeout=300) == 0
    before = digests(out)
    shutil.copytree(DATA / "2023", data / "2023")  # five more forms: more than the disk holds
    process = start_build(data, out)
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "No space left on device" in errors
    assert "Traceback" not in errors
    assert {k: v for k, v in digests(out).items() if k in before} == before
    assert leftovers(out) == []
    assert soffice_processes() == []
