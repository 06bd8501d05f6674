"""The data folder the web page works on: its projects, their drafts, previews and builds.

Every path the page names is checked here: a project file is a ``*.yaml`` inside the data
folder (after resolving links), not a unit file and not in ``regions/``; a download is a built
file inside the output folder. Drafts are validated by the same validator as the command line,
as the project file they will replace (with the unit files it inherits from), from a private
temporary folder: nothing is written into the data folder before the clerk saves.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .. import build as building
from .. import report
from ..errors import Problem, ReportgenError, display_path
from ..load import PROJECT_SUFFIXES, REGIONS_FOLDER, UNIT_FILE, Document, Source, decode, discover, load_file
from ..package import atomic_path
from ..reference import starter_yaml
from ..regions import Region, add_region_folders, all_regions, data_region_folders, find_region, held, regions_stamp
from ..schema import Project, labels_of
from ..score import Loc
from ..state import CHECKED_FILE, STATE_FOLDER
from ..validate import CheckCache, Checked, Files, check_paths, check_source
from . import form as forms

MAX_TEXT = 2_000_000  # as the loader: a project file is smaller than 2 MB
DOWNLOADS = (".pdf", ".zip", ".docx", ".csv")


class Refused(Exception):
    """A path the page may not use: outside the folder, or not a project file (HTTP 403)."""


class NotFound(Exception):
    """A project or file that does not exist (HTTP 404)."""


class Conflict(Exception):
    """The file changed on disk since the page read it (HTTP 409)."""


class Busy(Exception):
    """A build is running for this output folder already (HTTP 409)."""


def _file_stamp(paths: tuple[Path, ...]) -> tuple:
    """Sizes, times and inodes of files (an editor that saves by renaming gives a new inode);
    empty when one cannot be looked at."""
    try:
        return tuple((s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino) for s in map(os.stat, paths))
    except OSError:
        return ()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encoding(raw: bytes) -> tuple[str, bytes, str | None]:
    """How to write a file back as it was read: its codec, its BOM, and a note when it will
    change (GBK files are saved as UTF-8, as the validator advises)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8", b"\xef\xbb\xbf", None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", b"", None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "utf-8", b"", "此文件是 GBK/GB18030 编码，保存时将改为 UTF-8"
    return "utf-8", b"", None


@dataclass
class Parsed:
    """A project file's text as the validator and the form read it."""

    path: Path
    text: str
    region: Region | None
    checked: Checked
    layout: forms.Layout | None
    snapshot: forms.Snapshot | None
    error: str | None  # why the form cannot edit it (a YAML syntax error)
    project_file: str  # the project file's name in the validator's problems and places
    names: dict[str, str]  # the validator's file names → the names shown (relative to the data folder)


@dataclass
class BuildJob:
    id: str
    unit: str
    state: str = "running"  # running, done, failed
    stage: str = "校验"
    done: int = 0
    total: int = 0
    message: str = ""
    failures: list[str] = field(default_factory=list)
    archive: str | None = None
    started: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict:
        return {"id": self.id, "unit": self.unit, "state": self.state, "stage": self.stage, "done": self.done,
                "total": self.total, "message": self.message, "failures": self.failures, "archive": self.archive}


