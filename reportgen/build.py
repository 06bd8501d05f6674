"""The pipeline in one function: load → validate → score → render → convert → bundle.

Outputs go to ``<out>/<年度>/<单位>/``. Every file is produced in a staging folder or under a
temporary name and renamed into place, so a failure leaves earlier outputs intact and nothing
half-written. A project whose inputs have not changed since the last build is neither
re-rendered nor re-converted; a bundle is re-merged only when a member changed.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import gc
import hashlib
import itertools
import json
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, bundle, convert, view
from .bundle import SummaryRow
from .errors import ConvertError, OutputError, Problem, ReportgenError, display_path
from .regions import Region
from .score import column_total
from .validate import Checked, check_paths
from .values import format_decimal, round_half_up

STATE_FOLDER = ".reportgen"
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Options:
    force: bool = False
    jobs: int | None = None
    soffice: str = "soffice"
    timeout: float = 120.0
    pdfa: bool = False


@dataclass
class Job:
    """One project to build: where its files go and what its outputs depend on."""

    checked: Checked
    folder: Path
    stem: str
    fingerprint: str
    when: datetime.datetime

    @property
    def docx(self) -> Path:
        return self.folder / f"{self.stem}.docx"

    @property
    def pdf(self) -> Path:
        return self.folder / f"{self.stem}.pdf"

    @property
    def outputs(self) -> list[Path]:
        return [self.docx, self.pdf]

    @property
    def inputs(self) -> list[Path]:
        source = self.checked.source
        region = self.checked.region
        assert region is not None
        return [*source.unit_files, source.path, *region.files()]  # every file of the region counts


@dataclass
class Report:
    """What a build did, for the final summary line and the exit code."""

    projects: int = 0
    rebuilt: int = 0
    skipped: int = 0
    warnings: int = 0
    failures: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bundles: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        return (
            f"项目 {self.projects} 个：重新生成 {self.rebuilt}，未变化跳过 {self.skipped}，"
            f"警告 {self.warnings}，失败 {len(self.failures)}；"
            f"报送包 {len(self.bundles)} 个；用时 {self.seconds:.1f} 秒"
        )


# --- planning -------------------------------------------------------------------------------


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()


def _when(checked: Checked) -> datetime.datetime:
    """The date printed into PDFs and zips: SOURCE_DATE_EPOCH, else the form's own date."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return datetime.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), datetime.UTC)
    project = checked.project
    assert project is not None
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"):
        try:
            date = datetime.datetime.strptime(project.signoff.date or "", fmt)
            return date.replace(hour=12, tzinfo=datetime.UTC)
        except ValueError:
            continue
    return datetime.datetime(project.year, 12, 31, 12, tzinfo=datetime.UTC)


def unit_of(checked: Checked) -> str:
    project = checked.project
    assert project is not None
    return project.implementing_unit or project.primary_unit or checked.source.path.parent.name


def plan(results: list[Checked], out: Path, options: Options) -> list[Job]:
    """Where each valid project's files go; names are safe and distinct within a bundle."""
    taken: dict[Path, set[str]] = {}
    jobs = []
    for checked in results:
        project = checked.project
        assert project is not None
        folder = out / str(project.year) / bundle.safe_filename(unit_of(checked), set())
        stem = bundle.safe_filename(project.name, taken.setdefault(folder, set()))
        job = Job(checked, folder, stem, "", _when(checked))
        contents = [path.read_bytes() for path in job.inputs]
        job.fingerprint = _digest(__version__, str(options.pdfa), job.when.isoformat(), *contents)
        jobs.append(job)
    return jobs


# --- state: what the last build produced ----------------------------------------------------


