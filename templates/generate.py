"""(Re)generate every region's Word template and its reviewable text dump.

    python templates/generate.py            # all regions and the summary page
    python templates/generate.py jinzhong   # some regions (or ``summary``)

writes ``templates/docx/<region>/form.docx`` (a docxtpl template) and ``form.txt`` (the same
template as plain text, one line per table row, as ``reportgen templates dump`` writes it), and
likewise ``templates/summary/`` for the unit summary page (汇总表) that opens a unit's merged
documents. A convenience for the built-in layouts only: a ``form.docx`` edited in Word is just as
good a source (and running this script overwrites such edits). Review the ``form.txt`` diff.

Tags are exactly those of ``templates/CONTEXT.md``. Beside docxtpl's ``{%tr %}`` row loops the
templates use one extension, handled by ``reportgen.render``:
``{% vmerge row.level1_first %}{{ row.level1_label }}`` makes the cell start a vertical merge
on rows where the condition holds and continue the merge above it on the others, so the
一级/二级 columns merge over any number of rows.
"""

from __future__ import annotations

import copy
import datetime
import io
import itertools
import sys
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm
from lxml import etree

from reportgen.templates import dump

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "docx"

PAGE_W, PAGE_H = 210.0, 297.0  # A4, mm
MARGIN_TB, MARGIN_LR = 25.0, 20.0
TEXT_W = PAGE_W - 2 * MARGIN_LR  # every table's columns sum to this
CELL_PAD = 1.0  # mm left/right inside cells: narrow number columns still fit "99.93"
ROW_MIN_H = 6.5  # mm, so short rows do not look cramped


def twips(mm: float) -> int:
    return round(mm * 1440 / 25.4)


# --------------------------------------------------------------------------- specification


@dataclass(frozen=True)
class Font:
    east_asia: str = "宋体"
    latin: str = "Times New Roman"
    size: float = 10.5  # pt; 五号
    bold: bool = False


BODY = Font()
SMALL = Font(size=9)  # 小五: the 8- and 9-column tables
TITLE = Font("方正小标宋简体", size=18)  # 小二
YEAR = Font(size=12)
ANNEX = Font("黑体", size=16)  # "附件3：", 三号黑体 as in 公文
HEADING = Font("黑体", size=10.5)


@dataclass(frozen=True)
class Cell:
    text: str = ""
    span: int = 1  # columns of the row's layout the cell covers
    align: str = "center"  # w:jc
    vmerge: str | None = None  # fixed vertical merge: "restart" | "continue"
    vertical: bool = False  # text runs top to bottom (北京丰台's 一级 labels)
    open_sides: tuple[str, ...] = ()  # sides drawn without a border ("top", "bottom")


@dataclass(frozen=True)
class Row:
    layout: tuple[float, ...]  # column widths, mm, summing to TEXT_W
    cells: tuple[Cell, ...]
    header: bool = False  # repeat at the top of every page
    split: bool = False  # long narrative rows may break across pages
    font: Font | None = None  # instead of the table's font


@dataclass(frozen=True)
class Table:
    rows: tuple[Row, ...]
    font: Font = SMALL
    borders: bool = True
    pad: float = CELL_PAD  # mm left/right inside cells
    min_height: float = ROW_MIN_H  # mm; 0: rows as tall as their text
    valign: str = "center"  # w:vAlign of every cell


@dataclass(frozen=True)
class Para:
    text: str
    font: Font = BODY
    align: str = "center"
    indent: float = 0.0  # left indent, in characters of the font
    before: float = 0.0  # spacing, pt
    after: float = 0.0
    exact: float = 0.0  # fixed line height, pt (0: single spacing)


Block = Para | Table
# Word and LibreOffice join tables that touch into one table, whose header rows then no longer
# repeat; a hairline paragraph keeps the indicator and 评分表 tables separate.
SEPARATOR = Para("", Font(size=1), exact=0.5)


@dataclass(frozen=True)
class Region:
    id: str
    name: str
    seed: str
    blocks: tuple[Block, ...]


# Small constructors keep the region definitions readable.


def c(text: str = "", span: int = 1) -> Cell:
    return Cell(text, span)


def lc(text: str, span: int = 1) -> Cell:
    """A left-aligned (narrative) cell."""
    return Cell(text, span, align="left")


def top(text: str, span: int = 1) -> Cell:
    """First cell of a fixed vertical merge."""
    return Cell(text, span, vmerge="restart")


UP = Cell(vmerge="continue")  # continues the merge of the cell above


