"""A hung LibreOffice is told from a slow one: fake soffice programs that never answer, that
work slowly, and that take their time over a large document."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen import convert
from reportgen.convert import DOCUMENT_SECONDS, PROBE_SECONDS, SECONDS_PER_KB, STARTUP_SECONDS, Pool, allowance
from reportgen.errors import UsageError

# A fake soffice's reading of its command line: the --outdir and the documents, in order.
ARGUMENTS = """
out=""; docs=()
while [ $# -gt 0 ]; do
  case "$1" in --outdir) out="$2"; shift 2;; --convert-to) shift 2;; -*) shift;; *) docs+=("$1"); shift;; esac
done
pdf() { cp "$BLANK" "$out/$(basename "$1" .docx).pdf"; }"""


def _fake_soffice(folder: Path, body: str) -> Path:
    fake = folder / "soffice"
    fake.write_text(f"#!/bin/bash\nBLANK={_blank_pdf(folder / 'blank.pdf')}\n{ARGUMENTS}\n{body}\n", encoding="utf-8")
    fake.chmod(0o755)
    return fake


def _blank_pdf(path: Path) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def _documents(folder: Path, sizes: dict[str, int]) -> list[Path]:
    """Stand-ins for DOCX files of the given sizes (the fakes do not read them)."""
    docs = []
    for name, size in sizes.items():
        (folder / name).mkdir(parents=True)
        docs.append(folder / name / f"{name}.docx")
        docs[-1].write_bytes(b"x" * size)
    return docs


def _processes_named(marker: str) -> list[str]:
    listing = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if marker in line and "ps -eo" not in line]


def test_the_allowance_grows_with_the_document(tmp_path: Path) -> None:
    small, large = _documents(tmp_path, {"small": 10 * 1024, "large": 60 * 1024})
    assert allowance(small, first=True) == STARTUP_SECONDS + DOCUMENT_SECONDS + 10 * SECONDS_PER_KB == 12.0
    assert allowance(small, first=False) == DOCUMENT_SECONDS + 10 * SECONDS_PER_KB == 4.0
    assert allowance(large, first=False) == DOCUMENT_SECONDS + 60 * SECONDS_PER_KB == 14.0
    assert allowance(tmp_path / "not-written-yet.docx", first=False) == DOCUMENT_SECONDS


def test_a_libreoffice_that_never_answers_is_noticed_within_seconds(tmp_path: Path) -> None:
    """With the default --timeout (120 s), a LibreOffice that does nothing is given up after the
    allowance of the document it is on and a look at its CPU time: twice (the batch is retried
    once), well under a minute for one-page forms (11 KB of DOCX)."""
    marker = f"reportgen-idle-{os.getpid()}"
    fake = _fake_soffice(tmp_path, f'echo call >> "{tmp_path}/calls"; exec -a {marker} sleep 600')
    docs = _documents(tmp_path, {"汇总表": 10 * 1024, "测试项目": 11 * 1024})
    started = time.monotonic()
    with Pool(str(fake)) as pool:
        pool.submit(docs)
        pool.inputs_written()
    elapsed = time.monotonic() - started
    assert pool.outcomes == {
        doc: f"LibreOffice 无响应（超过 12 秒没有新的 PDF，也不再占用 CPU）：{doc.name}" for doc in docs
    }
    assert (tmp_path / "calls").read_text(encoding="utf-8") == "call\ncall\n"  # the batch, then one retry
    assert 2 * (12 + PROBE_SECONDS) <= elapsed < 35, elapsed
    assert _processes_named(marker) == []


def test_a_slow_but_working_libreoffice_is_not_killed(tmp_path: Path) -> None:
    """Past a document's allowance a LibreOffice that still computes is left to finish: here the
    second document takes 7 s of CPU where a small one is allowed 2 s."""
    fake = _fake_soffice(tmp_path, f"""echo call >> "{tmp_path}/calls"
pdf "${{docs[0]}}"
end=$((SECONDS + 7)); while [ $SECONDS -lt $end ]; do :; done
pdf "${{docs[1]}}" """)
    docs = _documents(tmp_path, {"a": 100, "b": 100})
    assert allowance(docs[1], first=False) + PROBE_SECONDS < 5
    with Pool(str(fake)) as pool:
        pool.submit(docs)
        pool.inputs_written()
    assert pool.outcomes == {doc: doc.with_suffix(".pdf") for doc in docs}
    assert (tmp_path / "calls").read_text(encoding="utf-8") == "call\n"  # no kill, no retry


def test_a_large_document_is_given_more_time(tmp_path: Path) -> None:
    """Without using CPU (the allowance alone decides), 7 s are too long for a small document
    and not for a large one."""
    fake = _fake_soffice(tmp_path, f"""echo call >> "{tmp_path}/calls"
