"""`reportgen templates check`: every tag a template uses exists in the template context."""

from __future__ import annotations

from decimal import Decimal

from .regions import all_regions, find_region
from .render import template_tags
from .schema import Evaluator, Indicator, Project, ScorecardRow
from .score import score_project
from .view import context


def _paths(value: object, prefix: str = "") -> set[str]:
    """Every dotted path in a context: funds.total.initial, indicators[].level2, …"""
    found = {prefix} if prefix else set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= _paths(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for item in value:
            found |= _paths(item, f"{prefix}[]")
    return found


def context_paths() -> set[str]:
    """The paths of a context whose every list has an item, so item keys are known too."""
    sample = Project(
        name="示例", year=2024,
        indicators=[Indicator(name="示例", weight=Decimal(1))],
        scorecard=[ScorecardRow(name="示例", weight=Decimal(1))],
        evaluators=[Evaluator(name="示例")],
    )
    region = find_region(None)
    assert region is not None
    return _paths(context(sample, region, score_project(sample, region)))


def check_templates() -> list[str]:
    """One line per tag that names nothing in the context, as ``template: tag``."""
    known = context_paths()
    problems = []
    for region in all_regions().values():
        if not region.template.is_file():
            problems.append(f"{region.template}: 缺少模板文件")
            continue
        for tag in sorted(template_tags(region.template)):
            if tag not in known:
                problems.append(f"{region.template}: 未知的标签「{tag}」")
    return problems
