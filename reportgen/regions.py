"""The region registry: a region is a folder, and the list of regions is whatever folders exist.

A region folder holds ``rules.yaml`` (the rules profile below), ``fields.yaml`` (the fields its
form prints beyond the common model, see ``declared``; optional), ``form.docx`` (its Word
template) and a README. Regions come from the built-in folder, then from the user's folders
(``REPORTGEN_REGIONS``, ``--regions`` and a ``regions/`` folder at the top of a data folder);
a later folder's region overrides an earlier one with the same id. Adding a region needs no Python.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import itertools
import pickle
import re
import shutil
import typing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .declared import Declarations
from .errors import Problem, RegionError, ReportgenError, display_path
from .load import LocatedList, LocatedMap, load_file
from .region_folders import (  # noqa: F401 - where regions are, also asked of this module
    BUILTIN,
    FIELDS_FILE,
    REGIONS_ENV,
    RULES_FILE,
    TEMPLATE_FILE,
    TEMPLATES_ENV,
    add_region_folders,
    data_region_folders,
    forget_region_folders,
    region_sources,
    regions_in,
    templates_root,
)
from .values import normalize_text


class Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumberFormat(Rules):
    """How a number prints: 2 decimals ("500.00"), trimmed ("99.32", "100"), or as written."""

    decimals: int | None = Field(2, description="小数位数；不填表示按原值显示")
    trim_zeros: bool = Field(False, description="去掉末尾的 0（100.00 → 100）")
    suffix: str = Field("", description="数值后的文字，如 % 或 万元")


class MoneyFormat(NumberFormat):
    unit: Literal["元", "万元"] = Field("元", description="金额栏的单位")


class ExecutionRow(Rules):
    """Where the budget-execution line stands inside the indicator table."""

    level1: str = Field(description="所在一级指标，如 项目管理")
    level2: str = Field("", description="所在二级指标，如 资金管理")
    name: str = Field("预算执行率", description="三级指标名称")
    target: str = Field("100%", description="指标值栏印的文字")
    first: bool = Field(False, description="印在该一级指标的第一行（缺省印在最后一行之后）")


class Execution(Rules):
    """The budget-execution score: weight × min(执行数 / base, 1)."""

    weight: Decimal = Field(Decimal(10), description="预算执行率的分值")
    base: Literal["initial", "annual", "adjusted"] = Field(
        "annual", description="执行率的分母：年初预算数、全年预算数或调整后预算数"
    )
    rate_decimals: int | None = Field(
        None, description="计分前执行率（%）先取几位小数；不填表示不先取整"
    )
    scorecard_row: str | None = Field(None, description="评分表中代表预算执行率的三级指标名称")
    row: ExecutionRow | None = Field(
        None, description="预算执行率印在绩效指标表中的一行（如 项目管理 下），而不是单独的资金栏得分"
    )


class Part(Rules):
    """A 二级指标 with a fixed share inside its 一级 (数量指标 10 within 项目产出 30)."""

    name: str
    share: Decimal
    aliases: list[str] = []


class Category(Rules):
    """A 一级指标 (or 评分表 group) and its share of the total."""

    name: str
    share: Decimal
    aliases: list[str] = []
    parts: list[Part] = Field([], description="二级指标的固定分值；不填表示不核对二级分值")
    level2: list[str] = Field([], description="常见的二级指标（reportgen new 的示例行用第一个）")

    def part(self, name: str | None) -> Part | None:
        wanted = normalize_text(name or "")
        return next((p for p in self.parts if wanted in {normalize_text(n) for n in (p.name, *p.aliases)}), None)


class Tier(Rules):
    """A qualitative grade and the share of the weight it earns, in percent."""

    name: str
    min: Decimal
    max: Decimal
    aliases: list[str] = []


class Deduction(Rules):
    """Over-target deduction: deviation (B − A) / A ≥ at_least % costs deduct % of the weight."""

    at_least: Decimal
    deduct: Decimal


class Grade(Rules):
    name: str
    min: Decimal


class Region(Rules):
    """A rules profile (``rules.yaml``); the folder it sits in gives its id."""

    id: str = ""
    folder: Path = Path()
    origin: str = BUILTIN  # where the folder came from: 内置, or the user's folder
    declared: Declarations = Declarations()
    # The sha256 of rules.yaml and fields.yaml as they were read for this region: what a
    # build's fingerprints take, so that forms are recorded as made from the rules they were.
    read_digests: dict[str, str] = {}
    default: bool = Field(False, description="项目文件不写「地区」时使用本地区（只能有一个地区这样标记）")
    name: str = Field(description="地区全称，如 某某市某某区")
    aliases: list[str] = Field([], description="数据文件中「地区」可用的其他写法")
    title: str = Field("项目支出绩效自评表", description="表名")
    description: str = ""
    money: MoneyFormat = MoneyFormat()
    rate: NumberFormat = NumberFormat(decimals=2, suffix="%")
    points: NumberFormat = Field(NumberFormat(decimals=2, trim_zeros=True), description="得分的印刷格式")
    weights: NumberFormat = Field(NumberFormat(decimals=2, trim_zeros=True), description="分值的印刷格式")
    score_decimals: int = Field(2, description="计算得分保留的小数位")
    execution: Execution = Execution()
    score_table: Literal["indicators", "scorecard"] = Field(
        "indicators", description="总分来自绩效指标表（indicators）还是评分表（scorecard）"
    )
    total: Decimal = Field(Decimal(100), description="合计分值")
    categories: list[Category] = []
    level1_label: str = Field("{name}", description="一级指标的印刷格式，如 {name} ({share}分)")
    reverse_level2: list[str] = Field(
        ["成本指标"], description="这些二级指标下的定量指标按反向（越低越好）计分，除非指标值写明方向"
    )
    qualitative: list[Tier] = []
    over_target: list[Deduction] = []
    grades: list[Grade] = [
        Grade(name="优", min=Decimal(90)),
        Grade(name="良", min=Decimal(80)),
        Grade(name="中", min=Decimal(60)),
        Grade(name="差", min=Decimal(0)),
    ]

    @property
    def template(self) -> Path:
        return self.folder / TEMPLATE_FILE

    def files(self) -> list[Path]:
        """Every file of the region folder: each counts in a build's fingerprint and manifest."""
        return sorted(p for p in self.folder.rglob("*") if p.is_file() and not p.name.startswith((".", "~$")))

    @property
    def indicator_weight(self) -> Decimal:
        """The indicator table's share when budget execution is scored apart (绩效指标(90分))."""
        return self.total - (self.execution.weight if self.execution.row is None else 0)

    def category(self, name: str | None) -> Category | None:
        if not name:
            return None
        wanted = normalize_text(name)
        for category in self.categories:
            if wanted in {normalize_text(n) for n in (category.name, *category.aliases)}:
                return category
        return None

    def tier(self, text: str | None) -> Tier | None:
        """The qualitative tier a text names ("达到预期指标" → 达成预期指标), if any."""
        if not text:
            return None
        wanted = normalize_text(text)
        for tier in self.qualitative:
            if any(wanted.startswith(normalize_text(n)) for n in (tier.name, *tier.aliases)):
                return tier
        return None

    def grade_of(self, total: Decimal) -> str:
        for grade in sorted(self.grades, key=lambda g: g.min, reverse=True):
            if total >= grade.min:
                return grade.name
        return self.grades[-1].name