class Workspace:
    """One data folder and its output folder, shared by every request."""

    def __init__(self, data: Path, out: Path | None = None) -> None:
        if not data.is_dir():
            raise ReportgenError(f"找不到数据文件夹：{data}")
        self.data = data.resolve()
        self.out = (out if out is not None else self.data.parent / "build").resolve()
        self.scratch = Path(tempfile.mkdtemp(prefix="reportgen-serve-"))
        self._parsed: OrderedDict[tuple[Path, str], Parsed] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._preview_lock = threading.Lock()
        self._previews: dict[str, str] = {}  # project → its latest preview's token
        self._build_lock = threading.Lock()
        self.jobs: dict[str, BuildJob] = {}
        self._checked: dict[str, bytes] = {}  # what checking the data folder found last (CheckCache entries)
        # Each project file's unit folder (None: not buildable), with its files' stamp (_file_stamp)
        # and the regions' stamp when it was found: what 生成本单位 needs to find a unit's projects.
        self._unit_folders: dict[Path, tuple[tuple, Path | None]] = {}
        self._unit_regions: tuple | None = None
        self._members_lock = threading.Lock()
        add_region_folders(data_region_folders([self.data]))

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    # --- paths -----------------------------------------------------------------------------

    def _inside(self, root: Path, relative: str) -> Path:
        """``root / relative`` resolved, refused unless it stays inside ``root``."""
        if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
            raise Refused("路径无效")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", relative):
            raise Refused("路径无效")
        resolved = (root / pure).resolve()
        if resolved != root and not resolved.is_relative_to(root):
            raise Refused("只能使用数据文件夹中的文件")
        return resolved

    def project_path(self, relative: str) -> Path:
        """A project file of the data folder, by its path relative to it."""
        path = self._inside(self.data, relative)
        inner = path.relative_to(self.data)
        if path.suffix not in PROJECT_SUFFIXES or path.name.startswith(("_", ".")) or inner.parts[0] == REGIONS_FOLDER:
            raise Refused("只能打开项目文件（*.yaml，不含单位文件 _unit.yaml 和 regions/ 中的文件）")
        if not path.is_file():
            raise NotFound(f"找不到项目文件 {relative}")
        return path

    def download_path(self, relative: str) -> Path:
        path = self._inside(self.out, relative)
        hidden = building.STATE_FOLDER in path.relative_to(self.out).parts
        if path.suffix not in DOWNLOADS or not path.is_file() or hidden:
            raise NotFound("找不到该文件")
        return path

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.data).as_posix()

    # --- reading and validating ------------------------------------------------------------

    def read(self, path: Path) -> tuple[str, str, str | None]:
        """A project file's text, its version (the sha256 of its bytes) and a note on its encoding."""
        raw = path.read_bytes()
        if len(raw) > MAX_TEXT:
            raise Refused("文件过大，项目文件应小于 2 MB")
        text, _ = decode(raw)
        return text, _sha(raw), _encoding(raw)[2]

    def source(self, path: Path) -> Source:
        """The project file with the unit files it inherits from, as ``build`` of the data folder
        finds them (each folder's ``_unit.yaml`` from the data folder down)."""
        return Source(path, tuple(_unit_files_above(path.parent, self.data)))

    def check_text(self, path: Path, text: str) -> tuple[Checked, dict[str, Document], str, dict[str, str]]:
        """Validate a text as the project file ``path`` (inheriting its unit files), without
        writing into the data folder: from a private temporary copy of the same name."""
        source = self.source(path)
        with tempfile.TemporaryDirectory(dir=self.scratch) as folder:
            draft = Path(folder) / path.name
            draft.write_text(text, encoding="utf-8")
            checked = check_source(Source(draft, source.unit_files))
            project_file = display_path(draft)
            documents = {project_file: load_file(draft)}
            names = {project_file: self.rel(path)}
            for unit in source.unit_files:
                documents[display_path(unit)] = load_file(unit)
                names[display_path(unit)] = self.rel(unit)
        return checked, documents, project_file, names

    def parse(self, path: Path, text: str) -> Parsed:
        """The text as the form reads it: validated, laid out by its region, its values read;
        the last few are kept (each keystroke's check reads the same base again)."""
        key = (path, _sha(text.encode("utf-8")))
        with self._cache_lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return self._parsed[key]
        checked, documents, project_file, names = self.check_text(path, text)
        region = checked.region or _named_region(documents, project_file)
        layout = snapshot = error = None
        document = documents[project_file]
        if document.data is None:
            error = "；".join(p.message for p in document.problems if p.is_error) or "文件无法读取"
        elif region is None:
            error = "没有找到本文件的地区，无法显示表格"
        else:
            try:
                forms.load_round_trip(text)
            except forms.FormError as exc:
                error = str(exc)
            else:
                layout = forms.layout(region)
                snapshot = forms.snapshot(layout, checked, documents, project_file)
                snapshot.inherited = {key: names.get(file, file) for key, file in snapshot.inherited.items()}
                snapshot.rows_inherited = {key: names.get(f, f) for key, f in snapshot.rows_inherited.items()}
        parsed = Parsed(path, text, region, checked, layout, snapshot, error, project_file, names)
        with self._cache_lock:
            self._parsed[key] = parsed
            while len(self._parsed) > 32:
                self._parsed.popitem(last=False)
        return parsed

    def open(self, relative: str) -> tuple[Parsed, str, str | None]:
        path = self.project_path(relative)
        text, version, note = self.read(path)
        return self.parse(path, text), version, note

    def draft(self, relative: str, base: str, state: dict) -> tuple[Parsed, str, forms.Editor]:
        """The text the state makes of ``base`` (the file as the page read it)."""
        path = self.project_path(relative)
        if len(base) > MAX_TEXT:
            raise Refused("文件过大，项目文件应小于 2 MB")
        parsed = self.parse(path, base)
        if parsed.layout is None or parsed.snapshot is None:
            raise Refused(parsed.error or "无法编辑此文件")
        editor = forms.Editor(parsed.layout, base, parsed.checked, parsed.snapshot, parsed.project_file)
        return parsed, editor.apply(state), editor

    def assess(self, relative: str, base: str, state: dict) -> dict:
        """What the page shows as the clerk types: every finding at its field, the score
        explanation, total and grade, and how many values differ from the file."""
        parsed, text, _ = self.draft(relative, base, state)
        assert parsed.layout is not None and parsed.snapshot is not None
        checked, _, project_file, names = self.check_text(parsed.path, text)
        changed = list(forms.changed_keys(parsed.layout, parsed.snapshot, state))
        return {**findings(checked, parsed.layout, project_file, names), "changed": len(changed)}

    # --- saving ----------------------------------------------------------------------------

    def save(self, relative: str, version: str, base: str, state: dict) -> dict:
        """Write the state into the file, unless the file changed on disk since ``version``."""
        path = self.project_path(relative)
        raw = path.read_bytes()
        if _sha(raw) != version:
            raise Conflict("此文件在本页打开之后已在磁盘上被修改（可能是别人或别的程序改的），为免覆盖，没有保存。"
                           "你填写的内容仍在本页，并已作为草稿保存在浏览器中。")
        codec, bom, _ = _encoding(raw)
        disk_text, _ = decode(raw)
        _, text, _ = self.draft(relative, disk_text if disk_text == base else base, state)
        data = bom + text.encode(codec)
        if data != raw:
            mode = path.stat().st_mode & 0o7777
            with atomic_path(path) as temporary:
                temporary.write_bytes(data)
                os.chmod(temporary, mode)
        new_text, new_version, note = self.read(path)
        parsed = self.parse(path, new_text)
        assert parsed.snapshot is not None
        return {"version": new_version, "base": new_text, "state": parsed.snapshot.state(), "note": note,
                "written": data != raw}

    def rebase(self, relative: str, old_base: str, state: dict) -> dict:
        """A draft made against an older version of the file, carried over to the file on disk."""
        path = self.project_path(relative)
        old = self.parse(path, old_base)
        text, version, _ = self.read(path)
        new = self.parse(path, text)
        if old.snapshot is None or new.snapshot is None or new.layout is None:
            raise Refused("无法合并：文件无法按表格读取")
        return {"version": version, "base": text, "state": forms.rebase(new.layout, old.snapshot, state, new.snapshot)}

    # --- new projects ----------------------------------------------------------------------

    def new_project(self, folder: str, name: str, region_id: str) -> str:
        """A new project file from the region's starter (``reportgen new``), in a folder of the data."""
        name = name.strip()
        if not name or "/" in name or "\\" in name or name.startswith(("_", ".")):
            raise Refused("文件名不能为空，不能含 / \\，不能以 _ 或 . 开头")
        if not name.endswith(PROJECT_SUFFIXES):
            name += ".yaml"
        target_folder = self._inside(self.data, folder.strip().strip("/") or ".") if folder.strip("/ ") else self.data
        if target_folder != self.data and target_folder.relative_to(self.data).parts[0] == REGIONS_FOLDER:
            raise Refused("regions/ 中是地区文件夹，不能放项目文件")
        target = self._inside(self.data, (target_folder / name).relative_to(self.data).as_posix())
        region = find_region(region_id)
        if region is None:
            raise Refused(f"未知的地区「{region_id}」")
        if target.exists():
            raise Refused(f"{self.rel(target)} 已存在")
        text = _starter_for(region, _unit_files_above(target_folder, self.data))
        target_folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            temporary.write_text(text, encoding="utf-8")
        return self.rel(target)

    def import_word(self, name: str, data: bytes) -> dict:
        """A filled Word form (``reportgen import``): its projects written into the data folder
        by 年度/单位 (an existing file is kept), with what the import noticed."""
        from .. import importer

        name = PurePosixPath(name.replace("\\", "/")).name
        if not name.lower().endswith((".docx", ".doc")) or name.startswith((".", "~$")):
            raise Refused("只能导入 Word 文件（.docx 或 .doc）")
        with tempfile.TemporaryDirectory(dir=self.scratch) as folder:
            document = Path(folder) / name
            document.write_bytes(data)
            forms, problems = importer.import_file(document, None)
            problems = [*problems, *(p for form in forms for p in form.problems)]
            written = importer.write_projects(forms, self.data, force=False)
            problems.extend(written.problems)
            shown = [str(p).replace(str(document), name).replace(f"{self.data}{os.sep}", "") for p in problems]
        files = [self.rel(path) for path in written.files if path.resolve().is_relative_to(self.data)]
        return {"files": [{"path": f, "url": "/project/" + quote(f, safe="/")} for f in files
                          if not PurePosixPath(f).name.startswith("_")],
                "units": [f for f in files if PurePosixPath(f).name.startswith("_")],
                "problems": shown, "forms": len(forms)}

    def unit_folders(self) -> list[str]:
        """The data's folders that hold projects or a unit file: where a new project may go."""
        folders = {
            path.parent for path in self.data.rglob("*")
            if path.suffix in PROJECT_SUFFIXES and path.is_file() and not path.name.startswith(".")
            and path.relative_to(self.data).parts[0] != REGIONS_FOLDER and path.resolve().is_relative_to(self.data)
        }
        return sorted(self.rel(folder) if folder != self.data else "" for folder in folders)

    # --- preview ---------------------------------------------------------------------------

    def preview(self, relative: str, base: str, state: dict) -> dict:
        """The draft's printed form: rendered and converted by LibreOffice as ``build`` does,
        pages as PNG images; one preview at a time (LibreOffice is heavy)."""
        parsed, text, _ = self.draft(relative, base, state)
        with self._preview_lock, tempfile.TemporaryDirectory(dir=self.scratch) as folder:
            source = self.source(parsed.path)
            draft = Path(folder) / parsed.path.name
            draft.write_text(text, encoding="utf-8")
            checked = check_source(Source(draft, source.unit_files))
            if not checked.ok:
                errors = sum(p.is_error for p in checked.problems)
                return {"error": f"还有 {errors} 个错误，改正后才能预览"}
            job = building.plan([checked], Path(folder) / "out", building.Options())[0]
            docx = Path(folder) / "form.docx"
            token = secrets.token_hex(8)
            target = self.scratch / "previews" / token
            target.mkdir(parents=True)
            try:
                from .. import convert

                building.render_form(job, docx)
                pdf = convert.convert_to_pdf([docx], target)[0]
            except ReportgenError as exc:
                shutil.rmtree(target, ignore_errors=True)
                return {"error": f"预览失败：{exc}"}
            pdf = pdf.rename(target / "preview.pdf")
            subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(target / "page")],
                           check=False, capture_output=True, timeout=60)
            pages = sorted(target.glob("page-*.png"), key=lambda p: int(p.stem.rpartition("-")[2]))
        old = self._previews.get(relative)
        self._previews[relative] = token
        if old:
            shutil.rmtree(self.scratch / "previews" / old, ignore_errors=True)
        return {"pdf": f"/preview/{token}/preview.pdf", "pages": [f"/preview/{token}/{p.name}" for p in pages]}

    def preview_file(self, token: str, name: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16}", token) or not re.fullmatch(r"(page-\d+\.png|preview\.pdf)", name):
            raise NotFound("找不到预览")
        path = self.scratch / "previews" / token / name
        if not path.is_file():
            raise NotFound("找不到预览")
        return path

    # --- overview --------------------------------------------------------------------------

    def check_all(self) -> list[Checked]:
        """Every project of the data folder, checked as a build checks it: a project whose files,
        regions and reportgen are as when the last build or the last look found it is taken from
        the build's check cache and from what this page found then (the overview and every build
        would otherwise check every project again: half a second for a hundred). The page does
        not write the cache file: the builds do."""
        cache = self._check_cache()
        results = check_paths([self.data], cache)
        self._checked = cache.used
        return [c for c in results if self._in_data(c.source)]

    def _check_cache(self) -> CheckCache:
        """The last build's check cache, with what this page found since (not written back)."""
        cache = CheckCache(self.out / STATE_FOLDER / CHECKED_FILE)
        cache.entries.update(self._checked)
        return cache

    def _in_data(self, source: Source) -> bool:
        """A project file inside the data folder once links are resolved."""
        return source.path.resolve().is_relative_to(self.data)

    def unit_members(self, folder: Path) -> list[Source]:
        """The project files of the data folder whose forms go to the unit ``folder``. Where each
        project goes is kept with its files' sizes and times: only a project whose files (or
        the regions) changed since is read and checked again, from the check cache when it can
        (checking the whole folder on every 生成本单位 took 0.1 s for a hundred projects).
        Checking across projects (duplicate names) does not move a project: the build does it."""
        sources = discover([self.data])
        add_region_folders(data_region_folders([self.data]))  # as check_paths: regions made since
        cache: CheckCache | None = None
        files = Files()
        members = []
        with self._members_lock, held():
            regions = regions_stamp()
            if regions != self._unit_regions:
                self._unit_folders.clear()
                self._unit_regions = regions
            for source in sources:
                stamp = _file_stamp((*source.unit_files, source.path))  # before reading: never newer
                known = self._unit_folders.get(source.path)
                if known is None or known[0] != stamp:
                    cache = self._check_cache() if cache is None else cache
                    checked = cache.check(source, files)
                    buildable = checked.project is not None and checked.region is not None and self._in_data(source)
                    known = (stamp, building.unit_folder(checked, self.out).resolve() if buildable else None)
                    if stamp:
                        self._unit_folders[source.path] = known
                if known[1] == folder:
                    members.append(source)
            self._unit_folders = {s.path: self._unit_folders[s.path] for s in sources if s.path in self._unit_folders}
            if cache is not None:
                self._checked.update(cache.used)
        return members

    def overview(self) -> dict:
        """Units and years as ``build/`` holds them, each project with its state."""
        results = self.check_all()
        plannable = [c for c in results if c.project is not None and c.region is not None]
        jobs = building.plan(plannable, self.out, building.Options())
        state = building.State(self.out)
        failed = [c for c in results if not c.ok]
        ok = [j for j in jobs if j.checked.ok]
        planned = building.plan_bundles(ok, failed, building.Report())
        building.plan_chunks(ok, planned, building.Options())  # a form's PDF depends on its chunk too
        bundles = {b.folder: b for b in planned}
        units: dict[Path, dict] = {}
        for job in jobs:
            folder = job.folder
            unit = units.setdefault(folder, _unit_view(folder, self.out))
            unit["projects"].append(self._project_view(job.checked, job, state))
        for unit in units.values():
            folder = self.out / unit["key"]
            item = bundles.get(folder)
            archive = folder.with_suffix(".zip")
            unit["archive"] = archive.relative_to(self.out).as_posix() if archive.is_file() else None
            if any(p["errors"] for p in unit["projects"]):
                unit["status"], unit["state"] = "有项目存在错误，不能打包", "error"
            elif item is not None and state.fresh(item.key(self.out), item.fingerprint, item.outputs):
                unit["status"], unit["state"] = "报送包已是最新", "built"
            elif archive.is_file():
                unit["status"], unit["state"] = "报送包需要重新生成", "stale"
            else:
                unit["status"], unit["state"] = "尚未生成报送包", "missing"
        years: dict[str, list[dict]] = {}
        for unit in sorted(units.values(), key=lambda u: (u["year"], u["name"])):
            years.setdefault(unit["year"], []).append(unit)
        unreadable = [self._project_view(c, None, state) for c in results if c.project is None or c.region is None]
        return {
            "years": sorted(years.items(), reverse=True),
            "unreadable": unreadable,
            "projects": len(results),
            "errors": sum(p.is_error for c in results for p in c.problems),
            "warnings": sum(not p.is_error for c in results for p in c.problems),
        }

    def _project_view(self, checked: Checked, job: building.Job | None, state: building.State) -> dict:
        errors = sum(p.is_error for p in checked.problems)
        view = {
            "path": self.rel(checked.source.path),
            "name": checked.project.name if checked.project else checked.source.path.stem,
            "region": checked.region.name if checked.region else "",
            "errors": errors,
            "warnings": len(checked.problems) - errors,
            "total": report.number(checked.result.total) if checked.result else None,
            "grade": checked.result.grade if checked.result else None,
            "pdf": None,
        }
        if job is not None and job.pdf.is_file():
            view["pdf"] = job.pdf.relative_to(self.out).as_posix()
        if errors:
            view["status"], view["state"] = "有错误，不能生成", "error"
        elif job is not None and state.fresh(str(job.docx.relative_to(self.out)), job.fingerprint, job.outputs):
            view["status"], view["state"] = "已生成", "built"
        elif view["pdf"]:
            view["status"], view["state"] = "已修改，需重新生成", "stale"
        else:
            view["status"], view["state"] = "未生成", "missing"
        return view

    # --- builds ----------------------------------------------------------------------------

    def start_build(self, unit: str) -> BuildJob:
        """Build one unit's projects and bundle in the background; one build at a time."""
        folder = self._inside(self.out, unit)
        members = self.unit_members(folder)
        if not members:
            raise NotFound("找不到该单位的项目")
        if not self._build_lock.acquire(blocking=False):
            running = next((j for j in self.jobs.values() if j.state == "running"), None)
            what = f"（{running.unit}）" if running else ""
            raise Busy(f"已有一个生成任务正在进行{what}，请等它结束后再生成")
        job = BuildJob(secrets.token_hex(8), unit)
        self.jobs[job.id] = job
        # A unit file above a project's own folder is inherited only when the build starts from
        # the data folder: then the whole folder is built (unchanged projects are skipped).
        own = all(all(u.parent == s.path.parent for u in s.unit_files) for s in members)
        paths = [s.path for s in members] if own else [self.data]
        thread = threading.Thread(target=self._run_build, args=(job, paths, folder), name="reportgen-build",
                                  daemon=True)
        thread.start()
        return job

    def _run_build(self, job: BuildJob, paths: list[Path], folder: Path) -> None:
        def progress(stage: str, done: int, total: int) -> None:
            job.stage, job.done, job.total = stage, done, total

        try:
            result = building.build(paths, self.out, building.Options(), progress)
        except ReportgenError as exc:
            job.state, job.message = "failed", str(exc)
        except Exception as exc:  # reported on the page, as the command line reports it
            job.state, job.message = "failed", f"reportgen 内部错误：{type(exc).__name__}: {exc}"
        else:
            archive = folder.with_suffix(".zip")
            job.failures = [_relative_failure(f, self) for f in result.failures]
            job.failures += [_relative_failure(f"提示：{notice}", self) for notice in result.notices]
            job.message = result.summary()
            if archive in [a.resolve() for a in result.bundles] and archive.is_file():
                job.archive = archive.relative_to(self.out).as_posix()
            job.state = "done" if result.ok else "failed"
        finally:
            self._build_lock.release()


