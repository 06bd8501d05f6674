"""湖北省（省级）项目自评表 (hubei-provincial): 预算执行情况 20 分, 项目类别/属性/类型 checkbox rows,
年度绩效目标 80 分 and the form's three notes.

The region folder is copied outside the repository and used with ``--regions``, as a district keeps
its own; the example project in data/ is built from that copy with the real LibreOffice.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from docx import Document

from .conftest import DATA, ROOT, run_cli, table_texts

REGION = ROOT / "templates" / "docx" / "hubei-provincial"
UNIT = DATA / "2023" / "湖北省中小河流水文监测中心"
PROJECT = "中小河流水文监测系统运行维护"
CORNER = "年度\n绩效\n目标\n（80分）"






def _one_file(extra: str = "", **replace: str) -> str:
    """The example's unit file and project file as one project file, comments left out."""
    text = "".join(
        line
        for path in (UNIT / "_unit.yaml", UNIT / f"{PROJECT}.yaml")
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        if not line.startswith("#")
    )
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text + extra


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of regions outside the repository holding a copy of hubei-provincial."""
    folder = tmp_path_factory.mktemp("regions")
    shutil.copytree(REGION, folder / "hubei-provincial")
    return folder


@pytest.fixture(scope="module")
def built(regions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    result = run_cli("--regions", str(regions), "build", str(UNIT), "-o", str(out))
    assert result.exit_code == 0, result.output
    return out / "2023" / "湖北省中小河流水文监测中心"


@pytest.fixture(scope="module")
def form(built: Path) -> list:
    """The rendered form's tables: the header line, then the form itself."""
    return Document(str(built / f"{PROJECT}.docx")).tables


def test_the_copy_outside_the_repository_is_the_region_used(regions: Path) -> None:
    listing = run_cli("--regions", str(regions), "regions").output.splitlines()
    line = next(line for line in listing if line.startswith("hubei-provincial\t"))
    assert line.split("\t")[1:3] == [
        "湖北省（省级）",
        "项目自评表（也可写：湖北、湖北省、湖北省级、湖北省直、省直专项）",
    ]
    assert line.split("\t")[3] != "内置"


def test_templates_check_passes(regions: Path) -> None:
    expected = (0, "检查了 1 个地区模板：0 个问题\n")
    result = run_cli("templates", "check", "--region", "hubei-provincial")
    assert (result.exit_code, result.output) == expected
    copied = run_cli("--regions", str(regions), "templates", "check", "--region", "hubei-provincial")
    assert (copied.exit_code, copied.output) == expected


def test_the_example_validates_without_errors_or_warnings(regions: Path) -> None:
    result = run_cli("--regions", str(regions), "validate", str(UNIT))
    assert (result.exit_code, result.output) == (0, "检查了 1 个项目文件：0 个错误，0 个警告\n")


@pytest.mark.soffice
def test_the_example_builds_word_pdf_and_bundle(built: Path) -> None:
    for name in (f"{PROJECT}.docx", f"{PROJECT}.pdf", "全部项目.docx", "全部项目.pdf", "汇总表.csv", "manifest.json"):
        assert (built / name).is_file(), name
    assert (built.parent / "湖北省中小河流水文监测中心.zip").is_file()


@pytest.mark.soffice
def test_title_and_header_line(built: Path, form: list) -> None:
    document = Document(str(built / f"{PROJECT}.docx"))
    assert document.paragraphs[0].text == "2023年度项目自评表"
    assert table_texts(form[0]) == [["单位名称：湖北省中小河流水文监测中心", "填报日期：2024年3月15日"]]


@pytest.mark.soffice
def test_project_rows_and_checkboxtable_texts(form: list) -> None:
    rows = table_texts(form[1])
    assert rows[:5] == [
        ["项目名称", PROJECT],
        ["主管部门", "湖北省水利厅", "项目实施单位", "湖北省中小河流水文监测中心"],
        ["项目类别", "1、部门预算项目☐　2、省直专项☑　3、省对下转移支付项目☐"],
        ["项目属性", "1、持续性项目☑　2、新增性项目☐"],
        ["项目类型", "1、常年性项目☑　2、延续性项目☐　3、一次性项目☐"],
    ]


