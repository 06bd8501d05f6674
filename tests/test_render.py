"""The region templates and the render stage: values land in the right cells, 一级/二级 merge
per group, data stays literal, mistakes in a template name the template and the tag."""

from __future__ import annotations

import copy
import json
import posixpath
import shutil
import zipfile
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn
from docx.oxml.table import CT_Tc
from docx.table import Table
from lxml import etree
from pypdf import PdfReader

from reportgen.convert import convert_to_pdf
from reportgen.errors import TemplateError
from reportgen.render import clean_context, render_docx, template_tags

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGIONS = ("national", "jinzhong", "shenzhen-longhua", "beijing-fengtai", "yinchuan-jinfeng")
SUMMARY_TEMPLATE = ROOT / "templates" / "summary" / "form.docx"

# Which table holds the indicators, and which of its cells (w:tc, in order) hold 一级 and 二级.
INDICATOR_TABLE = {  # region: (table, header rows, 一级 cell, 二级 cell)
    "national": (1, 1, 1, 2),
    "jinzhong": (1, 1, 0, 1),
    "shenzhen-longhua": (3, 1, 1, 2),
    "beijing-fengtai": (1, 1, 1, 2),
    "yinchuan-jinfeng": (1, 1, 1, 2),
}

# (table, row, cell) → text, read from the rendered fixtures (cells are w:tc elements).
KEY_CELLS = {
    "national": [
        ((0, 0, 1), "智慧金凤社会治理综合平台运行费"),
        ((0, 3, 1), "年度资金总额"),
        ((0, 3, 2), "51.00"),  # 年初预算数
        ((0, 3, 6), "100.00%"),  # 执行率
        ((0, 4, 5), "—"),  # 其中：当年财政拨款 / 分值
        ((1, 10, 0), "总分"),
        ((1, 10, 1), "100"),
        ((1, 10, 2), "95"),
    ],
    "jinzhong": [
        ((0, 1, 1), "360"),
        ((0, 1, 3), "晋中市数字化城市管理中心"),
        ((0, 3, 2), "市级预算资金"),
        ((0, 3, 3), "500.00"),  # 预算资金 / 市级预算资金
        ((0, 5, 2), "500.00"),  # 预算下达资金
        ((0, 6, 3), "496.86"),  # 实际支出资金 / 市级预算资金
        ((1, 1, 5), "已完成"),
        ((2, 1, 1), "投入:"),
        ((2, 1, 3), "20"),
        ((2, 1, 4), "17.98"),
        ((2, 26, 0), "综合得分:"),
        ((2, 26, 2), "100"),
        ((2, 26, 3), "95.98"),
        ((2, 27, 2), "优"),
        ((2, 29, 1), "刘卫智"),
        ((3, 0, 0), "负责人: 赵越"),
    ],
    "shenzhen-longhua": [
        ((0, 0, 1), "440309210901500004279"),
        ((0, 0, 5), "2022"),
        ((1, 1, 0), "项目资金\n（元）"),
        ((1, 1, 2), "1663900.00"),
        ((1, 1, 4), "1808698.26"),
        ((1, 1, 6), "99.32"),
        ((1, 1, 7), "9.93"),
        ((1, 2, 6), "—"),
        ((3, 1, 1), "产出指标 (50分)"),
        ((3, 16, 0), "总分"),
        ((3, 16, 1), "100"),
        ((3, 16, 2), "99.93"),
        ((3, 16, 3), "—"),
    ],
    "beijing-fengtai": [
        ((0, 0, 1), "丰台区城指中心通讯保障资源运维项目"),
        ((0, 3, 1), "年度资金总额："),
        ((0, 3, 2), "9122160"),
        ((0, 3, 3), "9090720"),
        ((0, 3, 5), "99.66%"),
        ((1, 1, 1), "产出指标(50分)"),
        ((1, 18, 0), "总分："),
        ((1, 18, 1), "93.42"),
    ],
    "yinchuan-jinfeng": [
        ((0, 1, 1), "金凤区智慧城市运营中心"),
        ((0, 3, 2), "207.6892万元"),
        ((0, 3, 3), "180.97212万元"),
        ((0, 3, 6), "87.00%"),
        ((0, 3, 7), "8"),
        ((1, 1, 8), "疫情结束后，解聘2名疫情防控人员"),
        ((1, 10, 1), "100"),
        ((1, 10, 2), "93"),
    ],
}

