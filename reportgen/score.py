"""Scoring by a region's rules profile: computes what the rules determine, keeps what was entered.

Pure functions of (project, region). Every scored line records its rule, its inputs, the computed
and the entered score; the score used is the entered one when given (a clerk's judgement is
never silently replaced) and a difference becomes a warning naming both numbers. Totals are
always the sum of the lines used, so a printed total never disagrees with its rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from .regions import Region
from .schema import Funds, Indicator, MoneyRow, NotApplicable, Project
from .values import MONEY_UNITS, format_decimal, normalize_text, round_half_up

Loc = tuple[str | int, ...]  # a path into the model: ("indicators", 2, "score")

REVERSE_WORDS = ("≤", "<", "低于", "不高于", "不超过", "以下", "小于", "少于", "不多于", "控制")
POSITIVE_WORDS = ("≥", ">", "以上", "不低于", "至少", "大于", "高于", "不少于")
_DATE = re.compile(r"\d{4}\s*(年|[.\-/]\d{1,2}(\D|$))")
_ORDINAL = re.compile(r"^(指标\s*\d+\s*[:：]|\d+\s*[、)）]|[（(]\d+[)）])")
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Finding:
    """A warning or error about a project, located by its model path."""

    loc: Loc
    severity: str
    message: str


@dataclass(frozen=True)
class Line:
    """One scored line: an indicator, a 评分表 row or the budget execution."""

    loc: Loc
    label: str
    rule: str
    inputs: str
    weight: Decimal | None
    computed: Decimal | None
    entered: Decimal | None

    @property
    def used(self) -> Decimal:
        """The score that counts: the entered one when given, else the computed one."""
        if self.entered is not None:
            return self.entered
        return self.computed if self.computed is not None else Decimal(0)


@dataclass(frozen=True)
class Execution:
    """The budget-execution block: its rate (percent) and its score line."""

    rate: Decimal | None
    line: Line


@dataclass
class Result:
    """A project's scores, total and grade, with the findings the audit produced."""

    execution: Execution
    lines: list[Line]
    total_weight: Decimal
    total: Decimal
    grade: str
    findings: list[Finding] = field(default_factory=list)

    def line_at(self, loc: Loc) -> Line | None:
        return next((line for line in self.lines if line.loc == loc), None)


# --- numbers in indicator texts -------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    value: Decimal
    unit: str


def parse_quantity(text: str | None) -> Quantity | None:
    """The single number a target or actual value states ("≥90%", "2.2万件"), else None."""
    if not text:
        return None
    cleaned = _ORDINAL.sub("", normalize_text(text)).strip()
    if _DATE.search(cleaned):
        return None  # "2023年1月-12月", "2020.12": dates are not scored by ratio
    numbers = _NUMBER.findall(cleaned)
    if len(numbers) != 1:
        return None
    match = _NUMBER.search(cleaned)
    assert match is not None
    value = Decimal(match.group().replace(",", ""))
    rest = cleaned[match.end():]
    if rest.startswith("万"):
        value, rest = value * 10000, rest[1:]
    unit = rest[:1] if rest[:1] not in ("", " ") else ""
    return Quantity(value, unit)


def direction_of(indicator: Indicator, region: Region) -> str:
    """正向 or 反向: as given, else from the target's words, else from the 二级指标."""
    if indicator.direction:
        return indicator.direction
    text = normalize_text(indicator.target or "")
    # Longest words first: 不少于 is positive although it contains 少于.
    words = [(w, "反向") for w in REVERSE_WORDS] + [(w, "正向") for w in POSITIVE_WORDS]
    for word, direction in sorted(words, key=lambda pair: len(pair[0]), reverse=True):
        if word in text:
            return direction
    reverse = {normalize_text(name) for name in region.reverse_level2}
    return "反向" if normalize_text(indicator.level2 or "") in reverse else "正向"


def _comparable(target: Quantity, actual: Quantity) -> bool:
    return not (target.unit and actual.unit and target.unit != actual.unit)


# --- lines ----------------------------------------------------------------------------------


def _points(value: Decimal | NotApplicable | None) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def _fmt(value: Decimal | None) -> str:
    return "—" if value is None else format_decimal(value, None)


