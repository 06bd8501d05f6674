"""The pipeline in one function: load → validate → score → render → convert → bundle.

Outputs go to ``<out>/<年度>/<单位>/``. Every file is produced in a staging folder or under a
temporary name and renamed into place, so a failure leaves earlier outputs intact and nothing
half-written. A project whose inputs have not changed since the last build is neither
re-rendered nor re-converted; a bundle is re-merged only when a member changed.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import hashlib
import itertools
import json
import os
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, bundle, code_digest, convert, view
from .bundle import SummaryRow
from .errors import ConvertError, OutputError, ReportgenError, display_path
from .load import Source
from .score import column_total
from .state import (
    CHECKED_FILE,
    INPUTS_KEY,
    STATE_FOLDER,
    TREE_KEY,
    Report,
    State,
    Tree,
    build_lock,
    remember_tree,
    tree_key,
)
from .validate import CheckCache, Checked, check_paths
from .values import format_decimal, round_half_up

if TYPE_CHECKING:
    from . import pdfpages

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Options:
    force: bool = False
    jobs: int | None = None
    soffice: str = "soffice"
    timeout: float = 120.0
    pdfa: bool = False
    keep: float | None = None  # seconds LibreOffice is kept running for the next build (convert.keep_seconds)
    shard: tuple[int, int] | None = None  # (K, N): build the K-th of N shares of the units, from 1


@dataclass
class Job:
    """One project to build: where its files go and what its outputs depend on."""

    checked: Checked
    folder: Path
    stem: str
    fingerprint: str  # what its outputs depend on: its own inputs and, in a chunk, the chunk's
    when: datetime.datetime
    own: str = ""  # its own inputs' digest
    chunk: Chunk | None = None  # the document it is converted in, if not alone
    region_files: list[Path] | None = None  # its region's files, when already listed
    input_digests: tuple[str, ...] = ()  # the sha256 of each of its inputs, as built

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
        if self.region_files is None:
            self.region_files = region.files()  # every file of the region counts
        return [*source.unit_files, source.path, *self.region_files]


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


def unit_folder(checked: Checked, out: Path) -> Path:
    """Where a valid project's unit is built: ``out/<年度>/<实施单位>``."""
    project = checked.project
    assert project is not None
    return out / str(project.year) / bundle.safe_filename(unit_of(checked), set())


def plan(results: list[Checked], out: Path, options: Options, digests: dict[Path, str] | None = None) -> list[Job]:
    """Where each valid project's files go; names are safe and distinct within a bundle.
    ``digests``: each input file's sha256, filled in: of a project and its unit files, as its
    check read them (``Checked.digests``); of a region's YAML, as it was read for the region
    (``Region.read_digests``); of its other files (the template), read once."""
    taken: dict[Path, set[str]] = {}
    digests = {} if digests is None else digests
    listed: dict[Path, list[Path]] = {}  # region folder → its files, listed once
    jobs = []
    for checked in results:
        project = checked.project
        assert project is not None and checked.region is not None
        folder = unit_folder(checked, out)
        stem = bundle.safe_filename(project.name, taken.setdefault(folder, set()))
        region_files = listed.get(checked.region.folder)
        if region_files is None:
            region_files = listed[checked.region.folder] = checked.region.files()
        job = Job(checked, folder, stem, "", _when(checked), region_files=region_files)
        as_read = _as_read(checked)
        inputs = job.inputs
        for path in inputs:
            digest = as_read.get(path)
            if digest is not None:
                digests[path] = digest
            elif path not in digests:
                digests[path] = bundle.sha256_of(path)
        job.input_digests = tuple(digests[path] for path in inputs)
        job.fingerprint = job.own = _digest(code_digest(), str(options.pdfa), job.when.isoformat(), *job.input_digests)
        jobs.append(job)
    return jobs


def _as_read(checked: Checked) -> dict[Path, str]:
    """The sha256 of a project's files as its check read them: its unit files, itself, and its
    region's YAML."""
    source, region = checked.source, checked.region
    assert region is not None
    found = dict(zip((*source.unit_files, source.path), checked.digests, strict=False))
    found.update({region.folder / name: digest for name, digest in region.read_digests.items()})
    return {path: digest for path, digest in found.items() if digest is not None}


def likely_changes(sources: list[Source], state: State) -> list[Source] | None:
    """A guess, made before validating, of what the build will rebuild: the project files changed
    since the last build (none, one, a few); None when there is no last build or a unit or
    region file has changed (all of their projects). It decides only how many LibreOffice to
    start at once and which chunk to convert early (``convert_early``); what is built is
    decided after validation, as always."""
    recorded = state.entries.get(INPUTS_KEY, {}).get("files")
    if not isinstance(recorded, dict) or not recorded:
        return None
    changed, seen = [], set()
    for source in sources:
        for path in (*source.unit_files, source.path):
            key = str(path.resolve())
            if key in seen:
                continue
            seen.add(key)
            try:
                same = recorded.get(key) == bundle.sha256_of(path)
            except OSError:
                same = False
            if not same:
                if path != source.path:
                    return None  # a unit file: all its projects
                changed.append(source)
    for key in set(recorded) - seen:  # region files, and projects since removed (their unit changes)
        try:
            if recorded[key] == bundle.sha256_of(Path(key)):
                continue
        except OSError:
            pass
        return None
    return changed


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


def publish(job: Job, docx: Path, pdf: Path | None, state: State, out: Path, record: bool = True) -> None:
    """Move a project's finished files into place. The DOCX is kept even when its PDF failed.
    ``record``: note them as built, so that the next build skips the project."""
    job.folder.mkdir(parents=True, exist_ok=True)
    _move(docx, job.docx)
    if pdf is not None:
        _move(pdf, job.pdf)
        if record:
            state.record(_key(job, out), job.fingerprint, job.outputs, own=job.own)


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
        digest = _digest(code_digest(), str(CHUNK_BYTES), *(f"{j.stem}:{j.own}" for j in members))
        bundles.append(Bundle(folder, members, digest))
    return bundles