class State:
    """``<out>/.reportgen/state.json``: fingerprints of what was built, to skip unchanged work."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE_FOLDER / "state.json"
        try:
            self.entries: dict[str, dict] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def fresh(self, key: str, fingerprint: str, outputs: list[Path]) -> bool:
        entry = self.entries.get(key)
        if not entry or entry.get("fingerprint") != fingerprint:
            return False
        recorded = entry.get("outputs", {})
        return all(_unchanged(path, recorded.get(path.name)) for path in outputs)

    def record(self, key: str, fingerprint: str, outputs: list[Path]) -> None:
        self.entries[key] = {"fingerprint": fingerprint, "outputs": {p.name: _file_record(p) for p in outputs}}

    def save(self) -> None:
        data = json.dumps(self.entries, ensure_ascii=False, indent=1, sort_keys=True)
        bundle.write_bytes(self.path, data.encode("utf-8"))


def _file_record(path: Path) -> dict:
    stat = path.stat()
    return {"sha256": bundle.sha256_of(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _unchanged(path: Path, recorded: dict | None) -> bool:
    """Whether an output is still what the build wrote. Like git's index, an unchanged size and
    modification time vouch for the content; otherwise its checksum decides."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if not isinstance(recorded, dict):
        return False
    if (stat.st_size, stat.st_mtime_ns) == (recorded.get("size"), recorded.get("mtime_ns")):
        return True
    return bundle.sha256_of(path) == recorded.get("sha256")


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """One build per output folder at a time: a second one fails at once, clearly."""
    try:
        (out / STATE_FOLDER).mkdir(parents=True, exist_ok=True)
        handle = open(out / STATE_FOLDER / "lock", "w")  # noqa: SIM115 - held for the block
    except OSError as exc:
        raise OutputError(f"无法写入输出文件夹 {out}：{exc.strerror or exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise OutputError(f"另一个 reportgen build 正在写入 {out}，请等它结束后再运行") from exc
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# --- stages ---------------------------------------------------------------------------------


def _key(job: Job, out: Path) -> str:
    return str(job.docx.relative_to(out))


def render_form(job: Job, target: Path) -> None:
    """A stale form's DOCX. A template is compiled once and each form takes milliseconds, so this
    runs in-process: worker processes would cost more to start and feed than they save."""
    from . import render  # docxtpl and Jinja: loaded only when there is something to render

    checked = job.checked
    assert checked.project and checked.region and checked.result
    context = view.context(checked.project, checked.region, checked.result)
    render.render_docx(checked.region.template, context, target, job.when, title=checked.project.name)


def publish(job: Job, docx: Path, pdf: Path | None, state: State, out: Path) -> None:
    """Move a project's finished files into place. The DOCX is kept even when its PDF failed."""
    job.folder.mkdir(parents=True, exist_ok=True)
    _move(docx, job.docx)
    if pdf is not None:
        _move(pdf, job.pdf)
        state.record(_key(job, out), job.fingerprint, job.outputs)


def _move(source: Path, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target.with_name(f".{target.name}.part")))
        os.replace(target.with_name(f".{target.name}.part"), target)
    except OSError as exc:
        raise OutputError(f"无法写入 {target}：{exc.strerror or exc}") from exc


def summary_row(job: Job) -> SummaryRow:
    checked = job.checked
    project, region, result = checked.project, checked.region, checked.result
    assert project and region and result
    base = column_total(project.funds, region.execution.base, region)
    executed = column_total(project.funds, "executed", region)

    def yuan(value):
        return "" if value is None else f"{round_half_up(value, 2):,}"

    rate = "" if result.execution.rate is None else format_decimal(result.execution.rate, 2) + "%"
    warnings = sum(not p.is_error for p in checked.problems)
    total = format_decimal(result.total, None)
    return SummaryRow(project.name, yuan(base), yuan(executed), rate, total, result.grade, warnings)


