"""Every character that is drawn is in the PDF's text layer, also outside the BMP (𠀀 𪚥).

LibreOffice 7.4 breaks a line inside a surrogate pair when a word does not fit its cell; the
halves get U+FFFD in the text layer. ``textlayer.repair`` joins them again: checked on
LibreOffice's own output and on small PDFs made here in its layout.
"""

from __future__ import annotations

import re
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader

from reportgen import textlayer
from reportgen.build import Options, build
from reportgen.convert import convert_many
from reportgen.render import render_docx
from reportgen.validate import check_paths
from reportgen.view import context

from .conftest import BASE_PROJECT

# 三级指标 sits in a narrow column: "𠀀" and the word after it do not fit on one line, and
# LibreOffice breaks between the two halves of 𠀀 (U+20000 = D840 DC00).
SPLIT = BASE_PROJECT.replace("三级指标: 操作员数量", '三级指标: 𠀀"bbbbbbbbbbbbbb')


def pdftotext(pdf: Path) -> list[str]:
    result = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    assert result.stderr == ""  # poppler reports a broken file on stderr
    return result.stdout.replace("\f", "").splitlines()  # pages end with a form feed


def assert_xref_valid(data: bytes) -> None:
    """The cross-reference table points at every object and startxref at the table."""
    start = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data)[1])
    assert data[start : start + 4] == b"xref"
    table = data[start : data.index(b"trailer", start)]
    first = re.match(rb"xref\s+(\d+)\s+(\d+)\s*\n", table)
    entries = table[first.end() :]
    for index in range(int(first[2])):
        entry = entries[20 * index : 20 * index + 20]
        if entry[17:18] == b"n":
            offset = int(entry[:10])
            assert re.match(rb"%d 0 obj" % (int(first[1]) + index), data[offset : offset + 20]), index


def assert_streams_exact(data: bytes) -> None:
    """As PDF/A requires: "stream" and an end of line, exactly /Length bytes, an end of line and
    "endstream", for every stream."""
    lengths = {int(m[1]): int(m[2]) for m in re.finditer(rb"(\d+) 0 obj\s*(\d+)\s*endobj", data)}
    found = 0
    for match in re.finditer(rb"(\d+) 0 obj\s*<<(?:(?!>>\s*stream).)*?/Length (\d+)( 0 R)?.*?>>\s*stream(\r\n|\n)",
                             data, re.S):
        length = lengths[int(match[2])] if match[3] else int(match[2])
        assert re.match(rb"(\r\n|\n|\r)endstream", data[match.end() + length :]), match[1]
        found += 1
    assert found == data.count(b"endstream")


# --- LibreOffice's own output ---------------------------------------------------------------

def _render(folder: Path, text: str) -> Path:
    source = folder / "p.yaml"
    source.write_text(text, encoding="utf-8")
    [checked] = check_paths([source])
    assert checked.ok, [str(problem) for problem in checked.problems]
    docx = folder / "p.docx"
    render_docx(checked.region.template, context(checked.project, checked.region, checked.result), docx)
    return docx


@pytest.mark.soffice
def test_libreoffice_splits_the_character_and_the_repair_joins_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    docx = _render(tmp_path, SPLIT)
    monkeypatch.setattr(textlayer, "repair", lambda pdf, docx: False)  # LibreOffice's PDF as it is
    pdf = convert_many([docx])[docx]
    monkeypatch.undo()
    before = pdftotext(pdf)  # the row: 二级指标, then 三级指标 in three lines
    assert before[before.index("数量指标") :][:5] == ["数量指标", "", "\ufffd", '\ufffd"bbbbbbbb', "bbbbbb"]
    assert textlayer.repair(pdf, docx)
    lines = pdftotext(pdf)
    assert lines[lines.index("数量指标") :][:4] == ["数量指标", "", '𠀀"bbbbbbbb', "bbbbbb"]
    assert not any("\ufffd" in line for line in lines)
    assert sum(line.count("𠀀") for line in lines) == 1
    assert_xref_valid(pdf.read_bytes())
    repaired = pdf.read_bytes()
    assert not textlayer.repair(pdf, docx)  # nothing left to repair
    assert pdf.read_bytes() == repaired


