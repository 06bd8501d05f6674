"""Submission bundles: per unit and year, the merged DOCX and PDF, a summary, a manifest, a zip.

Everything written here is reproducible: the same inputs give byte-identical files (fixed zip
timestamps, PDF dates and IDs from SOURCE_DATE_EPOCH or from the inputs) and every file is
written to a temporary name and renamed into place, so no half-written file is ever visible.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import datetime
import functools
import hashlib
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConvertError
from .package import write_bytes, write_package, zip_time

if TYPE_CHECKING:
    from docx.document import Document as DocxDocument
    from docx.section import Section
    from lxml.etree import _Element as Element

# python-docx, docxcompose and pypdf are imported where they are used: a build with nothing to
# redo needs this module's names and checksums only, and should not pay for loading them.

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_NAME_BYTES = 150  # leaves room for suffixes within every file system's 255-byte limit


@dataclass(frozen=True)
class SummaryRow:
    """One project in a unit's 汇总表."""

    name: str
    budget: str
    executed: str
    rate: str
    total: str
    grade: str
    warnings: int


SUMMARY_HEADERS = ("项目名称", "预算数（元）", "执行数（元）", "执行率", "总分", "等次", "警告数")


# --- names and atomic writes ----------------------------------------------------------------


def safe_filename(name: str, taken: set[str]) -> str:
    """A file name (no suffix) safe on Windows, macOS and Linux, distinct from ``taken``."""
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text).strip(" .")
    text = re.sub(r"\.{2,}", "_", text) or "项目"
    if text.split(".")[0].upper() in _RESERVED:
        text = f"_{text}"
    while len(text.encode("utf-8")) > MAX_NAME_BYTES:
        text = text[:-1]
    candidate, counter = text, 2
    while candidate.casefold() in {t.casefold() for t in taken}:
        candidate, counter = f"{text}_{counter}", counter + 1
    taken.add(candidate)
    return candidate


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- reproducible DOCX and PDF --------------------------------------------------------------


def write_normalized_docx(package: bytes, target: Path, when: datetime.datetime) -> None:
    """Write a DOCX package with fixed entry times and core-property dates: same input, same bytes."""
    with zipfile.ZipFile(io.BytesIO(package)) as old:
        entries = [(info.filename, old.read(info)) for info in old.infolist()]
    write_package(entries, target, when)


_PLACEHOLDER_ID = b"\x00" * 16


@functools.cache
def _reproducible_writer() -> type:
    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject

    class ReproduciblePdfWriter(PdfWriter):
        """pypdf draws random file IDs; ours is a placeholder, replaced by a hash of the content."""

        def generate_file_identifiers(self) -> None:
            identifier = ByteStringObject(_PLACEHOLDER_ID)
            self._ID = ArrayObject((identifier, identifier))

    return ReproduciblePdfWriter


def _pdf_date(when: datetime.datetime) -> str:
    return when.strftime("D:%Y%m%d%H%M%S+00'00'")


def _write_pdf(writer, target: Path, title: str, when: datetime.datetime) -> None:
    """Write with fixed dates and an ID derived from the bytes: same content, same file."""
    writer.metadata = None
    writer.add_metadata(
        {
            "/Title": title,
            "/Producer": "reportgen",
            "/Creator": "reportgen",
            "/CreationDate": _pdf_date(when),
            "/ModDate": _pdf_date(when),
        }
    )
    writer.generate_file_identifiers()  # a clone would otherwise keep LibreOffice's random ID
    buffer = io.BytesIO()
    writer.write(buffer)
    data = buffer.getvalue()
    placeholder = _PLACEHOLDER_ID.hex().encode()
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest().encode()
    write_bytes(target, data.replace(b"<" + placeholder + b">", b"<" + digest + b">"))


_CREATION_DATE = re.compile(rb"(/CreationDate\s*\(D:)\d{14}")
# The trailer's file ID and LibreOffice's own /DocChecksum, which also changes from run to run.
_RUN_IDS = re.compile(rb"/ID\s*\[\s*<[0-9A-Fa-f]{32}>\s*<[0-9A-Fa-f]{32}>\s*\]|/DocChecksum\s*/[0-9A-Fa-f]{32}")
_HEX32 = re.compile(rb"[0-9A-Fa-f]{32}")


def normalize_pdf(path: Path, title: str, when: datetime.datetime) -> None:
    """Replace LibreOffice's clock date, random file ID and checksum with reproducible ones.

    All are fixed-width in LibreOffice's output, so they are overwritten in place and every
    offset in the file stays valid: no parsing and rewriting of the whole PDF. Anything else
    (another producer's layout) is rewritten with pypdf.
    """
    data = path.read_bytes()
    digits = when.strftime("%Y%m%d%H%M%S").encode()
    stamped, dates = _CREATION_DATE.subn(lambda match: match[1] + digits, data)
    if dates != 1 or len(_RUN_IDS.findall(stamped)) != 2:
        _rewrite_pdf(path, data, title, when)
        return

    def with_ids(identifier: bytes) -> bytes:
        return _RUN_IDS.sub(lambda match: _HEX32.sub(identifier, match[0]), stamped)

    digest = hashlib.md5(with_ids(b"0" * 32), usedforsecurity=False).hexdigest().upper().encode()
    write_bytes(path, with_ids(digest))