def score_quantitative(
    indicator: Indicator, weight: Decimal, region: Region
) -> tuple[Decimal | None, str, str]:
    """(score, rule, inputs) for a ratio-scored indicator; score None when not computable."""
    target, actual = parse_quantity(indicator.target), parse_quantity(indicator.actual)
    inputs = f"指标值(A)「{indicator.target or ''}」，实际值(B)「{indicator.actual or ''}」"
    if target is None or actual is None or not _comparable(target, actual):
        return None, "指标值与实际值不是可比较的数字，按填写得分", inputs
    direction = direction_of(indicator, region)
    if direction == "反向":
        ratio = Decimal(1) if actual.value == 0 else target.value / actual.value
        rule = "反向指标：A / B × 分值，最高为分值"
    else:
        ratio = Decimal(1) if target.value == 0 else actual.value / target.value
        rule = "正向指标：B / A × 分值，最高为分值"
    score = weight * min(ratio, Decimal(1))
    if direction == "正向" and target.value > 0:
        deviation = (actual.value - target.value) / target.value * _HUNDRED
        for step in sorted(region.over_target, key=lambda d: d.at_least, reverse=True):
            if deviation >= step.at_least:
                score -= weight * step.deduct / _HUNDRED
                rule += f"；超出指标值 {format_decimal(deviation, 2)}%，扣分值的 {_fmt(step.deduct)}%"
                break
    return round_half_up(score, region.score_decimals), rule, inputs


def score_indicator(index: int, indicator: Indicator, region: Region) -> tuple[Line, list[Finding]]:
    loc: Loc = ("indicators", index)
    weight, entered = _points(indicator.weight), _points(indicator.score)
    findings: list[Finding] = []
    label = indicator.name
    if weight is None or weight == 0:
        mark = indicator.weight if isinstance(indicator.weight, NotApplicable) else "0"
        return Line(loc, label, f"不适用（分值 {mark}），不计分", "", weight, Decimal(0), entered), []
    tier = region.tier(indicator.grade or indicator.actual) if indicator.kind != "定量" else None
    if indicator.kind == "定性" or (tier and indicator.kind is None):
        return _qualitative_line(loc, indicator, weight, entered, tier, region)
    if indicator.kind == "手工":
        computed, rule, inputs = None, "手工评分", ""
    else:
        computed, rule, inputs = score_quantitative(indicator, weight, region)
    if computed is None and entered is None:
        message = "无法按规则计算得分（指标值与实际值不是可比较的数字），请填写得分"
        findings.append(Finding((*loc, "score"), "error", message))
    elif computed is not None and entered is not None and computed != entered:
        message = f"填写的得分 {_fmt(entered)} 与按规则计算的 {_fmt(computed)} 不一致（{rule}），已保留填写值"
        findings.append(Finding((*loc, "score"), "warning", message))
    return Line(loc, label, rule, inputs, weight, computed, entered), findings


def _qualitative_line(
    loc: Loc, indicator: Indicator, weight: Decimal, entered: Decimal | None, tier, region: Region
) -> tuple[Line, list[Finding]]:
    findings: list[Finding] = []
    if tier is None:
        names = "、".join(t.name for t in region.qualitative) or "（本地区未定义档次）"
        rule = "定性指标：未写明完成档次"
        if entered is None:
            findings.append(Finding((*loc, "grade"), "error", f"定性指标须写明完成等级（{names}）或填写得分"))
        return Line(loc, indicator.name, rule, "", weight, None, entered), findings
    low, high = weight * tier.min / _HUNDRED, weight * tier.max / _HUNDRED
    rule = f"定性指标「{tier.name}」：分值的 {_fmt(tier.min)}%–{_fmt(tier.max)}%（{_fmt(low)}–{_fmt(high)} 分）"
    if entered is None:
        findings.append(Finding((*loc, "score"), "error", f"定性指标请填写得分（{rule}）"))
    elif not low <= entered <= high:
        message = f"得分 {_fmt(entered)} 不在{rule}的区间内"
        findings.append(Finding((*loc, "score"), "warning", message))
    inputs = f"完成情况「{indicator.grade or indicator.actual or ''}」"
    return Line(loc, indicator.name, rule, inputs, weight, None, entered), findings


# --- budget execution -----------------------------------------------------------------------

_BASE_LABELS = {"initial": "年初预算数", "annual": "全年预算数", "adjusted": "调整后预算数"}
_SUB_ROWS = ("fiscal", "carryover", "superior", "other")


def funds_unit(funds: Funds, region: Region) -> str:
    return funds.unit if funds.unit in ("元", "万元") else region.money.unit


def part_rows(funds: Funds, region: Region) -> dict[str, MoneyRow]:
    """The 其中 rows of the money block: the common ones and those the region declares as parts."""
    declared = {row.id: funds.rows[row.id] for row in region.declared.money_rows if row.part and row.id in funds.rows}
    return {**{row: getattr(funds, row) for row in _SUB_ROWS}, **declared}


def column_total(funds: Funds, column: str, region: Region) -> Decimal | None:
    """The 年度资金总额 cell of a column in 元, or the sum of its 其中 rows when not given."""
    unit = funds_unit(funds, region)
    total = getattr(funds.total, column)
    if total is not None:
        return total.in_yuan(unit)
    parts = [getattr(row, column) for row in part_rows(funds, region).values()]
    given = [part.in_yuan(unit) for part in parts if part is not None]
    return sum(given, Decimal(0)) if given else None


