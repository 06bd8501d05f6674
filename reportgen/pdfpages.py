"""Pages of LibreOffice's PDFs taken apart and put together again, structure tree included.

A unit's forms are converted as one document (``build``: one LibreOffice document costs a fixed
~50 ms however small, a one-page form little more), and each form's PDF is cut from it: the
form's pages, with the objects they use copied byte for byte — content streams, fonts, their
ToUnicode maps — and the part of the structure tree (Tagged PDF) that describes them, so that
the cut PDF shows and reads exactly like the pages it came from. A unit's 全部项目.pdf is put
together the same way from its parts, with one bookmark per part.

Where each part begins is read from named destinations (``marker_name``): the merged DOCX has
a bookmark at the start of every part, exported with ``ExportBookmarksToPDFDestination``.

Only what LibreOffice writes is read: one classic cross-reference table, no object streams, no
incremental updates, no encryption. Anything else, and any reference from a part's objects to a
page outside the part, raises ``Unsupported``: the caller converts those forms one by one.

The output is reproducible: LibreOffice's fonts are put in the order of their names (it writes
them in the order in which they lie in its memory), objects are numbered in the order in which
they are reached, the dates are given, and the file identifier is a hash of the bytes.
"""

from __future__ import annotations

import bisect
import collections
import copy
import datetime
import functools
import hashlib
import itertools
import math
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MARKER_PREFIX = "rgpart"  # bookmark names in a merged DOCX: rgpart0, rgpart1, …


class Unsupported(Exception):
    """The PDF is not laid out as LibreOffice writes it, or a part is not self-contained."""


def marker_name(index: int) -> str:
    return f"{MARKER_PREFIX}{index}"


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    number: int


class Name(bytes):
    """A name with its slash: ``Name(b"/Type")``."""


@dataclass(frozen=True)
class Raw:
    """A number, string, boolean or null, kept as written."""

    text: bytes


Value = dict | list | Ref | Name | Raw

_TOKEN = re.compile(
    rb"""[\x00\t\n\x0c\r ]*(?:
     (?P<ref>\d+[\x00\t\n\x0c\r ]+\d+[\x00\t\n\x0c\r ]+R)(?![^\x00\t\n\x0c\r ()<>\[\]{}/%])
    |(?P<open><<)|(?P<close>>>)|(?P<array>\[)|(?P<end>\])
    |(?P<name>/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*)
    |(?P<literal>\((?:[^\\()]|\\.)*\))
    |(?P<hex><[0-9A-Fa-f\x00\t\n\x0c\r ]*>)
    |(?P<word>[^\x00\t\n\x0c\r ()<>\[\]{}/%]+))""",
    re.X | re.S,
)
# References outside strings: only these are renumbered when an object is copied.
_REFERENCE = re.compile(
    rb"\((?:[^\\()]|\\.)*\)|<[0-9A-Fa-f\x00\t\n\x0c\r ]*>|(\d+)[\x00\t\n\x0c\r ]+0[\x00\t\n\x0c\r ]+R\b", re.S
)


def parse(text: bytes) -> Value:
    value, position = _value(text, 0)
    if text[position:].strip():
        raise Unsupported("trailing data in an object")
    return value


def _value(text: bytes, position: int) -> tuple[Value, int]:
    match = _TOKEN.match(text, position)
    if match is None:
        raise Unsupported(f"unreadable object at {position}")
    kind, end = match.lastgroup, match.end()
    if kind == "ref":
        return Ref(int(match[kind].split()[0])), end
    if kind == "name":
        return Name(match[kind]), end
    if kind in ("literal", "hex", "word"):
        return Raw(match[kind]), end
    if kind == "array":
        items: list = []
        while True:
            closing = _TOKEN.match(text, end)
            if closing is not None and closing.lastgroup == "end":
                return items, closing.end()
            item, end = _value(text, end)
            items.append(item)
    if kind == "open":
        entries: dict = {}
        while True:
            closing = _TOKEN.match(text, end)
            if closing is not None and closing.lastgroup == "close":
                return entries, closing.end()
            key, end = _value(text, end)
            if not isinstance(key, Name):
                raise Unsupported("dictionary key")
            entries[key], end = _value(text, end)
    raise Unsupported(f"unexpected {match[0]!r}")


def serialize(value: Value) -> bytes:
    if isinstance(value, dict):
        return b"<<" + b"".join(key + _spaced(item) for key, item in value.items()) + b">>"
    if isinstance(value, list):
        return b"[" + b" ".join(serialize(item) for item in value) + b"]"
    if isinstance(value, Ref):
        return b"%d 0 R" % value.number
    if isinstance(value, Name):
        return bytes(value)
    return value.text


def _spaced(value: Value) -> bytes:
    text = serialize(value)
    return text if text[:1] in (b"/", b"<", b"[", b"(") else b" " + text


def _references(value: Value) -> Iterator[int]:
    if isinstance(value, Ref):
        yield value.number
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def text_string(text: str) -> Raw:
    return Raw(b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">")


# --- reading --------------------------------------------------------------------------------

_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_OBJECT_HEADER = re.compile(rb"(\d+)\s+0\s+obj\b")
_SUBSECTION = re.compile(rb"[\r\n ]*(\d+)[ \t]+(\d+)[ \t]*\r?\n")
_STREAM = re.compile(rb">>\s*stream\r?\n")


@dataclass
class _Object:
    head: bytes  # the value, or a stream's dictionary (where references are)
    tail: bytes  # b"" or everything from "stream" on, kept byte for byte