@contextlib.contextmanager
def _reading_pdf(path: Path) -> Iterator[None]:
    """pypdf's errors while reading ``path`` as a ConvertError naming it."""
    from pypdf.errors import PyPdfError

    try:
        yield
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ConvertError(f"{path.name}：PDF 文件已损坏，无法读取（{type(exc).__name__}: {exc}）") from exc


def _rewrite_pdf(path: Path, data: bytes, title: str, when: datetime.datetime) -> None:
    from pypdf import PdfReader

    with _reading_pdf(path):
        writer = _reproducible_writer()(clone_from=PdfReader(io.BytesIO(data)))
    _write_pdf(writer, path, title, when)


def merge_pdfs(parts: list[tuple[str, Path]], target: Path, title: str, when: datetime.datetime) -> None:
    """One PDF of all parts in order, with one top-level bookmark per part."""
    from pypdf import PdfReader

    writer = _reproducible_writer()()
    for bookmark, path in parts:
        with _reading_pdf(path):
            writer.append(PdfReader(io.BytesIO(path.read_bytes())), outline_item=bookmark, import_outline=False)
    _write_pdf(writer, target, title, when)


@functools.cache
def _composer() -> type:
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docxcompose.composer import Composer

    class DeferredComposer(Composer):
        """docxcompose renumbers bookmarks and drawing ids over the whole document after every
        append, which is quadratic in the number of forms. Each pass renumbers everything from
        the start, so one pass before saving gives the same ids."""

        _RENUMBER = ("renumber_bookmarks", "renumber_docpr_ids", "renumber_nvpicpr_ids")

        def insert(self, index: int, doc, remove_property_fields: bool = True) -> None:
            # Dissolving custom-property fields reads docxcompose's own custom.xml template from
            # disk for every document; a document without custom properties has no such fields.
            if remove_property_fields:
                remove_property_fields = RT.CUSTOM_PROPERTIES in {r.reltype for r in doc.part.package.rels.values()}
            super().insert(index, doc, remove_property_fields)

        def renumber_bookmarks(self) -> None:
            pass

        def renumber_docpr_ids(self) -> None:
            pass

        def renumber_nvpicpr_ids(self) -> None:
            pass

        def save(self, filename) -> None:
            for name in self._RENUMBER:
                getattr(Composer, name)(self)
            super().save(filename)

    return DeferredComposer


_PAGE_SETUP = (
    "orientation", "page_width", "page_height", "left_margin", "right_margin", "top_margin",
    "bottom_margin", "gutter", "header_distance", "footer_distance",
)


def merge_docx(parts: list[Path], target: Path | None, when: datetime.datetime, marked: Path | None = None) -> None:
    """One DOCX of all parts in order (docxcompose), each in a section of its own that starts
    on a new page and keeps the part's page setup: docxcompose alone would give every part the
    first one's, and a landscape form after the portrait summary would lose its orientation.

    Each part also keeps its document defaults (the run and paragraph formatting its template
    declares once in styles.xml instead of on every run): a document has one set, so the merged
    one takes that of most parts, and the runs and paragraphs of the other parts get theirs back
    as direct formatting (see ``_keep_defaults``).

    Forms of one template share every file but their text: once docxcompose has taken the first
    of them as it was, the others are appended as they are, and those at the end as text, into
    the saved document (``_splice``): the same XML, without reading them into elements.

    ``marked``: the same document written there too, with a bookmark at the start of each part
    (``pdfpages.marker_name``), for LibreOffice to export as named destinations: where each part
    begins in the PDF of the whole (see ``pdfpages``). The markers print nothing.
    """
    from docx import Document as new_docx

    composer = _composer()(new_docx(str(parts[0])))
    body = composer.doc.element.body
    members = [(_Defaults.of(composer.doc), [child for child in body if child.tag != _w("sectPr")])]
    sentinel = body[-1]  # the body's own w:sectPr, which stays last
    verbatim: dict[str, _Defaults] = {}  # package parts → defaults, of parts docxcompose took as they were
    packages = [_Package.read(part) for part in parts[1:]]
    tail = _splice_start(packages, composer.doc.element)
    spliced: list[_Package] = []
    for index, package in enumerate(packages):
        known = verbatim.get(package.signature)
        if index >= tail and known is not None and _chosen(members, known, len(packages) - index) == known:
            spliced = packages[index:]
        end = sentinel.getprevious()
        section = _new_section(composer.doc)
        if sentinel.getprevious() is not end:  # a paragraph made to hold the break ends the part before
            members[-1][1].append(sentinel.getprevious())
        end = sentinel.getprevious()
        if spliced:
            for name in _PAGE_SETUP:
                setattr(section, name, getattr(package.section, name))
            break
        if package.plain and package.signature in verbatim:
            for element in package.body:
                sentinel.addprevious(element)
            defaults, last_section = verbatim[package.signature], package.section
            appended = package.body
        else:
            document = new_docx(str(package.path))
            composer.append(document)
            defaults, last_section = _Defaults.of(document), document.sections[-1]
            appended = list(end.itersiblings())[:-1]
            if package.plain and _same_elements(package.body, appended):
                verbatim[package.signature] = defaults
        members.append((defaults, appended))
        for name in _PAGE_SETUP:
            setattr(section, name, getattr(last_section, name))
    _keep_defaults(composer.doc, members, [verbatim[package.signature] for package in spliced])
    if marked is not None:
        for index, (_, elements) in enumerate(members):
            _mark(elements, index)
    buffer = io.BytesIO()
    composer.save(buffer)
    with zipfile.ZipFile(buffer) as saved:
        entries = [(info.filename, saved.read(info)) for info in saved.infolist()]
    if spliced:
        entries = [(name, _splice(data, spliced, len(members), marked is not None) if name == "word/document.xml"
                    else data) for name, data in entries]
    if marked is not None:  # read once by LibreOffice: not worth compressing
        write_package(entries, marked, when, compression=zipfile.ZIP_STORED)
        entries = [(name, _MARKERS.sub(b"", data) if name == "word/document.xml" else data) for name, data in entries]
    if target is not None:
        write_package(entries, target, when)


