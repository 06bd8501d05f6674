"""The project model: every field of the seed forms, with its Chinese label.

Each field carries ``label`` (the words printed on the form) and ``aliases`` (other labels the
regions use). A YAML file may use the English key, the label or any alias; ``load`` resolves
them, so the model itself only ever sees English names. ``reportgen fields`` prints this
module as the field reference.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .values import (
    Money,
    Percent,
    ValueParseError,
    is_not_applicable,
    normalize_text,
    parse_money,
    parse_points,
    parse_rate,
)


@dataclass(frozen=True)
class NotApplicable:
    """A number cell the form marks as not applying: "无", "不适用", "/"."""

    text: str

    def __str__(self) -> str:
        return self.text


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "映射（键: 值）"
    if isinstance(value, list):
        return "列表"
    return "空值" if value is None else "文字"


def scalar(value: object, expected: str) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValueParseError(f"应为{expected}，实际是{_describe(value)}")
    return str(value)


def _text(value: object) -> str:
    return scalar(value, "文字").strip()


def _required_text(value: object) -> str:
    text = _text(value)
    if not text:
        raise ValueParseError("不能为空")
    return text


def _money(value: object) -> Money:
    return parse_money(scalar(value, "金额"))


def _rate(value: object) -> Percent:
    return parse_rate(scalar(value, "百分比"))


def _points(value: object) -> Decimal:
    return parse_points(scalar(value, "分数"))


def _points_or_mark(value: object) -> Decimal | NotApplicable:
    text = scalar(value, "分数")
    return NotApplicable(text.strip()) if is_not_applicable(text) else parse_points(text)


def _year(value: object) -> int:
    text = normalize_text(scalar(value, "年度")).removesuffix("年度").removesuffix("年")
    if not text.isdigit() or not 1990 <= int(text) <= 2100:
        raise ValueParseError(f"「{value}」不是有效的年度（例如 2022）")
    return int(text)


def _date(value: object) -> str:
    text = normalize_text(scalar(value, "日期"))
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"):
        try:
            datetime.datetime.strptime(text, fmt)
            return text
        except ValueError:
            continue
    raise ValueParseError(f"「{value}」不是有效的日期（例如 2021-08-09）")


def _choice(*choices: str):
    def parse(value: object) -> str:
        text = normalize_text(scalar(value, "文字"))
        if text not in choices:
            raise ValueParseError(f"「{value}」不是可选值之一：{'、'.join(choices)}")
        return text

    parse.choices = choices  # type: ignore[attr-defined]  # read by the field reference
    return parse


Text = Annotated[str, BeforeValidator(_text)]
RequiredText = Annotated[str, BeforeValidator(_required_text)]
Amount = Annotated[Money, BeforeValidator(_money)]
Rate = Annotated[Percent, BeforeValidator(_rate)]
Points = Annotated[Decimal, BeforeValidator(_points)]
PointsOrMark = Annotated[Decimal | NotApplicable, BeforeValidator(_points_or_mark)]
Year = Annotated[int, BeforeValidator(_year)]
Date = Annotated[str, BeforeValidator(_date)]

# The value types a region may declare for its own fields (fields.yaml): parser and Chinese name.
FIELD_TYPES: dict[str, tuple[Any, str]] = {
    "text": (_text, "文字"),
    "date": (_date, "日期（如 2021-08-09）"),
    "money": (_money, "金额（如 180.97万元、1,663,900.00元）"),
    "rate": (_rate, "百分比（如 99.32%）"),
    "points": (_points, "分数"),
    "choice": (None, "单选（表上印 ☑/☐）"),
}


def field(label: str, description: str, *aliases: str, default: Any = None) -> Any:
    """A model field documented in Chinese, with the form's label and other accepted keys."""
    return Field(
        default,
        description=description,
        json_schema_extra={"label": label, "aliases": list(aliases)},
    )


def required(label: str, description: str, *aliases: str) -> Any:
    return field(label, description, *aliases, default=...)


