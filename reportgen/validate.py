"""Validation: a located YAML tree → a typed ``Project``, or every problem with its line.

Keys may be English names, the form's Chinese labels or their aliases; they are resolved here
against the model, remembering where each stood, so that schema errors, cross-field checks and
scoring findings are all reported at the user's line and in the user's words.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import hashlib
import os
import pickle
import sys
import threading
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import pydantic
from pydantic import BaseModel, ValidationError

from . import checks, view
from .declared import DeclaredField, DeclaredMoneyRow, label_targets
from .errors import Problem, display_path
from .load import Document, LocatedList, LocatedMap, Mark, Source, join_key, load_file
from .regions import (
    Region,
    add_region_folders,
    all_regions,
    data_region_folders,
    find_region,
    held,
    suggest_region,
)
from .schema import UNIT_FIELDS, Funds, Indicator, MoneyRow, Project, labels_of, nested_model, user_fields
from .score import Finding, Loc, Result, score_project
from .values import ValueParseError, normalize_text

LIST_MESSAGE = "应为列表（每项以「- 」开头）"
# Rows of these lists may leave 一级/二级 empty to mean "same as the row above".
_CARRIED = {"indicators": ("level1", "level2"), "scorecard": ("group", "level2")}


@dataclass(frozen=True)
class Place:
    """Where a model path stands in the user's files, and how the user spelt it."""

    file: str
    key: str
    line: int
    col: int


class Locator(dict[Loc, Place]):
    """Model path → place; unknown paths fall back to their nearest located parent."""

    def find(self, loc: Loc) -> Place:
        for size in range(len(loc), -1, -1):
            if loc[:size] in self:
                return self[loc[:size]]
        raise KeyError(loc)  # the root is always located


@dataclass
class Checked:
    """A project file after validation and scoring."""

    source: Source
    problems: list[Problem] = field(default_factory=list)
    project: Project | None = None
    region: Region | None = None
    result: Result | None = None
    locator: Locator = field(default_factory=Locator)
    # The sha256 of its unit files and project file (in the source's order) as they were read
    # for this check: what a build's fingerprint takes, so that the outputs it records as made
    # from some content were made from that content, even if the file was saved meanwhile.
    digests: tuple[str | None, ...] = ()

    @property
    def ok(self) -> bool:
        return self.project is not None and not any(p.is_error for p in self.problems)

    def problem(self, loc: Loc, severity: str, message: str) -> None:
        place = self.locator.find(loc)
        key = _user_key(self.locator, loc) if loc not in self.locator else place.key
        self.problems.append(Problem(place.file, place.line, place.col, severity, key, message))  # type: ignore[arg-type]


def _user_key(locator: Locator, loc: Loc) -> str:
    """The user's key path for a loc, spelling the unlocated tail with the form's labels."""
    for size in range(len(loc), -1, -1):
        if loc[:size] in locator:
            key, model = locator[loc[:size]].key, _model_at(loc[:size])
            for part in loc[size:]:
                if isinstance(part, int) or model is None or part not in model.model_fields:
                    key = join_key(key, part) if isinstance(part, int) else join_key(key, str(part))
                    continue
                key = join_key(key, labels_of(model, part)[0])
                model = nested_model(model, part)
            return key
    return ""


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Project
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        model = nested_model(model, part) if part in model.model_fields else None
    return model


@dataclass(frozen=True)
class Key:
    """What a user's key means at one level: a model field, or a field the region declares."""

    name: str
    declared: DeclaredField | DeclaredMoneyRow | None = None


def _declared_at(model: type[BaseModel], region: Region | None) -> list[DeclaredField | DeclaredMoneyRow]:
    if region is None:
        return []
    declared = region.declared
    by_model: dict[type[BaseModel], list] = {
        Project: declared.fields, Indicator: declared.indicator_columns, Funds: declared.money_rows,
    }
    return list(by_model.get(model, []))


_INDEXES: dict[tuple[type[BaseModel], int], dict[str, Key]] = {}


