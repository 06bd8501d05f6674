"""LibreOffice's profiles kept warm in the cache folder, and LibreOffice kept running between
builds: a killed build, two builds at once, a profile LibreOffice cannot start with, the
LibreOffice of one build used by the next and ended when unused (real LibreOffice)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen import profiles

from .conftest import DATA, ROOT
from .test_build import tree_digest

pytestmark = pytest.mark.soffice


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of the test's own (``XDG_CACHE_HOME``), for this process and the builds it starts."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def start_build(out: Path, *extra: str, keep: float = 30) -> subprocess.Popen:
    command = [sys.executable, "-m", "reportgen", "build", str(DATA), "-o", str(out), "--jobs", "2",
               "--keep-libreoffice", str(keep), *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> None:
    output, errors = process.communicate(timeout=300)
    assert process.returncode == 0, output + errors


def slots(cache: Path) -> Path:
    (root,) = (cache / "reportgen" / "libreoffice").iterdir()  # one LibreOffice installation
    return root


def offices(cache: Path) -> dict[str, dict]:
    """The LibreOffice each slot's last build started or left running, as recorded."""
    return {path.name.split(".")[0]: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(slots(cache).glob("slot-*.office.json"))}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


def end_offices(cache: Path) -> None:
    """What the test's builds left running: ended with the test."""
    for record in offices(cache).values():
        if alive(record["pid"]):
            os.killpg(record["group"], signal.SIGKILL)


def wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_killed_build_leaves_a_cache_the_next_build_uses(cache: Path, tmp_path: Path, built_data: Path) -> None:
    """Killed while LibreOffice works (kill -9: nothing of the build runs any more), the slots it
    held are freed with it; their profiles, no longer marked ready, are made anew by the next
    build, which ends the LibreOffice the killed one left and builds what a clean build does."""
    killed = start_build(tmp_path / "killed")
    try:
        wait_for(lambda: (slots(cache) / "slot-0.office.json").is_file() if (cache / "reportgen").is_dir() else False)
        left = offices(cache)
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)
        assert not (slots(cache) / "slot-0" / profiles.READY).exists()
        finished(start_build(tmp_path / "next"))
        assert all(not alive(record["pid"]) for record in left.values())  # ended by the next build
        assert tree_digest(tmp_path / "next") == tree_digest(built_data)
        assert all((slots(cache) / slot / profiles.READY).is_file() for slot in ("slot-0", "slot-1"))
    finally:
        end_offices(cache)


def test_two_builds_at_once_each_have_their_own_profiles(cache: Path, tmp_path: Path, built_data: Path) -> None:
    first, second = start_build(tmp_path / "a"), start_build(tmp_path / "b")
    try:
        finished(first)
        finished(second)
        assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b") == tree_digest(built_data)
        # each took two slots of its own, locked while it ran, and marked them ready when done
        assert sorted(path.name for path in slots(cache).glob("slot-?")) == ["slot-0", "slot-1", "slot-2", "slot-3"]
        assert all((path / profiles.READY).is_file() for path in slots(cache).glob("slot-?"))
    finally:
        end_offices(cache)


def test_a_profile_libreoffice_cannot_start_with_is_made_anew(cache: Path, tmp_path: Path, built_data: Path) -> None:
    finished(start_build(tmp_path / "first", keep=0))
    profile = slots(cache) / "slot-0"
    assert (profile / profiles.READY).is_file()
    shutil.rmtree(profile / "user")
    (profile / "user").write_text("not a folder", encoding="utf-8")  # LibreOffice cannot start with it
    try:
        finished(start_build(tmp_path / "second", keep=0))
        assert tree_digest(tmp_path / "second") == tree_digest(built_data)
        assert (profile / "user").is_dir() and (profile / profiles.READY).is_file()
    finally:
        end_offices(cache)


