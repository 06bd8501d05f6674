"""The PDF's text layer, repaired where LibreOffice split a character outside the BMP.

A character outside the Basic Multilingual Plane (CJK Extension B such as 𠀀 U+20000, emoji) is
two UTF-16 code units, a surrogate pair. When LibreOffice 7.4 has to break a line inside a word
that does not fit its cell, it may break between the two: each half is then drawn on its own
line with the font's empty glyph (.notdef, a box), the first half's text in the font's ToUnicode
map is the lone high surrogate and the second half's is given as a marked-content span whose
ActualText is the lone low surrogate. Text extractors show both as U+FFFD, so searching, copying
and screen readers miss the character. (Where the character is drawn whole, its text is right.)

The two halves together name the character exactly, and the DOCX it was converted from says
which characters the document holds. ``repair`` joins them again: the first half's drawing gets
the whole character as its ActualText and the second half an empty one, so that the character
is read once, where it begins; and where every such use of a font's code stands for the same
character, that code's ToUnicode entry becomes the whole character too (for readers that ignore
ActualText).

The file keeps LibreOffice's layout: only the changed streams are rewritten (a page's content,
a font's ToUnicode map) and the cross-reference table is recomputed, so that the dates, file
identifiers and XMP metadata stay where ``bundle.normalize_pdf`` and PDF/A expect them, and the
same PDF always gives the same bytes. A PDF that is not laid out like LibreOffice's (another
cross-reference form, an incremental update, inline images) is left as it is.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .package import write_bytes

_SUPPLEMENTARY = re.compile("[\U00010000-\U0010ffff]")
_CHARACTER_REFERENCE = re.compile(r"&#(?:x([0-9a-fA-F]+)|([0-9]+));")
_HIGH, _LOW = range(0xD800, 0xDC00), range(0xDC00, 0xE000)
_REPLACEMENT = "\ufffd"


class Unsupported(Exception):
    """The PDF is not laid out as this module expects: it is left unchanged."""


# --- what the document should contain -------------------------------------------------------


def supplementary_characters(docx: Path) -> set[str]:
    """The characters outside the BMP in a DOCX's text (body, headers, footers, notes)."""
    found: set[str] = set()
    try:
        with zipfile.ZipFile(docx) as package:
            for name in package.namelist():
                if name.startswith("word/") and name.endswith(".xml"):
                    xml = package.read(name).decode("utf-8", errors="replace")
                    found.update(_SUPPLEMENTARY.findall(xml))
                    for hexadecimal, decimal in _CHARACTER_REFERENCE.findall(xml):
                        value = int(hexadecimal, 16) if hexadecimal else int(decimal)
                        if 0x10000 <= value <= 0x10FFFF:
                            found.add(chr(value))
    except (OSError, zipfile.BadZipFile, ValueError):
        return set()
    return found


# --- the repair -----------------------------------------------------------------------------


def repair(pdf: Path, docx: Path) -> bool:
    """Repair ``pdf`` (converted from ``docx``) in place; whether anything was changed.

    Costs one read of the DOCX when it holds no character outside the BMP (nearly always), and
    a read of the PDF's ToUnicode maps when it does.
    """
    expected = supplementary_characters(docx)
    if not expected:
        return False
    data = pdf.read_bytes()
    try:
        repaired = repair_bytes(data, expected)
    except Unsupported:
        return False
    if repaired is None:
        return False
    write_bytes(pdf, repaired)
    return True


def repair_bytes(data: bytes, expected: set[str]) -> bytes | None:
    """The repaired PDF, or None when there is nothing to repair. Raises ``Unsupported``."""
    document = _Document.read(data)
    if not any(font.broken for font in document.fonts.values()):
        return None
    pieces = list(document.pieces())
    joined = _join_halves(pieces, expected)
    if not joined:
        return None
    edits: dict[int, list[tuple[int, int, bytes]]] = {}  # content stream → (start, end, bytes)
    for piece in joined:
        edits.setdefault(piece.stream, []).extend(piece.edits())
    replacements = {number: _edited(document.stream_data(number), changes) for number, changes in edits.items()}
    for font_number, cmap in _mended_maps(document, joined).items():
        replacements[font_number] = cmap
    return document.rewrite(replacements)


# --- pieces of text in drawing order ---------------------------------------------------------


