"""`reportgen import`: filled Word forms back to project YAML.

Forms typed by hand are made here with python-docx, in layouts unlike reportgen's own: other
widths and merges, placeholder rows, a second form in one file, a form broken over two tables.
"""

from __future__ import annotations

import difflib
import io
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from docx import Document
from docx.shared import Mm

from reportgen import importer
from reportgen.build import build
from reportgen.validate import check_paths

from .conftest import DATA_PROJECTS, ROOT, run_cli

# --- a clerk's Word form, made the way Word makes it --------------------------------------------

Row = list[tuple[str, int]]  # (text, grid columns); "^" continues the cell above


def _table(document, widths_mm: list[float], rows: list[Row]) -> None:
    table = document.add_table(rows=len(rows), cols=len(widths_mm))
    table.style = "Table Grid"
    for column, width in zip(table.columns, widths_mm, strict=True):
        column.width = Mm(width)
    for r, row in enumerate(rows):
        position = 0
        for text, span in row:
            cell = table.cell(r, position)
            if span > 1:
                cell = cell.merge(table.cell(r, position + span - 1))
            if text == "^":
                table.cell(r - 1, position).merge(cell)
            else:
                cell.text = text
            position += span
        assert position == len(widths_mm), (r, position)


def _cells(*texts: str) -> Row:
    return [(text, 1) for text in texts]


def national_form(document, name: str = "乡村道路养护", split: bool = False) -> None:
    """The national form as a clerk typed it: own widths and merges, full-width digits, a dash
    where nothing was spent, a line break in a cell, placeholder rows and a note below."""
    document.add_paragraph("项目支出绩效自评表")
    document.add_paragraph("（2024年度）")
    _table(document, [20, 26, 22, 22, 22, 14, 20, 24], [
        [("项目名称", 2), (name, 6)],
        [("主管部门", 2), ("县交通运输局", 3), ("实施单位", 1), ("县公路段", 2)],
        _cells("项目资金（万元）", "", "年初预算数", "全年预算数", "全年执行数", "分值", "执行率", "得分"),
        _cells("^", "年度资金总额", "１００", "100", "95", "10", "95.00%", "9.5"),
        _cells("^", "其中：本年财政拨款", "100", "100", "95", "—", "", "—"),
        _cells("^", "上年结转资金", "-", "-", "-", "—", "", "—"),
        _cells("^", "其他资金", "/", "/", "/", "—", "", "—"),
        [("年度总体目标", 1), ("预期目标", 3), ("实际完成情况", 4)],
        [("^", 1), ("养护县乡道路\n120公里", 3), ("养护120公里", 4)],
    ])
    header = _cells("绩效指标", "一级指标", "二级指标", "三级指标", "年度指标值", "实际完成值", "分值", "得分",
                    "偏差原因分析及改进措施")
    widths = [14, 18, 20, 30, 20, 20, 12, 12, 24]
    first = [
        header,
        _cells("^", "产出指标", "数量指标", "指标1：养护里程", "≥120公里", "120公里", "50", "50", ""),
        _cells("^", "^", "^", "指标2：", "", "", "", "", ""),
    ]
    rest = [
        _cells("^" if not split else "", "效益指标", "社会效益指标", "道路完好率", "≥90%", "92%", "30", "30", ""),
        _cells("^", "满意度指标", "服务对象满意度指标", "群众满意度", "≥90%", "95%", "10", "10", "/"),
        _cells("^", "……", "", "", "", "", "", "", ""),
        [("总分", 6), ("100", 1), ("99.5", 1), ("", 1)],
    ]
    if split:  # broken over two tables at a page end, the header repeated
        _table(document, widths, first)
        document.add_paragraph("")
        _table(document, widths, [header, *rest])
    else:
        _table(document, widths, first + rest)
    document.add_paragraph("备注：里程数据来自县公路段养护台账")


NATIONAL_EXPECTED = {
    "region": "national",
    "year": "2024",
    "name": "乡村道路养护",
    "department": "县交通运输局",
    "implementing_unit": "县公路段",
    "funds.unit": "万元",
    "funds.total.initial": "１００",
    "funds.total.annual": "100",
    "funds.total.executed": "95",
    "funds.weight": "10",
    "funds.rate": "95.00%",
    "funds.score": "9.5",
    "funds.fiscal.initial": "100",
    "funds.fiscal.annual": "100",
    "funds.fiscal.executed": "95",
    "expected_goal": "养护县乡道路\n120公里",
    "goal_achieved": "养护120公里",
    "total": "99.5",
    "indicators": [
        {"level1": "产出指标", "level2": "数量指标", "name": "指标1：养护里程", "target": "≥120公里",
         "actual": "120公里", "weight": "50", "score": "50"},
        {"level1": "效益指标", "level2": "社会效益指标", "name": "道路完好率", "target": "≥90%", "actual": "92%",
         "weight": "30", "score": "30"},
        {"level1": "满意度指标", "level2": "服务对象满意度指标", "name": "群众满意度", "target": "≥90%",
         "actual": "95%", "weight": "10", "score": "10", "reason": "/"},
    ],
}


