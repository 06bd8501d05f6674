"""`reportgen import`: filled Word forms back to project YAML.

A region's own ``form.docx`` is the map. Every tag of the template is found in the filled form
by the labels around it there — the static text of its row (年度资金总额, 其中：当年财政拨款) and
the header of its column (年初预算数) — not by its position, so forms typed by clerks from the
blank official form are read as well as reportgen's own: other widths, other merges, extra empty
rows. Loops (the indicator table, 评价人员, 评分表) are read row by row under their header row,
until the row the template prints after them (总分). The region itself is recognised by how many
of its template's labels the document holds. What the form prints but no tag reads is reported
and kept as a comment in the YAML: nothing typed is dropped silently.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
from docx import Document
from docx.oxml.ns import qn
from jinja2 import nodes

from .bundle import safe_filename
from .errors import UsageError, display_path
from .reference import FieldSpec, region_fields
from .regions import Region, all_regions
from .schema import UNIT_FIELDS
from .values import is_not_applicable, normalize_text

BOXES_ON = "☑■√☒✓✔"
_PLACEHOLDER = re.compile(r"^(?:[-/—－–_…。.·\s]*|指标\s*\d+\s*[:：]?|……+)$")
_TITLE = re.compile(r"自评表")
_LABEL_MAX = 16  # longer static texts are notes and instructions, often left out of typed forms


# --- a Word document as cells and paragraphs ----------------------------------------------


@dataclass
class Cell:
    """One table cell as Word shows it; a vertically merged cell repeats the text above."""

    text: str
    table: int  # 1-based, in the document
    row: int  # 1-based
    col: int  # 1-based, distinct cells of the row
    start: int  # grid columns [start, end)
    end: int
    continued: bool = False
    own: str = ""  # the cell's own text (a continued cell's is empty in the file)

    @property
    def place(self) -> str:
        return f"表{self.table} 第{self.row}行 第{self.col}列"


@dataclass
class Para:
    text: str
    number: int  # 1-based, in the document

    @property
    def place(self) -> str:
        return f"段落{self.number}"


@dataclass
class Table:
    number: int
    rows: list[list[Cell]]

    def cells(self) -> Iterator[Cell]:
        for row in self.rows:
            yield from row


Block = Para | Table


def _cell_text(tc) -> str:
    paragraphs = []
    for p in tc.iter(qn("w:p")):
        parts = []
        for node in p.iter(qn("w:t"), qn("w:br"), qn("w:tab"), qn("w:cr")):
            parts.append(node.text or "" if node.tag == qn("w:t") else ("\t" if node.tag == qn("w:tab") else "\n"))
        paragraphs.append("".join(parts))
    return "\n".join(paragraphs).strip()


def read_blocks(path: Path) -> list[Block]:
    """The body of a DOCX in order: paragraphs and tables (nested tables are read as text)."""
    document = Document(str(path))
    blocks: list[Block] = []
    tables = paragraphs = 0
    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            paragraphs += 1
            text = "".join(
                node.text or "" if node.tag == qn("w:t") else "\n"
                for node in child.iter(qn("w:t"), qn("w:br"))
            ).strip()
            blocks.append(Para(text, paragraphs))
        elif child.tag == qn("w:tbl"):
            tables += 1
            blocks.append(_read_table(child, tables))
    return blocks


def _read_table(tbl, number: int) -> Table:
    rows: list[list[Cell]] = []
    above: dict[int, Cell] = {}
    for row_number, tr in enumerate(tbl.findall(qn("w:tr")), 1):
        trpr = tr.find(qn("w:trPr"))
        before = trpr.find(qn("w:gridBefore")) if trpr is not None else None
        position = int(before.get(qn("w:val"), "0")) if before is not None else 0
        row: list[Cell] = []
        for col, tc in enumerate(tr.findall(qn("w:tc")), 1):
            pr = tc.find(qn("w:tcPr"))
            span_el = pr.find(qn("w:gridSpan")) if pr is not None else None
            span = int(span_el.get(qn("w:val"), "1")) if span_el is not None else 1
            vmerge = pr.find(qn("w:vMerge")) if pr is not None else None
            continued = vmerge is not None and vmerge.get(qn("w:val")) in (None, "continue")
            own = text = _cell_text(tc)
            if continued and position in above:
                text = above[position].text
            cell = Cell(text, number, row_number, col, position, position + span, continued, own)
            for grid in range(position, position + span):
                above[grid] = cell
            row.append(cell)
            position += span
        rows.append(row)
    return Table(number, rows)


def norm(text: str) -> str:
    """Labels compared without spaces, colons, bracket width or line breaks."""
    text = normalize_text(text).replace("（", "(").replace("）", ")").replace("：", ":")
    return re.sub(r"[\s:*]+", "", text).removeprefix("其中").lower()  # *: marks a required cell


# --- what a template says -------------------------------------------------------------------

_VMERGE = re.compile(r"\{%\s*vmerge\s.*?%\}")
_TAG = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_LOOP_START = re.compile(r"\{%\s*tr\s+for\s+(\w+)\s+in\s+([\w.]+)\s*%\}")
_LOOP_END = re.compile(r"\{%\s*tr\s+endfor\s*%\}")


def _paths(expression: str, scope: dict[str, str]) -> list[str]:
    """The context paths one ``{{ … }}`` reads, loop variables through their list."""
    found: list[str] = []

    def walk(node: nodes.Node) -> None:
        path = _path(node)
        if path is not None:
            base, _, rest = path.partition(".")
            full = f"{scope[base]}.{rest}" if base in scope and rest else path
            found.append(full)
            return
        for child in node.iter_child_nodes():
            walk(child)

    walk(jinja2.Environment().parse(expression))
    return found


def _path(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _path(node.node)
        return f"{base}.{node.attr}" if base else None
    return None


@dataclass
class Slot:
    """A template cell or paragraph that prints values: where to find it in a filled form."""

    paths: list[str]
    pattern: re.Pattern[str] | None  # static text around the tags, when there is any
    row_labels: list[str] = field(default_factory=list)  # static cells to its left
    col_label: str | None = None  # the static header above it


@dataclass
class LoopRow:
    """One row of a loop body: per header label, the paths and the cell's pattern."""

    columns: list[tuple[str, Slot | None]]  # header label → slot (None: static, must match)
    statics: list[tuple[str, str]]  # header label → static text of the body cell