_OWN_PARTS = ("word/document.xml", "docProps/")  # what differs between forms of one template
# What makes docxcompose change a part's body beyond copying it: lists (numbering restarts),
# notes and comments (renumbered), anything that refers to a relationship (images, links, headers).
_NEEDS_COMPOSER = (
    ".//w:numPr|.//w:footnoteReference|.//w:endnoteReference|.//w:commentReference"
    "|.//@*[namespace-uri()='http://schemas.openxmlformats.org/officeDocument/2006/relationships']"
)
# What a body spliced in as text may not hold: besides the above, what the merge or saving renumbers
# (bookmarks, drawings), sections of its own, and elements a paragraph may hold paragraphs in or a
# paragraph's properties their own properties in (text boxes, tracked changes).
_NOT_AS_TEXT = re.compile(
    rb"<w:(?:numPr|footnoteReference|endnoteReference|commentReference|bookmarkStart|bookmarkEnd|sectPr"
    rb"|txbxContent|pPrChange|rPrChange|customXml|sdt)[ />]|<(?:wp|pic|v|o|mc|w14|wps):"
)
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_DECLARATION = re.compile(rb'\s(xmlns(?::[\w.-]+)?|[\w.-]+:Ignorable)="([^"]*)"')
_PARAGRAPH = re.compile(rb"<w:p(?=[ >/])[^>]*?(/?)>")


@dataclass
class _Package:
    """A part of a merge read as a zip: its document.xml, and what stands for every other file
    of the package (styles, numbering, relationships, media…); its body's elements and last
    section when asked for."""

    path: Path
    xml: bytes
    signature: str

    @classmethod
    def read(cls, path: Path) -> _Package:
        with zipfile.ZipFile(path) as package:
            # The zip's own checksum and size of each file stand for its bytes.
            signature = repr(sorted((info.filename, info.CRC, info.file_size) for info in package.infolist()
                                    if not info.filename.startswith(_OWN_PARTS)))
            return cls(path, package.read("word/document.xml"), signature)

    @functools.cached_property
    def _parsed(self) -> Element:
        from docx.oxml.parser import parse_xml

        return parse_xml(self.xml).find(_w("body"))

    @functools.cached_property
    def body(self) -> list[Element]:
        return [child for child in self._parsed if child.tag != _w("sectPr")]

    @functools.cached_property
    def section(self) -> Section:
        from docx.section import Section

        return Section(self._parsed.get_or_add_sectPr(), None)

    @functools.cached_property
    def plain(self) -> bool:
        """Nothing in the body that docxcompose would rewrite (``_NEEDS_COMPOSER``)."""
        needs_composer = _compiled(_NEEDS_COMPOSER)
        return not any(needs_composer(element) for element in self.body)

    @functools.cached_property
    def text(self) -> tuple[bytes, bytes, dict[bytes, bytes]] | None:
        """Its body's content and its last w:sectPr as written, and what its root declares (names
        of namespaces, mc:Ignorable); None if it cannot be spliced in as text (``_NOT_AS_TEXT``)."""
        root = re.search(rb"<w:document\b[^>]*>", self.xml)
        opening = re.search(rb"<w:body\b[^>]*>", self.xml)
        closing = self.xml.rfind(b"</w:body>")
        if opening is None or root is None or closing < 0:
            return None
        section = self.xml.rfind(b"<w:sectPr", opening.end(), closing)
        content = self.xml[opening.end() : section]
        declared = {**dict(_DECLARATION.findall(root[0])), **dict(_DECLARATION.findall(opening[0]))}
        relationships = [name.split(b":")[-1] for name, uri in declared.items() if uri == _RELATIONSHIPS.encode()]
        if (section < 0 or _NOT_AS_TEXT.search(content) or not content.endswith((b"</w:p>", b"</w:tbl>"))
                or any(re.search(rb"\s%s:[\w-]+=" % re.escape(prefix), content) for prefix in relationships)
                or _PARAGRAPH.search(content) is None):
            return None
        return content, self.xml[section:closing], declared


