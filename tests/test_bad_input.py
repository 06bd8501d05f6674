"""Bad input for ``reportgen validate``: every case is one broken project file and its exact output.

Layout
------
``CASES`` is a table of ``Case(id, content, expected, exit_code)``:

* ``content`` is the file's exact bytes (so BOMs, GBK, UTF-16 and NUL bytes are exact). Most cases
  are the valid base project with one thing changed: ``zh({line: new text})`` replaces lines of
  ``BASE_ZH`` by their 1-based number (a replacement may hold several lines; ``None`` deletes the
  line) and ``append=`` adds lines after line 39. ``en(...)`` does the same with ``BASE_EN``, the
  same project with English keys and identical line numbers.
* ``expected`` lists every problem line ``p.yaml:line:col: severity: key path: message`` in
  output order; the summary line ``检查了 1 个项目文件：X 个错误，Y 个警告`` is derived from it.
* ``exit_code`` is 0 (no errors) or 1 (errors); anything else (3: internal error) is a bug.

Each file is written to ``tmp_path`` as ``p.yaml`` and checked with ``reportgen validate p.yaml``
from ``tmp_path``, so paths print bare. Every run must also finish within ``MAX_SECONDS``.

``FOLDER_CASES`` does the same for several files in one folder (unit files, duplicate names).

The expectations say what a clerk should see, not what the code happens to print: cases marked
``# EXPECTED FIX`` describe behaviour the loader/validator does not have yet.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reportgen.cli import main
from reportgen.regions import all_regions

FILE = "p.yaml"
MAX_SECONDS = 2.0

# The valid base project: 深圳龙华 rules, 产出 50 + 效益 30 + 满意度 10 + 预算执行 10 = 100.
# 执行率 900 / 1000 = 90% → 9 分; total 99.
BASE_ZH: tuple[str, ...] = (
    "# 深圳龙华：社区安全培训项目（测试用）",  # 1
    "项目名称: 社区安全培训",  # 2
    '年度: "2022"',  # 3
    "地区: 深圳龙华",  # 4
    "项目资金:",  # 5
    "  金额单位: 元",  # 6
    "  年度资金总额:",  # 7
    '    年初预算数: "1000.00"',  # 8
    '    全年预算数: "1000.00"',  # 9
    '    全年执行数: "900.00"',  # 10
    "  当年财政拨款:",  # 11
    '    年初预算数: "1000.00"',  # 12
    '    全年预算数: "1000.00"',  # 13
    '    全年执行数: "900.00"',  # 14
    '  分值: "10"',  # 15
    '  执行率: "90.00"',  # 16
    '  得分: "9"',  # 17
    "绩效指标:",  # 18
    "  - 一级指标: 产出指标",  # 19
    "    二级指标: 数量指标",  # 20
    "    三级指标: 培训场次",  # 21
    '    年度指标值: "10"',  # 22
    '    实际完成值: "10"',  # 23
    '    分值: "50"',  # 24
    '    得分: "50"',  # 25
    "  - 一级指标: 效益指标",  # 26
    "    二级指标: 社会效益指标",  # 27
    "    三级指标: 群众安全感",  # 28
    "    年度指标值: 达成年度指标",  # 29
    "    实际完成值: 达成年度指标",  # 30
    '    分值: "30"',  # 31
    '    得分: "30"',  # 32
    "  - 一级指标: 满意度指标",  # 33
    "    二级指标: 服务对象满意度指标",  # 34
    "    三级指标: 市民满意度",  # 35
    '    年度指标值: "≥90%"',  # 36
    '    实际完成值: "95%"',  # 37
    '    分值: "10"',  # 38
    '    得分: "10"',  # 39
)

_ENGLISH = {
    "项目名称": "name", "年度": "year", "地区": "region", "项目资金": "funds", "金额单位": "unit",
    "年度资金总额": "total", "当年财政拨款": "fiscal", "年初预算数": "initial", "全年预算数": "annual",
    "全年执行数": "executed", "分值": "weight", "执行率": "rate", "得分": "score", "绩效指标": "indicators",
    "一级指标": "level1", "二级指标": "level2", "三级指标": "name", "年度指标值": "target",
    "实际完成值": "actual",
}


def _to_english(line: str) -> str:
    indent = line[: len(line) - len(line.lstrip(" -"))]
    key, sep, value = line[len(indent):].partition(":")
    if not sep or key not in _ENGLISH:
        return line
    value = " shenzhen-longhua" if key == "地区" else value
    return f"{indent}{_ENGLISH[key]}:{value}"


BASE_EN: tuple[str, ...] = tuple(_to_english(line) for line in BASE_ZH)


def project(
    changes: Mapping[int, str | None] | None = None, *, base: Sequence[str] = BASE_ZH, append: str = ""
) -> str:
    """The base project's text with lines replaced (by 1-based number), deleted (None) or appended."""
    lines: list[str] = list(base)
    for number in sorted(changes or {}, reverse=True):
        new = (changes or {})[number]
        if new is None:
            del lines[number - 1]
        else:
            lines[number - 1] = new
    if append:
        lines.append(append.removesuffix("\n"))
    return "\n".join(lines) + "\n"


