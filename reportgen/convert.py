"""DOCX → PDF with real LibreOffice: a pool of headless workers, batches, timeouts, retries.

Starting LibreOffice costs far more than converting a one-page form, so documents are handed
out in batches, as many workers as cores, each with its own profile folder (two processes
sharing a profile would hand their work to each other), kept warm between builds in the cache
folder (``profiles``). A real LibreOffice is started ahead of its documents (``Pool.launch``) and
kept running: each batch is handed to it over its pipe, in the words a second
``soffice --convert-to`` would use (``_Handover``), and it is kept for the next build for
``keep`` seconds.
Without one (another program, or one that does not answer on its pipe), a batch is one
``soffice --convert-to`` call, launched before its documents are written (LibreOffice opens each
when it reaches it). Each PDF is handed back as soon as it is complete, its text layer repaired
(``textlayer``), so that the caller renders while LibreOffice starts and bundles while it
converts. The PDFs are tagged (``TAGGED``): screen readers follow the tables' structure.

A worker is watched for progress: a new PDF. Each document is given time in proportion to its
size (``allowance``; the first also LibreOffice's start-up); when that has passed without a new
PDF, the worker's CPU time decides: a LibreOffice that has stopped working (no CPU for a while)
is hung, one that still computes is slow and is left alone up to ``timeout`` seconds without a
new PDF. Either way a hung worker is killed with its whole process group, and its unfinished
documents are retried once in a fresh process. No LibreOffice process outlives the pool, also
on Ctrl-C, but one kept for the next build (it ends itself once unused for ``keep`` seconds).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import platform
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import profiles, resident, textlayer
from .errors import ConvertError, OutputError, UsageError

FONTS_CONF = Path(__file__).resolve().parent / "fonts" / "fonts.conf"
SC_FONT_FAMILIES = ("Noto Serif CJK SC", "Noto Sans CJK SC", "Source Han Serif SC", "Source Han Sans SC")
LIBREOFFICE_PACKAGE = "libreoffice-writer-nogui"
FONT_PACKAGE = "fonts-noto-cjk"
_POLL_SECONDS = 0.05
MAX_DOCS_PER_CALL = 200
# How long a document may take before LibreOffice is asked whether it still works. Measured on
# 2 cores: LibreOffice starts in about 2 s and converts a one-page form (11 KB of DOCX) in about
# 0.1 s, a 22-page one (16 KB) in 1.5 s. The allowance is several times that, so that a busy
# machine is not taken for a hung LibreOffice; past it, LibreOffice still working is seen by its
# CPU time (a table grows dearer than its size: 75 pages, 26 KB, take 38 s).
STARTUP_SECONDS = 8.0
DOCUMENT_SECONDS = 2.0
SECONDS_PER_KB = 0.2
# LibreOffice that uses less CPU than this in PROBE_SECONDS has stopped working.
PROBE_SECONDS = 2.0
IDLE_CPU_SECONDS = 0.05

Outcome = Path | str  # the PDF, or why there is none
ProgressCallback = Callable[[int, int], None]


def font_environment() -> dict[str, str]:
    """The environment for LibreOffice and fc-*: our font aliases (宋体 → Noto Serif CJK SC)."""
    # TZ: LibreOffice writes the PDF date in local time, whose width depends on the zone
    # ("Z'" or "+08'00'"); in UTC it is the same on every machine (reportgen sets the value).
    return {**os.environ, "FONTCONFIG_FILE": str(FONTS_CONF), "SAL_USE_VCLPLUGIN": "svp", "TZ": "UTC"}


# LibreOffice spends about a sixth of its time converting these forms in glibc's malloc and free
# (many small, short-lived objects: items, strings, text portions). gperftools' tcmalloc
# (Debian's libtcmalloc-minimal4) takes 15-20 % off its CPU time, with about the same memory
# (benchmarks/README). It changes the order in which LibreOffice writes a document's fonts (their
# order in memory), which ``pdfpages.canonical`` undoes: the same PDF byte for byte either way.
ALLOCATOR_PACKAGE, ALLOCATOR_LIBRARY = "libtcmalloc-minimal4", "libtcmalloc_minimal.so.4"
ALLOCATOR_VARIABLE = "REPORTGEN_LIBREOFFICE_MALLOC"  # "system": LibreOffice keeps glibc's allocator


def office_environment(allocator: bool = True) -> dict[str, str]:
    """The environment LibreOffice is started with: the fonts', and a faster memory allocator
    when one is installed (``office_allocator``)."""
    environment = font_environment()
    library = office_allocator() if allocator else None
    if library is not None:
        preloaded = environment.get("LD_PRELOAD", "").split()
        if library not in preloaded:
            environment["LD_PRELOAD"] = " ".join([library, *preloaded])
    return environment


@functools.cache
def office_allocator() -> str | None:
    """The allocator library to preload into LibreOffice, by path; None when it is not wanted
    (``ALLOCATOR_VARIABLE`` is "system") or not installed (LibreOffice then runs as it is, only
    slower). UsageError for any other value than "tcmalloc" or "system", and for "tcmalloc"
    when it is not installed: a typo must not pass for a choice."""
    value = os.environ.get(ALLOCATOR_VARIABLE, "")
    wanted = value.strip().lower()
    if wanted not in ("", "tcmalloc", "system"):
        raise UsageError(f"环境变量 {ALLOCATOR_VARIABLE} 只能是 tcmalloc 或 system，不能是「{value}」")
    if wanted == "system":
        return None
    found = _installed_allocator()
    if found is None and wanted == "tcmalloc":
        raise UsageError(f"环境变量 {ALLOCATOR_VARIABLE} 要求 tcmalloc，但没有安装："
                         f"apt-get install {ALLOCATOR_PACKAGE}")
    return found


def _installed_allocator() -> str | None:
    if not sys.platform.startswith("linux"):  # LD_PRELOAD is the Linux loader's
        return None
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    for folder in (f"/usr/lib/{multiarch}", "/usr/lib64", "/usr/lib"):
        candidate = Path(folder, ALLOCATOR_LIBRARY)
        if candidate.is_file():
            return str(candidate)
    return None


def find_soffice(soffice: str) -> str:
    found = shutil.which(soffice)
    if found is None:
        raise ConvertError(
            f"找不到 LibreOffice（{soffice}），无法生成 PDF；Word 文件已生成。"
            f"请安装：apt-get install {LIBREOFFICE_PACKAGE}"
        )
    return found


def check_fonts() -> None:
    """Stop before converting when no Simplified-Chinese CJK font is installed."""
    from .glyphs import font_listing, has_simplified_chinese

    if not has_simplified_chinese(font_listing() or []):
        font_listing.cache_clear()  # asked again: one may have been installed since (the web page runs for days)
    if not has_simplified_chinese(font_listing() or []):
        raise ConvertError(
            f"没有安装简体中文字体，PDF 中的汉字会显示错误；Word 文件已生成。请安装：apt-get install {FONT_PACKAGE}"
        )


def _pdf_ok(path: Path) -> bool:
    """Whether LibreOffice finished writing ``path``: a PDF header and, at the very end, the
    end-of-file marker. Parsing it is left to the merge, which reads every PDF anyway."""
    try:
        with path.open("rb") as pdf:
            head = pdf.read(5)
            pdf.seek(max(0, pdf.seek(0, os.SEEK_END) - 1024))
            return head == b"%PDF-" and b"%%EOF" in pdf.read()
    except OSError:
        return False


def allowance(doc: Path, first: bool) -> float:
    """Seconds for LibreOffice to convert ``doc`` (and to start, for the ``first`` of a call)."""
    return (STARTUP_SECONDS if first else 0.0) + DOCUMENT_SECONDS + SECONDS_PER_KB * _size(doc) / 1024


def _allowance_at(docs: list[Path], index: int, starts: bool = True) -> float:
    """The allowance of ``docs[index]``, the first of a call with LibreOffice's start (when the
    call ``starts`` one); past the last document, the time LibreOffice takes to exit."""
    return allowance(docs[index], first=starts and index == 0) if index < len(docs) else DOCUMENT_SECONDS


def group_cpu_seconds(group: int) -> float | None:
    """CPU seconds used by the processes of a process group (and their waited-for children), from
    /proc; None where there is no /proc to read."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()  # after the command, which may hold spaces
        except OSError:
            continue  # ended meanwhile
        if len(fields) > 14 and int(fields[2]) == group:  # pgrp; then utime, stime, cutime, cstime
            total += sum(int(value) for value in fields[11:15]) / ticks
    return total


