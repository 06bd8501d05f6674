"""Render a region's docxtpl template with a view context into a DOCX file.

The context (see ``templates/CONTEXT.md``) holds already-formatted strings. They are data: the
sandboxed, autoescaping Jinja2 environment inserts them as text, never as template source.

Besides docxtpl's own tags the templates use ``{% vmerge COND %}`` in a table cell: on rows
where ``COND`` is true the cell starts a vertical merge, on the others it continues the merge
above (and its text is dropped). docxtpl's ``{% vm %}`` merges a column over a whole loop;
the 一级/二级 columns need one merge per group, driven by ``level1_first``/``level2_first``.
"""

from __future__ import annotations

import datetime
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.parsers import expat

import jinja2
from docxtpl import DocxTemplate
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree

from .errors import TemplateError
from .package import CORE_PART, ILLEGAL_XML, write_package

_VMERGE_CELL = re.compile(r"<w:tc[ >](?:(?!<w:tc[ >]).)*?\{%\s*vmerge\s.*?</w:tc>", re.DOTALL)
_VMERGE_TAG = re.compile(r"\{%\s*vmerge\s+(.+?)\s*%\}", re.DOTALL)
# tcPr children that follow w:vMerge in the schema; the new element goes before the first.
_AFTER_VMERGE = re.compile(
    r"<w:(?:tcBorders|shd|noWrap|tcMar|textDirection|tcFitText|vAlign|hideMark|headers"
    r"|cellIns|cellDel|cellMerge|tcPrChange)[ />]"
)


def clean_context(value: Any) -> Any:
    """A copy of ``value`` with XML-illegal characters removed from every string in it."""
    if isinstance(value, str):
        return ILLEGAL_XML.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    if isinstance(value, Mapping):
        return {key: clean_context(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_context(item) for item in value]
    return value


def _vmerge_cell(match: re.Match[str]) -> str:
    cell = match.group(0)
    cond = _VMERGE_TAG.search(cell).group(1)  # type: ignore[union-attr]
    cell = _VMERGE_TAG.sub("", cell)
    # Continued cells keep an empty paragraph: their text would otherwise show in the merge.
    cell = re.sub(
        r"(<w:t(?: [^>]*)?>)(.+?)(</w:t>)",
        lambda m: f"{m[1]}{{% if {cond} %}}{m[2]}{{% endif %}}{m[3]}",
        cell,
        flags=re.DOTALL,
    )
    merge = f'<w:vMerge w:val="{{% if {cond} %}}restart{{% else %}}continue{{% endif %}}"/>'
    cell = re.sub(r"<w:vMerge(?: [^>]*)?/>", "", cell)
    if "<w:tcPr>" not in cell and "<w:tcPr " not in cell:
        return re.sub(r"(<w:tc(?: [^>]*)?>)", rf"\1<w:tcPr>{merge}</w:tcPr>", cell, count=1)
    start = re.search(r"<w:tcPr(?: [^>]*)?>", cell).end()  # type: ignore[union-attr]
    end = cell.index("</w:tcPr>")
    later = _AFTER_VMERGE.search(cell, start, end)
    at = later.start() if later else end
    return cell[:at] + merge + cell[at:]


_TEXT = re.compile(r"(<w:t)((?: [^>]*)?>)(.*?)(</w:t>)", re.DOTALL)
_TAG_SPAN = re.compile(r"\{[{%#].*?[}%#]\}", re.DOTALL)


def _join_split_tags(xml: str) -> str:
    """Gather each tag's text into the run where it starts.

    Word and Writer split a paragraph's text into runs wherever spelling marks, revision ids or
    formatting change, so a tag typed as ``{{ project.name }}`` may be stored as ``{`` +
    ``{ project.na`` + ``me }}``. docxtpl only repairs tags whose braces stay together.
    """
    def paragraph(match: re.Match[str]) -> str:
        text = match[0]
        pieces = _TEXT.findall(text)
        if len(pieces) < 2 or "{" not in text:
            return text
        joined = "".join(piece[2] for piece in pieces)
        owner = [i for i, piece in enumerate(pieces) for _ in piece[2]]
        moved = False
        for span in _TAG_SPAN.finditer(joined):
            first = owner[span.start()]
            if owner[span.end() - 1] != first:
                owner[span.start() : span.end()] = [first] * (span.end() - span.start())
                moved = True
        if not moved:
            return text
        texts = ["".join(c for c, o in zip(joined, owner, strict=True) if o == i) for i in range(len(pieces))]
        replacement = iter(texts)
        return _TEXT.sub(lambda m: f'{m[1]} xml:space="preserve">{next(replacement)}{m[4]}', text)

    return _PARAGRAPH.sub(paragraph, xml)


_PATCHED: dict[str, str] = {}
_PATCHED_MAX = 64  # template parts (body, headers, footers) of every region, with room to spare


class _Template(DocxTemplate):
    """docxtpl with the ``{% vmerge %}`` cell tag, and data kept literal."""

    def patch_xml(self, src_xml: str) -> str:
        # docxtpl's clean-up reads nothing but the XML: once per template, not once per form.
        patched = _PATCHED.get(src_xml)
        if patched is None:
            patched = _VMERGE_CELL.sub(_vmerge_cell, super().patch_xml(_join_split_tags(src_xml)))
            if len(_PATCHED) < _PATCHED_MAX:
                _PATCHED[src_xml] = patched
        return patched

    def sources(self) -> Iterator[str]:
        """The Jinja2 source of every rendered part: body, headers, footers."""
        self.init_docx()
        yield self.patch_xml(self.get_xml())
        for uri in (self.HEADER_URI, self.FOOTER_URI):
            for _key, part in self.get_headers_footers(uri):
                yield self.patch_xml(self.get_part_xml(part))


def _text_near(xml: str, lineno: int | None) -> list[str]:
    """The document text around a Jinja2 error line (one line per paragraph)."""
    first = max((lineno or 1) - 2, 0)
    return [re.sub(r"<[^>]+>", "", line) for line in xml.splitlines()[first : first + 3]]


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)