def declared_values() -> Any:
    """The values of the fields a region declares (fields.yaml), by their id; never a user key."""
    return Field(default={}, json_schema_extra={"internal": True})


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class MoneyRow(Model):
    """资金行：年初预算数、全年预算数、调整后预算数、全年执行数（各地区印的栏不同）。"""

    initial: Amount | None = field("年初预算数", "年初批复的预算数", "年初预算数(A)", "预算资金")
    annual: Amount | None = field("全年预算数", "全年（调整后下达）的预算数", "预算下达资金")
    adjusted: Amount | None = field("调整后预算数", "年中调整后的预算数")
    executed: Amount | None = field(
        "全年执行数", "全年实际支出", "全年执行数(B)", "执行数", "实际支出资金"
    )


class Funds(Model):
    """资金栏：各资金行和预算执行率得分。"""

    unit: Text | None = field(
        "金额单位", "不带单位的金额按此单位理解：元 或 万元；缺省为本地区表格的单位", "单位"
    )
    total: MoneyRow = field("年度资金总额", "资金合计行", "资金总额", "合计", default=MoneyRow())
    fiscal: MoneyRow = field(
        "当年财政拨款", "其中：当年财政拨款", "财政拨款", "市级预算资金", "本年财政拨款",
        default=MoneyRow(),
    )
    carryover: MoneyRow = field("上年结转资金", "其中：上年结转资金", "上年结转", default=MoneyRow())
    superior: MoneyRow = field("上级财政资金", "其中：上级财政资金", "上级财政", default=MoneyRow())
    other: MoneyRow = field("其他资金", "其中：其他资金", "其他", default=MoneyRow())
    weight: Points | None = field("分值", "预算执行率的分值；缺省取本地区规则", "分值(10分)")
    rate: Rate | None = field("执行率", "表上填写的执行率（%），用于核对", "执行率(%)", "执行率(B/A)")
    score: Points | None = field("得分", "表上填写的预算执行得分；与计算值不一致时保留并提示")
    rows: dict[str, MoneyRow] = declared_values()


class Indicator(Model):
    """绩效指标表的一行（一个三级指标）。"""

    level1: Text | None = field("一级指标", "一级指标，如 产出指标；留空表示同上一行")
    level2: Text | None = field("二级指标", "二级指标，如 数量指标；留空表示同上一行")
    name: RequiredText = required("三级指标", "三级指标名称", "指标名称")
    target: Text | None = field(
        "年度指标值", "年度目标值，如 ≥90%、至少2次/周", "指标值", "目标值", "年度指标值(A)"
    )
    actual: Text | None = field(
        "实际完成值", "全年实际完成值", "全年实际值", "实际完成指标值", "全年实际值(B)"
    )
    progress: Text | None = field("完成进度", "指标的完成进度")
    weight: PointsOrMark | None = field("分值", "指标分值；不适用时填 无 或 不适用", "指标分值")
    score: PointsOrMark | None = field("得分", "自评得分；定量指标可不填，由规则计算", "评价得分")
    reason: Text | None = field(
        "偏差原因分析及改进措施", "未完成或偏差的原因及改进措施", "未完成原因分析", "偏差原因"
    )
    kind: Annotated[str, BeforeValidator(_choice("定量", "定性", "手工"))] | None = field(
        "指标类型", "定量、定性或手工；缺省时由指标值自动判断", "指标性质"
    )
    direction: Annotated[str, BeforeValidator(_choice("正向", "反向"))] | None = field(
        "指标方向", "正向（越高越好）或反向（越低越好）；缺省时由指标值中的 ≥、≤、以上、低于 等判断"
    )
    grade: Text | None = field("完成等级", "定性指标的完成档次，如 达成预期指标", "定性等级")
    declared: dict[str, Any] = declared_values()


class ScorecardRow(Model):
    """评分表的一行（一个三级指标）。"""

    group: Text | None = field("一级指标", "投入、过程、产出、效果；留空表示同上一行", "评分类别")
    level2: Text | None = field("二级指标", "如 项目目标、资金落实；留空表示同上一行")
    name: RequiredText = required("三级指标", "如 项目立项规范性、预算执行率")
    weight: Points = required("指标分值", "该行分值", "分值")
    score: Points | None = field(
        "评价得分", "该行得分；预算执行率一行可不填，由资金数据计算", "得分"
    )


class Evaluator(Model):
    """评价人员名单中的一人。"""

    name: RequiredText = required("姓名", "评价人员姓名")
    title: Text | None = field("职称/职务", "职称或职务", "职务", "职称")
    office: Text | None = field("科室", "所在科室")
    phone: Text | None = field("联系电话", "联系电话", "电话")