BEIJING_NOTES = (
    "注：1.得分一档最高不能超过该指标分值上限。",
    "2.定性指标根据指标完成情况分为：达成预期指标、基本达成预期指标且效果较好效果、部分达成预期指标且具有一定效果、"
    "未达成预期指标且效果较差四档，分别按照该指标对应分值区间100%-90%(含90%)、90%-75%(含75%)、75%-60%（含60%）、"
    "60%-0%合理确定分值。",
    "3.定量指标若为正向指标，则得分计算方法应用全年实际值（B）/年度指标值（A）*该指标分值；若定量指标为反向指标，"
    "则得分计算方法应用年度指标值（A）/全年实际值（B）*该指标分值。若年初指标值设定偏低，则得分计算方法应用"
    "（全年实际值（B）—年度指标值（A））/年度指标值（A）*100%。若计算结果在200%-300%（含200%）区间，"
    "则按照该指标分值的10%扣分；计算结果在300%-500%（含300%）区间，则按照该指标分值的20%扣分；"
    "计算结果高于500%（含500%），则按照该指标分值的30%扣分。",
    "4.请在“未完成原因分析”中说明偏离目标、不能完成目标的原因及拟采取的措施。",
)

HOSTILE = "A&B <x> {{ 7*7 }} {% if %} {_{ 𠀀 𪚥"


def template(region: str) -> Path:
    return ROOT / "templates" / "docx" / region / "form.docx"


def fixture(region: str) -> dict:
    return json.loads((FIXTURES / f"context_{region}.json").read_text(encoding="utf-8"))


def render(region: str, context: dict, folder: Path) -> docx.document.Document:
    out = folder / f"{region}.docx"
    render_docx(template(region), context, out)
    return docx.Document(str(out))


def cell_text(tc: CT_Tc) -> str:
    """A cell's text: paragraphs joined by newlines, <w:br/> as a newline."""
    lines = []
    for p in tc.iter(qn("w:p")):
        parts = []
        for node in p.iter(qn("w:t"), qn("w:br")):
            parts.append("\n" if node.tag == qn("w:br") else node.text or "")
        lines.append("".join(parts))
    return "\n".join(lines)


def cells(table: Table, row: int) -> list[CT_Tc]:
    return list(table._tbl.tr_lst[row].tc_lst)


def vmerge(tc: CT_Tc) -> str | None:
    merge = tc.tcPr.find(qn("w:vMerge")) if tc.tcPr is not None else None
    if merge is None:
        return None
    return merge.get(qn("w:val")) or "continue"


def borders(tc: CT_Tc) -> dict[str, str]:
    """The cell's own borders: side → w:val."""
    found = tc.tcPr.find(qn("w:tcBorders")) if tc.tcPr is not None else None
    return {} if found is None else {side.tag.rsplit("}", 1)[1]: side.get(qn("w:val")) for side in found}


def merge_groups(table: Table, first_row: int, count: int, index: int) -> list[tuple[int, str]]:
    """Runs of a vertically merged column: (rows covered, text of the first cell)."""
    groups: list[tuple[int, str]] = []
    for row in range(first_row, first_row + count):
        tc = cells(table, row)[index]
        state = vmerge(tc)
        assert state in ("restart", "continue"), f"row {row} cell {index} is not merged"
        if state == "restart":
            groups.append((1, cell_text(tc)))
        else:
            assert cell_text(tc).strip() == "", "a continued cell must be empty"
            size, text = groups[-1]
            groups[-1] = (size + 1, text)
    return groups


def expected_groups(items: list[dict], level: str) -> list[tuple[int, str]]:
    label = "level1_label" if level == "level1" else "level2"
    groups: list[tuple[int, str]] = []
    for item in items:
        if item[f"{level}_first"]:
            groups.append((1, item[label]))
        else:
            groups[-1] = (groups[-1][0] + 1, groups[-1][1])
    return groups


