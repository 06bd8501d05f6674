"""What the last build left in ``<out>/.reportgen``: a fingerprint of every output (``State``),
and a record of the whole tree as a complete build left it (``TREE_KEY``), against which a
build that would find nothing to do is answered without checking a project (``look_at_tree``).

Only the standard library and reportgen's light modules are imported here: an unchanged tree of
a hundred projects is answered in a fraction of the time that loading the checking would take.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import bundle
from .errors import OutputError, Problem, ReportgenError
from .load import Source, discover
from .region_folders import REGIONS_ENV, TEMPLATES_ENV, data_region_folders, region_sources, regions_in

STATE_FOLDER = ".reportgen"
CHECKED_FILE = "checked.pickle"  # what checking each project found (validate.CheckCache)

INPUTS_KEY = "#inputs"  # in state.json: the sha256 of every input file of the last build


@dataclass
class Report:
    """What a build did, for the final summary line and the exit code."""

    projects: int = 0
    rebuilt: int = 0
    skipped: int = 0
    warnings: int = 0
    failures: list[str] = field(default_factory=list)
    # What went otherwise than planned without failing: a unit's forms converted one by one.
    notices: list[str] = field(default_factory=list)
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

    def record(self, key: str, fingerprint: str, outputs: list[Path], own: str | None = None) -> None:
        """``own``: the digest of the inputs the first output (a form's DOCX) depends on alone."""
        entry = {"fingerprint": fingerprint, "outputs": {p.name: _file_record(p) for p in outputs}}
        self.entries[key] = {**entry, "own": own} if own is not None else entry

    def built_from(self, key: str, own: str, output: Path) -> bool:
        """Whether ``output``, as the last build wrote it, depends only on inputs digested ``own``
        (a form's DOCX in a chunk that must be converted again: copied, not rendered again)."""
        entry = self.entries.get(key) or {}
        return entry.get("own") == own and _unchanged(output, entry.get("outputs", {}).get(output.name))

    def save(self) -> None:
        # Without indentation: json's C encoder then writes it (4× faster; 1.2 MB at N = 500).
        data = json.dumps(self.entries, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
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


# --- the whole tree ---------------------------------------------------------------------------

TREE_KEY = "#tree"  # in state.json: the tree as the last complete build without failures left it
TREE_FORMAT = "1"
_BOOKKEEPING = {"state.json", CHECKED_FILE, "lock"}  # in STATE_FOLDER, rewritten by every build


def tree_key(paths: list[Path], out: Path, pdfa: bool, shard: tuple[int, int] | None,
             sources: list[Source] | None = None) -> str | None:
    """A digest of everything a build's outputs and printed report depend on: reportgen's code,
    Python, pydantic and the fonts (as the check cache and the fingerprints take them), the
    working folder (paths are printed relative to it), the options and settings that change
    outputs, every project and unit file, and every file of every region that could be found
    (adding a region can change which one a project names). ``sources``: the project files, when
    the caller found them already. None if the files cannot be listed."""
    from . import code_digest
    from .glyphs import fonts_key

    try:
        sources = discover(paths) if sources is None else sources
        roots = [root for root, _ in region_sources()] + data_region_folders(paths)
        files = sorted({path.absolute() for source in sources for path in (*source.unit_files, source.path)})
        for root in roots:
            for folder in regions_in(root):
                files += sorted(path.absolute() for path in folder.rglob("*") if path.is_file())
        settings = [TREE_FORMAT, code_digest(), sys.version, fonts_key() or "", str(Path.cwd().resolve()),
                    str(out.absolute()), repr(pdfa), repr(shard), *(str(path.absolute()) for path in paths),
                    *(os.environ.get(name, "") for name in ("SOURCE_DATE_EPOCH", TEMPLATES_ENV, REGIONS_ENV))]
        digest = hashlib.sha256()
        for part in [*(text.encode(errors="surrogateescape") for text in settings), _pydantic_version()]:
            digest.update(part + b"\0")
        for path in files:
            digest.update(b"%s\0%s\0" % (str(path).encode(errors="surrogateescape"), path.read_bytes()))
        return digest.hexdigest()
    except (OSError, ReportgenError):
        return None


def _pydantic_version() -> bytes:
    """pydantic's version file, found without importing pydantic (which takes a tenth of a second)."""
    spec = importlib.util.find_spec("pydantic")
    if spec is None or spec.origin is None:
        return b""
    return (Path(spec.origin).parent / "version.py").read_bytes()


def output_files(out: Path) -> dict[str, list[int]]:
    """Every file under ``out`` but the build's own bookkeeping, with its size and modification
    time: a file added, removed or touched since is seen."""
    found = {}
    for folder, folders, names in os.walk(out):
        place = os.path.relpath(folder, out)
        if place == STATE_FOLDER:
            folders[:] = [name for name in folders if not name.startswith(".staging-")]
            names = [name for name in names if name not in _BOOKKEEPING]
        for name in names:
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:
                continue  # gone meanwhile: missing from the list, as it is from the folder
            found[os.path.join(place, name)] = [stat.st_size, stat.st_mtime_ns]
    return dict(sorted(found.items()))


def remember_tree(state: State, key: str, out: Path, report: Report) -> None:
    """Record the tree as a complete build without failures left it. ``key`` is taken before
    the build reads its inputs: one changed while it ran makes the tree's key differ next time."""
    state.entries[TREE_KEY] = {
        "key": key, "outputs": output_files(out), "projects": report.projects, "warnings": report.warnings,
        "problems": [[p.file, p.line, p.col, p.severity, p.key, p.message] for p in report.problems],
        "bundles": [str(path) for path in report.bundles],
    }


@dataclass
class Tree:
    """The tree as a build is about to find it: its ``tree_key`` (None if it cannot be taken),
    the report of the last build when that build stands for this one, and its project files as
    found (None if they could not be: the build says why), handed to the build."""

    key: str | None
    report: Report | None = None
    sources: list[Source] | None = None


def look_at_tree(paths: list[Path], out: Path, pdfa: bool, shard: tuple[int, int] | None) -> Tree:
    """The tree, with the report of the last build when nothing it depended on has changed since
    and every output is as it left them (a build would skip every project and print the same)."""
    started = time.monotonic()
    try:
        sources: list[Source] | None = discover(paths)
    except (OSError, ReportgenError):
        sources = None
    try:
        recorded = (out / STATE_FOLDER / "state.json").is_file()
    except OSError:  # a folder this user may not read: the build says so
        recorded = False
    if not recorded:
        return Tree(tree_key(paths, out, pdfa, shard, sources), sources=sources)
    with build_lock(out):
        entry = State(out).entries.get(TREE_KEY)
        key = tree_key(paths, out, pdfa, shard, sources)
        if not isinstance(entry, dict) or key is None or entry.get("key") != key:
            return Tree(key, sources=sources)
        if entry.get("outputs") != output_files(out):
            return Tree(key, sources=sources)
    try:
        projects = int(entry["projects"])
        problems = [Problem(*row) for row in entry["problems"]]
        bundles = [Path(path) for path in entry["bundles"]]
        report = Report(projects=projects, skipped=projects, warnings=int(entry["warnings"]), problems=problems,
                        bundles=bundles, seconds=time.monotonic() - started)
    except (KeyError, TypeError, ValueError):
        return Tree(key, sources=sources)
    return Tree(key, report, sources)