def _splice_start(packages: list[_Package], root: Element) -> int:
    """Where the run of parts that can be spliced in as text begins (``len(packages)``: none):
    parts that share the last one's package files and last section, whose roots declare nothing
    the merged document's does not."""
    declared = {**{f"xmlns:{prefix}".encode() if prefix else b"xmlns": uri.encode()
                   for prefix, uri in root.nsmap.items()},
                **{name.encode(): value.encode() for name, value in _ignorable(root).items()}}
    start = len(packages)
    while start > 0:
        package, last = packages[start - 1], packages[-1]
        text = package.text
        if (text is None or package.signature != last.signature or text[1] != last.text[1]  # type: ignore[index]
                or any(declared.get(name) != value for name, value in text[2].items())):
            break
        start -= 1
    return start


def _ignorable(root: Element) -> dict[str, str]:
    """The root's mc:Ignorable, under the name it is written with."""
    for name, value in root.attrib.items():
        if name.endswith("}Ignorable"):
            uri = name[1:].split("}")[0]
            prefix = next((p for p, u in root.nsmap.items() if u == uri), None)
            return {f"{prefix}:Ignorable": value} if prefix else {}
    return {}


def _chosen(members: list[tuple[_Defaults, list[Element]]], extra: _Defaults, count: int) -> _Defaults:
    """The defaults ``_keep_defaults`` will give the document once ``count`` parts with ``extra``
    follow the members."""
    counts: dict[_Defaults, int] = {}
    for defaults in [*(defaults for defaults, _ in members), *[extra] * count]:
        counts[defaults] = counts.get(defaults, 0) + 1
    return max(counts, key=lambda defaults: counts[defaults])  # the first of equals: insertion order


def _splice(document: bytes, spliced: list[_Package], first_index: int, marked: bool) -> bytes:
    """The saved document.xml with the spliced parts' bodies before its last w:sectPr, as the
    merge would have appended them: each part but the last ends in a section break (a copy of
    that w:sectPr, in its last paragraph or a paragraph of its own), and with markers each
    begins with one, numbered after the bookmarks before it (as docxcompose numbers them)."""
    closing = document.rindex(b"</w:body>")
    section = document.rindex(b"<w:sectPr", 0, closing)
    sentinel = document[section:closing]
    opening = sentinel.index(b">")  # python-docx's clone of a w:sectPr drops its rsid attributes
    sentinel = re.sub(rb'\sw:rsid\w*="[^"]*"', b"", sentinel[:opening]) + sentinel[opening:]
    starts, ends = document.count(b"<w:bookmarkStart "), document.count(b"<w:bookmarkEnd ")
    pieces = []
    for offset, package in enumerate(spliced):
        content = package.text[0]  # type: ignore[index]
        if marked:
            content = _with_marker(content, first_index + offset, starts + offset, ends + offset)
        if offset < len(spliced) - 1:
            content = _with_section_break(content, sentinel)
        pieces.append(content)
    return document[:section] + b"".join(pieces) + document[section:]


def _with_marker(content: bytes, index: int, start_id: int, end_id: int) -> bytes:
    """``_mark`` as text: the marker at the start of the first paragraph, after its properties."""
    from .pdfpages import marker_name

    marker = b'<w:bookmarkStart w:id="%d" w:name="%s"/><w:bookmarkEnd w:id="%d"/>' % (
        start_id, marker_name(index).encode(), end_id)
    paragraph = _PARAGRAPH.search(content)
    assert paragraph is not None  # (_Package.text)
    if paragraph[1]:  # <w:p/>
        return content[: paragraph.start()] + paragraph[0][:-2] + b">" + marker + b"</w:p>" + content[paragraph.end():]
    at = paragraph.end()
    if content.startswith(b"<w:pPr/>", at):
        at += len(b"<w:pPr/>")
    elif content.startswith((b"<w:pPr>", b"<w:pPr "), at):
        at = content.index(b"</w:pPr>", at) + len(b"</w:pPr>")
    return content[:at] + marker + content[at:]