def make_indicators(shape: list[list[int]]) -> list[dict]:
    """Indicators for 一级 groups of 二级 groups of the given sizes: [[2, 1], [1]] → 4 rows."""
    items = []
    for g1, level2_sizes in enumerate(shape, 1):
        span1 = sum(level2_sizes)
        for g2, size in enumerate(level2_sizes, 1):
            for k in range(size):
                items.append({
                    "level1": f"一级{g1}", "level1_label": f"一级{g1}", "level2": f"二级{g1}.{g2}",
                    "name": f"指标{g1}.{g2}.{k}", "target": "1", "actual": "1", "progress": "完成",
                    "weight": "1", "score": "1", "reason": "",
                    "level1_first": g2 == 1 and k == 0, "level1_span": span1,
                    "level2_first": k == 0, "level2_span": size,
                })  # fmt: skip
    return items


# --------------------------------------------------------------------------- fixtures render


@pytest.mark.parametrize("region", REGIONS)
def test_fixture_values_land_in_their_cells(region: str, tmp_path: Path) -> None:
    document = render(region, fixture(region), tmp_path)
    for (table, row, index), expected in KEY_CELLS[region]:
        assert cell_text(cells(document.tables[table], row)[index]) == expected, (table, row, index)


@pytest.mark.parametrize("region", REGIONS)
def test_level1_and_level2_merge_over_their_groups(region: str, tmp_path: Path) -> None:
    context = fixture(region)
    document = render(region, context, tmp_path)
    table_index, header, level1, level2 = INDICATOR_TABLE[region]
    table = document.tables[table_index]
    items = context["indicators"]
    assert merge_groups(table, header, len(items), level1) == expected_groups(items, "level1")
    assert merge_groups(table, header, len(items), level2) == expected_groups(items, "level2")


def test_jinzhong_scorecard_merges_level2_inside_each_group(tmp_path: Path) -> None:
    context = fixture("jinzhong")
    table = render("jinzhong", context, tmp_path).tables[2]
    row = 1
    for group in context["scorecard"]:
        assert cell_text(cells(table, row)[1]) == f"{group['name']}:"
        rows = group["rows"]
        assert merge_groups(table, row + 1, len(rows), 1) == expected_groups(rows, "level2")
        row += 1 + len(rows)
    # 评分表 is merged down the whole scorecard under the header, whose first cell is empty and
    # open below (LibreOffice would lay out a repeated header that starts a merge differently
    # among other forms), as is the top of the merge.
    assert cell_text(cells(table, 0)[0]) == "" and vmerge(cells(table, 0)[0]) is None
    assert merge_groups(table, 1, row - 1, 0) == [(row - 1, "评分表")]
    assert borders(cells(table, 0)[0]) == {"bottom": "nil"} and borders(cells(table, 1)[0]) == {"top": "nil"}


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param([[1]], id="one-row"),
        pytest.param([[5, 7, 3], [10, 2], [1, 1, 1, 1], [6]], id="many-rows"),
        pytest.param([[2, 1], [1], [1, 3]], id="single-row-level1-group"),
    ],
)
@pytest.mark.parametrize("region", ["national", "jinzhong", "beijing-fengtai"])
def test_merges_follow_the_data(region: str, shape: list[list[int]], tmp_path: Path) -> None:
    context = fixture(region)
    context["indicators"] = make_indicators(shape)
    table_index, header, level1, level2 = INDICATOR_TABLE[region]
    table = render(region, context, tmp_path).tables[table_index]
    items = context["indicators"]
    assert merge_groups(table, header, len(items), level1) == expected_groups(items, "level1")
    assert merge_groups(table, header, len(items), level2) == expected_groups(items, "level2")
    if region != "jinzhong":  # the corner label spans every indicator row
        assert merge_groups(table, header, len(items), 0) == [
            (len(items), "绩效\n指标" if "beijing" in region else "绩效指标")
        ]
        assert cell_text(cells(table, header + len(items))[0]).startswith("总分")


