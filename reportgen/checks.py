"""Cross-field checks: rules that look at more than one field. One small function each.

Each check takes the validated project and its region and returns findings located by model
path; ``validate`` turns them into lines of the user's file. Scoring audits (entered vs computed
scores, totals, grades) live in ``score``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

from .regions import Region
from .schema import NotApplicable, Project
from .score import (
    Finding,
    column_total,
    funds_unit,
    part_rows,
    score_execution,
)
from .values import format_decimal
from .view import prints

Check = Callable[[Project, Region], Iterator[Finding]]
_COLUMNS = {"initial": "年初预算数", "annual": "全年预算数", "adjusted": "调整后预算数", "executed": "全年执行数"}
_RATE_TOLERANCE = Decimal("0.01")  # percentage points: real forms print rates rounded


def _n(value: Decimal) -> str:
    return format_decimal(value, None)


def _weight(value: Decimal | NotApplicable | None) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def weights_given(project: Project, region: Region) -> Iterator[Finding]:
    """Every scored indicator states its weight; a score of 无 needs a weight of 无."""
    if region.score_table != "indicators":
        return
    for index, row in enumerate(project.indicators):
        if row.weight is None:
            message = "分值为空；不适用的指标请填 无 或 不适用"
            yield Finding(("indicators", index, "weight"), "error", message)
        elif isinstance(row.score, NotApplicable) and _weight(row.weight) > 0:
            message = f"分值为 {_n(_weight(row.weight))} 的指标，得分不能写「{row.score.text}」"
            yield Finding(("indicators", index, "score"), "error", message)


def scores_within_weights(project: Project, region: Region) -> Iterator[Finding]:
    """0 ≤ 得分 ≤ 分值 on every row (注1: 得分最高不能超过该指标分值上限)."""
    for index, row in enumerate(project.indicators):
        if isinstance(row.score, Decimal) and isinstance(row.weight, Decimal) and row.score > row.weight:
            message = f"得分 {_n(row.score)} 超过分值 {_n(_weight(row.weight))}"
            yield Finding(("indicators", index, "score"), "error", message)
    for index, card in enumerate(project.scorecard):
        if card.score is not None and card.score > card.weight:
            message = f"评价得分 {_n(card.score)} 超过指标分值 {_n(card.weight)}"
            yield Finding(("scorecard", index, "score"), "error", message)
    funds = project.funds
    weight = funds.weight if funds.weight is not None else region.execution.weight
    if funds.score is not None and funds.score > weight:
        yield Finding(("funds", "score"), "error", f"得分 {_n(funds.score)} 超过分值 {_n(weight)}")


def weights_add_up(project: Project, region: Region) -> Iterator[Finding]:
    """The weights of the scored table (and budget execution) add up to the form's total."""
    if region.score_table == "scorecard":
        if not project.scorecard:
            yield Finding(("scorecard",), "error", "本地区的总分来自评分表，但没有填写评分表")
            return
        total = sum((row.weight for row in project.scorecard), Decimal(0))
        loc: tuple = ("scorecard",)
    else:
        if not project.indicators:
            yield Finding(("indicators",), "error", "没有填写任何绩效指标")
            return
        funds_weight = project.funds.weight if project.funds.weight is not None else region.execution.weight
        total = funds_weight + sum((_weight(row.weight) for row in project.indicators), Decimal(0))
        loc = ("indicators",)
    if total != region.total:
        message = f"各项分值之和为 {_n(total)}，应为 {_n(region.total)}（含预算执行率分值）"
        yield Finding(loc, "error", message)


def _execution_weight(project: Project, region: Region) -> Decimal:
    return project.funds.weight if project.funds.weight is not None else region.execution.weight