def zh(changes: Mapping[int, str | None] | None = None, *, append: str = "") -> bytes:
    return project(changes, append=append).encode("utf-8")


def en(changes: Mapping[int, str | None] | None = None, *, append: str = "") -> bytes:
    return project(changes, base=BASE_EN, append=append).encode("utf-8")


def line(severity: str, where: str, key: str, message: str, file: str = FILE) -> str:
    """One expected problem line; ``where`` is "line:col", ``key`` may be empty."""
    return f"{file}:{where}: {severity}: {key + ': ' if key else ''}{message}"


def error(where: str, key: str, message: str, file: str = FILE) -> str:
    return line("error", where, key, message, file)


def warning(where: str, key: str, message: str, file: str = FILE) -> str:
    return line("warning", where, key, message, file)


def summary(expected: Sequence[str], files: int = 1) -> str:
    errors = sum(": error: " in item for item in expected)
    return f"检查了 {files} 个项目文件：{errors} 个错误，{len(expected) - errors} 个警告"


@dataclass(frozen=True)
class Case:
    id: str
    content: bytes
    expected: tuple[str, ...]
    exit_code: int


def case(id: str, content: bytes, expected: Sequence[str], exit_code: int) -> Case:
    return Case(id, content, tuple(expected), exit_code)


OK, FAIL = 0, 1

# --- messages the loader uses again and again -------------------------------------------------
UNCLOSED = "引号没有闭合"
INDENT = "缩进不一致：同一层的键必须左对齐"
INDENT_LIST = "缩进不一致：列表的各项必须左对齐"
COLON = "此处不能出现冒号「:」；值中含有冒号时请给整个值加引号"
NO_COLON = "缺少冒号「:」：每行应写成「键: 值」（冒号后有一个空格）"
TAB = "含有制表符(Tab)；YAML 的缩进只能用空格"
ESCAPE = "双引号中的反斜杠「\\」有特殊含义；含有反斜杠的值请改用单引号"
BAD_START = "此处的字符不能作为值的开头（如 @、`、!、]、}）；请给整个值加引号"
ALIAS = "不支持 YAML 锚点与别名（& 和 *）；请把内容直接写出"
CONTROL = "文件中有不允许的控制字符（U+0007）；请删除"
READ_AS_GBK = "文件不是 UTF-8 编码，已按 GBK/GB18030 读取；建议在编辑器中另存为 UTF-8"
UNKNOWN_ENCODING = "文件编码无法识别（既不是 UTF-8 也不是 GBK）；请在编辑器中另存为 UTF-8"
NUL = "文件中有空字符(NUL)，可能不是文本文件或编码错误；请另存为 UTF-8"
EMPTY = "文件为空，没有任何内容"
NOT_MAPPING = "文件顶层应为「键: 值」映射，实际是{}"
REGIONS = f"（可用：{'、'.join(all_regions())}）"


def dup(first_line: int) -> str:
    return f"键重复（第 {first_line} 行已有同名键）；请删除或合并其中一个"


def same_field(first_line: int, first_key: str, label: str) -> str:
    return f"与第 {first_line} 行的「{first_key}」重复，二者都表示「{label}」"


def tag(name: str) -> str:
    return f"不支持的 YAML 标签 {name}，请删除"


def computed_differs(entered: str, computed: str) -> str:
    rule = "正向指标：B / A × 分值，最高为分值"
    return f"填写的得分 {entered} 与按规则计算的 {computed} 不一致（{rule}），已保留填写值"


BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
).encode()

TEXT = "\n".join(BASE_ZH) + "\n"