def _open(template: Path) -> _Template:
    if not template.is_file():
        raise TemplateError(f"{template}: 模板文件不存在")
    tpl = _Template(str(template))
    try:
        tpl.init_docx()
    except Exception as exc:  # python-docx raises several kinds for a broken package
        raise TemplateError(f"{template}: 不是有效的 DOCX 模板（{exc}）") from exc
    return tpl


def _parse(template: Path, tpl: _Template) -> list[nodes.Template]:
    env = _environment()
    try:
        return [env.parse(source) for source in tpl.sources()]
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{template}: 模板语法错误：{exc.message}") from exc


def template_tags(template: Path) -> set[str]:
    """Every variable path the template reads: ``funds.total.initial``, ``indicators[].level2``.

    Loop variables are reported through their list (``row.level2`` inside
    ``{% for row in indicators %}`` is ``indicators[].level2``); a list is reported on its own
    only when the template uses its items whole.
    """
    tpl = _open(template)
    found: set[str] = set()
    for tree in _parse(template, tpl):
        _collect(tree, {}, found)
    return {p for p in found if not any(q.startswith(p + "[]") for q in found)}


_LOOP = ""  # scope marker for Jinja's own ``loop`` variable


def _path(node: nodes.Node, scope: Mapping[str, str]) -> str | None:
    if isinstance(node, nodes.Name) and node.ctx == "load":
        base = scope.get(node.name, node.name)
        return base or None
    if isinstance(node, nodes.Getattr):
        base = _path(node.node, scope)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _path(node.node, scope)
        return f"{base}.{node.arg.value}" if base else None
    return None