def merged(cond: str, value: str, vertical: bool = False) -> Cell:
    """A cell merged vertically over its group; ``cond`` is true on the group's first row."""
    return Cell(f"{{% vmerge {cond} %}}{{{{ {value} }}}}", vertical=vertical)


# 主管部门及代码 in one cell; trim drops the space when one of the two is empty.
DEPARTMENT_AND_CODE = '{{ (project.department ~ " " ~ project.department_code) | trim }}'


def tag(name: str) -> str:
    return f"{{{{ {name} }}}}"


def row(
    layout: Sequence[float], *cells: Cell, header: bool = False, split: bool = False, font: Font | None = None
) -> Row:
    return Row(tuple(layout), cells, header, split, font)


def tag_row(layout: Sequence[float], statement: str) -> Row:
    """A docxtpl ``{%tr %}`` row: docxtpl replaces the whole row by the statement."""
    return Row(tuple(layout), (lc(f"{{%tr {statement} %}}", len(layout)),))


def loop(layout: Sequence[float], header: str, *body: Row) -> list[Row]:
    return [tag_row(layout, header), *body, tag_row(layout, "endfor")]


# --------------------------------------------------------------------------- shared blocks

DASH = "—"
MONEY_COLUMNS = {  # national form; header text -> funds column
    "年初预算数": "initial",
    "全年预算数": "annual",
    "全年执行数": "executed",
}
MONEY_ROWS = {  # row label -> funds row
    "年度资金总额": "total",
    "其中：当年财政拨款": "fiscal",
    "上年结转资金": "carryover",
    "其他资金": "other",
}


@dataclass(frozen=True)
class MoneyBlock:
    layout: tuple[float, ...]  # label, row label, one per amount column, 分值, 执行率, 得分
    label: str  # the merged label cell, e.g. "项目资金\n（{{ funds.unit }}）"
    columns: dict[str, str]  # amount header -> funds column
    rows: dict[str, str]  # row label -> funds row; the first row carries the score
    score_headers: tuple[str, str, str] = ("分值", "执行率", "得分")
    sub_marks: tuple[str, str, str] = (DASH, "", DASH)  # 分值/执行率/得分 of the 其中 rows
    label_in_header: bool = True  # the label cell starts on the header row


def money_rows(m: MoneyBlock) -> list[Row]:
    label = top(m.label) if m.label_in_header else c("")
    header = row(m.layout, label, c(""), *map(c, m.columns), *map(c, m.score_headers))
    rows = [header]
    for i, (text, key) in enumerate(m.rows.items()):
        first = i == 0 and not m.label_in_header
        amounts = [c(tag(f"funds.{key}.{col}")) for col in m.columns.values()]
        scores = (
            [c(tag("funds.weight")), c(tag("funds.rate")), c(tag("funds.score"))]
            if i == 0
            else [c(mark) for mark in m.sub_marks]
        )
        rows.append(row(m.layout, top(m.label) if first else UP, lc(text), *amounts, *scores))
    return rows


def goal_rows(layout: Sequence[float], split_at: int, *labels: str) -> list[Row]:
    """年度总体目标: a merged label, then 预期目标 over columns 1..split_at-1, 实际 after."""
    label, expected, achieved = labels
    left, right = split_at - 1, len(layout) - split_at
    return [
        row(layout, top(label), c(expected, left), c(achieved, right)),
        row(
            layout,
            UP,
            lc(tag("goals.expected"), left),
            lc(tag("goals.achieved"), right),
            split=True,
        ),
    ]


@dataclass(frozen=True)
class IndicatorTable:
    layout: tuple[float, ...]
    corner: str | None  # label of a first column merged down the rows; None: no such column
    headers: tuple[str, ...]  # one per column after the corner
    fields: tuple[str, ...]  # the item key printed in each of those columns
    vertical_level1: bool = False


def indicator_rows(t: IndicatorTable, total: Sequence[Cell] = ()) -> list[Row]:
    """Header, one row per indicator (一级/二级 merged per group), then the 总分 row.

    The corner label is merged down the indicator rows, not into the header row: LibreOffice
    misdraws a merge that starts in a repeated header row once the table breaks across pages.
    """
    cells = [Cell(f"{{% vmerge loop.first %}}{t.corner}")] if t.corner else []
    for key in t.fields:
        if key in ("level1_label", "level1"):
            cells.append(merged("row.level1_first", f"row.{key}", vertical=t.vertical_level1))
        elif key == "level2":
            cells.append(merged("row.level2_first", "row.level2"))
        elif key in ("name", "reason"):
            cells.append(lc(tag(f"row.{key}")))
        else:
            cells.append(c(tag(f"row.{key}")))
    return [
        row(t.layout, *([c("")] if t.corner else []), *map(c, t.headers), header=True),
        *loop(t.layout, "for row in indicators", row(t.layout, *cells)),
        *([row(t.layout, *total)] if total else []),
    ]