def group_peak_kb(group: int) -> int:
    """The largest resident size (VmHWM, kB) any process of a process group has reached."""
    peak = 0
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rpartition(b")")[2].split()
                if len(fields) < 3 or int(fields[2]) != group:
                    continue
                with open(f"/proc/{entry}/status", "rb") as status:
                    for line in status:
                        if line.startswith(b"VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError):
                continue
    return peak


class _Processes:
    """Every LibreOffice process group we started, so that all can be killed at once."""

    def __init__(self, measured: bool = False) -> None:
        self._lock = threading.Lock()
        self.measured = measured  # what LibreOffice kept running uses is read (from /proc) for stats()
        self._live: set[subprocess.Popen | _Handover] = set()
        self._groups: set[int] = set()  # LibreOffice left running by an earlier build, in use
        self.stopping = False
        self.server_cpu = 0.0  # of LibreOffice processes kept running
        self.server_peaks: dict[str, int] = {}

    def start(self, command: list[str]) -> subprocess.Popen:
        with self._lock:
            if self.stopping:
                raise ConvertError("转换已中止")
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=office_environment(), start_new_session=True,
            )
            self._live.add(process)
            return process

    def hand_over(self, pipe: str, arguments: list[str]) -> _Handover:
        """Documents handed to a running LibreOffice (``_Handover``); OSError if it does not take them."""
        with self._lock:
            if self.stopping:
                raise ConvertError("转换已中止")
            handover = _Handover(pipe, arguments)
            self._live.add(handover)
            return handover

    def adopt(self, group: int) -> None:
        """A LibreOffice left running by an earlier build: killed with the others on cancel."""
        with self._lock:
            self._groups.add(group)

    def disown(self, group: int) -> None:
        with self._lock:
            self._groups.discard(group)

    def release(self, process: subprocess.Popen) -> None:
        """Let ``process`` go on after this build (its pipes closed, not killed)."""
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                with contextlib.suppress(OSError):
                    stream.close()
        with self._lock:
            self._live.discard(process)

    def account(self, cpu: float, peak_kb: int, slot: str) -> None:
        """What a LibreOffice kept running used, read before it is stopped (its CPU time does
        not reach this process's children's); its largest size, by slot (at most one runs in
        each at a time)."""
        with self._lock:
            self.server_cpu += cpu
            self.server_peaks[slot] = max(self.server_peaks.get(slot, 0), peak_kb)

    def start_guarded(self, command: list[str]) -> subprocess.Popen:
        """A process that reads its standard input until it closes (``_GUARD``)."""
        with self._lock:
            if self.stopping:
                raise ConvertError("转换已中止")
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
                env=office_environment(), start_new_session=True,
            )
            self._live.add(process)
            return process

    def end(self, process: subprocess.Popen | _Handover) -> None:
        if isinstance(process, _Handover):
            process.close()  # LibreOffice goes on: what it does is its keeper's and the build's to end
        else:
            kill_group(process)
        with self._lock:
            self._live.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            self.stopping = True
            live, groups = list(self._live), list(self._groups)
        for process in live:
            self.end(process)
        for group in groups:
            _end_group(group)