# --- reading a region folder, every mistake located -------------------------------------

_PYDANTIC_MESSAGES = {
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文字",
    "list_type": "应为列表（每项以「- 」开头，或写成 [甲, 乙]）",
    "dict_type": "应为「键: 值」映射",
    "model_type": "应为「键: 值」映射",
    "model_attributes_type": "应为「键: 值」映射",
}


_FROM_FOLDER = ("id", "folder", "origin", "declared", "read_digests")  # Region's fields not written in rules.yaml


def _fields_of(model: type[BaseModel] | None) -> list[str]:
    return [] if model is None else [n for n in model.model_fields if n not in _FROM_FOLDER]


def _inner_model(model: type[BaseModel] | None, name: str) -> type[BaseModel] | None:
    if model is None or name not in model.model_fields:
        return None
    annotation = model.model_fields[name].annotation
    stack = [annotation]
    while stack:
        candidate = stack.pop()
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        stack.extend(typing.get_args(candidate))
    return None


def _locate(data: object, loc: tuple, model: type[BaseModel]) -> tuple[tuple[int, int], str, type[BaseModel] | None]:
    """Line and column of a pydantic error path in a located tree, the key path, the model there."""
    mark, key, node, current = getattr(data, "mark", (1, 1)), "", data, model
    for part in loc:
        if isinstance(part, int) and isinstance(node, LocatedList) and part < len(node):
            mark, node, key = node.item_marks[part], node[part], f"{key}[{part + 1}]"
        elif isinstance(part, str) and isinstance(node, LocatedMap) and part in node:
            mark, node = node.key_marks[part], node[part]
            key = f"{key}.{part}" if key else part
            current = _inner_model(current, part)
        else:
            break
    return mark, key, current