# --------------------------------------------------------------------------- regions

NATIONAL_MONEY = (16, 32, 24, 24, 24, 12, 20, 18)
NATIONAL_IND = (16, 16, 18, 28, 20, 20, 12, 12, 28)
NATIONAL_HEADERS = (
    "一级指标", "二级指标", "三级指标", "年度指标值", "实际完成值", "分值", "得分",
    "偏差原因分析及改进措施",
)  # fmt: skip
INDICATOR_FIELDS = (
    "level1_label", "level2", "name", "target", "actual", "weight", "score", "reason",
)  # fmt: skip


def national_like(year_line: str, unit_label: str) -> tuple[Block, ...]:
    """财预〔2020〕10号's form; 银川金凤 prints it with its own punctuation."""
    m = NATIONAL_MONEY
    money = MoneyBlock(m, unit_label, MONEY_COLUMNS, MONEY_ROWS)
    ind = IndicatorTable(NATIONAL_IND, "绩效指标", NATIONAL_HEADERS, INDICATOR_FIELDS)
    head = [
        row(m, c("项目名称", 2), lc(tag("project.name"), 6)),
        row(
            m,
            c("主管部门", 2),
            lc(tag("project.department"), 2),
            c("实施单位", 2),
            lc(tag("project.implementing_unit"), 2),
        ),
    ]
    goals = goal_rows(m, 4, "年度总体\n目标", "预期目标", "实际完成情况")
    total = [c("总分", 6), c(tag("total.weight")), c(tag("total.score")), c("")]
    return (
        Para("项目支出绩效自评表", TITLE, after=6),
        Para(year_line, YEAR, after=6),
        Table((*head, *money_rows(money), *goals)),
        Table(tuple(indicator_rows(ind, total))),
    )


def national() -> tuple[Block, ...]:
    return national_like("（{{ project.year }}年度）", "项目资金\n（{{ funds.unit }}）")


def yinchuan_jinfeng() -> tuple[Block, ...]:
    return national_like("({{ project.year }} 年度)", "项目资金\n({{ funds.unit }})")


SZ_HEAD = (20, 42, 20, 44, 24, 20)
SZ_HEAD2 = (20, 42, 24, 84)  # 一级预算单位: needs the wider label
SZ_IND = (16, 17, 22, 23, 21, 22, 11, 11, 27)
SZ_NOTE = (
    "作为导入模板，置灰信息无需录入且不可修改。置灰部分如强制修改导入系统，"
    "数据有出入请自行负责；作为导出模板，置灰信息系统自动带出。"
)


def shenzhen_longhua() -> tuple[Block, ...]:
    money = MoneyBlock(
        NATIONAL_MONEY,
        "项目资金\n（{{ funds.unit }}）",
        MONEY_COLUMNS,
        MONEY_ROWS,
        score_headers=("分值", "执行率 (%)", "得分"),
        sub_marks=(DASH, DASH, DASH),
        label_in_header=False,
    )
    ind = IndicatorTable(
        SZ_IND,
        "年度绩效指标",
        ("一级指标", "二级指标", "三级指标", "年度指标值", "* 实际完成值", "* 分值",
         "* 得分", "偏差原因分析及改进措施"),
        INDICATOR_FIELDS,
    )  # fmt: skip
    head = (
        row(
            SZ_HEAD,
            c("项目编号:"),
            lc(tag("project.code")),
            c("项目名称:"),
            lc(tag("project.name")),
            c("绩效自评年度:"),
            c(tag("project.year")),
        ),
        row(
            SZ_HEAD2,
            c("实施单位:"),
            lc(tag("project.implementing_unit")),
            c("一级预算单位:"),
            lc(tag("project.primary_unit")),
        ),
    )
    goals = goal_rows(NATIONAL_MONEY, 4, "年度总体\n目标", "预期目标", "* 实际完成情况")
    total = [c("总分", 6), c(tag("total.weight")), c(tag("total.score")), c(DASH)]
    return (
        Para("项目支出绩效自评表", TITLE, after=6),
        Table(head),
        Para("资金使用情况", HEADING, before=6, after=3),
        Table(tuple(money_rows(money))),
        Para("项目目标完成情况", HEADING, before=6, after=3),
        Table(tuple(goals)),
        Table(tuple(indicator_rows(ind, total))),
        Para("备注：", BODY, align="left", before=6),
        Para(SZ_NOTE, BODY, align="left"),  # not "both": LibreOffice drops a line-final "；" when justifying
    )


