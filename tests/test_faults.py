"""Faults with real processes: Ctrl-C, a second build, a read-only folder, a full disk."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import DATA, DATA_UNITS, ROOT

pytestmark = pytest.mark.soffice


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LibreOffice profiles of the builds under test live here (temporary ones, and the cache
    of warm ones), so `ps` finds only ours."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o777)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("XDG_CACHE_HOME", str(scratch / "cache"))
    monkeypatch.setenv("REPORTGEN_KEEP_LIBREOFFICE", "0")  # no LibreOffice outlives these builds
    return scratch


# Settings that point Python or reportgen elsewhere.
ELSEWHERE = ("PYTHONPATH", "PYTHONHOME", "REPORTGEN_TEMPLATES", "REPORTGEN_REGIONS")


@dataclass(frozen=True)
class OtherUser:
    """An unprivileged user, with a Python it may run and a folder of code it may read."""

    uid: int
    python: Path
    lib: Path


def start_build(data: Path, out: Path, *extra: str, user: OtherUser | None = None) -> subprocess.Popen:
    arguments = ["-m", "reportgen", "build", str(data), "-o", str(out), *extra]
    if user is None:
        command, env, cwd = [sys.executable, *arguments], None, None
    else:
        switch = ["setpriv", f"--reuid={user.uid}", f"--regid={user.uid}", "--clear-groups"]
        command = [*switch, str(user.python), "-S", *arguments]  # -S: only the copied packages
        env = {k: v for k, v in os.environ.items() if k not in ELSEWHERE}
        env["PYTHONPATH"], cwd = str(user.lib), user.lib.parent
    # As from a terminal, where Ctrl-C reaches it: a test run started in the background of a
    # shell (`make test &`) ignores SIGINT, and a Python started so never sees it.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            preexec_fn=_default_interrupt)


def _default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def soffice_processes() -> list[str]:
    """LibreOffice processes started by this test's builds (their profiles are under TMPDIR)."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    marker = f"file://{os.environ['TMPDIR']}/"
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


@pytest.fixture(params=["alone", "kept"])
def route(request: pytest.FixtureRequest) -> str:
    """The build runs in the command's own process, or in a kept reportgen's fork
    (``reportgen.resident``), which Ctrl-C and kill reach through the command."""
    if request.param == "kept":
        request.getfixturevalue("kept_reportgen")
    return request.param


def test_ctrl_c_during_conversion_leaves_no_process_and_no_partial_file(tmp_path: Path, route: str) -> None:
    process = start_build(DATA, tmp_path / "out", "--jobs", "2")
    wait_for(lambda: soffice_processes() != [])
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert "已中断：未完成的文件已删除，之前生成的文件保持不变。" in errors
    assert "Traceback" not in errors
    wait_for(lambda: soffice_processes() == [], seconds=5)  # a LibreOffice starting as the build ended ends too
    assert leftovers(tmp_path / "out") == []
    assert list((tmp_path / "out").rglob("*.pdf")) == []  # nothing was finished, nothing half-done


def test_sigterm_is_cleaned_up_like_ctrl_c(tmp_path: Path, route: str) -> None:
    process = start_build(DATA, tmp_path / "out")
    wait_for(lambda: soffice_processes() != [])
    process.terminate()
    process.communicate(timeout=60)
    assert process.returncode == 130
    wait_for(lambda: soffice_processes() == [], seconds=5)  # a LibreOffice starting as the build ended ends too
    assert leftovers(tmp_path / "out") == []


def test_a_command_killed_outright_stops_the_build_a_kept_reportgen_runs_for_it(tmp_path: Path,
                                                                                 kept_reportgen: int) -> None:
    process = start_build(DATA, tmp_path / "out")
    wait_for(lambda: soffice_processes() != [])
    process.kill()  # no handler sees this: the kept reportgen's fork sees its command's connection close
    process.communicate(timeout=60)
    wait_for(lambda: soffice_processes() == [], seconds=30)
    wait_for(lambda: not (tmp_path / "out" / ".reportgen" / "lock").exists()
             or not _locked(tmp_path / "out" / ".reportgen" / "lock"), seconds=30)
    assert leftovers(tmp_path / "out") == []
    assert list((tmp_path / "out").rglob("*.pdf")) == []