def _yaml_problems(path: Path, data: LocatedMap, exc: ValidationError, model: type[BaseModel]) -> list[Problem]:
    file, problems = display_path(path), []
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            mark, key, _ = _locate(data, loc, model)
            parent = _locate(data, loc[:-1], model)[2] if len(loc) > 1 else model
            message = _unknown_key(str(loc[-1]), _fields_of(parent))
        elif kind == "missing":
            mark, key, _ = _locate(data, loc[:-1], model)
            message = f"缺少必填项「{loc[-1]}」"
        elif kind == "literal_error":
            mark, key, _ = _locate(data, loc, model)
            expected = str(error["ctx"]["expected"]).replace("'", "").replace(" or ", ", ")
            message = f"应为以下之一：{expected}"
        else:
            mark, key, _ = _locate(data, loc, model)
            message = _PYDANTIC_MESSAGES.get(kind, str(error["msg"]).removeprefix("Value error, "))
        problems.append(Problem(file, mark[0], mark[1], "error", key, message))
    return problems


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"，是否想写「{close[0]}」？" if close else f"（可用：{'、'.join(known)}）"
    return f"未知的键「{key}」{hint}"


def _read(path: Path, model: type[BaseModel], extra: dict,
          raw: bytes | None = None) -> tuple[BaseModel | None, list[Problem]]:
    document = load_file(path, raw)
    if document.data is None:
        return None, [p for p in document.problems if p.is_error] or document.problems
    for reserved in (name for name in extra if name in document.data):
        mark = document.data.key_marks[reserved]
        message = f"「{reserved}」由所在文件夹决定，不能写在文件中"
        return None, [Problem(display_path(path), mark[0], mark[1], "error", reserved, message)]
    try:
        return model.model_validate({**document.data, **extra}), document.problems
    except ValidationError as exc:
        return None, document.problems + _yaml_problems(path, document.data, exc, model)


def load_region(folder: Path, origin: str = BUILTIN) -> Region:
    """One region folder, or RegionError listing every mistake in its YAML, located. A region
    read before from the same files comes from the cache folder: reading the YAML of every
    region, with each key's place kept, is a tenth of a second at every start."""
    read = _region_yaml(folder)  # once: what is kept, and what it is kept for, are the same
    kept = _kept_region(folder, origin, read)
    if kept is not None:
        with contextlib.suppress(Exception):  # anything unreadable is read from the YAML again
            region = pickle.loads(kept.read_bytes())
            if isinstance(region, Region):
                return region
    region = _read_region(folder, origin, read)
    if kept is not None:
        from .package import write_bytes

        with contextlib.suppress(ReportgenError):  # a cache that cannot be written: read again next time
            write_bytes(kept, pickle.dumps(region, pickle.HIGHEST_PROTOCOL))
    return region


REGION_CACHE_FORMAT = "1"


def _region_yaml(folder: Path) -> dict[str, bytes | None]:
    """The bytes of the folder's rules.yaml and fields.yaml; None for one that is missing or
    cannot be read (reading the folder then says so)."""
    read: dict[str, bytes | None] = {}
    for name in (RULES_FILE, FIELDS_FILE):
        try:
            read[name] = (folder / name).read_bytes()
        except OSError:
            read[name] = None
    return read


def _kept_region(folder: Path, origin: str, read: dict[str, bytes | None]) -> Path | None:
    """Where the region read from these files is kept, named by all it depends on: reportgen's
    code, pydantic, the folder and its YAML files. None without a cache folder, or without a
    template (reading the folder reports that)."""
    from . import code_digest
    from .glyphs import cache_folder

    base = cache_folder()
    if base is None or not (folder / TEMPLATE_FILE).is_file():
        return None
    digest = hashlib.sha256(f"{REGION_CACHE_FORMAT}\0{code_digest()}\0{pydantic.VERSION}\0{folder}\0{origin}".encode())
    for name in (RULES_FILE, FIELDS_FILE):
        data = read[name]
        if data is None and (folder / name).exists():
            return None  # there, but not readable
        digest.update(b"\0-" if data is None else b"\0" + data)
    return base / "regions" / f"{digest.hexdigest()[:40]}.pickle"


def _read_region(folder: Path, origin: str, read: dict[str, bytes | None]) -> Region:
    problems: list[Problem] = []
    declared: BaseModel | None = Declarations()
    if read[FIELDS_FILE] is not None or (folder / FIELDS_FILE).is_file():
        declared, found = _read(folder / FIELDS_FILE, Declarations, {}, read[FIELDS_FILE])
        problems += found
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in read.items() if data is not None}
    extra = {"id": folder.name, "folder": folder, "origin": origin, "declared": declared or Declarations(),
             "read_digests": digests}
    region, found = _read(folder / RULES_FILE, Region, extra, read[RULES_FILE])
    problems += found
    if not (folder / TEMPLATE_FILE).is_file():
        problems.append(Problem(display_path(folder / TEMPLATE_FILE), 1, 1, "error", "", "缺少模板文件 form.docx"))
    errors = sorted(p for p in problems if p.is_error)
    if errors or region is None or declared is None:
        raise RegionError("地区文件有误：\n" + "\n".join(map(str, errors)), errors)
    assert isinstance(region, Region)
    return region


