"""The web form of a region, and a project file's values into and out of it.

The form is generated from the region's field list (``reference.region_fields``): a region added
as data gets its form with no web code. Values are read through the validator's own resolution
of the user's keys (``Checked.locator``: model path → where the user's key stands, in whatever
spelling), so a file with Chinese labels, English names or aliases fills the same form.

Saving edits the file with ruamel.yaml's round trip: only the values the clerk changed are
replaced, keys keep their spelling, comments and order stay; a value the file did not have is
added beside its siblings, spelt as its siblings are (English names among English keys, the
region's label otherwise).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.util import load_yaml_guess_indent

from ..load import Document, LocatedList, LocatedMap
from ..reference import FieldSpec, region_fields
from ..regions import Region
from ..schema import MoneyRow, user_fields
from ..score import Loc
from ..validate import Checked
from ..view import printed_tags

SCALAR_KINDS = ("text", "date", "money", "rate", "points", "points_or_mark", "year", "choice")
# 一级/二级 left empty mean "same as the row above" (as the validator reads them): the form shows
# the carried value as a grey hint.
CARRIED_COLUMNS = ("level1", "level2", "group")
# Top-level values after the money table that are short words, not paragraphs.
_SHORT = ("grade", "total")


class FormError(Exception):
    """A project file the form cannot edit (its YAML does not parse, or is not a mapping)."""


# --- the layout --------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input: where its value goes (``key``), what the form prints beside it."""

    key: str  # the spec key: funds.total.initial, fields.kind, indicators.weight (a table's column)
    loc: Loc  # the model path (relative to its row for a table's column)
    label: str
    kind: str
    options: tuple[str, ...]
    required: bool
    description: str
    long: bool = False  # a paragraph, written in a full-width text area
    fixed: str | None = None  # a text the form always prints (not filled in)
    carried: bool = False  # empty means "same as the row above"
    extra: bool = False  # a table's column the region's form does not print (a scoring hint)

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]

    @property
    def numeric(self) -> bool:
        return self.kind in ("money", "rate", "points", "points_or_mark", "year")


@dataclass
class Group:
    """Label/value cells, as a form's header rows."""

    title: str
    fields: list[Field]
    kind: str = "group"


@dataclass
class GridRow:
    key: str
    label: str
    cells: dict[str, Field]


@dataclass
class Grid:
    """A mapping of mappings, as the money table: rows × columns, with its single values."""

    key: str
    title: str
    columns: list[tuple[str, str]]  # column name, label
    rows: list[GridRow]
    extras: list[Field]
    kind: str = "grid"


@dataclass
class Table:
    """A list: one row per item (绩效指标, 评分表, 评价人员)."""

    key: str
    title: str
    columns: list[Field]
    choices: dict[str, list[str]] = field(default_factory=dict)  # column → suggested words
    kind: str = "table"

    @property
    def extras(self) -> list[Field]:
        return [column for column in self.columns if column.extra]


Section = Group | Grid | Table


@dataclass
class Layout:
    region: Region
    sections: list[Section]
    specs: dict[str, FieldSpec]  # every spec by key, mappings and lists included
    order: dict[str, int]  # spec key → its place in the region's field list
    fields: dict[str, Field]  # every single value outside tables
    tables: dict[str, Table]

    def to_json(self) -> dict:
        """What the page's script needs: the tables' columns, for rows it adds."""
        return {
            "tables": {
                key: {"columns": [column.name for column in table.columns],
                      "carried": [column.name for column in table.columns if column.carried]}
                for key, table in self.tables.items()
            },
        }


def spec_loc(spec: FieldSpec, in_table: bool = False) -> Loc:
    """The model path of a spec's value: declared fields live under ``declared`` / ``rows``."""
    parts = spec.key.split(".")
    if in_table:
        return ("declared", parts[-1]) if spec.declared else (parts[-1],)
    if parts[0] == "fields":
        return ("declared", parts[1])
    if spec.declared and parts[0] == "funds":
        return ("funds", "rows", *parts[1:])
    return tuple(parts)