# fmt: off
SYNTAX = [
    # Was wrong before the fix: an unclosed " runs on to the next quote; point at the quote (now "缩进不一致" at 3:6).
    case("yaml-unclosed-double-quote", zh({2: '项目名称: "社区安全培训'}),
         [error("2:7", "", UNCLOSED)], FAIL),
    # Was wrong before the fix: the error is reported at the end of the file (40:1), the quote opens at 2:7.
    case("yaml-unclosed-single-quote", zh({2: "项目名称: '社区安全培训"}),
         [error("2:7", "", UNCLOSED)], FAIL),
    # Was wrong before the fix: same inside a list item; currently "缩进不一致" at 22:13.
    case("yaml-unclosed-quote-in-list-item", zh({21: '    三级指标: "培训场次'}),
         [error("21:11", "", UNCLOSED)], FAIL),
    # Was wrong before the fix: "社区"安全培训 is common in Chinese text; currently "缩进不一致" at 2:11.
    case("yaml-text-after-closing-quote", zh({2: '项目名称: "社区"安全培训'}),
         [error("2:11", "", "引号后面还有文字；值中含有引号时，请用单引号把整个值括起来")], FAIL),
    case("yaml-key-indented-too-far", zh({10: '     全年执行数: "900.00"'}),
         [error("10:6", "", INDENT)], FAIL),
    case("yaml-key-indented-too-little", zh({10: '   全年执行数: "900.00"'}),
         [error("10:4", "", INDENT)], FAIL),
    # Was wrong before the fix: a misaligned "- " item gets the list message the loader already has.
    case("yaml-list-item-misaligned", zh({26: "   - 一级指标: 效益指标"}),
         [error("26:4", "", INDENT_LIST)], FAIL),
    # Was wrong before the fix: line 6 pulled to column 1 makes line 7 too deep; currently the colon message
    # ("请给整个值加引号") at 7:9, which sends the clerk to quote a value that is fine.
    case("yaml-child-key-dedented", zh({6: "金额单位: 元"}),
         [error("7:3", "", INDENT)], FAIL),
    # Was wrong before the fix: reported on the line after (3:3) as "此处不能出现冒号…请给整个值加引号"; the
    # colon is missing on line 2.
    case("yaml-missing-colon", zh({2: "项目名称 社区安全培训"}),
         [error("2:1", "", NO_COLON)], FAIL),
    # Was wrong before the fix: currently the colon message at 7:9 (the next key's colon).
    case("yaml-missing-colon-nested", zh({6: "  金额单位 元"}),
         [error("6:3", "", NO_COLON)], FAIL),
    # Was wrong before the fix: reported at 41:1, a line that does not exist, with "上一行的引号没有闭合".
    case("yaml-missing-colon-last-line", zh(append="备注"),
         [error("40:1", "", NO_COLON)], FAIL),
    # Was wrong before the fix: the full-width colon is the clerk's commonest slip; name it (now the colon
    # message at 3:3).
    case("yaml-full-width-colon", zh({2: "项目名称：社区安全培训"}),
         [error("2:1", "", "键与值之间用了中文冒号「：」；请改为英文冒号加空格「: 」")], FAIL),
    case("yaml-colon-space-in-plain-value", zh({2: "项目名称: 培训: 第一期"}),
         [error("2:9", "", COLON)], FAIL),
    case("yaml-colon-without-space-is-text", zh({2: "项目名称: 培训:第一期"}), [], OK),
    case("yaml-tab-indentation", zh({6: "\t金额单位: 元"}),
         [error("6:1", "", TAB)], FAIL),
    case("yaml-unknown-escape", zh({2: '项目名称: "C:\\data\\培训"'}),
         [error("2:11", "", ESCAPE)], FAIL),
    # Was wrong before the fix: "\u" not followed by 4 hex digits falls through to PyYAML's English text.
    case("yaml-bad-unicode-escape", zh({2: '项目名称: "C:\\users\\培训"'}),
         [error("2:12", "", ESCAPE)], FAIL),
    # Was wrong before the fix: PyYAML's English "expected the node content, but found ']'".
    case("yaml-stray-closing-bracket", zh({2: "项目名称: ]社区安全培训"}),
         [error("2:7", "", BAD_START)], FAIL),
    # Was wrong before the fix: same for "}".
    case("yaml-stray-closing-brace", zh({2: "项目名称: }社区安全培训"}),
         [error("2:7", "", BAD_START)], FAIL),
    case("yaml-bracket-inside-text-is-fine", zh({2: "项目名称: 社区安全培训]"}), [], OK),
    # Was wrong before the fix: English "expected ',' or ']', but got ':'" at 3:3; the "[" opens at 2:7.
    case("yaml-unclosed-flow-list", zh({2: "项目名称: [社区安全培训"}),
         [error("2:7", "", "方括号「[」没有闭合；值以「[」开头时请给整个值加引号")], FAIL),
    # Was wrong before the fix: the loader's own "cannot start" message never matches PyYAML's text
    # ("found character '@' that cannot start any token"), so English leaks out.
    case("yaml-at-sign-at-value-start", zh({2: "项目名称: @社区安全培训"}),
         [error("2:7", "", BAD_START)], FAIL),
    case("yaml-backtick-at-value-start", zh({2: "项目名称: `社区安全培训`"}),
         [error("2:7", "", BAD_START)], FAIL),
    # Was wrong before the fix: English "but found another document".
    case("yaml-second-document", zh(append="---\n备注: 无"),
         [error("40:1", "", "一个文件只能写一个项目：请删除「---」，或把其后的内容移到另一个文件")], FAIL),
    case("yaml-document-start-marker-is-fine", b"---\n" + zh(), [], OK),
]

