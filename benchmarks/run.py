"""Timings: ``python -m benchmarks.run [--sizes 100 500] [--repeat R] [--json PATH]``.

For each size N, on a synthetic data tree (``benchmarks.synth``):

(a) ``reportgen build DATA -o OUT`` from cold (fresh OUT), as a subprocess, wall clock; its peak
    memory is the VmHWM of that python process alone (polled from /proc; LibreOffice excluded);
    the end of each stage (its progress line) is timestamped for a breakdown;
(b) the same command again: a no-op rebuild;
(c) the naive way: load + render every DOCX in-process (timed once), then one
    ``soffice --headless --convert-to pdf --outdir X doc.docx`` per document, sequentially, all
    sharing ONE profile folder created fresh per run. Above ``--naive-max`` documents only the
    first ones are converted and the rest is extrapolated (first call + mean of the others × (N − 1));
(d) LibreOffice's floor: the same DOCX split into ``os.cpu_count()`` lists, converted by that many
    concurrent ``soffice --convert-to`` calls with reportgen's export filter (tagged PDF), each
    with its own fresh profile;
(d') the warm floor: the same calls with profiles that exist already;
(a0) a cold build with ``--keep-libreoffice 0``: LibreOffice started by the build, none kept by an
    earlier one ((a) is measured after a small build that leaves LibreOffice running);
(e) one project changed (its name), rebuilt: for each region's first project in turn;
(e0) the same with ``REPORTGEN_KEEP_REPORTGEN=0``: no kept reportgen (``reportgen.resident``) runs
    the command, which starts Python and imports reportgen itself (every other build here is
    run by the kept reportgen the tool starts first, as a clerk's earlier command leaves one);
(e') the same changes, each project's unit rebuilt from the local web page (``benchmarks.page``).

All LibreOffice calls get the environment reportgen starts LibreOffice with
(``convert.office_environment()``: its fonts, and the faster allocator when installed), so the
only difference between (a), (c) and (d) is how the work is handed to LibreOffice.
(d'0) is (d'') with LibreOffice's own allocator: LibreOffice as installed, for comparison.

``--compare-tagged`` also runs (a) and (d) with untagged PDF export, alternating with the tagged
runs, and prints both side by side with their ratio.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.synth import synthesize
from reportgen import convert, render, resident, view
from reportgen.convert import office_allocator, office_environment
from reportgen.profiles import note_version
from reportgen.validate import check_paths

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.05
# LibreOffice 7.4 silently ignores the documents after about the 247th on one command line
# (exit status 0); the floor therefore hands each worker its list in calls of at most this many.
MAX_DOCS_PER_CALL = 200
SOFFICE_TIMEOUT = 600.0

GOAL_NAIVE_RATIO = 8.0  # c/a ≥ 8
GOAL_WARM_FLOOR_RATIO = 0.8  # a/d' ≤ 0.8 at N = 100 and N = 500
GOAL_WARM_FLOOR_SIZES = (100, 500)
GOAL_NOOP_SECONDS = 0.5  # at N = 100
GOAL_NOOP_SIZE = 100
GOAL_CHANGE_SECONDS = 1.5  # one changed project, at N = 100
GOAL_CHANGE_SIZE = 100
GOAL_PEAK_MB = 300.0  # at N = 500
GOAL_PEAK_SIZE = 500


# --- measurements ---------------------------------------------------------------------------


@dataclass
class BuildRun:
    """One ``reportgen build``: wall clock, peak memory, stage ends."""

    seconds: float
    peak_mb: float  # VmHWM of the reportgen process (LibreOffice not included)
    stages: dict[str, float] = field(default_factory=dict)  # stage → seconds since start
    summary: str = ""
    cpu_self: float = 0.0  # CPU seconds of the reportgen process (all its threads)
    cpu_children: float = 0.0  # CPU seconds of LibreOffice: what it waited for, and what it kept running
    pdf_mb: float = 0.0  # all PDFs written, in MB
    office_peak_mb: float = 0.0  # LibreOffice kept running: the sum of each one's VmHWM
    rebuilt: int = 0  # projects whose PDF was made again


def _status_kb(pid: int, path: str, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/{path}", encoding="ascii") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _watch(pid: int, done: threading.Event, peak: list[int]) -> None:
    """peak[0]: the VmHWM of ``pid`` (kB). The high-water mark only grows, so polling it often
    only matters near the end; one read of /proc/<pid>/status costs some microseconds."""
    while not done.is_set():
        value = _status_kb(pid, "status", "VmHWM:")
        if value is not None:
            peak[0] = max(peak[0], value)
        time.sleep(POLL_SECONDS)


def _read_stages(stream: IO[bytes], started: float, stages: dict[str, float], lines: list[str]) -> None:
    """Progress lines look like ``生成 Word：50/50``, printed when a stage ends."""
    for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        match = re.match(r"^(\S.*?)：(\d+)/(\d+)$", line)
        if match:
            stages[match.group(1)] = time.monotonic() - started


# reportgen with untagged PDF export, for --compare-tagged (the build's own code otherwise).
_UNTAGGED = "import reportgen.convert as c; c.TAGGED = False; from reportgen.cli import run; run()"


def run_build(data: Path, out: Path, tagged: bool = True, keep: bool = True, kept_reportgen: bool = True) -> BuildRun:
    """Measuring must not take CPU from what is measured (the floor (d) is not watched at all):
    this process blocks in waitid until the build exits, a thread reads its VmHWM now and then,
    and the CPU split is read once, from the exited process before it is reaped. A build run by
    a kept reportgen (``reportgen.resident``) reports its own CPU, its children's and its peak
    memory through ``REPORTGEN_STATS``; they are added to the command's."""
    program = ["-m", "reportgen"] if tagged else ["-c", _UNTAGGED]
    command = [sys.executable, *program, "build", str(data), "-o", str(out)]
    if not keep:  # LibreOffice started by the build, none used that an earlier build kept running
        command += ["--keep-libreoffice", "0"]
    stats = out.parent / f".stats-{out.name}.json"
    stats.unlink(missing_ok=True)
    started = time.monotonic()
    env = {**os.environ, "REPORTGEN_STATS": str(stats)}
    if not kept_reportgen:
        env[resident.KEEP_VARIABLE] = "0"
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak, stages, errors, output, done = [0], {}, [], [], threading.Event()
    threads = [
        threading.Thread(target=_watch, args=(process.pid, done, peak)),
        threading.Thread(target=_read_stages, args=(process.stderr, started, stages, errors)),
        threading.Thread(target=lambda: output.extend(process.stdout.read().decode().splitlines())),
    ]
    for thread in threads:
        thread.start()
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    seconds = time.monotonic() - started
    own = _cpu_seconds(process.pid) or 0.0
    # wait4 rather than wait: its usage counts the process and the LibreOffice it waited for.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for thread in threads:
        thread.join()
    if process.returncode != 0:
        tail = "\n".join([*output, *errors][-20:])
        raise SystemExit(f"reportgen build failed (exit {process.returncode}):\n{tail}")
    total = usage.ru_utime + usage.ru_stime
    pdf_mb = sum(path.stat().st_size for path in out.rglob("*.pdf")) / 1e6
    summary = output[-1] if output else ""
    try:  # the LibreOffice the build kept running: not its children's CPU time, read by the build itself
        kept = json.loads(stats.read_text(encoding="utf-8"))
        stats.unlink()
    except (OSError, ValueError):
        kept = {}
    rebuilt = re.search(r"重新生成 (\d+)", summary)
    office = max(0.0, total - own)
    peak_mb = peak[0] / 1024
    if kept.get("pid", process.pid) != process.pid:  # run by a kept reportgen: its fork's figures
        own += kept["cpu_s"]
        office += kept["children_cpu_s"]
        peak_mb = max(peak_mb, kept["peak_mb"])
    return BuildRun(seconds, peak_mb, stages, summary, own, office + kept.get("libreoffice_cpu_s", 0.0), pdf_mb,
                    kept.get("libreoffice_peak_mb", 0.0), int(rebuilt[1]) if rebuilt else 0)