BJ_TOP = (16, 30, 28, 28, 24, 24, 20)
BJ_IND = (12, 11, 16, 42, 23, 22, 11, 11, 22)
BJ_NOTES = (
    "注：1.得分一档最高不能超过该指标分值上限。",
    "2.定性指标根据指标完成情况分为：达成预期指标、基本达成预期指标且效果较好效果、"
    "部分达成预期指标且具有一定效果、未达成预期指标且效果较差四档，分别按照该指标对应"
    "分值区间100%-90%(含90%)、90%-75%(含75%)、75%-60%（含60%）、60%-0%合理确定分值。",
    "3.定量指标若为正向指标，则得分计算方法应用全年实际值（B）/年度指标值（A）*该指标分值；"
    "若定量指标为反向指标，则得分计算方法应用年度指标值（A）/全年实际值（B）*该指标分值。"
    "若年初指标值设定偏低，则得分计算方法应用（全年实际值（B）—年度指标值（A））/"
    "年度指标值（A）*100%。若计算结果在200%-300%（含200%）区间，则按照该指标分值的10%扣分；"
    "计算结果在300%-500%（含300%）区间，则按照该指标分值的20%扣分；"
    "计算结果高于500%（含500%），则按照该指标分值的30%扣分。",
    "4.请在“未完成原因分析”中说明偏离目标、不能完成目标的原因及拟采取的措施。",
)


def beijing_fengtai() -> tuple[Block, ...]:
    money = MoneyBlock(
        BJ_TOP,
        "项目资金\n（{{ funds.unit }}）",
        {"年初预算数（A）": "initial", "全年执行数（B）": "executed"},
        {"年度资金总额：": "total", "其中:财政拨款": "fiscal", "其他资金": "other"},
        score_headers=("分值（10分）", "执行率（B/A)", "得分"),
    )
    head = (
        row(BJ_TOP, c("项目名称", 2), lc(tag("project.name"), 5)),
        row(
            BJ_TOP,
            c("主管部门及代码", 2),
            lc(DEPARTMENT_AND_CODE, 2),
            c("实施单位"),
            lc(tag("project.implementing_unit"), 2),
        ),
    )
    goals = goal_rows(BJ_TOP, 4, "年度目标", "年初设定目标", "年度总体目标完成情况综述")
    ind = IndicatorTable(
        BJ_IND,
        "绩效\n指标",
        ("一级指标", "二级指标", "三级指标", "年度指标值(A)", "全年实际值(B)", "分值", "得分",
         "未完成原因分析"),
        INDICATOR_FIELDS,
        vertical_level1=True,
    )  # fmt: skip
    total = [c("总分：", 7), c(tag("total.score")), c("")]
    notes = [Para(BJ_NOTES[0], BODY, align="left", before=6)]
    notes += [Para(text, BODY, align="left", indent=2) for text in BJ_NOTES[1:]]
    return (
        Para("附件3：", ANNEX, align="left", after=6),
        Para("项目支出事后绩效自评表", TITLE, after=6),
        Para("（{{ project.year }}年度）", YEAR, after=6),
        Table((*head, *money_rows(money), *goals)),
        Table(tuple(indicator_rows(ind, total))),
        *notes,
    )


JZ_TOP = (22, 26, 30, 20, 22, 50)
JZ_IND = (22, 26, 44, 28, 28, 22)
JZ_TEXT = (48, 122)
JZ_SCORE = (22, 40, 52, 28, 28)
JZ_SIGN = (34, 34, 20, 30, 22, 30)