def score_execution(
    funds: Funds, region: Region, weight: Decimal, entered: Decimal | None, loc: Loc
) -> tuple[Execution, list[Finding]]:
    base_column = region.execution.base
    base, executed = column_total(funds, base_column, region), column_total(funds, "executed", region)
    base_label = _BASE_LABELS[base_column]
    unit = region.money.unit  # amounts in the form's own unit
    in_unit = {name: None if v is None else v / MONEY_UNITS[unit] for name, v in (("b", base), ("e", executed))}
    inputs = f"全年执行数 {_fmt(in_unit['e'])} {unit}，{base_label} {_fmt(in_unit['b'])} {unit}"
    findings: list[Finding] = []
    if base is None or executed is None or base == 0:
        rule = f"执行率 = 全年执行数 / {base_label}；{base_label}为空或为 0，无法计算"
        if entered is None:
            message = f"无法计算预算执行率（缺少全年执行数或{base_label}），请填写得分"
            findings.append(Finding(loc, "error", message))
        return Execution(None, Line(loc, "预算执行率", rule, inputs, weight, None, entered)), findings
    rate = executed / base * _HUNDRED
    rule = f"得分 = 分值 × min(全年执行数 / {base_label}, 1)"
    rate_used = rate
    if region.execution.rate_decimals is not None:
        rate_used = round_half_up(rate, region.execution.rate_decimals)
        rule += f"，执行率先取 {region.execution.rate_decimals} 位小数"
    computed = round_half_up(weight * min(rate_used / _HUNDRED, Decimal(1)), region.score_decimals)
    if entered is not None and entered != computed:
        by_rate = f"按执行率 {format_decimal(rate, 2)}% 计算的 {_fmt(computed)}"
        message = f"填写的得分 {_fmt(entered)} 与{by_rate} 不一致，已保留填写值"
        findings.append(Finding(loc, "warning", message))
    return Execution(rate, Line(loc, "预算执行率", rule, inputs, weight, computed, entered)), findings


# --- the project ----------------------------------------------------------------------------


def _execution_for(project: Project, region: Region) -> tuple[Execution, list[Finding]]:
    if region.score_table == "scorecard":
        for index, row in enumerate(project.scorecard):
            if normalize_text(row.name) == normalize_text(region.execution.scorecard_row or ""):
                loc: Loc = ("scorecard", index, "score")
                return score_execution(project.funds, region, row.weight, row.score, loc)
        weight = region.execution.weight
        return score_execution(project.funds, region, weight, None, ("scorecard",))
    weight = project.funds.weight if project.funds.weight is not None else region.execution.weight
    return score_execution(project.funds, region, weight, project.funds.score, ("funds", "score"))


def _scorecard_lines(project: Project, execution: Execution) -> list[Line]:
    lines = []
    for index, row in enumerate(project.scorecard):
        if execution.line.loc == ("scorecard", index, "score"):
            lines.append(execution.line)
            continue
        loc: Loc = ("scorecard", index)
        lines.append(Line(loc, row.name, "按填写得分", "", row.weight, None, row.score))
    return lines


def score_project(project: Project, region: Region) -> Result:
    execution, findings = _execution_for(project, region)
    if region.score_table == "scorecard":
        lines = _scorecard_lines(project, execution)
        for index, row in enumerate(project.scorecard):
            if row.score is None and lines[index] is not execution.line:
                findings.append(Finding(("scorecard", index, "score"), "error", "缺少评价得分"))
        counted = lines
    else:
        lines = []
        for index, indicator in enumerate(project.indicators):
            line, line_findings = score_indicator(index, indicator, region)
            lines.append(line)
            findings.extend(line_findings)
        counted = [execution.line, *lines]
    total_weight = sum((line.weight or Decimal(0) for line in counted), Decimal(0))
    total = sum((line.used for line in counted), Decimal(0))
    grade = region.grade_of(total)
    findings.extend(_audit_totals(project, total, grade))
    return Result(execution, lines, total_weight, total, grade, findings)


def _audit_totals(project: Project, total: Decimal, grade: str) -> list[Finding]:
    findings = []
    if project.total is not None and project.total != total:
        message = f"填写的总分 {_fmt(project.total)} 与各行得分之和 {_fmt(total)} 不一致；表上将印 {_fmt(total)}"
        findings.append(Finding(("total",), "warning", message))
    if project.grade is not None and normalize_text(project.grade) != grade:
        message = f"填写的等次「{project.grade}」与总分 {_fmt(total)} 对应的「{grade}」不一致；表上将印「{grade}」"
        findings.append(Finding(("grade",), "warning", message))
    return findings


def money_rows(funds: Funds) -> dict[str, MoneyRow]:
    """Every money row, common and declared, by its context name."""
    return {"total": funds.total, **{row: getattr(funds, row) for row in _SUB_ROWS}, **funds.rows}