def render_summary(item: Bundle, target: Path) -> None:
    """A stale bundle's 汇总表 DOCX, converted with its forms."""
    bundle.write_summary_docx(item.title, [summary_row(j) for j in item.members], target, item.when)


# --- units converted as one document ------------------------------------------------------

# How much goes into one LibreOffice document. LibreOffice spends about 50 ms on any document it
# opens, and a one-page form takes little more: a unit's forms converted together take half the
# time they take one by one. Each form's PDF is then cut from the whole (``pdfpages``), the same
# page for page. A unit is cut into as few chunks of at most this many bytes of project files
# (about 2.5 KB a page) as it takes, of near-equal size: a changed form converts its own chunk
# again (about 24 pages at most, half a second), not its whole unit. The chunks depend on the
# inputs alone, never on the number of cores: which forms share a document decides the PDFs'
# bytes (their fonts hold the glyphs of the whole document), and those must be the same on
# every machine.
CHUNK_BYTES = 60_000
SUMMARY_BYTES = 2_000  # the 汇总表 page, which opens a unit's first chunk
CHUNKS_FOLDER = "chunks"  # <out>/.reportgen/chunks/<fingerprint>.chunk: the PDF of each chunk (not *.pdf)


@dataclass(eq=False)  # compared by identity
class Chunk:
    """Forms of one unit converted as one LibreOffice document, each one's PDF cut from it;
    the first chunk of a unit with a bundle also holds its 汇总表, first."""

    folder: Path
    item: Bundle | None
    index: int
    jobs: list[Job]
    with_summary: bool
    fingerprint: str

    @property
    def parts(self) -> int:
        return len(self.jobs) + self.with_summary

    def part_of(self, job: Job) -> int:
        return self.with_summary + next(i for i, member in enumerate(self.jobs) if member is job)

    def key(self, out: Path) -> str:
        return f"{self.folder.relative_to(out)}#{self.index}"

    def stored(self, out: Path) -> Path:
        return out / STATE_FOLDER / CHUNKS_FOLDER / f"{self.fingerprint}.chunk"


def plan_chunks(jobs: list[Job], bundles: list[Bundle], options: Options) -> list[Chunk]:
    """Each unit's forms in chunks (``CHUNK_BYTES``), in the bundle's order; forms whose
    template LibreOffice lays out differently among others (``bundle.combinable``) and every
    PDF/A form are converted alone. A form's fingerprint then covers its chunk: the forms of a
    chunk are built together."""
    if options.pdfa:  # PDF/A's metadata belongs to one document: converted one by one
        return []
    folders: dict[Path, list[Job]] = {}
    for job in jobs:
        folders.setdefault(job.folder, []).append(job)
    items = {item.folder: item for item in bundles}
    chunks = []
    for folder, members in sorted(folders.items()):
        item = items.get(folder)
        ordered = item.members if item else sorted(members, key=lambda job: str(job.checked.source.path))
        together = [job for job in ordered if bundle.combinable(job.checked.region.template)]  # type: ignore[union-attr]
        weights = [SUMMARY_BYTES * (item is not None)] + [_size(job.checked.source.path) for job in together]
        pieces = [together[max(0, start - 1) : end - 1] for start, end in _balanced(weights)]
        pieces = [piece for index, piece in enumerate(pieces) if piece or (index == 0 and item is not None)]
        for index, piece in enumerate(pieces):
            summary = item is not None and index == 0
            assert item is not None or not summary
            digest = _digest(code_digest(), "chunk", str(CHUNK_BYTES), item.fingerprint if summary else "",  # type: ignore[union-attr]
                             *(f"{job.stem}:{job.own}" for job in piece))
            chunk = Chunk(folder, item, index, piece, summary, digest)
            for job in piece:
                job.chunk = chunk
                job.fingerprint = _digest(job.own, digest)
            chunks.append(chunk)
    return chunks