DUPLICATES = [
    case("dup-top-level", zh(append="项目名称: 另一个项目"),
         [error("40:1", "项目名称", dup(2))], FAIL),
    case("dup-in-funds", zh({15: '  分值: "10"\n  金额单位: 万元'}),
         [error("16:3", "项目资金.金额单位", dup(6))], FAIL),
    case("dup-in-total-row", zh({10: '    全年执行数: "900.00"\n    全年执行数: "800.00"'}),
         [error("11:5", "项目资金.年度资金总额.全年执行数", dup(10))], FAIL),
    case("dup-in-indicator", zh({31: '    分值: "30"\n    分值: "20"'}),
         [error("32:5", "绩效指标[2].分值", dup(31))], FAIL),
    # EXPECTED FIX (3 cases): say where the other spelling stands, as plain duplicates do;
    # currently "与本层的另一个键重复，二者都表示「项目名称」".
    case("dup-two-spellings-top-level", zh(append="name: 另一个项目"),
         [error("40:1", "name", same_field(2, "项目名称", "项目名称"))], FAIL),
    case("dup-two-spellings-in-indicator", zh({21: "    三级指标: 培训场次\n    指标名称: 培训场次"}),
         [error("22:5", "绩效指标[1].指标名称", same_field(21, "三级指标", "三级指标"))], FAIL),
    case("dup-two-spellings-english-first", en(append="项目名称: 另一个项目"),
         [error("40:1", "项目名称", same_field(2, "name", "项目名称"))], FAIL),
]

YAML_FEATURES = [
    case("anchor-without-alias-is-harmless", zh({2: "项目名称: &n 社区安全培训"}), [], OK),
    case("alias", zh({2: "项目名称: &n 社区安全培训\n项目概况: *n"}),
         [error("3:7", "", ALIAS)], FAIL),
    case("billion-laughs", BILLION_LAUGHS, [error("2:8", "", ALIAS)], FAIL),
    case("merge-key-with-alias",
         zh({11: '  其他资金: &row {年初预算数: "0"}\n  当年财政拨款:\n    <<: *row'}),
         [error("13:9", "", ALIAS)], FAIL),
    case("merge-key-inline", zh({11: '  当年财政拨款:\n    <<: {年初预算数: "1000.00"}', 12: None}),
         [error("12:5", "项目资金.当年财政拨款.<<", "未知的键「<<」")], FAIL),
    case("python-object-tag", zh({2: '项目名称: !!python/object/apply:os.system ["echo hi"]'}),
         [error("2:7", "项目名称", tag("!!python/object/apply:os.system"))], FAIL),
    # Was wrong before the fix: any !!python/… tag with an empty value is accepted as text "" (exit 0).
    case("python-name-tag", zh({2: "项目名称: !!python/name:os.system"}),
         [error("2:7", "项目名称", tag("!!python/name:os.system"))], FAIL),
    case("custom-tag-on-text", zh({2: "项目名称: !secret 社区安全培训"}),
         [error("2:7", "项目名称", tag("!secret"))], FAIL),
    # Was wrong before the fix: "!" followed by Chinese is text, not a tag; PyYAML's English "expected URI".
    case("exclamation-mark-at-value-start", zh({2: "项目名称: !重点项目"}),
         [error("2:8", "", BAD_START)], FAIL),  # PyYAML marks the character after the "!"
    case("custom-tag-on-mapping", zh({5: "项目资金: !funds"}),
         [error("5:7", "项目资金", tag("!funds"))], FAIL),
    case("standard-str-tag-is-fine", zh({2: "项目名称: !!str 社区安全培训"}), [], OK),
    # Was wrong before the fix: 5000 nested "[" crash the composer (RecursionError → exit 3, internal error).
    case("deeply-nested-brackets", zh(append="项目概况: " + "[" * 5000 + "]" * 5000),
         [error("40:56", "", "嵌套层数过多；请检查「[」「{」或缩进是否多写了")], FAIL),  # the 51st level
]

SHAPES = [
    case("empty-file", b"", [error("1:1", "", EMPTY)], FAIL),
    case("comment-only-file", "# 项目文件\n# 待填写\n".encode(), [error("1:1", "", EMPTY)], FAIL),
    case("whitespace-only-file", b"\n  \n\n", [error("1:1", "", EMPTY)], FAIL),
    case("top-level-list", "- 项目名称: 社区安全培训\n- 年度: 2022\n".encode(),
         [error("1:1", "", NOT_MAPPING.format("列表"))], FAIL),
    case("top-level-scalar", "社区安全培训\n".encode(),
         [error("1:1", "", NOT_MAPPING.format("单个值"))], FAIL),
    case("top-level-scalar-after-comment", '# 说明\n\n"社区安全培训"\n'.encode(),
         [error("3:1", "", NOT_MAPPING.format("单个值"))], FAIL),
]

