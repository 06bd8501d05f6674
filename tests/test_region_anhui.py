"""安徽省 (anhui): the national form as Anhui prints it, a region folder with no Python.

The folder is copied outside the repository and used with ``--regions``, as a district would
keep its own; the example project of data/ is built from there with the real LibreOffice.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
from docx import Document
from pypdf import PdfReader

from .conftest import DATA, ROOT, run_cli, table_texts

ANHUI = ROOT / "templates" / "docx" / "anhui"
UNIT = DATA / "2023" / "镜湖区数字化城市管理中心"
PROJECT = "数字城管信息采集服务"
FOOTNOTE = "注：1.一级指标分值统一设置为产出指标(50分)、效益指标(30分)、满意度指标(10分)。"


def _copy_region(into: Path) -> Path:
    """The region folder, copied where a district keeps its own: outside the repository."""
    shutil.copytree(ANHUI, into / "anhui")
    return into






def _normalized(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example unit, built with the copied region folder; the unit's output folder."""
    work = tmp_path_factory.mktemp("anhui")
    regions = _copy_region(work / "regions")
    data = work / "data" / "2023" / UNIT.name
    shutil.copytree(UNIT, data)
    result = run_cli("--regions", str(regions), "build", str(work / "data"), "-o", str(work / "out"), "-j", "1")
    assert result.exit_code == 0, result.output
    return work / "out" / "2023" / UNIT.name


@pytest.mark.soffice
def test_money_block_prints_anhuis_headers_and_rows(built: Path) -> None:
    rows = table_texts(Document(str(built / f"{PROJECT}.docx")).tables[0])
    assert rows[0] == ["项目名称", PROJECT]
    assert rows[1] == ["主管部门", "芜湖市镜湖区城市管理局", "实施单位", "镜湖区数字化城市管理中心"]
    assert rows[2] == ["项目资金\n（万元）", "", "年初预算数", "全年预算数(A)", "全年执行数(B)", "分值", "执行率(B/A)", "得分"]
    # 9.83 = 10 × 124.386 / 126.5 to the cent; the amounts as written, in 万元
    assert rows[3] == ["项目资金\n（万元）", "年度资金总额：", "120", "126.5", "124.386", "10", "98.33%", "9.83"]
    assert rows[4] == ["项目资金\n（万元）", "其中：本年财政拨款", "120", "120", "117.886", "—", "", "—"]
    assert rows[5] == ["项目资金\n（万元）", "上年结转资金", "0", "6.5", "6.5", "—", "", "—"]
    assert rows[6] == ["项目资金\n（万元）", "其他资金", "", "", "", "—", "", "—"]
    assert rows[7] == ["年度总体目标完成情况", "预期目标", "实际完成情况"]
    assert rows[8][0] == "年度总体目标完成情况" and rows[8][1].startswith("完成镜湖区建成区城市管理问题")


@pytest.mark.soffice
def test_indicator_table_prints_level1_with_its_points_merged_over_each_group(built: Path) -> None:
    table = Document(str(built / f"{PROJECT}.docx")).tables[1]
    rows = table_texts(table)
    assert rows[0] == ["", "一级指标", "二级指标", "三级指标", "年度指标值", "实际完成值", "分值", "得分",
                       "偏差原因分析及改进措施"]  # fmt: skip
    assert [row[1] for row in rows[1:9]] == ["产出指标(50分)"] * 5 + ["效益指标(30分)"] * 2 + ["满意度指标(10分)"]
    assert {row[0] for row in rows[1:9]} == {"年度绩效指标完成情况"}
    assert rows[4][3:8] == ["问题发现上报及时率", "≥98%", "97.6%", "10", "9.96"]  # 97.6 / 98 × 10
    assert rows[8][3:8] == ["市民满意度", "≥90%", "85%", "10", "9.44"]  # 85 / 90 × 10
    assert rows[9] == ["总分", "100", "99.23", ""]
    level1 = [table.rows[i].cells[1]._tc for i in range(1, 9)]
    assert [len({id(tc) for tc in level1[a:b]}) for a, b in ((0, 5), (5, 7), (7, 8))] == [1, 1, 1]  # one cell each
    assert len({id(tc) for tc in level1}) == 3


@pytest.mark.soffice
def test_footnote_total_and_grade(built: Path) -> None:
    document = Document(str(built / f"{PROJECT}.docx"))
    assert [p.text for p in document.paragraphs if p.text] == ["项目支出绩效自评表", "（2023年度）", FOOTNOTE]
    summary = (built / "汇总表.csv").read_text(encoding="utf-8-sig").splitlines()
    assert summary[1] == f'{PROJECT},"1,265,000.00","1,243,860.00",98.33%,99.23,优,0'