def kill_group(process: subprocess.Popen) -> None:
    """Kill the process and everything it started (soffice.bin runs under a wrapper)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL does not fail
        process.wait(timeout=10)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream:
            with contextlib.suppress(OSError):
                stream.close()


class _Worker:
    """One LibreOffice at a time with a private profile; converts a batch, retries once.

    Each document's outcome is handed to ``deliver`` as soon as it is final, not when the batch
    ends, so that the caller can bundle a unit while LibreOffice converts the next one.
    """

    def __init__(self, soffice: str, timeout: float, filter_name: str, processes: _Processes,
                 deliver: Callable[[Path, Outcome], None], written: threading.Event) -> None:
        self.soffice, self.timeout, self.filter_name = soffice, timeout, filter_name
        self.processes, self.deliver, self.written = processes, deliver, written

    def run(self, batch: list[Path], retry: bool, office: _Office) -> None:
        failed: dict[Path, str] = {}
        remaining = list(batch)
        while remaining:
            if office.serve():
                # A running LibreOffice opens a document at once: it is handed those written so
                # far, in order, and the rest when they are.
                ready = self._written_prefix(remaining)
                if not ready:
                    doc = remaining.pop(0)
                    self.deliver(doc, f"LibreOffice 未能转换 {doc.name}：文件不存在")
                    continue
                part, remaining = ready, remaining[len(ready):]
            else:
                part, remaining = remaining, []  # started now: it reaches each in time
            failed.update(self._attempt(part, office, final=not retry))
        if not retry:
            return
        # A batch may be launched before its documents are written: retry only once they
        # all are, and not those that never will be (their rendering failed).
        self.written.wait()
        for doc in [doc for doc in failed if not doc.exists()]:
            self.deliver(doc, failed.pop(doc))
        if failed:
            self._attempt(list(failed), office, final=True)

    def _written_prefix(self, docs: list[Path]) -> list[Path]:
        """The documents at the start of ``docs`` that exist, once the first does; none if the
        first never will."""
        while True:
            prefix = list(itertools.takewhile(lambda doc: doc.exists(), docs))
            if prefix or self.written.is_set():
                return prefix
            time.sleep(_POLL_SECONDS / 5)

    def _attempt(self, batch: list[Path], office: _Office, final: bool) -> dict[Path, str]:
        """One LibreOffice call per run of documents with distinct names (usually the batch).
        Returns the documents that failed, with why; on the final attempt they are delivered."""
        failed: dict[Path, str] = {}
        for chunk in _distinct_names(batch):
            with tempfile.TemporaryDirectory(prefix="reportgen-pdf-") as out_dir:
                failed.update(self._convert(chunk, Path(out_dir), office))
        if final:
            for doc, why in failed.items():
                self.deliver(doc, why)
        return failed

    def _convert(self, docs: list[Path], out_dir: Path, office: _Office) -> dict[Path, str]:
        """Convert into ``out_dir`` (soffice takes one), moving each PDF beside its DOCX.

        LibreOffice converts in command-line order: a PDF is delivered as soon as it ends with
        its end-of-file marker, and a document before the latest PDF that has none has failed.
        What is left is settled when LibreOffice exits (or, handed to a running LibreOffice,
        when it answers that it is done).
        """
        for doc in docs:
            doc.with_suffix(".pdf").unlink(missing_ok=True)
        serving = office.serve()  # the call's documents go to the running LibreOffice
        office.handled += len(docs) if serving else 0
        arguments = ["--headless", "--invisible", "--nologo", "--nodefault", "--nolockcheck", "--norestore",
                     "--convert-to", self.filter_name, "--outdir", str(out_dir), *map(str, docs)]
        produced = [out_dir / f"{doc.stem}.pdf" for doc in docs]
        process: subprocess.Popen | _Handover | None = None
        if serving:
            with contextlib.suppress(OSError):  # not greeted: a second soffice finds the pipe itself
                process = self.processes.hand_over(office.pipe, arguments)
        if process is None:
            process = self.processes.start(
                [self.soffice, f"-env:UserInstallation={office.profile.folder.as_uri()}", *arguments])
        settled, newest = 0, -1  # docs[:settled] are dealt with; docs[newest] is the latest PDF seen
        failed: dict[Path, str] = {}
        starts = not serving  # the allowance of the first document includes LibreOffice's start
        watch = _Watch(office.group if serving else process.pid, self.timeout,
                       functools.partial(_allowance_at, docs, 0, starts))
        try:
            while process.poll() is None:
                _pause(process)
                latest = max((i for i in range(newest + 1, len(docs)) if produced[i].exists()), default=newest)
                if latest > newest:
                    newest = latest
                    watch.progress(functools.partial(_allowance_at, docs, newest + 1, starts))
                    settled = self._settle(docs, produced, settled, newest, failed)
                if settled == newest >= 0 and _pdf_ok(produced[newest]):  # finished: no need to wait
                    settled = self._settle(docs, produced, settled, newest + 1, failed)
                if watch.hung() or (serving and not office.running()):
                    break
            errors = b"" if watch.why or process.stderr is None else process.stderr.read()
        finally:
            self.processes.end(process)
        if watch.why or (serving and not office.running()):
            office.failed()  # hung or crashed: the next call starts a new LibreOffice, new profile
        if watch.why:
            reasons = {doc: watch.why.format(doc.name) for doc in docs}
        else:
            detail = errors.decode(errors="replace").strip().splitlines()[-1:] or [f"退出码 {process.returncode}"]
            reasons = {doc: f"LibreOffice 未能转换 {doc.name}：{detail[0]}" for doc in docs}
        self._settle(docs, produced, settled, len(docs), failed, reasons)
        if failed and not serving and newest < 0:
            office.failed()  # not one PDF: the profile may be what LibreOffice cannot start with
        return failed

    def _settle(self, docs: list[Path], produced: list[Path], start: int, end: int, failed: dict[Path, str],
                reasons: dict[Path, str] | None = None) -> int:
        """Deliver the finished PDFs of ``docs[start:end]``; note the others as failed."""
        for index in range(start, end):
            doc = docs[index]
            if _pdf_ok(produced[index]):
                self.deliver(doc, self._take(produced[index], doc.with_suffix(".pdf"), doc))
            else:
                failed[doc] = (reasons or {}).get(doc, f"LibreOffice 未能转换 {doc.name}")
        return end

    @staticmethod
    def _take(produced: Path, target: Path, doc: Path) -> Outcome:
        """LibreOffice's PDF moved beside its DOCX (another file system: a copy) and repaired; a
        full disk fails the document, not the worker (retrying would not help)."""
        try:
            pdf = Path(shutil.move(str(produced), str(target)))
            textlayer.repair(pdf, doc)
            return pdf
        except OSError as exc:
            why = f"无法写入 {target.name}：{exc.strerror or exc}"
        except OutputError as exc:  # the repaired PDF (its message names the file)
            why = str(exc)
        with contextlib.suppress(OSError):
            target.unlink(missing_ok=True)
        return why


# A LibreOffice started ahead of its documents runs under this keeper, in a process group of
# their own. Not kept (idle 0), the keeper ends the group when its input closes: when the build
# ends, and also when it is killed. Kept, it ends the group once no build has used LibreOffice
# for ``idle`` seconds (the stamp's age) and none holds the slot's lock (taken while ending, so
# that no build starts to use it meanwhile).
_KEEPER = r"""
import fcntl, os, select, signal, subprocess, sys, time
lock, stamp, idle, command = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
try:
    office = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.write(1, b"%d\n" % office.pid)
    os.close(1)
    listening = True
    while office.poll() is None:
        if listening and select.select([0], [], [], 2.0)[0]:
            if not os.read(0, 64):
                if not idle:
                    break
                listening = False
        elif not listening:
            time.sleep(2.0)
        if idle and time.time() - os.stat(stamp).st_mtime > idle:
            handle = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            break
