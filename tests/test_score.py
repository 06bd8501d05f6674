"""Scoring reproduces every seed form, and computes (not copies) the mechanical parts."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from reportgen.regions import find_region
from reportgen.schema import Indicator
from reportgen.score import direction_of, parse_quantity, score_quantitative
from reportgen.validate import check_paths

from .conftest import DATA, DATA_PROJECTS, run_cli

SEED_TOTALS = {
    "2020/晋中市数字化城市管理中心/数字城管运行费.yaml": ("95.98", "优", "2.98"),
    "2022/深圳龙华区平安建设中心/系统操作员.yaml": ("99.93", "优", "9.93"),
    "2022/深圳龙华区平安建设中心/网格信息采集工作.yaml": ("100", "优", "10"),
    "2019/北京丰台区城市管理监督指挥中心/通讯保障资源运维项目.yaml": ("93.42", "优", "9.97"),
    "2023/银川金凤区智慧城市运营中心/政府批准聘用人员支出.yaml": ("93", "优", None),
    "2023/银川金凤区智慧城市运营中心/智慧金凤社会治理综合平台运行费.yaml": ("91", "优", None),
    "2023/银川金凤区智慧城市运营中心/社区网格员工作终端使用费.yaml": ("88", "良", None),
    "2023/银川金凤区智慧城市运营中心/办公经费.yaml": ("90", "优", None),
    "2023/银川金凤区智慧城市运营中心/互联网专线费.yaml": ("93", "优", None),
}


@pytest.fixture(scope="module")
def seeds() -> dict[str, object]:
    results = check_paths([DATA])
    return {str(c.source.path.relative_to(DATA)): c for c in results}


@pytest.mark.parametrize("name", sorted(SEED_TOTALS))
def test_seed_total_and_grade(seeds, name: str) -> None:
    checked = seeds[name]
    total, grade, _ = SEED_TOTALS[name]
    assert checked.ok, [str(p) for p in checked.problems]
    assert format(checked.result.total.normalize(), "f") == total
    assert checked.result.grade == grade


@pytest.mark.parametrize("name", [n for n, v in SEED_TOTALS.items() if v[2]])
def test_execution_score_is_computed_not_copied(seeds, name: str) -> None:
    """The engine's own figure (line.computed) equals the one printed on the seed form."""
    line = seeds[name].result.execution.line
    assert line.computed == Decimal(SEED_TOTALS[name][2])


def test_jinzhong_execution_from_funds(seeds) -> None:
    result = seeds["2020/晋中市数字化城市管理中心/数字城管运行费.yaml"].result
    assert result.execution.rate.quantize(Decimal("0.0001")) == Decimal("99.3720")
    assert result.execution.line.weight == Decimal(3)


def test_yinchuan_rule_breaking_scores_are_kept_and_warned(seeds) -> None:
    checked = seeds["2023/银川金凤区智慧城市运营中心/智慧金凤社会治理综合平台运行费.yaml"]
    line = checked.result.execution.line
    assert (line.computed, line.entered, line.used) == (Decimal(10), Decimal(6), Decimal(6))
    warnings = [str(p) for p in checked.problems if not p.is_error]
    assert (
        "data/2023/银川金凤区智慧城市运营中心/智慧金凤社会治理综合平台运行费.yaml:15:3: warning: "
        "项目资金.得分: 填写的得分 6 与按执行率 100.00% 计算的 10 不一致，已保留填写值"
    ) in [w.replace(str(DATA.parent) + "/", "") for w in warnings]