def test_beijing_prints_its_four_notes_verbatim(tmp_path: Path) -> None:
    document = render("beijing-fengtai", fixture("beijing-fengtai"), tmp_path)
    paragraphs = [p.text for p in document.paragraphs]
    for note in BEIJING_NOTES:
        assert note in paragraphs
    assert "附件3：" in paragraphs and "项目支出事后绩效自评表" in paragraphs


def test_every_template_tag_is_in_its_fixture() -> None:
    for region in REGIONS:
        tags = template_tags(template(region))
        context = fixture(region)
        for tag in tags:
            value: object = context
            for part in tag.replace("[]", "").split("."):
                if isinstance(value, list):
                    value = value[0]
                assert isinstance(value, dict) and part in value, f"{region}: {tag}"
                value = value[part]


def test_template_tags_reports_nested_and_loop_paths() -> None:
    tags = template_tags(template("jinzhong"))
    assert {"funds.total.annual", "project.name", "grade", "indicators[].level2",
            "indicators[].level1_first", "scorecard[].name", "scorecard[].rows[].level2_first",
            "evaluators[].phone", "signoff.unit_leader"} <= tags  # fmt: skip
    assert not any(t.startswith(("row.", "item.", "group.", "person.", "loop")) for t in tags)
    assert "indicators" not in tags and "scorecard[].rows" not in tags


def test_summary_form_txt_is_the_dump_of_its_form_docx() -> None:
    """form.docx is the source (edited in Word or written by templates/generate.py); form.txt its dump."""
    from reportgen.templates import dump

    assert dump(SUMMARY_TEMPLATE) == (SUMMARY_TEMPLATE.parent / "form.txt").read_text(encoding="utf-8")


PACKAGE_NS = {
    "ct": "http://schemas.openxmlformats.org/package/2006/content-types",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}


@pytest.mark.parametrize("path", [*map(template, REGIONS), SUMMARY_TEMPLATE], ids=[*REGIONS, "summary"])
def test_templates_carry_only_what_they_use(path: Path) -> None:
    """No unused styles or default-template leftovers, and a consistent package."""
    with zipfile.ZipFile(path) as package:
        names = set(package.namelist())
        assert not {n for n in names if n.startswith("customXml/") or "thumbnail" in n or "WithEffects" in n}
        styles = etree.fromstring(package.read("word/styles.xml"))
        assert styles.find(qn("w:latentStyles")) is None
        assert len(styles.findall(qn("w:style"))) <= 12  # the defaults and numbering's list styles
        for rels_name in [n for n in names if n.endswith(".rels")]:
            base = posixpath.dirname(posixpath.dirname(rels_name))
            for rel in etree.fromstring(package.read(rels_name)).iterfind("rel:Relationship", PACKAGE_NS):
                assert posixpath.normpath(posixpath.join(base, rel.get("Target"))) in names, rel.get("Target")
        types = etree.fromstring(package.read("[Content_Types].xml"))
        for override in types.iterfind("ct:Override", PACKAGE_NS):
            assert override.get("PartName").lstrip("/") in names


# --------------------------------------------------------------------------- unit summary page

SUMMARY_KEYS = ("name", "budget", "executed", "rate", "total", "grade", "warnings")


def test_summary_template_prints_one_row_per_project(tmp_path: Path) -> None:
    rows = [
        ("办公经费", "30,000.00", "30,000.00", "100.00%", "90", "优", "3"),
        (HOSTILE, "2,076,892.00", "1,809,721.20", "87.14%", "93", "优", "0"),
        ("社区网格员工作终端使用费", "139,650.00", "139,650.00", "100.00%", "88", "良", "4"),
    ]
    title = "某单位 2023 年度项目支出绩效自评汇总表 A&B"
    context = {"title": title, "rows": [dict(zip(SUMMARY_KEYS, r, strict=True)) for r in rows]}
    out = tmp_path / "summary.docx"
    render_docx(SUMMARY_TEMPLATE, context, out)
    document = docx.Document(str(out))
    assert document.paragraphs[0].text == title
    [table] = document.tables
    texts = [[cell_text(tc) for tc in cells(table, r)] for r in range(len(table._tbl.tr_lst))]
    assert texts == [["项目名称", "预算数（元）", "执行数（元）", "执行率", "总分", "等次", "警告数"], *map(list, rows)]
    header = table._tbl.tr_lst[0].trPr
    assert header is not None and header.find(qn("w:tblHeader")) is not None  # repeats on each page
    grid_cm = [round(int(col.get(qn("w:w"))) * 2.54 / 1440, 2) for col in table._tbl.tblGrid]
    assert grid_cm == [5.0, 2.9, 2.9, 2.1, 1.4, 1.2, 1.5]