@pytest.mark.soffice
def test_the_pdf_is_one_page_with_the_forms_wording(built: Path) -> None:
    pdf = built / f"{PROJECT}.pdf"
    assert len(PdfReader(pdf).pages) == 1
    text = _normalized(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    for words in ("项目支出绩效自评表", "全年预算数(A)", "全年执行数(B)", "执行率(B/A)", "其中：本年财政拨款",
                  "年度资金总额：", "98.33%", "9.83", "99.23", FOOTNOTE):  # fmt: skip
        assert _normalized(words) in text, words


def test_example_validates_and_scores_by_anhuis_rules() -> None:
    result = run_cli("--regions", str(ANHUI), "validate", str(UNIT))
    assert (result.exit_code, result.output) == (0, "检查了 1 个项目文件：0 个错误，0 个警告\n")
    lines = run_cli("--regions", str(ANHUI), "score", "--explain", str(UNIT / f"{PROJECT}.yaml")).output.splitlines()
    assert lines[0].endswith(f"{PROJECT}: 总分 99.23，等次 优")
    assert lines[2].startswith("  预算执行率: 分值 10，计算 9.83，填写 —，采用 9.83。")
    assert lines[-1] == "  合计: 分值 100，得分 99.23，等次 优"


def test_a_key_of_another_regions_form_is_an_error_and_nothing_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    regions = _copy_region(tmp_path / "regions")
    example = (UNIT / f"{PROJECT}.yaml").read_text(encoding="utf-8")
    body = example[example.index("项目资金:") :]
    header = f'地区: anhui\n年度: "2023"\n项目名称: "{PROJECT}"\n项目概况: "数字城管信息采集外包服务"\n'
    (tmp_path / "p.yaml").write_text(header + body, encoding="utf-8")
    line = "p.yaml:4:1: error: 项目概况: 「项目概况」不在安徽省的表格上，填写了也不会印出；印有此项的地区：山西省晋中市（jinzhong）"
    result = run_cli("--regions", str(regions), "validate", "p.yaml")
    assert (result.exit_code, result.output.splitlines()) == (1, [line, "检查了 1 个项目文件：1 个错误，0 个警告"])
    unit = tmp_path / "data" / "镜湖区"
    unit.mkdir(parents=True)
    shutil.move(tmp_path / "p.yaml", unit / "p.yaml")
    result = run_cli("--regions", str(regions), "build", "data", "-o", "out")
    assert result.exit_code == 1
    assert f"data/镜湖区/{line}" in result.output.splitlines()
    assert [p for p in (tmp_path / "out").rglob("*") if p.suffix in (".docx", ".pdf", ".zip", ".csv")] == []


def test_the_forms_own_labels_are_the_keys_and_the_common_ones_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    regions = str(_copy_region(tmp_path / "regions"))
    reference = run_cli("--regions", regions, "fields", "--region", "anhui").output.splitlines()
    assert any(line.startswith("| `funds.fiscal` | 其中：本年财政拨款 | 当年财政拨款、") for line in reference)
    assert any(line.startswith("| `funds.total.annual` | 全年预算数(A) | 全年预算数、") for line in reference)
    assert any(line.startswith("| `indicators` | 年度绩效指标完成情况 | 绩效指标、") for line in reference)
    assert not any(line.startswith("| `overview`") for line in reference)
    assert run_cli("--regions", regions, "new", "--region", "anhui", "p.yaml").exit_code == 0
    starter = (tmp_path / "p.yaml").read_text(encoding="utf-8")
    for key in ("  其中：本年财政拨款:", "    全年预算数(A): 0", "    全年执行数(B): 0", "年度绩效指标完成情况:"):
        assert key in starter.splitlines(), key
    common = (UNIT / f"{PROJECT}.yaml").read_text(encoding="utf-8")
    for form_key, common_key in (("其中：本年财政拨款", "当年财政拨款"), ("全年预算数(A)", "全年预算数"),
                                 ("全年执行数(B)", "全年执行数"), ("年度绩效指标完成情况", "绩效指标")):  # fmt: skip
        common = common.replace(form_key, common_key)
    (tmp_path / "q.yaml").write_text("地区: 安徽\n年度: 2023\n" + common, encoding="utf-8")
    result = run_cli("--regions", regions, "score", "q.yaml")
    assert result.exit_code == 0 and result.output.endswith("总分 99.23，等次 优\n"), result.output


def test_templates_check_passes(tmp_path: Path) -> None:
    regions = str(_copy_region(tmp_path / "regions"))
    for args in (("--regions", regions), ()):  # the copied folder, and the one shipped
        result = run_cli(*args, "templates", "check", "--region", "anhui")
        assert (result.exit_code, result.output) == (0, "检查了 1 个地区模板：0 个问题\n")