def jinzhong() -> tuple[Block, ...]:
    t = JZ_TOP
    money = [  # 项目资金情况: (category, sub-label, tag); a None sub-label spans both columns
        ("预算资金", "市级预算资金", "funds.fiscal.initial"),
        ("", "其他", "funds.other.initial"),
        ("预算下达资金", None, "funds.total.annual"),
        ("实际支出资金", "市级预算资金", "funds.fiscal.executed"),
        ("", "上年结转资金", "funds.carryover.executed"),
        ("", "上级财政资金", "funds.superior.executed"),
        ("", "其他", "funds.other.executed"),
    ]
    money_block = []
    for i, (category, sub, value) in enumerate(money):
        label = top("项目资金\n情况\n({{ funds.unit }})") if i == 0 else UP
        kind = (top(category) if category else UP) if sub else c(category, 2)
        subs = [c(sub)] if sub else []
        money_block.append(row(t, label, kind, *subs, c(tag(value), 3)))
    narrative = [
        ("项目概况", "narrative.overview"),
        ("项目资金使用情况", "narrative.fund_usage"),
        ("项目组织实施情况", "narrative.implementation"),
    ]
    top_rows = (
        row(t, c("项目名称", 2), lc(tag("project.name"), 4)),
        row(
            t,
            c("主管部门及代码", 2),
            lc(DEPARTMENT_AND_CODE, 2),
            c("实施单位"),
            lc(tag("project.implementing_unit")),
        ),
        row(
            t,
            c("项目属性", 2),
            lc(tag("project.attribute"), 2),
            c("项目期"),
            lc(tag("project.period")),
        ),
        *money_block,
        *(row(t, c(label, 2), lc(tag(v), 4), split=True) for label, v in narrative),
    )
    ind = IndicatorTable(
        JZ_IND,
        None,  # the first column's header is 绩效目标实现情况, its cells the 一级 groups
        ("绩效目标\n实现情况", "绩效指标\n(二级)", "绩效指标 (三级)", "目标值", "实际完成指标值",
         "完成进度"),
        ("level1_label", "level2", "name", "target", "actual", "progress"),
    )  # fmt: skip
    ind_rows = indicator_rows(ind)  # no 总分 row
    after = (
        row(JZ_TEXT, c("项目绩效情况"), lc(tag("narrative.performance")), split=True),
        row(JZ_TEXT, c("其他需说明的问题"), lc(tag("narrative.other_issues")), split=True),
    )
    s = JZ_SCORE
    score = (
        # 「评分表」 heads its column from the first row under the header, which has no border
        # below it: LibreOffice 7.4 lays out a repeated header row that starts a vertical merge
        # differently in a document of several forms (bundle.combinable).
        row(s, Cell(open_sides=("bottom",)), c("二级指标"), c("三级指标"), c("指标分值"), c("评价得分"),
            header=True),
        *loop(
            s,
            "for group in scorecard",
            row(s, Cell("{% vmerge loop.first %}评分表", open_sides=("top",)), lc("{{ group.name }}:"), c(""),
                c(tag("group.weight")), c(tag("group.score"))),
            *loop(
                s,
                "for item in group.rows",
                row(
                    s,
                    UP,
                    merged("item.level2_first", "item.level2"),
                    lc(tag("item.name")),
                    c(tag("item.weight")),
                    c(tag("item.score")),
                ),
            ),
        ),
        row(s, c("综合得分:", 2), c(""), c(tag("total.weight")), c(tag("total.score"))),
        row(s, c("评价结果等次:", 2), c(""), c(tag("grade"), 2)),
        row(s, top("评价人员"), c("姓名"), c("职称/职务"), c("科室"), c("联系电话")),
        *loop(
            s,
            "for person in evaluators",
            row(s, UP, *(c(tag(f"person.{k}")) for k in ("name", "title", "office", "phone"))),
        ),
    )  # fmt: skip
    g = JZ_SIGN
    sign = (
        row(
            g,
            lc("负责人: {{ signoff.leader }}"),
            lc("经办人: {{ signoff.handler }}"),
            lc("联系电话:"),
            lc(tag("signoff.phone")),
            lc("填报日期:"),
            lc(tag("signoff.date")),
        ),
        row(g, lc("单位负责人(签章): {{ signoff.unit_leader }}", 2), c("", 2), c("年　　月　　日", 2)),
    )
    return (
        Para("晋中市财政支出项目绩效自评表", TITLE, after=6),
        Para("( {{ project.year }} 年度 )", YEAR, after=6),
        Para("填报单位 ( 公章 ) : {{ project.filing_unit }}", BODY, align="left", after=3),
        Table(top_rows, BODY),
        Table((*ind_rows, *after), BODY),
        Table(score, BODY),
        Table(sign, BODY, borders=False),
    )


REGIONS = (
    Region("national", "全国（财预〔2020〕10号）", "财预〔2020〕10号 附件", national()),
    Region("jinzhong", "晋中市", "000（晋中 2020）", jinzhong()),
    Region("shenzhen-longhua", "深圳市龙华区", "002（深圳龙华 2022）", shenzhen_longhua()),
    Region("beijing-fengtai", "北京市丰台区", "003（北京丰台 2019 附件3）", beijing_fengtai()),
    Region("yinchuan-jinfeng", "银川市金凤区", "004（银川金凤 2023）", yinchuan_jinfeng()),
)


# --------------------------------------------------------------------------- unit summary page