def test_summary_template_tags_are_its_context() -> None:
    assert template_tags(SUMMARY_TEMPLATE) == {"title", *(f"rows[].{key}" for key in SUMMARY_KEYS)}


# --------------------------------------------------------------------------- data stays data


def test_hostile_text_comes_out_literally(tmp_path: Path) -> None:
    context = fixture("national")
    context["project"]["name"] = HOSTILE
    context["indicators"][0]["name"] = HOSTILE
    document = render("national", context, tmp_path)
    assert cell_text(cells(document.tables[0], 0)[1]) == HOSTILE
    assert cell_text(cells(document.tables[1], 1)[3]) == HOSTILE
    assert "49" not in cell_text(cells(document.tables[0], 0)[1])


def test_control_characters_are_removed(tmp_path: Path) -> None:
    context = fixture("national")
    context["project"]["name"] = "甲\x00乙\x07丙\x0b丁\x1f戊\ufffe己"
    context["goals"]["expected"] = "第一行\r\n第二行\x0c"
    document = render("national", context, tmp_path)
    assert cell_text(cells(document.tables[0], 0)[1]) == "甲乙丙丁戊己"
    assert cell_text(cells(document.tables[0], 8)[1]) == "第一行\n第二行"  # a line break


def test_clean_context_walks_nested_values_and_copies() -> None:
    context = {"a": ["x\x01", {"b": "y\x02"}], "n": 3, "t": True}
    assert clean_context(context) == {"a": ["x", {"b": "y"}], "n": 3, "t": True}
    assert context["a"][0] == "x\x01"


# --------------------------------------------------------------------------- template mistakes


def _misspelt_template(folder: Path) -> Path:
    path = folder / "form.docx"
    document = docx.Document()
    document.add_paragraph("项目名称：{{ project.nmae }}")
    document.save(str(path))
    return path


def test_misspelt_tag_names_template_and_tag(tmp_path: Path) -> None:
    path = _misspelt_template(tmp_path)
    out = tmp_path / "out.docx"
    out.write_bytes(b"previous")
    with pytest.raises(TemplateError) as caught:
        render_docx(path, fixture("national"), out)
    assert str(path) in str(caught.value)
    assert "project.nmae" in str(caught.value)
    assert out.read_bytes() == b"previous"  # nothing half-written replaced it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["form.docx", "out.docx"]


def test_missing_context_value_names_the_tag(tmp_path: Path) -> None:
    context = fixture("shenzhen-longhua")
    del context["funds"]["total"]["initial"]
    del context["indicators"][3]["reason"]
    with pytest.raises(TemplateError) as caught:
        render_docx(template("shenzhen-longhua"), context, tmp_path / "x.docx")
    message = str(caught.value)
    assert "shenzhen-longhua/form.docx" in message
    assert "funds.total.initial" in message and "indicators[].reason" in message
    assert not (tmp_path / "x.docx").exists()


def test_template_syntax_error_names_the_template(tmp_path: Path) -> None:
    path = tmp_path / "form.docx"
    document = docx.Document()
    document.add_paragraph("{% if project.name %}没有结束")
    document.save(str(path))
    with pytest.raises(TemplateError, match=r"form\.docx"):
        render_docx(path, fixture("national"), tmp_path / "x.docx")