@pytest.mark.soffice
def test_built_pdfs_are_repaired_tagged_and_reproducible(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.yaml").write_text(SPLIT, encoding="utf-8")
    outputs = []
    for name in ("one", "two"):
        assert build([data], tmp_path / name).ok
        outputs.append((tmp_path / name / "2022" / "测试单位" / "测试项目.pdf").read_bytes())
    assert outputs[0] == outputs[1]
    pdf = tmp_path / "one" / "2022" / "测试单位" / "测试项目.pdf"
    lines = pdftotext(pdf)
    assert '𠀀"bbbbbbbb' in lines
    assert not any("\ufffd" in line for line in lines)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Tagged:\s+yes$", info, re.M)
    assert_xref_valid(outputs[0])
    merged = pdftotext(tmp_path / "one" / "2022" / "测试单位" / "全部项目.pdf")
    assert '𠀀"bbbbbbbb' in merged


@pytest.mark.soffice
def test_a_repaired_pdfa_file_stays_pdfa(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.yaml").write_text(SPLIT, encoding="utf-8")
    assert build([data], tmp_path / "out", Options(pdfa=True)).ok
    pdf = tmp_path / "out" / "2022" / "测试单位" / "测试项目.pdf"
    content = pdf.read_bytes()
    assert b"<pdfaid:part>2</pdfaid:part>" in content
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in content
    assert_xref_valid(content)
    assert_streams_exact(content)
    reader = PdfReader(pdf, strict=True)
    assert reader.trailer["/Root"]["/MarkInfo"]["/Marked"]  # tagged
    assert "/Metadata" in reader.trailer["/Root"]
    assert '𠀀"bbbbbbbb' in pdftotext(pdf)


# --- small PDFs in LibreOffice's layout -----------------------------------------------------


def _stream(number: int, data: bytes, length_object: int | None = None) -> bytes:
    packed = zlib.compress(data)
    length = b"%d 0 R" % length_object if length_object else b"%d" % len(packed)
    return b"%d 0 obj\n<</Length %s/Filter/FlateDecode>>\nstream\n%s\nendstream\nendobj\n\n" % (number, length, packed)


def _cmap(entries: dict[int, str]) -> bytes:
    lines = b"".join(b"<%02X> <%s>\n" % (code, text.encode() if re.fullmatch("[0-9A-F]+", text) else
                                         text.encode("utf-16-be").hex().upper().encode())
                     for code, text in entries.items())
    return (b"/CIDInit/ProcSet findresource begin\n12 dict begin\nbegincmap\n/CMapName/Adobe-Identity-UCS def\n"
            b"/CMapType 2 def\n1 begincodespacerange\n<00> <FF>\nendcodespacerange\n%d beginbfchar\n%sendbfchar\n"
            b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n" % (len(entries), lines))


def make_pdf(content: bytes, cmap: dict[int, str]) -> bytes:
    """One page in one font, laid out as LibreOffice writes it: objects in order, a content stream
    with an indirect length, a classic cross-reference table, a file ID and LibreOffice's checksum."""
    packed = zlib.compress(content)
    objects = [
        b"1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n\n",
        b"2 0 obj\n<</Type/Pages/Kids[3 0 R]/Count 1>>\nendobj\n\n",
        b"3 0 obj\n<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<</Font<</F1 5 0 R>>>>"
        b"/Contents 4 0 R>>\nendobj\n\n",
        _stream(4, content, length_object=6),
        b"5 0 obj\n<</Type/Font/Subtype/Type1/BaseFont/Helvetica/FirstChar 0/LastChar 255/Widths[%s]"
        b"/ToUnicode 7 0 R>>\nendobj\n\n" % b" ".join([b"600"] * 256),
        b"6 0 obj\n%d\nendobj\n\n" % len(packed),
        _stream(7, _cmap(cmap)),
    ]
    body = b"%PDF-1.6\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n"
    offsets = []
    for item in objects:
        offsets.append(len(body))
        body += item
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    xref += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = (b"trailer\n<</Size %d/Root 1 0 R\n/ID [ <E799D18DAED44D79E7483C327CF371AB>\n"
               b"<E799D18DAED44D79E7483C327CF371AB> ]\n/DocChecksum /36883A976F6DF8862FA9020B153558FF\n>>\n"
               % (len(objects) + 1))
    return body + xref + trailer + b"startxref\n%d\n%%%%EOF\n" % len(body)


def make_docx(path: Path, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as package:
        package.writestr("word/document.xml", f"<w:document><w:t>{text}</w:t></w:document>")
    return path


# A line "A" + the first half of 𠀀 (code 80 → D840), then the second half on the next line,
# given as ActualText (DC00) as LibreOffice does, followed by "AB".
SPLIT_CONTENT = (
    b"BT\n100 700 Td /F1 12 Tf<4180>Tj\nET\n"
    b"BT\n/Span<</ActualText<FEFFDC00>>>\nBDC\n100 680 Td /F1 12 Tf<80>Tj\nEMC\nET\n"
    b"BT\n107.2 680 Td /F1 12 Tf<4142>Tj\nET\n"
)
CMAP = {0x41: "0041", 0x42: "0042", 0x80: "D840"}


def _write(tmp_path: Path, content: bytes, cmap: dict[int, str], text: str) -> tuple[Path, Path]:
    pdf = tmp_path / "p.pdf"
    pdf.write_bytes(make_pdf(content, cmap))
    return pdf, make_docx(tmp_path / "p.docx", text)


def test_the_halves_are_read_as_one_character_with_the_word_it_starts(tmp_path: Path) -> None:
    pdf, docx = _write(tmp_path, SPLIT_CONTENT, CMAP, "A𠀀AB")
    assert pdftotext(pdf) == ["A\ufffd", "\ufffdAB", ""]
    assert textlayer.repair(pdf, docx)
    assert pdftotext(pdf) == ["A", "𠀀AB", ""]
    data = pdf.read_bytes()
    assert_xref_valid(data)
    assert_streams_exact(data)
    reader = PdfReader(pdf, strict=True)
    content = reader.pages[0].get_contents().get_data()
    assert content == (
        b"BT\n100 700 Td /F1 12 Tf/Span<</ActualText<FEFF0041>>>BDC <4180>Tj EMC\nET\n"
        b"BT\n/Span<</ActualText<FEFFD840DC00>>>\nBDC\n100 680 Td /F1 12 Tf<80>Tj\nEMC\nET\n"
        b"BT\n107.2 680 Td /F1 12 Tf<4142>Tj\nET\n"
    )
    cmap = reader.pages[0]["/Resources"]["/Font"]["/F1"]["/ToUnicode"].get_data()
    assert b"<80> <D840DC00>\n" in cmap  # for readers that ignore ActualText (they read 𠀀 twice)
    assert b"/Length %d/Filter/FlateDecode" % len(zlib.compress(content)) in data  # direct length now
    # LibreOffice's file ID and checksum stay where bundle.normalize_pdf stamps them
    assert data.count(b"/ID [ <E799D18DAED44D79E7483C327CF371AB>") == 1
    assert data.count(b"/DocChecksum /36883A976F6DF8862FA9020B153558FF") == 1


def test_the_same_pdf_is_repaired_to_the_same_bytes(tmp_path: Path) -> None:
    copies = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        pdf, docx = _write(tmp_path / name, SPLIT_CONTENT, CMAP, "A𠀀AB")
        textlayer.repair(pdf, docx)
        copies.append(pdf.read_bytes())
    assert copies[0] == copies[1]


def test_a_half_shared_by_two_characters_is_joined_in_place_only(tmp_path: Path) -> None:
    """𠀀 (D840 DC00) and 𠀋 (D840 DC0B) split in one font share the code of their first half: its
    ToUnicode entry cannot say both, so it stays; each place gets its ActualText."""
    content = SPLIT_CONTENT + (
        b"BT\n100 600 Td /F1 12 Tf<80>Tj\nET\n"
        b"BT\n/Span<</ActualText<FEFFDC0B>>>\nBDC\n100 580 Td /F1 12 Tf<80>Tj\nEMC\nET\n"
    )
    pdf, docx = _write(tmp_path, content, CMAP, "A𠀀AB 𠀋")
    assert textlayer.repair(pdf, docx)
    assert pdftotext(pdf) == ["A", "𠀀AB", "", "𠀋", ""]
    cmap = PdfReader(pdf).pages[0]["/Resources"]["/Font"]["/F1"]["/ToUnicode"].get_data()
    assert b"<80> <D840>\n" in cmap


def test_a_character_the_docx_does_not_hold_is_left_alone(tmp_path: Path) -> None:
    pdf, docx = _write(tmp_path, SPLIT_CONTENT, CMAP, "A𠀋AB")  # another character of the same plane
    before = pdf.read_bytes()
    assert not textlayer.repair(pdf, docx)
    assert pdf.read_bytes() == before


def test_without_supplementary_characters_the_pdf_is_not_read(tmp_path: Path) -> None:
    docx = make_docx(tmp_path / "p.docx", "项目名称 A&amp;B")
    assert textlayer.supplementary_characters(docx) == set()
    assert not textlayer.repair(tmp_path / "never-written.pdf", docx)


def test_supplementary_characters_of_the_docx(tmp_path: Path) -> None:
    docx = make_docx(tmp_path / "p.docx", "𠀀 &#x2A6A5; &#131083; 😀 中")
    assert textlayer.supplementary_characters(docx) == {"𠀀", "𪚥", "𠀋", "😀"}
    (tmp_path / "not.docx").write_bytes(b"not a zip")
    assert textlayer.supplementary_characters(tmp_path / "not.docx") == set()


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.6\nnot a pdf body\n%%EOF\n",  # no cross-reference table at all
        make_pdf(SPLIT_CONTENT, CMAP).replace(b"startxref\n", b"startxref\n1"),
        make_pdf(SPLIT_CONTENT + b"BI /W 1 /H 1 ID \xff EI\n", CMAP),  # an inline image
    ],
    ids=["not-a-pdf", "xref-elsewhere", "inline-image"],
)
def test_a_pdf_in_another_layout_is_left_alone(tmp_path: Path, data: bytes) -> None:
    pdf = tmp_path / "p.pdf"
    pdf.write_bytes(data)
    docx = make_docx(tmp_path / "p.docx", "A𠀀AB")
    assert not textlayer.repair(pdf, docx)
    assert pdf.read_bytes() == data