# The 汇总表 that opens a unit's merged documents: one row per project, the columns of 汇总表.csv.
# Same look as the page reportgen drew with python-docx before: 'Table Grid' borders and cell
# margins, 11 pt text at the top of its cell, rows only as tall as their text.
SUMMARY_LAYOUT = (50, 29, 29, 21, 14, 12, 15)
SUMMARY_COLUMNS = {  # header -> key of each item of ``rows``
    "项目名称": "name",
    "预算数（元）": "budget",
    "执行数（元）": "executed",
    "执行率": "rate",
    "总分": "total",
    "等次": "grade",
    "警告数": "warnings",
}
SUMMARY_TEXT = Font(size=11)


def summary() -> tuple[Block, ...]:
    t = SUMMARY_LAYOUT
    body = row(t, *(lc(tag(f"row.{key}")) for key in SUMMARY_COLUMNS.values()))
    rows = (
        row(t, *map(lc, SUMMARY_COLUMNS), header=True, font=Font("黑体", size=11)),
        *loop(t, "for row in rows", body),
    )
    return (
        # 13 pt: where the old page's 1.15-spaced title with 10 pt after put the table.
        Para(tag("title"), Font("黑体", size=16, bold=True), after=13),
        Table(rows, SUMMARY_TEXT, pad=1.9, min_height=0, valign="top"),
    )


SUMMARY = Region("summary", "单位项目支出绩效自评汇总表", "reportgen 原汇总表页（python-docx 绘制）", summary())


# --------------------------------------------------------------------------- docx writing


def el(name: str, **attrs: str) -> OxmlElement:
    """``el("w:jc", val="center")``: an element with w:-prefixed attributes."""
    node = OxmlElement(name)
    for key, value in attrs.items():
        node.set(qn(f"w:{key}"), value)
    return node


def run_props(font: Font) -> OxmlElement:
    rpr = el("w:rPr")
    rpr.append(
        el(
            "w:rFonts",
            ascii=font.latin,
            hAnsi=font.latin,
            eastAsia=font.east_asia,
            cs=font.latin,
            hint="eastAsia",
        )
    )
    if font.bold:
        rpr.append(el("w:b"))
        rpr.append(el("w:bCs"))
    half_points = str(round(font.size * 2))
    rpr.append(el("w:sz", val=half_points))
    rpr.append(el("w:szCs", val=half_points))
    # zh-CN makes Word and LibreOffice pick Simplified Chinese glyph shapes.
    rpr.append(el("w:lang", val="en-US", eastAsia="zh-CN", bidi="ar-SA"))
    return rpr


def fill_paragraph(p: OxmlElement, text: str, font: Font, align: str, **space: float) -> None:
    ppr = el("w:pPr")
    exact = space.get("exact", 0)
    if space.get("before") or space.get("after") or exact:  # else the document default (setup_document)
        ppr.append(
            el(
                "w:spacing",
                before=str(round(space.get("before", 0) * 20)),
                after=str(round(space.get("after", 0) * 20)),
                line=str(round(exact * 20)) if exact else "240",
                lineRule="exact" if exact else "auto",
            )
        )
    if space.get("indent"):
        ppr.append(el("w:ind", left=str(round(space["indent"] * font.size * 20))))
    ppr.append(el("w:jc", val=align))
    ppr.append(run_props(font))  # paragraph mark formatting, so empty cells keep the font
    p.append(ppr)
    if text:
        r = el("w:r")
        r.append(run_props(font))
        t = el("w:t")
        t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
        t.text = text
        r.append(t)
        p.append(r)


def add_para(doc: DocxDocument, para: Para) -> None:
    p = doc.add_paragraph()._p
    fill_paragraph(
        p, para.text, para.font, para.align,
        before=para.before, after=para.after, indent=para.indent, exact=para.exact,
    )  # fmt: skip


def grid_edges(rows: Sequence[Row]) -> list[int]:
    """Union of every row's column edges (twips): the table grid all rows snap to."""
    edges = {0}
    for r in rows:
        if abs(sum(r.layout) - TEXT_W) > 0.01:
            raise ValueError(f"row layout {r.layout} does not sum to {TEXT_W} mm")
        pos = 0.0
        for width in r.layout:
            pos += width
            edges.add(twips(pos))
    return sorted(edges)


def make_cell(cell: Cell, width: int, grid_span: int, font: Font, valign: str) -> OxmlElement:
    tc = el("w:tc")
    tcpr = el("w:tcPr")
    tcpr.append(el("w:tcW", w=str(width), type="dxa"))
    if grid_span > 1:
        tcpr.append(el("w:gridSpan", val=str(grid_span)))
    if cell.vmerge:
        tcpr.append(el("w:vMerge", val=cell.vmerge))
    if cell.open_sides:
        borders = el("w:tcBorders")
        for side in cell.open_sides:
            borders.append(el(f"w:{side}", val="nil"))
        tcpr.append(borders)
    if cell.vertical:
        # Top to bottom with upright Chinese characters, like the seed's one-per-line label.
        tcpr.append(el("w:textDirection", val="tbRlV"))
    tcpr.append(el("w:vAlign", val=valign))
    tc.append(tcpr)
    for line in cell.text.split("\n"):
        p = el("w:p")
        fill_paragraph(p, line, font, cell.align)
        tc.append(p)
    return tc