class Source:
    """One PDF as LibreOffice writes it: its objects, its pages in order, its structure tree."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        match = _STARTXREF.search(data[-64:])
        if match is None:
            raise Unsupported("no startxref")
        xref = int(match[1])
        if not data.startswith(b"xref", xref):
            raise Unsupported("cross-reference stream")
        self.offsets, trailer_at = _xref(data, xref)
        trailer = parse(data[trailer_at + 7 : data.rindex(b"startxref")])
        if not isinstance(trailer, dict) or Name(b"/Prev") in trailer or Name(b"/Encrypt") in trailer:
            raise Unsupported("incremental update or encryption")
        self.header = data[: data.index(b"\n", data.index(b"\n") + 1) + 1]  # %PDF-1.x and the binary comment
        self._ends = _ends(self.offsets, xref)
        self._cache: dict[int, _Object] = {}
        self._pieces: dict[int, tuple[list[bytes], list[int], bytes]] = {}
        self._references: dict[int, list[int]] = {}
        self._kid_pages: list[int | None] | None = None
        self._starts: list[tuple[int, int]] | None = None  # (offset, number) in file order, once needed
        self.root_number = _ref(trailer.get(Name(b"/Root")))
        self.info_number = _ref(trailer[Name(b"/Info")]) if Name(b"/Info") in trailer else None
        self.root = self.value(self.root_number)
        self.info = self.value(self.info_number) if self.info_number is not None else {}
        if not isinstance(self.root, dict) or not isinstance(self.info, dict):
            raise Unsupported("catalog")
        for key in (b"/Outlines", b"/AcroForm", b"/Names", b"/Threads", b"/Metadata"):
            if Name(key) in self.root:
                raise Unsupported(f"catalog {key.decode()}")
        self.pages_root = _ref(self.root[Name(b"/Pages")])
        self.pages: list[int] = []
        self._walk_pages(self.pages_root, set())
        self.page_index = {number: index for index, number in enumerate(self.pages)}
        self._structure()

    def object(self, number: int) -> _Object:
        found = self._cache.get(number)
        if found is None:
            if number not in self.offsets:
                raise Unsupported(f"object {number} missing")
            start = self.offsets[number]
            body = self.data[start : self._ends[number]]
            header = _OBJECT_HEADER.match(body)
            close = body.rfind(b"endobj")
            if header is None or int(header[1]) != number or close < 0:
                raise Unsupported(f"object {number}")
            body = body[header.end() : close]
            stream = _STREAM.search(body)
            if stream is None:
                found = _Object(body.strip(), b"")
            else:
                found = _Object(body[: stream.start() + 2].strip(), b"\n" + body[stream.start() + 2 :].lstrip())
            self._cache[number] = found
        return found

    def value(self, number: int) -> Value:
        return parse(self.object(number).head)

    def references(self, number: int) -> list[int]:
        """The objects an object refers to (in its dictionary, not its stream)."""
        found = self._references.get(number)
        if found is None:
            start = self.offsets.get(number)
            if start is None:
                raise Unsupported(f"object {number} missing")
            end = self._ends[number]
            stream = _STREAM.search(self.data, start, end)
            head = self.data[start : stream.start() if stream else end]
            found = self._references[number] = [int(value) for value in _REFERENCE.findall(head) if value]
        return found

    def raw(self, number: int) -> bytes:
        """The object as written, from its number to its ``endobj``."""
        start, end = self.offsets[number], self._ends[number]
        if self.data.endswith(b"endobj\n", start, end):  # as LibreOffice writes every object
            return self.data[start:end]
        end = self.data.rfind(b"endobj", start, end)
        if end < 0:
            raise Unsupported(f"object {number}")
        return self.data[start : end + len(b"endobj")] + b"\n"

    def containing(self, positions: Iterable[int]) -> list[int]:
        """The numbers of the objects in which these byte positions lie, in order, once each."""
        if self._starts is None:
            self._starts = sorted((offset, number) for number, offset in self.offsets.items())
        starts = self._starts
        found: dict[int, None] = {}
        for position in sorted(positions):
            index = bisect.bisect_right(starts, (position, math.inf)) - 1
            if index >= 0 and position < self._ends[starts[index][1]]:
                found[starts[index][1]] = None
        return list(found)

    def pieces(self, number: int) -> tuple[list[bytes], list[int], bytes]:
        """An object's dictionary or value cut around its references (text, number, text, …)
        and its stream: copied many times (once per part, once for the whole), split once."""
        found = self._pieces.get(number)
        if found is None:
            obj = self.object(number)
            texts, numbers, position = [], [], 0
            for match in _REFERENCE.finditer(obj.head):
                if match[1] is not None:
                    texts.append(obj.head[position : match.start()])
                    numbers.append(int(match[1]))
                    position = match.end()
            texts.append(obj.head[position:])
            found = self._pieces[number] = (texts, numbers, obj.tail)
        return found

    def read_all(self) -> None:
        """Every object read and its references found (both kept), as copying all of them with
        their numbers shifted needs: done ahead, while there is time."""
        for number in self.offsets:
            self.object(number)
            self.references(number)

    def _walk_pages(self, number: int, seen: set[int]) -> None:
        if number in seen:
            raise Unsupported("page tree loop")
        seen.add(number)
        node = self.value(number)
        if not isinstance(node, dict):
            raise Unsupported("page tree")
        if node.get(Name(b"/Type")) == Name(b"/Page"):
            self.pages.append(number)
            return
        for kid in node.get(Name(b"/Kids"), []):
            self._walk_pages(_ref(kid), seen)

    def _structure(self) -> None:
        """The structure tree: its one Document element and that element's children (in
        order), and the parent tree's entries by key."""
        self.struct_root: int | None = None
        self.document: int | None = None
        self.kids: list[Value] = []
        self.parent_tree: dict[int, bytes] = {}
        self.parent_tree_number: int | None = None
        self.parent_tree_flat = True
        reference = self.root.get(Name(b"/StructTreeRoot"))
        if reference is None:
            return
        self.struct_root = _ref(reference)
        root = self.value(self.struct_root)
        if not isinstance(root, dict):
            raise Unsupported("structure tree")
        self.role_map = root.get(Name(b"/RoleMap"))
        kids = root.get(Name(b"/K"))
        kids = kids if isinstance(kids, list) else [kids]
        if len(kids) != 1:
            raise Unsupported("structure tree root with other than one element")
        self.document = _ref(kids[0])
        document = self.value(self.document)
        if not isinstance(document, dict):
            raise Unsupported("structure element")
        self.document_type = document.get(Name(b"/S"), Name(b"/Document"))
        inner = document.get(Name(b"/K"), [])
        self.kids = inner if isinstance(inner, list) else [inner]
        if Name(b"/ParentTree") in root:
            self.parent_tree_number = _ref(root[Name(b"/ParentTree")])
            self._read_numbers(self.parent_tree_number, set())

    def _read_numbers(self, number: int, seen: set[int]) -> None:
        """The parent tree's entries, kept as written (thousands of references: read as a
        value only for the keys a part needs, ``parent_value``)."""
        if number in seen:
            raise Unsupported("number tree loop")
        seen.add(number)
        head = self.object(number).head
        if b"/Kids" in head:
            self.parent_tree_flat = False
            node = parse(head)
            for kid in node.get(Name(b"/Kids"), []) if isinstance(node, dict) else []:
                self._read_numbers(_ref(kid), seen)
        start = head.find(b"/Nums")
        if start < 0:
            return
        body = head[head.index(b"[", start) + 1 :]
        for key, value in _NUMBER_ENTRY.findall(body):
            self.parent_tree[int(key)] = value

    def parent_value(self, key: int) -> Value:
        return parse(self.parent_tree[key])

    def kid_pages(self) -> list[int | None]:
        """The page (index) each top-level structure element starts on (its /Pg)."""
        if self._kid_pages is None:
            found: list[int | None] = []
            for kid in self.kids:
                page = _PAGE_OF.search(self.object(kid.number).head) if isinstance(kid, Ref) else None
                found.append(self.page_index.get(int(page[1])) if page else None)
            self._kid_pages = found
        return self._kid_pages

    def markers(self) -> dict[int, int]:
        """Part index → the page (index) where it begins, from the named destinations."""
        reference = self.root.get(Name(b"/Dests"))
        if reference is None:
            return {}
        dests = self.value(_ref(reference)) if isinstance(reference, Ref) else reference
        if not isinstance(dests, dict):
            raise Unsupported("destinations")
        found: dict[int, int] = {}
        for key, target in dests.items():
            match = re.search(rb"rgpart(\d+)$", bytes(key))
            target = self.value(target.number) if isinstance(target, Ref) else target
            if isinstance(target, dict):
                target = target.get(Name(b"/D"))
            if match and isinstance(target, list) and target and isinstance(target[0], Ref):
                page = self.page_index.get(target[0].number)
                if page is not None:
                    found[int(match[1])] = page
        return found

    def fonts_used(self, page: int) -> set[bytes]:
        """The font resource names a page's content streams select (``/F1 12 Tf``)."""
        dictionary = self.value(self.pages[page])
        contents = dictionary.get(Name(b"/Contents")) if isinstance(dictionary, dict) else None
        streams = contents if isinstance(contents, list) else [contents] if contents is not None else []
        names: set[bytes] = set()
        for stream in streams:
            names.update(_FONT_SELECT.findall(self.stream_data(_ref(stream))))
        return names

    def stream_data(self, number: int) -> bytes:
        obj = self.object(number)
        head = parse(obj.head)
        if not isinstance(head, dict) or not obj.tail:
            raise Unsupported(f"object {number} is no stream")
        length = head.get(Name(b"/Length"))
        size = int(self.value(length.number).text) if isinstance(length, Ref) else int(length.text)  # type: ignore[union-attr]
        start = obj.tail.index(b"stream") + len(b"stream")
        start += 2 if obj.tail[start : start + 2] == b"\r\n" else 1
        raw = obj.tail[start : start + size]
        filters = head.get(Name(b"/Filter"))
        if filters is None:
            return raw
        if filters == Name(b"/FlateDecode") or filters == [Name(b"/FlateDecode")]:
            return zlib.decompress(raw)
        raise Unsupported(f"object {number}: filter")