def spec_key_of(loc: Loc) -> str:
    """The spec key of a model path (indexes dropped): the inverse of ``spec_loc``."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    if not parts:
        return ""
    if parts[0] == "declared":
        return ".".join(["fields", *parts[1:]])
    if parts[:2] == ["funds", "rows"]:
        return ".".join(["funds", *parts[2:]])
    if len(parts) > 2 and parts[1] == "declared":
        return ".".join([parts[0], *parts[2:]])
    return ".".join(parts)


def _options(spec: FieldSpec) -> tuple[str, ...]:
    return tuple(option for option in spec.options if isinstance(option, str))


def _field(spec: FieldSpec, in_table: bool = False, long: bool = False) -> Field:
    options = _options(spec)
    kind = spec.kind if spec.kind != "choice" or options else "text"
    return Field(spec.key, spec_loc(spec, in_table), spec.label, kind, options, spec.required, spec.description,
                 long=long, fixed=spec.fixed, carried=in_table and spec.key.rpartition(".")[2] in CARRIED_COLUMNS)


def _children(specs: list[FieldSpec], parent: str) -> list[FieldSpec]:
    return [spec for spec in specs if spec.parent == parent]


def _is_scalar(spec: FieldSpec) -> bool:
    # 一级指标分值 (shares) is a mapping of 一级 → points that the form leaves as written.
    return spec.kind in SCALAR_KINDS and spec.key != "shares"


def _grid(spec: FieldSpec, specs: list[FieldSpec]) -> Section | None:
    children = _children(specs, spec.key)
    rows = [child for child in children if child.kind == "mapping" and _children(specs, child.key)]
    extras = [_field(child) for child in children if _is_scalar(child)]
    if not rows:
        return Group(spec.label, extras) if extras else None
    columns: dict[str, str] = {}
    grid_rows = []
    for row in rows:
        cells = {}
        for cell in _children(specs, row.key):
            if _is_scalar(cell):
                columns.setdefault(cell.key.rpartition(".")[2], cell.label)
                cells[cell.key.rpartition(".")[2]] = _field(cell)
        grid_rows.append(GridRow(row.key, row.label, cells))
    # the model's order of money columns (年初预算数 … 全年执行数), whichever row names them first
    model_order = user_fields(MoneyRow)
    ordered = sorted(columns.items(), key=lambda c: model_order.index(c[0]) if c[0] in model_order else 99)
    return Grid(spec.key, spec.label, ordered, grid_rows, extras)


def _table(spec: FieldSpec, specs: list[FieldSpec], region: Region) -> Table:
    columns = [_field(child, in_table=True) for child in _children(specs, spec.key) if _is_scalar(child)]
    printed = [tag for tag in printed_tags(region) if tag.startswith(f"{spec.key}[]")]

    def extra(column: Field) -> bool:
        """Not on the printed table (指标类型, 指标方向…): shown on request, or when filled in."""
        pattern = re.compile(rf"{re.escape(spec.key)}\[\]\.(?:rows\[\]\.)?{re.escape(column.name)}")
        return bool(printed) and not (column.required or column.carried or any(pattern.match(t) for t in printed))

    columns = [replace(column, extra=extra(column)) for column in columns]
    level1 = [category.name for category in region.categories]
    level2 = list(dict.fromkeys(
        name for category in region.categories for name in (*category.level2, *(p.name for p in category.parts))
    ))
    choices = {"level1": level1, "group": level1, "level2": level2}
    return Table(spec.key, spec.label, columns, {c.name: choices[c.name] for c in columns if c.name in choices})


def layout(region: Region) -> Layout:
    """The region's form: header cells, the money table, paragraphs, the indicator table(s), the
    total and sign-off, and the fields the region declares; in the order of its field list."""
    specs = region_fields(region)
    by_key = {spec.key: spec for spec in specs}
    order = {spec.key: index for index, spec in enumerate(specs)}
    sections: list[Section] = []
    pending: list[Field] = []
    seen_mapping = seen_list = False

    def flush() -> None:
        if pending:
            title = "总分与等次" if seen_list else ("项目情况" if seen_mapping else "基本信息")
            sections.append(Group(title, list(pending)))
            pending.clear()

    for spec in specs:
        if "." in spec.key or spec.key == "region":
            continue
        if _is_scalar(spec):
            long = seen_mapping and spec.kind == "text" and spec.key not in _SHORT
            pending.append(_field(spec, long=long))
        elif spec.kind == "mapping":
            flush()
            seen_mapping = True
            section = _grid(spec, specs)
            if section is not None:
                sections.append(section)
        elif spec.kind == "list":
            flush()
            seen_list = True
            sections.append(_table(spec, specs, region))
    flush()
    declared = [_field(spec, long=spec.kind == "text") for spec in specs if spec.key.startswith("fields.")]
    if declared:
        sections.append(Group("本地区表格的栏目", declared))
    fields: dict[str, Field] = {}
    tables: dict[str, Table] = {}
    for section in sections:
        if isinstance(section, Table):
            tables[section.key] = section
        elif isinstance(section, Grid):
            fields.update({f.key: f for row in section.rows for f in row.cells.values()})
            fields.update({f.key: f for f in section.extras})
        else:
            fields.update({f.key: f for f in section.fields})
    return Layout(region, sections, by_key, order, fields, tables)


# --- a file's values as the form shows them ----------------------------------------------


@dataclass
class Snapshot:
    """A project file's values, by field key, as text; a table's rows as their values by column.

    ``inherited`` names the unit file a value comes from (shown, and written into the project file
    only when changed); ``locked`` holds values that are not text where text belongs (a list, a
    mapping): the form leaves them as written.
    """

    values: dict[str, str] = field(default_factory=dict)
    inherited: dict[str, str] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    rows_inherited: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict:
        """The page's state: every value, and each table's rows with their place in the file."""
        return {
            "values": dict(self.values),
            "rows": {key: [{"orig": index, "values": dict(row)} for index, row in enumerate(rows)]
                     for key, rows in self.rows.items()},
        }

    def to_json(self) -> dict:
        return {**self.state(), "inherited": self.inherited, "locked": sorted(self.locked),
                "rows_inherited": self.rows_inherited}


def _marks(document: Document) -> dict[tuple[str, int, int], object]:
    """Every key's and list item's value in a loaded file, by what it is ("key" or "item": an
    item's mark is also its first key's) and the line and column it stands at."""
    found: dict[tuple[str, int, int], object] = {}
    stack: list[object] = [document.data]
    while stack:
        node = stack.pop()
        if isinstance(node, LocatedMap):
            for key, value in node.items():
                found[("key", *node.key_marks[key])] = value
                stack.append(value)
        elif isinstance(node, LocatedList):
            for index, value in enumerate(node):
                found[("item", *node.item_marks[index])] = value
                stack.append(value)
    return found


def _text(value: object) -> str | None:
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def snapshot(form: Layout, checked: Checked, documents: dict[str, Document], project_file: str) -> Snapshot:
    """The values of a project (and the unit files it inherits from) for the form.

    ``documents`` are the loaded files by the name the validator gave them; ``project_file`` is
    the project file's name among them."""
    marks = {name: _marks(document) for name, document in documents.items()}
    shot = Snapshot()

    def value_at(loc: Loc) -> tuple[object, str] | None:
        place = checked.locator.get(loc)
        if place is None or place.file not in marks:
            return None
        kind = "item" if isinstance(loc[-1], int) else "key"
        return marks[place.file].get((kind, place.line, place.col)), place.file

    for key, item in form.fields.items():
        if item.fixed is not None:
            continue
        found = value_at(item.loc)
        if found is None:
            continue
        value, file = found
        text = _text(value)
        if text is None:
            shot.locked.add(key)
            continue
        shot.values[key] = text
        if file != project_file:
            shot.inherited[key] = file
    for key, table in form.tables.items():
        rows: list[dict[str, str]] = []
        index = 0
        while (found := value_at((key, index))) is not None:
            row_value, file = found
            if file != project_file:
                shot.rows_inherited[key] = file
            row: dict[str, str] = {}
            for column in table.columns:
                cell = value_at((key, index, *column.loc)) if isinstance(row_value, LocatedMap) else None
                text = _text(cell[0]) if cell is not None else ""
                if text is None:
                    shot.locked.add(f"{key}[{index}].{column.name}")
                    text = ""
                row[column.name] = text
            rows.append(row)
            index += 1
        shot.rows[key] = rows
    return shot