def _key_index(model: type[BaseModel], region: Region | None = None) -> dict[str, Key]:
    """Every accepted spelling of a model's keys (normalized) → what it means, for a region:
    the common fields, the region's own labels for them, and the fields it declares."""
    cache_key = (model, id(region))
    if cache_key in _INDEXES:
        return _INDEXES[cache_key]
    index: dict[str, Key] = {}
    for name in user_fields(model):
        label, aliases = labels_of(model, name)
        for spelling in (name, label, *aliases):
            index[_norm_key(spelling)] = Key(name)
    if region is not None:
        for (labelled, name), label in label_targets(region.declared.labels).items():
            if labelled is model:
                index[_norm_key(label)] = Key(name)
    for declaration in _declared_at(model, region):
        for spelling in declaration.spellings:
            index[_norm_key(spelling)] = Key(declaration.id, declaration)
    if region is not None:  # regions live as long as the process: their indexes may too
        _INDEXES[cache_key] = index
        _KEEP.append(region)
    return index


_KEEP: list[Region] = []  # the regions indexed, so that no id() is reused while cached


@lru_cache(maxsize=4096)  # the same few dozen keys recur in every file
def _norm_key(key: str) -> str:
    """Spellings that differ only in spaces, bracket width, case or a leading 其中： are one key."""
    norm = normalize_text(key).replace(" ", "").replace("（", "(").replace("）", ")").lower()
    return norm.removeprefix("其中:").removeprefix("其中：")


def _model_path(loc: Loc) -> tuple[str, ...]:
    return tuple(part for part in loc if isinstance(part, str))


def region_named(documents: list[Document]) -> tuple[Region | None, str | None]:
    """The region the files name (the project file's 地区 over its unit files'), before resolving
    any other key: which keys a file may use depends on it."""
    spellings = {_norm_key(s) for s in ("region", *[labels_of(Project, "region")[0]], *labels_of(Project, "region")[1])}
    named: str | None = None
    for document in documents:
        for key, value in (document.data or {}).items():
            if _norm_key(key) in spellings and isinstance(value, str):
                named = value
    return find_region(named), named


