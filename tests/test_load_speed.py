"""The fast paths read exactly what the slow ones read.

``load_file`` composes with libyaml when the text holds nothing libyaml reads differently, and
falls back to the pure-Python ``_Loader`` otherwise (and whenever libyaml fails), so that every
problem keeps its message and position. These tests load the same bytes both ways and compare
the trees, every key, value and item mark, and every problem. ``check_all`` reads each unit file
once for all the projects that share it; that must not change any result either.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from benchmarks.synth import synthesize
from reportgen import load, validate
from reportgen.load import Document, LocatedList, LocatedMap, discover, load_file
from reportgen.validate import Checked, Files, check_all, check_source

from .conftest import BASE_PROJECT, DATA
from .test_bad_input import CASES, FOLDER_CASES, TEXT

pytestmark = pytest.mark.skipif(load.CParser is None, reason="PyYAML without libyaml has only one path")

ROOT = Path(__file__).resolve().parent.parent


def tree(value: object) -> object:
    """A loaded value with every mark it carries, as plain data."""
    if isinstance(value, LocatedMap):
        items = [(key, tree(item)) for key, item in value.items()]
        return ("map", value.mark, value.key_marks, value.value_marks, items)
    if isinstance(value, LocatedList):
        return ("list", value.mark, value.item_marks, [tree(item) for item in value])
    return value


def snapshot(document: Document) -> tuple[object, list]:
    return tree(document.data), document.problems


@pytest.fixture
def python_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts that went to the pure-Python loader, in order."""
    texts: list[str] = []

    class Counting(load._Loader):
        def __init__(self, stream: str) -> None:
            texts.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(load, "_Loader", Counting)
    return texts


def slow_load(path: Path, monkeypatch: pytest.MonkeyPatch) -> Document:
    with monkeypatch.context() as patch:
        patch.setattr(load, "CParser", None)
        return load_file(path)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    synthesize(30, out)
    return out


def _yaml_files(synthetic: Path) -> list[Path]:
    found = [*DATA.rglob("*.yaml"), *(ROOT / "tests").rglob("*.y*ml"), *synthetic.rglob("*.yaml")]
    return sorted(found)