@dataclass
class _Piece:
    """Text drawn by one text-showing operator, or given by one ActualText span, in a content
    stream; ``text`` may hold lone surrogates (as Python does, ``surrogatepass``)."""

    stream: int  # object number of the content stream
    text: str
    start: int  # what to wrap (a show operation) or replace (an ActualText string)
    end: int
    is_span: bool
    font: int | None = None  # the ToUnicode object of a show operation's font
    last_code: int | None = None  # the code drawing its last character
    new_text: str | None = None  # its text after the repair
    joined: str | None = None  # the character whose first half it draws last

    def edits(self) -> list[tuple[int, int, bytes]]:
        assert self.new_text is not None
        actual = _text_string(self.new_text)
        if self.is_span:
            return [(self.start, self.end, actual)]
        return [(self.start, self.start, b"/Span<</ActualText" + actual + b">>BDC "), (self.end, self.end, b" EMC")]


def _text_string(text: str) -> bytes:
    return b"<FEFF" + text.encode("utf-16-be", "surrogatepass").hex().upper().encode() + b">"


def _join_halves(pieces: list[_Piece], expected: set[str]) -> list[_Piece]:
    """Pieces ending in a high surrogate followed by pieces starting with the low one: when the
    DOCX has that character, the second gets it whole and the first loses its half. (The second
    half starts the line that carries on the word, so the character is read with what follows.)"""
    changed: list[_Piece] = []
    drawn = [piece for piece in pieces if piece.text]
    for first, second in itertools.pairwise(drawn):
        if not (first.text and second.text):
            continue  # already moved
        high, low = ord(first.text[-1]), ord(second.text[0])
        if high not in _HIGH or low not in _LOW:
            continue
        character = chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        if character not in expected:
            continue
        first.new_text = first.text = first.text[:-1]
        second.new_text = second.text = character + second.text[1:]
        first.joined = character
        changed.extend(piece for piece in (first, second) if piece not in changed)
    return changed


def _mended_maps(document: _Document, joined: list[_Piece]) -> dict[int, bytes]:
    """ToUnicode maps whose lone-surrogate codes all stood for one character in the repair."""
    meanings: dict[tuple[int, int], set[str]] = {}
    for piece in joined:
        character = piece.joined
        if character is not None and not piece.is_span and piece.font is not None and piece.last_code is not None:
            meanings.setdefault((piece.font, piece.last_code), set()).add(character)
    uses = document.lone_uses
    mended: dict[int, bytes] = {}
    for number, font in document.fonts.items():
        cmap = font.source
        for code in sorted(font.broken):
            characters = meanings.get((number, code), set())
            if len(characters) != 1 or uses.get((number, code), 0) != _count_joined(joined, number, code):
                continue
            cmap = font.remap(cmap, code, characters.pop())
        if cmap != font.source:
            mended[number] = cmap
    return mended


def _count_joined(joined: list[_Piece], font: int, code: int) -> int:
    return sum(1 for p in joined if p.joined and not p.is_span and p.font == font and p.last_code == code)


# --- the PDF: objects, fonts, content streams ------------------------------------------------


@dataclass
class _ToUnicode:
    """One font's ToUnicode map: code → text (lone surrogates kept), and the codes whose text is
    a lone surrogate or U+FFFD."""

    source: bytes
    width: int  # bytes per code
    codes: dict[int, str]
    broken: set[int] = field(default_factory=set)

    @classmethod
    def parse(cls, source: bytes) -> _ToUnicode:
        ranges = re.search(rb"begincodespacerange\s*<([0-9A-Fa-f]+)>", source)
        width = len(ranges[1]) // 2 if ranges else 1
        codes: dict[int, str] = {}
        for block in _BFCHAR.findall(source):
            for code, text in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>", block):
                codes[int(code, 16)] = _utf16(bytes.fromhex(text.decode()))
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", source, re.S):
            for low, high, target in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]*>|\[[^\]]*\])",
                                                block):
                _range(codes, int(low, 16), int(high, 16), target)
        broken = {code for code, text in codes.items() if _is_broken(text)}
        return cls(source, width, codes, broken)

    def decode(self, string: bytes) -> tuple[str, list[int]]:
        """The text of a shown string, and its codes."""
        codes = [int.from_bytes(string[i : i + self.width], "big") for i in range(0, len(string), self.width)]
        return "".join(self.codes.get(code, "") for code in codes), codes

    def remap(self, source: bytes, code: int, character: str) -> bytes:
        """``source`` with the bfchar entry of ``code`` giving ``character``."""
        key = format(code, f"0{2 * self.width}X").encode()
        value = b"<" + character.encode("utf-16-be").hex().upper().encode() + b">"
        entry = re.compile(rb"(<" + key + rb">\s*)<[0-9A-Fa-f]*>", re.I)
        return _BFCHAR.sub(lambda block: entry.sub(lambda match: match[1] + value, block[0]), source)