def categories_match_shares(project: Project, region: Region) -> Iterator[Finding]:
    """Each 一级 category's weights add up to its stated share (project shares override), and each
    二级 with a fixed share to that share; a budget-execution row in the table counts where it stands."""
    shares = {c.name: c.share for c in region.categories}
    for name, share in (project.shares or {}).items():
        category = region.category(name)
        shares[category.name if category else name] = share
    if region.score_table == "scorecard":
        rows = [(i, r.group, None, r.weight) for i, r in enumerate(project.scorecard)]
        list_name = "scorecard"
    else:
        rows = [(i, r.level1, r.level2, _weight(r.weight)) for i, r in enumerate(project.indicators)]
        list_name = "indicators"
    sums: dict[str, Decimal] = {}
    part_sums: dict[tuple[str, str], Decimal] = {}
    first_row: dict[str, int] = {}
    part_row: dict[tuple[str, str], int] = {}
    execution_row = region.execution.row if list_name == "indicators" else None
    if execution_row is not None:
        rows.append((-1, execution_row.level1, execution_row.level2, _execution_weight(project, region)))
    for index, level1, level2, weight in rows:
        category = region.category(level1)
        name = category.name if category else (level1 or "")
        sums[name] = sums.get(name, Decimal(0)) + weight
        if index >= 0:
            first_row.setdefault(name, index)
        part = category.part(level2) if category else None
        if part is not None:
            part_sums[(name, part.name)] = part_sums.get((name, part.name), Decimal(0)) + weight
            if index >= 0:
                part_row.setdefault((name, part.name), index)
    field = "group" if list_name == "scorecard" else "level1"
    for name, total in sums.items():
        loc = (list_name, first_row[name], field) if name in first_row else (list_name,)
        if name not in shares:
            if region.categories:
                known = "、".join(shares)
                yield Finding(loc, "warning", f"一级指标「{name}」不是本地区的类别（{known}），无法核对其分值")
            continue
        if total != shares[name]:
            message = f"一级指标「{name}」各行分值之和为 {_n(total)}，应为 {_n(shares[name])}"
            yield Finding(loc, "error", message)
    for category in region.categories:
        for part in category.parts:
            total = part_sums.get((category.name, part.name), Decimal(0))
            if total != part.share and (category.name, part.name) in part_row:
                loc = (list_name, part_row[(category.name, part.name)], "level2")
                message = f"二级指标「{part.name}」各行分值之和为 {_n(total)}，应为 {_n(part.share)}"
                yield Finding(loc, "error", message)


def parts_add_up(project: Project, region: Region) -> Iterator[Finding]:
    """The 其中 rows of each money column add up to its 年度资金总额."""
    funds, unit = project.funds, funds_unit(project.funds, region)
    rows = part_rows(funds, region)
    for column, label in _COLUMNS.items():
        total = getattr(funds.total, column)
        parts = [getattr(row, column) for row in rows.values()]
        given = [p.in_yuan(unit) for p in parts if p is not None]
        if total is None or not given:
            continue
        if sum(given, Decimal(0)) != total.in_yuan(unit):
            parts_sum, stated = _n(sum(given, Decimal(0))), _n(total.in_yuan(unit))
            message = f"「其中」各行的{label}之和 {parts_sum} 元与年度资金总额 {stated} 元不一致"
            yield Finding(("funds", "total", column), "error", message)


def executed_within_budget(project: Project, region: Region) -> Iterator[Finding]:
    """执行数 above 预算数 is allowed but unusual: a warning."""
    base_column = region.execution.base
    base = column_total(project.funds, base_column, region)
    executed = column_total(project.funds, "executed", region)
    if base is not None and executed is not None and base > 0 and executed > base:
        message = f"全年执行数 {_n(executed)} 元超过{_COLUMNS[base_column]} {_n(base)} 元"
        yield Finding(("funds", "total", "executed"), "warning", message)


def printed_rate_matches(project: Project, region: Region) -> Iterator[Finding]:
    """A printed 执行率 agrees with the recomputed one within 0.01 percentage points."""
    printed = project.funds.rate
    if printed is None:
        return
    weight = project.funds.weight if project.funds.weight is not None else region.execution.weight
    execution, _ = score_execution(project.funds, region, weight, None, ("funds", "rate"))
    if execution.rate is not None and abs(execution.rate - printed.value) > _RATE_TOLERANCE:
        message = f"填写的执行率 {printed.text} 与计算值 {format_decimal(execution.rate, 2)}% 不一致"
        yield Finding(("funds", "rate"), "warning", message)


def shortfalls_explained(project: Project, region: Region) -> Iterator[Finding]:
    """A score below its weight needs a 偏差原因分析 (reason and improvement measures)."""
    if not prints(region, ("indicators", "reason")):
        return  # the form has no reason column: it cannot be asked for here
    for index, row in enumerate(project.indicators):
        weight = _weight(row.weight)
        if isinstance(row.score, Decimal) and row.score < weight and not row.reason:
            message = f"得分 {_n(row.score)} 低于分值 {_n(weight)}，但没有填写偏差原因分析及改进措施"
            yield Finding(("indicators", index, "reason"), "warning", message)


def money_unit_known(project: Project, region: Region) -> Iterator[Finding]:
    if project.funds.unit is not None and project.funds.unit not in ("元", "万元"):
        yield Finding(("funds", "unit"), "error", f"金额单位只能是 元 或 万元，不能是「{project.funds.unit}」")


CHECKS: tuple[Check, ...] = (
    money_unit_known,
    weights_given,
    scores_within_weights,
    weights_add_up,
    categories_match_shares,
    parts_add_up,
    executed_within_budget,
    printed_rate_matches,
    shortfalls_explained,
)


def run_all(project: Project, region: Region) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(project, region)]