def _relative_failure(failure: str, workspace: Workspace) -> str:
    for root in (workspace.data, workspace.out):
        failure = failure.replace(f"{root}{os.sep}", "")
    return failure


def _unit_view(folder: Path, out: Path) -> dict:
    return {"key": folder.relative_to(out).as_posix(), "year": folder.parent.name, "name": folder.name,
            "projects": []}


def _unit_files_above(folder: Path, root: Path) -> list[Path]:
    """The unit files of ``folder`` and its parents up to ``root``, outermost first."""
    found = []
    for current in [folder, *folder.parents]:
        if (current / UNIT_FILE).is_file():
            found.append(current / UNIT_FILE)
        if current == root or not current.is_relative_to(root):
            break
    return list(reversed(found))


def _named_region(documents: dict[str, Document], project_file: str) -> Region | None:
    from ..validate import region_named

    ordered = [d for name, d in documents.items() if name != project_file] + [documents[project_file]]
    return region_named(ordered)[0]


def _starter_for(region: Region, unit_files: list[Path]) -> str:
    """The region's starter file, without the 年度 line when the unit file sets the year, nor the
    地区 line when it names the same region."""
    from ..validate import region_named

    documents = [load_file(path) for path in unit_files]
    keys = {key for document in documents if document.data for key in document.data}
    drop = []
    year, year_aliases = labels_of(Project, "year")
    if keys & {"year", year, *year_aliases}:
        drop.append(f"{year}:")
    if region_named(documents)[0] is region and unit_files:
        drop.append(f"{labels_of(Project, 'region')[0]}:")
    lines = starter_yaml(region).splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(tuple(drop)))


