"""银川市本级部门项目支出绩效自评表 (yinchuan-city): a region folder with no Python.

The region folder is copied outside the repository and used with ``--regions``, as a district
keeps its own; the example project in data/2021 is built from that copy with LibreOffice.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from docx import Document

from .conftest import DATA, ROOT, run_cli, table_texts

REGION = ROOT / "templates" / "docx" / "yinchuan-city"
UNIT = "银川市数字化城市管理监督指挥中心"
EXAMPLE = DATA / "2021" / UNIT
PROJECT = "数字化城市管理信息采集服务"


@pytest.fixture
def regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The region folder copied to ``regions/`` of the working folder (a tmp folder)."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REGION, tmp_path / "regions" / "yinchuan-city")
    return "regions"


def _example(tmp_path: Path, text: str | None = None) -> Path:
    """The example unit copied to the working folder, its project file replaced by ``text``."""
    unit = tmp_path / "data" / "2021" / UNIT
    shutil.copytree(EXAMPLE, unit)
    if text is not None:
        (unit / f"{PROJECT}.yaml").write_text(text, encoding="utf-8")
    return unit




@pytest.mark.soffice
def test_the_example_builds_from_a_copy_of_the_region_folder(regions: str, tmp_path: Path) -> None:
    _example(tmp_path)
    result = run_cli("--regions", regions, "build", "data", "-o", "out")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "2021" / UNIT
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["regions"]["yinchuan-city"]["from"] == "regions"  # the copy, not the built-in folder

    document = Document(str(folder / f"{PROJECT}.docx"))
    assert [p.text for p in document.paragraphs[:2]] == ["银川市本级部门项目支出绩效自评表", "(2021年)"]
    head = table_texts(document.tables[0])
    assert head[:5] == [
        ["项目名称", PROJECT],
        ["主管部门", "银川市城市管理局", "实施单位", UNIT],
        ["自评得分", "98.06", "财政审核评分", ""],
        ["项目资金\n(万元)", "年度资金总额", "年初预算数", "调整预算数(A)", "全年执行数(B)", "执行率(B/A)"],
        ["项目资金\n(万元)", "年度资金总额", "186.5", "180", "173.47", "96.37%"],  # 173.47 / 180
    ]
    assert [row[:2] for row in head[5:]] == [["年度总体\n目标", "年初设定目标"], ["年度总体\n目标", "年度总体目标\n完成情况"]]

    table = table_texts(document.tables[1])
    assert table[0] == [
        "一级指标", "二级指标", "三级指标", "参考\n分值", "指标值(A)", "全年实际值(B)", "得分", "未完成原因分析及改进措施",
    ]  # fmt: skip
    by_name = {row[2]: row for row in table[1:-1]}
    # 预算执行率 is a row of the table inside 项目管理: 10 × 173.47 / 180 = 9.637… → 9.64
    assert by_name["预算执行率"] == ["项目管理(25分)", "投入管理", "预算执行率", "10", "—", "96.37%", "9.64", ""]
    assert [row[2] for row in table[1:-1] if row[0] == "项目管理(25分)"] == [
        "预算执行率", "财务管理制度有效性", "绩效监控有效性", "管理制度有效性",
    ]  # fmt: skip  (the form prints 预算执行率 first in 项目管理)
    assert by_name["完整性"] == ["项目决策(10分)", "项目目标", "完整性", "4", "—", "目标明确、内容细化、目标量化", "4", ""]
    assert by_name["城市管理问题采集数量"][:7] == [
        "项目产出(30分)", "数量指标(10分)", "城市管理问题采集数量", "6", "≥12万件", "12.6万件", "6",
    ]  # fmt: skip
    assert by_name["问题上报及时率"][3:7] == ["5", "≥98%", "96.5%", "4.92"]  # 96.5 / 98 × 5, computed
    assert by_name["信息采集单价"][3:7] == ["6", "≤14元/件", "13.8元/件", "6"]  # 成本: reverse, capped
    assert by_name["市民满意度"][:4] == ["项目效益(35分)", "服务对象满意度指标(10分)", "市民满意度", "10"]
    assert table[-1] == ["总分", "100", "", "98.06", ""]

    summary = (folder / "汇总表.csv").read_text(encoding="utf-8-sig").splitlines()
    assert summary[1] == f'{PROJECT},"1,800,000.00","1,734,700.00",96.37%,98.06,优,0'
    text = subprocess.run(["pdftotext", str(folder / f"{PROJECT}.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout.replace(" ", "")
    for value in ("银川市本级部门项目支出绩效自评表", "财政审核评分", "调整预算数(A)", "预算执行率", "96.37%", "9.64", "98.06"):
        assert value in text, value


def test_total_and_grade(regions: str, tmp_path: Path) -> None:
    _example(tmp_path)
    result = run_cli("--regions", regions, "score", "data")
    assert result.exit_code == 0, result.output
    assert f"{PROJECT}: 总分 98.06，等次 优" in result.output
    explained = run_cli("--regions", regions, "score", "--explain", "data").output
    assert "预算执行率: 分值 10，计算 9.64，填写 —，采用 9.64。得分 = 分值 × min(全年执行数 / 调整后预算数, 1)" in explained


def test_a_sub_weight_that_does_not_add_up_is_located(regions: str, tmp_path: Path) -> None:
    text = (EXAMPLE / f"{PROJECT}.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    at = lines.index('    三级指标: "信息采集监督员在岗人数"')
    assert lines[at + 3] == '    参考分值: "4"'
    lines[at + 3] = '    参考分值: "6"'  # 数量指标: 6 + 6 = 12 instead of 10
    lines.remove('自评得分: "98.06"')  # no total written: the errors alone
    unit = _example(tmp_path, "\n".join(lines) + "\n")
    first = lines.index('    三级指标: "城市管理问题采集数量"')  # the first 数量指标 row, 绩效指标[8]
    name = f"data/2021/{UNIT}/{PROJECT}.yaml"
    funds_line = lines.index("绩效指标:") + 1
    result = run_cli("--regions", regions, "validate", str(unit))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{name}:{funds_line}:1: error: 绩效指标: 各项分值之和为 102，应为 100（含预算执行率分值）",
        f"{name}:{first - 1}:5: error: 绩效指标[8].一级指标: 一级指标「项目产出」各行分值之和为 32，应为 30",
        f"{name}:{first}:5: error: 绩效指标[8].二级指标: 二级指标「数量指标」各行分值之和为 12，应为 10",
        "检查了 1 个项目文件：3 个错误，0 个警告",
    ]


def test_a_key_of_another_regions_form_is_an_error_and_nothing_is_built(regions: str, tmp_path: Path) -> None:
    text = (EXAMPLE / f"{PROJECT}.yaml").read_text(encoding="utf-8") + "项目概况: 项目于年初启动\n"
    shutil.copy(EXAMPLE / "_unit.yaml", tmp_path / "_unit.yaml")
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    line = len(text.splitlines())
    result = run_cli("--regions", regions, "validate", "p.yaml")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"p.yaml:{line}:1: error: 项目概况: 「项目概况」不在银川市本级的表格上，填写了也不会印出；"
        "印有此项的地区：山西省晋中市（jinzhong）",
        "检查了 1 个项目文件：1 个错误，0 个警告",
    ]
    built = run_cli("--regions", regions, "build", "p.yaml", "-o", "out")
    assert built.exit_code == 1
    assert not list((tmp_path / "out").rglob("*.docx")) and not list((tmp_path / "out").rglob("*.pdf"))


def test_the_region_is_listed_and_its_template_checks(regions: str) -> None:
    listing = run_cli("--regions", regions, "regions").output.splitlines()
    line = next(line for line in listing if line.startswith("yinchuan-city\t"))
    assert line.split("\t")[1:3] == ["银川市本级", "银川市本级部门项目支出绩效自评表（也可写：银川市、银川市级、银川本级、银川市本级部门）"]
    check = run_cli("--regions", regions, "templates", "check", "--region", "yinchuan-city")
    assert (check.exit_code, check.output) == (0, "检查了 1 个地区模板：0 个问题\n")
    builtin = run_cli("templates", "check", "--region", "yinchuan-city")
    assert (builtin.exit_code, builtin.output) == (0, "检查了 1 个地区模板：0 个问题\n")
    dump = run_cli("templates", "dump", "yinchuan-city")
    assert dump.output == (REGION / "form.txt").read_text(encoding="utf-8")


def test_the_forms_own_labels_are_keys_and_unprinted_rows_are_refused(regions: str, tmp_path: Path) -> None:
    reference = run_cli("--regions", regions, "fields", "--region", "yinchuan-city").output.splitlines()
    assert any(line.startswith("| `funds.total.adjusted` | 调整预算数(A) | 调整后预算数 |") for line in reference)
    assert any(line.startswith("| `indicators.actual` | 全年实际值(B) |") for line in reference)
    assert any("| 财政审核评分 | 财政审核得分、财政评分 | 分数 |" in line for line in reference)
    assert not any(line.startswith(("| `funds.total.annual`", "| `funds.fiscal`")) for line in reference)
    shutil.copy(EXAMPLE / "_unit.yaml", tmp_path / "_unit.yaml")
    text = (EXAMPLE / f"{PROJECT}.yaml").read_text(encoding="utf-8") + '财政审核评分: "96"\n'
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    result = run_cli("--regions", regions, "validate", "p.yaml")
    assert (result.exit_code, result.output) == (0, "检查了 1 个项目文件：0 个错误，0 个警告\n")
    text = text.replace('    全年执行数(B): "173.47"\n', '    全年执行数(B): "173.47"\n    全年预算数: "180.00"\n')
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    result = run_cli("--regions", regions, "validate", "p.yaml")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(
        "p.yaml:10:5: error: 项目资金.年度资金总额.全年预算数: 「全年预算数」不在银川市本级的表格上，填写了也不会印出；"
    )