def _with_section_break(content: bytes, section: bytes) -> bytes:
    """``_new_section`` as text: ``section`` in the last paragraph's properties, or in a
    paragraph of its own after a table."""
    if content.endswith(b"</w:tbl>"):
        return content + b"<w:p><w:pPr>" + section + b"</w:pPr></w:p>"
    *_, last = _PARAGRAPH.finditer(content)  # (_Package.text: there is one)
    assert not last[1]  # the content ends with </w:p>
    at = last.end()
    if content.startswith(b"<w:pPr/>", at):
        return content[:at] + b"<w:pPr>" + section + b"</w:pPr>" + content[at + len(b"<w:pPr/>"):]
    if content.startswith((b"<w:pPr>", b"<w:pPr "), at):
        close = content.index(b"</w:pPr>", at)
        return content[:close] + section + content[close:]
    return content[:at] + b"<w:pPr>" + section + b"</w:pPr>" + content[at:]


@functools.cache
def _compiled(xpath: str) -> Callable[[Element], list]:
    from lxml import etree

    return etree.XPath(xpath, namespaces={"w": _W})


def _same_elements(ours: list[Element], merged: list[Element]) -> bool:
    """Whether docxcompose appended these elements exactly as they were."""
    from lxml import etree

    return len(ours) == len(merged) and all(
        etree.tostring(mine) == etree.tostring(theirs) for mine, theirs in zip(ours, merged, strict=True))


_MARKER_ID = 2_000_000_000  # bookmark ids of the markers (docxcompose renumbers every bookmark anyway)
_MARKERS = re.compile(rb'<w:bookmarkStart w:id="\d+" w:name="rgpart\d+"/><w:bookmarkEnd w:id="\d+"/>')


def _mark(elements: list[Element], index: int) -> None:
    """A bookmark named ``rgpart<index>`` at the start of the part's first paragraph."""
    from lxml import etree

    from .pdfpages import marker_name

    paragraph = next((p for element in elements for p in element.iter(_w("p"))), None)
    if paragraph is None:
        return
    start = etree.Element(_w("bookmarkStart"), {_w("id"): str(_MARKER_ID + index), _w("name"): marker_name(index)})
    end = etree.Element(_w("bookmarkEnd"), {_w("id"): str(_MARKER_ID + index)})
    position = 1 if len(paragraph) and paragraph[0].tag == _w("pPr") else 0
    paragraph.insert(position, end)
    paragraph.insert(position, start)


@functools.cache
def _combinable(template: Path, size: int, mtime: int) -> bool:
    from lxml import etree

    with zipfile.ZipFile(template) as package:
        body = etree.fromstring(package.read("word/document.xml"))
    for row in body.iter(_w("tr")):
        properties = row.find(_w("trPr"))
        if properties is None or properties.find(_w("tblHeader")) is None:
            continue
        header = properties.find(_w("tblHeader"))
        if header.get(_w("val"), "true") in ("0", "false", "off"):
            continue
        for merge in row.iter(_w("vMerge")):
            if merge.get(_w("val")) == "restart" and next(merge.iterancestors(_w("tr"))) is row:
                return False
    return True


def combinable(template: Path) -> bool:
    """Whether forms of this template render in a document of many forms exactly as alone.

    LibreOffice 7.4 lays out a repeated table header row (``w:tblHeader``) that starts a cell
    merged down into the rows below differently once the document goes on after the table: the
    repeated header loses that cell's text and the merged cell runs into the row after it (as
    晋中's 评分表 did before its label moved under the header). Such forms are converted one by
    one; every other layout is the same page for page (``tests/test_unit_route.py`` compares
    every region's forms at 100 dpi).
    """
    try:
        stat = template.stat()
        return _combinable(template, stat.st_size, stat.st_mtime_ns)
    except (OSError, zipfile.BadZipFile, KeyError):
        return False


def _new_section(doc: DocxDocument) -> Section:
    """A new last section starting on a new page, as python-docx's ``add_section`` makes it, but
    ending the previous one in its own last paragraph: a paragraph added only to hold the section
    break would be a line of text the part does not have, and could push its end onto a new page."""
    from docx.enum.section import WD_SECTION
    from docx.section import Section

    body = doc.element.body
    sentinel = body.get_or_add_sectPr()
    last = sentinel.getprevious()
    free = last is not None and last.tag == _w("p") and last.find(f"{_w('pPr')}/{_w('sectPr')}") is None
    (last if free else body.add_p()).set_sectPr(sentinel.clone())
    for reference in sentinel.xpath("w:headerReference|w:footerReference"):
        sentinel.remove(reference)
    sentinel.start_type = WD_SECTION.NEW_PAGE
    return Section(sentinel, doc.part)


# --- document defaults in a merged DOCX ------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _w(name: str) -> str:
    return f"{{{_W}}}{name}"


