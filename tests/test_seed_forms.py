"""The nine seed forms, built from data/: every word and number of the originals, in place.

The text dumps of the original forms (tests/fixtures/seeds) are the ground truth. Their cells
are compared with the built PDFs' text; key cells are checked by table position in the DOCX;
fonts are embedded and the Chinese glyphs are the Simplified-Chinese shapes, by their pixels.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from docx import Document
from docx.oxml.ns import qn
from PIL import Image, ImageChops, ImageDraw, ImageFont
from pypdf import PdfReader

from reportgen.build import build

from .conftest import BASE_PROJECT, DATA

pytestmark = pytest.mark.soffice

SEEDS = Path(__file__).parent / "fixtures" / "seeds"  # copies of the original forms' text dumps
SERIF_CJK = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")


def normalized(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def seed_cells(chunk: str) -> list[str]:
    """Every non-empty cell of a seed dump (tab-separated), without the dump's HTML tags."""
    cells = []
    for line in chunk.splitlines():
        line = re.sub(r"</?p>", "", line).strip().lstrip("#").strip()
        cells.extend(normalized(cell) for cell in line.split("\t") if normalized(cell))
    return cells


def seed_forms() -> list[tuple[str, str]]:
    """(project name, that form's part of its seed dump) for all nine forms."""
    jinzhong = (SEEDS / "000_7469f6e025bd35f2.txt").read_text(encoding="utf-8")
    longhua = (SEEDS / "002_68788ef347ef5767.txt").read_text(encoding="utf-8")
    second = longhua.index("项目支出绩效自评表", 100)
    fengtai = (SEEDS / "003_64df670863fe3938.txt").read_text(encoding="utf-8")
    jinfeng = (SEEDS / "004_376dea5d61d0869c.txt").read_text(encoding="utf-8").split("# 项目支出绩效自评表")[1:]
    forms = [
        ("数字城管运行费", jinzhong),
        ("数字化城管信息系统运行项目（系统操作员）", longhua[:second]),
        ("网格信息采集工作", longhua[second:]),
        ("丰台区城指中心通讯保障资源运维项目", fengtai),
    ]
    forms += [(re.search(r"项目名称\t+(\S+)", part).group(1), part) for part in jinfeng]
    return forms


def pdf_texts(pdf: Path) -> list[str]:
    """The text layer read by two extractors (each mangles a few things the other keeps)."""
    poppler = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [normalized(poppler), normalized("".join(page.extract_text() for page in PdfReader(pdf).pages))]


def in_order(cell: str, text: str) -> bool:
    """The cell's characters appear in order (a wrapped cell interleaves with its neighbours)."""
    characters = iter(text)
    return all(character in characters for character in cell)


def pdf_of(built: Path, name: str) -> Path:
    [pdf] = [p for p in built.rglob(f"{name}.pdf")]
    return pdf


@pytest.mark.parametrize(("name", "chunk"), seed_forms(), ids=[name for name, _ in seed_forms()])
def test_every_seed_cell_is_in_the_built_pdf(built_data: Path, name: str, chunk: str) -> None:
    texts = pdf_texts(pdf_of(built_data, name))
    missing = [cell for cell in seed_cells(chunk) if not any(cell in t or in_order(cell, t) for t in texts)]
    assert missing == []


def test_fengtai_title_block_and_footnotes_verbatim(built_data: Path) -> None:
    text = pdf_texts(pdf_of(built_data, "丰台区城指中心通讯保障资源运维项目"))[1]
    assert text.startswith(normalized("附件3：项目支出事后绩效自评表（2019年度）"))
    seed = (SEEDS / "003_64df670863fe3938.txt").read_text(encoding="utf-8")
    notes = [line.strip() for line in seed.splitlines() if re.match(r"\s*(注：)?[1-4]\.\D", line)]
    assert len(notes) == 4
    for note in notes:
        assert normalized(note) in text


def cell_text(table, row: int, column: int) -> str:
    return table.rows[row].cells[column].text.strip()


def test_longhua_money_and_total_cells(built_data: Path) -> None:
    document = Document(str(built_data.joinpath("2022", "深圳市龙华区平安建设中心", "数字化城管信息系统运行项目（系统操作员）.docx")))
    row = next(r for t in document.tables for r in t.rows if any(c.text.strip() == "年度资金总额" for c in r.cells))
    values = [c.text.strip() for c in row.cells]
    start = values.index("年度资金总额") + 1
    assert values[start : start + 6] == ["1663900.00", "1821100.00", "1808698.26", "10", "99.32", "9.93"]
    indicators = document.tables[-1]
    total = [c.text.strip() for c in indicators.rows[-1].cells]
    assert total[0] == "总分" and total[-3:] == ["100", "99.93", "—"]


def vertical_merges(table, column: int) -> list[str]:
    """The w:vMerge value of a column's cell in each row ('' where the cell is not merged)."""
    marks = []
    for row in table._tbl.tr_lst:
        cells = row.tc_lst
        merge = cells[column].tcPr.find(qn("w:vMerge")) if column < len(cells) and cells[column].tcPr is not None else None
        marks.append("" if merge is None else merge.get(qn("w:val"), "continue"))
    return marks