@dataclass(eq=False)  # compared by identity
class Bundle:
    """One unit and year: its members, and what its merged outputs depend on."""

    folder: Path
    members: list[Job]
    fingerprint: str = ""

    NAMES = ("全部项目.docx", "全部项目.pdf", "汇总表.csv", "manifest.json")

    def key(self, out: Path) -> str:
        return str(self.folder.relative_to(out))

    @property
    def archive(self) -> Path:
        return self.folder.with_suffix(".zip")

    @property
    def outputs(self) -> list[Path]:
        return [*(self.folder / name for name in self.NAMES), self.archive]

    @property
    def title(self) -> str:
        return f"{self.folder.name} {self.folder.parent.name} 年度项目支出绩效自评汇总表"

    @property
    def when(self) -> datetime.datetime:
        return max(job.when for job in self.members)


def plan_bundles(jobs: list[Job], failed: list[Checked], report: Report) -> list[Bundle]:
    """One bundle per unit and year; a unit with a project whose data has errors gets none."""
    folders: dict[Path, list[Job]] = {}
    for job in jobs:
        folders.setdefault(job.folder, []).append(job)
    failed_dirs = {checked.source.path.parent for checked in failed}
    bundles = []
    for folder, members in sorted(folders.items()):
        members.sort(key=lambda job: str(job.checked.source.path))
        if any(job.checked.source.path.parent in failed_dirs for job in members):
            report.failures.append(f"{folder}: 本单位有项目未能生成，报送包未更新")
            continue
        # Members' outputs are functions of their inputs, so the inputs fingerprint the bundle.
        digest = _digest(__version__, *(f"{j.stem}:{j.fingerprint}" for j in members))
        bundles.append(Bundle(folder, members, digest))
    return bundles


def render_summary(item: Bundle, target: Path) -> None:
    """A stale bundle's 汇总表 DOCX, converted with its forms."""
    bundle.write_summary_docx(item.title, [summary_row(j) for j in item.members], target, item.when)


_DOCUMENT_BYTES = 10_000  # what LibreOffice spends on any document, in bytes of project YAML (see weight)


@dataclass
class _Group:
    """Documents that go to one LibreOffice worker together: a bundle's summary and (some of) its
    stale forms, so that bundles complete one by one while LibreOffice works."""

    item: Bundle | None
    jobs: list[Job]
    with_summary: bool

    @property
    def weight(self) -> int:
        """LibreOffice's time for the group, in bytes of YAML: measured on the seed regions, a
        form costs about 50 ms plus 5 ms per KB of its project file, so a fixed 10 KB each; a
        summary page about as much as the fixed cost and a little more."""
        forms = sum(_DOCUMENT_BYTES + job.checked.source.path.stat().st_size for job in self.jobs)
        return forms + (_DOCUMENT_BYTES + 1000) * self.with_summary


