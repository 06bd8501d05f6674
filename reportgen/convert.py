"""DOCX → PDF with real LibreOffice: a pool of headless workers, batches, timeouts, retries.

Starting LibreOffice costs far more than converting a one-page form, so documents are handed
out in batches: one ``soffice --convert-to pdf`` call per worker, as many workers as cores,
each with its own profile folder (two processes sharing a profile would hand their work to
each other). A worker that produces no PDF for ``timeout`` seconds (its start-up included) is killed with its
whole process group; its unfinished documents are retried once in a fresh process. No
LibreOffice process outlives the call, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from .errors import ConvertError

FONTS_CONF = Path(__file__).resolve().parent / "fonts" / "fonts.conf"
SC_FONT_FAMILIES = ("Noto Serif CJK SC", "Noto Sans CJK SC", "Source Han Serif SC", "Source Han Sans SC")
LIBREOFFICE_PACKAGE = "libreoffice-writer-nogui"
FONT_PACKAGE = "fonts-noto-cjk"
_POLL_SECONDS = 0.05
MAX_DOCS_PER_CALL = 200

Outcome = Path | str  # the PDF, or why there is none
ProgressCallback = Callable[[int, int], None]


def font_environment() -> dict[str, str]:
    """The environment for LibreOffice and fc-*: our font aliases (宋体 → Noto Serif CJK SC)."""
    return {**os.environ, "FONTCONFIG_FILE": str(FONTS_CONF), "SAL_USE_VCLPLUGIN": "svp"}


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
    try:
        listing = subprocess.run(
            ["fc-list", ":lang=zh-cn", "family"], capture_output=True, text=True,
            env=font_environment(), timeout=30, check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        listing = ""
    if not any(family in listing for family in SC_FONT_FAMILIES):
        raise ConvertError(
            f"没有安装简体中文字体，PDF 中的汉字会显示错误；Word 文件已生成。请安装：apt-get install {FONT_PACKAGE}"
        )


def _pdf_ok(path: Path) -> bool:
    try:
        return path.stat().st_size > 0 and len(PdfReader(path).pages) > 0
    except (OSError, PyPdfError, ValueError):
        return False


class _Processes:
    """Every LibreOffice process group we started, so that all can be killed at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, command: list[str]) -> subprocess.Popen:
        with self._lock:
            if self.stopping:
                raise ConvertError("转换已中止")
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=font_environment(), start_new_session=True,
            )
            self._live.add(process)
            return process

    def end(self, process: subprocess.Popen) -> None:
        kill_group(process)
        with self._lock:
            self._live.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            self.stopping = True
            live = list(self._live)
        for process in live:
            self.end(process)


def kill_group(process: subprocess.Popen) -> None:
    """Kill the process and everything it started (soffice.bin runs under a wrapper)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL does not fail
        process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


class _Worker:
    """One LibreOffice at a time with a private profile; converts a batch, retries once."""

    def __init__(self, soffice: str, timeout: float, filter_name: str, processes: _Processes, done: Callable) -> None:
        self.soffice, self.timeout, self.filter_name = soffice, timeout, filter_name
        self.processes, self.done = processes, done

    def run(self, batch: list[Path]) -> dict[Path, Outcome]:
        with tempfile.TemporaryDirectory(prefix="reportgen-lo-") as profile:
            outcomes = self._attempt(batch, Path(profile))
            retry = [doc for doc, outcome in outcomes.items() if not isinstance(outcome, Path)]
            if retry:
                outcomes.update(self._attempt(retry, Path(profile)))
        return outcomes

    def _attempt(self, batch: list[Path], profile: Path) -> dict[Path, Outcome]:
        """One LibreOffice call per run of documents with distinct names (usually the batch)."""
        outcomes: dict[Path, Outcome] = {}
        for chunk in _distinct_names(batch):
            with tempfile.TemporaryDirectory(prefix="reportgen-pdf-") as out_dir:
                outcomes.update(self._convert(chunk, Path(out_dir), profile))
        return outcomes

    def _convert(self, docs: list[Path], out_dir: Path, profile: Path) -> dict[Path, Outcome]:
        """Convert into ``out_dir`` (soffice takes one), then move each PDF beside its DOCX."""
        for doc in docs:
            doc.with_suffix(".pdf").unlink(missing_ok=True)
        command = [
            self.soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--invisible",
            "--nologo", "--nodefault", "--nolockcheck", "--norestore",
            "--convert-to", self.filter_name, "--outdir", str(out_dir), *map(str, docs),
        ]
        produced = {doc: out_dir / f"{doc.stem}.pdf" for doc in docs}
        process = self.processes.start(command)
        finished: set[Path] = set()
        last_progress, hung = time.monotonic(), False
        try:
            while process.poll() is None:
                time.sleep(_POLL_SECONDS)
                ready = {d for d in docs if d not in finished and produced[d].exists()}
                if ready:
                    finished |= ready
                    last_progress = time.monotonic()
                    self.done(len(ready))
                if time.monotonic() - last_progress > self.timeout:
                    hung = True
                    break
            errors = b"" if hung or process.stderr is None else process.stderr.read()
        finally:
            self.processes.end(process)
        outcomes: dict[Path, Outcome] = {}
        for doc in docs:
            if _pdf_ok(produced[doc]):
                if doc not in finished:
                    self.done(1)
                outcomes[doc] = Path(shutil.move(str(produced[doc]), str(doc.with_suffix(".pdf"))))
            elif hung:
                outcomes[doc] = f"LibreOffice 转换超时（{self.timeout:.0f} 秒内没有完成）：{doc.name}"
            else:
                detail = errors.decode(errors="replace").strip().splitlines()[-1:] or [f"退出码 {process.returncode}"]
                outcomes[doc] = f"LibreOffice 未能转换 {doc.name}：{detail[0]}"
        return outcomes


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


def _filter(pdfa: bool) -> str:
    if not pdfa:
        return "pdf:writer_pdf_Export"
    return 'pdf:writer_pdf_Export:{"SelectPdfVersion":{"type":"long","value":"2"}}'


def convert_many(
    documents: list[Path], *, soffice: str = "soffice", jobs: int | None = None, timeout: float = 120.0,
    pdfa: bool = False, progress: ProgressCallback | None = None,
) -> dict[Path, Outcome]:
    """Convert each DOCX to a PDF beside it; returns the PDF or an error message per document.

    Raises ``ConvertError`` only when nothing can be converted (no LibreOffice, no CJK font).
    """
    if not documents:
        return {}
    executable = find_soffice(soffice)
    check_fonts()
    workers = max(1, min(jobs or os.cpu_count() or 1, len(documents)))
    batches = [documents[index::workers] for index in range(workers)]
    processes, lock, count = _Processes(), threading.Lock(), [0]

    def done(number: int) -> None:
        with lock:
            count[0] += number
            if progress:
                progress(min(count[0], len(documents)), len(documents))

    worker = _Worker(executable, timeout, _filter(pdfa), processes, done)
    outcomes: dict[Path, Outcome] = {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soffice")
    try:
        for result in pool.map(worker.run, batches):
            outcomes.update(result)
    finally:
        processes.kill_all()  # on Ctrl-C too: no LibreOffice outlives the build
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


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