class _Resolver:
    """Translates the user's keys to model names, recording where each stood."""

    def __init__(self, file: str, checked: Checked, is_unit: bool, region: Region | None) -> None:
        self.file = file
        self.checked = checked
        self.is_unit = is_unit  # unit files may only set UNIT_FIELDS and declared unit fields
        self.region = region

    def place(self, loc: Loc, key: str, mark: Mark) -> None:
        self.checked.locator[loc] = Place(self.file, key, *mark)

    def error(self, key: str, mark: Mark, message: str) -> None:
        self.checked.problems.append(Problem(self.file, mark[0], mark[1], "error", key, message))

    def mapping(self, data: LocatedMap, model: type[BaseModel], loc: Loc, key_path: str) -> dict:
        index, resolved = _key_index(model, self.region), {}
        for key, value in data.items():
            user_key, mark = join_key(key_path, key), data.key_marks[key]
            meaning = index.get(_norm_key(key))
            if meaning is None:
                self.error(user_key, mark, self._unknown(key, model, loc))
                continue
            if meaning.declared is not None:
                self._declared(meaning.declared, value, resolved, loc, user_key, data, key)
                continue
            name = meaning.name
            if not loc and self.is_unit and name not in UNIT_FIELDS:
                self.error(user_key, mark, f"单位文件中不能设置此项（可设置：{self._unit_keys(model)}）")
                continue
            path = (*_model_path(loc), name)
            if self.region is not None and not view.prints(self.region, path):
                self.error(user_key, mark, _not_printed(key, self.region, lambda r, p=path: view.prints(r, p)))
                continue
            if name in resolved:
                self._duplicate(user_key, mark, (*loc, name), labels_of(model, name)[0])
                continue
            self.place((*loc, name), user_key, mark)
            resolved[name] = self.value(value, model, name, (*loc, name), user_key)
        return resolved

    def _unit_keys(self, model: type[BaseModel]) -> str:
        unit_declared = [d.label for d in _declared_at(Project, self.region) if getattr(d, "unit", False)]
        return "、".join([*(labels_of(model, n)[0] for n in UNIT_FIELDS), *unit_declared])

    def _duplicate(self, user_key: str, mark: Mark, loc: Loc, label: str) -> None:
        other = self.checked.locator[loc]
        other_key = other.key.rsplit(".", 1)[-1]
        self.error(user_key, mark, f"与第 {other.line} 行的「{other_key}」重复，二者都表示「{label}」")

    def _declared(self, declared, value: object, resolved: dict, loc: Loc, user_key: str,
                  data: LocatedMap, key: str) -> None:
        """A key the region declares: a money row (a mapping of columns) or a typed value."""
        mark = data.key_marks[key]
        if isinstance(declared, DeclaredMoneyRow):
            rows, row_loc = resolved.setdefault("rows", {}), (*loc, "rows", declared.id)
            if declared.id in rows:
                self._duplicate(user_key, mark, row_loc, declared.label)
            elif isinstance(value, LocatedMap):
                self.place(row_loc, user_key, mark)
                rows[declared.id] = self.mapping(value, MoneyRow, row_loc, user_key)
            elif value is not None:
                self.error(user_key, data.value_marks[key], "应为「键: 值」映射")
            return
        values, value_loc = resolved.setdefault("declared", {}), (*loc, "declared", declared.id)
        if not loc and self.is_unit and not declared.unit:
            self.error(user_key, mark, f"单位文件中不能设置此项（可设置：{self._unit_keys(Project)}）")
        elif declared.fixed:
            self.error(user_key, mark, f"「{declared.label}」是表上的固定文字（{declared.value}），不用填写")
        elif declared.id in values:
            self._duplicate(user_key, mark, value_loc, declared.label)
        elif value is not None:
            self.place(value_loc, user_key, mark)
            try:
                values[declared.id] = declared.parse(value)
            except ValueParseError as exc:
                self.error(user_key, data.value_marks[key], str(exc))

    def value(self, value: object, model: type[BaseModel], name: str, loc: Loc, key_path: str) -> object:
        inner = nested_model(model, name)
        if inner is None:
            return value
        wants_list = typing.get_origin(model.model_fields[name].annotation) is list
        mark = self.checked.locator[loc]
        if wants_list and isinstance(value, LocatedMap):
            self.error(key_path, (mark.line, mark.col), LIST_MESSAGE)
            return []
        if not wants_list and isinstance(value, LocatedList):
            self.error(key_path, (mark.line, mark.col), "应为「键: 值」映射，不能是列表")
            return {}
        if isinstance(value, LocatedMap):
            return self.mapping(value, inner, loc, key_path)
        if isinstance(value, LocatedList):
            items = []
            for index, item in enumerate(value):
                item_key = join_key(key_path, index)
                self.place((*loc, index), item_key, value.item_marks[index])
                is_map = isinstance(item, LocatedMap)
                items.append(self.mapping(item, inner, (*loc, index), item_key) if is_map else item)
            return items
        return value

    def _unknown(self, key: str, model: type[BaseModel], loc: Loc) -> str:
        """Unknown here: a near spelling, another region's field, or a key of another level."""
        spellings = [s for s in _key_index(model, self.region) if s]
        close = _closest(_norm_key(key), spellings)
        if close:
            return f"未知的键「{key}」，是否想写「{_spelling_of(model, self.region, close)}」？"
        if self.region is not None:
            elsewhere = [r for r in all_regions().values() if _norm_key(key) in _key_index(model, r)]
            if elsewhere:
                return _not_printed(key, self.region, lambda r: r in elsewhere)
        others: dict[str, str] = {}
        for where, other in _all_models():
            for spelling in _spellings(other) if other is not model else ():
                others.setdefault(spelling, where)
        close = _closest(key, list(others))
        if close:
            return f"未知的键「{key}」；「{close}」应写在「{others[close]}」之下"
        return f"未知的键「{key}」"


def _not_printed(key: str, region: Region, prints) -> str:
    """「key」 is not on this region's form: say which regions' forms carry it."""
    others = [f"{r.name}（{r.id}）" for r in all_regions().values() if r.id != region.id and prints(r)]
    where = f"印有此项的地区：{'、'.join(others)}" if others else "没有地区的表格印有此项"
    return f"「{key}」不在{region.name}的表格上，填写了也不会印出；{where}"