# --- findings at their fields ----------------------------------------------------------------


def target_of(loc: Loc, layout: forms.Layout) -> str:
    """The page element a model path stands at: a field (f:key), a table's cell (t:table:row:column)
    or row (r:table:row), a section (s:key); empty for the file as a whole."""
    if not loc:
        return ""
    head = str(loc[0])
    if head in layout.tables:
        table = layout.tables[head]
        if len(loc) >= 2 and isinstance(loc[1], int):
            rest = tuple(loc[2:])
            for column in table.columns:
                if rest[: len(column.loc)] == column.loc and rest:
                    return f"t:{head}:{loc[1]}:{column.name}"
            return f"r:{head}:{loc[1]}"
        return f"s:{head}"
    key = forms.spec_key_of(loc)
    while key:
        if key in layout.fields:
            return f"f:{key}"
        if key in layout.specs and "." not in key:
            return f"s:{key}"
        key = key.rpartition(".")[0]
    return ""


def _problem_target(problem: Problem, places: dict[tuple[str, int, int], list[tuple[Loc, str]]],
                    layout: forms.Layout) -> str:
    candidates = places.get((problem.file, problem.line, problem.col), [])
    exact = [loc for loc, key in candidates if key == problem.key]
    if exact:
        return target_of(exact[0], layout)
    prefixed = [(loc, key) for loc, key in candidates if problem.key.startswith((f"{key}.", f"{key}["))]
    if not prefixed:
        return target_of(candidates[0][0], layout) if candidates else ""
    loc, key = max(prefixed, key=lambda pair: len(pair[1]))
    tail = problem.key[len(key):].lstrip(".")
    for child in layout.specs.values():  # a missing value: reported at its mapping, named by its label
        if child.label == tail and forms.spec_key_of(loc) == child.parent:
            return target_of((*loc, child.key.rpartition(".")[2]), layout)
    return target_of(loc, layout)