# Where each child of w:rPr and w:pPr goes (ECMA-376 CT_RPr, CT_ParaRPr, CT_PPr): Word refuses a
# document whose properties are out of order.
_RPR_ORDER = tuple(_w(name) for name in (
    "ins", "del", "moveFrom", "moveTo", "rStyle", "rFonts", "b", "bCs", "i", "iCs", "caps", "smallCaps",
    "strike", "dstrike", "outline", "shadow", "emboss", "imprint", "noProof", "snapToGrid", "vanish",
    "webHidden", "color", "spacing", "w", "kern", "position", "sz", "szCs", "highlight", "u", "effect", "bdr",
    "shd", "fitText", "vertAlign", "rtl", "cs", "em", "lang", "eastAsianLayout", "specVanish", "oMath",
    "rPrChange",
))
_PPR_ORDER = tuple(_w(name) for name in (
    "pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl", "numPr",
    "suppressLineNumbers", "pBdr", "shd", "tabs", "suppressAutoHyphens", "kinsoku", "wordWrap",
    "overflowPunct", "topLinePunct", "autoSpaceDE", "autoSpaceDN", "bidi", "adjustRightInd", "snapToGrid",
    "spacing", "ind", "contextualSpacing", "mirrorIndents", "suppressOverlap", "jc", "textDirection",
    "textAlignment", "textboxTightWrap", "outlineLvl", "divId", "cnfStyle", "rPr", "sectPr", "pPrChange",
))
_NOT_DEFAULTS = {_w("rPr"), _w("sectPr"), _w("pPrChange"), _w("rPrChange"), _w("rStyle"), _w("pStyle")}

# A property's attributes are inherited one by one (w:rFonts w:eastAsia="黑体" on a run keeps the
# default w:ascii); an element without attributes (<w:b/>) counts as one attribute named "".
Properties = dict[str, dict[str, str]]


def _properties(element: Element | None) -> Properties:
    if element is None:
        return {}
    return {child.tag: dict(child.attrib) or {"": ""} for child in element if child.tag not in _NOT_DEFAULTS}


@dataclass(frozen=True)
class _Defaults:
    """A document's docDefaults: the run (w:rPr) and paragraph (w:pPr) properties every run and
    paragraph has unless a style or its own formatting says otherwise."""

    run: bytes
    paragraph: bytes

    @classmethod
    def of(cls, document: DocxDocument) -> _Defaults:
        from lxml import etree

        found = [document.styles.element.find(f"{_w('docDefaults')}/{_w(kind)}/{_w(tag)}")
                 for kind, tag in (("rPrDefault", "rPr"), ("pPrDefault", "pPr"))]
        run, paragraph = (b"" if element is None else etree.tostring(element) for element in found)
        return cls(run, paragraph)

    def elements(self) -> tuple[Element | None, Element | None]:
        from lxml import etree

        run, paragraph = (etree.fromstring(xml) if xml else None for xml in (self.run, self.paragraph))
        return run, paragraph


def _keep_defaults(doc: DocxDocument, members: list[tuple[_Defaults, list[Element]]],
                   more: list[_Defaults] = ()) -> None:  # type: ignore[assignment]
    """Give the merged document the defaults most parts have, and write each other part's own
    defaults back onto its paragraphs and runs wherever they differ from those and nothing
    nearer to the text (its own formatting, its paragraph, character or table style) sets them.

    Usually only the summary page differs (the forms of one unit share a template), so the forms
    stay as rendered and only one page gains direct formatting. ``more``: the defaults of parts
    spliced in after the members (counted; never other than the chosen ones).
    """
    chosen = _chosen(members, more[0], len(more)) if more else _chosen(members, members[0][0], 0)
    if all(defaults == chosen for defaults, _ in members):
        return
    base_run, base_paragraph = (_properties(element) for element in chosen.elements())
    styles = _StyleProperties(doc.styles.element)
    for defaults, elements in members:
        if defaults == chosen:
            continue
        run, paragraph = (_properties(element) for element in defaults.elements())
        _restore(elements, _differences(run, base_run), _differences(paragraph, base_paragraph), styles)
    _set_defaults(doc.styles.element, chosen)


def _differences(own: Properties, base: Properties) -> Properties:
    """The attributes of ``own`` that ``base`` lacks or sets otherwise. What only ``base`` sets
    cannot be taken back in general (the application's default is unknown) and is left alone."""
    found = {}
    for tag, attributes in own.items():
        changed = {name: value for name, value in attributes.items() if base.get(tag, {}).get(name) != value}
        if changed:
            found[tag] = changed
    return found


class _StyleProperties:
    """The properties (tag → attribute names) each style sets, through its basedOn chain."""

    def __init__(self, styles: Element) -> None:
        self.by_id = {style.get(_w("styleId")): style for style in styles.iter(_w("style"))}
        self.defaults = {
            style.get(_w("type")): style.get(_w("styleId"))
            for style in self.by_id.values() if style.get(_w("default")) in ("1", "true", "on")
        }
        self._cache: dict[tuple[str | None, str], dict[str, set[str]]] = {}

    def sets(self, style_id: str | None, kind: str) -> dict[str, set[str]]:
        """What style ``style_id`` sets in its ``kind`` ("rPr" or "pPr") element."""
        key = (style_id, kind)
        if key not in self._cache:
            found: dict[str, set[str]] = {}
            seen: set[str] = set()
            while style_id and style_id not in seen and style_id in self.by_id:
                seen.add(style_id)
                style = self.by_id[style_id]
                for tag, attributes in _properties(style.find(_w(kind))).items():
                    found.setdefault(tag, set()).update(attributes)
                based = style.find(_w("basedOn"))
                style_id = None if based is None else based.get(_w("val"))
            self._cache[key] = found
        return self._cache[key]