def _spelling_of(model: type[BaseModel], region: Region | None, normalized: str) -> str:
    """The readable spelling (the label) behind a normalized key."""
    meaning = _key_index(model, region)[normalized]
    if meaning.declared is not None:
        return meaning.declared.label
    for (labelled, name), label in (label_targets(region.declared.labels) if region else {}).items():
        if labelled is model and name == meaning.name and _norm_key(label) == normalized:
            return label
    label, aliases = labels_of(model, meaning.name)
    return next((s for s in (label, *aliases, meaning.name) if _norm_key(s) == normalized), label)


def _spellings(model: type[BaseModel]) -> list[str]:
    return [s for name in user_fields(model) for s in (name, labels_of(model, name)[0], *labels_of(model, name)[1])]


def _closest(key: str, spellings: list[str]) -> str | None:
    if len(key) < 2:
        return None
    close = difflib.get_close_matches(key, spellings, n=1, cutoff=0.6)
    if close:
        return close[0]
    contained = [s for s in spellings if len(s) > 1 and (s in key or key in s)]
    return min(contained, key=lambda s: abs(len(s) - len(key))) if contained else None


def _all_models(model: type[BaseModel] = Project, where: str = "") -> list[tuple[str, type[BaseModel]]]:
    """Every nested model with the label path that leads to it (项目资金.年度资金总额)."""
    found = []
    for name in user_fields(model):
        inner = nested_model(model, name)
        if inner is not None:
            path = join_key(where, labels_of(model, name)[0])
            found.append((path, inner))
            found.extend(_all_models(inner, path))
    return found


def _carry_levels(data: dict) -> None:
    """Fill an empty 一级/二级 cell from the row above, as the printed form does."""
    for list_name, keys in _CARRIED.items():
        previous: dict = {}
        for row in data.get(list_name) or []:
            if not isinstance(row, dict):
                continue
            for key in keys:
                if row.get(key) in (None, "") and previous.get(key):
                    row[key] = previous[key]
            previous = row


def _merge(unit: dict, project: dict) -> dict:
    merged = dict(unit)
    for key, value in project.items():
        if key in ("signoff", "declared") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _schema_problems(checked: Checked, exc: ValidationError) -> None:
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            label = labels_of(_model_at(loc[:-1]) or Project, str(loc[-1]))[0]
            message, loc = f"缺少必填项「{label}」", loc
        elif error["type"] in ("list_type", "model_type", "dict_type", "model_attributes_type"):
            message = LIST_MESSAGE if error["type"] == "list_type" else "应为「键: 值」映射"
        checked.problem(loc, "error", message)


def _apply(checked: Checked, findings: list[Finding]) -> None:
    """Report findings; a warning where the same cell already has an error adds only noise."""
    errors = {finding.loc for finding in findings if finding.severity == "error"}
    for finding in findings:
        if finding.severity == "error" or finding.loc not in errors:
            checked.problem(finding.loc, finding.severity, finding.message)


class Files:
    """The files of one run, each read once: a unit file however many projects share it, a
    project file for its cache key and its check alike (so both see the same content, even if a
    clerk saves it in between); and each path is named for display once (resolving it costs
    several system calls)."""

    def __init__(self) -> None:
        self._units: dict[Path, Document] = {}
        self._names: dict[Path, str] = {}
        self._bytes: dict[Path, bytes] = {}  # read, and (a project file) not yet loaded
        self._digests: dict[Path, str] = {}  # of each file as read

    def read(self, path: Path) -> bytes:
        """The file's bytes as this run read them (OSError when it cannot)."""
        data = self._bytes.get(path)
        if data is None:
            data = self._bytes[path] = path.read_bytes()
            self._digests[path] = hashlib.sha256(data).hexdigest()
        return data

    def load(self, path: Path) -> Document:
        """A project file loaded from what this run read of it (its bytes are then let go)."""
        try:
            data = self.read(path)
        except OSError:
            return load_file(path)  # which says why it cannot be read
        self.forget(path)
        return load_file(path, data)

    def forget(self, path: Path) -> None:
        """A project file's bytes, no longer needed (its check was taken from the cache)."""
        self._bytes.pop(path, None)

    def digests(self, paths: Iterable[Path]) -> tuple[str | None, ...]:
        return tuple(self._digests.get(path) for path in paths)

    def unit(self, path: Path) -> Document:
        # Shared between projects: safe because nothing changes a Document after loading.
        if path not in self._units:
            try:
                data: bytes | None = self.read(path)
            except OSError:
                data = None  # load_file says why
            self._units[path] = load_file(path, data)
        return self._units[path]

    def name(self, path: Path) -> str:
        if path not in self._names:
            self._names[path] = display_path(path)
        return self._names[path]