finally:  # whatever ends the watch (its slot's files gone too) ends LibreOffice with it
    os.killpg(0, signal.SIGKILL)
"""
_GREETING = b"InternalIPC::SendArguments\0"  # what a running LibreOffice says to a second one
_PIPE_SECONDS = 2.0  # a started LibreOffice opens its pipe within tens of milliseconds
KEEP_SECONDS = 600.0  # how long a LibreOffice is kept running after a build, unused (0: not kept)
# A LibreOffice that keeps running grows (some MB with every document) and slows down (a unit's
# document takes a quarter longer after ten): it is started afresh after this many documents.
RECYCLE_DOCUMENTS = 20


def keep_seconds() -> float:
    """``KEEP_SECONDS``, or what ``REPORTGEN_KEEP_LIBREOFFICE`` says; UsageError for what is not
    0 to 86400 seconds. The command line checks its option (``--keep-libreoffice``, the same
    variable) itself; the web page's builds read the variable here."""
    try:
        return resident.seconds_from("REPORTGEN_KEEP_LIBREOFFICE", KEEP_SECONDS, "生成结束后不保持 LibreOffice 运行")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Office:
    """A worker's LibreOffice: its profile and, for a real LibreOffice, a process started ahead
    of its documents (``launch``) and kept running for the build, or (``keep`` seconds) beyond
    it, for the next build to use at once.

    Documents are handed to the running LibreOffice the way LibreOffice itself does it: a second
    ``soffice --convert-to`` with the same profile passes its arguments over the first one's
    pipe (``/tmp/OSL_PIPE_<uid>_SingleOfficeIPC_<hash of the profile's URL>``) and waits until
    they are converted; ``_Handover`` says the same words there without starting one. A second
    one started before the first has its pipe would start a LibreOffice of its own on the same
    profile, so nothing is handed over until the running one has greeted on its pipe; until
    then, or if it never does, documents are converted by a LibreOffice of their own, as
    without a running one.

    A LibreOffice left running by an earlier build is used only if it was started the same way
    (``identity``: the program, reportgen's version and font configuration, the installed fonts)
    and still greets; otherwise it is ended and a new one started.
    """

    def __init__(self, soffice: str, profile: profiles.Profile, processes: _Processes, serving: bool,
                 keep: float = 0.0) -> None:
        self.soffice, self.profile, self.processes = soffice, profile, processes
        self.serving = serving  # a real LibreOffice: one can be kept running
        self.keep = keep if serving and profile.kept else 0.0
        self.keeper: subprocess.Popen | None = None  # the keeper, when this build started it
        self.group: int | None = None  # the keeper's process group: it and LibreOffice
        self.pid: int | None = None  # LibreOffice's own process
        self.ready = False
        self.launched = 0.0
        self.cpu_before = 0.0  # the group's CPU seconds when this build took it over
        self.handled = 0  # documents it has converted since it started

    @property
    def pipe(self) -> str:
        url = self.profile.folder.as_uri()
        digest = hashlib.md5(url.encode("utf-16-le"), usedforsecurity=False).digest()
        return f"/tmp/OSL_PIPE_{os.getuid()}_SingleOfficeIPC_{''.join(format(byte, 'x') for byte in digest)}"

    def launch(self) -> None:
        """Take over the LibreOffice an earlier build left running, or start one now with an
        empty text document open (a LibreOffice that has none exits after the first documents
        handed to it)."""
        if not self.serving or self.group is not None:
            return
        left = self.profile.office()
        if left is not None:
            handled = left.get("handled", RECYCLE_DOCUMENTS)
            if (self.keep and left.get("identity") == _identity(self.soffice) and _alive(left.get("pid", 0))
                    and isinstance(handled, int) and handled < RECYCLE_DOCUMENTS):
                self.group, self.pid, self.handled = left["group"], left["pid"], handled
                self.launched, self.ready = time.monotonic() - STARTUP_SECONDS, False
                self.cpu_before = (group_cpu_seconds(self.group) or 0.0) if self.processes.measured else 0.0
                self.processes.adopt(self.group)
                return
            _end_group(left.get("group"))
            self.profile.forget_office()
        keep = self.profile.folder / "reportgen-open.txt"
        try:
            for stale in self.profile.folder.glob(".~lock.*#"):  # left by a killed LibreOffice
                stale.unlink()
            keep.write_bytes(b"")
        except OSError:
            self.serving = False
            return
        command = [
            self.soffice, f"-env:UserInstallation={self.profile.folder.as_uri()}", "--headless", "--invisible",
            "--nologo", "--nodefault", "--nolockcheck", "--norestore", str(keep),
        ]
        self.keeper = self.processes.start_guarded([
            sys.executable, "-I", "-S", "-c", _KEEPER, str(self.profile.lock), str(self.profile.stamp),
            str(self.keep), *command,
        ])
        self.group, self.launched, self.ready, self.cpu_before = self.keeper.pid, time.monotonic(), False, 0.0
        self.handled = 0
        line = self.keeper.stdout.readline() if self.keeper.stdout else b""
        self.pid = int(line) if line.strip().isdigit() else None
        if self.profile.kept:  # known at once: a build killed meanwhile leaves it to the next to end
            self.profile.keep_office(self._record())

    def _record(self) -> dict:
        return {"group": self.group, "pid": self.pid, "identity": _identity(self.soffice), "handled": self.handled}

    def running(self) -> bool:
        return self.group is not None and self.pid is not None and _alive(self.pid)

    def serve(self) -> bool:
        """Whether documents can now be handed to the running LibreOffice: launched if it is not
        running, waited for until it greets. False: convert them with a LibreOffice of their own."""
        if not self.serving:
            return False
        if not self.running() or self.handled >= RECYCLE_DOCUMENTS:
            self.stop()
            self.launch()
        self._wait_ready()
        if not self.ready and self.profile.warm and not self.running():
            self.profile.broken()  # it would not start with this profile: once more with a new one
            self.stop()
            self.launch()
            self._wait_ready()
        if not self.ready:
            self.serving = False  # this LibreOffice cannot be handed documents: do without
            self.stop()
        return self.ready

    def _wait_ready(self) -> None:
        while self.running() and not self.ready:
            self.ready = _greets(self.pipe)
            if self.ready:
                break
            waited = time.monotonic() - self.launched
            if waited > _PIPE_SECONDS and not os.path.exists(self.pipe):
                break  # not where this LibreOffice keeps its pipe: no handing over
            if waited > STARTUP_SECONDS and _idle(self.group):  # type: ignore[arg-type]
                break  # started but does not answer
            time.sleep(_POLL_SECONDS / 2)

    def failed(self) -> None:
        """It hung or crashed: stopped, and started again with a new profile when needed."""
        self.stop()
        self.profile.broken()

    def _account(self) -> None:
        # Each read walks all of /proc (milliseconds, more on a busy machine): only when measured.
        if self.group is not None and self.processes.measured:
            cpu = group_cpu_seconds(self.group)
            self.processes.account(max(0.0, (cpu or 0.0) - self.cpu_before), group_peak_kb(self.group),
                                   str(self.profile.folder))

    def stop(self) -> None:
        if self.group is not None:
            self._account()
            if self.keeper is not None:
                self.processes.end(self.keeper)
            else:
                _end_group(self.group)
                self.processes.disown(self.group)
            self.profile.forget_office()
        self.keeper, self.group, self.pid, self.ready = None, None, None, False

    def close(self) -> None:
        """Done with it: a LibreOffice to keep is left running for the next build (its keeper
        ends it once unused for ``keep`` seconds), any other stopped. One that has converted
        ``RECYCLE_DOCUMENTS`` documents is replaced now by a new one, kept in its place, which
        starts while nothing waits for it: the next build would wait about a second."""
        if self.keep and self.ready and self.running() and self.profile.good:
            if self.handled >= RECYCLE_DOCUMENTS:
                self.stop()
                self.launch()
            else:
                self._account()
            if self.group is not None:
                self.profile.keep_office(self._record())
                if self.keeper is not None:
                    self.processes.release(self.keeper)
                else:
                    self.processes.disown(self.group)
        else:
            self.stop()
        self.profile.release()