def longhua_form(document) -> None:
    """深圳龙华's layout typed by hand in one table: amounts in 元 with thousands separators, the
    section titles as merged rows, other widths."""
    document.add_paragraph("项目支出绩效自评表")
    _table(document, [20, 28, 22, 22, 22, 14, 20, 22], [
        _cells("项目编号：", "440309210901500004279", "项目名称：", "网格信息采集", "", "", "绩效自评年度：", "2022"),
        [("实施单位：", 1), ("深圳市龙华区平安建设中心", 2), ("一级预算单位：", 2), ("深圳市龙华区平安建设中心", 3)],
        [("资金使用情况", 8)],
        _cells("项目资金（元）", "", "年初预算数", "全年预算数", "全年执行数", "分值", "执行率（%）", "得分"),
        _cells("^", "年度资金总额", "1,663,900.00", "1,821,100.00", "1,808,698.26", "10", "99.32", "9.93"),
        _cells("^", "其中：当年财政拨款", "1,663,900.00", "1,821,100.00", "1,808,698.26", "—", "—", "—"),
        _cells("^", "上年结转资金", "0.00", "0.00", "0.00", "—", "—", "—"),
        _cells("^", "其他资金", "0.00", "0.00", "0.00", "—", "—", "—"),
        [("项目目标完成情况", 8)],
        [("年度总体目标", 1), ("预期目标", 3), ("*实际完成情况", 4)],
        [("^", 1), ("完成网格采集", 3), ("已完成", 4)],
    ])
    _table(document, [16, 18, 20, 30, 20, 20, 12, 12, 22], [
        _cells("", "一级指标", "二级指标", "三级指标", "年度指标值", "*实际完成值", "*分值", "*得分",
               "偏差原因分析及改进措施"),
        _cells("年度绩效指标", "产出指标 (50分)", "数量指标", "采集员数量", "17", "27", "50", "50", ""),
        _cells("^", "效益指标 (30分)", "社会效益指标", "事件办理", "重点解决", "重点解决", "30", "30", ""),
        _cells("^", "满意度指标 (10分)", "服务对象满意度指标", "市民满意度", "≥95%", "100%", "10", "10", ""),
        [("总分", 6), ("100", 1), ("100", 1), ("—", 1)],
    ])
    document.add_paragraph("备注：")


LONGHUA_EXPECTED = {
    "region": "shenzhen-longhua",
    "year": "2022",
    "code": "440309210901500004279",
    "name": "网格信息采集",
    "primary_unit": "深圳市龙华区平安建设中心",
    "implementing_unit": "深圳市龙华区平安建设中心",
    "funds.unit": "元",
    "funds.total.initial": "1,663,900.00",
    "funds.total.annual": "1,821,100.00",
    "funds.total.executed": "1,808,698.26",
    "funds.weight": "10",
    "funds.rate": "99.32",
    "funds.score": "9.93",
    "funds.fiscal.initial": "1,663,900.00",
    "funds.fiscal.annual": "1,821,100.00",
    "funds.fiscal.executed": "1,808,698.26",
    "funds.carryover.initial": "0.00",
    "funds.carryover.annual": "0.00",
    "funds.carryover.executed": "0.00",
    "funds.other.initial": "0.00",
    "funds.other.annual": "0.00",
    "funds.other.executed": "0.00",
    "expected_goal": "完成网格采集",
    "goal_achieved": "已完成",
    "total": "100",
    "indicators": [
        {"level1": "产出指标", "level2": "数量指标", "name": "采集员数量", "target": "17", "actual": "27",
         "weight": "50", "score": "50"},
        {"level1": "效益指标", "level2": "社会效益指标", "name": "事件办理", "target": "重点解决",
         "actual": "重点解决", "weight": "30", "score": "30"},
        {"level1": "满意度指标", "level2": "服务对象满意度指标", "name": "市民满意度", "target": "≥95%",
         "actual": "100%", "weight": "10", "score": "10"},
    ],
}


def _save(document, path: Path) -> Path:
    document.save(str(path))
    return path


def _only(path: Path) -> importer.Imported:
    forms, problems = importer.import_file(path)
    assert [str(p) for p in problems] == []
    [form] = forms
    return form


# --- forms typed by hand ---------------------------------------------------------------------


