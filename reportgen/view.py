"""The template context: a scored project as the strings its region prints.

Templates never compute or format; everything they show is decided here, from the region's
rules profile (units, decimals, labels) and the scoring result. See templates/CONTEXT.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
from decimal import Decimal
from itertools import groupby
from pathlib import Path

from .errors import ReportgenError
from .regions import NumberFormat, Region, holding
from .schema import MoneyRow, NotApplicable, Project
from .score import Result, funds_unit, money_rows
from .values import MONEY_UNITS, Money, format_decimal

_COLUMNS = ("initial", "annual", "adjusted", "executed")


def _number(value: Decimal | None, fmt: NumberFormat) -> str:
    if value is None:
        return ""
    return format_decimal(value, fmt.decimals, fmt.trim_zeros) + fmt.suffix


def _points(value: Decimal | NotApplicable | None, fmt: NumberFormat) -> str:
    return value.text if isinstance(value, NotApplicable) else _number(value, fmt)


def _money(amount: Money | None, entered_unit: str, region: Region) -> str:
    if amount is None:
        return ""
    shown = amount.in_yuan(entered_unit) / MONEY_UNITS[region.money.unit]
    return _number(shown, region.money)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def funds_view(project: Project, region: Region, result: Result) -> dict:
    funds, line = project.funds, result.execution.line
    unit = funds_unit(funds, region)
    rows = {**money_rows(funds), **{r.id: funds.rows.get(r.id, MoneyRow()) for r in region.declared.money_rows}}
    view: dict = {
        name: {column: _money(getattr(row, column), unit, region) for column in _COLUMNS}
        for name, row in rows.items()
    }
    rate = funds.rate.text if funds.rate is not None else _number(result.execution.rate, region.rate)
    score = line.used if (line.entered is not None or line.computed is not None) else None
    view.update(
        unit=region.money.unit,
        weight=_number(line.weight, region.weights),
        rate=rate,
        score=_number(score, region.points),
    )
    return view


def _share(project: Project, region: Region, level1: str) -> Decimal | None:
    category = region.category(level1)
    for name, share in (project.shares or {}).items():
        if region.category(name) == category if category else name == level1:
            return share
    return category.share if category else None


def level1_label(project: Project, region: Region, level1: str) -> str:
    share = _share(project, region, level1)
    if share is None or "{share}" not in region.level1_label:
        return level1
    return region.level1_label.format(name=level1, share=format_decimal(share, None))


def _mark_spans(rows: list[dict], key: str, within: str | None = None) -> None:
    """Set ``<key>_first``/``<key>_span`` on runs of equal ``key`` (inside runs of ``within``)."""
    def run_key(row: dict) -> tuple:
        return (row[within], row[key]) if within else (row[key],)

    for _, run in groupby(rows, key=run_key):
        members = list(run)
        for offset, row in enumerate(members):
            row[f"{key}_first"] = offset == 0
            row[f"{key}_span"] = len(members) if offset == 0 else 0


def _execution_row(project: Project, region: Region, result: Result) -> dict | None:
    """The budget-execution line as a row of the indicator table, where the region prints it so."""
    place = region.execution.row
    if place is None:
        return None
    funds = funds_view(project, region, result)
    return {
        "level1": place.level1, "level1_label": level1_label(project, region, place.level1),
        "level2": place.level2, "name": place.name, "target": place.target, "actual": funds["rate"],
        "progress": "", "weight": funds["weight"], "score": funds["score"], "reason": "",
        **{declared.id: "" for declared in region.declared.indicator_columns},
    }


def _with_execution_row(rows: list[dict], row: dict | None, first: bool) -> list[dict]:
    """``rows`` with the execution row first in its 一级 group or after its last row (else at the end)."""
    if row is None:
        return rows
    group = [i for i, r in enumerate(rows) if r["level1"] == row["level1"]]
    at = (group[0] if first else group[-1] + 1) if group else len(rows)
    return [*rows[:at], row, *rows[at:]]


def indicators_view(project: Project, region: Region, result: Result) -> list[dict]:
    rows = []
    for index, indicator in enumerate(project.indicators):
        line = result.line_at(("indicators", index))
        score: Decimal | NotApplicable | None = indicator.score
        if score is None and line is not None and line.computed is not None and line.weight:
            score = line.computed
        level1 = indicator.level1 or ""
        rows.append(
            {
                "level1": level1,
                "level1_label": level1_label(project, region, level1),
                "level2": _text(indicator.level2),
                "name": indicator.name,
                "target": _text(indicator.target),
                "actual": _text(indicator.actual),
                "progress": _text(indicator.progress),
                "weight": _points(indicator.weight, region.weights),
                "score": _points(score, region.points),
                "reason": _text(indicator.reason),
                **{d.id: d.printed(indicator.declared.get(d.id)) for d in region.declared.indicator_columns},
            }
        )
    place = region.execution.row
    rows = _with_execution_row(rows, _execution_row(project, region, result), bool(place and place.first))
    _mark_spans(rows, "level1")
    _mark_spans(rows, "level2", within="level1")
    return rows


def scorecard_view(project: Project, region: Region, result: Result) -> list[dict]:
    groups = []
    lines = {line.loc[:2]: line for line in result.lines}
    indexed = list(enumerate(project.scorecard))
    for group, members in groupby(indexed, key=lambda pair: pair[1].group or ""):
        rows = []
        weight = score = Decimal(0)
        for index, row in members:
            used = lines[("scorecard", index)].used if ("scorecard", index) in lines else row.score
            weight += row.weight
            score += used or Decimal(0)
            rows.append(
                {
                    "level2": _text(row.level2),
                    "name": row.name,
                    "weight": _number(row.weight, region.weights),
                    "score": _number(used, region.points),
                }
            )
        _mark_spans(rows, "level2")
        groups.append(
            {
                "name": group,
                "weight": _number(weight, region.weights),
                "score": _number(score, region.points),
                "rows": rows,
            }
        )
    return groups


def context(project: Project, region: Region, result: Result) -> dict:
    """Everything a region template may print, as strings (see templates/CONTEXT.md)."""
    return {
        "region": {"id": region.id, "name": region.name, "title": region.title},
        "project": {
            "year": str(project.year),
            **{
                key: _text(getattr(project, key))
                for key in (
                    "code", "name", "department", "department_code", "implementing_unit",
                    "primary_unit", "filing_unit", "attribute", "period",
                )
            },
        },
        "funds": funds_view(project, region, result),
        "goals": {"expected": _text(project.expected_goal), "achieved": _text(project.goal_achieved)},
        "narrative": {
            key: _text(getattr(project, key))
            for key in ("overview", "fund_usage", "implementation", "performance", "other_issues")
        },
        "indicators": indicators_view(project, region, result),
        "scorecard": scorecard_view(project, region, result),
        "total": {
            "weight": _number(result.total_weight, region.weights),
            "score": _number(result.total, region.points),
            "indicator_weight": _number(region.indicator_weight, region.weights),
        },
        "fields": {d.id: d.printed(project.declared.get(d.id)) for d in region.declared.fields},
        "grade": result.grade,
        "evaluators": [
            {key: _text(getattr(person, key)) for key in ("name", "title", "office", "phone")}
            for person in project.evaluators
        ],
        "signoff": {
            key: _text(getattr(project.signoff, key))
            for key in ("leader", "handler", "phone", "date", "unit_leader")
        },
    }


# --- what a region's form prints -------------------------------------------------------------

_HEADER = ("code", "department", "department_code", "primary_unit", "filing_unit", "attribute", "period")
_NARRATIVE = ("overview", "fund_usage", "implementation", "performance", "other_issues")
_SIGNOFF = ("leader", "handler", "phone", "date", "unit_leader")

# The context tags that print a project field, for the fields that matter only when printed. A
# field none of whose tags a region's template uses is refused for that region (nothing typed may
# vanish between the file and the form). Fields not listed are always taken: they are scored,
# name the output (项目名称, 实施单位, 年度) or steer the rules.
PRINTED_BY: dict[tuple[str, ...], tuple[str, ...]] = {
    **{(key,): (f"project.{key}",) for key in _HEADER},
    **{(key,): (f"narrative.{key}",) for key in _NARRATIVE},
    ("expected_goal",): ("goals.expected",),
    ("goal_achieved",): ("goals.achieved",),
    **{("funds", row): (f"funds.{row}",) for row in ("fiscal", "carryover", "superior", "other")},
    **{
        ("funds", row, column): (f"funds.{row}.{column}",)
        for row in ("total", "fiscal", "carryover", "superior", "other")
        for column in _COLUMNS
    },
    ("funds", "rate"): ("funds.rate", "indicators[].actual"),
    ("indicators", "progress"): ("indicators[].progress",),
    ("indicators", "reason"): ("indicators[].reason",),
    ("scorecard",): ("scorecard",),
    ("evaluators",): ("evaluators",),
    **{("signoff", key): (f"signoff.{key}",) for key in _SIGNOFF},
}

_TAGS: dict[tuple[str, int, int], frozenset[str]] = {}


def printed_tags(region: Region) -> frozenset[str]:
    """Every context path the region's template prints (read once per template file, and kept
    in the user's cache folder by the template's checksum: loading docxtpl and parsing the
    template cost a tenth of a second per build)."""
    path, hold = str(region.template), holding()
    if hold and (hold, path) in _HELD_TAGS:
        return _HELD_TAGS[hold, path]
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _TAGS:
        _TAGS[key] = frozenset(_cached_tags(region.template))
    if hold:
        if any(block != hold for block, _ in _HELD_TAGS):
            _HELD_TAGS.clear()  # an earlier block's are of no more use
        _HELD_TAGS[hold, path] = _TAGS[key]
    return _TAGS[key]


_HELD_TAGS: dict[tuple[int, str], frozenset[str]] = {}  # (held block, template) → its tags


TAGS_CACHE_VERSION = "1"


def _cached_tags(template: Path) -> set[str]:
    import hashlib

    from .glyphs import cache_folder
    from .package import write_bytes

    data = template.read_bytes()
    folder = cache_folder()
    name = f"tags-{TAGS_CACHE_VERSION}-{hashlib.sha256(data).hexdigest()[:32]}.txt"
    cached = folder / "templates" / name if folder else None
    if cached is not None:
        try:
            return set(cached.read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError):
            pass
    from .render import template_tags  # docxtpl: loaded only once a template is read

    tags = template_tags(template)
    if cached is not None:
        with contextlib.suppress(ReportgenError):  # a cache that cannot be written: parsed again next time
            write_bytes(cached, "".join(f"{tag}\n" for tag in sorted(tags)).encode("utf-8"))
    return tags


def prints(region: Region, path: tuple[str, ...]) -> bool:
    """Whether the region's form prints the project field at ``path`` (model names, no indexes)."""
    if path[:2] == ("funds", "total") and path[2:] in ((region.execution.base,), ("executed",)):
        return True  # scored, whether printed or not
    wanted = PRINTED_BY.get(path)
    if wanted is None:
        return True
    return _prints(printed_tags(region), wanted)


@functools.lru_cache(maxsize=4096)
def _prints(tags: frozenset[str], wanted: tuple[str, ...]) -> bool:
    return any(tag == want or tag.startswith((f"{want}.", f"{want}[]")) for want in wanted for tag in tags)