def _end_group(group: object) -> None:
    if isinstance(group, int) and group > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


@functools.cache
def _identity(soffice: str) -> str:
    """What a LibreOffice left running must have been started with to be used again."""
    from . import __version__
    from .glyphs import fonts_key

    try:
        program = os.stat(os.path.realpath(soffice)).st_mtime_ns
        configuration = FONTS_CONF.read_bytes()
    except OSError:
        return ""
    environment = {key: value for key, value in office_environment().items()
                   if key in ("FONTCONFIG_FILE", "SAL_USE_VCLPLUGIN", "TZ", "LANG", "LC_ALL", "LANGUAGE", "LD_PRELOAD")}
    parts = [__version__, os.path.realpath(soffice), str(program), json.dumps(environment, sort_keys=True),
             fonts_key() or "no fonts"]
    return hashlib.sha256("\0".join(parts).encode(errors="surrogateescape") + configuration).hexdigest()


def _greets(pipe: str) -> bool:
    """Whether a LibreOffice answers on ``pipe`` (it does once it can take documents)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(_POLL_SECONDS * 4)
        try:
            connection.connect(pipe)
            return _greeted(connection)
        except OSError:  # no pipe yet, a stale one, or no greeting yet
            return False


def _greeted(connection: socket.socket) -> bool:
    """Whether the first words on a new connection to LibreOffice's pipe are its greeting."""
    received = b""
    while len(received) < len(_GREETING):
        data = connection.recv(len(_GREETING) - len(received))
        if not data:
            return False
        received += data
    return received == _GREETING