def findings(checked: Checked, layout: forms.Layout, project_file: str, names: dict[str, str]) -> dict:
    """Problems at their fields, the explanation beside its rows, the total and grade."""
    places: dict[tuple[str, int, int], list[tuple[Loc, str]]] = {}
    for loc, place in checked.locator.items():
        places.setdefault((place.file, place.line, place.col), []).append((loc, place.key))
    problems = [
        {
            "severity": problem.severity,
            "message": problem.message,
            "key": problem.key,
            "file": names.get(problem.file, problem.file),
            "line": problem.line,
            "col": problem.col,
            "target": _problem_target(problem, places, layout) if problem.file == project_file else "",
        }
        for problem in checked.problems
    ]
    result: dict = {"problems": problems, "errors": sum(p.is_error for p in checked.problems),
                    "ok": checked.ok, "explain": [], "total": None, "grade": None, "summary": ""}
    result["warnings"] = len(problems) - result["errors"]
    if checked.result is not None and checked.project is not None:
        lines = report.explanation(checked)
        score = checked.result
        first = 3 if score.execution.line not in score.lines else 2
        explain = [{"text": lines[1].strip(), "target": "", "kind": "rate"}]
        if first == 3:
            explain.append({"text": lines[2].strip(), "target": target_of(score.execution.line.loc, layout),
                            "kind": "line", "used": report.number(score.execution.line.used)})
        for line, text in zip(score.lines, lines[first:-1], strict=True):
            explain.append({"text": text.strip(), "target": target_of(line.loc, layout), "kind": "line",
                            "used": report.number(line.used), "computed": report.number(line.computed)})
        explain.append({"text": lines[-1].strip(), "target": "", "kind": "total"})
        result.update(explain=explain, total=report.number(score.total), grade=score.grade,
                      total_weight=report.number(score.total_weight),
                      summary=f"总分 {report.number(score.total)}，等次 {score.grade}")
    return result


def all_region_choices() -> list[tuple[str, str]]:
    return [(region.id, region.name) for region in all_regions().values()]