_BFCHAR = re.compile(rb"beginbfchar.*?endbfchar", re.S)


def _utf16(raw: bytes) -> str:
    return raw.decode("utf-16-be", "surrogatepass") if len(raw) % 2 == 0 else _REPLACEMENT


def _range(codes: dict[int, str], low: int, high: int, target: bytes) -> None:
    if target.startswith(b"["):
        for code, text in zip(range(low, high + 1), re.findall(rb"<([0-9A-Fa-f]*)>", target), strict=False):
            codes[code] = _utf16(bytes.fromhex(text.decode()))
        return
    start = bytes.fromhex(target[1:-1].decode())
    for offset in range(high - low + 1):
        value = int.from_bytes(start, "big") + offset
        codes[low + offset] = _utf16(value.to_bytes(len(start), "big"))


def _is_broken(text: str) -> bool:
    return _REPLACEMENT in text or any(ord(ch) in _HIGH or ord(ch) in _LOW for ch in _combined(text))


def _combined(text: str) -> str:
    """``text`` with its surrogate pairs joined (a decoder's view); lone surrogates remain."""
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


_OBJECT_HEADER = re.compile(rb"(\d+)\s+(\d+)\s+obj\b")
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_LENGTH = re.compile(rb"/Length(?![0-9A-Za-z])\s+\d+(?:\s+\d+\s+R)?")