_NUMBER_ENTRY = re.compile(rb"(\d+)[\x00\t\n\x0c\r ]*(\[[^\]]*\]|\d+[\x00\t\n\x0c\r ]+0[\x00\t\n\x0c\r ]+R)")
_PAGE_OF = re.compile(rb"/Pg[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+0[\x00\t\n\x0c\r ]+R")
_FONT_SELECT = re.compile(rb"(/[^\x00\t\n\x0c\r ()<>\[\]{}/%]+)[\x00\t\n\x0c\r ]+[-+\d.]+[\x00\t\n\x0c\r ]+Tf\b")


def _ref(value: object) -> int:
    if not isinstance(value, Ref):
        raise Unsupported("direct object where a reference was expected")
    return value.number


def _xref(data: bytes, xref: int) -> tuple[dict[int, int], int]:
    """Object number → offset, from the classic table at ``xref``; and where the trailer is."""
    offsets: dict[int, int] = {}
    position = xref + 4
    while True:
        match = _SUBSECTION.match(data, position)
        if match is None:
            break
        first, count = int(match[1]), int(match[2])
        position = match.end()
        block = data[position : position + 20 * count]  # entries of 20 bytes: offset, generation, n/f
        offsets.update({first + index: int(block[at : at + 10])
                        for index, at in enumerate(range(0, len(block), 20)) if block[at + 17 : at + 18] == b"n"})
        position += 20 * count
    while data[position : position + 1] in (b" ", b"\r", b"\n"):
        position += 1
    if not data.startswith(b"trailer", position):
        raise Unsupported("xref table")
    return offsets, position


def _ends(offsets: dict[int, int], xref: int) -> dict[int, int]:
    """Where each object ends: where the next one in the file starts (the last, at the table)."""
    order = sorted(offsets, key=offsets.__getitem__)
    return dict(zip(order, [*(offsets[number] for number in order[1:]), xref], strict=True))


# --- writing --------------------------------------------------------------------------------


@dataclass
class Part:
    """Pages ``first`` … ``first + count - 1`` of ``source``, with a bookmark when ``title``."""

    source: Source
    first: int
    count: int
    title: str | None = None

    @property
    def pages(self) -> range:
        return range(self.first, self.first + self.count)