def check_source(source: Source, files: Files | None = None) -> Checked:
    """Load, resolve, validate, check and score one project file; never raises on bad data."""
    files = Files() if files is None else files
    checked = Checked(source)
    _check_into(checked, files)
    checked.digests = files.digests((*source.unit_files, source.path))
    project_file = files.name(source.path)
    checked.problems.sort(key=lambda p: (p.file != project_file, p.file, p.line, p.col))
    return checked


def _check_into(checked: Checked, files: Files) -> None:
    source = checked.source
    documents = [files.unit(path) for path in source.unit_files]
    documents.append(files.load(source.path))  # not kept: each project file is loaded once
    region, region_name = region_named(documents)
    merged: dict = {}
    for position, document in enumerate(documents):
        checked.problems.extend(document.problems)
        if document.data is None:
            continue
        is_unit = position < len(documents) - 1
        resolver = _Resolver(files.name(document.path), checked, is_unit, region)
        if not is_unit:
            resolver.place((), "", document.data.mark)
        merged = _merge(merged, resolver.mapping(document.data, Project, (), ""))
    from .glyphs import glyph_problems  # a character no installed font draws: a warning at its value

    for document in documents:
        checked.problems.extend(glyph_problems(document, files.name(document.path)))
    if region is None and "region" in merged:
        checked.problem(("region",), "error", suggest_region(str(region_name)))
    elif region is None:
        checked.problem((), "error", "没有指定「地区」，也没有标为缺省（default: true）的地区")
    if documents[-1].data is None or any(p.is_error for p in checked.problems):
        return
    assert region is not None
    _carry_levels(merged)
    try:
        project = Project.model_validate(merged)
    except ValidationError as exc:
        _schema_problems(checked, exc)
        return
    project = project.model_copy(update={"region": region.id})
    required = list(_missing_declared(project, region))
    for loc, message in required:
        checked.problem(loc, "error", message)
    if required:
        return
    checked.project, checked.region = project, region
    checked.result = score_project(project, region)
    _apply(checked, [*checks.run_all(project, region), *checked.result.findings])


def _missing_declared(project: Project, region: Region) -> Iterator[tuple[Loc, str]]:
    """Required fields the region declares that the files leave out."""
    for declared in region.declared.fields:
        if declared.required and declared.id not in project.declared:
            yield (), f"缺少必填项「{declared.label}」（{region.name}的表格要求）"
    for index, row in enumerate(project.indicators):
        for declared in region.declared.indicator_columns:
            if declared.required and declared.id not in row.declared:
                yield ("indicators", index), f"缺少必填项「{declared.label}」（{region.name}的表格要求）"


_ACROSS_PROJECTS: tuple[Loc, ...] = ((), ("name",))  # the places check_all's own checks report at
_CACHE_FORMAT = "2"  # of what CheckCache keeps: a new one never reads an old one's entries