# --- writing a file back ------------------------------------------------------------------

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


class _TextResolver(VersionedResolver):
    """Only empty values and null are resolved, as reportgen's loader does: every other scalar
    stays the text it was (2023.10 is not 2023.1), and is written back as it stood."""

    @property
    def versioned_resolver(self) -> dict:
        return {first: [("tag:yaml.org,2002:null", _NULL)] for first in ("~", "n", "N", "")}


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.Resolver = _TextResolver
    yaml.preserve_quotes = True
    yaml.width = 1_000_000  # never fold a long line the clerk wrote on one line
    yaml.allow_unicode = True
    try:
        _, indent, dash = load_yaml_guess_indent(text)
    except Exception:  # ruamel's guess is a guess: the defaults then
        indent, dash = None, None
    mapping = _mapping_indent(text)
    yaml.indent(mapping=mapping, sequence=indent or mapping, offset=dash if dash is not None else 0)
    return yaml


def _mapping_indent(text: str) -> int:
    """The indent of the first nested mapping key (two spaces when there is none)."""
    opened: int | None = None  # the indent of a key that opens a nested block
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if opened is not None and indent > opened and not stripped.startswith("- "):
            return indent - opened
        is_key = not stripped.startswith("- ") and stripped.split("#")[0].rstrip().endswith(":")
        opened = indent if is_key else None
    return 2


