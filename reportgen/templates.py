"""`reportgen templates …`: a region's Word template checked against its own context, and dumped as
reviewable text.

``check`` names every tag the region's context does not have, and every field the region
declares that its template never prints, with the place in the document (表 2 第 3 行 第 2 列, or
the paragraph's text). ``dump`` writes a template as the text of ``form.txt``: one line per
paragraph and per table row, so that a change made in Word is reviewed as a text diff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import jinja2
from docx import Document
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from .errors import RegionError, TemplateError
from .regions import Region, all_regions, load_region
from .render import template_tags
from .schema import Evaluator, Funds, Indicator, MoneyRow, Project, ScorecardRow
from .score import score_project
from .view import context

_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


@dataclass(frozen=True)
class Place:
    """Where a piece of template text stands: a table cell or a paragraph of the body."""

    where: str
    text: str


def _places(template: Path) -> list[Place]:
    """Every paragraph and table cell of the template's body, in document order."""
    document = Document(str(template))
    places, table_number = [], 0
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            text = Paragraph(child, document).text
            if text.strip():
                places.append(Place(f"段落「{_short(text)}」", text))
        elif child.tag == qn("w:tbl"):
            table_number += 1
            for row_number, row in enumerate(child.tr_lst, 1):
                for col_number, cell in enumerate(row.tc_lst, 1):
                    text = "".join(t.text or "" for t in cell.iter(qn("w:t")))
                    places.append(Place(f"表{table_number} 第{row_number}行 第{col_number}列", text))
    return places


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:24] + "…"


def _sample_project(region: Region) -> Project:
    """A project whose every list has an item and every declared field a value."""
    def sample(declared) -> object:
        return declared.options[0] if declared.type == "choice" else declared.parse("1")

    return Project(
        name="示例", year=2024,
        funds=Funds(rows={row.id: MoneyRow() for row in region.declared.money_rows}),
        indicators=[Indicator(name="示例", weight=Decimal(1),
                              declared={d.id: sample(d) for d in region.declared.indicator_columns})],
        scorecard=[ScorecardRow(name="示例", weight=Decimal(1))],
        evaluators=[Evaluator(name="示例")],
        declared={d.id: sample(d) for d in region.declared.fields if not d.fixed},
    )


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


def context_paths(region: Region) -> set[str]:
    """The paths a region's template may print."""
    sample = _sample_project(region)
    return _paths(context(sample, region, score_project(sample, region)))


def _place_of(tag: str, places: list[Place]) -> str:
    """The first place whose tags mention ``tag`` (a loop item's ``row.x`` for ``indicators[].x``)."""
    last = tag.rsplit(".", 1)[-1].removesuffix("[]")
    for place in places:
        for found in _TAG.findall(place.text):
            if tag.replace("[]", "") in found or re.search(rf"\.{re.escape(last)}\b", found):
                return place.where
    return "（位置未知）"


def _broken_tags(places: list[Place]) -> list[str]:
    """Tags that are not valid Jinja on their own, or never closed, with their place."""
    env = jinja2.Environment()
    problems = []
    for place in places:
        for found in re.findall(r"\{\{.*?\}\}", place.text):
            try:
                env.parse(found)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"{place.where}: 标签「{found}」有语法错误（{exc.message}）")
        opened = place.text.count("{{") + place.text.count("{%")
        closed = place.text.count("}}") + place.text.count("%}")
        if opened != closed:
            problems.append(f"{place.where}: 标签没有闭合（「{_short(place.text)}」）")
    return problems


def _declared_tags(region: Region) -> list[tuple[str, str]]:
    """(label, tag prefix) of every field the region declares."""
    declared = region.declared
    return [
        *((d.label, f"fields.{d.id}") for d in declared.fields),
        *((d.label, f"indicators[].{d.id}") for d in declared.indicator_columns),
        *((d.label, f"funds.{d.id}.") for d in declared.money_rows),
    ]


