"""Bundle helpers: safe file names, atomic writes, reproducible PDFs."""

from __future__ import annotations

import csv
import datetime
import hashlib
import re
import subprocess
import zipfile
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
    # Each section break is kept in its part's last paragraph: no empty line is added to any part.
    assert [p.text for p in merged.paragraphs] == ["汇总表", "横向的表", "纵向的表"]


def _canonical(docx: Path) -> dict[str, bytes]:
    """Each file of the package; document.xml as canonical XML (``<w:t></w:t>`` is ``<w:t/>``)."""
    from lxml import etree

    with zipfile.ZipFile(docx) as package:
        return {info.filename: etree.tostring(etree.fromstring(package.read(info)), method="c14n")
                if info.filename == "word/document.xml" else package.read(info) for info in package.infolist()}


def test_forms_of_one_template_are_merged_as_docxcompose_would(built_data: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Forms rendered from one template share every file but their text: after the first,
    merge_docx appends their bodies as they are instead of through docxcompose, those at the end
    as text. The merged document, with and without markers, is what docxcompose alone gives (the
    same files, the same XML), for every unit of data/ and parts in any order."""
    from reportgen import bundle

    cases = []
    for unit in sorted({form.parent for form in built_data.rglob("*.docx")}):
        forms = sorted(form for form in unit.glob("*.docx") if form.name != "全部项目.docx")
        summary = tmp_path / unit.name / "汇总表.docx"
        summary.parent.mkdir()
        bundle.write_summary_docx("汇总表", [], summary, WHEN)
        cases += [(summary.parent / "a", [summary, *forms, *forms]), (summary.parent / "b", [*forms, summary, *forms])]
    spliced: list[int] = []
    splice = bundle._splice
    monkeypatch.setattr(bundle, "_splice", lambda document, parts, *rest: spliced.append(len(parts))
                        or splice(document, parts, *rest))
    for folder, parts in cases:
        spliced.clear()
        bundle.merge_docx(parts, folder.with_suffix(".fast.docx"), WHEN, marked=folder.with_suffix(".fast-marked.docx"))
        if folder.name == "a":  # all but the first form come after a form docxcompose took as it was
            assert spliced == [len(parts) - 2], folder
    monkeypatch.setattr(bundle._Package, "text", None)
    monkeypatch.setattr(bundle._Package, "plain", False)
    for folder, parts in cases:
        bundle.merge_docx(parts, folder.with_suffix(".docx"), WHEN, marked=folder.with_suffix(".marked.docx"))
        assert _canonical(folder.with_suffix(".fast.docx")) == _canonical(folder.with_suffix(".docx")), folder
        assert _canonical(folder.with_suffix(".fast-marked.docx")) == _canonical(folder.with_suffix(".marked.docx"))


@pytest.mark.parametrize(
    ("body", "plain"),
    [
        ("<w:p><w:r><w:t>正文</w:t></w:r></w:p>", True),
        ('<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr></w:p>', False),
        ('<w:p><w:r><w:footnoteReference w:id="1"/></w:r></w:p>', False),
        ('<w:p><w:hyperlink xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
         'r:id="rId9"><w:r><w:t>链接</w:t></w:r></w:hyperlink></w:p>', False),
    ],
    ids=["text", "list", "footnote", "relationship"],
)
def test_only_bodies_docxcompose_would_copy_as_they_are_skip_it(tmp_path: Path, body: str, plain: bool) -> None:
    """Lists (numbering restarts), notes and anything pointing at a relationship go through
    docxcompose, which rewrites them."""
    from reportgen.bundle import _Package

    package = _Package.read(_part(tmp_path / "part.docx", "", 24, 0, body))
    assert package.plain is plain
    assert (package.text is not None) is plain


# --- each part of a merged DOCX keeps its document defaults ---------------------------------------

W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _part(path: Path, fonts: str, size: int, after: int, body: str, styles: str = "") -> Path:
    """A document whose docDefaults say ``fonts``, ``size`` and ``after``, with ``body``'s XML."""
    from docx import Document
    from docx.oxml import parse_xml
    from docx.oxml.ns import qn

    document = Document()
    element = document.styles.element
    element.remove(element.find(qn("w:docDefaults")))
    element.insert(0, parse_xml(
        f'<w:docDefaults {W_NS}><w:rPrDefault><w:rPr>{fonts}<w:sz w:val="{size}"/></w:rPr></w:rPrDefault>'
        f'<w:pPrDefault><w:pPr><w:spacing w:after="{after}"/></w:pPr></w:pPrDefault></w:docDefaults>'
    ))
    for style in parse_xml(f"<w:styles {W_NS}>{styles}</w:styles>"):
        element.append(style)
    sentinel = document.element.body[-1]
    for child in parse_xml(f"<w:body {W_NS}>{body}</w:body>"):
        sentinel.addprevious(child)
    document.save(str(path))
    return path


def _xml(element) -> str:
    from lxml import etree

    return re.sub(r' xmlns:\w+="[^"]*"', "", etree.tostring(element, encoding="unicode"))


SUMMARY_BODY = (
    "<w:p><w:r><w:t>汇总表</w:t></w:r></w:p>"
    '<w:p><w:pPr><w:jc w:val="center"/></w:pPr>'
    '<w:r><w:rPr><w:rFonts w:eastAsia="楷体"/><w:b/><w:sz w:val="32"/></w:rPr><w:t>标题</w:t></w:r></w:p>'
    '<w:tbl><w:tblPr><w:tblStyle w:val="Sized"/></w:tblPr><w:tblGrid><w:gridCol w:w="2000"/></w:tblGrid>'
    '<w:tr><w:tc><w:tcPr><w:tcW w:w="2000" w:type="dxa"/></w:tcPr><w:p><w:r><w:t>格</w:t></w:r></w:p></w:tc></w:tr></w:tbl>'
)
SIZED_TABLE = '<w:style w:type="table" w:styleId="Sized"><w:name w:val="Sized"/><w:rPr><w:sz w:val="40"/></w:rPr></w:style>'


def test_merged_docx_gives_each_part_its_own_defaults(tmp_path: Path) -> None:
    """The merged DOCX has one set of document defaults: the forms'. The summary page, whose
    template declares a larger type and a space after each paragraph, gets its own back as direct
    formatting, attribute by attribute, wherever nothing nearer to the text already sets them."""
    from docx import Document

    from reportgen.bundle import merge_docx

    song, hei = '<w:rFonts w:ascii="Arial" w:eastAsia="宋体"/>', '<w:rFonts w:ascii="Arial" w:eastAsia="黑体"/>'
    form_body = "<w:p><w:r><w:t>表</w:t></w:r></w:p>"
    parts = [
        _part(tmp_path / "summary.docx", hei, 22, 200, SUMMARY_BODY, SIZED_TABLE),
        _part(tmp_path / "a.docx", song, 18, 0, form_body),
        _part(tmp_path / "b.docx", song, 18, 0, form_body),
    ]
    merge_docx(parts, tmp_path / "merged.docx", WHEN)
    merged = Document(str(tmp_path / "merged.docx"))
    defaults = merged.styles.element.find("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}docDefaults")
    assert _xml(defaults) == (
        '<w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii="Arial" w:eastAsia="宋体"/><w:sz w:val="18"/></w:rPr>'
        '</w:rPrDefault><w:pPrDefault><w:pPr><w:spacing w:after="0"/></w:pPr></w:pPrDefault></w:docDefaults>'
    )
    body = [_xml(child) for child in merged.element.body]
    sized = '<w:pPr><w:spacing w:after="200"/><w:rPr><w:rFonts w:eastAsia="黑体"/><w:sz w:val="22"/></w:rPr></w:pPr>'
    assert body[0] == f'<w:p>{sized}<w:r><w:rPr><w:rFonts w:eastAsia="黑体"/><w:sz w:val="22"/></w:rPr><w:t>汇总表</w:t></w:r></w:p>'
    assert body[1] == (  # the run sets its own face and size; the paragraph's spacing goes before w:jc
        '<w:p><w:pPr><w:spacing w:after="200"/><w:jc w:val="center"/>'
        '<w:rPr><w:rFonts w:eastAsia="黑体"/><w:sz w:val="22"/></w:rPr></w:pPr>'
        '<w:r><w:rPr><w:rFonts w:eastAsia="楷体"/><w:b/><w:sz w:val="32"/></w:rPr><w:t>标题</w:t></w:r></w:p>'
    )
    # In the table whose style sets the size, only the face comes back.
    assert '<w:p><w:pPr><w:spacing w:after="200"/><w:rPr><w:rFonts w:eastAsia="黑体"/></w:rPr></w:pPr>' in body[2]
    assert '<w:r><w:rPr><w:rFonts w:eastAsia="黑体"/></w:rPr><w:t>格</w:t></w:r>' in body[2]
    # A table cannot hold the section break: the summary's is in an empty paragraph of its own,
    # which is the summary's last (its own size); the forms are as rendered, the break in their
    # last paragraph.
    assert body[3].startswith(f"<w:p>{sized[:-len('</w:pPr>')]}<w:sectPr>") and "<w:r>" not in body[3]
    assert body[4].startswith("<w:p><w:pPr><w:sectPr>") and body[4].endswith("<w:r><w:t>表</w:t></w:r></w:p>")
    assert body[5] == "<w:p><w:r><w:t>表</w:t></w:r></w:p>" and body[6].startswith("<w:sectPr")
    assert len(body) == 7

    merge_docx(parts, tmp_path / "again.docx", WHEN)
    assert (tmp_path / "again.docx").read_bytes() == (tmp_path / "merged.docx").read_bytes()


def _pages(pdf: Path, prefix: Path) -> list:
    """The PDF's pages as images at 60 dpi."""
    from PIL import Image

    prefix.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(prefix)], check=True)
    return [Image.open(png).convert("RGB") for png in sorted(prefix.parent.glob(f"{prefix.name}-*.png"))]


