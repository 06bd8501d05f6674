"""Characters that no installed font draws: a warning at the value, instead of a silent box in the PDF.

The fonts are the ones the conversion uses (reportgen's fonts.conf through fontconfig): Noto CJK
and Hanazono here, which draw CJK extension B (𠀀 𪚥) but not extension G (𰀀).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from reportgen import glyphs
from reportgen.load import load_file
from tests.conftest import BASE_PROJECT, run_cli

EXT_G = "\U00030000"  # 𰀀, CJK extension G: in no installed font
EXT_G_2 = "\U00030001"  # 𰀁
LISTING = "%{file}\t%{family}\n"
CHARSETS = "%{charset}\n"


def warning(where: str, key: str, char: str) -> str:
    return f"{where}: warning: {key}: 「{char}」(U+{ord(char):04X}) 没有已安装的字体能显示，PDF 中将显示为方框"


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of the test's own, and a coverage computed afresh in it."""
    home = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    glyphs.coverage.cache_clear()
    glyphs.font_listing.cache_clear()
    yield home
    glyphs.coverage.cache_clear()
    glyphs.font_listing.cache_clear()


def test_the_issue_example_warns_at_the_value(project_file) -> None:
    name = project_file(BASE_PROJECT.replace("项目名称: 测试项目", f'项目编号: "1"\n项目名称: 测试项目{EXT_G}'))
    result = run_cli("validate", name)
    assert result.output.splitlines() == [
        "p.yaml:4:7: warning: 项目名称: 「𰀀」(U+30000) 没有已安装的字体能显示，PDF 中将显示为方框",
        "检查了 1 个项目文件：0 个错误，1 个警告",
    ]
    assert result.exit_code == 0
    assert run_cli("validate", "--strict", name).exit_code == 1


def test_every_such_character_in_every_value_and_nothing_else(project_file) -> None:
    text = (
        BASE_PROJECT.replace("三级指标: 事件办理", f"三级指标: 事件{EXT_G}办理{EXT_G_2}{EXT_G}")
        # Drawn by Hanazono, or never drawn at all (joiner, variation selector, tab, line breaks): no warning.
        .replace("实际完成值: 重点解决", '实际完成值: "重点𠀀𪚥\\t解决\u200d✓\ufe0f"')
        .replace("实施单位: 测试单位", f"实施单位: |\n  测试\n  单位{EXT_G}")
    )
    result = run_cli("validate", project_file(text))
    assert result.output.splitlines() == [
        warning("p.yaml:4:7", "实施单位", EXT_G),
        warning("p.yaml:27:11", "绩效指标[2].三级指标", EXT_G),
        warning("p.yaml:27:11", "绩效指标[2].三级指标", EXT_G_2),
        "检查了 1 个项目文件：0 个错误，3 个警告",
    ]


def test_values_the_schema_refuses_are_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads the located tree, not the model: list items and unknown keys have their place."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text(f"备注:\n  - 甲\n  - 乙{EXT_G}\n其他:\n  说明: 丙{EXT_G_2}\n", encoding="utf-8")
    problems = glyphs.glyph_problems(load_file(tmp_path / "x.yaml"), "x.yaml")
    assert [str(p) for p in problems] == [
        warning("x.yaml:3:5", "备注[2]", EXT_G),
        warning("x.yaml:5:7", "其他.说明", EXT_G_2),
    ]


def test_a_unit_files_character_is_reported_once_at_the_unit_file(project_file) -> None:
    project = BASE_PROJECT.replace("实施单位: 测试单位\n", "")
    project_file(f"实施单位: 测试单位{EXT_G}\n", "unit/_unit.yaml")
    project_file(project, "unit/a.yaml")
    project_file(project.replace("项目名称: 测试项目", "项目名称: 另一项目"), "unit/b.yaml")
    result = run_cli("validate", "unit")
    assert result.output.splitlines() == [
        warning("unit/_unit.yaml:1:7", "实施单位", EXT_G),
        "检查了 2 个项目文件：0 个错误，1 个警告",
    ]