@dataclass
class _Document:
    data: bytes
    offsets: dict[int, int]  # object number → offset
    xref: int  # offset of the xref table
    pages: list[tuple[list[int], dict[bytes, int]]]  # (content streams, font name → ToUnicode object)
    fonts: dict[int, _ToUnicode]  # ToUnicode object → its map
    # (ToUnicode object, broken code) → times drawn outside ActualText spans
    lone_uses: dict[tuple[int, int], int] = field(default_factory=dict)

    @classmethod
    def read(cls, data: bytes) -> _Document:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        match = _STARTXREF.search(data[-64:])
        if match is None:
            raise Unsupported("no startxref")
        xref = int(match[1])
        if not data.startswith(b"xref", xref):
            raise Unsupported("cross-reference stream")
        offsets = _xref_offsets(data, xref)
        try:
            reader = PdfReader(io.BytesIO(data))
            if "/Prev" in reader.trailer or reader.is_encrypted:
                raise Unsupported("incremental update or encryption")
            pages, fonts = [], {}
            for page in reader.pages:
                contents = page.raw_get("/Contents") if "/Contents" in page else None
                streams = [_number(item) for item in (contents.get_object() if _is_array(contents) else [contents])
                           if item is not None]
                names: dict[bytes, int] = {}
                resources = page.get("/Resources") or {}
                font_dict = resources.get("/Font") or {}
                for name in font_dict:
                    font = font_dict[name].get_object()
                    reference = font.raw_get("/ToUnicode") if "/ToUnicode" in font else None
                    if reference is None:
                        continue
                    number = _number(reference)
                    names[name.encode()[1:]] = number
                    if number not in fonts:
                        fonts[number] = _ToUnicode.parse(reference.get_object().get_data())
                pages.append((streams, names))
            document = cls(data, offsets, xref, pages, fonts)
            document._reader = reader  # type: ignore[attr-defined]
            return document
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, zlib.error) as exc:
            raise Unsupported(str(exc)) from exc

    def stream_data(self, number: int) -> bytes:
        from pypdf.generic import IndirectObject

        reader = self._reader  # type: ignore[attr-defined]
        return IndirectObject(number, 0, reader).get_object().get_data()

    def pieces(self) -> Iterator[_Piece]:
        for streams, names in self.pages:
            for number in streams:
                yield from self._stream_pieces(number, names)

    def _stream_pieces(self, number: int, names: dict[bytes, int]) -> Iterator[_Piece]:
        content = self.stream_data(number)
        font: int | None = None
        spans: list[bool] = []  # open marked-content sequences: whether each has ActualText
        for operator, operands, start, end in _operations(content):
            if operator == b"Tf" and operands and operands[0].kind == "name":
                font = names.get(operands[0].value[1:])
            elif operator in (b"BDC", b"BMC"):
                actual = _actual_text(operands) if operator == b"BDC" else None
                if actual is not None and not any(spans):
                    yield _Piece(number, _text(actual.value), actual.start, actual.end, is_span=True)
                spans.append(actual is not None)
            elif operator == b"EMC":
                if spans:
                    spans.pop()
            elif operator in (b"Tj", b"TJ", b"'", b'"') and not any(spans) and font in self.fonts:
                cmap = self.fonts[font]
                text, codes = cmap.decode(b"".join(token.value for token in operands if token.kind == "string"))
                for code in codes:
                    if code in cmap.broken:
                        self.lone_uses[(font, code)] = self.lone_uses.get((font, code), 0) + 1
                yield _Piece(number, text, start, end, is_span=False, font=font, last_code=codes[-1] if codes else None)

    def rewrite(self, replacements: dict[int, bytes]) -> bytes:
        """The file with the given objects' streams replaced, everything else byte for byte."""
        starts = sorted(self.offsets.items(), key=lambda item: item[1])
        ends = {number: (starts[i + 1][1] if i + 1 < len(starts) else self.xref) for i, (number, _) in
                enumerate(starts)}
        parts, shift, moved, position = [], 0, {}, 0
        for number, offset in starts:
            parts.append(self.data[position:offset])
            moved[number] = offset + shift
            end = ends[number]
            if number in replacements:
                new = self._stream_object(number, self.data[offset:end], replacements[number])
                parts.append(new)
                shift += len(new) - (end - offset)
            else:
                parts.append(self.data[offset:end])
            position = end
        body = b"".join(parts)
        table = _xref_moved(self.data, self.xref, moved)
        return body + _STARTXREF.sub(b"startxref\n%d\n%%%%EOF\n" % len(body), table)

    def _stream_object(self, number: int, original: bytes, content: bytes) -> bytes:
        header = _OBJECT_HEADER.match(original)
        opening = original.find(b"stream", original.find(b">>"))
        if header is None or int(header[1]) != number or opening < 0:
            raise Unsupported(f"object {number}")
        dictionary = original[header.end() : opening].strip()
        filters = re.search(rb"/Filter\s*(/\w+|\[[^\]]*\])", dictionary)
        if b"/DecodeParms" in dictionary or (filters and filters[1].strip(b"[] ") != b"/FlateDecode"):
            raise Unsupported(f"object {number}: filter")
        stored = zlib.compress(content) if filters else content
        dictionary = _LENGTH.sub(b"/Length %d" % len(stored), dictionary, count=1)
        return b"%d %s obj\n%s\nstream\n%s\nendstream\nendobj\n\n" % (number, header[2], dictionary, stored)


def _number(reference: object) -> int:
    number = getattr(reference, "idnum", None)
    if not isinstance(number, int):
        raise Unsupported("direct object where a reference was expected")
    return number


def _is_array(value: object) -> bool:
    from pypdf.generic import ArrayObject

    return value is not None and isinstance(getattr(value, "get_object", lambda: value)(), ArrayObject)


def _xref_offsets(data: bytes, xref: int) -> dict[int, int]:
    offsets: dict[int, int] = {}
    for number, entry in _xref_entries(data, xref):
        if data[entry + 17 : entry + 18] == b"n":
            offset = int(data[entry : entry + 10])
            header = _OBJECT_HEADER.match(data, offset)
            if header is None or int(header[1]) != number:
                raise Unsupported(f"xref entry {number}")
            offsets[number] = offset
    return offsets


_SUBSECTION = re.compile(rb"(\d+)[ \t]+(\d+)[ \t]*\r?\n")


def _xref_entries(data: bytes, xref: int) -> Iterator[tuple[int, int]]:
    """(object number, offset of its 20-byte entry) in the classic cross-reference table at ``xref``."""
    position = xref + 4  # b"xref"
    while True:
        while data[position : position + 1] in (b" ", b"\r", b"\n"):
            position += 1
        match = _SUBSECTION.match(data, position)
        if match is None:
            break
        first, count = int(match[1]), int(match[2])
        position = match.end()
        for index in range(count):
            yield first + index, position
            position += 20
    if not data.startswith(b"trailer", position):
        raise Unsupported("xref table")