def _dump(yaml: YAML, root: object) -> str:
    stream = io.StringIO()
    yaml.dump(root, stream)
    return stream.getvalue()


def load_round_trip(text: str) -> tuple[YAML, CommentedMap]:
    yaml = _yaml(text)
    try:
        root = yaml.load(text)
    except Exception as exc:
        raise FormError(f"文件不是有效的 YAML：{exc}") from exc
    if not isinstance(root, CommentedMap):
        raise FormError("文件顶层不是「键: 值」映射")
    return yaml, root


def keeps_layout(text: str) -> bool:
    """Whether writing the file back unchanged gives the same text (its layout is one the round
    trip reproduces): otherwise saving also evens out its indentation or quoting."""
    try:
        yaml, root = load_round_trip(_lf(text))
    except FormError:
        return False
    return _dump(yaml, root) == _lf(text)


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def _ascii(key: object) -> bool:
    return isinstance(key, str) and key.isascii()


def _scalar(new: str, old: object, siblings: list[object]) -> object:
    """The new value in the old one's style: quoted as it was; a new value quoted as its
    siblings mostly are; several lines as a block."""
    if new == "":
        return None
    if isinstance(old, (DoubleQuotedScalarString, SingleQuotedScalarString)):
        return type(old)(new)
    if isinstance(old, (LiteralScalarString, FoldedScalarString)) or "\n" in new:
        return LiteralScalarString(new)
    if old is None and siblings:
        quoted = sum(isinstance(s, DoubleQuotedScalarString) for s in siblings)
        if quoted * 2 > len(siblings):
            return DoubleQuotedScalarString(new)
    return new


@dataclass
class _Slot:
    container: CommentedMap | CommentedSeq
    key: object


