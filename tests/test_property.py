"""Text is never lost: generated projects with arbitrary Unicode survive into DOCX and PDF.

`make test` runs a few examples; `make fuzz` (REPORTGEN_FUZZ_EXAMPLES=500) runs a long search.
"""

from __future__ import annotations

import os
import subprocess
import unicodedata
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from docx import Document
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from reportgen.convert import convert_many
from reportgen.render import render_docx
from reportgen.validate import check_paths
from reportgen.view import context

pytestmark = pytest.mark.soffice

EXAMPLES = int(os.environ.get("REPORTGEN_FUZZ_EXAMPLES", "6"))
# Each example converts a PDF (about a second): shrink only in the long run, where it pays.
PHASES = tuple(Phase) if EXAMPLES > 20 else (Phase.explicit, Phase.reuse, Phase.generate)
# Rare CJK (𠀀 𪚥, extension B) is two UTF-16 units; LibreOffice may break a line between them,
# and the text layer is repaired (see SPLIT below).
SPECIALS = ["&", "<", ">", '"', "'", "{{ 7*7 }}", "{% if x %}", "{#", "𠀀", "𪚥", "😀", "\x01", "\x0b", "\u200b", "骨角偏区"]

# What a clerk types: ASCII, Latin-1, Greek, Cyrillic, Chinese quotes and punctuation, CJK,
# full-width forms. Left out on purpose: characters no installed font has (drawn as
# a box and missing from the text layer) and ones whose glyph the font shares with another code
# point (〜/～, U+2010/2011 hyphens), which any extractor reads back as the other character.
_RANGES = [
    (0x20, 0x7E), (0xA1, 0xFF), (0x391, 0x3C9), (0x410, 0x44F), (0x2018, 0x201D), (0x2026, 0x2026),
    (0x3001, 0x3002), (0x300A, 0x3011), (0x4E00, 0x9FFF), (0xFF01, 0xFF5E),
]
_LETTERS = st.one_of([st.characters(min_codepoint=low, max_codepoint=high) for low, high in _RANGES]).filter(
    lambda ch: unicodedata.category(ch) not in ("Cn", "Cs", "Co", "Cc", "Cf", "Mn", "Me", "Mc")
)
texts = st.lists(st.one_of(st.text(_LETTERS, min_size=1, max_size=12), st.sampled_from(SPECIALS)), min_size=1, max_size=6).map(
    "".join
)
required_texts = texts.filter(str.strip)  # 项目名称 and 三级指标 may not be blank
long_texts = st.builds(lambda t, n: (t * n)[:20000], texts, st.integers(1, 400))
amounts = st.decimals(min_value=1, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


def visible(text: str) -> str:
    """What the PDF's text layer must contain: no whitespace, no control or format characters."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf"))


@st.composite
def projects(draw: st.DrawFn) -> dict:
    budget = draw(amounts)
    executed = min(draw(amounts), budget)
    names = draw(st.lists(required_texts, min_size=3, max_size=3))
    return {
        "地区": draw(st.sampled_from(["shenzhen-longhua", "national"])),
        "年度": 2024,
        "项目名称": draw(required_texts),
        "实施单位": draw(texts),
        "项目资金": {
            "金额单位": "元",
            "年度资金总额": {"年初预算数": str(budget), "全年预算数": str(budget), "全年执行数": str(executed)},
            "分值": "10",
        },
        "预期目标": draw(long_texts),
        "实际完成情况": draw(texts),
        "绩效指标": [
            {"一级指标": level1, "二级指标": draw(texts), "三级指标": name, "年度指标值": draw(texts),
             "实际完成值": draw(texts), "分值": str(weight), "得分": str(weight), "偏差原因分析及改进措施": draw(texts)}
            for level1, name, weight in zip(("产出指标", "效益指标", "满意度指标"), names, (50, 30, 10), strict=True)
        ],
    }


def given_texts(project: dict) -> list[str]:
    """Every text the clerk typed (the region id is a setting, not printed text)."""
    found = []
    for key, value in project.items():
        if key == "地区":
            continue
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for item in value for v in item.values())
    return [text for text in found if visible(text)]


# A word that does not fit the narrow 三级指标 column right after 𠀀: LibreOffice breaks the line
# between the two halves of 𠀀 and writes U+FFFD for each into the text layer (textlayer repairs it).
SPLIT = {
    "地区": "shenzhen-longhua",
    "年度": 2024,
    "项目名称": "测试𪚥项目",
    "实施单位": "测试单位",
    "项目资金": {
        "金额单位": "元",
        "年度资金总额": {"年初预算数": "1000.00", "全年预算数": "1000.00", "全年执行数": "990.00"},
        "分值": "10",
    },
    "预期目标": "目标",
    "实际完成情况": "完成",
    "绩效指标": [
        {"一级指标": level1, "二级指标": "指标", "三级指标": name, "年度指标值": "值", "实际完成值": "值",
         "分值": str(weight), "得分": str(weight), "偏差原因分析及改进措施": "无"}
        for level1, name, weight in zip(
            ("产出指标", "效益指标", "满意度指标"), ('𠀀"bbbbbbbbbbbbbb', "𪚥", "字𠀀"), (50, 30, 10), strict=True
        )
    ],
}


@settings(
    max_examples=EXAMPLES, deadline=None, phases=PHASES, derandomize=EXAMPLES <= 20,  # CI: same examples
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(project=projects())
@example(project=SPLIT)
def test_every_text_and_number_reaches_the_pdf(project: dict, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    source = folder / "p.yaml"
    source.write_text(yaml.safe_dump(project, allow_unicode=True), encoding="utf-8")
    [checked] = check_paths([source])
    assert checked.ok, [str(p) for p in checked.problems]
    docx = folder / "p.docx"
    render_docx(checked.region.template, context(checked.project, checked.region, checked.result), docx)
    Document(str(docx))  # opens: the package and its XML are well-formed
    outcome = convert_many([docx])[docx]
    assert isinstance(outcome, Path), outcome
    # The text layer, read by two extractors: each has quirks (pdftotext drops overlapping
    # glyphs, pypdf mis-maps a few), so a character counts as present if either finds it.
    pypdf_text = visible("".join(page.extract_text() for page in PdfReader(outcome).pages))
    poppler = subprocess.run(["pdftotext", str(outcome), "-"], capture_output=True, text=True, check=True)
    pdf_text = visible(poppler.stdout)
    found = Counter(pypdf_text) | Counter(pdf_text)
    # Every character the clerk typed is on the page, as often as typed. Order is not compared:
    # extractors interleave the lines of neighbouring cells, and runs in fallback fonts.
    typed = Counter(visible("".join(given_texts(project))))
    assert typed - found == Counter(), outcome
    printed = context(checked.project, checked.region, checked.result)
    numbers = [*printed["funds"]["total"].values(), printed["funds"]["score"], printed["total"]["score"]]
    for number in filter(None, numbers):
        assert number in pdf_text, number
    budget = project["项目资金"]["年度资金总额"]["年初预算数"]
    if checked.region.money.unit == "元":  # the form prints the amount exactly as given
        assert f"{Decimal(budget):.2f}" in pdf_text