# --- the registry ------------------------------------------------------------------------

def _stamp(sources: list[tuple[Path, str]]) -> tuple:
    """What the registry depends on: the region folders and their YAML files' sizes and times
    (a long-running process, such as the web page, sees a region edited while it runs)."""
    stamp = []
    for root, origin in sources:
        for folder in regions_in(root):
            for name in (RULES_FILE, FIELDS_FILE):
                try:
                    stat = (folder / name).stat()
                except OSError:
                    continue
                stamp.append((str(folder / name), origin, stat.st_mtime_ns, stat.st_size))
    return tuple(stamp)


@functools.lru_cache(maxsize=8)
def _registry(sources: tuple[tuple[Path, str], ...], stamp: tuple) -> dict[str, Region]:
    regions: dict[str, Region] = {}
    problems: list[Problem] = []
    for root, origin in sources:
        for folder in regions_in(root):
            try:
                regions[folder.name] = load_region(folder, origin)
            except RegionError as exc:
                problems += exc.problems
    defaults = [r.id for r in regions.values() if r.default]
    if len(defaults) > 1:
        raise RegionError(f"只能有一个地区标记 default: true，现有：{'、'.join(defaults)}")
    if problems:
        raise RegionError("地区文件有误：\n" + "\n".join(map(str, problems)), problems)
    return dict(sorted(regions.items()))


_held: list[dict[str, Region]] = []  # snapshots taken by ``held``
_holds = itertools.count(1)  # numbers the outermost ``held`` blocks
_hold = 0  # the number of the one running, or 0


def regions_stamp() -> tuple:
    """The region files' names, sizes and times: while it is the same, so are the regions."""
    return _stamp(region_sources())


def all_regions() -> dict[str, Region]:
    """Every known region by id; the region files are looked at again on each call, but
    within ``held()``."""
    if _held:
        return _held[-1]
    sources = region_sources()
    return _registry(tuple(sources), _stamp(sources))


def holding() -> int:
    """The number of the ``held`` block running (regions and their templates are taken as
    unchanged within it), or 0: what is remembered under one number holds for that block only."""
    return _hold


@contextlib.contextmanager
def held() -> Iterator[dict[str, Region]]:
    """The regions as they are now, for everything inside the block: checking a thousand
    projects asks for them a thousand times, and one look at their files is enough."""
    global _hold
    _held.append(all_regions())
    outermost = len(_held) == 1
    if outermost:
        _hold = next(_holds)
    try:
        yield _held[-1]
    finally:
        _held.pop()
        if outermost:
            _hold = 0


def default_region() -> Region | None:
    return next((r for r in all_regions().values() if r.default), None)


def find_region(name: str | None) -> Region | None:
    """The region a data file names by id, full name or alias (the default one when none)."""
    if not name:
        return default_region()
    wanted = normalize_text(name)
    for region in all_regions().values():
        if wanted in {normalize_text(n) for n in (region.id, region.name, *region.aliases)}:
            return region
    return None


def suggest_region(name: str) -> str:
    """「地区」不存在 message with the closest known names."""
    known = [n for r in all_regions().values() for n in (r.id, r.name, *r.aliases)]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)  # never another district
    hint = f"，是否想写「{close[0]}」？" if close else ""
    ids = "、".join(all_regions())
    return f"未知的地区「{name}」{hint}（可用：{ids}）"


def copy_region(source: Region, region_id: str, into: Path) -> Path:
    """A new region folder ``into/region_id`` copied from ``source``, as a start for a user's own.

    The copy is not the default region and has no aliases of the original (both would make
    「地区」 ambiguous); its name asks to be filled in.
    """
    if not _REGION_ID.match(region_id):
        raise RegionError(f"地区 id「{region_id}」只能由小写英文字母、数字和连字符组成，如 hubei-county")
    target = into / region_id
    if target.exists():
        raise RegionError(f"{target} 已存在")
    files = {p.relative_to(source.folder): p.read_bytes() for p in source.files()}
    rules = files[Path(RULES_FILE)].decode("utf-8").splitlines()
    kept = [line for line in rules if not line.startswith(("default:", "aliases:", "name:"))]
    files[Path(RULES_FILE)] = "\n".join(
        [f"# 由 {source.id} 复制：请改为本地区的名称和规则", "name: 请填写地区全称", "aliases: []", *kept, ""]
    ).encode("utf-8")
    staging = into / f".{region_id}.part"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        for relative, data in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RegionError(f"无法写入 {target}：{exc.strerror or exc}") from exc
    return target


_REGION_ID = re.compile(r"^[a-z][a-z0-9-]*$")