def render_all(data: Path, folder: Path) -> tuple[list[Path], float]:
    """Load, validate and render every project's DOCX in-process, as a clerk's script would."""
    started = time.monotonic()
    documents = []
    for checked in check_paths([data]):
        if not checked.ok:
            continue
        assert checked.project and checked.region and checked.result
        target = folder / f"{len(documents):05d}.docx"
        context = view.context(checked.project, checked.region, checked.result)
        render.render_docx(checked.region.template, context, target)
        documents.append(target)
    return documents, time.monotonic() - started


def _soffice(soffice: str, profile: Path, outdir: Path, documents: list[Path], export: str = "pdf") -> list[str]:
    return [
        soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless",
        "--convert-to", export, "--outdir", str(outdir), *map(str, documents),
    ]


def _export(tagged: bool) -> str:
    """reportgen's PDF export filter, tagged or not."""
    saved = convert.TAGGED
    try:
        convert.TAGGED = tagged
        return convert._filter(pdfa=False)
    finally:
        convert.TAGGED = saved


def _missing_pdfs(documents: list[Path], outdir: Path) -> list[str]:
    """Documents without a PDF: reported beside the timing, which then flatters LibreOffice."""
    missing = [doc.name for doc in documents if not (outdir / f"{doc.stem}.pdf").is_file()]
    if missing:
        print(f"warning: LibreOffice produced no PDF for {len(missing)} documents, e.g. {missing[0]}",
              file=sys.stderr)
    return missing