def test_real_files_take_the_fast_path_and_read_the_same(
    synthetic: Path, python_loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _yaml_files(synthetic)
    assert len(files) > 40
    for path in files:
        fast = load_file(path)
        assert python_loads == [], path  # these are the files the speed is for
        assert snapshot(fast) == snapshot(slow_load(path, monkeypatch)), path
        python_loads.clear()


def named(value: str) -> bytes:
    """The base project with another 项目名称 (as YAML source)."""
    return TEXT.replace("项目名称: 社区安全培训", f"项目名称: {value}").encode()


# Text the fast path must read as _Loader does, or leave to it. The base project is valid.
_VARIANTS: dict[str, bytes] = {
    "crlf": TEXT.replace("\n", "\r\n").encode(),
    "utf8-bom": b"\xef\xbb\xbf" + TEXT.encode(),
    "utf16-le": TEXT.encode("utf-16"),
    "utf16-be": b"\xfe\xff" + TEXT.encode("utf-16-be"),
    "gbk": TEXT.encode("gbk"),
    "no-final-newline": TEXT.rstrip("\n").encode(),
    "trailing-blanks-after-last-line": (TEXT + "   ").encode(),
    "empty-value-at-end-without-newline": (TEXT + "项目概况:").encode(),
    "explicit-key-at-end-without-newline": (TEXT + "? 项目概况").encode(),
    "document-marker-only": b"---",
    "document-marker-and-comment": "--- # 空\n".encode(),
    "document-end-marker": (TEXT + "...\n").encode(),
    "tab-inside-quoted-value": named('"社区\t安全培训"'),
    "tab-after-colon": TEXT.replace("项目名称: ", "项目名称:\t").encode(),
    "lone-cr-line-endings": TEXT.replace("\n", "\r").encode(),
    "line-separator-in-value": named("社区\u2028安全培训"),
    "very-long-line": (TEXT + "项目概况: " + "很长" * 50_000 + "\n").encode(),
    "very-long-key": (TEXT + "很" * 1100 + ": 值\n").encode(),
    "wide-characters-before-values": (TEXT + "其他需说明的问题: 😀𠀀㐀ｱ　说明\n").encode("utf-8"),
    "full-width-space-key": (TEXT + "项目　概况: 值\n").encode(),
    "literal-block": (TEXT + "项目概况: |\n  第一行\n\n   第二行  \n\n").encode(),
    "folded-block-keep": (TEXT + "项目概况: >+\n  第一行\n  第二行\n\n\n").encode(),
    "literal-block-strip-indent": (TEXT + "项目概况: |-2\n   第一行\n  第二行\n").encode(),
    "block-at-end-without-newline": (TEXT + "项目概况: |\n  第一行").encode(),
    "block-header-with-comment": (TEXT + "项目概况: >-  # 注\n  第一行\n").encode(),
    "block-header-with-comment-unspaced": (TEXT + "项目概况: >-#注\n  第一行\n").encode(),  # PyYAML refuses
    "multi-line-plain": (TEXT + "项目概况: 第一行\n  第二行\n\n  第三行\n").encode(),
    "multi-line-quoted": (TEXT + "项目概况: '第一行\n\n  第二行 '\n").encode(),
    "comments-everywhere": TEXT.replace("\n", "  # 注\n").encode(),
    "star-inside-text": named("7*24小时&服务!"),
    "alias": (TEXT + "项目概况: *n\n").encode(),
    "flow-list": (TEXT + "项目概况: [a, [b, {c: d}]]\n").encode(),
    "escapes-in-double-quotes": named('"\\"社区\\u5b89全\\"\\x41\\/\\\n 培训"'),
    "escaped-single-quote": named('"社区\\\'安全"'),  # refused by both
    "directive": b"%YAML 1.1\n---\n" + TEXT.encode(),
    "deep-indentation": (TEXT + "".join(f"{'  ' * level}k{level}:\n" for level in range(30))).encode(),
    "compact-nested-lists": (TEXT + "项目概况:\n" + "- " * 30 + "x\n").encode(),
    "null-spellings": (TEXT + "项目概况: ~\n实际完成情况: Null\n项目概况2: NULL\n").encode(),
    "base-project": BASE_PROJECT.encode(),
}
# The variants libyaml must leave to _Loader (it reads them differently, or fails on them);
# libyaml reads all the others.
_PYTHON_ONLY = {
    "tab-inside-quoted-value", "tab-after-colon", "lone-cr-line-endings", "line-separator-in-value",
    "alias", "flow-list", "escaped-single-quote", "directive", "deep-indentation", "compact-nested-lists",
    "document-marker-only", "explicit-key-at-end-without-newline", "very-long-key",
    "block-header-with-comment-unspaced",
}


@pytest.mark.parametrize("name", list(_VARIANTS))
def test_variants_read_the_same(
    name: str, tmp_path: Path, python_loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(_VARIANTS[name])
    fast = load_file(path)
    assert bool(python_loads) == (name in _PYTHON_ONLY)
    assert snapshot(fast) == snapshot(slow_load(path, monkeypatch))


@pytest.mark.parametrize("content", [c.content for c in CASES], ids=[c.id for c in CASES])
def test_bad_input_reads_the_same(content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    assert snapshot(load_file(path)) == snapshot(slow_load(path, monkeypatch))


def _signature(node: Node | None) -> object:
    if node is None:
        return None
    mark = (node.start_mark.line, node.start_mark.column)
    if isinstance(node, ScalarNode):
        return node.tag, mark, node.value
    if isinstance(node, SequenceNode):
        return node.tag, mark, [_signature(item) for item in node.value]
    assert isinstance(node, MappingNode)
    return node.tag, mark, [(_signature(key), _signature(value)) for key, value in node.value]


def _outcome(compose, text: str) -> object:
    try:
        return _signature(compose(text))
    except Exception as exc:  # the error itself is the outcome: type, message and marks
        return type(exc).__name__, str(exc)


def _python_compose(text: str) -> Node | None:
    loader = load._Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


_PIECES = [
    *" \n-:?#'\"|>%@`,&*![]{}\\\t\r\u3000：中x1.~", ": ", "- ", "? ", "\n  ", "\n- ", "|-\n", ">+\n  a\n",
    "---\n", "...\n", "\r\n", " #", "null", "~", "😀", "\ufeff", "\x07", '"a\n  b"', "'a\n\n b'", "|2\n", "|#", ">-#",
]


def test_mutated_text_composes_the_same() -> None:
    """Random small edits of real files: same tree and marks, or the same error, on both paths."""
    rng = random.Random(20240601)
    seeds = [path.read_text(encoding="utf-8") for path in sorted(DATA.rglob("*.yaml"))]
    seeds += [TEXT, BASE_PROJECT]
    fast_compared = 0
    for _ in range(400):
        chars = list(rng.choice(seeds))
        for _ in range(rng.choice((1, 1, 2, 3))):
            at = rng.randrange(len(chars))
            if rng.random() < 0.5:
                chars[at:at] = rng.choice(_PIECES)
            else:
                del chars[at : at + rng.randint(1, 3)]
        text = "".join(chars)
        if rng.random() < 0.2:
            text = text.replace("\n", "\r\n")
        if rng.random() < 0.2:
            text = text.rstrip("\n")
        expected = _outcome(_python_compose, text)
        assert _outcome(load._compose, text) == expected, text
        fast_compared += not load._C_UNSAFE.search(text)
    assert fast_compared > 100  # the edits leave enough texts to libyaml for the test to mean something


# --- unit files are read once per run ---------------------------------------------------------


def _result(checked: Checked) -> tuple:
    return checked.problems, checked.project, checked.region, checked.result, dict(checked.locator)


def _folder_trees(tmp_path: Path) -> list[Path]:
    trees = []
    for index, case in enumerate(FOLDER_CASES):
        for name, data in case.files.items():
            (tmp_path / str(index) / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / str(index) / name).write_bytes(data)
        trees.append(tmp_path / str(index))
    return trees


@pytest.mark.parametrize("cached", [False, True])
def test_each_unit_file_is_read_once(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     cached: bool) -> None:
    """Each file is loaded once, and read from disk once: with the check cache, its key and the
    check see the same reading of a project file."""
    sources = discover([synthetic])
    loads: Counter[Path] = Counter()
    reads: Counter[Path] = Counter()
    real_load, real_read = validate.load_file, Path.read_bytes

    def counting_load(path: Path, raw: bytes | None = None) -> Document:
        loads[path] += 1
        return real_load(path, raw)

    def counting_read(path: Path) -> bytes:
        reads[path] += 1
        return real_read(path)

    monkeypatch.setattr(validate, "load_file", counting_load)
    monkeypatch.setattr(Path, "read_bytes", counting_read)
    check_all(sources, validate.CheckCache(tmp_path / "checked.pickle") if cached else None)
    units = {unit for source in sources for unit in source.unit_files}
    assert 1 < len(units) < len(sources)
    every = units | {source.path for source in sources}
    assert loads == Counter({path: 1 for path in every})
    assert Counter({path: count for path, count in reads.items() if path in every}) == Counter(dict.fromkeys(every, 1))


def test_sharing_unit_files_changes_no_result(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in [synthetic, *_folder_trees(tmp_path)]:
        sources = discover([folder])
        files = Files()
        shared = [check_source(source, files) for source in sources]
        units = {unit: snapshot(files.unit(unit)) for source in sources for unit in source.unit_files}
        alone = [check_source(source) for source in sources]
        assert [_result(c) for c in shared] == [_result(c) for c in alone], folder
        # Nothing changed the shared Documents while the projects were checked.
        assert units == {unit: snapshot(load_file(unit)) for unit in units}, folder