def test_a_national_form_typed_with_other_widths_merges_and_placeholders(tmp_path: Path) -> None:
    document = Document()
    national_form(document)
    form = _only(_save(document, tmp_path / "form.docx"))
    assert form.data == NATIONAL_EXPECTED
    assert [str(p) for p in form.problems] == [
        f"{tmp_path / 'form.docx'}:段落3: warning: 未对应到任何栏目：「备注：里程数据来自县公路段养护台账」（已作为注释写入项目文件）",
        f"{tmp_path / 'form.docx'}:表2 第3行: warning: 只有「指标2：」的空白行，未导入",
    ]


def test_a_form_broken_over_two_tables_reads_as_one(tmp_path: Path) -> None:
    document = Document()
    national_form(document, split=True)
    form = _only(_save(document, tmp_path / "form.docx"))
    assert form.data == NATIONAL_EXPECTED


def test_a_file_with_two_forms_gives_two_projects_and_a_unit_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    document = Document()
    national_form(document)
    document.add_page_break()
    national_form(document, name="桥梁检测")
    _save(document, tmp_path / "两张表.docx")
    result = run_cli("import", "两张表.docx", "-o", "data")
    assert result.exit_code == 0, result.output
    unit = tmp_path / "data" / "2024" / "县公路段"
    assert sorted(p.name for p in unit.iterdir()) == ["_unit.yaml", "乡村道路养护.yaml", "桥梁检测.yaml"]
    assert (unit / "_unit.yaml").read_text(encoding="utf-8") == (
        "# 县公路段：单位共用信息（reportgen import）\n"
        '地区: "national"\n年度: "2024"\n主管部门: "县交通运输局"\n实施单位: "县公路段"\n'
    )
    project = (unit / "桥梁检测.yaml").read_text(encoding="utf-8")
    assert project.startswith("# 由 两张表.docx 导入（reportgen import）；请核对后再生成\n项目名称: \"桥梁检测\"\n")
    assert "  年度资金总额:\n    年初预算数: \"１００\"\n" in project
    assert "# 段落7：备注：里程数据来自县公路段养护台账\n" in project  # kept beside the nearest field
    assert result.output.splitlines()[-2:] == ["检查了 2 个项目文件：0 个错误，0 个警告", "导入了 2 张表：写入 3 个文件"]
    [first, second] = check_paths([unit / "乡村道路养护.yaml", unit / "桥梁检测.yaml"])
    assert (first.result.total, second.result.total) == (Decimal("99.5"), Decimal("99.5"))


def test_shenzhen_longhuas_layout_typed_by_hand_is_recognised(tmp_path: Path) -> None:
    document = Document()
    longhua_form(document)
    form = _only(_save(document, tmp_path / "form.docx"))
    assert (form.region.id, form.data) == ("shenzhen-longhua", LONGHUA_EXPECTED)


def test_existing_files_are_kept_unless_forced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    document = Document()
    longhua_form(document)
    _save(document, tmp_path / "form.docx")
    assert run_cli("import", "form.docx", "-o", "data").exit_code == 0
    target = tmp_path / "data" / "2022" / "深圳市龙华区平安建设中心" / "网格信息采集.yaml"
    target.write_text("# 已手工修改\n", encoding="utf-8")
    again = run_cli("import", "form.docx", "-o", "data")
    assert again.exit_code == 1
    assert f"{Path('data/2022/深圳市龙华区平安建设中心/网格信息采集.yaml')}: error: 文件已存在，未覆盖（需要覆盖请加 --force）" in again.output
    assert target.read_text(encoding="utf-8") == "# 已手工修改\n"
    assert run_cli("import", "form.docx", "-o", "data", "--force").exit_code == 0
    assert target.read_text(encoding="utf-8").startswith("# 由 form.docx 导入")


# --- bad files ------------------------------------------------------------------------------


def test_bad_files_get_clear_errors_and_the_others_still_import(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "forms"
    folder.mkdir()
    good = Document()
    longhua_form(good)
    _save(good, folder / "a-good.docx")
    stranger = Document()
    stranger.add_paragraph("会议纪要")
    _table(stranger, [30, 30], [_cells("时间", "地点"), _cells("三月", "会议室")])
    _save(stranger, folder / "b-minutes.docx")
    (folder / "c-truncated.docx").write_bytes((folder / "a-good.docx").read_bytes()[:3000])
    _encrypted(folder / "a-good.docx", folder / "d-password.docx")
    _image_only(folder / "e-scan.docx")
    (folder / "f-text.docx").write_text("这不是 Word 文件", encoding="utf-8")
    result = run_cli("import", "forms", "-o", "data")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:5] == [
        "forms/b-minutes.docx: error: 不是可识别的自评表：最接近的是" + lines[0].split("最接近的是")[1],
        "forms/c-truncated.docx: error: Word 文件已损坏或不完整（可能没有下载或复制完整），无法打开",
        "forms/d-password.docx: error: 文件有密码保护；请在 Word 中取消密码（文件 → 信息 → 保护文档）后再导入",
        "forms/e-scan.docx: error: 文档中没有文字（可能是扫描的图片）；请导入可编辑的 Word 文件",
        "forms/f-text.docx: error: 不是 Word 文件（.docx 或 .doc）",
    ]
    assert "但没有找到：" in lines[0]
    assert (tmp_path / "data" / "2022" / "深圳市龙华区平安建设中心" / "网格信息采集.yaml").is_file()