@dataclass
class Loop:
    items: str  # indicators, evaluators, scorecard
    header: list[str]  # the header row's labels, left to right
    rows: list[LoopRow]  # one per body row (nested loops: outer rows first)
    inner: str | None  # the nested list's name (scorecard[].rows)
    end: str | None  # the first static label after the loop


@dataclass
class TemplateMap:
    region: Region
    slots: list[Slot]
    loops: list[Loop]
    labels: set[str]  # every static text of the template, normalized
    exact: set[str]  # the same, as printed


def _static(text: str) -> str:
    return _LOOP_END.sub("", _LOOP_START.sub("", _VMERGE.sub("", text))).strip()


def _slot(text: str, scope: dict[str, str]) -> Slot | None:
    text = _VMERGE.sub("", text)
    tags = _TAG.findall(text)
    if not tags:
        return None
    paths = [p for tag in tags for p in _paths(tag, scope)]
    rest = _TAG.sub("", text).strip()
    pattern = None
    if rest:
        parts = _TAG.split(text)
        regex = "(.*?)".join(re.escape(part.strip()) for part in parts)
        pattern = re.compile("^" + re.sub(r"(\\\s)+|\s+", r"\\s*", regex) + "$", re.DOTALL)
    return Slot(paths, pattern)


@cache
def _template_map_cached(template: str, mtime: int, region_id: str) -> TemplateMap:
    region = all_regions()[region_id]
    blocks = read_blocks(Path(template))
    slots: list[Slot] = []
    loops: list[Loop] = []
    labels: set[str] = set()
    exact: set[str] = set()
    for block in blocks:
        if isinstance(block, Para):
            static = "" if _TAG.search(block.text) else _static(block.text)
            if static:
                labels.add(norm(static))
                exact.add(static)
            slot = _slot(block.text, {})
            if slot is not None:
                slots.append(slot)
            continue
        _map_table(block, slots, loops, labels, exact)
    labels.discard("")
    return TemplateMap(region, slots, loops, labels, exact)


def template_map(region: Region) -> TemplateMap:
    stat = region.template.stat()
    return _template_map_cached(str(region.template), stat.st_mtime_ns, region.id)


def _map_table(table: Table, slots: list[Slot], loops: list[Loop], labels: set[str], exact: set[str]) -> None:
    rows = table.rows
    index = 0
    while index < len(rows):
        row = rows[index]
        start = _LOOP_START.search(_own(row))
        if start:
            index = _map_loop(rows, index, loops, labels, exact)
            continue
        for cell in row:
            static = _static(_TAG.sub("", _VMERGE.sub("", cell.text)))
            if static and not _TAG.search(cell.text):
                labels.add(norm(static))
                exact.add(static)
            slot = _slot(cell.text, {})
            if slot is None:
                continue
            if slot.pattern is None:
                slot.row_labels = [_static(c.text) for c in row if c.col < cell.col and _label_cell(c)]
                slot.col_label = _header_above(rows, index, cell)
            slots.append(slot)
        index += 1


def _own(row: list[Cell]) -> str:
    """A row's own text: where loop tags stand (a merged cell beside them repeats other text)."""
    return " ".join(cell.own for cell in row)


def _label_cell(cell: Cell) -> bool:
    return bool(_static(cell.text)) and not _TAG.search(cell.text)