def make_row(r: Row, edges: list[int], table: Table) -> OxmlElement:
    tr = el("w:tr")
    trpr = el("w:trPr")
    if not r.split:
        trpr.append(el("w:cantSplit"))
    if table.min_height:
        trpr.append(el("w:trHeight", val=str(twips(table.min_height)), hRule="atLeast"))
    if r.header:
        trpr.append(el("w:tblHeader"))
    tr.append(trpr)
    pos, col = 0.0, 0
    for cell in r.cells:
        start = twips(pos)
        pos += sum(r.layout[col : col + cell.span])
        col += cell.span
        end = twips(pos)
        span = edges.index(end) - edges.index(start)
        tr.append(make_cell(cell, end - start, span, r.font or table.font, table.valign))
    if col != len(r.layout):
        raise ValueError(f"row covers {col} of {len(r.layout)} columns: {r.cells}")
    return tr


def table_props(total: int, table: Table) -> OxmlElement:
    tblpr = el("w:tblPr")
    tblpr.append(el("w:tblW", w=str(total), type="dxa"))
    tblpr.append(el("w:jc", val="center"))
    edges = el("w:tblBorders")
    for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
        attrs = {"val": "single", "sz": "4", "space": "0", "color": "000000"}
        edges.append(el(f"w:{side}", **(attrs if table.borders else {"val": "nil"})))
    tblpr.append(edges)
    tblpr.append(el("w:tblLayout", type="fixed"))  # widths as given, never autofit
    margins = el("w:tblCellMar")
    for side in ("left", "right"):
        margins.append(el(f"w:{side}", w=str(twips(table.pad)), type="dxa"))
    tblpr.append(margins)
    tblpr.append(el("w:tblLook", val="0000", firstRow="0", lastRow="0", firstColumn="0",
                    lastColumn="0", noHBand="1", noVBand="1"))  # fmt: skip
    return tblpr


def add_table(doc: DocxDocument, table: Table) -> None:
    edges = grid_edges(table.rows)
    tbl = doc.add_table(rows=0, cols=1)._tbl
    for child in list(tbl):
        tbl.remove(child)
    tbl.append(table_props(edges[-1], table))
    grid = el("w:tblGrid")
    for left, right in itertools.pairwise(edges):
        grid.append(el("w:gridCol", w=str(right - left)))
    tbl.append(grid)
    for r in table.rows:
        tbl.append(make_row(r, edges, table))


def setup_document(doc: DocxDocument, title: str) -> None:
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(PAGE_W), Mm(PAGE_H)
    section.top_margin = section.bottom_margin = Mm(MARGIN_TB)
    section.left_margin = section.right_margin = Mm(MARGIN_LR)
    section.header_distance = section.footer_distance = Mm(12)
    # Document defaults: explicit Chinese fonts instead of theme fonts, zh-CN instead of the
    # default template's en-US/ja-JP, single spacing without the 10 pt gap after paragraphs.
    defaults = doc.styles.element.find(qn("w:docDefaults"))
    rpr = defaults.find(qn("w:rPrDefault"))
    rpr.remove(rpr.find(qn("w:rPr")))
    rpr.append(run_props(BODY))
    ppr = defaults.find(qn("w:pPrDefault")).find(qn("w:pPr"))
    ppr.remove(ppr.find(qn("w:spacing")))
    ppr.append(el("w:spacing", after="0", line="240", lineRule="auto"))
    lang = doc.settings.element.find(qn("w:themeFontLang"))
    if lang is not None:
        lang.set(qn("w:eastAsia"), "zh-CN")
    props = doc.core_properties
    props.title, props.author, props.last_modified_by = title, "reportgen", "reportgen"
    props.comments = props.subject = props.keywords = ""
    props.revision = 1
    # Fixed dates so regenerating an unchanged template gives the same bytes.
    props.created = props.modified = datetime.datetime(2024, 1, 1)


# Parts of python-docx's default template that no form uses: Word 2010's copy of the styles,
# the template's preview picture and its bibliography data. Word, LibreOffice and docxtpl open
# the package without them; every form would otherwise carry them along.
UNUSED_PARTS = (
    "http://schemas.microsoft.com/office/2007/relationships/stylesWithEffects",
    "http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail",
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/customXml",
)
STYLE_REFS = tuple(qn(f"w:{name}") for name in ("pStyle", "rStyle", "tblStyle", "numStyleLink", "styleLink"))
STYLE_CHAIN = tuple(qn(f"w:{name}") for name in ("basedOn", "link", "next"))