def _differing(first: list, second: list) -> dict[int, int]:
    """Page number → how many pixels differ, for the pages that are not identical."""
    from PIL import ImageChops

    found = {}
    for number, (a, b) in enumerate(zip(first, second, strict=False), 1):
        if a.size != b.size:
            found[number] = a.width * a.height
        elif ImageChops.difference(a, b).getbbox():
            found[number] = sum(1 for value in ImageChops.difference(a, b).convert("L").tobytes() if value)
    return found


def _words(pdf: Path, page: int) -> list[str]:
    """Each word of a page's text layer with its box, as pdftotext places them."""
    listing = subprocess.run(["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
                             capture_output=True, text=True, check=True).stdout
    return re.findall(r"<word .*</word>", listing)


# The regions of data/ that showed the fault: 金凤区's DOCX had 8 pages, 丰台区's 5.
SEED_PAGES = {
    "丰台区城市管理监督指挥中心": 4, "晋中市数字化城市管理中心": 4, "深圳市龙华区平安建设中心": 5, "金凤区智慧城市运营中心": 6,
}


@pytest.mark.soffice
def test_merged_docx_looks_like_the_merged_pdf(built_data: Path, tmp_path: Path) -> None:
    """A reader who opens 全部项目.docx sees what 全部项目.pdf shows: converted on its own by
    LibreOffice, every unit's merged DOCX has the PDF's pages, identical pixel for pixel at 60 dpi.

    One difference is not the DOCX's: the merged PDF is made of each form's own PDF, and the DOCX's
    conversion embeds one set of font subsets for all forms. A form with more distinct characters
    than one subset holds has some of them in another subset there, and the rasterizer may hint
    such a glyph a pixel differently. A page that differs only so has every word of its text layer
    in the same place and only a few pixels changed; a page break, another type size or a moved
    line shows in the words. The seed regions have no such page.
    """
    from reportgen.convert import convert_to_pdf

    units = sorted(path.parent for path in built_data.glob("*/*/全部项目.docx"))
    copies = []
    for unit in units:
        copies.append(tmp_path / "docx" / f"{unit.name}.docx")
        copies[-1].parent.mkdir(exist_ok=True)
        copies[-1].write_bytes((unit / "全部项目.docx").read_bytes())
    converted = convert_to_pdf(copies, tmp_path / "pdf")

    found, hinted = {}, {}
    for unit, pdf in zip(units, converted, strict=True):
        merged = unit / "全部项目.pdf"
        from_docx = _pages(pdf, tmp_path / "png" / unit.name / "docx")
        from_pdf = _pages(merged, tmp_path / "png" / unit.name / "pdf")
        differing = _differing(from_docx, from_pdf)
        hinted[unit.name] = [page for page, pixels in differing.items()
                             if pixels <= 64 and _words(pdf, page) == _words(merged, page)]
        found[unit.name] = (len(from_docx), len(from_pdf), [page for page in differing if page not in hinted[unit.name]])
    assert found == {name: (pages, pages, []) for name, (_, pages, _) in found.items()}
    assert {name: (found[name][1], hinted[name]) for name in SEED_PAGES} == {
        name: (pages, []) for name, pages in SEED_PAGES.items()
    }


# --- 汇总表.csv --------------------------------------------------------------------------------------


def test_summary_csv_shows_formulas_as_text_and_keeps_numbers(tmp_path: Path) -> None:
    """Excel runs a cell that begins with = + - @, a tab or a carriage return as a formula: such
    text gets a leading single quote; amounts, rates and scores stay numbers, negative ones too."""
    from reportgen.bundle import SUMMARY_HEADERS, SummaryRow, write_summary_csv

    rows = [
        SummaryRow('=HYPERLINK("http://x","点我")', "84,000.00", "72,000.00", "85.71%", "93", "优", 5),
        SummaryRow("+1+2", "-1,000.50", "-3", "-0.50%", "-2.5", "@SUM(A1)", 0),
        SummaryRow("-2+3", "+12", "0.00", "100.00%", "100", "\t=1", 1),
        SummaryRow("@cmd", "1,2,3", "=1+1", "-1%+1", "@9", "\r=2", 2),
        SummaryRow("数字城管 = 运行费", "1000000.00", "1,000.00", "", "", "", 0),
    ]
    write_summary_csv(rows, tmp_path / "汇总表.csv")
    raw = (tmp_path / "汇总表.csv").read_bytes()
    assert raw.startswith("\ufeff".encode())
    with (tmp_path / "汇总表.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == [
            list(SUMMARY_HEADERS),
            ["'=HYPERLINK(\"http://x\",\"点我\")", "84,000.00", "72,000.00", "85.71%", "93", "优", "5"],
            ["'+1+2", "-1,000.50", "-3", "-0.50%", "-2.5", "'@SUM(A1)", "0"],
            ["'-2+3", "+12", "0.00", "100.00%", "100", "'\t=1", "1"],
            ["'@cmd", "1,2,3", "'=1+1", "'-1%+1", "'@9", "'\r=2", "2"],
            ["数字城管 = 运行费", "1000000.00", "1,000.00", "", "", "", "0"],
        ]