ENCODINGS = [
    case("utf8-bom", b"\xef\xbb\xbf" + zh(), [], OK),
    case("utf8-bom-lines-still-count", b"\xef\xbb\xbf" + zh({2: "项目名: 社区安全培训"}),
         [error("2:1", "项目名", "未知的键「项目名」，是否想写「项目名称」？")], FAIL),
    case("utf16-le-bom", TEXT.encode("utf-16"), [], OK),
    case("utf16-be-bom", b"\xfe\xff" + TEXT.encode("utf-16-be"), [], OK),
    case("utf16-lines-still-count", project({24: '    分值: "五十"'}).encode("utf-16"),
         [error("24:5", "绩效指标[1].分值", "「五十」不是有效的分数")], FAIL),
    case("gbk", TEXT.encode("gbk"), [warning("1:1", "", READ_AS_GBK)], OK),
    case("gb18030-four-byte-character", project({2: "项目名称: 社区安全培训㐀𠀀"}).encode("gb18030"),
         [warning("1:1", "", READ_AS_GBK)], OK),
    case("gbk-with-an-error", project({4: "地区: 上海"}).encode("gbk"),
         [warning("1:1", "", READ_AS_GBK), error("4:1", "地区", "未知的地区「上海」" + REGIONS)], FAIL),
    case("neither-utf8-nor-gbk", b"\xff\xff\xff", [error("1:1", "", UNKNOWN_ENCODING)], FAIL),
    # EXPECTED FIX (3 cases): a UTF-8 file with one bad byte / NUL / control character: say
    # where it is (the first bad character), not 1:1.
    case("invalid-bytes-in-utf8-file", zh({2: "项目名称: "}).replace(b": \n", b": \xff\xfe\n", 1),
         [error("2:7", "", UNKNOWN_ENCODING)], FAIL),
    case("nul-byte", zh({2: "项目名称: 社区\x00安全培训"}), [error("2:9", "", NUL)], FAIL),
    # Was wrong before the fix: currently PyYAML's English reader error at 1:1 over two output lines.
    case("control-character", zh({2: "项目名称: 社区\x07安全培训"}), [error("2:9", "", CONTROL)], FAIL),
    case("windows-line-endings", zh().replace(b"\n", b"\r\n"), [], OK),
]

WRONG_TYPES = [
    case("name-is-list", zh({2: "项目名称: [社区, 培训]"}),
         [error("2:1", "项目名称", "应为文字，实际是列表")], FAIL),
    case("name-is-mapping", zh({2: "项目名称:\n  全称: 社区安全培训"}),
         [error("2:1", "项目名称", "应为文字，实际是映射（键: 值）")], FAIL),
    case("name-is-null", zh({2: "项目名称:"}),
         [error("2:1", "项目名称", "应为文字，实际是空值")], FAIL),
    # Was wrong before the fix: a required text given as "" (or blanks) passes; the form would print no name.
    case("name-is-empty-text", zh({2: '项目名称: ""'}),
         [error("2:1", "项目名称", "不能为空")], FAIL),
    case("weight-is-list", zh({24: "    分值: [50]"}),
         [error("24:5", "绩效指标[1].分值", "应为分数，实际是列表")], FAIL),
    case("weight-is-mapping", zh({24: "    分值: {满分: 50}"}),
         [error("24:5", "绩效指标[1].分值", "应为分数，实际是映射（键: 值）")], FAIL),
    case("weight-is-text", zh({24: "    分值: 五十"}),
         [error("24:5", "绩效指标[1].分值", "「五十」不是有效的分数")], FAIL),
    # Was wrong before the fix: an empty 分值 with a 得分 is silently 0; say so at the 分值 line instead of
    # "得分 50 超过分值 0" (the sums are still wrong and still reported).
    case("weight-is-null", zh({24: "    分值:"}),
         [error("18:1", "绩效指标", "各项分值之和为 50，应为 100（含预算执行率分值）"),
          error("19:5", "绩效指标[1].一级指标", "一级指标「产出指标」各行分值之和为 0，应为 50"),
          error("24:5", "绩效指标[1].分值", "分值为空；不适用的指标请填 无 或 不适用")], FAIL),
    case("budget-is-list", zh({8: "    年初预算数: [1000]"}),
         [error("8:5", "项目资金.年度资金总额.年初预算数", "应为金额，实际是列表")], FAIL),
    # Was wrong before the fix: quote what the clerk typed (一千元), not the number part left after the unit.
    case("budget-is-text", zh({8: "    年初预算数: 一千元"}),
         [error("8:5", "项目资金.年度资金总额.年初预算数", "「一千元」不是有效的金额")], FAIL),
    case("year-is-list", zh({3: "年度: [2022]"}),
         [error("3:1", "年度", "应为年度，实际是列表")], FAIL),
    case("indicators-is-text", zh({18: "绩效指标: 见附件", **dict.fromkeys(range(19, 40))}),
         [error("18:1", "绩效指标", "应为列表（每项以「- 」开头）")], FAIL),
    case("indicators-is-mapping", zh({18: "绩效指标:\n  三级指标: 培训场次", **dict.fromkeys(range(19, 40))}),
         [error("18:1", "绩效指标", "应为列表（每项以「- 」开头）")], FAIL),
    case("indicator-item-is-text", zh({18: "绩效指标:\n  - 培训场次"}),
         [error("19:5", "绩效指标[1]", "应为「键: 值」映射")], FAIL),
    case("funds-is-list", zh({5: '项目资金: ["1000.00", "900.00"]', **dict.fromkeys(range(6, 18))}),
         [error("5:1", "项目资金", "应为「键: 值」映射，不能是列表")], FAIL),
    case("money-row-is-list", zh({11: '  当年财政拨款: ["1000.00", "1000.00", "900.00"]',
                                  12: None, 13: None, 14: None}),
         [error("11:3", "项目资金.当年财政拨款", "应为「键: 值」映射，不能是列表")], FAIL),
    case("english-key-wrong-type", en({2: "name: [社区, 培训]"}),
         [error("2:1", "name", "应为文字，实际是列表")], FAIL),
]