def _encrypted(source: Path, target: Path) -> None:
    import msoffcrypto.format.ooxml

    with source.open("rb") as plain, target.open("wb") as out:
        msoffcrypto.format.ooxml.OOXMLFile(plain).encrypt("1234", out)


def _image_only(target: Path) -> None:
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(picture, format="PNG")
    document = Document()
    document.add_picture(picture)
    document.save(str(target))


# --- reportgen's own forms, round trip ---------------------------------------------------------


BLANK = re.compile(r"^(指标\s*\d+\s*[:：]|……)?$")


def _printed(path: Path) -> list[str]:
    """Every paragraph and table row as printed, less the rows of a blank form left blank
    (only 「指标2:」 in the cells of its own): those are reported, not imported."""
    lines = []
    for block in importer.read_blocks(path):
        if isinstance(block, importer.Para):
            lines.append(block.text)
            continue
        for row in block.rows:
            if all(cell.continued or BLANK.match(cell.text) for cell in row) and any(cell.text for cell in row):
                continue
            lines.append(" | ".join(cell.text for cell in row))
    return lines


@pytest.mark.soffice
def test_every_project_of_data_comes_back_from_its_printed_form(built_data: Path, tmp_path: Path) -> None:
    """import(build(project)) validates, scores the same and prints every value the same."""
    documents = sorted(p for p in built_data.rglob("*.docx") if p.stem != "全部项目")
    assert len(documents) == len(DATA_PROJECTS)
    imported = []
    for document in documents:
        forms, problems = importer.import_file(document)
        assert [str(p) for p in problems] == [] and len(forms) == 1, document
        imported += forms
    written = importer.write_projects(imported, tmp_path / "data", force=False)
    assert written.problems == []
    again = {c.project.name: c for c in check_paths([tmp_path / "data"])}
    originals = {c.project.name: c for c in check_paths(DATA_PROJECTS)}
    assert again.keys() == originals.keys()
    for name, original in originals.items():
        copy = again[name]
        assert [str(p) for p in copy.problems if p.is_error] == [], name
        assert (copy.region.id, copy.result.total, copy.result.grade) == (
            original.region.id, original.result.total, original.result.grade), name
    rebuilt = tmp_path / "out"
    assert build([tmp_path / "data"], rebuilt).ok
    for document in documents:
        first, second = _printed(document), _printed(rebuilt / document.relative_to(built_data))
        assert first == second, "\n".join(difflib.unified_diff(first, second, lineterm=""))


@pytest.mark.soffice
def test_a_doc_file_is_converted_and_imported(built_data: Path, tmp_path: Path) -> None:
    form = next(built_data.rglob("网格信息采集工作.docx"))
    subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless", "--convert-to",
                    "doc", "--outdir", str(tmp_path), str(form)], check=True, capture_output=True, timeout=120)
    from_doc, from_docx = _only(tmp_path / "网格信息采集工作.doc"), _only(form)
    assert (from_doc.region.id, from_doc.data) == ("shenzhen-longhua", from_docx.data)
    assert len(from_doc.data["indicators"]) == 14


def test_the_merged_unit_document_imports_every_form_and_names_the_summary(built_data: Path) -> None:
    merged = next(p for p in built_data.rglob("全部项目.docx") if "金凤" in str(p))
    forms, problems = importer.import_file(merged)
    assert len(forms) == 5
    assert [p.message for p in problems] == ["这张表格不在任何自评表内（如汇总表），未导入"]
    assert sorted(f.data["name"] for f in forms) == sorted(
        p.stem for p in merged.parent.glob("*.docx") if p.stem != "全部项目"
    )


def test_a_folder_without_word_files_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    result = run_cli("import", "empty")
    assert (result.exit_code, result.output) == (1, "错误：没有找到 Word 文件（.docx、.doc）：empty\n")


def test_a_template_is_not_a_filled_form(tmp_path: Path) -> None:
    template = ROOT / "templates" / "docx" / "national" / "form.docx"
    forms, problems = importer.import_file(template)
    assert (forms, [p.message for p in problems]) == ([], ["这是模板（含 {{ }} 标签），不是填好的表；请导入填好的自评表"])