def _style_of(properties: Element | None, tag: str) -> str | None:
    style = None if properties is None else properties.find(_w(tag))
    return None if style is None else style.get(_w("val"))


_NOTHING: dict[str, set[str]] = {}  # what no style sets


def _restore(elements: list[Element], run: Properties, paragraph: Properties, styles: _StyleProperties) -> None:
    """Write a part's own defaults (``run``, ``paragraph``: where they differ from the merged
    document's) onto its paragraphs, paragraph marks and runs where nothing above the defaults
    sets them."""
    tables: dict[int, tuple[dict, dict]] = {}
    made: dict[tuple, Element | None] = {}
    for element in elements:
        for p in element.iter(_w("p")):
            table = next(p.iterancestors(_w("tbl")), None)
            if table is None:
                in_table = (_NOTHING, _NOTHING)
            else:
                if id(table) not in tables:
                    style = _style_of(table.find(_w("tblPr")), "tblStyle") or styles.defaults.get("table")
                    tables[id(table)] = (styles.sets(style, "rPr"), styles.sets(style, "pPr"))
                in_table = tables[id(table)]
            style = _style_of(p.find(_w("pPr")), "pStyle") or styles.defaults.get("paragraph")
            if paragraph:
                _write_missing(p, ("pPr",), paragraph, (in_table[1], styles.sets(style, "pPr")), made)
            if run:
                above = (in_table[0], styles.sets(style, "rPr"))
                _write_missing(p, ("pPr", "rPr"), run, above, made)  # the paragraph mark
                for r in p.iter(_w("r")):
                    if next(r.iterancestors(_w("p"))) is not p:  # in a text box: its own paragraph's
                        continue
                    character = styles.sets(_style_of(r.find(_w("rPr")), "rStyle"), "rPr")
                    _write_missing(r, ("rPr",), run, (*above, character), made)


def _write_missing(owner: Element, path: tuple[str, ...], wanted: Properties, above: tuple[dict, ...],
                   made: dict[tuple, Element | None]) -> None:
    """Set each wanted attribute that neither the properties at ``path`` under ``owner`` nor the
    styles ``above`` set. Where ``owner`` has no properties there, the ones to write depend only
    on ``above``: they are made once (in ``made``) and copied."""
    container: Element | None = owner
    for kind in path:
        container = container.find(_w(kind)) if container is not None else None
    if container is None:
        key = (path, *map(id, above))  # the styles' sets live as long as the merge: stable ids
        if key not in made:
            made[key] = _properties_element(path[-1], wanted, above)
        if made[key] is not None:
            _place(_make_path(owner, path[:-1]), copy.deepcopy(made[key]))
        return
    own = {child.tag: child for child in container}
    order = _RPR_ORDER if path[-1] == "rPr" else _PPR_ORDER
    for tag, attributes in wanted.items():
        element = own.get(tag)
        missing = _missing(attributes, above, (set(element.attrib) or {""}) if element is not None else set(), tag)
        if not missing:
            continue
        if element is None:
            element = own[tag] = container.makeelement(tag, {})
            _insert_ordered(container, element, order)
        for name, value in missing.items():
            if name:
                element.set(name, value)


def _missing(attributes: dict[str, str], above: tuple[dict, ...], have: set[str], tag: str) -> dict[str, str]:
    for sets in above:
        have = have | sets.get(tag, set())
    return {name: value for name, value in attributes.items() if name not in have}


def _properties_element(kind: str, wanted: Properties, above: tuple[dict, ...]) -> Element | None:
    """A w:rPr or w:pPr holding what of ``wanted`` the styles ``above`` leave unset; None if nothing."""
    from lxml import etree

    order = _RPR_ORDER if kind == "rPr" else _PPR_ORDER
    element = etree.Element(_w(kind), nsmap={"w": _W})
    for tag in sorted(wanted, key=lambda tag: order.index(tag) if tag in order else len(order)):
        missing = _missing(wanted[tag], above, set(), tag)
        if missing:
            etree.SubElement(element, tag, {name: value for name, value in missing.items() if name})
    return element if len(element) else None


def _make_path(owner: Element, path: tuple[str, ...]) -> Element:
    """The element at ``path`` under ``owner`` (w:pPr, w:pPr/w:rPr, w:rPr), made where absent."""
    for kind in path:
        child = owner.find(_w(kind))
        if child is None:
            child = owner.makeelement(_w(kind), {})
            _place(owner, child)
        owner = child
    return owner