def _balanced(weights: list[int]) -> list[tuple[int, int]]:
    """``weights`` cut into as few runs (start, end) of at most ``CHUNK_BYTES`` in all as it
    takes (one item alone may weigh more), of near-equal weight."""
    count = max(1, -(-sum(weights) // CHUNK_BYTES))
    target, runs, start, total = sum(weights) / count, [], 0, 0
    for index, weight in enumerate(weights):
        total += weight
        if total >= target * (len(runs) + 1) and len(runs) < count - 1:
            runs.append((start, index + 1))
            start = index + 1
    runs.append((start, len(weights)))
    return runs


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


_DOCUMENT_BYTES = 10_000  # what LibreOffice spends on any document, in bytes of project YAML (see weight)


@dataclass(eq=False)
class _Conversion:
    """One document for LibreOffice: a chunk of forms, a form alone, or a 汇总表 alone."""

    path: Path
    item: Bundle | None = None  # its unit's bundle, when it has one
    chunk: Chunk | None = None
    job: Job | None = None
    summary: bool = False

    @property
    def weight(self) -> int:
        """LibreOffice's time for it, in bytes of YAML: measured on the seed regions, a document
        costs about 50 ms, a form in it about 5 ms per KB of its project file; so a fixed 10 KB
        per document, a 汇总表 page about as much as a small form."""
        jobs = self.chunk.jobs if self.chunk else [self.job] if self.job else []
        forms = sum(job.checked.source.path.stat().st_size for job in jobs)
        summary = self.summary or bool(self.chunk and self.chunk.with_summary)
        return _DOCUMENT_BYTES + forms + 2000 * summary


class _Assembly:
    """Renders and composes what LibreOffice needs, publishes each project as its PDF arrives
    (cut from its chunk's), and writes each bundle once its last part is in."""

    def __init__(self, chunks: list[Chunk], bundles: list[Bundle], staging: Path,
                 context: tuple[State, Path, Options, Report, Progress]) -> None:
        self.state, self.out, self.options, self.report, self.progress = context
        self.staging = staging
        self.numbers = itertools.count(1)
        self.chunks_of: dict[Path, list[Chunk]] = {}
        for chunk in chunks:
            self.chunks_of.setdefault(chunk.folder, []).append(chunk)
        self.by_folder = {item.folder: item for item in bundles}
        self.by_path: dict[Path, _Conversion] = {}
        self.settled: set[Path] = set()  # conversions whose outcome has been dealt with
        self.staged: dict[int, Path] = {}  # id(job) → its staged DOCX
        self.summaries: dict[Path, Path] = {}  # bundle folder → its staged 汇总表 DOCX
        self.summary_pdfs: dict[Path, Path] = {}  # bundle folder → a 汇总表 PDF converted alone
        self.merged: dict[Path, Path] = {}  # bundle folder → its staged 全部项目.docx
        self.sources: dict[int, pdfpages.Source] = {}  # id(chunk) → its PDF, read
        self.pending: dict[Path, int] = {item.folder: 0 for item in bundles}
        self.fallen_back: set[int] = set()  # ids of chunks whose forms were converted one by one
        self.failed: set[Path] = set()
        self.written: list[Bundle] = []
        self.pool: convert.Pool | None = None  # set once LibreOffice can run
        self.rendered = itertools.count(1)
        self.to_render = 0
        self.unrenderable: set[int] = set()  # ids of jobs and bundles whose DOCX failed
        # The kept PDFs of the unchanged chunks of the bundles to write (never a unit's first: see
        # plan_chunks), to read while LibreOffice converts the others; at most READ_AHEAD held.
        converted = {id(chunk) for chunk in chunks}
        kept = {id(job.chunk): job.chunk for item in bundles for job in item.members
                if job.chunk is not None and id(job.chunk) not in converted}
        self.ahead: list[Chunk] = list(kept.values())
        self.read_early: set[int] = set()  # ids of chunks read ahead, their bundle not yet written
        self.prepared: set[int] = set()  # ids of the conversions whose document is written (or failed)
        self.early_forms: dict[tuple[Path, str], Path] = {}  # see EarlyChunk.forms

    # --- staging and rendering

    def _path(self, stem: str) -> Path:
        """A unique staged path (one LibreOffice call takes one --outdir, so equal names would
        split it), in a folder of its own that exists."""
        number = next(self.numbers)
        folder = self.staging / f"{number:05d}"
        folder.mkdir()
        return folder / f"{number:05d}-{stem}.docx"

    def plan(self, stale: list[Job], chunks: list[Chunk], bundles: list[Bundle]) -> list[_Conversion]:
        """What LibreOffice converts: each stale chunk, each stale form converted alone, and
        (PDF/A) each stale bundle's 汇总表."""
        found = [_Conversion(self._path(f"{chunk.folder.name}-{chunk.index + 1}"), chunk.item, chunk=chunk)
                 for chunk in chunks]
        for job in stale:
            if job.chunk is None:
                self.staged[id(job)] = self._path(job.stem)  # rendered where LibreOffice reads it
                found.append(_Conversion(self.staged[id(job)], self.by_folder.get(job.folder), job=job))
        if self.options.pdfa:
            for item in bundles:
                self.summaries[item.folder] = self._path("汇总表")
                found.append(_Conversion(self.summaries[item.folder], item, summary=True))
        for conversion in found:
            self._expect(conversion)
        self.to_render = len(stale)
        return found

    def _expect(self, conversion: _Conversion) -> None:
        self.by_path[conversion.path] = conversion
        if conversion.item is not None and conversion.item.folder in self.pending:
            self.pending[conversion.item.folder] += 1

    def _render_job(self, job: Job) -> Path | None:
        """The project's DOCX, rendered on first use (None if it cannot be: reported)."""
        if id(job) in self.unrenderable:
            return None
        target = self.staged.get(id(job))
        if target is None:
            target = self.staged[id(job)] = self._path(job.stem)
        if not target.is_file():
            if not self._reuse(job, target) and not self._attempt(lambda: render_form(job, target),
                                                                  job.checked.source.path):
                self.unrenderable.add(id(job))
                return None
            self.progress("生成 Word", next(self.rendered), self.to_render)
        return target

    def _reuse(self, job: Job, target: Path) -> bool:
        """An unchanged form of a chunk converted again (another form of it changed): its DOCX
        is the one the last build wrote, copied (rendering it costs tens of milliseconds); a
        form of the chunk converted early: the DOCX written for it (the same inputs)."""
        written = self.early_forms.get((job.checked.source.path, job.own))
        if written is None:
            if self.options.force or not self.state.built_from(_key(job, self.out), job.own, job.docx):
                return False
            written = job.docx
        try:
            shutil.copyfile(written, target)
            return True
        except OSError:
            target.unlink(missing_ok=True)
            return False

    def _render_summary(self, item: Bundle) -> Path | None:
        """The unit's 汇总表 DOCX, rendered on first use (None if it cannot be: reported)."""
        if id(item) in self.unrenderable:
            return None
        target = self.summaries.get(item.folder)
        if target is None:
            target = self.summaries[item.folder] = self._path("汇总表")
        if not target.is_file() and not self._attempt(lambda: render_summary(item, target), item.folder):
            self.unrenderable.add(id(item))
            return None
        return target

    def _attempt(self, work: Callable[[], None], source: Path) -> bool:
        try:
            work()
            return True
        except ReportgenError as exc:
            self.report.failures.append(f"{display_path(source)}: {exc}")
            return False

    def adopt(self, guess: EarlyChunk, conversions: list[_Conversion]) -> _Conversion | None:
        """The conversion of ``conversions`` that LibreOffice already runs (``convert_early``):
        the chunk of the same key, once written, with the same bytes. Its outcome is then
        awaited under the early document's name."""
        found = next((conversion for conversion in conversions
                      if conversion.chunk is not None and conversion.chunk.key(self.out) == guess.key), None)
        if found is None:
            return None
        self.early_forms = guess.forms
        self.prepare(found)
        if found.path in self.settled or bundle.sha256_of(found.path) != guess.digest:
            return None
        del self.by_path[found.path]
        found.path = guess.path
        self.by_path[found.path] = found
        return found

    def prepare(self, conversion: _Conversion) -> None:
        """Write the document LibreOffice will open (renamed into place whole), once. When it
        cannot be written, its projects have failed (reported) and so has their unit; the forms
        of a chunk that could not be written are converted one by one."""
        if id(conversion) in self.prepared:
            return
        self.prepared.add(id(conversion))
        chunk, job = conversion.chunk, conversion.job
        if job is not None:
            ok = self._render_job(job) is not None
        elif conversion.summary:
            assert conversion.item is not None
            ok = self._render_summary(conversion.item) is not None
        else:
            assert chunk is not None
            forms = [self._render_job(member) for member in chunk.jobs]
            parts = [self._render_summary(chunk.item), *forms] if chunk.with_summary else forms  # type: ignore[arg-type]
            ok = all(part is not None for part in parts)
            if ok:
                whole = chunk.item is not None and chunk.item.folder in self.pending and self._covers_unit(chunk)
                merged = self._path("全部项目") if whole else None
                temporary = conversion.path.with_name(f".{conversion.path.name}.part")
                if self._attempt(lambda: bundle.merge_docx(parts, merged, _chunk_when(chunk), marked=temporary),  # type: ignore[arg-type]
                                 chunk.folder):
                    os.replace(temporary, conversion.path)
                    if merged is not None:
                        self.merged[chunk.folder] = merged
                else:
                    ok = False
                gc.collect()  # see compose
                gc.freeze()
            if not ok:
                self.settled.add(conversion.path)
                self._fall_back(chunk, "本批表格未能生成")
                if conversion.item is not None:
                    self._done(conversion.item)
                return
        if not ok:
            self.settled.add(conversion.path)
            if conversion.item is not None:
                self._fail(conversion.item, "本单位有项目未能生成")
                self._done(conversion.item)

    @staticmethod
    def _covers_unit(chunk: Chunk) -> bool:
        return chunk.item is not None and chunk.with_summary and len(chunk.jobs) == len(chunk.item.members)

    def compose(self) -> None:
        """The merged DOCX of each stale bundle not composed with its chunk (it needs no PDF:
        made while LibreOffice converts)."""
        for item in self.by_folder.values():
            if item.folder in self.merged or item.folder in self.failed:
                continue
            self._compose(item)
            # python-docx's parts and package refer to each other, so the unit's XML trees
            # (tens of MB, unseen by the collector's heuristics) wait for a full collection;
            # what survives it lives to the end of the build, and freezing it keeps the next
            # unit's collection from walking it again.
            gc.collect()
            gc.freeze()

    def _compose(self, item: Bundle) -> None:
        summary = self._render_summary(item)
        parts = [summary]
        for job in item.members:
            staged = self.staged.get(id(job))
            parts.append(staged if staged is not None and staged.is_file() else job.docx)
        if all(part is not None and part.is_file() for part in parts):
            target = self._path("全部项目")
            if self._attempt(lambda: bundle.merge_docx(parts, target, item.when), item.folder):  # type: ignore[arg-type]
                self.merged[item.folder] = target

    # --- arrivals

    def arrive(self, doc: Path, outcome: convert.Outcome) -> None:
        conversion = self.by_path.get(doc)
        if conversion is None or doc in self.settled:
            return
        self.settled.add(doc)
        if conversion.chunk is not None:
            self._chunk_arrived(conversion.chunk, conversion.path, outcome)
        elif conversion.job is not None:
            self._form_arrived(conversion.job, outcome)
        elif conversion.item is not None:
            if isinstance(outcome, Path):
                self.summary_pdfs[conversion.item.folder] = outcome
            else:
                self._fail(conversion.item, f"汇总表未能转换（{outcome}）")
        if conversion.item is not None:
            self._done(conversion.item)

    def _chunk_arrived(self, chunk: Chunk, doc: Path, outcome: convert.Outcome) -> None:
        from . import pdfpages  # PDFs are read only when there are some

        if not isinstance(outcome, Path):
            self._fall_back(chunk, outcome)
            return
        try:
            # The same bytes whichever documents the LibreOffice converted before (pdfpages.canonical).
            source = pdfpages.canonical_source(pdfpages.Source(outcome.read_bytes()))
            ranges = pdfpages.split(source, chunk.parts)
            cuts = []
            for job in chunk.jobs:
                first, count = ranges[chunk.part_of(job)]
                project = job.checked.project
                assert project is not None
                cuts.append((job, pdfpages.cut(source, first, count, project.name, job.when)))
        except (pdfpages.Unsupported, OSError) as exc:
            self._fall_back(chunk, f"无法从 {doc.name} 的 PDF 中取出各项目（{exc}）")
            return
        self._forget_chunk(chunk)
        bundle.write_bytes(chunk.stored(self.out), source.data)
        outcome.unlink(missing_ok=True)
        self.state.record(chunk.key(self.out), chunk.fingerprint, [chunk.stored(self.out)])
        self.sources[id(chunk)] = source
        for job, data in cuts:
            staged = self.staged[id(job)]
            pdf = staged.with_suffix(".pdf")
            bundle.write_bytes(pdf, data)
            publish(job, staged, pdf, self.state, self.out)
            self.report.rebuilt += 1

    def _forget_chunk(self, chunk: Chunk) -> None:
        """The PDF of this chunk's earlier contents, no longer needed."""
        entry = self.state.entries.get(chunk.key(self.out), {})
        for name in entry.get("outputs", {}):
            if name != chunk.stored(self.out).name:
                with contextlib.suppress(OSError):
                    (self.out / STATE_FOLDER / CHUNKS_FOLDER / name).unlink()

    def _fall_back(self, chunk: Chunk, why: str) -> None:
        """A chunk LibreOffice could not convert, or whose PDF could not be cut: its forms (and
        its summary) are converted one by one, so that one bad form fails alone. What they give
        is not recorded as built: the next build tries the chunk again."""
        self.fallen_back.add(id(chunk))
        item = chunk.item
        again = [_Conversion(self.staged[id(job)], item, job=job) for job in chunk.jobs
                 if id(job) not in self.unrenderable and self.staged.get(id(job), Path()).is_file()]
        if chunk.with_summary and item is not None and item.folder not in self.failed and self.summaries.get(
                item.folder, Path()).is_file():
            again.append(_Conversion(self.summaries[item.folder], item, summary=True))  # last: projects first
        if self.pool is None:
            for conversion in again:
                if conversion.job is not None:
                    self._unconverted(conversion.job, why)
            if item is not None:
                self._fail(item, "本单位有项目未能生成")
            return
        for conversion in again:
            self._expect(conversion)
        if again:  # said: their PDFs are not the bytes a conversion together gives
            self.report.notices.append(f"{display_path(chunk.folder)}: 本单位的表未能一起转换（{why}），改为逐个转换："
                                       "文字和页面相同，PDF 的字节与一起转换时不同；下次生成时再一起转换")
            self.pool.submit([conversion.path for conversion in again])

    def _unconverted(self, job: Job, why: str) -> None:
        """A project whose PDF could not be made: reported, its DOCX published alone."""
        self.report.failures.append(f"{display_path(job.checked.source.path)}: {why}")
        publish(job, self.staged[id(job)], None, self.state, self.out)

    def _form_arrived(self, job: Job, outcome: convert.Outcome) -> None:
        project = job.checked.project
        assert project is not None
        pdf = outcome if isinstance(outcome, Path) else None
        if pdf is None:
            self.report.failures.append(f"{display_path(job.checked.source.path)}: {outcome or 'PDF 转换失败'}")
        elif not self.options.pdfa:  # rewriting would break PDF/A's matching XMP metadata
            try:
                _reproducible(pdf, project.name, job.when)
            except ConvertError as exc:
                self.report.failures.append(f"{display_path(job.checked.source.path)}: {exc}")
                pdf = None
        # A form of a chunk converted alone is not what a build of its chunk gives: not recorded.
        publish(job, self.staged[id(job)], pdf, self.state, self.out, record=job.chunk is None)
        self.report.rebuilt += pdf is not None
        item = self.by_folder.get(job.folder)
        if pdf is None and item is not None:
            self._fail(item, "本单位有项目未能生成")

    def _done(self, item: Bundle) -> None:
        self.pending[item.folder] -= 1
        if not self.pending[item.folder] and item.folder not in self.failed:
            self._write(item)

    def _write(self, item: Bundle) -> None:
        merged = self.merged.get(item.folder)
        if merged is None or not all(job.pdf.is_file() and job.docx.is_file() for job in item.members):
            self._fail(item, "本单位有项目未能生成")
            return
        try:
            _write_bundle(item, merged, self._parts(item), self.out)
        except ConvertError as exc:
            self._fail(item, f"合并 PDF 失败：{exc}")
            return
        if not any(id(chunk) in self.fallen_back for chunk in self.chunks_of.get(item.folder, [])):
            self.state.record(item.key(self.out), item.fingerprint, item.outputs)
        for chunk in [*self.chunks_of.get(item.folder, []), *(job.chunk for job in item.members if job.chunk)]:
            self.sources.pop(id(chunk), None)  # its PDF, read: not needed any more
            self.read_early.discard(id(chunk))
        self.written.append(item)
        self.progress("打包", len(self.written), len(self.by_folder))

    def _parts(self, item: Bundle) -> list[tuple[str, Path | tuple[pdfpages.Source, int, int]]]:
        """The 汇总表 and each member in order: pages of a chunk's PDF, or a PDF of its own."""
        chunks = [chunk for chunk in self.chunks_of.get(item.folder, []) if id(chunk) not in self.fallen_back]
        found: list[tuple[str, Path | tuple[pdfpages.Source, int, int]]] = []
        if chunks and chunks[0].with_summary:
            found.append(("汇总表", self._pages(chunks[0], 0)))
        elif item.folder in self.summary_pdfs:
            found.append(("汇总表", self.summary_pdfs[item.folder]))
        else:
            raise ConvertError("汇总表未能生成")
        for job in item.members:
            project = job.checked.project
            assert project is not None
            if job.chunk is not None and id(job.chunk) not in self.fallen_back:
                found.append((project.name, self._pages(job.chunk, job.chunk.part_of(job))))
            else:
                found.append((project.name, job.pdf))
        return found

    def read_ahead(self) -> None:
        """One kept chunk's PDF read, and made ready to be put after another in its unit's
        全部项目.pdf (its objects' numbers shifted): while LibreOffice converts, the core it
        leaves idle in a rebuild of a few projects. What cannot be read is left to the bundle."""
        chunk = self.ahead.pop(0)
        if not self.pending.get(chunk.folder):  # its bundle is written (or failed) already
            return
        with contextlib.suppress(ConvertError):
            source, _, _ = self._pages(chunk, 0)
            source.read_all()
            self.read_early.add(id(chunk))

    def reads_ahead(self) -> bool:
        """Whether a kept chunk is left to read ahead, and room to hold it."""
        return bool(self.ahead) and len(self.read_early) < READ_AHEAD

    def _pages(self, chunk: Chunk, part: int) -> tuple[pdfpages.Source, int, int]:
        """A part's pages in its chunk's PDF: this build's, or the one kept from before."""
        from . import pdfpages  # PDFs are read only when there are some

        source = self.sources.get(id(chunk))
        stored = chunk.stored(self.out)
        try:
            if source is None:
                source = self.sources[id(chunk)] = pdfpages.Source(stored.read_bytes())
            first, count = pdfpages.split(source, chunk.parts)[part]
        except OSError as exc:
            raise ConvertError(f"{stored.name}：{exc.strerror or exc}") from exc
        except pdfpages.Unsupported as exc:
            raise ConvertError(f"{stored.name}：{exc}") from exc
        return source, first, count

    def finish(self, why: str | None) -> None:
        """Settle what never came: with ``why``, LibreOffice could not run at all (every DOCX is
        still published, without a PDF)."""
        self.pool = None  # nothing more is converted
        for path in list(self.by_path):
            self.arrive(path, why or "PDF 转换失败")

    def _fail(self, item: Bundle, reason: str) -> None:
        if item.folder in self.failed:
            return
        self.failed.add(item.folder)
        self.report.failures.append(f"{item.folder}: {reason}，报送包未更新")




def _reproducible(pdf: Path, title: str, when: datetime.datetime) -> None:
    """A form's PDF converted alone, with the same bytes whichever LibreOffice process made it
    and whatever it converted before (``pdfpages.canonical``), dated ``when``."""
    from . import pdfpages
    try:
        data = pdfpages.canonical(pdfpages.Source(pdf.read_bytes()), title, when)
    except (pdfpages.Unsupported, OSError):
        bundle.normalize_pdf(pdf, title, when)  # not as LibreOffice writes it: rewritten whole
        return
    bundle.write_bytes(pdf, data)


def _chunk_when(chunk: Chunk) -> datetime.datetime:
    return chunk.item.when if chunk.item is not None else max(job.when for job in chunk.jobs)


def produce(stale: list[Job], chunks: list[Chunk], bundles: list[Bundle], staging: Path,
            context: tuple[State, Path, Options, Report, Progress], pool: convert.Pool,
            arrivals: queue.Queue[tuple[Path, convert.Outcome]], guess: EarlyChunk | None = None) -> list[Bundle]:
    """Render, convert, publish and bundle, keeping LibreOffice busy from the start.

    Each worker's LibreOffice is launched first, with the list of documents it will convert,
    and the documents are written while it starts up, in the order in which the workers will
    reach them: a chunk's forms are rendered and merged into one document (tens of
    milliseconds) while LibreOffice needs about a second to start (written under a temporary
    name and renamed, so it is whole or absent). One that is not there in time is skipped by
    LibreOffice and converted again in the retry. The main thread then composes the merged
    DOCX of the other bundles and, as PDFs arrive, cuts and publishes projects and writes
    bundles, so that little is left to do when the last PDF appears. A chunk LibreOffice
    already converts (``guess``) is not converted again when it is written the same.
    """
    assembly = _Assembly(chunks, bundles, staging, context)
    unavailable = None
    conversions = assembly.plan(stale, chunks, bundles)
    if guess is not None and (adopted := assembly.adopt(guess, conversions)) is not None:
        assembly.pool = pool  # it runs: a chunk it fails is converted form by form
        conversions = [conversion for conversion in conversions if conversion is not adopted]
    if conversions:
        try:
            pool.launch(len(conversions))
            assembly.pool = pool
        except convert.ConvertError as exc:  # no LibreOffice or no CJK font: DOCX only
            unavailable = str(exc)
    batches = [[conversions[index] for index in batch]
               for batch in convert.balance([conversion.weight for conversion in conversions], pool.workers)]
    if unavailable is None:
        for batch in batches:
            # A chunk LibreOffice fails is converted form by form (see _fall_back), not again.
            pool.submit([conversion.path for conversion in batch], retry=all(c.chunk is None for c in batch))
    for conversion in _round_robin(batches):
        assembly.prepare(conversion)
    pool.inputs_written()
    assembly.compose()
    if unavailable is None:
        while pool.running() or not arrivals.empty():
            if assembly.reads_ahead() and arrivals.empty():
                assembly.read_ahead()
                continue
            with contextlib.suppress(queue.Empty):
                assembly.arrive(*arrivals.get(timeout=_POLL_SECONDS))
        pool.wait()
    assembly.finish(unavailable)
    return assembly.written


def _arrivals(pool: convert.Pool) -> queue.Queue[tuple[Path, convert.Outcome]]:
    """Where the pool's workers put each document's outcome (PDF or why none), for the main thread."""
    arrivals: queue.Queue[tuple[Path, convert.Outcome]] = queue.Queue()
    pool.on_result = lambda doc, outcome: arrivals.put((doc, outcome))
    return arrivals


@dataclass
class EarlyChunk:
    """A chunk handed to LibreOffice before the tree was checked (``convert_early``)."""

    key: str  # the chunk's (``Chunk.key``)
    path: Path  # the DOCX LibreOffice converts
    digest: str  # its sha256
    forms: dict[tuple[Path, str], Path]  # (project file, ``Job.own``) → the form's DOCX, as written for it


def convert_early(paths: list[Path], changed: list[Source] | None, sources: list[Source], cache: CheckCache,
                  context: tuple[State, Path, Options], staging: Path, pool: convert.Pool) -> EarlyChunk | None:
    """When one project file has changed since the last build (``likely_changes``), the chunk it
    is in is nearly always the only one to convert. It is planned from the projects of that
    file's folder (a unit's, as a rule), checked first, written and handed to LibreOffice, which
    then converts it while the whole tree is checked and planned (a tenth of a second at
    N = 100, more on larger trees). ``produce`` uses that conversion only when the chunk the
    whole tree gives is written with the same bytes (a unit spread over folders, a project
    moved to another unit, a name used twice: other bytes); otherwise it converts its own, and
    this one's PDF is not used."""
    state, out, options = context
    if changed is None or len(changed) != 1 or options.force or options.pdfa or options.shard is not None:
        return None
    source = changed[0]
    neighbours = [other for other in sources if other.path.parent == source.path.parent]
    missed = cache.missed
    results = check_paths(paths, cache, neighbours)
    if cache.missed - missed > 1:
        # Its neighbours' checks were not kept (reportgen or a region changed): the tree's are
        # likely not either, and checking them takes a helper process (``check_ahead``), which a
        # conversion running in a thread would forbid (a process with threads is not forked).
        return None
    jobs = plan([checked for checked in results if checked.ok], out, options)
    aside = Report()  # what the whole tree's planning reports is what counts
    bundles = plan_bundles(jobs, [checked for checked in results if not checked.ok], aside)
    chunk = next((chunk for chunk in plan_chunks(jobs, bundles, options)
                  if any(job.checked.source is source for job in chunk.jobs)), None)
    if chunk is None or state.fresh(chunk.key(out), chunk.fingerprint, [chunk.stored(out)]):
        return None
    staging.joinpath("early").mkdir()
    assembly = _Assembly([chunk], [], staging / "early", (state, out, options, aside, _no_progress))
    conversion = assembly.plan(chunk.jobs, [chunk], [])[0]
    assembly.prepare(conversion)
    if aside.failures or not conversion.path.is_file():
        return None
    try:
        pool.submit([conversion.path], retry=False)
    except convert.ConvertError:  # said when the build converts what it planned
        return None
    forms = {(job.checked.source.path, job.own): assembly.staged[id(job)] for job in chunk.jobs}
    return EarlyChunk(chunk.key(out), conversion.path, bundle.sha256_of(conversion.path), forms)


def _round_robin(batches: list[list[_Conversion]]) -> Iterator[_Conversion]:
    """The documents in the order in which parallel workers reach them."""
    for row in itertools.zip_longest(*batches):
        yield from (conversion for conversion in row if conversion is not None)


_POLL_SECONDS = 0.05
READ_AHEAD = 4  # kept chunks read ahead and held until their bundle is written (a few MB each)
# For measurements (benchmarks/run.py): where to write what the LibreOffice kept running used.
STATS_VARIABLE = "REPORTGEN_STATS"


def _write_bundle(item: Bundle, merged_docx: Path, parts: list[tuple[str, Path | tuple[pdfpages.Source, int, int]]],
                  out: Path) -> None:
    folder, members, when = item.folder, item.members, item.when
    docx_name, pdf_name, csv_name, manifest_name = Bundle.NAMES
    # The merge reads every PDF and may find one broken: first, so that nothing has changed then.
    _merge_pdf(parts, folder / pdf_name, item.title, when)
    _remove_strays(folder, {f"{j.stem}{s}" for j in members for s in (".docx", ".pdf")} | set(Bundle.NAMES))
    _move(merged_docx, folder / docx_name)
    bundle.write_summary_csv([summary_row(j) for j in members], folder / csv_name)
    info = {
        "reportgen": __version__,
        "year": folder.parent.name,
        "unit": folder.name,
        "regions": {j.checked.region.id: _region_files(j) for j in members},
        "projects": [{"name": j.checked.project.name, "file": j.stem} for j in members],
    }
    inputs = {Path(display_path(path)): digest
              for j in members for path, digest in zip(j.inputs, j.input_digests, strict=True)}
    bundle.write_manifest(folder / manifest_name, folder, inputs, info)
    bundle.write_zip(folder, item.archive, when)


def _merge_pdf(parts: list[tuple[str, Path | tuple[pdfpages.Source, int, int]]], target: Path, title: str,
               when: datetime.datetime) -> None:
    """全部项目.pdf: the parts' pages with their structure and one bookmark each (``pdfpages``);
    PDFs it does not read (PDF/A) are merged with pypdf, without structure."""
    from . import pdfpages
    try:
        pieces = []
        for name, part in parts:
            if isinstance(part, Path):
                with _reading(part):
                    source = pdfpages.Source(part.read_bytes())
                pieces.append(pdfpages.Part(source, 0, len(source.pages), name))
            else:
                pieces.append(pdfpages.Part(part[0], part[1], part[2], name))
        bundle.write_bytes(target, pdfpages.assemble(pieces, title, when))
        return
    except pdfpages.Unsupported:
        pass
    with tempfile.TemporaryDirectory(prefix="reportgen-merge-") as scratch:
        files = []
        for index, (name, part) in enumerate(parts):
            if not isinstance(part, Path):
                path = Path(scratch) / f"{index}.pdf"
                path.write_bytes(pdfpages.cut(*part, name, when))
                part = path
            files.append((name, part))
        bundle.merge_pdfs(files, target, title, when)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise ConvertError(f"{path.name}：{exc.strerror or exc}") from exc


def _region_files(job: Job) -> dict[str, str]:
    """Where a form's region came from and the sha256 of each of its files as the form was
    built from them, for the manifest."""
    region = job.checked.region
    assert region is not None
    files = {str(path.relative_to(region.folder)): digest
             for path, digest in zip(job.inputs, job.input_digests, strict=True) if path.is_relative_to(region.folder)}
    return {"from": region.origin, **files}


def _remove_strays(folder: Path, expected: set[str]) -> None:
    """Outputs of projects that no longer exist would otherwise be bundled again."""
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".docx", ".pdf") and path.name not in expected:
            path.unlink()


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


@dataclass
class _Work:
    """What a build makes: the tree's bundles (of the shard), and what of it is stale."""

    bundles: list[Bundle]
    stale: list[Job]  # projects whose form is rendered (and converted, alone or in its chunk)
    stale_chunks: list[Chunk]
    stale_bundles: list[Bundle]
    digests: dict[Path, str]  # input file → its sha256, as read for planning (the build's record)


def _planned(results: list[Checked], context: tuple[State, Path, Options], report: Report) -> _Work:
    """The checked projects planned into forms, chunks and bundles, those of ``options.shard``
    kept, and compared with what the last build made; the report's counts filled in."""
    state, out, options = context
    digests: dict[Path, str] = {}
    # The whole tree is planned, also for a shard: what is built of a unit depends on the
    # units around it no more than on the machine (see ``in_shard``).
    everything = plan([c for c in results if c.ok], out, options, digests)
    bundles = plan_bundles(everything, [c for c in results if not c.ok], report)
    chunks = plan_chunks(everything, bundles, options)
    if options.shard is not None:
        mine = {id(c) for c in results if in_shard(shard_key(c, out), options.shard)}
        results = [c for c in results if id(c) in mine]
        report.failures = [f for f in report.failures if in_shard(_failure_key(f, out), options.shard)]
        jobs = [job for job in everything if id(job.checked) in mine]
        bundles = [item for item in bundles if in_shard(item.key(out), options.shard)]
        chunks = [chunk for chunk in chunks if in_shard(chunk.key(out).split("#")[0], options.shard)]
    else:
        jobs = everything
    report.problems = [p for checked in results for p in checked.problems]
    report.projects = len(results)
    report.warnings = sum(not p.is_error for p in report.problems)
    report.failures[:0] = [f"{display_path(c.source.path)}: 数据有错误，未生成" for c in results if not c.ok]

    def fresh(job: Job) -> bool:
        return state.fresh(_key(job, out), job.fingerprint, job.outputs)

    # A chunk is converted again as a whole when any of its forms or its kept PDF is stale.
    stale_chunks = [c for c in chunks if options.force or not (
        state.fresh(c.key(out), c.fingerprint, [c.stored(out)]) and all(fresh(job) for job in c.jobs))]
    in_stale_chunk = {id(job) for chunk in stale_chunks for job in chunk.jobs}
    stale = [job for job in jobs
             if id(job) in in_stale_chunk or (job.chunk is None and (options.force or not fresh(job)))]
    report.skipped = len(jobs) - len(stale)
    stale_bundles = [b for b in bundles
                     if options.force or not state.fresh(b.key(out), b.fingerprint, b.outputs)]
    return _Work(bundles, stale, stale_chunks, stale_bundles, digests)


def build(paths: list[Path], out: Path, options: Options | None = None, progress: Progress = _no_progress,
          tree: Tree | None = None) -> Report:
    """Build every project under ``paths`` into ``out``; one failing project stops no other.

    When the inputs have changed since the last build (or there was none), LibreOffice is
    started before the projects are validated (see ``likely_changes``): it needs about a second to
    start, and validating, planning and rendering take about as long on a large tree.
    ``tree``: the tree as the caller found it before (the command line does, to see whether there
    is anything to do): its key (``state.tree_key``) and its project files.
    """
    from .load import discover

    options = options or Options()
    started, report = time.monotonic(), Report()
    # A path that does not exist is a usage error, before anything is written.
    sources = tree.sources if tree is not None and tree.sources is not None else discover(paths)
    workers = max(1, options.jobs or os.cpu_count() or 1)
    convert.office_allocator()  # a wrong REPORTGEN_LIBREOFFICE_MALLOC is said before anything is written
    with build_lock(out), _pool(options, workers, progress) as pool:
        state = State(out)
        # The tree's key, taken before any input is read (by the caller, or here).
        key = tree.key if tree is not None else tree_key(paths, out, options.pdfa, options.shard, sources)
        changed = likely_changes(sources, state)
        early = min(workers, workers if changed is None else len(changed))
        if early:
            with contextlib.suppress(convert.ConvertError):  # said when there is work for it
                pool.launch(early)
        checked_before = CheckCache(out / STATE_FOLDER / CHECKED_FILE)
        with tempfile.TemporaryDirectory(prefix=".staging-", dir=out / STATE_FOLDER) as folder:
            staging = Path(folder)
            arrivals = _arrivals(pool)
            # One project changed: its chunk is converted while the tree is checked and planned.
            guess = convert_early(paths, changed, sources, checked_before, (state, out, options), staging, pool)
            results = check_paths(paths, checked_before, sources)
            checked_before.save()
            work = _planned(results, (state, out, options), report)
            # The projects live until the end: keep them out of the garbage collections made while
            # producing (once per merged unit), which then only walk what it creates.
            gc.freeze()
            try:
                context = (state, out, options, report, progress)
                written = produce(work.stale, work.stale_chunks, work.stale_bundles, staging, context, pool,
                                  arrivals, guess)
            finally:
                gc.unfreeze()
                recorded = state.entries.get(INPUTS_KEY, {}).get("files", {})
                files = {**recorded, **{str(path.resolve()): digest for path, digest in work.digests.items()}}
                state.entries[INPUTS_KEY] = {"files": dict(sorted(files.items()))}
                state.entries.pop(TREE_KEY, None)  # recorded again below once the build is complete
                if sys.exc_info()[0] is not None:
                    state.save()  # what was published is recorded, also when the build stops early
            # Only current bundles: a unit whose bundle could not be rebuilt is listed under failures.
            report.bundles = [b.archive for b in work.bundles if b not in work.stale_bundles or b in written]
            try:
                # A build with forms converted one by one is not taken as final: the next one tries again.
                if report.ok and not report.notices and key is not None:
                    remember_tree(state, key, out, report)
            finally:
                state.save()  # once: after a complete build, with the tree's record
    report.seconds = time.monotonic() - started
    _write_stats(pool)
    return report


def _write_stats(pool: convert.Pool) -> None:
    """For measurements (``benchmarks/run.py``): what the LibreOffice kept running used, and
    this process (which a kept reportgen forked, or the command itself) and the processes it
    waited for, written as JSON to the file ``REPORTGEN_STATS`` names."""
    target = os.environ.get(STATS_VARIABLE)
    if target:
        import resource

        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        stats = {**pool.stats(), "pid": os.getpid(), "cpu_s": round(own.ru_utime + own.ru_stime, 3),
                 "children_cpu_s": round(children.ru_utime + children.ru_stime, 3),
                 "peak_mb": round(own.ru_maxrss / 1024, 1)}
        with contextlib.suppress(OSError):
            Path(target).write_text(json.dumps(stats), encoding="utf-8")


def shard_key(checked: Checked, out: Path) -> str:
    """The unit a project belongs to, as its bundle's key (``年度/单位``); for a project whose
    data does not say (it has errors), the folder of its file."""
    project = checked.project
    if project is not None and project.year:
        return f"{project.year}/{bundle.safe_filename(unit_of(checked), set())}"
    return str(checked.source.path.parent)


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Whether the unit ``key`` is built by shard ``shard`` (K of N, from 1): a share fixed by
    the unit's name alone, so that every machine, and every later build, agrees."""
    index, count = shard
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % count == index - 1


def _failure_key(failure: str, out: Path) -> str:
    """The unit a failure of bundle planning names (``<out>/<年度>/<单位>: …``)."""
    folder = Path(failure.split(": ", 1)[0])
    try:
        return str(folder.relative_to(out))
    except ValueError:
        return str(folder)


def _pool(options: Options, workers: int, progress: Progress) -> convert.Pool:
    keep = convert.keep_seconds() if options.keep is None else options.keep
    return convert.Pool(options.soffice, options.timeout, options.pdfa, workers=workers, keep=keep,
                        progress=lambda done, total: progress("转换 PDF", done, total),
                        measured=bool(os.environ.get(STATS_VARIABLE)))