class Editor:
    """Applies the form's state to a project file's text, changing only what was changed."""

    def __init__(self, form: Layout, text: str, checked: Checked, base: Snapshot, project_file: str) -> None:
        self.form, self.checked, self.base, self.project_file = form, checked, base, project_file
        self.crlf = "\r\n" in text
        self.yaml, self.root = load_round_trip(_lf(text))
        self.slots: dict[tuple[str, int, int], _Slot] = {}  # ("key" or "item", line, column)
        self._index(self.root)
        # container → its keys' spec keys, to place a new key among its siblings
        self.spec_keys: dict[int, dict[object, str]] = {}
        self.spellings: dict[str, str] = {}  # spec key → how this file spells it in a table's rows
        for loc, place in checked.locator.items():
            if place.file != project_file or not loc:
                continue
            slot = self.slots.get(("key", place.line, place.col))
            if slot is None or isinstance(loc[-1], int):
                continue
            spec_key = spec_key_of(loc)
            self.spec_keys.setdefault(id(slot.container), {})[slot.key] = spec_key
            if any(isinstance(part, int) for part in loc):
                self.spellings.setdefault(spec_key, str(slot.key))
        self.changed = 0

    def _index(self, node: object) -> None:
        if isinstance(node, CommentedMap):
            for key in node:
                line, col = node.lc.key(key)
                self.slots[("key", line + 1, col + 1)] = _Slot(node, key)
                self._index(node[key])
        elif isinstance(node, CommentedSeq):
            for index, item in enumerate(node):
                line, col = node.lc.item(index)
                self.slots[("item", line + 1, col + 1)] = _Slot(node, index)
                self._index(item)

    def _slot(self, loc: Loc) -> _Slot | None:
        place = self.checked.locator.get(loc)
        if place is None or place.file != self.project_file:
            return None
        return self.slots.get(("item" if isinstance(loc[-1], int) else "key", place.line, place.col))

    # - single values -

    def apply(self, state: dict) -> str:
        values = state.get("values") or {}
        for key, item in self.form.fields.items():
            new = values.get(key)
            if not isinstance(new, str) or key in self.base.locked or item.fixed is not None:
                continue
            if new != self.base.values.get(key, ""):
                self._set(item.loc, new, key)
        for key, rows in (state.get("rows") or {}).items():
            if key in self.form.tables and isinstance(rows, list):
                self._table(self.form.tables[key], rows)
        text = _dump(self.yaml, self.root)
        return text.replace("\n", "\r\n") if self.crlf else text

    def _set(self, loc: Loc, new: str, spec_key: str) -> None:
        slot = self._slot(loc)
        if slot is not None and isinstance(slot.container, CommentedMap):
            old = slot.container[slot.key]
            slot.container[slot.key] = _scalar(new, old, [])
            self.changed += 1
            return
        if new == "":
            return  # an empty value the file does not have: nothing to write
        target = self._container_for(spec_key)
        self._insert(target, spec_key, _scalar(new, None, [v for v in target.values() if isinstance(v, str)]))
        self.changed += 1

    def _spelling(self, target: CommentedMap, spec_key: str) -> str:
        if spec_key in self.spellings:
            return self.spellings[spec_key]
        spec = self.form.specs[spec_key]
        if len(target) and all(_ascii(key) for key in target) and not spec.declared:
            return spec_key.rpartition(".")[2]
        return spec.label

    def _insert(self, target: CommentedMap, spec_key: str, value: object) -> None:
        """A new key among its siblings, after the last one that comes before it in the form."""
        name = self._spelling(target, spec_key)
        known = self.spec_keys.setdefault(id(target), {})
        rank = self.form.order.get(spec_key, len(self.form.order))
        keys = list(target)
        before = [i for i, key in enumerate(keys) if self.form.order.get(known.get(key, ""), rank + 1) < rank]
        after = [i for i, key in enumerate(keys) if self.form.order.get(known.get(key, ""), -1) > rank]
        position = before[-1] + 1 if before else (after[0] if after else len(keys))
        target.insert(position, name, value)
        known[name] = spec_key

    def _container_for(self, field_key: str) -> CommentedMap:
        """The mapping a field's value belongs in, made (with its parents) when missing."""
        parent = self.form.specs[field_key].parent
        if not parent or parent == "fields":
            return self.root
        return self._mapping(parent)

    def _mapping(self, spec_key: str) -> CommentedMap:
        spec = self.form.specs[spec_key]
        slot = self._slot(spec_loc(spec))
        if slot is not None and isinstance(slot.container, CommentedMap):
            current = slot.container[slot.key]
            if isinstance(current, CommentedMap):
                return current
            made = CommentedMap()
            slot.container[slot.key] = made
            return made
        parent = self.root if not spec.parent else self._mapping(spec.parent)
        made = CommentedMap()
        self._insert(parent, spec_key, made)
        return made

    # - tables -

    def _table(self, table: Table, rows: list) -> None:
        base_rows = self.base.rows.get(table.key, [])
        inherited = table.key in self.base.rows_inherited
        origins: list[int | None] = []
        for row in rows:
            orig = row.get("orig") if isinstance(row, dict) else None
            valid = isinstance(orig, int) and 0 <= orig < len(base_rows) and not inherited and orig not in origins
            origins.append(orig if valid else None)
        states = [row.get("values") if isinstance(row, dict) and isinstance(row.get("values"), dict) else {}
                  for row in rows]
        same_shape = origins == list(range(len(base_rows))) and not inherited
        if inherited and len(rows) == len(base_rows) and all(
            isinstance(row, dict) and row.get("orig") == index
            and all(values.get(c.name, "") == base_rows[index].get(c.name, "") for c in table.columns)
            for index, (row, values) in enumerate(zip(rows, states, strict=True))
        ):
            return  # the unit file's rows, untouched: they stay where they are
        if same_shape:
            for index, values in enumerate(states):
                self._row(table, index, self._row_map(table.key, index), values, base_rows[index])
            return
        if not rows and not base_rows:
            return
        sequence, old_items = self._sequence(table)
        new_items: list[CommentedMap] = []
        comments: dict[int, object] = {}
        for position, (orig, values) in enumerate(zip(origins, states, strict=True)):
            if orig is not None and orig < len(old_items) and isinstance(old_items[orig], CommentedMap):
                item = old_items[orig]
                if orig in sequence.ca.items:
                    comments[position] = sequence.ca.items[orig]
                self._row(table, None, item, values, base_rows[orig])
            else:
                item = CommentedMap()
                self._row(table, None, item, values, {})
            new_items.append(item)
        del sequence[:]
        sequence.extend(new_items)
        sequence.ca.items.clear()
        sequence.ca.items.update(comments)
        self.changed += 1

    def _row_map(self, table_key: str, index: int) -> CommentedMap | None:
        slot = self._slot((table_key, index))
        if slot is None:
            return None
        item = slot.container[slot.key]
        return item if isinstance(item, CommentedMap) else None

    def _sequence(self, table: Table) -> tuple[CommentedSeq, list]:
        """The list in the project file (made when it has none, or when it is inherited)."""
        slot = self._slot((table.key,))
        if slot is not None and isinstance(slot.container, CommentedMap):
            current = slot.container[slot.key]
            if isinstance(current, CommentedSeq):
                return current, list(current)
            made = CommentedSeq()
            slot.container[slot.key] = made
            return made, []
        made = CommentedSeq()
        self._insert(self.root, table.key, made)
        return made, []

    def _row(self, table: Table, index: int | None, item: CommentedMap | None, values: dict,
             base: dict[str, str]) -> None:
        if item is None:
            return
        for column in table.columns:
            new = values.get(column.name)
            if not isinstance(new, str) or new == base.get(column.name, ""):
                continue
            if index is not None and f"{table.key}[{index}].{column.name}" in self.base.locked:
                continue
            slot = self._slot((table.key, index, *column.loc)) if index is not None else None
            if slot is None:
                slot = next((_Slot(item, key) for key, spec_key in self.spec_keys.get(id(item), {}).items()
                             if spec_key == column.key), None)
            if slot is not None:
                slot.container[slot.key] = _scalar(new, slot.container[slot.key], [])
            elif new != "":
                siblings = [v for v in item.values() if isinstance(v, str)] or self._quoting_of(table)
                self._insert(item, column.key, _scalar(new, None, siblings))
            self.changed += 1

    def _quoting_of(self, table: Table) -> list[object]:
        """The values of the table's first row in the file: a new row is quoted as they are."""
        row = self._row_map(table.key, 0)
        return [v for v in row.values() if isinstance(v, str)] if row is not None else []