def _place(parent: Element, child: Element) -> None:
    """Put a paragraph's w:pPr or a run's w:rPr first, a paragraph mark's w:rPr in its place."""
    if parent.tag == _w("pPr"):
        _insert_ordered(parent, child, _PPR_ORDER)
    else:
        parent.insert(0, child)


def _insert_ordered(parent: Element, element: Element, order: tuple[str, ...]) -> None:
    """Insert ``element`` before the first child that comes after it in ``order`` (extensions in
    other namespaces come last)."""
    rank = order.index(element.tag)
    for index, child in enumerate(parent):
        tag = child.tag if isinstance(child.tag, str) else ""  # comments and processing instructions
        later = order.index(tag) > rank if tag in order else bool(tag) and not tag.startswith(f"{{{_W}}}")
        if later:
            parent.insert(index, element)
            return
    parent.append(element)


def _set_defaults(styles: Element, defaults: _Defaults) -> None:
    """Make ``defaults`` the document's docDefaults."""
    run, paragraph = defaults.elements()
    holder = styles.find(_w("docDefaults"))
    if holder is None:
        holder = styles.makeelement(_w("docDefaults"), {})
        styles.insert(0, holder)
    for kind, tag, element in (("rPrDefault", "rPr", run), ("pPrDefault", "pPr", paragraph)):
        slot = holder.find(_w(kind))
        if slot is None:
            slot = holder.makeelement(_w(kind), {})
            if kind == "rPrDefault":
                holder.insert(0, slot)
            else:
                holder.append(slot)
        for old in slot.findall(_w(tag)):
            slot.remove(old)
        if element is not None:
            slot.append(element)


# --- the summary (汇总表) --------------------------------------------------------------------


def summary_template() -> Path:
    """``templates/summary/form.docx``, beside the regions' ``templates/docx``."""
    from .regions import templates_root

    candidates = [templates_root().parent, Path(__file__).resolve().parent.parent / "templates"]
    for folder in candidates:
        if (folder / "summary" / "form.docx").is_file():
            return folder / "summary" / "form.docx"
    return candidates[0] / "summary" / "form.docx"  # render_docx reports it missing


def write_summary_docx(title: str, rows: list[SummaryRow], target: Path, when: datetime.datetime) -> None:
    """The 汇总表 page that opens a unit's merged documents (rendered like the forms)."""
    from . import render

    context = {"title": title, "rows": [{**dataclasses.asdict(row), "warnings": str(row.warnings)} for row in rows]}
    render.render_docx(summary_template(), context, target, when)


# Excel runs a cell that begins with one of these as a formula (=HYPERLINK(…) in a project name
# would be a live link, =cmd|… worse); a plain number such as -5 or +1,234.50% is only a number.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?")


def csv_cell(value: str, numeric: bool = False) -> str:
    """A cell Excel shows as text when it would run it as a formula: prefixed with a single quote.
    Numbers stay numbers in the columns that hold them (amounts, rates, scores)."""
    if not value.startswith(_FORMULA_START) or (numeric and _PLAIN_NUMBER.fullmatch(value)):
        return value
    return f"'{value}"


def write_summary_csv(rows: list[SummaryRow], target: Path) -> None:
    """汇总表.csv in UTF-8 with a BOM, so that Excel on Windows shows the Chinese text; no cell is
    run as a formula (see ``csv_cell``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(SUMMARY_HEADERS)
    for row in rows:
        numbers = (csv_cell(value, numeric=True) for value in (row.budget, row.executed, row.rate, row.total))
        writer.writerow((csv_cell(row.name), *numbers, csv_cell(row.grade), row.warnings))
    write_bytes(target, ("\ufeff" + buffer.getvalue()).encode("utf-8"))


# --- manifest and zip -----------------------------------------------------------------------


def write_manifest(target: Path, folder: Path, inputs: dict[Path, str], info: dict) -> None:
    """manifest.json: every input file (path → sha256, as the build read it) and output file
    with its sha256, and how it was made."""
    outputs = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name != target.name and not p.name.startswith(".")
    )
    manifest = {
        **info,
        "inputs": [{"path": str(path), "sha256": digest} for path, digest in sorted(inputs.items())],
        "outputs": [{"path": p.name, "sha256": sha256_of(p)} for p in outputs],
    }
    write_bytes(target, (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def write_zip(folder: Path, target: Path, when: datetime.datetime) -> None:
    """A zip of the bundle folder, entries sorted and dated ``when``: identical on every build."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            entry = zipfile.ZipInfo(f"{folder.name}/{path.name}", zip_time(when))
            # PDF and DOCX are compressed already: deflating them again costs time, saves nothing.
            entry.compress_type = zipfile.ZIP_STORED if path.suffix in (".pdf", ".docx") else zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            entry.flag_bits |= 0x800  # UTF-8 names, so Chinese file names survive on Windows
            archive.writestr(entry, path.read_bytes())
    write_bytes(target, buffer.getvalue())