def test_yinchuan_rate_is_rounded_to_whole_percent_before_scoring(seeds) -> None:
    """180.97212 / 207.6892 = 87.14% → 87% → 8.7 of 10 (the form prints 87.00% and 8)."""
    line = seeds["2023/银川金凤区智慧城市运营中心/政府批准聘用人员支出.yaml"].result.execution.line
    assert line.computed == Decimal("8.70")


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("≥90%", "90", "%"),
        ("至少2次/周", "2", "次"),
        ("<1821100元", "1821100", "元"),
        ("≤461.74万元", "4617400", "元"),
        ("97%以上", "97", "%"),
        ("低于3%", "3", "%"),
        ("处理2万件以上“连心通”工单", "20000", "件"),
        ("1,663,900.00", "1663900.00", ""),
        ("指标1：28人", "28", "人"),
    ],
)
def test_parse_quantity(text: str, value: str, unit: str) -> None:
    quantity = parse_quantity(text)
    assert quantity is not None
    assert (quantity.value, quantity.unit) == (Decimal(value), unit)


@pytest.mark.parametrize("text", ["2020.12", "2023年1月-12月", "合理", "指标1：1个 指标2：7个", "", None])
def test_unscorable_texts(text: str | None) -> None:
    assert parse_quantity(text) is None


@pytest.mark.parametrize(
    ("target", "level2", "direction"),
    [
        ("<1821100元", "成本指标", "反向"),
        ("低于3%", "质量指标", "反向"),
        ("≥90%", "质量指标", "正向"),
        ("912.216万元", "成本指标", "反向"),
        ("912.216万元", "数量指标", "正向"),
        ("不少于5家", "成本指标", "正向"),
    ],
)
def test_direction(target: str, level2: str, direction: str) -> None:
    indicator = Indicator(name="x", target=target, level2=level2)
    assert direction_of(indicator, find_region("national")) == direction


@pytest.mark.parametrize(
    ("target", "actual", "weight", "expected"),
    [
        ("≥90%", "81%", "10", "9.00"),  # positive, missed: 10 × 81 / 90
        ("≥90%", "95%", "10", "10.00"),  # met: capped at the weight
        ("≤100万元", "125万元", "8", "6.40"),  # reverse: 8 × 100 / 125
        ("开通100部", "已开通250部", "10", "10.00"),  # 150% over: no deduction yet
    ],
)
def test_quantitative_formula(target: str, actual: str, weight: str, expected: str) -> None:
    indicator = Indicator(name="x", target=target, actual=actual)
    score, _, _ = score_quantitative(indicator, Decimal(weight), find_region("national"))
    assert score == Decimal(expected)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [("299", "10.00"), ("300", "9.00"), ("400", "8.00"), ("600", "7.00")],
)
def test_fengtai_over_target_deduction(actual: str, expected: str) -> None:
    """丰台 注3: (B − A) / A in [200%, 300%) costs 10% of the weight, [300%, 500%) 20%, ≥500% 30%."""
    indicator = Indicator(name="x", target="100", actual=actual)
    score, _, _ = score_quantitative(indicator, Decimal(10), find_region("北京丰台"))
    assert score == Decimal(expected)


def test_score_json_has_every_project(tmp_path: Path) -> None:
    result = run_cli("score", "--json", str(DATA))
    assert result.exit_code == 0
    projects = {Path(p["file"]).resolve().relative_to(DATA.resolve()).as_posix(): p for p in json.loads(result.stdout)}
    assert len(projects) == len(DATA_PROJECTS)  # the seeds and the examples of the regions added since
    assert {name: projects[name]["total"] for name in SEED_TOTALS} == {n: v[0] for n, v in SEED_TOTALS.items()}
    assert {"file", "name", "total", "grade"} <= set(next(iter(projects.values())))


def test_score_explain_shows_rule_inputs_and_both_scores() -> None:
    result = run_cli("score", "--explain", str(DATA / "2022/深圳龙华区平安建设中心/系统操作员.yaml"))
    assert result.exit_code == 0
    assert "  执行率 99.3190%" in result.stdout
    assert (
        "  预算执行率: 分值 10，计算 9.93，填写 9.93，采用 9.93。得分 = 分值 × min(全年执行数 / 全年预算数, 1)；"
        "全年执行数 1808698.26 元，全年预算数 1821100 元"
    ) in result.stdout
    assert "  合计: 分值 100，得分 99.93，等次 优" in result.stdout