class Signoff(Model):
    """表尾签字栏。"""

    leader: Text | None = field("负责人", "项目负责人")
    handler: Text | None = field("经办人", "经办人")
    phone: Text | None = field("联系电话", "经办人联系电话", "电话")
    date: Date | None = field("填报日期", "填报日期，如 2021-08-09")
    unit_leader: Text | None = field("单位负责人", "单位负责人（签章）")


class Project(Model):
    """一个项目的绩效自评表。"""

    region: Text | None = field("地区", "地区 id 或名称（见 reportgen regions）；缺省为标为缺省的地区", "地区规则")
    year: Year = required("年度", "绩效自评年度", "绩效自评年度", "自评年度")
    code: Text | None = field("项目编号", "预算系统中的项目编号")
    name: RequiredText = required("项目名称", "项目名称")
    department: Text | None = field("主管部门", "主管部门名称")
    department_code: Text | None = field("主管部门代码", "主管部门代码", "主管部门及代码")
    implementing_unit: Text | None = field("实施单位", "项目实施单位")
    primary_unit: Text | None = field("一级预算单位", "一级预算单位")
    filing_unit: Text | None = field("填报单位", "填报单位（公章）")
    attribute: Text | None = field("项目属性", "如 经常性项目、一次性项目")
    period: Text | None = field("项目期", "如 202001至202012")
    funds: Funds = field("项目资金", "资金使用情况", "资金使用情况", "项目资金情况", default=Funds())
    expected_goal: Text | None = field("预期目标", "年度总体目标：预期目标", "年初设定目标")
    goal_achieved: Text | None = field(
        "实际完成情况", "年度总体目标：实际完成情况", "年度总体目标完成情况综述"
    )
    overview: Text | None = field("项目概况", "项目概况")
    fund_usage: Text | None = field("项目资金使用情况", "资金使用情况说明")
    implementation: Text | None = field("项目组织实施情况", "组织实施情况说明")
    performance: Text | None = field("项目绩效情况", "绩效情况说明")
    other_issues: Text | None = field("其他需说明的问题", "其他需说明的问题")
    shares: dict[Text, Points] | None = field(
        "一级指标分值", "调整后的一级指标分值，如 {产出指标: 50}；缺省取本地区规则"
    )
    indicators: list[Indicator] = field(
        "绩效指标", "绩效指标表，每行一个三级指标", "年度绩效指标", "绩效目标实现情况",
        default=[],
    )
    scorecard: list[ScorecardRow] = field("评分表", "评分表，每行一个三级指标（总分来自评分表的地区）", default=[])
    total: Points | None = field("总分", "表上填写的总分；与计算值不一致时提示", "综合得分")
    grade: Text | None = field("评价结果等次", "表上填写的等次：优、良、中、差", "等次", "等级")
    evaluators: list[Evaluator] = field("评价人员", "评价人员名单", default=[])
    signoff: Signoff = field("签字", "表尾签字栏", "填报信息", default=Signoff())
    declared: dict[str, Any] = declared_values()


# Keys a unit-level file (_unit.yaml) may set for every project in its folder.
UNIT_FIELDS = (
    "region", "year", "department", "department_code", "implementing_unit", "primary_unit",
    "filing_unit", "evaluators", "signoff",
)


def user_fields(model: type[BaseModel]) -> list[str]:
    """The fields a user may write (declared values are reached through the region's keys)."""
    return [n for n, f in model.model_fields.items() if not (f.json_schema_extra or {}).get("internal")]


def labels_of(model: type[BaseModel], name: str) -> tuple[str, list[str]]:
    label, aliases = _labels(model, name)
    return label, list(aliases)  # a fresh list: callers may change it, the cache must not


@cache  # asked for every key of every file; the fields never change
def _labels(model: type[BaseModel], name: str) -> tuple[str, tuple[str, ...]]:
    extra = model.model_fields[name].json_schema_extra or {}
    return extra.get("label", name), tuple(extra.get("aliases", []))


@cache
def nested_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model a field holds, itself or as list items (None for plain values)."""
    annotation = model.model_fields[name].annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None