def test_tags_cutting_across_a_table_are_reported_not_written(tmp_path: Path) -> None:
    # {% if %} in a paragraph, {% endif %} in a table cell: when false, the output closes a
    # table it never opened. Word and LibreOffice would refuse the file.
    path = tmp_path / "form.docx"
    document = docx.Document()
    document.add_paragraph("前{% if project.name == '没有这个项目' %}")
    document.add_table(rows=1, cols=1).cell(0, 0).text = "{% endif %}后"
    document.save(str(path))
    out = tmp_path / "x.docx"
    with pytest.raises(TemplateError, match=r"不是有效的 XML.*{% %} 标签的位置") as caught:
        render_docx(path, fixture("national"), out)
    assert str(caught.value).startswith(f"{path}: ")
    assert not out.exists()


def test_cell_loops_get_as_many_grid_columns_as_cells(tmp_path: Path) -> None:
    # docxtpl's {%tc %} repeats cells: its grid repair still runs for such templates.
    path = tmp_path / "form.docx"
    document = docx.Document()
    row = document.add_table(rows=1, cols=3).rows[0].cells
    row[0].text, row[1].text, row[2].text = "{%tc for item in indicators %}", "{{ item.weight }}", "{%tc endfor %}"
    document.save(str(path))
    context = fixture("national")
    table = render_docx_table(path, context, tmp_path / "x.docx")
    weights = [cell_text(tc) for tc in table._tbl.tr_lst[0].tc_lst]
    assert weights == [item["weight"] for item in context["indicators"]]
    assert len(table._tbl.tblGrid.gridCol_lst) == len(context["indicators"])


def render_docx_table(path: Path, context: dict, out: Path) -> Table:
    render_docx(path, context, out)
    return docx.Document(str(out)).tables[0]


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path) -> None:
    path = tmp_path / "form.docx"
    document = docx.Document()
    document.add_paragraph("{{ project.name.__class__.__mro__ }}")
    document.save(str(path))
    with pytest.raises(TemplateError):
        render_docx(path, fixture("national"), tmp_path / "x.docx")


# --------------------------------------------------------------------------- PDF


def _pdf_text(path: Path) -> str:
    return "".join("".join(page.extract_text().split()) for page in PdfReader(path).pages)


def _unembedded_fonts(path: Path) -> list[str]:
    missing = []
    for page in PdfReader(path).pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for font in fonts.values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            if descendants:
                font = descendants[0].get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is None:  # Type 3 fonts carry their glyphs inline
                continue
            descriptor = descriptor.get_object()
            if not any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                missing.append(str(font.get("/BaseFont")))
    return missing


PDF_EXPECT = {
    "national": [
        "项目支出绩效自评表",
        "（2023年度）",
        "智慧金凤社会治理综合平台运行费",
        "偏差原因分析及改进措施",
    ],
    "jinzhong": ["晋中市财政支出项目绩效自评表", "496.86", "95.98", "评价结果等次", "单位负责人(签章)"],
    "shenzhen-longhua": [
        "项目支出绩效自评表",
        "1808698.26",
        "99.93",
        "产出指标(50分)",
        "置灰信息系统自动带出",
    ],
    "beijing-fengtai": ["附件3", "项目支出事后绩效自评表", "9122160", "93.42", *BEIJING_NOTES],
    "yinchuan-jinfeng": ["项目支出绩效自评表", "(2023年度)", "207.6892万元", "聘用人员对发放时间的满意度"],
}


@pytest.mark.soffice
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_all_regions_convert_to_pdf_in_one_call(tmp_path: Path) -> None:
    docs = []
    for region in REGIONS:
        out = tmp_path / "docx" / f"{region}.docx"
        render_docx(template(region), copy.deepcopy(fixture(region)), out)
        docs.append(out)
    pdfs = convert_to_pdf(docs, tmp_path / "pdf")
    assert [p.name for p in pdfs] == [f"{r}.pdf" for r in REGIONS]
    for region, pdf in zip(REGIONS, pdfs, strict=True):
        text = _pdf_text(pdf)
        for expected in PDF_EXPECT[region]:
            assert "".join(expected.split()) in text, f"{region}: {expected[:20]}"
        assert _unembedded_fonts(pdf) == [], region