def _money(total: str, executed: str) -> dict[int, str]:
    """Lines 8–14 with every budget cell set to ``total`` and every executed cell to ``executed``."""
    return {8: f"    年初预算数: {total}", 9: f"    全年预算数: {total}", 10: f"    全年执行数: {executed}",
            12: f"    年初预算数: {total}", 13: f"    全年预算数: {total}", 14: f"    全年执行数: {executed}"}


_BUDGET = "项目资金.年度资金总额.年初预算数"

NUMBERS = [
    case("amount-negative", zh({8: '    年初预算数: "-1000.00"'}),
         [error("8:5", _BUDGET, "金额不能为负数：「-1000.00」")], FAIL),
    case("amount-nan", zh({8: "    年初预算数: NaN"}),
         [error("8:5", _BUDGET, "「NaN」不是有效的金额")], FAIL),
    case("amount-inf", zh({8: "    年初预算数: inf"}),
         [error("8:5", _BUDGET, "「inf」不是有效的金额")], FAIL),
    case("amount-1e999", zh({8: "    年初预算数: 1e999"}),
         [error("8:5", _BUDGET, "「1e999」不是有效的金额")], FAIL),
    case("amount-19-digits", zh({8: '    年初预算数: "1000000000000000000"'}),
         [error("8:5", _BUDGET, "「1000000000000000000」数值过大，请检查")], FAIL),
    case("amount-in-wan-yuan", zh(_money('"180.97万元"', '"162.873万元"')), [], OK),
    case("amount-with-thousands-separators", zh(_money('"1,663,900.00元"', '"1,497,510.00元"')), [], OK),
    case("amount-full-width-digits", zh(_money('"１２３．４"', '"１１１．０６"')), [], OK),
    case("points-full-width-digits", zh({24: '    分值: "５０"', 25: '    得分: "５０分"'}), [], OK),
    case("points-exponent", zh({25: '    得分: "5e1"'}),
         [error("25:5", "绩效指标[1].得分", "「5e1」不是有效的分数")], FAIL),
    # A printed 执行率 over 100% is only compared with the computed one (90%): a warning.
    case("rate-over-100-percent", zh({16: '  执行率: "150%"'}),
         [warning("16:3", "项目资金.执行率", "填写的执行率 150% 与计算值 90.00% 不一致")], OK),
    case("rate-over-1000-percent", zh({16: '  执行率: "1500%"'}),
         [error("16:3", "项目资金.执行率", "百分比「1500%」超过 1000%，请检查")], FAIL),
    case("rate-written-as-fraction", zh({16: '  执行率: "0.9"'}),
         [warning("16:3", "项目资金.执行率", "填写的执行率 0.9 与计算值 90.00% 不一致")], OK),
    case("rate-is-text", zh({16: "  执行率: 九成"}),
         [error("16:3", "项目资金.执行率", "「九成」不是有效的百分比")], FAIL),
]

