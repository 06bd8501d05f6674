"""The fields a region declares in its ``fields.yaml``: what its form prints beyond the common model.

A region's form may carry rows, columns and boxes no other region has: money rows (财政资金,
单位资金), indicator columns (度量单位), text blocks (评价结论), signature and header fields
(项目负责人, 财政审核评分), checkbox rows (项目类别 ☑/☐) and fixed form codes (报表编号). Each is
declared once, here, as data; validation, the field reference, the starter file, the template
context and ``templates check`` all read the declaration.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .schema import FIELD_TYPES, NotApplicable, Project, labels_of, nested_model, scalar, user_fields
from .values import ValueParseError, normalize_text

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
BOX_ON, BOX_OFF = "☑", "☐"


class Declaration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeclaredField(Declaration):
    """A value the clerk types (or a fixed text the form prints) that the common model lacks."""

    id: str = Field(description="模板中使用的名称（小写英文字母、数字、下划线），如 conclusion")
    label: str = Field(description="表上印的标签，如 评价结论；也是项目文件中的键")
    aliases: list[str] = Field([], description="项目文件中可用的其他写法")
    type: Literal["text", "date", "money", "rate", "points", "choice"] = Field(
        "text", description="text 文字、date 日期、money 金额、rate 百分比、points 分数、choice 单选"
    )
    options: list[str] = Field([], description="choice 的可选项，按表上的顺序")
    required: bool = Field(False, description="是否必填")
    unit: bool = Field(False, description="可写在单位文件 _unit.yaml 中")
    value: str | None = Field(None, description="固定印在表上的文字（如报表编号）；不由项目文件填写")
    boxes: str = Field(
        "{box}{option}",
        description="choice 每个选项的印法：{box} 是 ☑ 或 ☐，{option} 是选项，{n} 是序号；如 {n}、{option}{box}",
    )
    description: str = Field("", description="字段说明（reportgen fields 中显示）")

    @model_validator(mode="after")
    def _consistent(self) -> DeclaredField:
        if not _ID.match(self.id):
            raise ValueError(f"id「{self.id}」只能由小写英文字母、数字和下划线组成，并以字母开头")
        if self.type == "choice" and not self.options:
            raise ValueError(f"「{self.label}」的类型是 choice，须用 options 列出可选项")
        if self.options and self.type != "choice":
            raise ValueError(f"「{self.label}」有 options，类型应为 choice")
        if self.value is not None and self.required:
            raise ValueError(f"「{self.label}」是固定文字（value），不能同时 required")
        return self

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)

    @property
    def fixed(self) -> bool:
        return self.value is not None

    def type_name(self) -> str:
        if self.type == "choice":
            return f"单选：{'、'.join(self.options)}"
        return FIELD_TYPES[self.type][1]

    def parse(self, value: object) -> Any:
        """The typed value of what the clerk wrote; raises ValueParseError in Chinese."""
        if self.type == "choice":
            text = normalize_text(scalar(value, "文字"))
            for option in self.options:
                if text == normalize_text(option):
                    return option
            raise ValueParseError(f"「{value}」不是可选值之一：{'、'.join(self.options)}")
        parser = FIELD_TYPES[self.type][0]
        return parser(value)

    def printed(self, value: Any) -> str:
        """The text the form prints: the typed value, the fixed text, or a row of boxes."""
        if self.fixed:
            return self.value or ""
        if self.type == "choice":
            return "　".join(
                self.boxes.format(box=BOX_ON if option == value else BOX_OFF, option=option, n=n)
                for n, option in enumerate(self.options, 1)
            )
        if value is None:
            return ""
        return value.text if isinstance(value, NotApplicable) else str(value)


class DeclaredMoneyRow(Declaration):
    """A row of the money block beside the common ones (财政资金, 财政专户管理资金, 单位资金…)."""

    id: str = Field(description="模板中使用的名称，如 special_account；模板写 funds.<id>.<栏>")
    label: str = Field(description="表上印的行名，如 财政专户管理资金")
    aliases: list[str] = Field([], description="项目文件中可用的其他写法，如 其中：财政专户管理资金")
    part: bool = Field(True, description="是否为年度资金总额的「其中」行（各「其中」行之和应等于总额）")

    @model_validator(mode="after")
    def _id_ok(self) -> DeclaredMoneyRow:
        if not _ID.match(self.id):
            raise ValueError(f"id「{self.id}」只能由小写英文字母、数字和下划线组成，并以字母开头")
        return self

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)


class Declarations(Declaration):
    """``fields.yaml``: everything a region's form prints that the common model does not know."""

    fields: list[DeclaredField] = Field([], description="项目级字段：表头、文字段落、签字栏、勾选栏、固定编号")
    money_rows: list[DeclaredMoneyRow] = Field([], description="资金栏中增加的行")
    indicator_columns: list[DeclaredField] = Field([], description="绩效指标表中增加的栏")
    labels: dict[str, str] = Field(
        {}, description="本地区对通用字段的叫法，如 绩效指标.分值: 权重（键为 reportgen fields 中的中文路径）"
    )

    @model_validator(mode="after")
    def _unique(self) -> Declarations:
        for path in self.labels:
            if _label_target(path) is None:
                raise ValueError(f"labels 中的「{path}」不是通用字段的路径（见 reportgen fields，如 绩效指标.分值）")
        for group in (self.fields, self.money_rows, self.indicator_columns):
            seen: set[str] = set()
            for item in group:
                if item.id in seen:
                    raise ValueError(f"id「{item.id}」重复")
                seen.add(item.id)
        return self

    def money_row(self, row_id: str) -> DeclaredMoneyRow | None:
        return next((row for row in self.money_rows if row.id == row_id), None)


def _label_target(path: str) -> tuple[type[BaseModel], str] | None:
    """The (model, field) a Chinese label path names: 绩效指标.分值 → (Indicator, "weight")."""
    model: type[BaseModel] | None = Project
    found = None
    for part in path.split("."):
        if model is None:
            return None
        wanted = normalize_text(part.strip())
        name = next(
            (n for n in user_fields(model) if wanted in {normalize_text(s) for s in (n, *_spellings(model, n))}),
            None,
        )
        if name is None:
            return None
        found, model = (model, name), nested_model(model, name)
    return found


def _spellings(model: type[BaseModel], name: str) -> tuple[str, ...]:
    label, aliases = labels_of(model, name)
    return (label, *aliases)


def label_targets(labels: dict[str, str]) -> dict[tuple[type[BaseModel], str], str]:
    """A region's own labels for common fields, by the (model, field) they name."""
    targets = {}
    for path, label in labels.items():
        target = _label_target(path)
        if target is not None:
            targets[target] = label
    return targets