def _groups(stale: list[Job], bundles: list[Bundle], workers: int) -> list[_Group]:
    """Stale work in groups; a big bundle is cut so that every worker still gets a share."""
    limit = max(1, -(-len(stale) // (2 * workers)))
    stale_ids = {id(job) for job in stale}
    groups, grouped = [], set()
    for item in bundles:
        jobs = [job for job in item.members if id(job) in stale_ids]
        grouped.update(id(job) for job in jobs)
        pieces = [jobs[start : start + limit] for start in range(0, len(jobs), limit)] or [[]]
        groups.extend(_Group(item, piece, index == 0) for index, piece in enumerate(pieces))
    groups.extend(_Group(None, [job], False) for job in stale if id(job) not in grouped)
    return groups


class _Assembly:
    """Publishes each project as its PDF arrives and writes each bundle once its last part is in."""

    def __init__(self, bundles: list[Bundle], context: tuple[State, Path, Options, Report, Progress]) -> None:
        self.state, self.out, self.options, self.report, self.progress = context
        self.staged: dict[Path, Job] = {}  # staged DOCX → its project
        self.summaries: dict[Path, Path] = {}  # bundle folder → staged summary DOCX
        self.waiting: dict[Path, list[Path]] = {item.folder: [] for item in bundles}
        self.bundle_of: dict[Path, Bundle] = {}
        self.by_folder = {item.folder: item for item in bundles}
        self.merged: dict[Path, Path] = {}
        self.outcomes: dict[Path, convert.Outcome] = {}
        self.written: list[Bundle] = []
        self.failed: set[Path] = set()
        self.missing: set[Path] = set()  # staged documents that failed to render

    def expect(self, document: _Document) -> None:
        """Note a rendered document, whose PDF will arrive."""
        item = document.group.item
        if document.job is not None:
            self.staged[document.path] = document.job
        elif item is not None:
            self.summaries[item.folder] = document.path
        if item is not None:
            self.waiting[item.folder].append(document.path)
            self.bundle_of[document.path] = item

    def unexpected(self, document: _Document) -> None:
        """A document that failed to render (reported already): LibreOffice will not find it,
        and its bundle cannot be complete."""
        self.missing.add(document.path)
        if document.group.item is not None:
            self._fail(document.group.item, "本单位有项目未能生成")

    def compose(self, staging: Path) -> None:
        """The merged DOCX needs no PDF: made while LibreOffice converts."""
        staged_of = {id(job): docx for docx, job in self.staged.items()}
        for index, (folder, item) in enumerate(self.by_folder.items()):
            parts = [self.summaries.get(folder), *(staged_of.get(id(job), job.docx) for job in item.members)]
            if all(part is not None and part.is_file() for part in parts):
                target = staging / f"merged-{index:05d}.docx"
                bundle.merge_docx(parts, target, item.when)  # type: ignore[arg-type]
                self.merged[folder] = target
                # python-docx's parts and package refer to each other, so the unit's XML trees
                # (tens of MB, unseen by the collector's heuristics) wait for a full collection;
                # what survives it lives to the end of the build, and freezing it keeps the next
                # unit's collection from walking it again.
                gc.collect()
                gc.freeze()

    def arrive(self, doc: Path, outcome: convert.Outcome) -> None:
        if doc in self.missing:
            return
        self.outcomes[doc] = outcome
        job = self.staged.get(doc)
        if job is not None:
            self._publish(job, doc, outcome)
        item = self.bundle_of.get(doc)
        if item is not None:
            self.waiting[item.folder].remove(doc)
            if not self.waiting[item.folder] and item.folder not in self.failed:
                self._write(item)

    def _publish(self, job: Job, doc: Path, outcome: convert.Outcome) -> None:
        project = job.checked.project
        assert project is not None
        pdf = outcome if isinstance(outcome, Path) else None
        if pdf is None:
            self.report.failures.append(f"{display_path(job.checked.source.path)}: {outcome or 'PDF 转换失败'}")
        elif not self.options.pdfa:  # rewriting would break PDF/A's matching XMP metadata
            try:
                bundle.normalize_pdf(pdf, project.name, job.when)
            except ConvertError as exc:
                self.report.failures.append(f"{display_path(job.checked.source.path)}: {exc}")
                pdf = None
        publish(job, doc, pdf, self.state, self.out)
        self.report.rebuilt += pdf is not None

    def _write(self, item: Bundle) -> None:
        summary_pdf = self.outcomes.get(self.summaries.get(item.folder, Path()), "汇总表未能生成")
        merged = self.merged.get(item.folder)
        if merged is None or not all(job.pdf.is_file() and job.docx.is_file() for job in item.members):
            self._fail(item, "本单位有项目未能生成")
        elif not isinstance(summary_pdf, Path):
            self._fail(item, f"汇总表未能转换（{summary_pdf}）")
        else:
            try:
                _write_bundle(item, merged, summary_pdf, self.out)
            except ConvertError as exc:
                self._fail(item, f"合并 PDF 失败：{exc}")
                return
            self.state.record(item.key(self.out), item.fingerprint, item.outputs)
            self.written.append(item)
            self.progress("打包", len(self.written), len(self.by_folder))

    def finish(self, why: str | None = None) -> None:
        """Settle what never came: with ``why``, LibreOffice could not run at all (every DOCX is
        still published, without a PDF); otherwise bundles that waited for nothing."""
        for doc in [*self.staged, *self.bundle_of]:
            if doc not in self.outcomes:
                self.arrive(doc, why or "PDF 转换失败")
        for folder, item in self.by_folder.items():
            if not self.waiting[folder] and item not in self.written and folder not in self.failed:
                self._write(item)

    def _fail(self, item: Bundle, reason: str) -> None:
        if item.folder in self.failed:
            return
        self.failed.add(item.folder)
        self.report.failures.append(f"{item.folder}: {reason}，报送包未更新")


@dataclass
class _Document:
    """One staged document: a project's form, or a bundle's summary when ``job`` is None."""

    path: Path
    group: _Group
    job: Job | None = None


def _stage(groups: list[_Group], staging: Path) -> list[list[_Document]]:
    """The documents of each group, summary first, under unique names (one LibreOffice call
    takes one --outdir, so equal names would split it), in folders that exist."""
    numbers, staged = itertools.count(1), []
    for group in groups:
        documents = []
        if group.with_summary and group.item is not None:
            number = next(numbers)
            documents.append(_Document(staging / f"{number:05d}" / f"{number:05d}-汇总表.docx", group))
        for job in group.jobs:
            number = next(numbers)
            documents.append(_Document(staging / f"{number:05d}" / f"{number:05d}-{job.stem}.docx", group, job))
        for document in documents:
            document.path.parent.mkdir()
        staged.append(documents)
    return staged


def _render(document: _Document, report: Report) -> bool:
    try:
        if document.job is None:
            assert document.group.item is not None
            render_summary(document.group.item, document.path)
        else:
            render_form(document.job, document.path)
        return True
    except ReportgenError as exc:
        source = document.job.checked.source.path if document.job else document.group.item.folder  # type: ignore[union-attr]
        report.failures.append(f"{display_path(source)}: {exc}")
        return False


def produce(stale: list[Job], bundles: list[Bundle], staging: Path,
            context: tuple[State, Path, Options, Report, Progress]) -> list[Bundle]:
    """Render, convert, publish and bundle, keeping LibreOffice busy from the start.

    Each worker's LibreOffice is launched first, with the list of documents it will convert,
    and the documents are rendered into place while it starts up, in the order in which the
    workers will reach them: LibreOffice needs about a second to start and a tenth of a second
    per form, rendering takes a hundredth, so each document is there before it is needed
    (written under a temporary name and renamed, so it is whole or absent). One that is not
    is skipped by LibreOffice and converted again in the retry. The main thread then composes
    merged DOCX and, as PDFs arrive, publishes projects and writes bundles, so that little is
    left to do when the last PDF appears.
    """
    _, _, options, report, progress = context
    assembly = _Assembly(bundles, context)
    arrivals: queue.Queue[tuple[Path, convert.Outcome]] = queue.Queue()
    pool = convert.Pool(
        options.soffice, options.timeout, options.pdfa, on_result=lambda doc, outcome: arrivals.put((doc, outcome)),
        progress=lambda done, total: progress("转换 PDF", done, total),
    )
    with pool:
        unavailable = None
        if stale or bundles:
            try:
                pool.start()
            except convert.ConvertError as exc:  # no LibreOffice or no CJK font: DOCX only
                unavailable = str(exc)
        workers = max(1, options.jobs or os.cpu_count() or 1)
        groups = _groups(stale, bundles, workers)
        staged = _stage(groups, staging)
        batches = [
            [document for index in batch for document in staged[index]]
            for batch in convert.balance([group.weight for group in groups], workers)
        ]
        if unavailable is None:
            for batch in batches:
                pool.submit([document.path for document in batch])
        rendered = itertools.count(1)
        for document in _round_robin(batches):
            if _render(document, report):
                assembly.expect(document)
            else:
                assembly.unexpected(document)
            if document.job is not None:
                progress("生成 Word", next(rendered), len(stale))
        pool.inputs_written()
        if unavailable is None:
            assembly.compose(staging)
            while pool.running() or not arrivals.empty():
                with contextlib.suppress(queue.Empty):
                    assembly.arrive(*arrivals.get(timeout=_POLL_SECONDS))
            pool.wait()
    assembly.finish(unavailable)
    return assembly.written


def _round_robin(batches: list[list[_Document]]) -> Iterator[_Document]:
    """The documents in the order in which parallel workers reach them."""
    for row in itertools.zip_longest(*batches):
        yield from (document for document in row if document is not None)


_POLL_SECONDS = 0.05


def _write_bundle(item: Bundle, merged_docx: Path, summary_pdf: Path, out: Path) -> None:
    folder, members, when = item.folder, item.members, item.when
    docx_name, pdf_name, csv_name, manifest_name = Bundle.NAMES
    # The merge reads every PDF and may find one broken: first, so that nothing has changed then.
    parts = [("汇总表", summary_pdf), *((j.checked.project.name, j.pdf) for j in members)]
    bundle.merge_pdfs(parts, folder / pdf_name, item.title, when)
    _remove_strays(folder, {f"{j.stem}{s}" for j in members for s in (".docx", ".pdf")} | set(Bundle.NAMES))
    _move(merged_docx, folder / docx_name)
    bundle.write_summary_csv([summary_row(j) for j in members], folder / csv_name)
    info = {
        "reportgen": __version__,
        "year": folder.parent.name,
        "unit": folder.name,
        "regions": {j.checked.region.id: _region_files(j.checked.region) for j in members},
        "projects": [{"name": j.checked.project.name, "file": j.stem} for j in members],
    }
    inputs = [Path(display_path(p)) for j in members for p in j.inputs]
    bundle.write_manifest(folder / manifest_name, folder, inputs, info)
    bundle.write_zip(folder, item.archive, when)


def _region_files(region: Region) -> dict[str, str]:
    """Where a region came from and the sha256 of each of its files, for the manifest."""
    files = {str(path.relative_to(region.folder)): bundle.sha256_of(path) for path in region.files()}
    return {"from": region.origin, **files}


def _remove_strays(folder: Path, expected: set[str]) -> None:
    """Outputs of projects that no longer exist would otherwise be bundled again."""
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".docx", ".pdf") and path.name not in expected:
            path.unlink()


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def build(paths: list[Path], out: Path, options: Options | None = None, progress: Progress = _no_progress) -> Report:
    """Build every project under ``paths`` into ``out``; one failing project stops no other."""
    options = options or Options()
    started, report = time.monotonic(), Report()
    results = check_paths(paths)
    report.problems = [p for checked in results for p in checked.problems]
    report.projects = len(results)
    report.warnings = sum(not p.is_error for p in report.problems)
    report.failures = [f"{display_path(c.source.path)}: 数据有错误，未生成" for c in results if not c.ok]
    with build_lock(out):
        state = State(out)
        jobs = plan([c for c in results if c.ok], out, options)
        stale = [job for job in jobs if options.force or not state.fresh(_key(job, out), job.fingerprint, job.outputs)]
        report.skipped = len(jobs) - len(stale)
        bundles = plan_bundles(jobs, [c for c in results if not c.ok], report)
        stale_bundles = [b for b in bundles if options.force or not state.fresh(b.key(out), b.fingerprint, b.outputs)]
        # The projects live until the end: keep them out of the garbage collections made while
        # producing (once per merged unit), which then only walk what it creates.
        gc.freeze()
        try:
            with tempfile.TemporaryDirectory(prefix=".staging-", dir=out / STATE_FOLDER) as staging:
                written = produce(stale, stale_bundles, Path(staging), (state, out, options, report, progress))
        finally:
            gc.unfreeze()
            state.save()  # what was published is recorded, also when the build stops early
        # Only current bundles: a unit whose bundle could not be rebuilt is listed under failures.
        report.bundles = [b.archive for b in bundles if b not in stale_bundles or b in written]
    report.seconds = time.monotonic() - started
    return report