def _locked(lock: Path) -> bool:
    import fcntl

    with lock.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def test_second_build_into_the_same_folder_fails_clearly(tmp_path: Path, route: str) -> None:
    out = tmp_path / "out"
    first = start_build(DATA, out)
    wait_for(lambda: soffice_processes() != [])
    second = start_build(DATA, out)
    _, errors = second.communicate(timeout=60)
    assert second.returncode == 1
    assert errors == f"错误：另一个 reportgen build 正在写入 {out}，请等它结束后再运行\n"
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert len(list(out.rglob("*.zip"))) == len(DATA_UNITS)


def others_may_reach(path: Path) -> bool:
    """Whether a user without rights here may reach ``path``: every folder on the way, and the
    path itself, executable by others. Mode bits, not os.access: these tests run as root."""
    path = path.absolute()
    steps = {*path.parents, *path.resolve().parents, path.resolve()}
    return all(step.stat().st_mode & stat.S_IXOTH for step in steps)


def public_folder() -> Path:
    """A new folder others may reach: not under TMPDIR, which here is inside pytest's private
    folder, and may be private anyway."""
    for parent in map(Path, ("/tmp", "/var/tmp", "/dev/shm")):
        if parent.is_dir() and others_may_reach(parent):
            folder = Path(tempfile.mkdtemp(prefix="reportgen-ro-", dir=parent))
            folder.chmod(0o755)
            return folder
    raise AssertionError("no temporary folder that other users may reach")


def public_python() -> Path:
    """This Python's version, installed where others may run it: the interpreter the virtual
    environment was made from, or the system's (the first may live in a private home folder)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    folders = [Path(sys.base_prefix) / "bin", *map(Path, ("/usr/local/bin", "/usr/bin", "/bin"))]
    for python in (folder / name for folder in folders):
        if python.is_file() and others_may_reach(python):
            return python
    raise AssertionError(f"no {name} that other users may run")


def dependencies() -> Iterator[importlib.metadata.Distribution]:
    """The installed distributions reportgen needs to run, with theirs, each once."""
    pending = list(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"])
    seen: set[str] = set()
    while pending:
        requirement, _, marker = pending.pop().partition(";")
        match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
        assert match, requirement
        name = re.sub(r"[-_.]+", "-", match.group()).lower()
        if "extra" in marker or name in seen:
            continue
        seen.add(name)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python version
        yield distribution
        pending += distribution.requires or []


def copy_runtime(lib: Path) -> None:
    """reportgen, its templates and every package it imports, copied into ``lib`` in a checkout's
    layout: what a user who cannot read this checkout or its virtual environment needs."""
    import reportgen
    from reportgen.bundle import summary_template
    from reportgen.regions import templates_root

    shutil.copytree(Path(reportgen.__file__).parent, lib / "reportgen", copy_function=share)
    shutil.copytree(templates_root(), lib / "templates" / "docx", copy_function=share)
    shutil.copytree(summary_template().parent, lib / "templates" / "summary", copy_function=share)
    for distribution in dependencies():
        files = distribution.files
        assert files is not None, f"{distribution.name}: no list of installed files"
        for file in files:
            source = Path(str(distribution.locate_file(file)))
            if file.parts[0] != ".." and source.is_file():  # "..": scripts in bin/
                (lib / file).parent.mkdir(parents=True, exist_ok=True)
                share(source, lib / file)


def share(source: str | Path, target: str | Path) -> None:
    """A hard link when all may read the file already (fast, and open_to_others leaves the file's
    mode as it is), otherwise a copy."""
    if os.stat(source).st_mode & 0o644 == 0o644:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system
    shutil.copy2(source, target)


def open_to_others(root: Path) -> None:
    """Readable by all, whatever the umask: folders 755, files 644 (no write for others)."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, os.stat(folder).st_mode | 0o755)
        for path in (os.path.join(folder, name) for name in files):
            mode = os.stat(path).st_mode
            if mode & 0o644 != 0o644:
                os.chmod(path, mode | 0o644)


def test_read_only_output_folder_keeps_earlier_outputs() -> None:
    base = public_folder()
    try:
        data, out = base / "data", base / "out"
        shutil.copytree(DATA / "2020", data / "2020")
        assert start_build(data, out).wait(timeout=300) == 0
        before = digests(out)
        # The same build as an unprivileged user: a real folder it may read but not write. It may
        # not read this checkout (a clone in a private folder), so it runs a copy of reportgen.
        copy_runtime(base / "lib")
        open_to_others(base)
        nobody = OtherUser(uid=65534, python=public_python(), lib=base / "lib")
        process = start_build(data, out, "--force", user=nobody)
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 1, errors
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
    wait_for(lambda: soffice_processes() == [], seconds=5)  # a LibreOffice starting as the build ended ends too