SCORING = [
    case("weights-do-not-add-up", zh({15: '  分值: "20"', 17: '  得分: "18"'}),
         [error("18:1", "绩效指标", "各项分值之和为 110，应为 100（含预算执行率分值）")], FAIL),
    case("category-does-not-add-up", zh({24: '    分值: "40"', 25: '    得分: "40"',
                                         31: '    分值: "40"', 32: '    得分: "40"'}),
         [error("19:5", "绩效指标[1].一级指标", "一级指标「产出指标」各行分值之和为 40，应为 50"),
          error("26:5", "绩效指标[2].一级指标", "一级指标「效益指标」各行分值之和为 40，应为 30")], FAIL),
    # Was wrong before the fix: a score above its weight is an error; the extra warning "…已保留填写值"
    # contradicts it (the value is not kept: the file fails).
    case("score-above-weight", zh({39: '    得分: "12"'}),
         [error("39:5", "绩效指标[3].得分", "得分 12 超过分值 10")], FAIL),
    # Was wrong before the fix: same for the budget-execution score.
    case("funds-score-above-weight", zh({17: '  得分: "12"'}),
         [error("17:3", "项目资金.得分", "得分 12 超过分值 10")], FAIL),
    case("parts-do-not-add-up", zh({12: '    年初预算数: "800.00"'}),
         [error("8:5", _BUDGET, "「其中」各行的年初预算数之和 800 元与年度资金总额 1000 元不一致")], FAIL),
    case("executed-above-budget", zh({10: '    全年执行数: "1100.00"', 14: '    全年执行数: "1100.00"',
                                      16: '  执行率: "110"', 17: '  得分: "10"'}),
         [warning("10:5", "项目资金.年度资金总额.全年执行数",
                  "全年执行数 1100 元超过全年预算数 1000 元")], OK),
    case("rate-off-by-0.02-points", zh({16: '  执行率: "90.02"'}),
         [warning("16:3", "项目资金.执行率", "填写的执行率 90.02 与计算值 90.00% 不一致")], OK),
    case("rate-off-by-0.01-points-is-fine", zh({16: '  执行率: "90.01%"'}), [], OK),
    case("score-below-weight-without-reason", zh({32: '    得分: "27"'}),
         [warning("26:5", "绩效指标[2].偏差原因分析及改进措施",
                  "得分 27 低于分值 30，但没有填写偏差原因分析及改进措施")], OK),
    case("score-below-weight-with-reason",
         zh({32: '    得分: "27"\n    偏差原因分析及改进措施: 宣传覆盖不足，下年加强'}), [], OK),
    case("score-differs-from-computed", zh({23: '    实际完成值: "8"'}),
         [warning("25:5", "绩效指标[1].得分", computed_differs("50", "40"))], OK),
    case("funds-score-differs-from-computed", zh({17: '  得分: "8"'}),
         [warning("17:3", "项目资金.得分",
                  "填写的得分 8 与按执行率 90.00% 计算的 9 不一致，已保留填写值")], OK),
    case("printed-total-differs", zh(append='总分: "98"'),
         [warning("40:1", "总分", "填写的总分 98 与各行得分之和 99 不一致；表上将印 99")], OK),
    case("printed-total-matches", zh(append='总分: "99"\n评价结果等次: 优'), [], OK),
]

KEYS = [
    case("unknown-key-budget-suggested", zh({8: '    年初预算: "1000.00"'}),
         [error("8:5", "项目资金.年度资金总额.年初预算",
                "未知的键「年初预算」，是否想写「年初预算数」？")], FAIL),
    case("unknown-key-name-suggested", zh({2: "项目名: 社区安全培训"}),
         [error("2:1", "项目名", "未知的键「项目名」，是否想写「项目名称」？")], FAIL),
    case("unknown-key-english-suggested", en({24: '    wieght: "50"'}),
         [error("24:5", "indicators[1].wieght", "未知的键「wieght」，是否想写「weight」？")], FAIL),
    case("unknown-key-no-suggestion", zh(append="备注: 无"),
         [error("40:1", "备注", "未知的键「备注」")], FAIL),
    case("unknown-key-belongs-elsewhere", zh(append='全年执行数: "900.00"'),
         [error("40:1", "全年执行数",
                "未知的键「全年执行数」；「全年执行数」应写在「项目资金.年度资金总额」之下")], FAIL),
    case("missing-project-name", zh({2: None}),
         [error("2:1", "项目名称", "缺少必填项「项目名称」")], FAIL),
    case("missing-year", zh({3: None}), [error("2:1", "年度", "缺少必填项「年度」")], FAIL),
    case("missing-level3-indicator", zh({21: None}),
         [error("19:5", "绩效指标[1].三级指标", "缺少必填项「三级指标」")], FAIL),
    case("region-unknown", zh({4: "地区: 上海"}),
         [error("4:1", "地区", "未知的地区「上海」" + REGIONS)], FAIL),
    case("region-typo-suggested", zh({4: "地区: 深圳龙花"}),
         [error("4:1", "地区", "未知的地区「深圳龙花」，是否想写「深圳龙华」？" + REGIONS)], FAIL),
    # Was wrong before the fix: suggesting another district (龙华 for 南山) would score by the wrong rules;
    # the cut-off (0.3) is too loose.
    case("region-other-district-not-suggested", zh({4: "地区: 深圳南山"}),
         [error("4:1", "地区", "未知的地区「深圳南山」" + REGIONS)], FAIL),
    case("very-long-text", zh(append="预期目标: " + "很" * 20_000), [], OK),
    case("year-in-chinese-numerals", zh({3: "年度: 二〇二二"}),
         [error("3:1", "年度", "「二〇二二」不是有效的年度（例如 2022）")], FAIL),
    case("year-with-suffix", zh({3: "年度: 2022年"}), [], OK),
    case("year-full-width", zh({3: "年度: ２０２２"}), [], OK),
]
# fmt: on

CASES: list[Case] = [
    *SYNTAX, *DUPLICATES, *YAML_FEATURES, *SHAPES, *ENCODINGS, *WRONG_TYPES, *NUMBERS, *SCORING, *KEYS,
]