def _header_above(rows: list[list[Cell]], index: int, cell: Cell) -> str | None:
    """The static cell above ``cell``'s first grid column, with only value cells between."""
    for above in reversed(rows[:index]):
        over = next((c for c in above if c.start <= cell.start < c.end), None)
        if over is None:
            continue
        if _TAG.search(over.text) or not _static(over.text):
            continue
        return _static(over.text) if over.start == cell.start and over.end >= cell.end else None
    return None


def _map_loop(rows: list[list[Cell]], index: int, loops: list[Loop], labels: set[str], exact: set[str]) -> int:
    """Read a ``{%tr for %}`` loop (maybe with one nested loop); returns the row after it."""
    start = _LOOP_START.search(_own(rows[index]))
    assert start is not None
    scope = {start.group(1): start.group(2) + "[]"}
    items, inner = start.group(2), None
    header_row = rows[index - 1] if index else []
    header = [_static(c.text) for c in header_row]
    body: list[LoopRow] = []
    depth, index = 1, index + 1
    while index < len(rows) and depth:
        first = _own(rows[index])
        nested = _LOOP_START.search(first)
        if nested:
            base, _, rest = nested.group(2).partition(".")
            inner = f"{scope.get(base, base)}.{rest}[]"
            scope[nested.group(1)] = inner
            depth += 1
        elif _LOOP_END.search(first):
            depth -= 1
        else:
            columns, statics = [], []
            for cell in rows[index]:
                label = next((h.text for h in header_row if h.start <= cell.start < h.end), "")
                label = _static(label)
                slot = _slot(cell.text, scope)
                if slot is None:
                    statics.append((label, _static(cell.text)))
                    if _static(cell.text):
                        labels.add(norm(_static(cell.text)))
                        exact.add(_static(cell.text))
                else:
                    columns.append((label, slot))
            body.append(LoopRow(columns, statics))
        index += 1
    end = None
    if index < len(rows):
        end = next((_static(c.text) for c in rows[index] if _label_cell(c)), None)
        if end:
            labels.add(norm(end))
            exact.add(end)
    loops.append(Loop(items, header, body, inner.removesuffix("[]") if inner else None, end))
    return index


# --- recognising the region -------------------------------------------------------------------


@dataclass
class Form:
    """One filled form inside a document: its blocks."""

    blocks: list[Block]

    def texts(self) -> list[str]:
        found = []
        for block in self.blocks:
            if isinstance(block, Para):
                found.append(block.text)
            else:
                found.extend(cell.text for cell in block.cells())
        return [t for t in found if t]


def split_forms(blocks: list[Block]) -> tuple[list[Form], list[Block]]:
    """Forms start at a title (…自评表); what stands before the first title belongs to none."""
    forms: list[Form] = []
    before: list[Block] = []
    for block in blocks:
        if isinstance(block, Para) and _TITLE.search(block.text) and len(block.text) <= 40:
            if forms and not any(isinstance(b, Table) for b in forms[-1].blocks):
                forms[-1].blocks.append(block)  # a second title line of the same form
                continue
            forms.append(Form([block]))
        elif forms:
            forms[-1].blocks.append(block)
        else:
            before.append(block)
    if not forms and before:
        return [Form(before)], []
    tail_paragraphs = [b for b in before if isinstance(b, Para) and b.text]
    if forms and tail_paragraphs and not any(isinstance(b, Table) for b in before):
        forms[0].blocks[:0] = before  # 附件3： and the like, above the first title
        before = []
    return forms, before


def recognise(form: Form, regions: list[Region]) -> tuple[Region, float, list[str]]:
    """The region whose template labels the form holds most of; its share and what is missing."""
    texts = form.texts()
    normalized = {norm(t) for t in texts}
    raw = set(texts)
    best: tuple[tuple[float, float, int], Region, list[str]] | None = None
    stripped = [t.strip() for t in texts]
    vocabulary = {label for region in all_regions().values() for label in template_map(region).labels}
    # the form's own labels, as far as any region knows them
    labels_here = {label for label in normalized & vocabulary if len(label) <= _LABEL_MAX}
    for region in regions:
        mapping = template_map(region)
        wanted = {label for label in mapping.labels if 2 <= len(label) <= _LABEL_MAX}  # not notes
        if not wanted:
            continue
        found = wanted & normalized
        patterns = [s.pattern for s in mapping.slots if s.pattern is not None]
        matched = sum(1 for p in patterns if any(p.match(t) for t in stripped))
        share = (len(found) + matched) / (len(wanted) + len(patterns))
        # the form's labels that this region cannot explain count against it
        fit = (len(found) + matched) / (len(wanted | labels_here) + len(patterns))
        score = (fit, share, len(mapping.exact & raw))
        missing = sorted(wanted - normalized)
        if best is None or score > best[0]:
            best = (score, region, missing)
    assert best is not None
    return best[1], best[0][1], best[2]


# --- reading the values ---------------------------------------------------------------------


