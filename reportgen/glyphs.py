"""Characters that no installed font can draw, found in the user's values before they become boxes.

LibreOffice draws each character with the form's font or, when that font lacks it, with any font
that fontconfig offers under reportgen's ``fonts.conf`` (``convert.font_environment()``); a
character that none of them has is printed as an empty box, and nothing says so. The characters
those fonts cover are the union of their character sets, which fontconfig reports (``fc-list``).

Asking costs a subprocess and parsing half a megabyte of ranges, so the union is kept on disk in
the user's cache folder, under a name made from the font files' paths, sizes and modification
times: installing, removing or updating a font gives another name, and the union is asked again.
Each process lists the font files once (one short ``fc-list`` call) and reads the cached union.
Without ``fc-list`` (no fontconfig) or without a Simplified-Chinese font nothing is said here:
the conversion's own font check (``convert.check_fonts``) stops before any box could be printed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import subprocess
import tempfile
import unicodedata
from pathlib import Path

from .convert import SC_FONT_FAMILIES, font_environment
from .errors import Problem
from .load import Document, LocatedList, LocatedMap, Mark, join_key

MESSAGE = "「{char}」(U+{code:04X}) 没有已安装的字体能显示，PDF 中将显示为方框"
CACHE_VERSION = "1"  # part of the cache file's name: a new format never reads an old file
_FC_TIMEOUT = 30.0

# Characters that are never drawn with a glyph of their own: controls (line breaks, tabs),
# format characters (zero-width space and joiners, soft hyphen, BOM), line and paragraph
# separators, and variation selectors, which only choose the shape of the character before them.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
_VARIATION_SELECTORS = ((0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
# The common ones, so that the pattern below passes them without a second look.
_COMMON_INVISIBLE = ((0x00, 0x1F), (0x7F, 0x9F), (0x200B, 0x200F), (0x2028, 0x202E), (0xFEFF, 0xFEFF))


class Coverage:
    """The code points some font can draw (sorted disjoint ranges), and a pattern that finds any
    other character: one search in C per document, where a set of its characters would cost more
    than the rest of the check."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        self.ranges = ranges
        allowed = sorted([*ranges, *_COMMON_INVISIBLE, *_VARIATION_SELECTORS])
        self.outside = re.compile("[^" + "".join(_class_range(low, high) for low, high in allowed) + "]")

    def missing(self, text: str) -> list[str]:
        """The characters of ``text`` that no font draws, in the order they first appear."""
        return list(dict.fromkeys(char for char in self.outside.findall(text) if not _invisible(char)))


def _class_range(low: int, high: int) -> str:
    return f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}"


def _invisible(char: str) -> bool:
    code = ord(char)
    if any(low <= code <= high for low, high in _VARIATION_SELECTORS):
        return True
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


def parse_charsets(listing: str) -> list[tuple[int, int]]:
    """fontconfig's charsets (one per line, ``20-7e a0 …`` in hex) → their union, merged ranges."""
    ranges = []
    for line in set(listing.splitlines()):  # the faces of one font collection often share theirs
        for part in line.split():
            low, _, high = part.partition("-")
            ranges.append((int(low, 16), int(high or low, 16)))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


def _fc_list(format_string: str) -> str | None:
    """``fc-list`` of every font under reportgen's font configuration; None if it cannot run."""
    try:
        done = subprocess.run(
            ["fc-list", "--format", format_string], capture_output=True, text=True,
            env=font_environment(), timeout=_FC_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def cache_folder() -> Path | None:
    """``$XDG_CACHE_HOME/reportgen`` or ``~/.cache/reportgen``; None without a home folder."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "reportgen"
    try:
        return Path.home() / ".cache" / "reportgen"
    except RuntimeError:
        return None


def font_set_key(files: list[str]) -> str:
    """A name for this set of font files: their paths, sizes and modification times."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    for name in sorted(set(files)):
        try:
            stat = os.stat(name)
        except OSError:
            continue
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()[:32]


def _read_cache(path: Path) -> list[tuple[int, int]] | None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return [(int(low, 16), int(high, 16)) for low, high in (line.split("-") for line in text.split())]
    except ValueError:  # damaged: asked again and rewritten
        return None


def _write_cache(path: Path, ranges: list[tuple[int, int]]) -> None:
    """Written to a temporary name and renamed, so that a parallel run never reads half a file;
    a cache folder that cannot be written only means asking fontconfig again next time."""
    text = "".join(f"{low:x}-{high:x}\n" for low, high in ranges)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".glyphs-", suffix=".part", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


@functools.cache
def font_listing() -> list[tuple[str, str]] | None:
    """(file, families) of every font face LibreOffice can use now, asked once a command for the
    fonts' key, the glyphs they draw and the check for a Simplified-Chinese font; None when
    fontconfig cannot say."""
    listing = _fc_list("%{file}\t%{family}\n")
    if listing is None:
        return None
    return [(file, families) for file, _, families in (line.partition("\t") for line in listing.splitlines()) if file]


def has_simplified_chinese(rows: list[tuple[str, str]]) -> bool:
    return any(family in names for _, names in rows for family in SC_FONT_FAMILIES)


@functools.cache
def fonts_key() -> str | None:
    """A name for the fonts LibreOffice can use now (``font_set_key`` of their files), or None
    when fontconfig cannot say: a LibreOffice kept running is used again only with the same."""
    rows = font_listing()
    return None if rows is None else font_set_key([file for file, _ in rows])


@functools.cache
def coverage() -> Coverage | None:
    """What the conversion's fonts can draw; None when that cannot be known or would not matter."""
    rows = font_listing()
    if rows is None or not has_simplified_chinese(rows):
        return None
    folder = cache_folder()
    path = folder / f"glyphs-{font_set_key([file for file, _ in rows])}.txt" if folder else None
    ranges = _read_cache(path) if path else None
    if ranges is None:
        charsets = _fc_list("%{charset}\n")
        if charsets is None:
            return None
        ranges = parse_charsets(charsets)
        if path:
            _write_cache(path, ranges)
    return Coverage(ranges)


def _texts(data: LocatedMap) -> str:
    """Every value of a tree, run together (their order does not matter to ``Coverage.outside``)."""
    found, stack = [], [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, LocatedMap):
            stack.extend(value.values())
        elif isinstance(value, LocatedList):
            stack.extend(value)
    return "".join(found)


def glyph_problems(document: Document, file: str) -> list[Problem]:
    """A warning for each character of each value in ``document`` that no installed font draws,
    at the value's line and column, under the key path as the user wrote it."""
    if document.data is None:
        return []
    fonts = coverage()
    if fonts is None or not fonts.outside.search(_texts(document.data)):
        return []
    problems: list[Problem] = []

    def visit(value: object, key: str, mark: Mark) -> None:
        if isinstance(value, str):
            for char in fonts.missing(value):
                message = MESSAGE.format(char=char, code=ord(char))
                problems.append(Problem(file, mark[0], mark[1], "warning", key, message))
        elif isinstance(value, LocatedMap):
            for name, item in value.items():
                visit(item, join_key(key, name), value.value_marks[name])
        elif isinstance(value, LocatedList):
            for index, item in enumerate(value):
                visit(item, join_key(key, index), value.item_marks[index])

    visit(document.data, "", document.data.mark)
    return problems