_ARGUMENTS = b"InternalIPC::Arguments"  # how a second soffice begins its command line
_PROCESSED = b"InternalIPC::ProcessingDone\0"  # the running one's answer once it has converted them


class _Handover:
    """Documents handed to a running LibreOffice over its pipe: a second ``soffice`` with the
    same profile would pass its arguments there and wait for the answer; this does the same
    without starting one (0.04 CPU seconds and 40 ms of waiting a call, benchmarks/README).
    Polled like the process it stands for: None while LibreOffice converts, 0 once it answers
    that it is done, 1 if the connection ends before. OSError if LibreOffice does not greet."""

    stderr = None

    def __init__(self, pipe: str, arguments: list[str]) -> None:
        self.returncode: int | None = None
        self._answer = b""
        self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._connection.settimeout(_POLL_SECONDS * 4)
            self._connection.connect(pipe)
            if not _greeted(self._connection):
                raise OSError("no greeting on LibreOffice's pipe")
            self._connection.sendall(ipc_arguments(arguments, _working_folder_url()))
            self._connection.setblocking(False)
        except OSError:
            self._connection.close()
            raise

    def poll(self) -> int | None:
        while self.returncode is None:
            try:
                data = self._connection.recv(len(_PROCESSED))
            except BlockingIOError:
                return None
            except OSError:  # closed: the build is stopping
                data = b""
            self._answer += data
            if not data or self._answer.endswith(b"\0"):
                self.returncode = 0 if self._answer == _PROCESSED else 1
        return self.returncode

    def wait_for_answer(self, seconds: float) -> None:
        """Return when LibreOffice has said something (that it is done), at most after ``seconds``."""
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile: the build is stopping
            select.select([self._connection], [], [], seconds)

    def close(self) -> None:
        self._connection.close()


def _pause(process: subprocess.Popen | _Handover) -> None:
    """Between two looks at a LibreOffice call. A call handed over ends with LibreOffice's
    answer, awaited rather than slept through: the last PDF of a one-document call (a rebuild's
    chunk) is taken as soon as it is done, not up to ``_POLL_SECONDS`` later."""
    if isinstance(process, _Handover):
        process.wait_for_answer(_POLL_SECONDS)
    else:
        time.sleep(_POLL_SECONDS)


def ipc_arguments(arguments: list[str], folder_url: str | None) -> bytes:
    """A command line as a second ``soffice`` passes it to the running one (LibreOffice's
    desktop/source/app/officeipcthread.cxx): its working folder's URL after "1" (or "0" for
    none), then each argument after a comma, with backslash, comma and NUL escaped; NUL ends it."""
    def escaped(text: str) -> bytes:
        return (text.encode(errors="surrogateescape")
                .replace(b"\\", b"\\\\").replace(b",", b"\\,").replace(b"\0", b"\\0"))

    folder = b"0" if folder_url is None else b"1" + escaped(folder_url)
    return b"".join([_ARGUMENTS, folder, *(b"," + escaped(argument) for argument in arguments), b"\0"])


def _working_folder_url() -> str | None:
    try:
        return Path.cwd().as_uri()
    except OSError:  # removed meanwhile: none, as a second soffice would say
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _idle(group: int) -> bool:
    """Whether a process group uses no CPU over a short look."""
    before = group_cpu_seconds(group)
    time.sleep(PROBE_SECONDS / 4)
    after = group_cpu_seconds(group)
    return before is not None and after is not None and after - before < IDLE_CPU_SECONDS / 4