def test_yinchuan_level1_column_is_merged_over_each_group(built_data: Path) -> None:
    document = Document(str(built_data.joinpath("2023", "金凤区智慧城市运营中心", "政府批准聘用人员支出.docx")))
    table = next(t for t in document.tables if any("一级指标" in c.text for c in t.rows[0].cells))
    header = [c.text.strip() for c in table.rows[0].cells]
    column = table._tbl.tr_lst[0].tc_lst.index(next(tc for tc in table._tbl.tr_lst[0].tc_lst if "一级指标" in "".join(tc.itertext())))
    marks = [m for m in vertical_merges(table, column)[1:] if m]
    # 产出指标 over 4 rows, 效益指标 over 4, 满意度 over 1 (a single row is not merged).
    assert marks[:8] == ["restart", "continue", "continue", "continue", "restart", "continue", "continue", "continue"]
    assert "三级指标" in header


def test_every_font_is_embedded(built_data: Path) -> None:
    for pdf in built_data.rglob("*.pdf"):
        listing = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
        rows = listing.splitlines()[2:]
        assert rows and all(row.split()[-5] == "yes" for row in rows), (pdf, listing)


# --- glyph shapes: Simplified Chinese, not the Japanese forms of the same code points --------

GLYPHS = "骨角偏区"


def _ink(image: Image.Image) -> Image.Image:
    """The character's ink, cropped to its bounding box and scaled to 64×64, black on white."""
    gray = image.convert("L").point(lambda v: 0 if v < 128 else 255)
    box = ImageChops.invert(gray).getbbox()
    return gray.crop(box).resize((64, 64))


def _reference(character: str, face: int) -> Image.Image:
    font = ImageFont.truetype(str(SERIF_CJK), 200, index=face)
    canvas = Image.new("L", (260, 260), 255)
    ImageDraw.Draw(canvas).text((20, 0), character, font=font, fill=0)
    return _ink(canvas)


def _difference(a: Image.Image, b: Image.Image) -> int:
    return sum(1 for pixel in ImageChops.difference(a, b).tobytes() if pixel > 128)


def test_chinese_glyphs_are_drawn_with_simplified_chinese_shapes(tmp_path: Path) -> None:
    faces = {ImageFont.truetype(str(SERIF_CJK), 20, index=i).getname()[0]: i for i in range(5)}
    sc, jp = faces["Noto Serif CJK SC"], faces["Noto Serif CJK JP"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.yaml").write_text(BASE_PROJECT.replace("项目名称: 测试项目", f"项目名称: {GLYPHS}"), encoding="utf-8")
    assert build([data], tmp_path / "out").ok
    pdf = next((tmp_path / "out").rglob(f"{GLYPHS}.pdf"))
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    word = re.search(rf'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">{GLYPHS}</word>', boxes)
    x0, y0, x1, y1 = (float(v) for v in word.groups())
    scale = 600 / 72
    subprocess.run(
        ["pdftoppm", "-r", "600", "-f", "1", "-l", "1", "-png", "-singlefile", "-x", str(int(x0 * scale)), "-y",
         str(int(y0 * scale)), "-W", str(int((x1 - x0) * scale) + 1), "-H", str(int((y1 - y0) * scale) + 1),
         str(pdf), str(tmp_path / "word")],
        check=True,
    )
    word_image = Image.open(tmp_path / "word.png")
    step = word_image.width / len(GLYPHS)
    for index, character in enumerate(GLYPHS):
        drawn = _ink(word_image.crop((int(index * step), 0, int((index + 1) * step), word_image.height)))
        to_sc, to_jp = _difference(drawn, _reference(character, sc)), _difference(drawn, _reference(character, jp))
        assert to_sc < to_jp, f"{character}: {to_sc} pixels from the SC shape, {to_jp} from the JP shape"


HOSTILE = "A&B <x> {{ 7*7 }} {% if x %} 𠀀 𪚥"
SEED_PROJECTS = {
    "jinzhong": "2020/晋中市数字化城市管理中心/数字城管运行费.yaml",
    "shenzhen-longhua": "2022/深圳龙华区平安建设中心/网格信息采集工作.yaml",
    "beijing-fengtai": "2019/北京丰台区城市管理监督指挥中心/通讯保障资源运维项目.yaml",
    "yinchuan-jinfeng": "2023/银川金凤区智慧城市运营中心/办公经费.yaml",
    "national": "2023/银川金凤区智慧城市运营中心/办公经费.yaml",
}


def test_hostile_text_in_every_region_comes_out_verbatim(tmp_path: Path) -> None:
    """Template syntax, XML specials and rare CJK typed by a clerk are printed as typed."""
    import yaml

    for region, relative in SEED_PROJECTS.items():
        source = DATA / relative
        project = yaml.safe_load(source.read_text(encoding="utf-8"))
        unit = yaml.safe_load((source.parent / "_unit.yaml").read_text(encoding="utf-8"))
        project = {**unit, **project, "地区": region, "实施单位": f"{region} 单位", "项目名称": HOSTILE}
        for key in ("预期目标", "实际完成情况", "项目概况", "其他需说明的问题"):
            if key in project:
                project[key] = HOSTILE
        project["绩效指标"][0]["三级指标"] = HOSTILE
        folder = tmp_path / "data" / region
        folder.mkdir(parents=True)
        (folder / "p.yaml").write_text(yaml.safe_dump(project, allow_unicode=True), encoding="utf-8")
    report = build([tmp_path / "data"], tmp_path / "out")
    assert report.ok, report.failures
    for region in SEED_PROJECTS:
        [pdf] = [p for p in (tmp_path / "out").rglob("*.pdf") if p.parent.name == f"{region} 单位" and p.stem != "全部项目"]
        assert any(normalized(HOSTILE) in text for text in pdf_texts(pdf)), region
