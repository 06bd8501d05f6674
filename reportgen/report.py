"""What the commands print: problem lists, score tables, explanations, JSON."""

from __future__ import annotations

from decimal import Decimal

from .errors import display_path
from .score import Line
from .validate import Checked
from .values import format_decimal


def number(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value, None)


def problem_lines(results: list[Checked]) -> list[str]:
    return [str(problem) for checked in results for problem in checked.problems]


def summary_line(results: list[Checked]) -> str:
    problems = [p for checked in results for p in checked.problems]
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    return f"检查了 {len(results)} 个项目文件：{errors} 个错误，{warnings} 个警告"


def score_line(checked: Checked) -> str:
    result, project = checked.result, checked.project
    assert result is not None and project is not None
    warnings = sum(not p.is_error for p in checked.problems)
    tail = f"（{warnings} 个警告）" if warnings else ""
    return (
        f"{display_path(checked.source.path)}: {project.name}: "
        f"总分 {number(result.total)}，等次 {result.grade}{tail}"
    )


def _short(label: str, width: int = 24) -> str:
    flat = " ".join(label.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _explain_line(line: Line) -> str:
    entered = "—" if line.entered is None else number(line.entered)
    computed = "—" if line.computed is None else number(line.computed)
    detail = f"；{line.inputs}" if line.inputs else ""
    return (
        f"  {_short(line.label)}: 分值 {number(line.weight) or '—'}，计算 {computed}，填写 {entered}，"
        f"采用 {number(line.used)}。{line.rule}{detail}"
    )


def explanation(checked: Checked) -> list[str]:
    result = checked.result
    assert result is not None
    execution = result.execution
    rate = "—" if execution.rate is None else f"{format_decimal(execution.rate, 4)}%"
    lines = [score_line(checked), f"  执行率 {rate}"]
    if execution.line not in result.lines:
        lines.append(_explain_line(execution.line))
    lines.extend(_explain_line(line) for line in result.lines)
    lines.append(f"  合计: 分值 {number(result.total_weight)}，得分 {number(result.total)}，等次 {result.grade}")
    return lines


def _line_json(line: Line) -> dict:
    return {
        "name": line.label,
        "rule": line.rule,
        "inputs": line.inputs,
        "weight": number(line.weight),
        "computed": number(line.computed),
        "entered": number(line.entered),
        "used": number(line.used),
    }


def score_json(checked: Checked) -> dict:
    result, project = checked.result, checked.project
    assert result is not None and project is not None and checked.region is not None
    return {
        "file": display_path(checked.source.path),
        "name": project.name,
        "year": project.year,
        "unit": project.implementing_unit,
        "region": checked.region.id,
        "total": number(result.total),
        "total_weight": number(result.total_weight),
        "grade": result.grade,
        "execution_rate": number(result.execution.rate),
        "execution": _line_json(result.execution.line),
        "lines": [_line_json(line) for line in result.lines],
        "warnings": [str(p) for p in checked.problems if not p.is_error],
    }
