"""Documentation generated from the model: the field reference and starter project files."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel

from .declared import DeclaredField, label_targets
from .regions import Region
from .schema import UNIT_FIELDS, Funds, Indicator, MoneyRow, Project, ScorecardRow, labels_of, nested_model, user_fields
from .view import printed_tags, prints

_KINDS = {  # parser → (kind, Chinese type name)
    "_text": ("text", "文字"),
    "_required_text": ("text", "文字（不能为空）"),
    "_money": ("money", "金额（如 180.97万元、1,663,900.00元）"),
    "_rate": ("rate", "百分比（如 99.32%）"),
    "_points": ("points", "分数"),
    "_points_or_mark": ("points_or_mark", "分数，或 无/不适用"),
    "_year": ("year", "年度（如 2022）"),
    "_date": ("date", "日期（如 2021-08-09）"),
}


@dataclass(frozen=True)
class FieldSpec:
    """One key a project file may hold, for a region: the one list that the field reference, the
    starter file, import and the web form read."""

    key: str  # the path in English names: funds.total.initial, indicators.weight, fields.conclusion
    label: str  # as the region prints it
    aliases: tuple[str, ...]
    kind: str  # text, date, money, rate, points, points_or_mark, year, choice, mapping, list, shares
    type_name: str  # the kind in Chinese
    required: bool
    description: str
    options: tuple[str, ...] = ()
    fixed: str | None = None  # a declared text the form always prints
    declared: bool = False

    @property
    def parent(self) -> str:
        return self.key.rpartition(".")[0]


def _parser(model: type[BaseModel], name: str):
    """The function that reads a field's value (pydantic keeps a required field's in its metadata)."""
    info = model.model_fields[name]
    inside = (m for arg in typing.get_args(info.annotation) for m in getattr(arg, "__metadata__", ()))
    metadata = [*info.metadata, *inside]
    return next((m.func for m in metadata if getattr(m, "func", None) is not None), None)


def _kind(model: type[BaseModel], name: str) -> tuple[str, str]:
    annotation = model.model_fields[name].annotation
    inner = nested_model(model, name)
    if inner is not None:
        kind = "list" if typing.get_origin(annotation) is list else "mapping"
        return kind, f"{'列表' if kind == 'list' else '映射'}（{inner.__doc__.splitlines()[0].rstrip('。')}）"
    function = _parser(model, name)
    if function is not None:
        if hasattr(function, "choices"):  # a _choice of fixed words
            return "choice", f"可选值：{'、'.join(function.choices)}"
        return _KINDS.get(function.__name__, ("text", "文字"))
    if any(typing.get_origin(arg) is dict for arg in (annotation, *typing.get_args(annotation))):
        return "shares", "映射（一级指标: 分值）"
    return "text", "文字"


def _common(model: type[BaseModel], prefix: str, region: Region | None) -> Iterator[FieldSpec]:
    labels = label_targets(region.declared.labels) if region else {}
    for name in user_fields(model):
        info = model.model_fields[name]
        if region is not None and not prints(region, tuple(f"{prefix}{name}".split("."))):
            continue
        label, aliases = labels_of(model, name)
        if (model, name) in labels:
            label, aliases = labels[(model, name)], [label, *aliases]
        kind, type_name = _kind(model, name)
        options = tuple(getattr(_parser(model, name), "choices", ()))
        yield FieldSpec(f"{prefix}{name}", label, tuple(aliases), kind, type_name, info.is_required(),
                        info.description or "", options)
        inner = nested_model(model, name)
        if inner is not None:
            yield from _common(inner, f"{prefix}{name}.", region)
        if region is not None and (model, name) == (Project, "funds"):
            yield from _money_rows(region)
        if region is not None and (model, name) == (Project, "indicators"):
            yield from (_declared(d, "indicators.") for d in region.declared.indicator_columns)


def _money_rows(region: Region) -> Iterator[FieldSpec]:
    tags = printed_tags(region)
    for row in region.declared.money_rows:
        what = "「其中」行" if row.part else "资金行"
        yield FieldSpec(f"funds.{row.id}", row.label, tuple(row.aliases), "mapping", f"映射（{what}：各栏金额）",
                        False, "本地区的资金行", declared=True)
        for column in ("initial", "annual", "adjusted", "executed"):
            if any(tag.startswith(f"funds.{row.id}.{column}") for tag in tags):
                label, aliases = labels_of(MoneyRow, column)
                kind, type_name = _kind(MoneyRow, column)
                yield FieldSpec(f"funds.{row.id}.{column}", label, tuple(aliases), kind, type_name, False,
                                MoneyRow.model_fields[column].description or "", declared=True)


def _declared(declared: DeclaredField, prefix: str) -> FieldSpec:
    meaning = declared.description or ("表上的固定文字，不用填写" if declared.fixed else "本地区表格的栏目")
    return FieldSpec(f"{prefix}{declared.id}", declared.label, tuple(declared.aliases), declared.type,
                     declared.type_name(), declared.required, meaning, tuple(declared.options), declared.value,
                     declared=True)


def region_fields(region: Region | None = None) -> list[FieldSpec]:
    """Every key a project file may hold: for a region, only what its form prints, in its words
    and with the fields it declares (``fields.<id>`` for its project-level ones)."""
    specs = list(_common(Project, "", region))
    if region is not None:
        specs.extend(_declared(d, "fields.") for d in region.declared.fields)
    return specs


def field_reference(region: Region | None = None) -> str:
    """The Markdown field reference: key, Chinese label, other spellings, type, meaning; for a
    region, only what its form prints, with its own labels and declared fields."""
    units = "、".join(labels_of(Project, name)[0] for name in UNIT_FIELDS)
    title = "# 字段说明（reportgen fields）"
    if region is not None:
        title = f"# 字段说明：{region.name}（reportgen fields --region {region.id}）"
    rows = [
        f"| `{spec.key}` | {spec.label} | {'、'.join(spec.aliases)} | {spec.type_name} | "
        f"{'是' if spec.required else ''} | {spec.description} |"
        for spec in region_fields(region)
    ]
    return "\n".join(
        [
            title,
            "",
            "每个键都可以写英文名、表上的中文标签或「其他写法」中的任何一种（本地区声明的栏目写中文标签或其他写法）。",
            f"单位文件 `_unit.yaml` 可设置：{units}；同一文件夹（及其子文件夹）中的项目文件继承这些值，并可覆盖。",
            "绩效指标和评分表中，一级指标、二级指标留空表示「同上一行」。",
            *(["只列出本地区表格上印有的字段；写了表上没有的字段是错误。"] if region else []),
            "",
            "| 键 | 中文标签 | 其他写法 | 类型 | 必填 | 说明 |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


class _Starter:
    """A region's starter file, written key by key with the region's own labels."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self.labels = label_targets(region.declared.labels)
        self.lines: list[str] = []

    def label(self, model: type[BaseModel], name: str) -> str:
        return self.labels.get((model, name)) or labels_of(model, name)[0]

    def prints(self, *path: str) -> bool:
        return prints(self.region, path)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def header(self) -> None:
        self.add(f"地区: {self.region.id}")
        self.add("年度: 2024")
        for name in ("code", "name", "department", "department_code", "implementing_unit", "primary_unit",
                     "filing_unit", "attribute", "period"):
            if self.prints(name):
                value = "请填写项目名称" if name == "name" else ""
                self.add(f"{self.label(Project, name)}: {value}".rstrip())
        for declared in self.region.declared.fields:
            self.declared(declared, "")

    def declared(self, declared: DeclaredField, indent: str) -> None:
        if declared.fixed:
            return
        value = declared.options[0] if declared.type == "choice" else ("2024-12-31" if declared.type == "date" else "")
        if declared.required and declared.type == "text":
            value = f"请填写{declared.label}"
        hint = f"  # {declared.type_name()}" + ("（必填）" if declared.required else "")
        self.add(f"{indent}{declared.label}: {value}{hint}".replace(": " + hint, ":" + hint))

    def funds(self) -> None:
        self.add(f"{self.label(Project, 'funds')}:")
        self.add(f"  {self.label(Funds, 'unit')}: {self.region.money.unit}            # 不带单位的金额按此单位理解")
        rows = [("total", self.label(Funds, "total")), ("fiscal", self.label(Funds, "fiscal"))]
        rows += [(row.id, row.label) for row in self.region.declared.money_rows]
        for row, label in rows:
            columns = [c for c in ("initial", "annual", "adjusted", "executed") if self._prints_money(row, c)]
            if not columns:
                continue
            self.add(f"  {label}:")
            for column in columns:
                self.add(f"    {self.label(MoneyRow, column)}: 0")
        if self.region.score_table == "indicators" and self.region.execution.row is None:
            self.add(f"  {self.label(Funds, 'weight')}: {self.region.execution.weight}")

    def _prints_money(self, row: str, column: str) -> bool:
        if self.region.declared.money_row(row) is not None:
            return any(tag.startswith(f"funds.{row}.{column}") for tag in printed_tags(self.region))
        return self.prints("funds", row, column) and (row == "total" or self.prints("funds", row))

    def texts(self) -> None:
        if self.prints("expected_goal"):
            self.add(f"{self.label(Project, 'expected_goal')}: 请填写年度总体目标")
        if self.prints("goal_achieved"):
            self.add(f"{self.label(Project, 'goal_achieved')}: 请填写实际完成情况")
        for name in ("overview", "fund_usage", "implementation", "performance", "other_issues"):
            if self.prints(name):
                self.add(f"{self.label(Project, name)}:")

    def indicators(self) -> None:
        label = lambda name: self.label(Indicator, name)  # noqa: E731
        self.add(f"{self.label(Project, 'indicators')}:")
        execution = self.region.execution.row
        for category in self.region.categories:
            usual = (category.level2 or ["请填写"])[0]
            parts = [(p.name, p.share) for p in category.parts]
            rest = category.share - sum((share for _, share in parts), Decimal(0))
            if rest > 0:  # the share the parts leave over (all of it, without parts)
                parts.append((next((n for n in category.level2 if n not in dict(parts)), usual), rest))
            for level2, share in parts:
                if execution and execution.level1 == category.name and execution.level2 in ("", level2):
                    share -= self.region.execution.weight
                    if share <= 0:
                        continue
                self.add(f"  - {label('level1')}: {category.name}")
                self.add(f"    {label('level2')}: {level2}")
                self.add(f"    {label('name')}: 请填写指标名称")
                self.add(f'    {label("target")}: "≥90%"          # 目标值；≥、≤、以上、低于 等决定正向/反向')
                self.add(f'    {label("actual")}: "95%"')
                self.add(f"    {label('weight')}: {share}")
                self.add(f"    {label('score')}:                      # 定量指标可不填，由规则计算；定性指标必填")
                if self.prints("indicators", "reason"):
                    self.add(f"    {label('reason')}:    # 得分低于分值时必填")
                for declared in self.region.declared.indicator_columns:
                    self.declared(declared, "    ")
        if execution:
            self.add(f"  # 「{execution.name}」一行（{execution.level1}）由资金数据计算，印在指标表中，不用填写")

    def scorecard(self) -> None:
        self.add(f"{self.label(Project, 'scorecard')}:")
        for category in self.region.categories:
            self.add(f"  - {self.label(ScorecardRow, 'group')}: {category.name}")
            self.add(f"    {self.label(ScorecardRow, 'level2')}: 请填写")
            self.add(f"    {self.label(ScorecardRow, 'name')}: 请填写")
            self.add(f"    {self.label(ScorecardRow, 'weight')}: {category.share}")
            self.add(f"    {self.label(ScorecardRow, 'score')}:")
        row = self.region.execution.scorecard_row
        if row:
            self.add(f"  # 其中「{row}」一行的得分由资金数据计算，可不填评价得分")


def starter_yaml(region: Region) -> str:
    """A commented project file in Chinese keys for a region, holding only what its form prints;
    valid once its blanks are filled."""
    starter = _Starter(region)
    starter.add(f"# {region.name} {region.title}：项目数据文件（由 reportgen new 生成）")
    starter.add("# 编辑后运行：reportgen validate 本文件；金额可写 180.97万元 或 1,663,900.00元。")
    starter.header()
    starter.funds()
    starter.texts()
    if region.score_table == "scorecard":
        starter.scorecard()
    else:
        starter.indicators()
    return "\n".join([*starter.lines, ""])