def test_coverage_is_cached_on_disk_by_font_files(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real = glyphs._fc_list

    def recording(format_string: str) -> str | None:
        asked.append(format_string)
        return real(format_string)

    monkeypatch.setattr(glyphs, "_fc_list", recording)
    first = glyphs.coverage()
    assert first is not None and asked == [LISTING, CHARSETS]
    cached = list((cache_home / "reportgen").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("glyphs-") and cached[0].suffix == ".txt"
    assert cached[0].read_text(encoding="ascii").splitlines()[0] == "20-7e"  # hex ranges, one a line

    glyphs.coverage.cache_clear()  # as in the next process
    glyphs.font_listing.cache_clear()
    asked.clear()
    second = glyphs.coverage()
    assert second is not None and asked == [LISTING]  # the font files listed, the charsets not asked
    assert second.ranges == first.ranges
    assert (second.missing(f"a{EXT_G}𠀀b"), second.missing("数字城管 𪚥")) == ([EXT_G], [])

    cached[0].write_text("damaged", encoding="ascii")
    glyphs.coverage.cache_clear()
    glyphs.font_listing.cache_clear()
    asked.clear()
    assert glyphs.coverage().ranges == first.ranges and asked == [LISTING, CHARSETS]  # asked again, rewritten
    assert cached[0].read_text(encoding="ascii").splitlines()[0] == "20-7e"


def test_the_cache_name_follows_the_font_files(tmp_path: Path) -> None:
    font, other = tmp_path / "a.ttf", tmp_path / "b.ttf"
    font.write_bytes(b"font")
    files = [str(font), str(tmp_path / "gone.ttf")]  # a file gone since fontconfig listed it counts for nothing
    key = glyphs.font_set_key(files)
    assert len(key) == 32 and glyphs.font_set_key(list(reversed(files))) == key == glyphs.font_set_key(files[:1])
    mtime = font.stat().st_mtime_ns + 1_000_000_000
    os.utime(font, ns=(mtime, mtime))
    updated = glyphs.font_set_key(files)  # same size, newer
    font.write_bytes(b"a larger font")
    os.utime(font, ns=(mtime, mtime))
    resized = glyphs.font_set_key(files)  # same time, other size
    other.write_bytes(b"font")
    added = glyphs.font_set_key([*files, str(other)])
    assert len({key, updated, resized, added}) == 4


def test_charsets_are_merged_into_ranges() -> None:
    listing = "20-7e a0 4e00-9fff\n20-7e a0 4e00-9fff\n7f a1-ff 9f00-9fa5 20000-2a6df\n"
    assert glyphs.parse_charsets(listing) == [(0x20, 0x7F), (0xA0, 0xFF), (0x4E00, 0x9FFF), (0x20000, 0x2A6DF)]


def test_without_fontconfig_nothing_is_known_and_nothing_is_said(project_file, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    name = project_file(BASE_PROJECT.replace("项目名称: 测试项目", f"项目名称: 测试项目{EXT_G}"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no fc-list (Windows, macOS without fontconfig)
    assert glyphs.coverage() is None
    result = run_cli("validate", name)
    assert result.output.splitlines() == ["检查了 1 个项目文件：0 个错误，0 个警告"]


@pytest.mark.soffice
def test_build_warns_and_counts_the_warning(project_file) -> None:
    name = project_file(BASE_PROJECT.replace("项目名称: 测试项目", f"项目名称: 测试项目{EXT_G}"))
    result = run_cli("build", name, "-o", "out")
    assert warning("p.yaml:3:7", "项目名称", EXT_G) in result.output.splitlines()
    assert result.exit_code == 0
    with open("out/2022/测试单位/汇总表.csv", encoding="utf-8-sig", newline="") as summary:
        rows = list(csv.reader(summary))
    assert rows[1][0] == f"测试项目{EXT_G}" and rows[1][-1] == "1"


def test_the_conversion_stops_without_a_simplified_chinese_font_and_sees_one_installed_since(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen import convert
    from reportgen.errors import ConvertError

    listings = iter(["/f/a.ttf\tDejaVu Sans\n", "/f/a.ttf\tDejaVu Sans\n",  # none, asked twice
                     "/f/a.ttf\tDejaVu Sans\n/f/b.ttc\tNoto Sans CJK JP,Noto Sans CJK SC\n"])
    monkeypatch.setattr(glyphs, "_fc_list", lambda _format: next(listings))
    with pytest.raises(ConvertError, match="没有安装简体中文字体"):
        convert.check_fonts()
    convert.check_fonts()  # the same process (the web page), once a font is installed: found, and then kept
    assert glyphs.font_listing() == [("/f/a.ttf", "DejaVu Sans"), ("/f/b.ttc", "Noto Sans CJK JP,Noto Sans CJK SC")]