def test_libreoffice_kept_running_serves_the_next_build_and_ends_when_unused(
        cache: Path, tmp_path: Path, built_data: Path) -> None:
    finished(start_build(tmp_path / "first", keep=3))
    try:
        kept = offices(cache)
        assert sorted(kept) == ["slot-0", "slot-1"]
        assert all(alive(record["pid"]) for record in kept.values())
        finished(start_build(tmp_path / "second", "--force", keep=3))
        assert {slot: record["pid"] for slot, record in offices(cache).items()} == {
            slot: record["pid"] for slot, record in kept.items()}  # the same LibreOffice did the work
        assert tree_digest(tmp_path / "second") == tree_digest(tmp_path / "first") == tree_digest(built_data)
        wait_for(lambda: not any(alive(record["pid"]) for record in kept.values()), seconds=30)
    finally:
        end_offices(cache)


def test_a_libreoffice_due_for_a_restart_is_replaced_when_its_build_ends(
        cache: Path, tmp_path: Path, built_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A LibreOffice kept running is started afresh after ``RECYCLE_DOCUMENTS`` documents: at
    the end of the build that reached the count, so that the next build finds the new one
    running instead of waiting for it to start."""
    from reportgen import convert
    from reportgen.build import Options, build

    kept: list[dict] = []
    keep_office = profiles.Profile.keep_office
    monkeypatch.setattr(profiles.Profile, "keep_office",
                        lambda profile, record: (kept.append(dict(record)), keep_office(profile, record))[1])
    monkeypatch.setattr(convert, "RECYCLE_DOCUMENTS", 1)
    try:
        build([DATA], tmp_path / "first", Options(jobs=1, keep=30))
        started, replacement = kept[0], kept[-1]
        assert replacement["pid"] != started["pid"] and replacement["handled"] == 0
        assert offices(cache) == {"slot-0": replacement}
        assert alive(replacement["pid"]) and not alive(started["pid"])
        monkeypatch.setattr(convert, "RECYCLE_DOCUMENTS", 1000)
        build([DATA], tmp_path / "second", Options(jobs=1, keep=30))
        (record,) = offices(cache).values()
        assert record["pid"] == replacement["pid"] and record["handled"] > 0  # it did the next build's work
        assert tree_digest(tmp_path / "second") == tree_digest(built_data)
    finally:
        end_offices(cache)


def office_libraries(group: int) -> set[str]:
    """The files mapped by the soffice.bin of a LibreOffice's process group (where it converts)."""
    found: set[str] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rpartition(b")")[2].split()
            if int(fields[2]) == group and (stat.parent / "comm").read_text().strip() == "soffice.bin":
                found |= {line.split()[-1] for line in (stat.parent / "maps").read_text().splitlines() if "/" in line}
                found.add("soffice.bin")
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_libreoffice_runs_with_the_faster_allocator_and_the_same_output_without_it(
        cache: Path, tmp_path: Path, built_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LibreOffice is started with tcmalloc (it converts faster, benchmarks/README): its
    process has the library, and a build told to use LibreOffice's own allocator does not
    reuse the LibreOffice kept running with it, and makes the same files byte for byte."""
    from reportgen.convert import ALLOCATOR_VARIABLE, office_allocator

    library = os.path.realpath(office_allocator() or "not installed")
    finished(start_build(tmp_path / "first", keep=60))
    kept = offices(cache)
    try:
        libraries = [office_libraries(record["group"]) for record in kept.values()]
        assert kept and all("soffice.bin" in found and library in found for found in libraries)
        monkeypatch.setenv(ALLOCATOR_VARIABLE, "system")
        finished(start_build(tmp_path / "second", keep=60))
        plain = offices(cache)
        assert {record["pid"] for record in plain.values()}.isdisjoint(record["pid"] for record in kept.values())
        libraries = [office_libraries(record["group"]) for record in plain.values()]
        assert plain and all("soffice.bin" in found and library not in found for found in libraries)
        assert tree_digest(tmp_path / "second") == tree_digest(tmp_path / "first") == tree_digest(built_data)
    finally:
        end_offices(cache)
        for record in kept.values():
            if alive(record["pid"]):
                os.killpg(record["group"], signal.SIGKILL)


def test_libreoffice_kept_running_ends_when_its_cache_folder_is_removed(cache: Path, tmp_path: Path) -> None:
    """Its keeper watches the slot's files: gone (the cache emptied, a test's folder removed),
    nothing is left running."""
    finished(start_build(tmp_path / "out", keep=600))
    kept = offices(cache)
    assert kept and all(alive(record["pid"]) for record in kept.values())
    # LibreOffice may still be writing its settings into the profile (its configuration is
    # written by a thread of its own, a moment after a change): removed until it stays removed.
    wait_for(lambda: shutil.rmtree(cache, ignore_errors=True) or not cache.exists(), seconds=30)
    wait_for(lambda: not running_in(cache), seconds=30)
    assert not any(alive(record["pid"]) for record in kept.values())


def running_in(cache: Path) -> list[str]:
    """Processes (LibreOffice, its keeper) whose command line names the cache folder."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid,stat,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if str(cache) in line and " Z" not in line and "ps -ww" not in line]


def test_libreoffice_skips_its_graphics_self_tests_with_a_profile_that_notes_its_version(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a window LibreOffice never notes its version in the profile, and so ran its
    graphics self-tests (0.8 CPU seconds) at every start: reportgen's profiles note it."""
    from reportgen.convert import convert_to_pdf

    version = profiles.product_version("soffice")
    assert version is not None and version.count(".") == 1
    document = tmp_path / "form.docx"
    shutil.copy(ROOT / "tests/fixtures/header-row-starts-merge.docx", document)
    assert convert_to_pdf([document], tmp_path / "noted")[0].is_file()
    (profile,) = [folder for folder in slots(cache).iterdir() if folder.is_dir()]
    settings = (profile / profiles.SETTINGS).read_text(encoding="utf-8")
    assert f'<prop oor:name="ooSetupLastVersion" oor:op="fuse"><value>{version}</value></prop>' in settings
    assert not (profile / "user/GraphicsRenderTests.log").exists()
    assert settings.count("ooSetupLastVersion") == 1  # noted once, kept by LibreOffice

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-cache"))
    monkeypatch.setattr(profiles, "note_version", lambda folder, soffice: None)
    assert convert_to_pdf([document], tmp_path / "not-noted")[0].is_file()
    (unnoted,) = [folder for folder in slots(tmp_path / "another-cache").iterdir() if folder.is_dir()]
    assert (unnoted / "user/GraphicsRenderTests.log").is_file()  # what LibreOffice does by itself


def test_a_running_libreoffice_is_handed_documents_without_a_second_soffice(
        cache: Path, tmp_path: Path, built_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call goes over the pipe (no ``soffice --convert-to`` started), also for names with
    the characters the pipe's words escape; the PDFs are LibreOffice's."""
    from reportgen import convert

    started: list[list[str]] = []
    start = convert._Processes.start
    monkeypatch.setattr(convert._Processes, "start", lambda self, command: started.append(command) or start(self, command))
    form = next(built_data.rglob("网格信息采集工作.docx"))
    docs = []
    for name in ("表,一\\二", "第二份"):
        (tmp_path / name).mkdir()
        docs.append(tmp_path / name / f"{name}.docx")
        shutil.copyfile(form, docs[-1])
    with convert.Pool(workers=1) as pool:
        pool.launch()
        for doc in docs:  # two calls, one document each
            pool.submit([doc])
        pool.inputs_written()
    assert pool.outcomes == {doc: doc.with_suffix(".pdf") for doc in docs}
    assert started == []  # LibreOffice itself runs under its keeper (start_guarded); no second soffice
    for doc in docs:
        text = subprocess.run(["pdftotext", str(doc.with_suffix(".pdf")), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "网格信息采集工作" in text