class CheckCache:
    """What an earlier build found checking each project, kept in its output folder: the same
    project file, unit files, regions, fonts and reportgen give the same ``Checked`` (problems,
    scores and all), so a build that finds nothing changed does not check anything again.

    The file is the build's own (written by it, beside its other outputs, trusted like them); one
    that cannot be read is ignored and written anew. Each entry notes the project file it was
    found for: a build of some projects (one unit, say) keeps the others' entries.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as stored:
                found = pickle.load(stored)
            if not isinstance(found, dict):
                raise TypeError("not a dict")
        except (OSError, EOFError, pickle.UnpicklingError, TypeError, ValueError, AttributeError, ImportError):
            found = {}
        self._stored: dict[str, tuple[str | None, bytes]] = {}  # key → (project file, entry), as read
        for key, entry in found.items():
            if isinstance(entry, bytes):  # written before entries noted their project file
                entry = (None, entry)
            if (isinstance(key, str) and isinstance(entry, tuple) and len(entry) == 2
                    and isinstance(entry[0], str | None) and isinstance(entry[1], bytes)):
                self._stored[key] = entry
        self.entries = {key: entry for key, (_, entry) in self._stored.items()}
        self.used: dict[str, bytes] = {}
        self._setting: str | None = None
        self._regions: dict[str, Region] = {}
        self._keys: dict[Path, str | None] = {}  # of this run's sources, each read once
        self._files: dict[str, str] = {}  # key → the project file of this run it was found for
        self._looked: set[str] = set()  # every project file of this run
        self.missed = 0  # projects this run checked anew, not found in the cache

    def check(self, source: Source, files: Files) -> Checked:
        """The source checked: from the cache when nothing it depends on has changed."""
        key = self._key(source, files)
        # Found by this build already (a project checked early, see build.convert_early) or before.
        entry = None if key is None else self.used.get(key, self.entries.get(key))
        if entry is not None:
            with contextlib.suppress(Exception):  # anything unreadable is checked again
                checked, region_id = pickle.loads(entry)
                checked.source = source
                checked.region = self._regions[region_id] if region_id is not None else None
                self.used[key] = entry
                files.forget(source.path)
                return checked
        checked = check_source(source, files)
        self.missed += 1
        if key is not None:
            self.used[key] = _entry(checked)
        return checked

    def check_ahead(self, sources: list[Source], files: Files) -> Callable[[], None]:
        """Check ``sources`` not in the cache in a helper process (forked: it has everything
        loaded) while this one checks others; the returned call waits for it and takes its
        entries in, so that ``check`` then finds them. Only the cache is filled ahead: a helper
        that fails or cannot be started leaves the checking to ``check``."""
        missing = [source for source in sources
                   if (key := self._key(source, files)) not in self.entries and key not in self.used]
        if len(missing) < _AHEAD_MINIMUM or not hasattr(os, "fork") or threading.active_count() > 1:
            return lambda: None  # forking a process with threads (the web page) is not safe
        reader, writer = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(reader)
            os.close(writer)
            return lambda: None
        if pid == 0:  # the helper: never returns, never runs the parent's exit handlers
            status = 1
            try:
                os.close(reader)
                entries = {key: _entry(check_source(source, files))
                           for source in missing if (key := self._key(source, files)) is not None}
                with os.fdopen(writer, "wb") as pipe:
                    pipe.write(pickle.dumps(entries, pickle.HIGHEST_PROTOCOL))
                status = 0
            finally:
                os._exit(status)
        os.close(writer)

        def join() -> None:
            with os.fdopen(reader, "rb") as pipe:
                data = pipe.read()
            _, status = os.waitpid(pid, 0)
            if status == 0:
                with contextlib.suppress(Exception):
                    self.entries.update(pickle.loads(data))

        return join

    def save(self) -> None:
        """Keep this build's entries and those of project files it did not look at that still
        exist; not the older versions of the ones it looked at (the file does not grow with them)."""
        kept = {key: (self._files[key], entry) for key, entry in self.used.items()}
        for key, (place, entry) in self._stored.items():
            if key not in kept and place is not None and place not in self._looked and os.path.isfile(place):
                kept[key] = (place, entry)
        if kept != self._stored:
            from .package import write_bytes

            with contextlib.suppress(OSError):  # a cache not written costs the next build time only
                write_bytes(self.path, pickle.dumps(kept, pickle.HIGHEST_PROTOCOL))

    def _key(self, source: Source, files: Files) -> str | None:
        if source.path not in self._keys:
            place = os.path.abspath(source.path)
            self._looked.add(place)
            key = self._keys[source.path] = self._digest(source, files)
            if key is not None:
                self._files[key] = place
        return self._keys[source.path]

    def _digest(self, source: Source, files: Files) -> str | None:
        try:
            digest = hashlib.sha256(self._settings().encode())
            for path in (*source.unit_files, source.path):
                digest.update(b"\0%s\0%s" % (files.name(path).encode(errors="surrogateescape"), files.read(path)))
        except OSError:
            return None  # checked as usual, which reports what it cannot read
        return digest.hexdigest()

    def _settings(self) -> str:
        """What every project's checking depends on besides its files: reportgen and Python,
        every region's files (messages name other regions), the fonts (glyph warnings)."""
        if self._setting is None:
            from . import code_digest, glyphs

            digest = hashlib.sha256(f"{_CACHE_FORMAT}\0{code_digest()}\0{sys.version}\0{pydantic.VERSION}".encode())
            self._regions = all_regions()
            for region in self._regions.values():
                digest.update(f"\0{region.id}\0{region.origin}\0{region.folder}".encode())
                for path in region.files():
                    # The YAML as it was read for the region the checks use; the others as they are.
                    read = region.read_digests.get(path.name) if path.parent == region.folder else None
                    content = read.encode() if read is not None else path.read_bytes()
                    digest.update(b"\0%s\0%s" % (str(path).encode(errors="surrogateescape"), content))
            coverage = glyphs.coverage()
            digest.update(repr(coverage.ranges if coverage else None).encode())
            self._setting = digest.hexdigest()
        return self._setting