@dataclass
class NaiveRun:
    measured: int
    seconds_measured: float
    first_call: float
    mean_call: float  # of the calls after the first
    estimate: float  # for all documents; equals seconds_measured when all were measured
    missing: int = 0


def run_naive(documents: list[Path], scratch: Path, soffice: str, limit: int) -> NaiveRun:
    """One soffice call per document, sequentially, one shared profile created fresh."""
    profile, outdir = Path(tempfile.mkdtemp(dir=scratch, prefix="profile-naive-")), scratch / "naive-pdf"
    outdir.mkdir(exist_ok=True)
    subset, calls = documents[:limit], []
    for doc in subset:
        started = time.monotonic()
        subprocess.run(
            _soffice(soffice, profile, outdir, [doc]), env=office_environment(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=SOFFICE_TIMEOUT, check=True,
        )
        calls.append(time.monotonic() - started)
    missing = _missing_pdfs(subset, outdir)
    shutil.rmtree(profile, ignore_errors=True)
    shutil.rmtree(outdir, ignore_errors=True)
    rest = statistics.fmean(calls[1:]) if len(calls) > 1 else calls[0]
    estimate = sum(calls) if len(subset) == len(documents) else calls[0] + rest * (len(documents) - 1)
    return NaiveRun(len(subset), sum(calls), calls[0], rest, estimate, len(missing))


@dataclass
class FloorRun:
    seconds: float
    calls: int
    missing: int = 0
    cpu: float = 0.0  # CPU seconds of the LibreOffice processes


def _worker(soffice: str, profile: Path, outdir: Path, documents: list[Path], export: str,
            allocator: bool = True) -> None:
    """One core's share: its documents in as few soffice calls as LibreOffice allows."""
    for first in range(0, len(documents), MAX_DOCS_PER_CALL):
        chunk = documents[first:first + MAX_DOCS_PER_CALL]
        subprocess.run(
            _soffice(soffice, profile, outdir, chunk, export), env=office_environment(allocator),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=SOFFICE_TIMEOUT * 10, check=False,
        )


def run_floor(documents: list[Path], scratch: Path, soffice: str, workers: int, tagged: bool = True,
              warm: list[Path] | None = None, allocator: bool = True) -> FloorRun:
    """``workers`` concurrent soffice processes, one list of documents and one fresh profile each,
    exporting as reportgen does (``tagged``: with or without the structure tree). ``warm``:
    profiles that exist already, used instead of fresh ones and kept (the warm floor, d').
    ``allocator``: LibreOffice started with the allocator reportgen gives it (else its own)."""
    batches = [documents[index::workers] for index in range(workers) if documents[index::workers]]
    outdirs = [scratch / f"floor-pdf-{index}" for index in range(len(batches))]
    profiles = warm[: len(batches)] if warm else [
        Path(tempfile.mkdtemp(dir=scratch, prefix="profile-floor-")) for _ in batches]
    threads = [
        threading.Thread(target=_worker, args=(soffice, profile, outdir, batch, _export(tagged), allocator))
        for batch, profile, outdir in zip(batches, profiles, outdirs, strict=True)
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    missing = sum(len(_missing_pdfs(batch, outdir)) for batch, outdir in zip(batches, outdirs, strict=True))
    for folder in [*outdirs, *([] if warm else profiles)]:
        shutil.rmtree(folder, ignore_errors=True)
    calls = sum(-(-len(batch) // MAX_DOCS_PER_CALL) for batch in batches)
    return FloorRun(seconds, calls, missing, cpu)


def warm_profiles(documents: list[Path], scratch: Path, soffice: str, workers: int,
                  noted: bool = False) -> list[Path]:
    """One profile per worker, made by converting a document with it once (for d'). ``noted``:
    each notes LibreOffice's version first, as reportgen's profiles do (for d'')."""
    profiles = [Path(tempfile.mkdtemp(dir=scratch, prefix="profile-warm-")) for _ in range(workers)]
    for profile in profiles if noted else []:
        note_version(profile, soffice)
    outdir = scratch / "warm-pdf"
    threads = [threading.Thread(target=_worker, args=(soffice, profile, outdir, documents[:1], _export(True)))
               for profile in profiles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shutil.rmtree(outdir, ignore_errors=True)
    return profiles


@dataclass
class ChangeRun:
    """One project changed, then ``reportgen build`` again (e)."""

    region: str
    seconds: float
    rebuilt: int


# A change that every project file has: its 项目名称 line, to which a word is added, then taken away.
_NAME_LINE = re.compile(r"^(项目名称:[^\n]*?)(（复核）)?$", re.M)


def changed_name(text: str) -> str:
    changed = _NAME_LINE.sub(lambda match: match[1] + "（复核）", text, count=1)
    if changed == text:
        raise ValueError("no 项目名称 line to change")
    return changed


def change_one(data: Path, out: Path, regions: list[tuple[str, Path]], kept_reportgen: bool = True) -> list[ChangeRun]:
    """For each region, one project's name changed (and its unit's 汇总表 with it), rebuilt,
    then changed back and rebuilt (not timed), so the tree is as before. ``kept_reportgen``
    False: the timed command runs everything itself, Python's start and the imports included (e0)."""
    runs = []
    for region, project in regions:
        original = project.read_text(encoding="utf-8")
        project.write_text(changed_name(original), encoding="utf-8")
        try:
            build = run_build(data, out, kept_reportgen=kept_reportgen)
        finally:
            project.write_text(original, encoding="utf-8")
        runs.append(ChangeRun(region, build.seconds, build.rebuilt))
        run_build(data, out)
    return runs


def change_on_page(data: Path, out: Path, regions: list[tuple[str, Path]]) -> list[ChangeRun]:
    """(e'): the same changes, each unit rebuilt from the local web page (``benchmarks.page``:
    one process for all, as the page's server is)."""
    command = [sys.executable, "-m", "benchmarks.page", str(data), str(out), *(str(path) for _, path in regions)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=SOFFICE_TIMEOUT)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks.page failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    runs = []
    for (region, _), line in zip(regions, lines, strict=True):
        rebuilt = re.search(r"重新生成 (\d+)", line["summary"])
        runs.append(ChangeRun(region, line["seconds"], int(rebuilt[1]) if rebuilt else 0))
    return runs


def keep_reportgen_running(seconds: float = 60) -> None:
    """A kept reportgen for the builds measured, as a clerk's earlier command leaves one
    (``reportgen.resident``): started by a small command, waited for until it answers."""
    probe = [sys.executable, "-c", "from reportgen.resident import serving; print(serving() or '')"]
    subprocess.run([sys.executable, "-m", "reportgen", "regions"], cwd=ROOT, capture_output=True, check=True)
    deadline = time.monotonic() + seconds
    while not subprocess.run(probe, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip():
        if time.monotonic() > deadline:
            raise SystemExit("no kept reportgen answered (REPORTGEN_KEEP_REPORTGEN=0?)")
        time.sleep(0.2)


def one_project_per_region(data: Path) -> list[tuple[str, Path]]:
    """The first project file of each region (by path), for (e)."""
    found: dict[str, Path] = {}
    for checked in check_paths([data]):
        if checked.ok and checked.region is not None and checked.region.id not in found:
            found[checked.region.id] = checked.source.path
    return sorted(found.items())


# --- one size -------------------------------------------------------------------------------


@dataclass
class SizeResult:
    n: int
    repeats: int
    units: int
    render_seconds: float = 0.0
    cold: list[BuildRun] = field(default_factory=list)
    cold_fresh: list[BuildRun] = field(default_factory=list)  # (a0): LibreOffice started by the build
    noop: list[BuildRun] = field(default_factory=list)
    naive: list[NaiveRun] = field(default_factory=list)
    floor: list[FloorRun] = field(default_factory=list)
    warm_floor: list[FloorRun] = field(default_factory=list)
    noted_floor: list[FloorRun] = field(default_factory=list)
    stock_floor: list[FloorRun] = field(default_factory=list)  # (d'0): (d'') with LibreOffice's own allocator
    change: list[ChangeRun] = field(default_factory=list)
    page_change: list[ChangeRun] = field(default_factory=list)  # (e'): rebuilt from the local web page
    change_alone: list[ChangeRun] = field(default_factory=list)  # (e0): the command without a kept reportgen
    cold_untagged: list[BuildRun] = field(default_factory=list)  # --compare-tagged
    floor_untagged: list[FloorRun] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def a(self) -> float:
        return self.median([run.seconds for run in self.cold])

    @property
    def a0(self) -> float:
        return self.median([run.seconds for run in self.cold_fresh])

    @property
    def b(self) -> float:
        return self.median([run.seconds for run in self.noop])

    @property
    def c_convert(self) -> float:
        return self.median([run.estimate for run in self.naive])

    @property
    def c(self) -> float:
        return self.render_seconds + self.c_convert

    @property
    def d(self) -> float:
        return self.median([run.seconds for run in self.floor])

    @property
    def d_warm(self) -> float:
        return self.median([run.seconds for run in self.warm_floor])

    @property
    def d_noted(self) -> float:
        return self.median([run.seconds for run in self.noted_floor])

    @property
    def d_stock(self) -> float:
        return self.median([run.seconds for run in self.stock_floor])

    @property
    def e(self) -> float:
        return self.median([run.seconds for run in self.change])

    @property
    def e_page(self) -> float:
        return self.median([run.seconds for run in self.page_change])

    @property
    def e_alone(self) -> float:
        return self.median([run.seconds for run in self.change_alone])

    @property
    def peak_mb(self) -> float:
        return max(run.peak_mb for run in self.cold)

    @property
    def office_peak_mb(self) -> float:
        return max(run.office_peak_mb for run in self.cold)

    def summary(self) -> dict:
        return {
            "n": self.n, "repeats": self.repeats, "units": self.units,
            "a_cold_build_s": self.a, "a0_cold_build_fresh_libreoffice_s": self.a0, "b_noop_build_s": self.b,
            "c_naive_s": self.c, "c_render_s": self.render_seconds, "c_convert_s": self.c_convert,
            "c_extrapolated": any(run.measured < self.n for run in self.naive),
            "d_floor_s": self.d, "d_warm_floor_s": self.d_warm, "c_over_a": self.c / self.a,
            "a_over_d": self.a / self.d, "a_over_d_warm": self.a / self.d_warm, "e_one_change_s": self.e,
            "e_page_one_change_s": self.e_page, "e_alone_one_change_s": self.e_alone,
            "d_noted_floor_s": self.d_noted, "a_over_d_noted": self.a / self.d_noted,
            "d_stock_floor_s": self.d_stock, "a_over_d_stock": self.a / self.d_stock,
            "libreoffice_allocator": office_allocator(),
            "peak_rss_mb": self.peak_mb, "libreoffice_peak_mb": self.office_peak_mb,
            "a_cpu_reportgen_s": self.median([run.cpu_self for run in self.cold]),
            "a_cpu_libreoffice_s": self.median([run.cpu_children for run in self.cold]),
            "d_cpu_libreoffice_s": self.median([run.cpu for run in self.floor]),
            "runs": {
                "cold": [asdict(run) for run in self.cold], "noop": [asdict(run) for run in self.noop],
                "cold_fresh": [asdict(run) for run in self.cold_fresh],
                "naive": [asdict(run) for run in self.naive], "floor": [asdict(run) for run in self.floor],
                "warm_floor": [asdict(run) for run in self.warm_floor],
                "noted_floor": [asdict(run) for run in self.noted_floor],
                "stock_floor": [asdict(run) for run in self.stock_floor],
                "change": [asdict(run) for run in self.change],
                "page_change": [asdict(run) for run in self.page_change],
                "change_alone": [asdict(run) for run in self.change_alone],
                "cold_untagged": [asdict(run) for run in self.cold_untagged],
                "floor_untagged": [asdict(run) for run in self.floor_untagged],
            },
        }


Log = Callable[[str], None]


def measure(n: int, repeats: int, scratch: Path, soffice: str, naive_max: int, log: Log,
            compare_tagged: bool = False) -> SizeResult:
    data, docs = scratch / "data", scratch / "docx"
    files = synthesize(n, data)
    result = SizeResult(n, repeats, len({path.parent for path in files}))
    docs.mkdir()
    documents, result.render_seconds = render_all(data, docs)
    log(f"N={n}: {len(files)} projects in {result.units} units; "
        f"rendered {len(documents)} DOCX in {result.render_seconds:.1f} s")
    workers = os.cpu_count() or 1
    warm = warm_profiles(documents, scratch, soffice, workers)
    noted = warm_profiles(documents, scratch, soffice, workers, noted=True)
    regions = one_project_per_region(data)
    keep_reportgen_running()
    for repeat in range(1, repeats + 1):
        if compare_tagged and repeat % 2 == 1:  # untagged first in odd runs, last in even ones
            _untagged(result, data, documents, scratch / f"out-untagged-{repeat}", soffice, workers, repeat, log)
        fresh = run_build(data, scratch / f"out-fresh-{repeat}", keep=False)
        result.cold_fresh.append(fresh)
        shutil.rmtree(scratch / f"out-fresh-{repeat}", ignore_errors=True)
        log(f"  run {repeat}: (a0) cold build, LibreOffice started by it {fresh.seconds:.1f} s")
        run_build(regions[0][1].parent, scratch / "warm-up")  # leaves LibreOffice running, as a clerk's last build
        shutil.rmtree(scratch / "warm-up", ignore_errors=True)
        out = scratch / f"out-{repeat}"
        cold = run_build(data, out)
        result.cold.append(cold)
        log(f"  run {repeat}: (a) cold build {cold.seconds:.1f} s, "
            f"peak {cold.peak_mb:.0f} MB")
        noop = run_build(data, out)
        result.noop.append(noop)
        log(f"  run {repeat}: (b) no-op build {noop.seconds:.2f} s — {noop.summary}")
        changes = change_one(data, out, regions)
        result.change += changes
        log(f"  run {repeat}: (e) one project changed: "
            + ", ".join(f"{run.region} {run.seconds:.2f} s ({run.rebuilt} rebuilt)" for run in changes))
        alone = change_one(data, out, regions, kept_reportgen=False)
        result.change_alone += alone
        log(f"  run {repeat}: (e0) the same, no kept reportgen: "
            + ", ".join(f"{run.region} {run.seconds:.2f} s ({run.rebuilt} rebuilt)" for run in alone))
        on_page = change_on_page(data, out, regions)
        result.page_change += on_page
        log(f"  run {repeat}: (e') the same, rebuilt from the web page: "
            + ", ".join(f"{run.region} {run.seconds:.2f} s ({run.rebuilt} rebuilt)" for run in on_page))
        shutil.rmtree(out, ignore_errors=True)
        result.naive.append(run_naive(documents, scratch, soffice, naive_max))
        naive = result.naive[-1]
        log(f"  run {repeat}: (c) naive soffice × {naive.measured}: {naive.seconds_measured:.1f} s "
            f"→ {naive.estimate:.1f} s for {n}")
        floor = run_floor(documents, scratch, soffice, workers)
        result.floor.append(floor)
        log(f"  run {repeat}: (d) floor, {workers} soffice, {floor.calls} calls: {floor.seconds:.1f} s")
        warm_floor = run_floor(documents, scratch, soffice, workers, warm=warm)
        result.warm_floor.append(warm_floor)
        log(f"  run {repeat}: (d') warm floor: {warm_floor.seconds:.1f} s")
        noted_floor = run_floor(documents, scratch, soffice, workers, warm=noted)
        result.noted_floor.append(noted_floor)
        log(f"  run {repeat}: (d'') warm floor, LibreOffice's version noted: {noted_floor.seconds:.1f} s")
        if office_allocator() is not None:
            stock_floor = run_floor(documents, scratch, soffice, workers, warm=noted, allocator=False)
            result.stock_floor.append(stock_floor)
            log(f"  run {repeat}: (d'0) the same, LibreOffice's own allocator: {stock_floor.seconds:.1f} s")
        if compare_tagged and repeat % 2 == 0:
            _untagged(result, data, documents, scratch / f"out-untagged-{repeat}", soffice, workers, repeat, log)
    for profile in [*warm, *noted]:
        shutil.rmtree(profile, ignore_errors=True)
    return result


def _untagged(result: SizeResult, data: Path, documents: list[Path], out: Path, soffice: str, workers: int,
              repeat: int, log: Log) -> None:
    """(a) and (d) once more, with untagged PDF export."""
    cold = run_build(data, out, tagged=False)
    result.cold_untagged.append(cold)
    shutil.rmtree(out, ignore_errors=True)
    floor = run_floor(documents, out.parent, soffice, workers, tagged=False)
    result.floor_untagged.append(floor)
    log(f"  run {repeat}: untagged (a) {cold.seconds:.1f} s, (d) {floor.seconds:.1f} s")


# --- report ---------------------------------------------------------------------------------


def _runs(values: list[float], digits: int = 1) -> str:
    return " / ".join(f"{value:.{digits}f}" for value in values)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _by_region(runs: list[ChangeRun]) -> str:
    regions = sorted({run.region for run in runs})
    return "; ".join(
        f"{region} {_runs([r.seconds for r in runs if r.region == region], 2)} "
        f"({next(r.rebuilt for r in runs if r.region == region)} rebuilt)"
        for region in regions)


def table(result: SizeResult) -> str:
    n, workers = result.n, os.cpu_count() or 1
    c_over_a, a_over_d, a_over_warm = result.c / result.a, result.a / result.d, result.a / result.d_warm
    naive = result.naive[0]
    extrapolated = naive.measured < n
    how = f"extrapolated from {naive.measured} of {n} docs" if extrapolated else f"all {n} docs measured"
    stages = "; ".join(f"{name} ends {_runs([run.stages.get(name, float('nan')) for run in result.cold])} s"
                       for name in result.cold[0].stages)
    by_region = _by_region(result.change)

    def goal(sizes: tuple[int, ...] | int, ok: bool, text: str) -> str:
        applies = n in sizes if isinstance(sizes, tuple) else n == sizes
        return f"{text}: " + (_verdict(ok) if applies else "n/a at this N")

    a0_over_warm = result.a0 / result.d_warm
    rows = [
        ("(a) reportgen build, cold", f"{result.a:8.1f} s", _runs([r.seconds for r in result.cold]),
         "LibreOffice kept running by an earlier build"),
        ("(a0) cold, LibreOffice started by it", f"{result.a0:8.1f} s", _runs([r.seconds for r in result.cold_fresh]),
         "--keep-libreoffice 0, none running before"),
        ("(b) reportgen build, no-op", f"{result.b:8.2f} s", _runs([r.seconds for r in result.noop], 2),
         goal(GOAL_NOOP_SIZE, result.b <= GOAL_NOOP_SECONDS, f"≤ {GOAL_NOOP_SECONDS:g} s at N={GOAL_NOOP_SIZE}")),
        ("(c) naive, total = c1 + c2", f"{result.c:8.1f} s", "", "extrapolated" if extrapolated else ""),
        ("    c1 load + render DOCX (once)", f"{result.render_seconds:8.1f} s", "", ""),
        ("    c2 soffice per document", f"{result.c_convert:8.1f} s",
         _runs([r.estimate for r in result.naive]), how),
        (f"(d) floor: {workers} soffice in parallel", f"{result.d:8.1f} s",
         _runs([run.seconds for run in result.floor]), f"{result.floor[0].calls} soffice calls in all, fresh profiles"),
        ("(d') warm floor: profiles exist", f"{result.d_warm:8.1f} s",
         _runs([run.seconds for run in result.warm_floor]), "the same calls"),
        ("(d'') warm floor, version noted", f"{result.d_noted:8.1f} s",
         _runs([run.seconds for run in result.noted_floor]), "the same calls, profiles as reportgen's (no self-tests)"),
        ("(d'0) (d''), LibreOffice's own malloc", f"{result.d_stock:8.1f} s",
         _runs([run.seconds for run in result.stock_floor]), "LibreOffice as installed (no tcmalloc)"),
        ("(e) one project changed, rebuilt", f"{result.e:8.2f} s", _runs([r.seconds for r in result.change], 2),
         goal(GOAL_CHANGE_SIZE, result.e <= GOAL_CHANGE_SECONDS,
              f"≤ {GOAL_CHANGE_SECONDS:g} s at N={GOAL_CHANGE_SIZE}") + " (median of all regions)"),
        ("(e0) the same, no kept reportgen", f"{result.e_alone:8.2f} s",
         _runs([r.seconds for r in result.change_alone], 2), "REPORTGEN_KEEP_REPORTGEN=0: Python's start and imports"),
        ("(e') the same from the web page", f"{result.e_page:8.2f} s",
         _runs([r.seconds for r in result.page_change], 2),
         goal(GOAL_CHANGE_SIZE, result.e_page <= GOAL_CHANGE_SECONDS,
              f"≤ {GOAL_CHANGE_SECONDS:g} s at N={GOAL_CHANGE_SIZE}") + " (its unit rebuilt by reportgen serve)"),
        ("c/a", f"{c_over_a:8.2f}", "", f"≥ {GOAL_NAIVE_RATIO:g}: {_verdict(c_over_a >= GOAL_NAIVE_RATIO)}"),
        ("a/d", f"{a_over_d:8.2f}", "", "against the floor with fresh profiles"),
        ("a/d'", f"{a_over_warm:8.2f}", "", goal(GOAL_WARM_FLOOR_SIZES, a_over_warm <= GOAL_WARM_FLOOR_RATIO,
                                                 f"≤ {GOAL_WARM_FLOOR_RATIO:g} at N=100 and N=500")),
        ("a0/d'", f"{a0_over_warm:8.2f}", "", "LibreOffice started by the build"),
        ("a/d''", f"{result.a / result.d_noted:8.2f}", "", "against the floor without LibreOffice's self-tests"),
        ("a/d'0", f"{result.a / result.d_stock:8.2f}", "", "against LibreOffice as installed"),
        ("(a) peak memory of reportgen (VmHWM)", f"{result.peak_mb:8.0f} MB",
         _runs([r.peak_mb for r in result.cold], 0),
         goal(GOAL_PEAK_SIZE, result.peak_mb <= GOAL_PEAK_MB, f"≤ {GOAL_PEAK_MB:g} MB at N={GOAL_PEAK_SIZE}")),
        ("    LibreOffice beside it", f"{result.office_peak_mb:8.0f} MB",
         _runs([r.office_peak_mb for r in result.cold], 0), "each worker's largest LibreOffice (VmHWM), summed"),
    ]
    title = f"N = {n} projects, {result.units} units; {result.repeats} run(s), medians; {workers} CPUs"
    lines = [title, f"{'':38}{'median':>11}  {'runs':<22}goal / note"]
    lines += [f"{label:38}{value:>11}  {runs:<22}{'  ' if len(runs) >= 22 else ''}{goal}"
              for label, value, runs, goal in rows]
    if extrapolated:
        lines.append(
            f"  c2 measured {naive.measured} calls ({naive.seconds_measured:.1f} s; "
            f"first {naive.first_call:.1f} s, then {naive.mean_call:.2f} s each) "
            f"and extrapolated: first + mean × ({n} − 1)"
        )
    lines.append(f"  (a) stages: {stages}")
    lines.append(f"  (e) by region: {by_region}")
    lines.append(f"  (e0) by region: {_by_region(result.change_alone)}")
    lines.append(f"  (e') by region: {_by_region(result.page_change)}")
    own = result.median([run.cpu_self for run in result.cold])
    office = result.median([run.cpu_children for run in result.cold])
    floor = result.median([run.cpu for run in result.floor])
    warm_floor = result.median([run.cpu for run in result.warm_floor])
    noted_floor = result.median([run.cpu for run in result.noted_floor])
    stock_floor = result.median([run.cpu for run in result.stock_floor])
    lines.append(
        f"  CPU seconds: (a) reportgen {own:.1f} + LibreOffice {office:.1f}; (d) LibreOffice {floor:.1f}; "
        f"(d') {warm_floor:.1f}; (d'') {noted_floor:.1f}; (d'0) {stock_floor:.1f}. "
        f"With every core busy, (a) takes at least ({own:.1f} + {office:.1f}) / {workers} = "
        f"{(own + office) / workers:.1f} s"
    )
    if result.cold_untagged:
        lines.append(tagged_table(result))
    missing = [run.missing for run in result.naive] + [run.missing for run in result.floor]
    missing += [run.missing for run in result.warm_floor] + [run.missing for run in result.noted_floor]
    missing += [run.missing for run in result.stock_floor]
    missing += [run.missing for run in result.floor_untagged]
    if any(missing):
        lines.append(f"  WARNING: PDFs missing in (c)/(d) runs: {missing}; those timings are too low")
    return "\n".join(lines)


def tagged_table(result: SizeResult) -> str:
    """Tagged against untagged PDF export, medians side by side (--compare-tagged)."""
    rows = [
        ("(a) cold build", [r.seconds for r in result.cold_untagged], [r.seconds for r in result.cold], "s"),
        ("(d) floor", [r.seconds for r in result.floor_untagged], [r.seconds for r in result.floor], "s"),
        ("(a) CPU of reportgen", [r.cpu_self for r in result.cold_untagged], [r.cpu_self for r in result.cold], "s"),
        ("(a) CPU of LibreOffice", [r.cpu_children for r in result.cold_untagged],
         [r.cpu_children for r in result.cold], "s"),
        ("(a) all PDFs", [r.pdf_mb for r in result.cold_untagged], [r.pdf_mb for r in result.cold], "MB"),
    ]
    lines = [f"  tagged vs untagged PDF export{'':9}{'untagged':>10}{'tagged':>10}{'ratio':>8}  runs untagged | tagged"]
    for label, plain, tagged, unit in rows:
        before, after = result.median(plain), result.median(tagged)
        lines.append(f"    {label:34}{before:8.2f} {unit:<2}{after:7.2f} {unit:<2}{after / before:7.2f}  "
                     f"{_runs(plain, 2)} | {_runs(tagged, 2)}")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def _default_repeats(n: int) -> int:
    return 3 if n <= 100 else 1


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="Time reportgen build against LibreOffice."
    )
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=[100, 500], help="project counts (default: 100 500)")
    add("--repeat", type=int, default=None, help="runs per size (default: 3 up to N=100, else 1)")
    add("--naive-max", type=int, default=100,
        help="convert at most this many documents the naive way, extrapolate the rest (default 100)")
    add("--soffice", default="soffice", help="LibreOffice program (default: soffice)")
    add("--json", type=Path, default=None, help="also write the results as JSON here")
    add("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    add("--keep", action="store_true", help="keep the scratch folder")
    add("--compare-tagged", action="store_true",
        help="also run (a) and (d) with untagged PDF export and compare (medians side by side)")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.sizes) or (args.repeat is not None and args.repeat < 1) or args.naive_max < 2:
        parser.error("sizes and --repeat must be ≥ 1, --naive-max ≥ 2")
    if shutil.which(args.soffice) is None:
        parser.error(f"LibreOffice not found: {args.soffice}")
    return args


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    # reportgen as installed: its modules byte-compiled (pip does it; `make setup` too), so that
    # no build timed here compiles them first (where Python is told not to write bytecode).
    compileall.compile_dir(ROOT / "reportgen", quiet=1)
    root = Path(tempfile.mkdtemp(prefix="reportgen-bench-", dir=args.workdir))
    results = []
    try:
        for n in args.sizes:
            scratch = root / f"n{n}"
            scratch.mkdir()
            repeats = args.repeat or _default_repeats(n)
            results.append(measure(n, repeats, scratch, args.soffice, args.naive_max, _log, args.compare_tagged))
            print(table(results[-1]) + "\n", flush=True)
    finally:
        if args.keep:
            _log(f"scratch kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        machine = {
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        }
        document = {"machine": machine, "results": [result.summary() for result in results]}
        args.json.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
        _log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