class _Watch:
    """Whether one LibreOffice call has hung: no new PDF within the allowance of the document it
    is on and no CPU used, or no new PDF for ``timeout`` seconds however busy it is. ``why`` is
    then the message, with ``{}`` for the document's name.

    The allowance is asked again when it has run out, since the document may have been written
    only after LibreOffice was launched (its size unknown until then).
    """

    def __init__(self, group: int, timeout: float, allowed: Callable[[], float]) -> None:
        self.group, self.timeout = group, timeout
        self.why = ""
        self.progress(allowed)

    def progress(self, allowed: Callable[[], float]) -> None:
        """A new PDF (or the start); ``allowed`` tells how long the next document may take."""
        self.last_progress, self.allowed = time.monotonic(), allowed
        self.deadline = self.last_progress + allowed()
        self.probe: float | None = None  # CPU seconds when the current observation began

    def hung(self) -> bool:
        now = time.monotonic()
        if now - self.last_progress > self.timeout:
            self.why = f"LibreOffice 转换超时（{self.timeout:.0f} 秒内没有完成）：{{}}"
            return True
        if now < self.deadline:
            return False
        seconds = self.allowed()
        if self.probe is None and now < self.last_progress + seconds:
            self.deadline = self.last_progress + seconds
            return False
        cpu = group_cpu_seconds(self.group)
        if cpu is None:  # cannot tell: only the timeout applies
            self.deadline = float("inf")
            return False
        if self.probe is not None and cpu - self.probe < IDLE_CPU_SECONDS:
            self.why = f"LibreOffice 无响应（超过 {seconds:.0f} 秒没有新的 PDF，也不再占用 CPU）：{{}}"
            return True
        self.probe, self.deadline = cpu, now + PROBE_SECONDS
        return False


def _distinct_names(batch: list[Path]) -> list[list[Path]]:
    """Split a batch so that no two documents of a part share a file name (one --outdir), and no
    part is longer than LibreOffice reads: 7.4 silently skips the documents after about the
    247th on one command line and still exits 0."""
    parts: list[list[Path]] = []
    for doc in batch:
        part = next((p for p in parts if len(p) < MAX_DOCS_PER_CALL and all(d.stem != doc.stem for d in p)), None)
        if part is None:
            parts.append([doc])
        else:
            part.append(doc)
    return parts


# Tagged PDF: the structure (headings, tables, rows, cells) in reading order, for screen readers.
TAGGED = True


def _filter(pdfa: bool) -> str:
    """LibreOffice's PDF export filter with its options (JSON, as LibreOffice 7.4 reads them)."""
    # Bookmarks as named destinations: where each part of a merged document begins (pdfpages).
    options = {"ExportBookmarksToPDFDestination": {"type": "boolean", "value": "true"}}
    if TAGGED:
        options["UseTaggedPDF"] = {"type": "boolean", "value": "true"}
    if pdfa:
        options["SelectPdfVersion"] = {"type": "long", "value": "2"}  # PDF/A-2b
    return "pdf:writer_pdf_Export:" + json.dumps(options, separators=(",", ":"))


def balance(weights: list[int], workers: int) -> list[list[int]]:
    """Indices of ``weights`` spread over at most ``workers`` lists of near-equal total weight
    (heaviest first onto the lightest list); each list keeps ascending order."""
    loads: list[tuple[int, int, list[int]]] = [(0, index, []) for index in range(max(1, workers))]
    for position in sorted(range(len(weights)), key=lambda i: -weights[i]):
        weight, index, members = min(loads)
        loads[index] = (weight + weights[position], index, [*members, position])
    return [sorted(members) for _, _, members in loads if members]