def changed_keys(form: Layout, base: Snapshot, state: dict) -> Iterator[str]:
    """The fields (and tables) a state changes, for the page's "已修改" count."""
    values = state.get("values") or {}
    for key in form.fields:
        new = values.get(key)
        if isinstance(new, str) and new != base.values.get(key, "") and key not in base.locked:
            yield key
    for key, rows in (state.get("rows") or {}).items():
        if key not in form.tables or not isinstance(rows, list):
            continue
        base_rows = base.rows.get(key, [])
        if [r.get("orig") if isinstance(r, dict) else None for r in rows] != list(range(len(base_rows))):
            yield key
            continue
        for index, row in enumerate(rows):
            values = row.get("values") or {}
            for column, new in values.items():
                if isinstance(new, str) and new != base_rows[index].get(column, ""):
                    yield f"{key}[{index}].{column}"


def rebase(form: Layout, old: Snapshot, state: dict, new: Snapshot) -> dict:
    """A state made against an old version of a file, carried over to its new version: what the
    clerk changed wins, what they left alone takes the new version's value."""
    values = dict(new.values)
    for key, value in (state.get("values") or {}).items():
        if isinstance(value, str) and value != old.values.get(key, ""):
            values[key] = value
    rows = new.state()["rows"]
    for key, table_rows in (state.get("rows") or {}).items():
        if key not in form.tables or not isinstance(table_rows, list):
            continue
        old_rows, new_rows = old.rows.get(key, []), new.rows.get(key, [])
        reshaped = [r.get("orig") for r in table_rows] != list(range(len(old_rows)))
        if not reshaped and len(old_rows) == len(new_rows):
            merged = []
            for index, row in enumerate(table_rows):
                cells = dict(new_rows[index])
                for column, value in (row.get("values") or {}).items():
                    if isinstance(value, str) and value != old_rows[index].get(column, ""):
                        cells[column] = value
                merged.append({"orig": index, "values": cells})
            rows[key] = merged
        elif reshaped or any(row.get("values") != old_rows[index] for index, row in enumerate(table_rows)):
            # Rows added, removed or moved here, or the file's rows changed meanwhile: the clerk's
            # rows are kept whole (as new rows where the file's have shifted).
            same = len(old_rows) == len(new_rows)
            rows[key] = [{"orig": r.get("orig") if same else None, "values": r.get("values") or {}}
                         for r in table_rows]
    return {"values": values, "rows": rows}
