"""Bundle helpers: safe file names, atomic writes, reproducible PDFs."""

from __future__ import annotations

import datetime
import hashlib
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from reportgen.bundle import normalize_pdf, safe_filename
from reportgen.errors import ConvertError, OutputError
from reportgen.package import atomic_path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("数字城管运行费", "数字城管运行费"),
        ("a/b\\c", "a_b_c"),
        ("../../etc/passwd", "___etc_passwd"),
        ("x\x00y", "x_y"),
        ("C:项目", "C_项目"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("项目?*<>|\"名", "项目______名"),
        ("  .hidden. ", "hidden"),
        ("", "项目"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, set()) == expected


def test_safe_filename_is_short_and_distinct(tmp_path: Path) -> None:
    taken: set[str] = set()
    long_name = "很长的项目名称" * 40  # 280 characters, 840 bytes
    first, second = safe_filename(long_name, taken), safe_filename(long_name, taken)
    assert len(first.encode()) <= 150 and first != second and second == f"{first}_2"
    assert safe_filename("项目", taken) == "项目" and safe_filename("项目", taken) == "项目_2"
    assert safe_filename("Abc", taken) == "Abc" and safe_filename("abc", taken) == "abc_2"  # case-insensitive file systems
    for name in taken:
        (tmp_path / f"{name}.pdf").write_bytes(b"x")  # every name is creatable here
    assert len(list(tmp_path.iterdir())) == len(taken)


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.pdf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pdf"]


def test_atomic_path_turns_os_errors_into_output_errors(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir-is-a-file"
    target.write_bytes(b"")
    with pytest.raises(OutputError, match="无法写入"), atomic_path(target / "x.pdf") as temporary:
        temporary.write_bytes(b"data")


WHEN = datetime.datetime(2023, 12, 31, 12, tzinfo=datetime.UTC)


def _libreoffice_like_pdf(path: Path, run: str) -> Path:
    """A one-page PDF laid out as LibreOffice writes it, with the parts that change from run to
    run: the clock date in /Info, the random /ID and LibreOffice's /DocChecksum."""
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>",
        b"<</Producer(LibreOffice 7.4)\n/CreationDate(D:2026112314" + run.encode() + b"Z')>>",
    ]
    data, offsets = b"%PDF-1.6\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(data))
        data += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(data)
    data += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    random_id = hashlib.md5(run.encode()).hexdigest().upper().encode()
    data += b"trailer\n<</Size 5/Root 1 0 R\n/Info 4 0 R\n/ID [ <%s>\n<%s> ]\n/DocChecksum /%s\n>>\n" % (
        (random_id,) * 3
    )
    path.write_bytes(data + b"startxref\n%d\n%%%%EOF\n" % xref)
    return path


def test_normalize_pdf_makes_libreoffice_runs_identical_in_place(tmp_path: Path) -> None:
    first = _libreoffice_like_pdf(tmp_path / "a.pdf", "0926")
    second = _libreoffice_like_pdf(tmp_path / "b.pdf", "1145")
    sizes = (first.stat().st_size, second.stat().st_size)
    assert first.read_bytes() != second.read_bytes()
    normalize_pdf(first, "项目", WHEN)
    normalize_pdf(second, "项目", WHEN)
    assert first.read_bytes() == second.read_bytes()
    assert (first.stat().st_size, second.stat().st_size) == sizes  # patched in place: offsets stay valid
    reader = PdfReader(first, strict=True)
    assert reader.metadata["/CreationDate"] == "D:20231231120000Z'"
    assert len(reader.pages) == 1
    trailer = first.read_bytes().rsplit(b"trailer", 1)[1]
    assert len(set(re.findall(rb"[0-9A-F]{32}", trailer))) == 1  # ID and checksum: one content hash


def test_normalize_pdf_rewrites_other_producers_reproducibly(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    paths = []
    for name in ("a", "b"):
        writer = PdfWriter()  # pypdf draws a random ID and writes no /DocChecksum
        writer.add_blank_page(width=595, height=842)
        with (tmp_path / f"{name}.pdf").open("wb") as handle:
            writer.write(handle)
        normalize_pdf(tmp_path / f"{name}.pdf", "项目", WHEN)
        paths.append(tmp_path / f"{name}.pdf")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert PdfReader(paths[0]).metadata["/Title"] == "项目"


def test_merge_pdfs_names_a_broken_part_and_writes_nothing(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    from reportgen.bundle import merge_pdfs

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with (tmp_path / "good.pdf").open("wb") as handle:
        writer.write(handle)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.6\nno objects here\n%%EOF\n")
    parts = [("好", tmp_path / "good.pdf"), ("坏", tmp_path / "broken.pdf")]
    with pytest.raises(ConvertError, match=r"^broken\.pdf：PDF 文件已损坏，无法读取"):
        merge_pdfs(parts, tmp_path / "merged.pdf", "单位", WHEN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pdf", "good.pdf"]


def _document(path: Path, text: str, landscape: bool) -> Path:
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.shared import Mm

    document = Document()
    section = document.sections[0]
    width, height = (Mm(297), Mm(210)) if landscape else (Mm(210), Mm(297))
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = width, height
    section.left_margin = Mm(30 if landscape else 20)
    document.add_paragraph(text)
    document.save(str(path))
    return path


def test_merged_docx_keeps_each_parts_page_setup(tmp_path: Path) -> None:
    """A region's form may be landscape while the summary page is portrait: each part of the
    merged DOCX keeps its own page size, orientation and margins, and starts on a new page."""
    from docx import Document
    from docx.enum.section import WD_SECTION

    from reportgen.bundle import merge_docx

    parts = [
        _document(tmp_path / "summary.docx", "汇总表", landscape=False),
        _document(tmp_path / "wide.docx", "横向的表", landscape=True),
        _document(tmp_path / "tall.docx", "纵向的表", landscape=False),
    ]
    merge_docx(parts, tmp_path / "merged.docx", WHEN)
    merged = Document(str(tmp_path / "merged.docx"))
    setups = [(s.page_width.mm, s.page_height.mm, s.left_margin.mm) for s in merged.sections]
    assert [tuple(round(v) for v in setup) for setup in setups] == [(210, 297, 20), (297, 210, 30), (210, 297, 20)]
    assert all(section.start_type == WD_SECTION.NEW_PAGE for section in merged.sections[1:])
    assert [p.text for p in merged.paragraphs if p.text] == ["汇总表", "横向的表", "纵向的表"]