@dataclass
class _Writer:
    objects: dict[int, bytes] = field(default_factory=dict)  # number → the whole object
    placed: dict[int, int] = field(default_factory=dict)  # number → its offset, once finished
    table: int = 0  # where the cross-reference table starts, once finished
    top: int = 0  # the highest number given out
    numbers: dict[tuple[int, int], int] = field(default_factory=dict)  # (source id, number) → new
    pending: list[tuple[Source, int]] = field(default_factory=list)

    def reserve(self) -> int:
        self.top += 1
        return self.top

    def put(self, number: int, head: bytes, tail: bytes = b"") -> None:
        self.objects[number] = b"%d 0 obj\n%s%s\nendobj\n" % (number, head, tail)

    def number(self, source: Source, old: int) -> int:
        """The new number of ``source``'s object ``old``, which is then copied."""
        key = (id(source), old)
        if key not in self.numbers:
            self.numbers[key] = self.reserve()
            self.pending.append((source, old))
        return self.numbers[key]

    def alias(self, source: Source, old: int, new: int) -> None:
        """``source``'s object ``old`` is replaced by the new object ``new`` (not copied)."""
        self.numbers[(id(source), old)] = new

    def renumbered(self, source: Source, value: Value) -> Value:
        if isinstance(value, Ref):
            return Ref(self.number(source, value.number))
        if isinstance(value, dict):
            return {key: self.renumbered(source, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.renumbered(source, item) for item in value]
        return value

    def copy_pending(self, forbidden: dict[int, set[int]]) -> None:
        """Copy every object reached so far and what it reaches, references renumbered.
        Reaching an object of ``forbidden`` (another part's page, a replaced tree) is an error."""
        while self.pending:
            source, old = self.pending.pop()
            if old in forbidden.get(id(source), ()):
                raise Unsupported(f"object {old} refers outside its part")
            texts, numbers, tail = source.pieces(old)
            head = [texts[0]]
            for number, text in zip(numbers, texts[1:], strict=True):
                head.append(b"%d 0 R" % self.number(source, number))
                head.append(text)
            self.put(self.numbers[(id(source), old)], b"".join(head), tail)

    def finish(self, header: bytes, root: int, info: int) -> bytes:
        """The file: the objects in number order, a cross-reference table with a subsection for
        each run of consecutive numbers, a file identifier made from the bytes."""
        parts, position = [header], len(header)
        table = [b"xref\n0 1\n0000000000 65535 f \n"]
        run: list[bytes] = []
        first = previous = 0
        for number in sorted(self.objects):
            if number != previous + 1 and run:
                table += [b"%d %d\n" % (first, len(run)), *run]
                run = []
            if not run:
                first = number
            run.append(b"%010d 00000 n \n" % position)
            self.placed[number] = position
            body = self.objects[number]
            parts.append(body)
            position += len(body)
            previous = number
        if run:
            table += [b"%d %d\n" % (first, len(run)), *run]
        self.table = position
        placeholder = b"0" * 32
        trailer = b"trailer\n<</Size %d/Root %d 0 R/Info %d 0 R/ID[<%s><%s>]>>\nstartxref\n%d\n%%%%EOF\n" % (
            max(self.objects) + 1, root, info, placeholder, placeholder, position)
        data = b"".join(parts) + b"".join(table) + trailer
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest().upper().encode()
        return data.replace(b"<" + placeholder + b">", b"<" + digest + b">")


def cut(source: Source, first: int, count: int, title: str, when: datetime.datetime) -> bytes:
    """Pages ``first`` … ``first + count - 1`` of ``source`` as a PDF of their own: the objects
    they use, under their own numbers and byte for byte, and new versions of the few that
    describe the whole (catalog, page tree, structure tree root and Document element, parent
    tree, resources naming only the fonts these pages select, document information)."""
    if first < 0 or count < 1 or first + count > len(source.pages):
        raise Unsupported("page range")
    pages = source.pages[first : first + count]
    writer = _Writer(top=max(source.offsets))
    replaced: dict[int, Value] = {}
    catalog = {key: value for key, value in source.root.items() if key != Name(b"/Dests")}
    catalog[Name(b"/OpenAction")] = [Ref(pages[0]), Name(b"/XYZ"), Raw(b"null"), Raw(b"null"), Raw(b"0")]
    replaced[source.root_number] = catalog
    tree = source.value(source.pages_root)
    if not isinstance(tree, dict):
        raise Unsupported("page tree")
    replaced[source.pages_root] = {**tree, Name(b"/Kids"): [Ref(page) for page in pages],
                                   Name(b"/Count"): Raw(b"%d" % count)}
    _replace_resources(source, range(first, first + count), replaced)
    if source.struct_root is not None:
        if source.parent_tree_number is None or source.parent_tree_flat is False:
            raise Unsupported("parent tree")
        document = source.value(source.document)  # type: ignore[arg-type]
        kids = [kid for kid, page in zip(source.kids, source.kid_pages(), strict=True)
                if page is not None and first <= page < first + count]
        replaced[source.document] = {**document, Name(b"/Pg"): Ref(pages[0]), Name(b"/K"): kids}  # type: ignore[index, dict-item]
        keys = set()
        for page in pages:
            value = source.value(page)
            key = value.get(Name(b"/StructParents")) if isinstance(value, dict) else None
            if isinstance(value, dict) and Name(b"/Annots") in value:
                raise Unsupported("page with annotations")
            if isinstance(key, Raw):
                keys.add(int(key.text))
        numbers: list[Value] = []
        for key in sorted(keys & set(source.parent_tree)):
            numbers += [Raw(b"%d" % key), source.parent_value(key)]
        replaced[source.parent_tree_number] = {Name(b"/Nums"): numbers}
    info = source.info_number if source.info_number is not None else writer.reserve()
    replaced[info] = _info(source.info, title, when)
    other_pages = set(source.pages) - set(pages)
    queue = [source.root_number, info]
    seen = set(queue)
    while queue:
        number = queue.pop()
        if number in replaced:
            writer.put(number, serialize(replaced[number]))
            references = _references(replaced[number])
        else:
            writer.objects[number] = source.raw(number)
            references = iter(source.references(number))
        for reference in references:
            if reference in other_pages:
                raise Unsupported(f"object {number} refers to a page outside its part")
            if reference not in seen:
                seen.add(reference)
                queue.append(reference)
    return writer.finish(source.header, source.root_number, info)


def _concatenated(groups: list[list[Part]], title: str, when: datetime.datetime) -> bytes:
    """Whole documents one after the other: each one's objects under their numbers plus an
    offset (their references shifted alike, by one pass over each dictionary), its pages under a
    new page tree, its Document element under a new structure tree root, and new catalog,
    parent tree (keys shifted), bookmarks and document information. The first document's
    objects keep their numbers, copied as they are (the new catalog, page tree, structure tree
    root, parent tree and document information take its own ones' numbers)."""
    first = groups[0][0].source
    tagged = all(group[0].source.struct_root is not None and group[0].source.parent_tree_flat for group in groups)
    writer = _Writer(top=max(first.offsets))
    catalog, pages_node = first.root_number, first.pages_root
    info = first.info_number if first.info_number is not None else writer.reserve()
    struct_root, parent_tree, document = (first.struct_root, first.parent_tree_number, writer.reserve()) if tagged \
        else (None, None, None)
    page_numbers: list[int] = []
    documents: list[Value] = []
    numbers: list[Value] = []
    outline: list[tuple[str, int]] = []
    key_base = 0
    for group in groups:
        source = group[0].source
        titles = {part.first: part.title for part in group if part.title is not None}
        offset = 0 if source is first else writer.top
        alias = {source.pages_root: pages_node}
        if tagged:
            alias[source.struct_root] = struct_root  # type: ignore[index]
        skipped = {source.root_number, source.pages_root, source.info_number, source.struct_root,
                   source.parent_tree_number, *(_ref_number(source.root.get(Name(key))) for key in (b"/Dests",))}

        def shifted(match: re.Match, alias: dict = alias, offset: int = offset) -> bytes:
            if match[1] is None:
                return match[0]
            number = int(match[1])
            return b"%d 0 R" % alias.get(number, number + offset)

        pages = set(source.pages)
        for number in source.offsets:
            if number in skipped or number in pages:
                continue
            if tagged and number == source.document:  # each document's element becomes a part of the new one
                element = source.value(number)
                if not isinstance(element, dict):
                    raise Unsupported("structure element")
                element = _shift(element, alias, offset)
                element[Name(b"/S")], element[Name(b"/P")] = Name(b"/Part"), Ref(document)  # type: ignore[index, arg-type]
                writer.put(number + offset, serialize(element))
                continue
            if source is first:  # references stay as they are
                writer.objects[number] = source.raw(number)
                continue
            obj = source.object(number)
            head = _REFERENCE.sub(shifted, obj.head) if source.references(number) else obj.head
            writer.put(number + offset, head, obj.tail)
        for index, number in enumerate(source.pages):
            page = source.value(number)
            if not isinstance(page, dict) or Name(b"/Annots") in page:
                raise Unsupported("page with annotations")
            key = page.get(Name(b"/StructParents"))
            page = {name: value for name, value in page.items()
                    if name not in (Name(b"/Parent"), Name(b"/StructParents"))}
            inherited = source.value(source.pages_root)
            for name in (b"/Resources", b"/MediaBox", b"/CropBox", b"/Rotate"):
                if Name(name) not in page and isinstance(inherited, dict) and Name(name) in inherited:
                    page[Name(name)] = inherited[Name(name)]
            page = _shift(page, alias, offset)
            page[Name(b"/Parent")] = Ref(pages_node)
            if tagged and isinstance(key, Raw):
                page[Name(b"/StructParents")] = Raw(b"%d" % (int(key.text) + key_base))
            writer.put(number + offset, serialize(page))
            page_numbers.append(number + offset)
            if index in titles:
                outline.append((titles[index], number + offset))
        writer.top = max(writer.top, offset + max(source.offsets))
        if tagged:
            documents.append(Ref(source.document + offset))  # type: ignore[operator]
            for key in sorted(source.parent_tree):
                value = source.parent_tree[key] if source is first else _REFERENCE.sub(shifted, source.parent_tree[key])
                numbers += [Raw(b"%d" % (key + key_base)), Raw(value)]
            key_base += max(source.parent_tree, default=-1) + 1
    root: dict = {Name(b"/Type"): Name(b"/Catalog"), Name(b"/Pages"): Ref(pages_node)}
    if outline:
        root[Name(b"/Outlines")] = Ref(_write_outline(writer, outline))
        root[Name(b"/PageMode")] = Name(b"/UseOutlines")
    root[Name(b"/OpenAction")] = [Ref(page_numbers[0]), Name(b"/XYZ"), Raw(b"null"), Raw(b"null"), Raw(b"0")]
    for key in (b"/ViewerPreferences", b"/Lang"):
        if Name(key) in first.root and not isinstance(first.root[Name(key)], Ref):
            root[Name(key)] = first.root[Name(key)]
    if tagged:
        assert struct_root is not None and parent_tree is not None
        root[Name(b"/StructTreeRoot")] = Ref(struct_root)
        root[Name(b"/MarkInfo")] = {Name(b"/Marked"): Raw(b"true")}
        tree: dict = {Name(b"/Type"): Name(b"/StructTreeRoot"), Name(b"/ParentTree"): Ref(parent_tree),
                      Name(b"/ParentTreeNextKey"): Raw(b"%d" % key_base)}
        if isinstance(first.role_map, dict):
            tree[Name(b"/RoleMap")] = first.role_map
        tree[Name(b"/K")] = [Ref(document)]  # type: ignore[arg-type]
        writer.put(struct_root, serialize(tree))
        writer.put(document, serialize({  # type: ignore[arg-type]
            Name(b"/Type"): Name(b"/StructElem"), Name(b"/S"): Name(b"/Document"), Name(b"/P"): Ref(struct_root),
            Name(b"/Pg"): Ref(page_numbers[0]), Name(b"/K"): documents,
        }))
        writer.put(parent_tree, serialize({Name(b"/Nums"): numbers}))
    writer.put(catalog, serialize(root))
    writer.put(pages_node, serialize({
        Name(b"/Type"): Name(b"/Pages"), Name(b"/Kids"): [Ref(number) for number in page_numbers],
        Name(b"/Count"): Raw(b"%d" % len(page_numbers)),
    }))
    writer.put(info, serialize(_info(first.info, title, when)))
    return writer.finish(first.header, catalog, info)


def _ref_number(value: object) -> int | None:
    return value.number if isinstance(value, Ref) else None


def _shift(value: Value, alias: dict[int, int], offset: int) -> Value:
    if isinstance(value, Ref):
        return Ref(alias.get(value.number, value.number + offset))
    if isinstance(value, dict):
        return {key: _shift(item, alias, offset) for key, item in value.items()}
    if isinstance(value, list):
        return [_shift(item, alias, offset) for item in value]
    return value


def _replace_resources(source: Source, pages: range, replaced: dict[int, Value]) -> None:
    """The resource dictionary the pages share, naming only the fonts they select."""
    references, used = set(), set()
    tree = source.value(source.pages_root)
    for index in pages:
        page = source.value(source.pages[index])
        found = page.get(Name(b"/Resources")) if isinstance(page, dict) else None
        if found is None and isinstance(tree, dict):
            found = tree.get(Name(b"/Resources"))
        if not isinstance(found, Ref):
            raise Unsupported("direct resources")
        references.add(found.number)
        used |= source.fonts_used(index)
    if len(references) != 1:
        raise Unsupported("pages with different resources")
    number = references.pop()
    resources = source.value(number)
    if isinstance(tree, dict) and tree.get(Name(b"/Resources")) not in (None, Ref(number)):
        raise Unsupported("page tree resources")
    fonts = resources.get(Name(b"/Font")) if isinstance(resources, dict) else None
    if not isinstance(resources, dict) or not isinstance(fonts, Ref):
        raise Unsupported("resources")
    font_dict = source.value(fonts.number)
    if not isinstance(font_dict, dict) or not used <= {bytes(name) for name in font_dict}:
        raise Unsupported("fonts")
    replaced[fonts.number] = {name: item for name, item in font_dict.items() if bytes(name) in used}


def assemble(parts: list[Part], title: str, when: datetime.datetime) -> bytes:
    """One PDF of ``parts`` in order: their pages, the objects those use, the structure tree's
    elements that start on them, and a bookmark for each part with a title. All of one
    document in order is kept as it is (``_whole``); otherwise objects are renumbered."""
    if not parts:
        raise Unsupported("nothing to assemble")
    first = parts[0].source
    starts = list(itertools.accumulate((part.count for part in parts), initial=0))
    whole = all(part.source is first and part.first == start for part, start in zip(parts, starts, strict=False))
    if whole and starts[-1] == len(first.pages):
        return _whole(first, [(part.title, first.pages[part.first]) for part in parts if part.title is not None],
                      title, when)
    groups = [list(group) for _, group in itertools.groupby(parts, key=lambda part: id(part.source))]
    if len({id(group[0].source) for group in groups}) == len(groups) and all(
            [(part.first, part.count) for part in group]
            == list(zip(itertools.accumulate((part.count for part in group[:-1]), initial=0),
                        (part.count for part in group), strict=True))
            and sum(part.count for part in group) == len(group[0].source.pages) for group in groups):
        return _concatenated(groups, title, when)  # whole documents, one after another
    writer = _Writer()
    catalog, pages_node, info = writer.reserve(), writer.reserve(), writer.reserve()
    tagged = all(part.source.struct_root is not None for part in parts)
    struct_root = document = parent_tree = None
    if tagged:
        struct_root, document, parent_tree = writer.reserve(), writer.reserve(), writer.reserve()
    forbidden: dict[int, set[int]] = {}
    kept: dict[tuple[int, int], int] = {}  # (source id, page object) → its new number
    for part in parts:
        source = part.source
        if part.first < 0 or part.count < 1 or part.first + part.count > len(source.pages):
            raise Unsupported("page range")
        for index in part.pages:
            if (id(source), source.pages[index]) in kept:
                raise Unsupported("a page in two parts")
            kept[(id(source), source.pages[index])] = writer.reserve()
    for part in parts:
        source = part.source
        writer.alias(source, source.pages_root, pages_node)
        for index in part.pages:
            writer.alias(source, source.pages[index], kept[(id(source), source.pages[index])])
        if tagged:
            assert struct_root is not None and document is not None and parent_tree is not None
            writer.alias(source, source.struct_root, struct_root)  # type: ignore[arg-type]
            writer.alias(source, source.document, document)  # type: ignore[arg-type]
            if source.parent_tree_number is not None:
                writer.alias(source, source.parent_tree_number, parent_tree)
        forbidden[id(source)] = {page for page in source.pages if (id(source), page) not in kept}
    page_numbers: list[int] = []
    document_kids: list[Value] = []
    numbers: list[Value] = []
    outline: list[tuple[str, int]] = []
    next_key = 0
    for part in parts:
        source = part.source
        inherited = source.value(source.pages_root)
        for index in part.pages:
            old = source.pages[index]
            page = source.value(old)
            if not isinstance(page, dict) or Name(b"/Annots") in page:
                raise Unsupported("page with annotations")
            page = {key: item for key, item in page.items() if key != Name(b"/Parent")}
            for key in (b"/Resources", b"/MediaBox", b"/CropBox", b"/Rotate"):
                if Name(key) not in page and isinstance(inherited, dict) and Name(key) in inherited:
                    page[Name(key)] = inherited[Name(key)]
            old_key = page.pop(Name(b"/StructParents"), None)
            page = writer.renumbered(source, page)
            page[Name(b"/Parent")] = Ref(pages_node)
            if tagged and isinstance(old_key, Raw):
                page[Name(b"/StructParents")] = Raw(b"%d" % next_key)
                key = int(old_key.text)
                if key in source.parent_tree:
                    numbers += [Raw(b"%d" % next_key), writer.renumbered(source, source.parent_value(key))]
                next_key += 1
            number = kept[(id(source), old)]
            writer.put(number, serialize(page))
            page_numbers.append(number)
        if tagged:
            document_kids += [writer.renumbered(source, kid) for kid, page in zip(source.kids, source.kid_pages(),
                                                                                     strict=True)
                              if page in part.pages]
        if part.title is not None:
            outline.append((part.title, kept[(id(source), source.pages[part.first])]))
    writer.copy_pending(forbidden)
    first = parts[0].source
    root: dict = {Name(b"/Type"): Name(b"/Catalog"), Name(b"/Pages"): Ref(pages_node)}
    if outline:
        root[Name(b"/Outlines")] = Ref(_write_outline(writer, outline))
        root[Name(b"/PageMode")] = Name(b"/UseOutlines")
    root[Name(b"/OpenAction")] = [Ref(page_numbers[0]), Name(b"/XYZ"), Raw(b"null"), Raw(b"null"), Raw(b"0")]
    for key in (b"/ViewerPreferences", b"/Lang"):
        if Name(key) in first.root:
            root[Name(key)] = writer.renumbered(first, first.root[Name(key)])
    if tagged:
        assert struct_root is not None and document is not None and parent_tree is not None
        root[Name(b"/StructTreeRoot")] = Ref(struct_root)
        root[Name(b"/MarkInfo")] = {Name(b"/Marked"): Raw(b"true")}
        tree: dict = {Name(b"/Type"): Name(b"/StructTreeRoot"), Name(b"/ParentTree"): Ref(parent_tree)}
        if first.role_map is not None:
            tree[Name(b"/RoleMap")] = writer.renumbered(first, first.role_map)
        tree[Name(b"/K")] = [Ref(document)]
        writer.put(struct_root, serialize(tree))
        writer.put(document, serialize({
            Name(b"/Type"): Name(b"/StructElem"), Name(b"/S"): first.document_type, Name(b"/P"): Ref(struct_root),
            Name(b"/Pg"): Ref(page_numbers[0]), Name(b"/K"): document_kids,
        }))
        writer.put(parent_tree, serialize({Name(b"/Nums"): numbers}))
        writer.copy_pending(forbidden)
    writer.put(catalog, serialize(root))
    writer.put(pages_node, serialize({
        Name(b"/Type"): Name(b"/Pages"), Name(b"/Kids"): [Ref(number) for number in page_numbers],
        Name(b"/Count"): Raw(b"%d" % len(page_numbers)),
    }))
    writer.put(info, serialize(_info(first.info, title, when)))
    writer.copy_pending(forbidden)
    return writer.finish(first.header, catalog, info)


def _whole(source: Source, outline: list[tuple[str, int]], title: str, when: datetime.datetime) -> bytes:
    """All of ``source`` with a new catalog (bookmarks, no part markers) and document
    information: every other object is kept as it is, under its own number."""
    catalog = {key: value for key, value in source.root.items() if key != Name(b"/Dests")}
    dropped = {source.root.get(Name(b"/Dests"))} - {None}
    writer = _Writer(top=max(source.offsets))
    if outline:
        catalog[Name(b"/Outlines")] = Ref(_write_outline(writer, outline))
        catalog[Name(b"/PageMode")] = Name(b"/UseOutlines")
    info = source.info_number if source.info_number is not None else writer.reserve()
    for number in source.offsets:
        if number != source.root_number and number != info and Ref(number) not in dropped:
            writer.objects[number] = source.raw(number)
    writer.put(source.root_number, serialize(catalog))
    writer.put(info, serialize(_info(source.info, title, when)))
    return writer.finish(source.header, source.root_number, info)


def _write_outline(writer: _Writer, items: list[tuple[str, int]]) -> int:
    outlines = writer.reserve()
    numbers = [writer.reserve() for _ in items]
    for index, ((title, page), number) in enumerate(zip(items, numbers, strict=True)):
        item: dict = {Name(b"/Title"): text_string(title), Name(b"/Parent"): Ref(outlines)}
        if index > 0:
            item[Name(b"/Prev")] = Ref(numbers[index - 1])
        if index + 1 < len(numbers):
            item[Name(b"/Next")] = Ref(numbers[index + 1])
        item[Name(b"/Dest")] = [Ref(page), Name(b"/XYZ"), Raw(b"null"), Raw(b"null"), Raw(b"0")]
        writer.put(number, serialize(item))
    writer.put(outlines, serialize({
        Name(b"/Type"): Name(b"/Outlines"), Name(b"/First"): Ref(numbers[0]), Name(b"/Last"): Ref(numbers[-1]),
        Name(b"/Count"): Raw(b"%d" % len(numbers)),
    }))
    return outlines


def _info(original: dict, title: str, when: datetime.datetime) -> dict:
    """LibreOffice's document information with the given title, and ``when`` as the date (in
    LibreOffice's own UTC form, as ``bundle.normalize_pdf`` stamps it)."""
    info = {key: value for key, value in original.items() if key not in (Name(b"/Title"), Name(b"/CreationDate"),
                                                                         Name(b"/ModDate"))}
    return {Name(b"/Title"): text_string(title), **info,
            Name(b"/CreationDate"): Raw(when.strftime("(D:%Y%m%d%H%M%SZ')").encode())}


# LibreOffice 7.4 writes each Type 1 font it embeds with /UniqueID 4100000 + n, n counting the
# fonts that process has embedded so far: the same document gives other bytes when converted
# second. The number is in the font's clear text and in its encrypted part (eexec).
_UNIQUE_ID = re.compile(rb"/UniqueID (\d+) def")
_LENGTH2 = re.compile(rb"/Length2\b")  # a Type 1 font program's dictionary (its stream is compressed)
_UNIQUE_BASE = 4_100_000
_EEXEC_KEY, _C1, _C2 = 55665, 52845, 22719


def canonical(source: Source, title: str | None = None, when: datetime.datetime | None = None) -> bytes:
    """``source`` with its fonts in the order of their names (``_font_order``), its Type 1
    fonts numbered 4100001, 4100002, … in that order and written the same way whatever they
    were (LibreOffice's compression, a direct /Length); with ``title`` and ``when``, its
    document information too. Every other object is kept as it is."""
    return _canonical(source, title, when)[0]


def canonical_source(source: Source) -> Source:
    """``Source(canonical(source))`` without reading the new bytes again: only the fonts and
    what refers to them differ, so what was read of ``source`` (pages, structure tree, objects)
    holds, and where each object now stands is known from writing it."""
    data, writer, changed = _canonical(source)
    if source.info_number is None:  # the new file names a document information it lacks
        return Source(data)
    copied = copy.copy(source)
    copied.data = data
    copied.offsets = writer.placed
    copied._ends = _ends(writer.placed, writer.table)
    copied._starts = None
    copied._cache = {number: obj for number, obj in source._cache.items() if number not in changed}
    copied._pieces = {number: pieces for number, pieces in source._pieces.items() if number not in changed}
    copied._references = {number: found for number, found in source._references.items() if number not in changed}
    return copied


def _canonical(source: Source, title: str | None = None,
               when: datetime.datetime | None = None) -> tuple[bytes, _Writer, set[int]]:
    """``canonical``'s bytes, the writer that placed its objects, and the numbers of the
    objects it changed."""
    moved, fonts = _font_order(source)
    rewritten = _referring(source, moved, fonts)
    replaced: dict[int, bytes] = {}
    dropped: set[int] = set()
    candidates = source.containing(match.start() for match in _LENGTH2.finditer(source.data))
    ordinal = 0
    for number in sorted(candidates, key=lambda number: moved.get(number, number)):
        head = source.object(number).head
        if b"/Length2" in head and b"/Length1" in head and b"/Length3" in head:
            ordinal += 1
            replaced[number], length = _renumbered_font(source, number, _UNIQUE_BASE + ordinal,
                                                        moved.get(number, number))
            if length is not None:
                dropped.add(length)
    writer = _Writer(top=max(source.offsets))
    info = source.info_number if source.info_number is not None else writer.reserve()
    for number in source.offsets:
        if number in dropped:
            continue
        if number in replaced:
            body = replaced[number]
        elif number in rewritten:
            body = _renumbered_object(source, number, moved)
        else:
            body = source.raw(number)
        writer.objects[moved.get(number, number)] = body
    if title is not None and when is not None:
        writer.put(info, serialize(_info(source.info, title, when)))
        dropped.add(info)
    changed = {*replaced, *dropped, *rewritten, *moved.values()}
    return writer.finish(source.header, source.root_number, info), writer, changed


_FONT = re.compile(rb"/Type[\x00\t\n\x0c\r ]*/Font\b")


def _font_order(source: Source) -> tuple[dict[int, int], set[int]]:
    """New numbers (old → new, only those that change) that put the objects of each font — its
    dictionary and what only it refers to: descriptor, font program, ToUnicode map, a Type 0
    font's descendant — in the order of the fonts' names (subset prefix included: AAAAAA+, …);
    and all the fonts' objects. LibreOffice names the fonts in the order the document uses
    them but writes them in the order in which they lie in its memory, which differs from one
    LibreOffice to the next (the same document, other bytes). The objects of the fonts take
    the same numbers as before, as a whole; where two fonts have the same name, nothing moves."""
    found = source.containing(match.start() for match in _FONT.finditer(source.data))
    names: dict[int, bytes] = {}
    for number in found:
        value = parse(source.object(number).head)
        if isinstance(value, dict) and value.get(Name(b"/Type")) == Name(b"/Font"):
            base = value.get(Name(b"/BaseFont"))
            names[number] = bytes(base) if isinstance(base, Name) else b""
    reached = {number: _reached(source, number) for number in names}
    objects = {other for closure in reached.values() for other in closure}
    descendants = {other for number, closure in reached.items() for other in closure if other != number}
    fonts = sorted((number for number in names if number not in descendants), key=names.__getitem__)
    if len(fonts) < 2 or len({names[number] for number in fonts}) < len(fonts):
        return {}, objects
    owners = collections.Counter(other for number in fonts for other in reached[number])
    order = [other for number in fonts for other in sorted(reached[number]) if owners[other] == 1]
    return {old: new for old, new in zip(order, sorted(order), strict=True) if old != new}, objects


def _reached(source: Source, number: int) -> set[int]:
    """The objects ``number`` refers to, and those they refer to, and so on; itself included."""
    seen, todo = {number}, [number]
    while todo:
        for other in source.references(todo.pop()):
            if other not in seen and other in source.offsets:
                seen.add(other)
                todo.append(other)
    return seen


# Where fonts are referred to: the /Font dictionary of resources, by reference or inline.
_FONT_RESOURCES = re.compile(rb"/Font[\x00\t\n\x0c\r ]*(?:(\d+)[\x00\t\n\x0c\r ]+0[\x00\t\n\x0c\r ]+R|<<)")


def _referring(source: Source, moved: dict[int, int], fonts: set[int]) -> set[int]:
    """The objects that move, and those whose dictionary refers to one that does: a font's
    objects are referred to by the font's other objects and, for the font itself, by the /Font
    dictionaries of resources (looked for by name: a search for every reference is slower)."""
    if not moved:
        return set()
    candidates = set(fonts)
    inline = []
    for match in _FONT_RESOURCES.finditer(source.data):
        if match[1] is not None:
            candidates.add(int(match[1]))
        else:
            inline.append(match.start())
    candidates.update(source.containing(inline))
    return {*moved, *(number for number in candidates
                      if number in source.offsets and not moved.keys().isdisjoint(source.references(number)))}


def _renumbered_object(source: Source, number: int, moved: dict[int, int]) -> bytes:
    """The object as written, under its new number and with its references renumbered: byte
    for byte what it would be had LibreOffice written the fonts in their order."""
    raw = source.raw(number)
    header = _OBJECT_HEADER.match(raw)
    if header is None:
        raise Unsupported(f"object {number}")
    stream = _STREAM.search(raw, header.end())
    end = stream.start() if stream else len(raw)

    def renumbered(match: re.Match) -> bytes:
        return b"%d 0 R" % moved.get(int(match[1]), int(match[1])) if match[1] else match[0]

    head = _REFERENCE.sub(renumbered, raw[header.end() : end])
    return b"%d 0 obj" % moved.get(number, number) + head + raw[end:]


def _renumbered_font(source: Source, number: int, unique: int, new: int) -> tuple[bytes, int | None]:
    """The font object, as object ``new``, with its /UniqueID ``unique``; and its old /Length
    object if indirect."""
    head = parse(source.object(number).head)
    if not isinstance(head, dict):
        raise Unsupported(f"font {number}")
    program = source.stream_data(number)
    clear, encrypted = _int(head, b"/Length1"), _int(head, b"/Length2")
    found = _UNIQUE_ID.search(program, 0, clear)
    digits = b"%d" % unique
    if found is not None and found[1] != digits:
        if len(found[1]) != len(digits):
            raise Unsupported(f"font {number}: /UniqueID {found[1].decode()}")
        program = program[: found.start(1)] + digits + program[found.end(1) :]
        part = program[clear : clear + encrypted]
        program = program[:clear] + _reencrypted(part, found[1], digits) + program[clear + encrypted :]
    stored = zlib.compress(program, 6)  # as LibreOffice compresses
    length = head.get(Name(b"/Length"))
    keep = {key: value for key, value in head.items() if key not in (Name(b"/Length"), Name(b"/Filter"))}
    dictionary = {Name(b"/Length"): Raw(b"%d" % len(stored)), Name(b"/Filter"): Name(b"/FlateDecode"), **keep}
    body = b"%d 0 obj\n%s\nstream\n%s\nendstream\nendobj\n" % (new, serialize(dictionary), stored)
    return body, length.number if isinstance(length, Ref) else None


def _int(head: dict, key: bytes) -> int:
    value = head.get(Name(key))
    if not isinstance(value, Raw) or not value.text.isdigit():
        raise Unsupported(f"font {key.decode()}")
    return int(value.text)


def _reencrypted(part: bytes, old: bytes, new: bytes) -> bytes:
    """The eexec-encrypted ``part`` with its private dictionary's /UniqueID ``old`` made ``new``.
    Everything before the number is unchanged; from it on, each byte is decrypted with the old
    key stream and encrypted again with the new one."""
    key, decrypted = _EEXEC_KEY, bytearray()
    marker = b"/UniqueID " + old + b" def"
    position = -1
    for index, byte in enumerate(part[:4096]):  # the private dictionary opens the encrypted part
        decrypted.append(byte ^ (key >> 8))
        key = ((byte + key) * _C1 + _C2) & 0xFFFF
        if decrypted.endswith(marker):
            position = index + 1 - len(marker) + len(b"/UniqueID ")
            break
    if position < 0:
        raise Unsupported("no /UniqueID in the private dictionary")
    step = key_steps()
    old_key = new_key = _EEXEC_KEY
    for byte in part[:position]:
        old_key = new_key = step[byte + old_key]
    out = list(part[:position])
    for index, digit in enumerate(new):  # the new number, encrypted with the new key stream
        byte = part[position + index]
        cipher = digit ^ (new_key >> 8)
        out.append(cipher)
        old_key, new_key = step[byte + old_key], step[cipher + new_key]
    append = out.append
    for byte in part[position + len(new) :]:  # the rest: decrypted with the old stream, encrypted with the new
        cipher = byte ^ ((old_key ^ new_key) >> 8)
        append(cipher)
        old_key = step[byte + old_key]
        new_key = step[cipher + new_key]
    return bytes(out)


@functools.cache
def key_steps() -> list[int]:
    """The eexec key after a byte: ``step[byte + key]`` (one lookup instead of a multiplication)."""
    return [(value * _C1 + _C2) & 0xFFFF for value in range(0x10000 + 0x100)]


def split(source: Source, count: int) -> list[tuple[int, int]]:
    """(first page, number of pages) of each of ``count`` parts, from the part markers."""
    starts = source.markers()
    if sorted(starts) != list(range(count)):
        raise Unsupported(f"part markers: {sorted(starts)} for {count} parts")
    firsts = [starts[index] for index in range(count)]
    if firsts[0] != 0 or any(a >= b for a, b in itertools.pairwise(firsts)):
        raise Unsupported("part markers out of order")
    ends = [*firsts[1:], len(source.pages)]
    return [(first, end - first) for first, end in zip(firsts, ends, strict=True)]