def _collect(node: nodes.Node, scope: dict[str, str], found: set[str]) -> None:
    path = _path(node, scope)
    if path is not None:
        found.add(path)
        return
    if isinstance(node, nodes.For):
        _collect(node.iter, scope, found)
        inner = {**scope, "loop": _LOOP}
        items = _path(node.iter, scope)
        if isinstance(node.target, nodes.Name) and items:
            inner[node.target.name] = items + "[]"
        for child in [*node.body, *([node.test] if node.test else [])]:
            _collect(child, inner, found)
        for child in node.else_:
            _collect(child, scope, found)
        return
    for child in node.iter_child_nodes():
        _collect(child, scope, found)


def _resolves(value: Any, parts: list[str]) -> bool:
    """Whether ``parts`` of a tag path exist in ``value``; ``x[]`` must hold for every item."""
    if not parts:
        return True
    name, is_list = parts[0].removesuffix("[]"), parts[0].endswith("[]")
    if not isinstance(value, Mapping) or name not in value:
        return False
    inner = value[name]
    if not is_list:
        return _resolves(inner, parts[1:])
    return isinstance(inner, (list, tuple)) and all(_resolves(i, parts[1:]) for i in inner)


def _missing_tags(template: Path, context: Mapping[str, Any]) -> list[str]:
    return sorted(t for t in template_tags(template) if not _resolves(context, t.split(".")))


class _Compiled:
    """A template prepared once per process: its package entries and its parts compiled by Jinja.

    docxtpl would re-read the package, re-compile every part and re-serialize every XML part for
    each form; a unit's forms share one template, so that work is done once and each form only
    renders the compiled parts and writes the package with the rendered parts swapped in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tpl = _open(path)
        self.tpl.render_init()
        with zipfile.ZipFile(path) as package:
            self.entries = [(info.filename, package.read(info)) for info in package.infolist()]
        env = _environment()
        self.parts: dict[str, jinja2.Template] = {}
        body_part = self.tpl.docx.part.partname.lstrip("/")
        sources = {body_part: self.tpl.patch_xml(self.tpl.get_xml())}
        for uri in (self.tpl.HEADER_URI, self.tpl.FOOTER_URI):
            for _key, part in self.tpl.get_headers_footers(uri):
                sources[part.partname.lstrip("/")] = self.tpl.patch_xml(self.tpl.get_part_xml(part))
        for part in self.tpl.docx.part.package.parts:
            if part.content_type == _FOOTNOTES_TYPE:
                sources[part.partname.lstrip("/")] = self.tpl.patch_xml(part.blob.decode("utf-8"))
        core = dict(self.entries).get(CORE_PART, b"").decode("utf-8")
        if "{{" in core or "{%" in core:  # docxtpl also renders title, subject… as templates
            sources[CORE_PART] = core
        for name, source in sources.items():
            source = re.sub(r"<w:p([ >])", r"\n<w:p\1", source)  # Jinja's line numbers → paragraphs
            try:
                self.parts[name] = env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                near = " ".join(s.strip() for s in _text_near(source, exc.lineno) if s.strip())
                raise TemplateError(f"{path}: 模板语法错误：{exc.message}（附近：{near}）") from exc
        self.body_part = body_part
        # docxtpl re-parses every rendered body to repair table grids after cell-level tags and
        # to renumber drawings; a template with neither needs no tree, only a well-formedness
        # check, which costs a fifth as much.
        raw = self.tpl.get_xml()
        self.needs_tree = "docPr" in raw or bool(_CELL_TAGS.search(re.sub(r"<[^>]*>", "", raw)))
        # The template's document element around its body, which each form's body replaces.
        original = dict(self.entries)[body_part]
        start, end = re.search(rb"<w:body[ >/]", original), original.rfind(b"</w:body>")
        if start is None or end < 0:  # an empty <w:body/>: nothing to fill in
            raise TemplateError(f"{path}: 模板正文为空")
        self.before_body, self.after_body = original[: start.start()], original[end + len(b"</w:body>") :]

    def render(self, context: Mapping[str, Any]) -> dict[str, bytes]:
        """The rendered parts, by package entry name."""
        rendered = {}
        for name, template in self.parts.items():
            xml = template.render(context).replace("\n<w:p ", "<w:p ").replace("\n<w:p>", "<w:p>")
            if name == CORE_PART:
                rendered[name] = xml.encode("utf-8")
                continue
            if any(char in xml for char in _LISTING_CHARS):  # rare: a scan is cheaper than the pass
                xml = _PARAGRAPH.sub(self._resolve_listing, xml)
            if name == self.body_part:
                rendered[name] = self._document(xml)
            else:
                rendered[name] = _XML_DECLARATION + xml.encode("utf-8")
        return rendered

    def _resolve_listing(self, paragraph: re.Match[str]) -> str:
        """docxtpl's \\n → line break, \\t → tab, \\f → page break; most paragraphs have none."""
        text = paragraph[0]
        return self.tpl.resolve_listing(text) if any(char in text for char in _LISTING_CHARS) else text

    def _document(self, body_xml: str) -> bytes:
        """The main part: the template's document element around the rendered body."""
        if self.needs_tree:
            tree = self.tpl.fix_tables(body_xml)  # docxtpl's grid repair after column tags
            self.tpl.docx_ids_index = 1000
            self.tpl.fix_docpr_ids(tree)
            body = etree.tostring(tree, encoding="utf-8")
        else:
            body = body_xml.encode("utf-8")
            _check_well_formed(body, self.path)
        return self.before_body + body + self.after_body