def _xref_moved(data: bytes, xref: int, moved: dict[int, int]) -> bytes:
    """The xref table and trailer with the objects' new offsets (each entry keeps its width)."""
    table = bytearray(data[xref:])
    for number, entry in _xref_entries(data, xref):
        if data[entry + 17 : entry + 18] == b"n":
            table[entry - xref : entry - xref + 10] = b"%010d" % moved[number]
    return bytes(table)


def _edited(content: bytes, changes: list[tuple[int, int, bytes]]) -> bytes:
    parts, position = [], 0
    for start, end, new in sorted(changes, key=lambda change: (change[0], change[1])):
        parts.append(content[position:start])
        parts.append(new)
        position = end
    parts.append(content[position:])
    return b"".join(parts)


# --- content streams ------------------------------------------------------------------------


@dataclass
class _Token:
    kind: str  # "name", "string", "number", "open", "close", "other"
    value: bytes  # a name with its slash; a string decoded to its bytes
    start: int
    end: int


_LEXEME = re.compile(
    rb"""(?P<space>[\x00\t\n\x0c\r ]+|%[^\r\n]*)
    |(?P<open><<|\[)|(?P<close>>>|\])
    |(?P<hex><[0-9A-Fa-f\x00\t\n\x0c\r ]*>)
    |(?P<literal>\()
    |(?P<name>/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*)
    |(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))
    |(?P<word>[^\x00\t\n\x0c\r ()<>\[\]{}/%]+|[{}])""",
    re.X,
)


def _operations(content: bytes) -> Iterator[tuple[bytes, list[_Token], int, int]]:
    """(operator, operands, start of the first operand, end of the operator) in order."""
    operands: list[_Token] = []
    position = 0
    while position < len(content):
        match = _LEXEME.match(content, position)
        if match is None:
            raise Unsupported(f"content at {position}")
        kind = match.lastgroup
        if kind == "literal":
            value, end = _literal(content, position)
            operands.append(_Token("string", value, position, end))
            position = end
            continue
        position = match.end()
        if kind == "space":
            continue
        if kind == "word":
            word = match[0]
            if word in (b"BI", b"ID"):
                raise Unsupported("inline image")
            if word in (b"true", b"false", b"null"):
                operands.append(_Token("other", word, match.start(), position))
                continue
            yield word, operands, (operands[0].start if operands else match.start()), position
            operands = []
        elif kind == "hex":
            digits = re.sub(rb"[^0-9A-Fa-f]", b"", match[0])
            value = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
            operands.append(_Token("string", value, match.start(), position))
        else:
            operands.append(_Token(str(kind), match[0], match.start(), position))


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def _literal(content: bytes, start: int) -> tuple[bytes, int]:
    """A literal string's bytes and the offset after its closing parenthesis."""
    value, depth, position = bytearray(), 0, start
    while position < len(content):
        byte = content[position]
        position += 1
        if byte == 0x5C:  # backslash
            escaped = content[position : position + 1]
            position += 1
            if escaped.isdigit():
                digits = escaped
                while len(digits) < 3 and content[position : position + 1].isdigit():
                    digits += content[position : position + 1]
                    position += 1
                value.append(int(digits, 8) & 0xFF)
            elif escaped == b"\r":
                position += content[position : position + 1] == b"\n"
            elif escaped != b"\n":
                value += _ESCAPES.get(escaped[0], escaped) if escaped else b""
            continue
        if byte == 0x28:  # (
            depth += 1
            if depth == 1:
                continue
        elif byte == 0x29:  # )
            depth -= 1
            if depth == 0:
                return bytes(value), position
        value.append(byte)
    raise Unsupported("unterminated string")


def _actual_text(operands: list[_Token]) -> _Token | None:
    """The ActualText string of a BDC's property list, if it has one."""
    for index, token in enumerate(operands[:-1]):
        if token.kind == "name" and token.value == b"/ActualText" and operands[index + 1].kind == "string":
            return operands[index + 1]
    return None


def _text(value: bytes) -> str:
    """A PDF text string: UTF-16BE after a byte-order mark, else (near enough) Latin-1."""
    if value.startswith(b"\xfe\xff"):
        return _utf16(value[2:])
    return value.decode("latin-1")