for doc in "${{docs[@]}}"; do sleep 7; pdf "$doc"; done""")
    small = _documents(tmp_path / "s", {"a": 100})
    large = _documents(tmp_path / "l", {"b": 40 * 1024})
    assert allowance(small[0], first=False) + PROBE_SECONDS < 7 < allowance(large[0], first=False) == 10
    with Pool(str(fake)) as pool:
        pool.submit([*small, *large])
        pool.inputs_written()
    assert pool.outcomes == {small[0]: small[0].with_suffix(".pdf"), large[0]: large[0].with_suffix(".pdf")}
    assert (tmp_path / "calls").read_text(encoding="utf-8") == "call\n"


def test_a_libreoffice_busy_past_the_timeout_is_killed(tmp_path: Path) -> None:
    """Computing endlessly is not progress: --timeout still bounds the time without a new PDF."""
    fake = _fake_soffice(tmp_path, f"""echo call >> "{tmp_path}/calls"
end=$((SECONDS + 30)); while [ $SECONDS -lt $end ]; do :; done""")
    [doc] = _documents(tmp_path, {"a": 100})
    started = time.monotonic()
    with Pool(str(fake), timeout=3) as pool:
        pool.submit([doc])
        pool.inputs_written()
    assert pool.outcomes == {doc: "LibreOffice 转换超时（3 秒内没有完成）：a.docx"}
    assert time.monotonic() - started < 10
    assert (tmp_path / "calls").read_text(encoding="utf-8") == "call\ncall\n"


def test_a_full_disk_fails_the_document_not_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving LibreOffice's PDF beside its DOCX copies it (another file system) and may find the
    disk full: that document fails with the system's reason, the others go on."""
    fake = _fake_soffice(tmp_path, 'for doc in "${docs[@]}"; do pdf "$doc"; done')
    docs = _documents(tmp_path, {"a": 100, "b": 100})
    move = shutil.move

    def full_for_a(source: str, target: str) -> str:
        if Path(target).name == "a.pdf":
            Path(target).write_bytes(b"%PDF-1.6 half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return move(source, target)

    monkeypatch.setattr(convert.shutil, "move", full_for_a)
    with Pool(str(fake)) as pool:
        pool.submit(docs)
        pool.inputs_written()
    assert pool.wait() == {docs[0]: "无法写入 a.pdf：No space left on device", docs[1]: docs[1].with_suffix(".pdf")}
    assert not docs[0].with_suffix(".pdf").exists()  # no half-written PDF left behind


def test_libreoffice_is_started_with_the_faster_allocator_before_what_the_user_preloads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    library = convert.office_allocator()
    assert library is not None and Path(library).name == convert.ALLOCATOR_LIBRARY  # installed with LibreOffice
    monkeypatch.setenv("LD_PRELOAD", "/opt/own/libtrace.so")
    assert convert.office_environment()["LD_PRELOAD"] == f"{library} /opt/own/libtrace.so"
    monkeypatch.setenv("LD_PRELOAD", library)
    assert convert.office_environment()["LD_PRELOAD"] == library  # not twice
    monkeypatch.setenv("LD_PRELOAD", "/opt/own/libtrace.so")
    assert convert.office_environment(allocator=False)["LD_PRELOAD"] == "/opt/own/libtrace.so"  # the user's own


@pytest.fixture
def allocator_setting(monkeypatch: pytest.MonkeyPatch):
    """Sets REPORTGEN_LIBREOFFICE_MALLOC for one test (the allocator found is kept per process)."""
    monkeypatch.delenv("LD_PRELOAD", raising=False)

    def setting(value: str) -> None:
        monkeypatch.setenv(convert.ALLOCATOR_VARIABLE, value)
        convert.office_allocator.cache_clear()

    yield setting
    monkeypatch.delenv(convert.ALLOCATOR_VARIABLE, raising=False)
    convert.office_allocator.cache_clear()


def test_the_allocator_can_be_turned_off_or_asked_for(allocator_setting) -> None:
    allocator_setting(" System ")
    assert convert.office_allocator() is None
    assert "LD_PRELOAD" not in convert.office_environment()
    allocator_setting("TCMALLOC")
    assert Path(convert.office_allocator() or "").name == convert.ALLOCATOR_LIBRARY


@pytest.mark.parametrize("value", ["sytem", "glibc", "off", "jemalloc"])
def test_a_wrong_allocator_setting_is_refused_with_its_value(allocator_setting, value: str) -> None:
    allocator_setting(value)
    with pytest.raises(UsageError) as refused:
        convert.office_allocator()
    assert str(refused.value) == f"环境变量 REPORTGEN_LIBREOFFICE_MALLOC 只能是 tcmalloc 或 system，不能是「{value}」"


def test_tcmalloc_asked_for_but_not_installed_is_said(allocator_setting, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "_installed_allocator", lambda: None)
    allocator_setting("")
    assert convert.office_allocator() is None  # not asked for: LibreOffice runs as it is
    allocator_setting("tcmalloc")
    with pytest.raises(UsageError) as refused:
        convert.office_allocator()
    assert str(refused.value) == (
        "环境变量 REPORTGEN_LIBREOFFICE_MALLOC 要求 tcmalloc，但没有安装：apt-get install libtcmalloc-minimal4")


def test_a_build_with_a_wrong_allocator_setting_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the command line: one line, exit 1, no output folder; also for the local web page,
    before it listens."""
    from .conftest import DATA, ROOT

    environment = {**os.environ, convert.ALLOCATOR_VARIABLE: "sytem"}
    message = "错误：环境变量 REPORTGEN_LIBREOFFICE_MALLOC 只能是 tcmalloc 或 system，不能是「sytem」\n"
    for command in (["build", str(DATA), "-o", str(tmp_path / "out")],
                    ["serve", str(DATA), "-o", str(tmp_path / "out"), "--no-browser", "--port", "0"]):
        done = subprocess.run([sys.executable, "-m", "reportgen", *command], cwd=ROOT, env=environment,
                              capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", message)
        assert not (tmp_path / "out").exists()


def test_documents_are_handed_to_a_running_libreoffice_in_its_own_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What reportgen says on a running LibreOffice's pipe is, byte for byte, what a second
    ``soffice`` says there: a listener in LibreOffice's place hears both, and answers both."""
    import socket
    import threading
    from types import SimpleNamespace

    monkeypatch.chdir(tmp_path)
    profile = tmp_path / "profile"
    office = convert._Office("soffice", SimpleNamespace(folder=profile), convert._Processes(), serving=False)
    heard: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(office.pipe)
        try:
            listener.listen()
            listener.settimeout(60)

            def answer() -> None:  # as LibreOffice: greet, take the command line, say when done
                while len(heard) < 2:
                    connection, _ = listener.accept()
                    with connection:
                        connection.sendall(convert._GREETING)
                        said = b""
                        while not said.endswith(b"\0"):
                            data = connection.recv(4096)
                            if not data:
                                break
                            said += data
                        if said:  # not LibreOffice looking whether the pipe is taken
                            heard.append(said)
                            connection.sendall(convert._PROCESSED)

            listening = threading.Thread(target=answer, daemon=True)
            listening.start()
            arguments = ["--headless", "--invisible", "--nologo", "--nodefault", "--nolockcheck", "--norestore",
                         "--convert-to", convert._filter(False), "--outdir", str(tmp_path / "出,口\\"),
                         str(tmp_path / "表 1,2.docx"), "第二份.docx"]
            done = subprocess.run([convert.find_soffice("soffice"), f"-env:UserInstallation={profile.as_uri()}",
                                   *arguments], env=convert.office_environment(), capture_output=True, timeout=60,
                                  check=False)
            assert done.returncode == 0, done.stderr
            handover = convert._Handover(office.pipe, arguments)
            deadline = time.monotonic() + 30
            while handover.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            handover.close()
            listening.join(timeout=30)
        finally:
            os.unlink(office.pipe)
    assert handover.returncode == 0
    assert len(heard) == 2 and heard[1] == heard[0]
    assert heard[1] == convert.ipc_arguments(arguments, tmp_path.as_uri())
    assert heard[1].startswith(b"InternalIPC::Arguments1file:///") and heard[1].endswith(b",\xe7\xac\xac\xe4\xba\x8c\xe4\xbb\xbd.docx\0")
    assert "出\\,口\\\\".encode() in heard[1] and "表 1\\,2.docx".encode() in heard[1]


def test_a_running_libreoffice_that_goes_away_ends_the_handover(tmp_path: Path) -> None:
    """The connection closed before LibreOffice says it is done: the call failed (1), as a
    second soffice exits when the running one crashes; no greeting: OSError, nothing handed."""
    import socket
    import threading

    pipe = str(tmp_path / "pipe")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(pipe)
        listener.listen()

        def greet_then_go(greeting: bytes) -> None:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(greeting)
                connection.recv(4096)

        for greeting, expected in ((convert._GREETING, 1), (b"something else\0", None)):
            listening = threading.Thread(target=greet_then_go, args=(greeting,), daemon=True)
            listening.start()
            if expected is None:
                with pytest.raises(OSError):
                    convert._Handover(pipe, ["--convert-to", "pdf", "a.docx"])
            else:
                handover = convert._Handover(pipe, ["--convert-to", "pdf", "a.docx"])
                listening.join(timeout=10)
                deadline = time.monotonic() + 10
                while handover.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                handover.close()
                assert handover.returncode == expected
            listening.join(timeout=10)