@dataclass
class Found:
    """What one form yields: values by context path (lists by row), and where each came from."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)  # id() of the cells and paragraphs read
    near: dict[int, str] = field(default_factory=dict)  # id(cell) → the key read from it
    placeholders: list[Cell] = field(default_factory=list)  # rows of a blank form left blank: 指标2：


class Reader:
    """Reads one form by its region's template."""

    def __init__(self, form: Form, mapping: TemplateMap) -> None:
        self.form = form
        self.mapping = mapping
        self.tables = [b for b in form.blocks if isinstance(b, Table)]
        self.paras = [b for b in form.blocks if isinstance(b, Para)]
        self.found = Found()

    def read(self) -> Found:
        for slot in self.mapping.slots:
            self._slot(slot)
        for loop in self.mapping.loops:
            self._loop(loop)
        return self.found

    def _take(self, slot: Slot, text: str, source: Cell | Para) -> None:
        self.found.used.add(id(source))
        match = slot.pattern.match(text) if slot.pattern is not None else None
        values = list(match.groups()) if match else [text]
        if len(values) != len(slot.paths):
            values = _split_words(text, len(slot.paths))
        for path, value in zip(slot.paths, values, strict=True):
            if path not in self.found.values:
                self.found.values[path] = value.strip()
                self.found.near[id(source)] = path

    def _slot(self, slot: Slot) -> None:
        if slot.pattern is not None:
            for source in self._sources():
                if id(source) not in self.found.used and slot.pattern.match(source.text.strip()):
                    self._take(slot, source.text.strip(), source)
                    return
            return
        cell = self._by_labels(slot)
        if cell is not None:
            self._take(slot, cell.text, cell)

    def _sources(self) -> Iterator[Cell | Para]:
        yield from self.paras
        for table in self.tables:
            yield from table.cells()

    def _by_labels(self, slot: Slot) -> Cell | None:
        wanted = [norm(label) for label in slot.row_labels]
        alternatives = _alternatives(slot)
        col = norm(slot.col_label) if slot.col_label else None
        for table in self.tables:
            header = None
            if col is not None:
                header = next((c for c in table.cells() if norm(c.text) in alternatives.get("col", {col})), None)
                if header is None:
                    continue
            for row in table.rows:
                if header is not None and row[0].row <= header.row:
                    continue
                if not _row_has(row, wanted, alternatives.get("row")):
                    continue
                if header is not None:
                    cell = next((c for c in row if c.start <= header.start < c.end), None)
                else:
                    last = max((c for c in row if norm(c.text) in _row_set(wanted, alternatives.get("row"))),
                               key=lambda c: c.col, default=None)
                    cell = next((c for c in row if last is not None and c.col > last.col), None)
                if cell is not None and id(cell) not in self.found.used and not self._is_label(cell):
                    labels = _row_set(wanted, alternatives.get("row"))
                    self.found.used.update(id(c) for c in row if norm(c.text) in labels)  # 其中：本年财政拨款
                    return cell
        return None

    def _is_label(self, cell: Cell) -> bool:
        return bool(cell.text) and norm(cell.text) in self.mapping.labels

    def _loop(self, loop: Loop) -> None:
        header_labels = {norm(h) for h in loop.header if h}
        for table in self.tables:
            for row_index, row in enumerate(table.rows):
                hits = {norm(c.text) for c in row} & header_labels
                if len(hits) < max(2, len(header_labels) // 2):
                    continue
                columns = {norm(c.text): c for c in row if c.text}
                self._loop_rows(loop, table, row_index + 1, columns)
                return

    def _loop_rows(self, loop: Loop, table: Table, first: int, columns: dict[str, Cell]) -> None:
        items: list[dict[str, str]] = []
        group: dict[str, str] = {}
        end = norm(loop.end) if loop.end else None
        # A form broken over tables goes on in the next one, up to the row after the loop; a loop
        # the template ends with its table ends with the table.
        tables = self.tables[self.tables.index(table):] if end else [table]
        rows = [r for t in tables for r in (t.rows[first:] if t is table else t.rows)]
        for row in rows:
            if end and any(norm(c.text) == end for c in row):
                break
            if tables[1:] and row and row[0].table != table.number and _is_header(row, columns):
                continue  # the header repeated on the next page of a form split over tables
            if all(c.continued or _placeholder(c.text) or self._is_label(c) for c in row):  # 指标2：, ……
                for cell in row:
                    self.found.used.add(id(cell))
                self.found.placeholders.extend(c for c in row if not c.continued and re.match(r"指标\s*\d", c.text))
                continue
            spec = self._best_row(loop, row, columns)
            values: dict[str, str] = {}
            for label, slot in spec.columns:
                header = columns.get(norm(label))
                cell = next((c for c in row if header and c.start <= header.start < c.end), None)
                if cell is None or slot is None:
                    continue
                self.found.used.add(id(cell))
                text = cell.text
                if slot.pattern is not None:
                    match = slot.pattern.match(text)
                    text = match.group(1) if match else text
                for path in slot.paths:
                    values[path] = text.strip()
                    self.found.near[id(cell)] = path
            for label, _static_text in spec.statics:
                header = columns.get(norm(label))
                cell = next((c for c in row if header and c.start <= header.start < c.end), None)
                if cell is not None:
                    self.found.used.add(id(cell))
            if loop.inner is not None and not any(p.startswith(loop.inner + "[]") for p in values):
                group = values  # a 评分表 group row: its name goes to the rows under it
                continue
            items.append({**group, **values})
        self.found.lists[loop.items] = items

    def _best_row(self, loop: Loop, row: list[Cell], columns: dict[str, Cell]) -> LoopRow:
        """The body row a filled row is (a 评分表 group row or an item row): the one whose fixed
        texts and patterns it matches best; the last (innermost) on a tie."""
        def score(spec: LoopRow) -> int:
            points = 0
            for label, slot in spec.columns:
                header = columns.get(norm(label))
                cell = next((c for c in row if header and c.start <= header.start < c.end), None)
                if cell is not None and slot is not None and slot.pattern is not None:
                    points += 2 if slot.pattern.match(cell.text) else -2
            for label, text in spec.statics:
                header = columns.get(norm(label))
                cell = next((c for c in row if header and c.start <= header.start < c.end), None)
                if cell is not None and not text and label:
                    points += 1 if not cell.text else -1
            return points

        return max(reversed(loop.rows), key=score)


def _split_words(text: str, count: int) -> list[str]:
    """One cell printing several tags joined by spaces (主管部门及代码: 「城管局 360」): the last
    words go to the last tags, the rest to the first; missing ones are empty at the front."""
    words = text.split()
    if len(words) < count:
        return [""] * (count - len(words)) + words
    cut = len(words) - count + 1
    return [" ".join(words[:cut]), *words[cut:]]


def _is_header(row: list[Cell], columns: dict[str, Cell]) -> bool:
    return len({norm(c.text) for c in row} & set(columns)) >= 2


def _row_set(wanted: list[str], alternatives: set[str] | None) -> set[str]:
    return set(wanted) | (alternatives or set())


def _row_has(row: list[Cell], wanted: list[str], alternatives: set[str] | None) -> bool:
    texts = {norm(c.text) for c in row}
    if not wanted:
        return True
    *outer, last = wanted
    return all(label in texts for label in outer) and (last in texts or bool(texts & (alternatives or set())))


def _placeholder(text: str) -> bool:
    return bool(_PLACEHOLDER.match(text.strip()))


def _alternatives(slot: Slot) -> dict[str, set[str]]:
    """Other spellings of a slot's row and column labels: the field's label and aliases."""
    if len(slot.paths) != 1:
        return {}
    path = slot.paths[0]
    specs = _specs_by_key(None)
    key = context_to_key(path)
    if key is None:
        return {}
    found: dict[str, set[str]] = {}
    if key.startswith("funds.") and key.count(".") == 2:
        row_key, column = key.rsplit(".", 1)
        for name, spec_key in (("row", row_key), ("col", f"funds.total.{column}")):
            spec = specs.get(spec_key)
            if spec is not None:
                found[name] = {norm(s) for s in (spec.label, *spec.aliases)}
        if slot.col_label:
            found.setdefault("col", set()).add(norm(slot.col_label))
    else:
        spec = specs.get(key)
        if spec is not None:
            found["row"] = {norm(s) for s in (spec.label, *spec.aliases)}
    return found


@cache
def _specs_by_key(region_id: str | None) -> dict[str, FieldSpec]:
    region = all_regions()[region_id] if region_id else None
    return {spec.key: spec for spec in region_fields(region)}


_CONTEXT_KEYS = {
    "goals.expected": "expected_goal",
    "goals.achieved": "goal_achieved",
    "total.score": "total",
    "grade": "grade",
    "project.year": "year",
}
_DERIVED = ("total.weight", "total.indicator_weight", "region.", "scorecard[].weight", "scorecard[].score")


def context_to_key(path: str) -> str | None:
    """The field a context path prints (funds.total.initial → funds.total.initial,
    narrative.overview → overview); None for what is computed (total.weight, spans)."""
    if path in _CONTEXT_KEYS:
        return _CONTEXT_KEYS[path]
    if path.startswith(_DERIVED) or path.endswith(("_first", "_span")):
        return None
    head, _, rest = path.partition(".")
    if head in ("project", "narrative"):
        return rest
    if head == "indicators[]":
        return "indicators.level1" if rest == "level1_label" else f"indicators.{rest}"
    if head == "evaluators[]":
        return f"evaluators.{rest}"
    if path == "scorecard[].name":
        return "scorecard.group"
    if path.startswith("scorecard[].rows[]."):
        return f"scorecard.{path.removeprefix('scorecard[].rows[].')}"
    return path  # funds.*, signoff.*, fields.*


# --- from values to a project file ------------------------------------------------------------


@dataclass
class Imported:
    """One form read: the project's data (English keys), comments by key, problems."""

    source: Path
    region: Region
    data: dict
    comments: dict[str, list[str]] = field(default_factory=dict)
    problems: list[DocumentProblem] = field(default_factory=list)


_NUMERIC = ("money", "rate", "points", "year", "date")


def _clean(value: str, spec: FieldSpec | None) -> str | None:
    """A printed value as the clerk would type it; None for an empty cell, "……", and a dash or
    slash where a number belongs (an unused cell). Elsewhere a dash is what the clerk wrote."""
    value = value.strip()
    if not value or re.fullmatch(r"[…。.·]{2,}", value):
        return None
    if spec is not None and spec.kind == "points_or_mark" and is_not_applicable(value):
        return value  # 无, 不适用, /: the row does not apply
    if spec is not None and spec.kind in _NUMERIC and _placeholder(value):
        return None
    return value


def _unlabel(level1: str, region: Region) -> str:
    """产出指标 (50分) → 产出指标, by the region's own level1_label."""
    fmt = region.level1_label
    if "{name}" not in fmt:
        return level1
    pattern = re.escape(fmt).replace(r"\{name\}", "(?P<name>.+?)").replace(r"\{share\}", r"[\d.]+")
    match = re.fullmatch(pattern, level1.strip())
    return match.group("name") if match else level1


def _choice(printed: str, spec: FieldSpec) -> str | None:
    for option in spec.options:
        at = printed.find(option)
        if at < 0:
            continue
        around = printed[max(0, at - 2): at] + printed[at + len(option): at + len(option) + 2]
        if any(box in around for box in BOXES_ON):
            return option
    return None


def to_project(found: Found, region: Region) -> dict:
    """Project data by field key (English names; list rows by their item keys)."""
    specs = _specs_by_key(region.id)
    data: dict = {"region": region.id}
    for path, raw in found.values.items():
        key = context_to_key(path)
        if key is None or (key not in specs and key not in ("year", "total", "grade")):
            continue
        spec = specs.get(key)
        if spec is not None and spec.fixed is not None:
            continue
        value = _choice(raw, spec) if spec is not None and spec.kind == "choice" else _clean(raw, spec)
        if value is not None and value != "":
            data[key] = value
    if "year" in data:
        data["year"] = re.sub(r"\D", "", normalize_text(data["year"])) or data["year"]
    for items, rows in found.lists.items():
        converted = []
        for row in rows:
            item = {}
            for path, raw in row.items():
                key = context_to_key(path)
                if key is None:
                    continue
                spec = specs.get(key)
                value = _clean(raw, spec)
                if key.endswith(".level1") and value:
                    value = _unlabel(value, region)
                if value:
                    item[key.split(".", 1)[1]] = value
            if _execution_row(item, region) or not item:
                continue
            converted.append(item)
        if converted:
            data[items] = converted
    return data


def _execution_row(item: dict, region: Region) -> bool:
    """The budget-execution row a region prints inside its table: computed, not read back."""
    place = region.execution.row
    return bool(place) and item.get("name") == place.name and norm(item.get("level1", "")) == norm(place.level1)


# --- the command ----------------------------------------------------------------------------


class ImportError_(Exception):
    """A file that cannot be imported; the message says why, in Chinese."""


@dataclass(frozen=True)
class DocumentProblem:
    """A finding about a Word file: ``form.docx:表2 第5行 第3列: warning: …``."""

    file: str
    where: str
    severity: str
    message: str

    def __str__(self) -> str:
        where = f":{self.where}" if self.where else ""
        return f"{self.file}{where}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def _problem(path: Path, where: str, severity: str, message: str) -> DocumentProblem:
    return DocumentProblem(display_path(path), where, severity, message)


def open_document(path: Path, soffice: str = "soffice") -> tuple[list[Block], Path | None]:
    """The blocks of a .docx (or of a .doc converted by LibreOffice); clear errors for the rest."""
    try:
        head = path.read_bytes()[:8]
    except OSError as exc:
        raise ImportError_(f"无法读取文件：{exc.strerror}") from exc
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE file: a .doc, or an encrypted .docx
        raw = path.read_bytes()
        if "EncryptedPackage".encode("utf-16-le") in raw:
            raise ImportError_("文件有密码保护；请在 Word 中取消密码（文件 → 信息 → 保护文档）后再导入")
        return _from_doc(path, soffice)
    if not head.startswith(b"PK"):
        raise ImportError_("不是 Word 文件（.docx 或 .doc）")
    if not zipfile.is_zipfile(path):
        raise ImportError_("Word 文件已损坏或不完整（可能没有下载或复制完整），无法打开")
    try:
        blocks = read_blocks(path)
    except Exception as exc:  # python-docx raises several kinds for a package that is not a document
        raise ImportError_(f"不是有效的 Word 文档（{type(exc).__name__}）") from exc
    return blocks, None


def _from_doc(path: Path, soffice: str) -> tuple[list[Block], Path | None]:
    from .convert import find_soffice
    from .profiles import note_version

    program = find_soffice(soffice)
    folder = Path(tempfile.mkdtemp(prefix="reportgen-import-"))
    profile = folder / "profile"
    note_version(profile, program)  # no graphics self-tests at its start (see profiles)
    command = [program, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
               "--convert-to", "docx:MS Word 2007 XML", "--outdir", str(folder), str(path.resolve())]
    try:
        subprocess.run(command, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ImportError_("LibreOffice 转换 .doc 超时") from exc
    converted = folder / (path.stem + ".docx")
    if not converted.is_file():
        raise ImportError_("LibreOffice 无法打开这个 .doc 文件（可能已损坏或有密码保护）")
    return read_blocks(converted), folder


def import_file(
    path: Path, region: Region | None = None, soffice: str = "soffice"
) -> tuple[list[Imported], list[DocumentProblem]]:
    """Every form in one Word file, or the problems that kept it from being read."""
    try:
        blocks, temporary = open_document(path, soffice)
    except ImportError_ as exc:
        return [], [_problem(path, "", "error", str(exc))]
    if temporary is not None:
        import shutil

        shutil.rmtree(temporary, ignore_errors=True)
    if not any((b.text if isinstance(b, Para) else any(c.text for c in b.cells())) for b in blocks):
        return [], [_problem(path, "", "error", "文档中没有文字（可能是扫描的图片）；请导入可编辑的 Word 文件")]
    if any(_TAG.search(b.text if isinstance(b, Para) else " ".join(c.text for c in b.cells())) for b in blocks):
        return [], [_problem(path, "", "error", "这是模板（含 {{ }} 标签），不是填好的表；请导入填好的自评表")]
    forms, outside = split_forms(blocks)
    problems = [
        _problem(path, f"表{b.number}", "warning", "这张表格不在任何自评表内（如汇总表），未导入")
        for b in outside if isinstance(b, Table)
    ]
    regions = [region] if region else list(all_regions().values())
    imported = []
    for form in forms:
        chosen, share, missing = recognise(form, regions)
        if share < 0.5 and region is None:
            shown = "、".join(missing[:6]) + ("…" if len(missing) > 6 else "")
            message = f"不是可识别的自评表：最接近的是{chosen.name}（{chosen.id}），但没有找到：{shown}"
            problems.append(_problem(path, "", "error", message))
            continue
        mapping = template_map(chosen)
        found = Reader(form, mapping).read()
        data = to_project(found, chosen)
        result = Imported(path, chosen, data)
        _report_unread(form, found, mapping, result)
        imported.append(result)
    return imported, problems


def _report_unread(form: Form, found: Found, mapping: TemplateMap, result: Imported) -> None:
    """Everything the form holds that no tag read: a warning, and a comment in the YAML beside
    the field read last before it in the document (the project's name when none was)."""
    near = "name"
    for block in form.blocks:
        sources = [block] if isinstance(block, Para) else list(block.cells())
        for source in sources:
            key = context_to_key(found.near.get(id(source), ""))
            if key and key in result.data:
                near = key
            text = source.text.strip()
            if not text or id(source) in found.used or _placeholder(text) or norm(text) in mapping.labels:
                continue
            if isinstance(source, Cell) and source.continued:
                continue
            result.comments.setdefault(near, []).append(f"{source.place}：{text}")
            result.problems.append(_problem(result.source, source.place, "warning",
                                            f"未对应到任何栏目：「{_short(text)}」（已作为注释写入项目文件）"))
    for cell in found.placeholders:
        where = f"表{cell.table} 第{cell.row}行"
        result.problems.append(_problem(result.source, where, "warning", f"只有「{cell.text}」的空白行，未导入"))


def _short(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= 30 else text[:30] + "…"


# --- writing YAML -----------------------------------------------------------------------------


def _label_path(key: str, specs: dict[str, FieldSpec]) -> list[str]:
    """The Chinese keys of a field path: funds.total.initial → 项目资金, 年度资金总额, 年初预算数."""
    if key.startswith("fields."):
        return [specs[key].label if key in specs else key.removeprefix("fields.")]
    parts = key.split(".")
    return [specs[".".join(parts[: i + 1])].label if ".".join(parts[: i + 1]) in specs else part
            for i, part in enumerate(parts)]


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def project_yaml(data: dict, region: Region, comments: dict[str, list[str]], header: str) -> str:
    """The project file: Chinese keys in the order of the region's field list, values quoted."""
    specs = _specs_by_key(region.id)
    tree: dict = {}
    order = {spec.key: i for i, spec in enumerate(specs.values())}
    for key in sorted((k for k in data if not isinstance(data[k], list)), key=lambda k: order.get(k, -1)):
        node = tree
        labels = _label_path(key if key != "region" else "region", specs)
        for label in labels[:-1]:
            node = node.setdefault(label, {})
        node[labels[-1]] = (data[key], key)
    lines = [f"# {header}"]
    _emit(tree, lines, 0, comments)
    for list_key in ("indicators", "scorecard", "evaluators"):
        rows = data.get(list_key)
        if not rows:
            continue
        lines.append(f"{_label_path(list_key, specs)[0]}:")
        for row in rows:
            first = True
            for key in sorted(row, key=lambda k: order.get(f"{list_key}.{k}", 99)):
                label = specs[f"{list_key}.{key}"].label if f"{list_key}.{key}" in specs else key
                for note in comments.get(f"{list_key}.{key}", []) if first else []:
                    lines.append(f"  # {note}")
                lines.append(f"{'  - ' if first else '    '}{label}: {_quote(row[key])}")
                first = False
    return "\n".join(lines) + "\n"


def _emit(tree: dict, lines: list[str], depth: int, comments: dict[str, list[str]]) -> None:
    indent = "  " * depth
    for label, value in tree.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{label}:")
            _emit(value, lines, depth + 1, comments)
            continue
        text, key = value
        for note in comments.get(key, []):
            lines.append(f"{indent}# {note.replace(chr(10), ' ')}")
        lines.append(f"{indent}{label}: {_quote(str(text))}")


@dataclass
class Written:
    files: list[Path]
    problems: list[DocumentProblem]


def write_projects(imported: list[Imported], out: Path, force: bool) -> Written:
    """``<out>/<年度>/<单位>/``: one file per form and the values a unit's forms share in
    ``_unit.yaml``. Existing files are kept unless ``force``."""
    files: list[Path] = []
    problems: list[DocumentProblem] = []
    units: dict[tuple[str, str], list[Imported]] = {}
    for item in imported:
        unit = item.data.get("implementing_unit") or item.data.get("primary_unit") or item.source.stem
        units.setdefault((item.data.get("year", "未知年度"), unit), []).append(item)
    for (year, unit), members in units.items():
        folder = out / safe_filename(str(year), set()) / safe_filename(str(unit), set())
        shared = {"region", "year", "implementing_unit"} | {
            key for key in UNIT_FIELDS
            if all(key in m.data and m.data[key] == members[0].data[key] for m in members) and len(members) > 1
        }
        shared = {key for key in shared if key in members[0].data
                  and all(m.data.get(key) == members[0].data[key] for m in members)}
        unit_file = folder / "_unit.yaml"
        write_unit = force or not unit_file.exists()
        if not write_unit:
            shared = set()
        taken: set[str] = set()
        for member in members:
            name = safe_filename(str(member.data.get("name", member.source.stem)), taken)
            target = folder / f"{name}.yaml"
            if target.exists() and not force:
                problems.append(_problem(target, "", "error", "文件已存在，未覆盖（需要覆盖请加 --force）"))
                continue
            own = {k: v for k, v in member.data.items() if k not in shared}
            comments: dict[str, list[str]] = {}
            for key, notes in member.comments.items():  # notes beside a value that went to _unit.yaml
                comments.setdefault(key if key in own else "name", []).extend(notes)
            header = f"由 {member.source.name} 导入（reportgen import）；请核对后再生成"
            _write(target, project_yaml(own, member.region, comments, header))
            files.append(target)
        if write_unit and shared:
            first = members[0]
            data = {k: first.data[k] for k in shared}
            _write(unit_file, project_yaml(data, first.region, {}, f"{unit}：单位共用信息（reportgen import）"))
            files.append(unit_file)
    return Written(files, problems)


def _write(target: Path, text: str) -> None:
    from .package import write_bytes

    write_bytes(target, text.encode("utf-8"))


@dataclass
class ImportReport:
    """What `reportgen import` did: the forms read, the files written, what was wrong."""

    forms: int
    files: list[Path]
    problems: list[DocumentProblem]

    @property
    def projects(self) -> list[Path]:
        return [path for path in self.files if not path.name.startswith("_")]


def import_paths(paths: list[Path], out: Path, region: Region | None, force: bool, soffice: str) -> ImportReport:
    """Every Word file under ``paths``, read and written as project files under ``out``."""
    documents = discover_documents(paths)
    if not documents:
        raise UsageError(f"没有找到 Word 文件（.docx、.doc）：{'、'.join(map(str, paths))}")
    imported: list[Imported] = []
    problems: list[DocumentProblem] = []
    for document in documents:
        forms, found = import_file(document, region, soffice)
        imported += forms
        problems += found + [p for form in forms for p in form.problems]
    written = write_projects(imported, out, force)
    return ImportReport(len(imported), written.files, problems + written.problems)


def discover_documents(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in (".docx", ".doc")
                                and p.is_file() and not p.name.startswith(("~$", "."))))
        else:
            found.append(path)
    return found
