"""Read project files: bytes → text → YAML tree in which every key and value knows its line.

Safe YAML only. Every scalar stays the text the user typed (no implicit ints, floats, dates or
booleans), so "2023.10" and "0.10" are never damaged; the model converts them. Duplicate keys,
aliases and non-text keys are problems, not silent surprises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

try:
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml: every file takes the pure-Python path
    CParser = None

from .errors import Problem, UsageError, display_path

UNIT_FILE = "_unit.yaml"
REGIONS_FOLDER = "regions"  # a data folder's own regions: region files, not projects
PROJECT_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 2_000_000

Mark = tuple[int, int]  # 1-based line and column


class LocatedMap(dict):
    """A YAML mapping that remembers where each key stands."""

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[str, Mark] = {}
        self.value_marks: dict[str, Mark] = {}


class LocatedList(list):
    """A YAML sequence that remembers where each item stands."""

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []


def mark_of(node: Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _AliasRefused(yaml.MarkedYAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps scalars as text and refuses aliases (no alias bombs)."""

    yaml_implicit_resolvers: ClassVar[dict] = {}
    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(None, None, "alias", event.start_mark)
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:  # PyYAML recurses per level: stop before Python does
                raise yaml.MarkedYAMLError(None, None, "nesting", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


# libyaml composes about ten times faster than PyYAML's pure-Python scanner, but it differs from
# it in places: it accepts tabs where PyYAML refuses them, it has no nesting limit, it would not
# refuse aliases. So it only reads text that holds none of those places (a conservative look at the
# characters); everything else, and anything libyaml rejects, goes to _Loader, which alone reports
# problems: messages and positions never depend on libyaml.
_C_UNSAFE = re.compile(
    r"[\t\ufeff\x85\u2028\u2029]"  # tabs, a BOM, line breaks other than \n and \r\n
    r"|\r(?!\n)"
    r"|^%"  # directives
    # Without flow collections, a nested block starts at a deeper column (an indentless list shares
    # its mapping's), after the line's indent and "- ", "? ", ": " indicators; when these take fewer
    # than 16 columns on every line, trees stay within 2 × 16 + 1 < _MAX_DEPTH levels.
    r"|^[ ?:-]{16}"
    r"|(?<!\S)(?:"  # at the start of a token:
    r"[&*!\[\]{}]"  # anchors, aliases, tags, flow collections (these nest within a line)
    # a block scalar header other than "|" or ">", chomping (+ -) and indent (1-9), then a space or
    # the line's end: libyaml reads "|#" or ">-#" as a header and a comment, PyYAML refuses them
    r"|[|>](?!(?:[+-]?[1-9]?|[1-9][+-])(?:[ \r\n]|\Z))"
    r")",
    re.MULTILINE,
)


if CParser is not None:

    class _CComposer(CParser, BaseResolver):
        """libyaml's composer with _Loader's resolvers (only null is resolved)."""

        yaml_implicit_resolvers: ClassVar[dict] = _Loader.yaml_implicit_resolvers

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            BaseResolver.__init__(self)


def _ends_in_stream_end(root: Node | None, text: str) -> bool:
    """Whether a node is marked at the end of a text that lacks a final newline.

    libyaml puts the end of such a text at the start of a line of its own, PyYAML after the last
    character: the empty values marked there ("---" alone, "? key" without a value) would stand
    elsewhere, so such trees are left to _Loader.
    """
    if text.endswith("\n") or root is None:
        return False
    last_line = text.count("\n")
    stack = [root]
    while stack:
        node = stack.pop()
        if node.start_mark.line > last_line:
            return True
        if isinstance(node, MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return False


def _compose(text: str) -> Node | None:
    """The document's node tree, exactly as _Loader composes it; raises _Loader's errors."""
    if CParser is not None and not _C_UNSAFE.search(text):
        try:
            root = _CComposer(text).get_single_node()
        except Exception:  # whatever libyaml rejects, _Loader reports in its own words
            root = None
        else:
            if not _ends_in_stream_end(root, text):
                return root
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


@dataclass
class Document:
    """One loaded file: its tree (None when unreadable) and what was wrong with it."""

    path: Path
    data: LocatedMap | None
    problems: list[Problem] = field(default_factory=list)


def _tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _problem(path: Path, mark: Mark, message: str, severity: str = "error", key: str = "") -> Problem:
    return Problem(display_path(path), mark[0], mark[1], severity, key, message)  # type: ignore[arg-type]


def join_key(prefix: str, key: str | int) -> str:
    """The key path as the user wrote it: 绩效指标[3].分值 (list items counted from 1)."""
    if isinstance(key, int):
        return f"{prefix}[{key + 1}]"
    return f"{prefix}.{key}" if prefix else key


def decode(raw: bytes) -> tuple[str, str | None]:
    """The file's text and, when it was not UTF-8, a note saying how it was read."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    # Windows editors in China save GBK by default; GB18030 is its superset.
    return raw.decode("gb18030"), "文件不是 UTF-8 编码，已按 GBK/GB18030 读取；建议在编辑器中另存为 UTF-8"


_QUOTE_MESSAGE = "引号没有闭合"
_COLON_MESSAGE = "缺少冒号「:」：每行应写成「键: 值」（冒号后有一个空格）"
_START_MESSAGE = "此处的字符不能作为值的开头（如 @、`、!、]、}）；请给整个值加引号"
_YAML_MESSAGES = (
    ("found character '\\t'", "含有制表符(Tab)；YAML 的缩进只能用空格"),
    ("mapping values are not allowed", "此处不能出现冒号「:」；值中含有冒号时请给整个值加引号"),
    ("could not find expected ':'", _COLON_MESSAGE),
    ("found unexpected end of stream", _QUOTE_MESSAGE),
    ("found unknown escape character", "双引号中的反斜杠「\\」有特殊含义；含有反斜杠的值请改用单引号"),
    ("expected escape sequence", "双引号中的反斜杠「\\」有特殊含义；含有反斜杠的值请改用单引号"),
    ("expected <block end>", "缩进不一致：同一层的键必须左对齐"),
    ("did not find expected key", "缩进不一致：同一层的键必须左对齐"),
    ("did not find expected '-' indicator", "缩进不一致：列表的各项必须左对齐"),
    ("expected ',' or ']'", "方括号「[」没有闭合；值以「[」开头时请给整个值加引号"),
    ("expected ',' or '}'", "花括号「{」没有闭合；值以「{」开头时请给整个值加引号"),
    ("but found another document", "一个文件只能写一个项目：请删除「---」，或把其后的内容移到另一个文件"),
    ("could not determine a constructor", "不支持的 YAML 标签（以 ! 开头），请删除"),
    ("found undefined tag handle", _START_MESSAGE),
    ("expected URI", _START_MESSAGE),
    ("expected alphabetic or numeric character", "以「&」或「*」开头的值必须加引号"),
    ("that cannot start any token", _START_MESSAGE),
    ("expected the node content", _START_MESSAGE),
    ("nesting", "嵌套层数过多；请检查「[」「{」或缩进是否多写了"),
)
_FLOW_CONTEXTS = ("while parsing a flow sequence", "while parsing a flow mapping")
_MAX_DEPTH = 50


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    if isinstance(exc, _AliasRefused):
        return "不支持 YAML 锚点与别名（& 和 *）；请把内容直接写出"
    problem = f"{exc.context or ''} {exc.problem or ''}"
    for needle, message in _YAML_MESSAGES:
        if needle in problem:
            return message
    return f"YAML 语法错误：{(exc.problem or exc.context or '').strip()}"


def _quote_trouble(lines: list[str], last: int) -> tuple[Mark, str] | None:
    """A value up to line ``last`` that opens a quote and never closes it, or goes on after it."""
    for number, line in enumerate(lines[:last], 1):
        _, colon, value = line.partition(": ")
        if not colon and line.lstrip().startswith("- "):
            value = line.lstrip()[2:]
        stripped = value.strip()
        if stripped[:1] not in ("'", '"'):
            continue
        quote, start = stripped[0], line.index(stripped)
        close = re.search(r'(?<!\\)"' if quote == '"' else "'(?!')", stripped[1:])
        if close is None:
            return (number, start + 1), _QUOTE_MESSAGE
        after = stripped[close.end() + 1 :].strip()
        if after and not after.startswith("#"):
            message = "引号后面还有文字；值中含有引号时，请用单引号把整个值括起来"
            return (number, start + close.end() + 2), message
    return None


def _missing_colon(lines: list[str], line: int) -> Mark | None:
    """The line before ``line`` when it reads like a key without its colon."""
    for number in range(line - 1, 0, -1):
        text = lines[number - 1]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if ":" not in text:
            return number, len(text) - len(text.lstrip()) + 1
        return None
    return None


def _syntax_problem(text: str, exc: yaml.MarkedYAMLError) -> tuple[Mark, str]:
    """Where and what a YAML syntax error is, in the clerk's terms (PyYAML often points later)."""
    mark = exc.problem_mark or exc.context_mark
    where: Mark = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = _yaml_message(exc)
    lines = text.splitlines()
    if (exc.context or "") in _FLOW_CONTEXTS and exc.context_mark:
        where = (exc.context_mark.line + 1, exc.context_mark.column + 1)
    quote = _quote_trouble(lines, where[0])
    if quote and (message in (_QUOTE_MESSAGE, _COLON_MESSAGE) or "缩进" in message or "冒号" in message):
        return quote
    if message.startswith("此处不能出现冒号") and where[0] <= len(lines):
        line = lines[where[0] - 1]
        if line.find(":") == where[1] - 1:  # the line's own key colon: the key sits too deep
            previous = _missing_colon(lines, where[0])
            if not previous:
                return (where[0], len(line) - len(line.lstrip()) + 1), "缩进不一致：同一层的键必须左对齐"
    if "冒号" in message:
        previous = _missing_colon(lines, where[0])
        if previous:
            if "：" in lines[previous[0] - 1]:
                return previous, "键与值之间用了中文冒号「：」；请改为英文冒号加空格「: 」"
            return previous, _COLON_MESSAGE
    if message == _COLON_MESSAGE and where[0] > len(lines):
        where = (len(lines), 1)
    if "缩进" in message and where[0] <= len(lines) and lines[where[0] - 1].lstrip().startswith("- "):
        message = "缩进不一致：列表的各项必须左对齐"
    return where, message


def _offset_mark(text: str, offset: int) -> Mark:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
# Standard scalar tags keep their text; anything else (!!python/…, custom !tags) is refused.
_SCALAR_TAGS = tuple(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "timestamp"))


class _Builder:
    """Turns composed YAML nodes into located Python values, collecting problems."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def build(self, node: Node, prefix: str = ""):
        if not isinstance(node, ScalarNode) and node.tag not in _COLLECTION_TAGS:
            message = f"不支持的 YAML 标签 {_tag(node.tag)}，请删除"
            self.problems.append(_problem(self.path, mark_of(node), message, key=prefix))
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, prefix)
        if isinstance(node, SequenceNode):
            located = LocatedList(mark_of(node))
            for index, item in enumerate(node.value):
                located.item_marks.append(mark_of(item))
                located.append(self.build(item, join_key(prefix, index)))
            return located
        return self._scalar(node, prefix)

    def _scalar(self, node: ScalarNode, prefix: str) -> str | None:
        if node.tag == "tag:yaml.org,2002:null":
            return None
        if node.tag not in _SCALAR_TAGS:
            message = f"不支持的 YAML 标签 {_tag(node.tag)}，请删除"
            self.problems.append(_problem(self.path, mark_of(node), message, key=prefix))
            return None
        return node.value

    def _mapping(self, node: MappingNode, prefix: str) -> LocatedMap:
        located = LocatedMap(mark_of(node))
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:null":
                self.problems.append(_problem(self.path, mark_of(key_node), "键必须是文字", key=prefix))
                continue
            key = key_node.value.strip()
            if key in located:
                first = located.key_marks[key][0]
                message = f"键重复（第 {first} 行已有同名键）；请删除或合并其中一个"
                self.problems.append(
                    _problem(self.path, mark_of(key_node), message, key=join_key(prefix, key))
                )
                continue
            located.key_marks[key] = mark_of(key_node)
            located.value_marks[key] = mark_of(value_node)
            located[key] = self.build(value_node, join_key(prefix, key))
        return located


def load_file(path: Path, raw: bytes | None = None) -> Document:
    """Read one YAML file into a located tree; problems instead of exceptions. ``raw``: its
    bytes, when the caller has read them already (and digested what it loads)."""
    start = (1, 1)
    try:
        size = path.stat().st_size if raw is None else len(raw)
        if size > MAX_FILE_BYTES:
            return Document(path, None, [_problem(path, start, f"文件过大（{size} 字节），项目文件应小于 2 MB")])
        raw = path.read_bytes() if raw is None else raw
    except OSError as exc:
        return Document(path, None, [_problem(path, start, f"无法读取文件：{exc.strerror}")])
    try:
        text, note = decode(raw)
    except UnicodeDecodeError as exc:
        good = raw[: exc.start].decode("utf-8", errors="replace")
        message = "文件编码无法识别（既不是 UTF-8 也不是 GBK）；请在编辑器中另存为 UTF-8"
        return Document(path, None, [_problem(path, _offset_mark(good, len(good)), message)])
    problems = [_problem(path, start, note, "warning")] if note else []
    if "\x00" in text:
        message = "文件中有空字符(NUL)，可能不是文本文件或编码错误；请另存为 UTF-8"
        problems.append(_problem(path, _offset_mark(text, text.index("\x00")), message))
        return Document(path, None, problems)
    try:
        root = _compose(text)
    except yaml.reader.ReaderError as exc:  # a control character: no mark, but a position
        message = f"文件中有不允许的控制字符（U+{exc.character:04X}）；请删除"
        problems.append(_problem(path, _offset_mark(text, exc.position), message))
        return Document(path, None, problems)
    except yaml.MarkedYAMLError as exc:
        where, message = _syntax_problem(text, exc)
        problems.append(_problem(path, where, message))
        return Document(path, None, problems)
    if root is None:
        problems.append(_problem(path, start, "文件为空，没有任何内容"))
        return Document(path, None, problems)
    if not isinstance(root, MappingNode):
        shape = "列表" if isinstance(root, SequenceNode) else "单个值"
        problems.append(_problem(path, mark_of(root), f"文件顶层应为「键: 值」映射，实际是{shape}"))
        return Document(path, None, problems)
    builder = _Builder(path)
    data = builder.build(root)
    return Document(path, data, problems + builder.problems)


@dataclass(frozen=True)
class Source:
    """A project file and the unit files it inherits from, outermost first."""

    path: Path
    unit_files: tuple[Path, ...]


def _unit_chain(file: Path, root: Path) -> tuple[Path, ...]:
    folders = [file.parent, *file.parent.parents]
    chain: list[Path] = []
    for folder in folders:
        candidate = folder / UNIT_FILE
        if candidate.is_file():
            chain.append(candidate)
        if folder == root:
            break
    return tuple(reversed(chain))


def discover(paths: list[Path]) -> list[Source]:
    """Project files under the given files and folders, sorted, each with its unit files."""
    sources: dict[Path, Source] = {}
    for given in paths:
        if given.is_dir():
            root = given
            files = [
                p for p in given.rglob("*")
                if p.suffix in PROJECT_SUFFIXES and p.is_file() and not p.name.startswith(("_", "."))
                and p.relative_to(given).parts[0] != REGIONS_FOLDER
            ]
        elif given.is_file():
            root, files = given.parent, [given]
        else:
            raise UsageError(f"找不到文件或文件夹：{given}")
        chains: dict[Path, tuple[Path, ...]] = {}  # each folder's unit files, looked for once
        for file in files:
            if file.parent not in chains:
                chains[file.parent] = _unit_chain(file, root)
            sources.setdefault(file, Source(file, chains[file.parent]))
    return [sources[key] for key in sorted(sources)]
