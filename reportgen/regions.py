"""The region registry: one folder per region under ``templates/docx/``.

Each folder holds ``rules.yaml`` (the rules profile below), ``form.docx`` (its template) and a
README. The list of regions is whatever folders exist: adding a region needs no Python.
"""

from __future__ import annotations

import difflib
import os
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RegionError
from .values import normalize_text

DEFAULT_REGION = "national"
TEMPLATES_ENV = "REPORTGEN_TEMPLATES"


class Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumberFormat(Rules):
    """How a number prints: 2 decimals ("500.00"), trimmed ("99.32", "100"), or as written."""

    decimals: int | None = Field(2, description="小数位数；不填表示按原值显示")
    trim_zeros: bool = Field(False, description="去掉末尾的 0（100.00 → 100）")
    suffix: str = Field("", description="数值后的文字，如 % 或 万元")


class MoneyFormat(NumberFormat):
    unit: Literal["元", "万元"] = Field("元", description="金额栏的单位")


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


class Category(Rules):
    """A 一级指标 (or 评分表 group) and its share of the total."""

    name: str
    share: Decimal
    aliases: list[str] = []


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
    name: str = Field(description="地区全称，如 深圳市龙华区")
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
        "indicators", description="总分来自绩效指标表还是评分表（晋中）"
    )
    total: Decimal = Decimal(100)
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
    def folder(self) -> Path:
        return templates_root() / self.id

    @property
    def template(self) -> Path:
        return self.folder / "form.docx"

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


def templates_root() -> Path:
    """``templates/docx``: from $REPORTGEN_TEMPLATES, the installed package, or the checkout."""
    if os.environ.get(TEMPLATES_ENV):
        return Path(os.environ[TEMPLATES_ENV])
    here = _package_folder()
    for candidate in (here / "templates" / "docx", here.parent / "templates" / "docx"):
        if candidate.is_dir():
            return candidate
    raise RegionError("找不到地区模板文件夹 templates/docx；可用环境变量 REPORTGEN_TEMPLATES 指定")


@cache  # asked once per project; resolving the module's path costs a system call per folder level
def _package_folder() -> Path:
    return Path(__file__).resolve().parent


def _load_region(folder: Path) -> Region:
    rules = folder / "rules.yaml"
    try:
        data = yaml.safe_load(rules.read_text(encoding="utf-8")) or {}
        return Region.model_validate({**data, "id": folder.name})
    except (OSError, yaml.YAMLError) as exc:
        raise RegionError(f"{rules}: 无法读取规则文件：{exc}") from exc
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RegionError(f"{rules}: 规则文件有误：{details}") from exc


@cache
def _registry(root: Path) -> dict[str, Region]:
    folders = sorted(p for p in root.iterdir() if (p / "rules.yaml").is_file())
    return {folder.name: _load_region(folder) for folder in folders}


def all_regions() -> dict[str, Region]:
    return _registry(templates_root())


def find_region(name: str | None) -> Region | None:
    """The region a data file names by id, full name or alias; None when unknown."""
    regions = all_regions()
    wanted = normalize_text(name or DEFAULT_REGION)
    for region in regions.values():
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