def slim(doc: DocxDocument) -> None:
    """Keep only the styles the document uses and drop the parts no form needs.

    The default template's ~160 styles (350 KB) and their Word 2010 copy (440 KB) were most of
    every rendered form: LibreOffice converts slim forms faster and docxcompose merges them
    faster. Kept: styles referenced anywhere (body, headers, footers, numbering), what they are
    based on, linked to or followed by, and the default styles. The writer saves only the parts
    still reachable through relationships and lists only those in [Content_Types].xml.
    """
    package = doc.part.package
    for rels in (package.rels, doc.part.rels):
        for rid in [rid for rid, rel in rels.items() if rel.reltype in UNUSED_PARTS]:
            del rels[rid]
    styles = doc.styles.element
    by_id = {s.get(qn("w:styleId")): s for s in styles.iterchildren(qn("w:style"))}
    used = {style_id for style_id, s in by_id.items() if s.get(qn("w:default")) in ("1", "true")}
    for part in package.iter_parts():
        element = getattr(part, "element", None)  # None: parts python-docx keeps as bytes (fonts, theme)
        if element is not None and element is not styles:
            used |= {ref.get(qn("w:val")) for ref in element.iter(*STYLE_REFS)}
    todo = list(used)
    while todo:  # follow basedOn/link/next chains
        style = by_id.get(todo.pop())
        if style is None:  # referenced but not defined: nothing to follow
            continue
        for ref in style.iterchildren(*STYLE_CHAIN):
            if (target := ref.get(qn("w:val"))) not in used:
                used.add(target)
                todo.append(target)
    for style_id, style in by_id.items():
        if style_id not in used:
            styles.remove(style)
    for latent in styles.findall(qn("w:latentStyles")):  # Word knows its built-in styles' defaults
        styles.remove(latent)


def hoist_run_defaults(doc: DocxDocument) -> None:
    """Make the most used run formatting the document default and drop it where it repeats.

    Repeated on every run and paragraph mark, it was two thirds of each form's XML, which
    Jinja, the expat check, docxcompose and LibreOffice all read for every form.
    """
    found = list(doc.element.body.iter(qn("w:rPr")))
    if not found:
        return
    counts = Counter(etree.tostring(rpr) for rpr in found)
    common = counts.most_common(1)[0][0]
    default = doc.styles.element.find(qn("w:docDefaults")).find(qn("w:rPrDefault"))
    for old in default.findall(qn("w:rPr")):
        default.remove(old)
    default.append(copy.deepcopy(next(rpr for rpr in found if etree.tostring(rpr) == common)))
    for rpr in found:
        if etree.tostring(rpr) == common:
            rpr.getparent().remove(rpr)


def build(region: Region) -> DocxDocument:
    doc = Document()
    first_title = next((b.text for b in region.blocks if isinstance(b, Para) and b.font is TITLE), region.name)
    setup_document(doc, first_title)
    previous: Block | None = None
    for block in region.blocks:
        if isinstance(block, Para):
            add_para(doc, block)
        else:
            if isinstance(previous, Table):
                add_para(doc, SEPARATOR)
            add_table(doc, block)
        previous = block
    if isinstance(region.blocks[-1], Table):
        add_para(doc, Para("", Font(size=1)))  # Word needs a paragraph after a final table
    hoist_run_defaults(doc)
    slim(doc)
    return doc


def stable_zip(data: bytes) -> bytes:
    """The package with fixed zip timestamps, so unchanged templates stay byte-identical."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def folder_of(region: Region) -> Path:
    """``templates/docx/<region>/``; the summary page is no region: ``templates/summary/``."""
    return HERE / region.id if region is SUMMARY else OUT_DIR / region.id


def write(region: Region) -> Path:
    doc = build(region)
    folder = folder_of(region)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    doc.save(buf)
    (folder / "form.docx").write_bytes(stable_zip(buf.getvalue()))
    (folder / "form.txt").write_text(dump(folder / "form.docx"), encoding="utf-8")
    return folder / "form.docx"


def main(argv: Sequence[str]) -> int:
    wanted = set(argv)
    unknown = wanted - {r.id for r in (*REGIONS, SUMMARY)}
    if unknown:
        print(f"unknown region(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for region in (*REGIONS, SUMMARY):
        if not wanted or region.id in wanted:
            print(write(region).relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