def check_region(region: Region) -> list[str]:
    """One line per problem of a region's template, as ``template: place: message``."""
    template = region.template
    if not template.is_file():
        return [f"{template}: 缺少模板文件"]
    places = _places(template)
    try:
        tags = template_tags(template)
    except TemplateError as exc:
        return [f"{template}: {line}" for line in _broken_tags(places)] or [str(exc)]
    known = context_paths(region)
    problems = [
        f"{template}: {_place_of(tag, places)}: 未知的标签「{tag}」（{region.name}的上下文中没有）"
        for tag in sorted(tags) if tag not in known
    ]
    for label, prefix in _declared_tags(region):
        if not any(tag == prefix or tag.startswith(prefix) for tag in tags):
            shown = prefix.rstrip(".")
            message = f"声明的字段「{label}」（{shown}）在模板中没有印出；请在模板中加入它，或删除声明"
            problems.append(f"{template}: {message}")
    return problems


def check_templates(regions: list[Region] | None = None) -> list[str]:
    return [line for region in (regions or list(all_regions().values())) for line in check_region(region)]


# --- the text dump -----------------------------------------------------------------------

LEGEND = """\
# Cells are separated by " | "; (×N) spans N grid columns; ↑ continues the merge above;
# [header] rows repeat on each page; [split] rows may break across pages; ⇣ vertical text."""


def _dump_cell(tc) -> str:
    pr = tc.tcPr
    text = " / ".join("".join(t.text or "" for t in p.iter(qn("w:t"))) for p in tc.iter(qn("w:p"))).strip(" /")
    vmerge = pr.find(qn("w:vMerge")) if pr is not None else None
    if vmerge is not None and vmerge.get(qn("w:val")) in (None, "continue"):
        text = "↑"
    span = pr.find(qn("w:gridSpan")) if pr is not None else None
    if span is not None:
        text += f" (×{span.get(qn('w:val'))})"
    if pr is not None and pr.find(qn("w:textDirection")) is not None:
        text = "⇣" + text
    return text


def _dump_table(table: Table) -> list[str]:
    grid = [round(int(g.get(qn("w:w"))) * 25.4 / 1440, 1) for g in table._tbl.tblGrid]
    borders = table._tbl.tblPr.find(qn("w:tblBorders"))
    plain = borders is not None and borders[0].get(qn("w:val")) == "nil"
    lines = [f"[table{' (no borders)' if plain else ''}: grid mm {grid}]"]
    for tr in table._tbl.tr_lst:
        trpr = tr.trPr
        flags = ""
        if trpr is not None and trpr.find(qn("w:tblHeader")) is not None:
            flags += "[header] "
        if trpr is None or trpr.find(qn("w:cantSplit")) is None:
            flags += "[split] "
        lines.append(flags + " | ".join(_dump_cell(tc) for tc in tr.tc_lst))
    return [*lines, "[end table]"]


def dump_title(template: Path) -> str:
    """The first line's name: the region's name and form title, else the folder's name."""
    try:
        region = load_region(template.parent)
    except RegionError:
        return template.parent.name
    return f"{region.name} {region.title}"


def dump(template: Path, title: str | None = None) -> str:
    """The template as ``form.txt``: page setup, then one line per paragraph and table row."""
    title = title or dump_title(template)
    document = Document(str(template))
    lines = [f"# {title} — form.docx as text (reportgen templates dump); edit form.docx, not this file.", LEGEND, ""]
    section = document.sections[0]
    lines.append(
        f"[page A4 {section.page_width.mm:.0f}×{section.page_height.mm:.0f} mm, margins "
        f"{section.top_margin.mm:.0f}/{section.right_margin.mm:.0f}/"
        f"{section.bottom_margin.mm:.0f}/{section.left_margin.mm:.0f} mm]"
    )
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            lines.append(Paragraph(child, document).text)
        elif child.tag == qn("w:tbl"):
            lines.extend(_dump_table(Table(child, document)))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
