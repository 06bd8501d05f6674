"""Submission bundles: per unit and year, the merged DOCX and PDF, a summary, a manifest, a zip.

Everything written here is reproducible: the same inputs give byte-identical files (fixed zip
timestamps, PDF dates and IDs from SOURCE_DATE_EPOCH or from the inputs) and every file is
written to a temporary name and renamed into place, so no half-written file is ever visible.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ConvertError
from .package import write_bytes, write_package, zip_time

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


def merge_docx(parts: list[Path], target: Path, when: datetime.datetime) -> None:
    """One DOCX of all parts in order (docxcompose), each in a section of its own that starts
    on a new page and keeps the part's page setup: docxcompose alone would give every part the
    first one's, and a landscape form after the portrait summary would lose its orientation."""
    from docx import Document as new_docx
    from docx.enum.section import WD_SECTION

    composer = _composer()(new_docx(str(parts[0])))
    for part in parts[1:]:
        document = new_docx(str(part))
        section = composer.doc.add_section(WD_SECTION.NEW_PAGE)
        composer.append(document)
        for name in _PAGE_SETUP:
            setattr(section, name, getattr(document.sections[-1], name))
    package = io.BytesIO()
    composer.save(package)
    write_normalized_docx(package.getvalue(), target, when)


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


def write_summary_csv(rows: list[SummaryRow], target: Path) -> None:
    """汇总表.csv in UTF-8 with a BOM, so that Excel on Windows shows the Chinese text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(SUMMARY_HEADERS)
    for row in rows:
        writer.writerow((row.name, row.budget, row.executed, row.rate, row.total, row.grade, row.warnings))
    write_bytes(target, ("\ufeff" + buffer.getvalue()).encode("utf-8"))


# --- manifest and zip -----------------------------------------------------------------------


def write_manifest(target: Path, folder: Path, inputs: list[Path], info: dict) -> None:
    """manifest.json: every input and output file with its sha256, and how it was made."""
    outputs = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name != target.name and not p.name.startswith(".")
    )
    manifest = {
        **info,
        "inputs": [{"path": str(p), "sha256": sha256_of(p)} for p in sorted(set(inputs))],
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