def run_validate(target: str) -> tuple[Result, float]:
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["validate", target])
    return result, time.perf_counter() - started


def output_lines(result: Result) -> list[str]:
    return result.output.splitlines()


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("base", [BASE_ZH, BASE_EN], ids=["chinese-keys", "english-keys"])
def test_base_project_is_valid(base: Sequence[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / FILE).write_text(project(base=base), encoding="utf-8")
    result, _ = run_validate(str(tmp_path / FILE))
    assert output_lines(result) == [summary([])]
    assert result.exit_code == 0


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / FILE).write_bytes(c.content)
    result, seconds = run_validate(str(tmp_path / FILE))
    assert output_lines(result) == [*c.expected, summary(c.expected)]
    assert result.exit_code == c.exit_code
    assert seconds < MAX_SECONDS


# --- several files in one folder ------------------------------------------------------------------

UNIT = "\n".join(["地区: 深圳龙华", '年度: "2022"', "实施单位: 深圳市龙华区平安建设中心"]) + "\n"
ALLOWED = "可设置：地区、年度、主管部门、主管部门代码、实施单位、一级预算单位、填报单位、评价人员、签字"
UNIT_PROJECT = project({3: None, 4: None})  # 年度 and 地区 come from the unit file
_UNIT_FILE = "unit/_unit.yaml"
NOT_IN_UNIT = f"单位文件中不能设置此项（{ALLOWED}）"


@dataclass(frozen=True)
class FolderCase:
    id: str
    files: dict[str, bytes]
    target: str
    expected: tuple[str, ...]
    projects: int
    exit_code: int


def folder_case(
    id: str, files: Mapping[str, str | bytes], target: str, expected: Sequence[str], projects: int,
    exit_code: int,
) -> FolderCase:
    raw = {name: data.encode() if isinstance(data, str) else data for name, data in files.items()}
    return FolderCase(id, raw, target, tuple(expected), projects, exit_code)


_DUP_NAME = "与 unit/a.yaml 的项目同名（同一单位、同一年度的项目名称不能重复）"

# fmt: off
FOLDER_CASES = [
    folder_case("same-name-same-unit-and-year", {"unit/a.yaml": zh(), "unit/b.yaml": zh()}, "unit",
                [error("2:1", "项目名称", _DUP_NAME, "unit/b.yaml")], 2, FAIL),
    folder_case("same-name-trailing-full-width-space",
                {"unit/a.yaml": zh(), "unit/b.yaml": zh({2: "项目名称: 社区安全培训　"})}, "unit",
                [error("2:1", "项目名称", _DUP_NAME, "unit/b.yaml")], 2, FAIL),
    folder_case("same-name-other-year-is-fine", {"unit/a.yaml": zh(), "unit/b.yaml": zh({3: '年度: "2023"'})},
                "unit", [], 2, OK),
    folder_case("unit-file-supplies-region-and-year", {"unit/_unit.yaml": UNIT, "unit/a.yaml": UNIT_PROJECT},
                "unit", [], 1, OK),
    folder_case("unit-file-sets-project-name",
                {"unit/_unit.yaml": UNIT + "项目名称: 共用名称\n", "unit/a.yaml": UNIT_PROJECT}, "unit",
                [error("4:1", "项目名称", NOT_IN_UNIT, _UNIT_FILE)], 1, FAIL),
    folder_case("unit-file-sets-funds",
                {"unit/_unit.yaml": UNIT + "项目资金:\n  金额单位: 元\n", "unit/a.yaml": UNIT_PROJECT},
                "unit", [error("4:1", "项目资金", NOT_IN_UNIT, _UNIT_FILE)], 1, FAIL),
    # Was wrong before the fix: one problem in the unit file is printed (and counted) once per project that
    # inherits it; it should be printed once.
    folder_case("unit-file-problem-reported-once",
                {"unit/_unit.yaml": UNIT + "项目名称: 共用名称\n", "unit/a.yaml": UNIT_PROJECT,
                 "unit/b.yaml": UNIT_PROJECT.replace("社区安全培训", "社区消防培训")}, "unit",
                [error("4:1", "项目名称", NOT_IN_UNIT, _UNIT_FILE)], 2, FAIL),
    folder_case("unit-file-unknown-key",
                {"unit/_unit.yaml": UNIT + "实施单元: 某中心\n", "unit/a.yaml": UNIT_PROJECT}, "unit",
                [error("4:1", "实施单元", "未知的键「实施单元」，是否想写「实施单位」？", _UNIT_FILE)],
                1, FAIL),
]
# fmt: on


@pytest.mark.parametrize("c", FOLDER_CASES, ids=[c.id for c in FOLDER_CASES])
def test_bad_folder(c: FolderCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, data in c.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    result, seconds = run_validate(str(tmp_path / c.target))
    assert output_lines(result) == [*c.expected, summary(c.expected, c.projects)]
    assert result.exit_code == c.exit_code
    assert seconds < MAX_SECONDS