def _check_well_formed(xml: bytes, template: Path) -> None:
    """A template whose tags cut across paragraphs or table rows renders broken XML, which
    Word and LibreOffice refuse: say so here rather than write the file."""
    parser = expat.ParserCreate()
    try:
        parser.Parse(xml, True)
    except expat.ExpatError as exc:
        raise TemplateError(
            f"{template}: 模板渲染出的正文不是有效的 XML（{exc}）：检查模板中 {{% %}} 标签的位置"
        ) from exc


# docxtpl's tags that add or remove table cells: {%tc …%}, {{tc …}}, {% colspan %}, {% hm %}.
_CELL_TAGS = re.compile(r"\{[%{#]-?\s*tc\s|\{%-?\s*(?:colspan|hm)\b")
_PARAGRAPH = re.compile(r"<w:p(?: [^>]*)?>.*?</w:p>", re.DOTALL)
_LISTING_CHARS = "\t\a\n\f"
_FOOTNOTES_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_COMPILED: dict[tuple[str, int, int], _Compiled] = {}


def prepared(template: Path) -> _Compiled:
    """The prepared template, re-read when the file changes (tests and editors rewrite them)."""
    try:
        stat = template.stat()
    except OSError as exc:
        raise TemplateError(f"{template}: 模板文件不存在") from exc
    key = (str(template.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _COMPILED:
        try:
            _COMPILED[key] = _Compiled(template)
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{template}: 不是有效的 DOCX 模板（{exc}）") from exc
    return _COMPILED[key]


def render_docx(
    template: Path, context: dict, out: Path, when: datetime.datetime | None = None, title: str | None = None
) -> None:
    """Render ``template`` with ``context`` into ``out``, replacing it only when complete.

    The package is reproducible: entries dated ``when`` (or 1980-01-01), and with ``when`` the
    core properties' created/modified dates too. ``title`` becomes the document's title, which
    LibreOffice carries into the PDF.
    """
    template, out = Path(template), Path(out)
    data = clean_context(context)
    compiled = prepared(template)
    try:
        rendered = compiled.render(data)
    except jinja2.UndefinedError as exc:
        missing = _missing_tags(template, data)
        what = "、".join(missing) if missing else str(exc)
        raise TemplateError(f"{template}: 模板使用了上下文中没有的标签 {what}") from exc
    except jinja2.TemplateError as exc:  # SecurityError and the like
        raise TemplateError(f"{template}: 模板渲染失败：{exc}") from exc
    entries = [(name, rendered.get(name, data_)) for name, data_ in compiled.entries]
    write_package(entries, out, when, title)