class Pool:
    """Headless LibreOffice workers: one for each batch submitted, at most ``workers`` at once,
    each with its own profile (kept warm between builds: ``profiles``); ``cancel`` kills them all
    from any thread.

    ``launch`` starts the workers' LibreOffice ahead of their documents (a real LibreOffice is
    then kept running for the pool's life and handed each batch); without it each batch starts
    one. A batch may be submitted before its documents are written, as long as each appears
    whole (renamed into place); ``inputs_written`` says when all are, and retries wait for that.
    ``on_result`` is called (from a worker thread) as soon as a document's outcome is final:
    the PDF beside the DOCX, or why there is none.
    """

    def __init__(self, soffice: str = "soffice", timeout: float = 120.0, pdfa: bool = False,
                 on_result: Callable[[Path, Outcome], None] | None = None,
                 progress: ProgressCallback | None = None, workers: int | None = None, keep: float = 0.0,
                 measured: bool = False) -> None:
        self.soffice, self.timeout, self.pdfa = soffice, timeout, pdfa
        self.on_result, self.progress = on_result, progress
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.keep = keep  # seconds a LibreOffice started ahead is kept running after the pool
        self.outcomes: dict[Path, Outcome] = {}
        self.expected = 0
        self._processes, self._lock = _Processes(measured), threading.Lock()
        self._threads: list[threading.Thread] = []
        self._worker: _Worker | None = None
        self._errors: list[BaseException] = []
        self._written = threading.Event()
        self._offices: list[_Office] = []
        self._idle: queue.Queue[_Office] = queue.Queue()

    def start(self) -> None:
        """Check that LibreOffice and a Simplified-Chinese font are there (``ConvertError``)."""
        if self._worker is not None:
            return
        executable = find_soffice(self.soffice)
        check_fonts()
        self._worker = _Worker(
            executable, self.timeout, _filter(self.pdfa), self._processes, self._deliver, self._written
        )

    def launch(self, count: int | None = None) -> None:
        """Start ``count`` (up to ``workers``) LibreOffice processes now, before their documents."""
        self.start()
        assert self._worker is not None
        wanted = min(self.workers, count or self.workers) - len(self._offices)
        if wanted <= 0:
            return
        serving = _is_libreoffice(self._worker.soffice)
        for profile in profiles.acquire(self._worker.soffice, wanted, cached=serving):
            office = _Office(self._worker.soffice, profile, self._processes, serving, self.keep)
            self._offices.append(office)
            office.launch()
            self._idle.put(office)

    def _office(self) -> _Office:
        """A worker's LibreOffice that is not busy, waiting for one if all ``workers`` are."""
        with self._lock:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            if len(self._offices) < self.workers:
                assert self._worker is not None
                serving = _is_libreoffice(self._worker.soffice)
                profile = profiles.acquire(self._worker.soffice, 1, cached=serving)[0]
                office = _Office(self._worker.soffice, profile, self._processes, serving, self.keep)
                self._offices.append(office)
                return office
        return self._idle.get()

    def submit(self, batch: list[Path], retry: bool = True) -> None:
        """Convert ``batch`` in order in a worker's LibreOffice, as soon as one is free; what
        fails is tried once more in a fresh process unless ``retry`` is false."""
        if not batch:
            return
        self.start()
        assert self._worker is not None
        self.expected += len(batch)
        thread = threading.Thread(target=self._run, args=(self._worker, batch, retry), name="soffice", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, worker: _Worker, batch: list[Path], retry: bool) -> None:
        office = None
        try:
            office = self._office()
            worker.run(batch, retry, office)
        except BaseException as exc:
            # Once cancelled, the build is stopping and wants no more results (the killed
            # processes' pipes are closed under the thread); otherwise it is a bug of ours,
            # raised again by wait() rather than lost in a thread.
            if not self._processes.stopping:
                self._errors.append(exc)
        finally:
            if office is not None:
                self._idle.put(office)

    def stats(self) -> dict[str, float]:
        """CPU seconds and the largest resident size (MB) of the LibreOffice processes kept
        running, read only when the pool is ``measured`` (those started per batch count as
        this process's children)."""
        return {"libreoffice_cpu_s": round(self._processes.server_cpu, 3),
                "libreoffice_peak_mb": round(sum(self._processes.server_peaks.values()) / 1024, 1)}

    def inputs_written(self) -> None:
        """Every submitted document is now on disk (or never will be): retries may start."""
        self._written.set()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def wait(self) -> dict[Path, Outcome]:
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        return self.outcomes

    def cancel(self) -> None:
        self._processes.kill_all()
        self._written.set()  # a worker waiting to retry must not wait forever

    def _deliver(self, doc: Path, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[doc] = outcome
            done = len(self.outcomes)
        if self.on_result:
            self.on_result(doc, outcome)
        if self.progress:
            self.progress(done, self.expected)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._written.set()
        if exc_info[0] is not None:
            self.cancel()  # on Ctrl-C too: no LibreOffice outlives the build
        for thread in self._threads:
            thread.join()
        for office in self._offices:
            if exc_info[0] is not None:
                office.profile.good = False  # stopped in the middle of its work
            office.close()
        self.cancel()


def _is_libreoffice(soffice: str) -> bool:
    """Whether ``soffice`` is LibreOffice's launcher (``soffice.bin`` beside it), which can hand
    documents to a LibreOffice already running; anything else gets them on its command line."""
    return (Path(os.path.realpath(soffice)).parent / "soffice.bin").is_file()


def convert_many(
    documents: list[Path], *, soffice: str = "soffice", jobs: int | None = None, timeout: float = 120.0,
    pdfa: bool = False, progress: ProgressCallback | None = None,
) -> dict[Path, Outcome]:
    """Convert each DOCX to a PDF beside it; returns the PDF or an error message per document.

    The documents are spread over as many workers as cores by size (bytes follow pages better
    than counts do). Raises ``ConvertError`` only when nothing can be converted (no LibreOffice,
    no CJK font).
    """
    if not documents:
        return {}
    workers = min(jobs or os.cpu_count() or 1, len(documents))
    with Pool(soffice, timeout, pdfa, progress=progress, workers=workers) as pool:
        pool.start()
        for batch in balance([_size(doc) for doc in documents], workers):
            pool.submit([documents[index] for index in batch])
        pool.inputs_written()
    return pool.outcomes


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def convert_to_pdf(docx_paths: list[Path], out_dir: Path, soffice: str = "soffice", timeout: float = 120) -> list[Path]:
    """Convert into ``out_dir``; raises ``ConvertError`` naming the first document that failed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pdfs = []
    with tempfile.TemporaryDirectory(prefix="reportgen-convert-") as scratch:
        copies = []
        for index, docx in enumerate(docx_paths):
            copy = Path(scratch) / f"{index:05d}" / docx.name
            copy.parent.mkdir()
            shutil.copyfile(docx, copy)
            copies.append(copy)
        outcomes = convert_many(copies, soffice=soffice, timeout=timeout)
        for docx, copy in zip(docx_paths, copies, strict=True):
            outcome = outcomes[copy]
            if not isinstance(outcome, Path):
                raise ConvertError(outcome)
            target = out_dir / f"{docx.stem}.pdf"
            shutil.move(str(outcome), str(target))
            pdfs.append(target)
    return pdfs