@pytest.mark.soffice
def test_budget_execution_scores_twenty_times_the_rate_to_the_cent(form: list) -> None:
    rows = table_texts(form[1])
    assert rows[5] == [
        "预算执行情况\n（万元）（20分）",
        "预算数（A）",
        "执行数（B）",
        "执行率（B/A）",
        "得分\n（20分*执行率）",
    ]
    assert rows[6] == ["年度财政资金总额", "356.00", "342.38", "96.17%", "19.23"]
    score = (Decimal(20) * Decimal("342.38") / Decimal("356.00")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert str(score) == rows[6][4] == "19.23"


@pytest.mark.soffice
def test_indicator_table_under_the_80_point_label(form: list) -> None:
    table = form[1]
    rows = table_texts(table)
    assert rows[7] == [CORNER, "一级指标", "二级指标", "三级指标", "年初目标值（A）", "实际完成值（B）", "分值", "得分"]
    assert rows[8:15] == [
        [CORNER, "产出指标\n（40分）", "数量指标", "运行维护水文测站数量", "≥420个", "426个", "10", "10"],
        [CORNER, "产出指标\n（40分）", "质量指标", "水文数据到报率", "≥99%", "98.6%", "10", "9.96"],  # 98.6 / 99 × 10
        [CORNER, "产出指标\n（40分）", "时效指标", "汛期水情信息报送时间", "≤20分钟", "15分钟", "10", "10"],
        [CORNER, "产出指标\n（40分）", "成本指标", "单站年均运行维护成本", "≤0.85万元", "0.80万元", "10", "10"],
        [CORNER, "效益指标\n（40分）", "社会效益指标", "为防汛抗旱决策提供水文信息支撑", "有效支撑", "有效支撑", "15", "15"],
        [CORNER, "效益指标\n（40分）", "可持续影响指标", "水文监测站网长效运行", "持续稳定运行", "持续稳定运行", "15", "15"],
        [CORNER, "效益指标\n（40分）", "服务对象满意度指标", "防汛抗旱部门满意度", "≥90%", "95%", "10", "10"],
    ]
    # One merged cell each: the 80-point label from the header row down, each 一级 over its group.
    first = table.rows[7].cells[0]._tc
    assert all(table.rows[i].cells[0]._tc is first for i in range(8, 15))
    assert table.rows[11].cells[1]._tc is table.rows[8].cells[1]._tc
    assert table.rows[12].cells[1]._tc is not table.rows[11].cells[1]._tc
    assert rows[15] == ["总分", "100", "99.19"]  # 分值 20 + 80; 得分 19.23 + 79.96


@pytest.mark.soffice
def test_text_blocks_and_signature(form: list) -> None:
    rows = table_texts(form[1])
    deviation, improvement, approval = rows[16:19]
    assert deviation[0] == "偏差大或目标\n未完成原因分析"
    assert deviation[1].startswith("一是测站设备更新采购合同于12月签订，尾款13.62万元")
    assert improvement[0] == "改进措施及结果\n应用方案"
    assert improvement[1].startswith("一是提前启动政府采购")
    assert approval[0] == "单位主要负责人\n签批意见"
    assert approval[1].endswith("签名：　　　　　　　　　　年　　月　　日")
    assert len(rows) == 19


@pytest.mark.soffice
def test_the_forms_notes_as_printed(built: Path) -> None:
    paragraphs = [p.text for p in Document(str(built / f"{PROJECT}.docx")).paragraphs if p.text]
    assert paragraphs[1:] == [
        "备注：1.预算执行情况口径：预算数为调整后财政资金总额（包括上年结余结转），执行数为资金使用单位财政资金实际支出数。",
        "2.定量指标完成数汇总原则：绝对值直接累加计算，相对值按照资金额度加权平均计算。定量指标计分原则：正向指标"
        "（即目标值为≥X，得分=权重*B/A），反向指标（即目标值为≤X，得分=权重*A/B），得分不得突破权重总额。"
        "定量指标先汇总完成数，再计算得分。",
        "3.定性指标计分原则：达成预期指标、部分达成预期指标、未达成预期指标三档，分别按照该指标对应分值区间"
        "100%-80%（≥80%）、80%-50%（[50%,80%)）、50%-0%（<50%）合理确定分值。汇总时，以资金额度为权重，"
        "对分值进行加权平均计算。",
    ]


@pytest.mark.soffice
def test_total_and_grade_in_the_summary_and_the_pdf(built: Path) -> None:
    with (built / "汇总表.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[1] == [PROJECT, "3,560,000.00", "3,423,800.00", "96.17%", "99.19", "优", "0"]
    text = subprocess.run(
        ["pdftotext", "-layout", str(built / f"{PROJECT}.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout.replace(" ", "")
    for value in (
        "2023年度项目自评表",
        "2、省直专项☑",
        "1、持续性项目☑",
        "1、常年性项目☑",
        "（20分*执行率）",
        "96.17%",
        "19.23",
        "99.19",
        "偏差大或目标",
        "备注：1.预算执行情况口径",
    ):
        assert value in text, value


def test_score_gives_the_total_and_grade(regions: Path) -> None:
    result = run_cli("--regions", str(regions), "score", str(UNIT / f"{PROJECT}.yaml"))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(f"{PROJECT}: 总分 99.19，等次 优")


@pytest.mark.parametrize(
    ("grade", "interval"),
    [
        ("达成预期指标", None),
        ("部分达成预期指标", "分值的 50%–80%（7.5–12 分）"),
        ("未达成预期指标", "分值的 0%–50%（0–7.5 分）"),
    ],
)
def test_qualitative_tiers_are_100_80_50_0(grade: str, interval: str | None, regions: Path, project_file) -> None:
    name = project_file(_one_file(**{'完成等级: "达成预期指标"': f'完成等级: "{grade}"'}))
    result = run_cli("--regions", str(regions), "validate", name)
    if interval is None:
        assert result.output == "检查了 1 个项目文件：0 个错误，0 个警告\n"
    else:
        assert result.output.splitlines()[0].endswith(f"得分 15 不在定性指标「{grade}」：{interval}的区间内")


@pytest.mark.soffice
def test_a_key_of_another_regions_form_is_a_located_error_and_nothing_is_built(regions: Path, project_file) -> None:
    text = _one_file("项目概况: 项目于年初启动\n")
    name = project_file(text)
    result = run_cli("--regions", str(regions), "validate", name)
    line = len(text.splitlines())
    assert result.output.splitlines() == [
        f"p.yaml:{line}:1: error: 项目概况: 「项目概况」不在湖北省（省级）的表格上，填写了也不会印出；"
        "印有此项的地区：山西省晋中市（jinzhong）",
        "检查了 1 个项目文件：1 个错误，0 个警告",
    ]
    assert result.exit_code == 1
    built = run_cli("--regions", str(regions), "build", name, "-o", "out")
    assert built.exit_code == 1
    assert not [p for p in Path("out").rglob("*") if p.suffix in (".docx", ".pdf", ".zip")]