def _entry(checked: Checked) -> bytes:
    """What ``CheckCache`` keeps of a project checked: the registry's own region comes back, and
    of where keys stand only what the checks across projects (check_all) look up (the rest
    would make reading it back slow)."""
    kept = replace(checked, region=None, locator=Locator(
        {loc: place for loc, place in checked.locator.items() if loc in _ACROSS_PROJECTS}))
    return pickle.dumps((kept, checked.region.id if checked.region else None), pickle.HIGHEST_PROTOCOL)


# Below this many projects to check, a helper process costs about what it saves.
_AHEAD_MINIMUM = 16


def check_all(sources: list[Source], cache: CheckCache | None = None) -> list[Checked]:
    """Every project, then the checks across projects (one name per unit and year). With a
    cache, the second half is checked by a helper process meanwhile (``check_ahead``): when a
    build checks, the LibreOffice it has started waits for the first document."""
    files = Files()
    with held(), _collector_paused():
        if cache is None:
            results = [check_source(source, files) for source in sources]
        else:
            half = len(sources) // 2
            join = cache.check_ahead(sources[half:], files)
            try:
                results = [cache.check(source, files) for source in sources[:half]]
            finally:
                join()
            results += [cache.check(source, files) for source in sources[half:]]
    _report_unit_files_once(results, files)
    seen: dict[tuple, Checked] = {}
    for checked in results:
        project = checked.project
        if project is None:
            continue
        key = (project.year, project.implementing_unit or "", normalize_text(project.name))
        if key in seen:
            first = files.name(seen[key].source.path)
            checked.problem(("name",), "error", f"与 {first} 的项目同名（同一单位、同一年度的项目名称不能重复）")
        else:
            seen[key] = checked
    return results


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Without the cyclic garbage collector: checking makes objects that live as long as the
    build does, and the collector's passes over them were an eighth of the time of checking
    500 projects (the memory taken stayed the same)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _report_unit_files_once(results: list[Checked], files: Files) -> None:
    """A unit file shared by many projects has its problems printed with the first only."""
    shown: set[Problem] = set()
    for checked in results:
        project_file = files.name(checked.source.path)
        kept = []
        for problem in checked.problems:
            if problem.file != project_file:
                if problem in shown:
                    continue
                shown.add(problem)
            kept.append(problem)
        checked.problems = kept


def check_paths(paths: list[Path], cache: CheckCache | None = None,
                sources: list[Source] | None = None) -> list[Checked]:
    """Every project under the paths (``sources``: as the caller found them already); a data
    folder's own ``regions/`` are known first."""
    from .load import discover

    add_region_folders(data_region_folders(paths))
    return check_all(discover(paths) if sources is None else sources, cache)
