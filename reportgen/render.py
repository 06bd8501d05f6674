"""Render a region's docxtpl template with a view context into a DOCX file.

The context (see ``templates/CONTEXT.md``) holds already-formatted strings. They are data: the
sandboxed, autoescaping Jinja2 environment inserts them as text, never as template source.

Besides docxtpl's own tags the templates use ``{% vmerge COND %}`` in a table cell: on rows
where ``COND`` is true the cell starts a vertical merge, on the others it continues the merge
above (and its text is dropped). docxtpl's ``{% vm %}`` merges a column over a whole loop;
the 一级/二级 columns need one merge per group, driven by ``level1_first``/``level2_first``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
from docxtpl import DocxTemplate
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from .errors import OutputError, TemplateError

# Characters XML 1.0 forbids (C0 controls but tab/newline/CR, lone surrogates, U+FFFE/FFFF):
# one of them in a value would make Word refuse the whole document.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

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
        return _ILLEGAL_XML.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
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


_PATCHED: dict[str, str] = {}
_PATCHED_MAX = 64  # template parts (body, headers, footers) of every region, with room to spare


class _Template(DocxTemplate):
    """docxtpl with the ``{% vmerge %}`` cell tag, and data kept literal."""

    def patch_xml(self, src_xml: str) -> str:
        # docxtpl's clean-up reads nothing but the XML: once per template, not once per form.
        patched = _PATCHED.get(src_xml)
        if patched is None:
            patched = _VMERGE_CELL.sub(_vmerge_cell, super().patch_xml(src_xml))
            if len(_PATCHED) < _PATCHED_MAX:
                _PATCHED[src_xml] = patched
        return patched

    def render_xml_part(self, src_xml, part, context, jinja_env=None):
        # docxtpl's version also turns "{_{" into "{{" in the *output*, which would change a
        # value that happens to contain it; the templates never use that escape.
        src_xml = re.sub(r"<w:p([ >])", r"\n<w:p\1", src_xml)
        self.current_rendering_part = part
        try:
            template = jinja_env.from_string(src_xml)
        except jinja2.TemplateSyntaxError as exc:
            exc.docx_context = _text_near(src_xml, exc.lineno)  # type: ignore[attr-defined]
            raise
        dst_xml = template.render(context)
        dst_xml = re.sub(r"\n<w:p([ >])", r"<w:p\1", dst_xml)
        return self.resolve_listing(dst_xml)  # \n in a value -> line break, \t -> tab

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


def render_docx(template: Path, context: dict, out: Path) -> None:
    """Render ``template`` with ``context`` into ``out``, replacing it only when complete."""
    template, out = Path(template), Path(out)
    data = clean_context(context)
    tpl = _open(template)
    try:
        tpl.render(data, jinja_env=_environment())
    except jinja2.UndefinedError as exc:
        missing = _missing_tags(template, data)
        what = "、".join(missing) if missing else str(exc)
        raise TemplateError(f"{template}: 模板使用了上下文中没有的标签 {what}") from exc
    except jinja2.TemplateSyntaxError as exc:
        near = " ".join(s.strip() for s in getattr(exc, "docx_context", []) if s.strip())
        raise TemplateError(f"{template}: 模板语法错误：{exc.message}（附近：{near}）") from exc
    except jinja2.TemplateError as exc:  # SecurityError and the like
        raise TemplateError(f"{template}: 模板渲染失败：{exc}") from exc
    _save_atomic(tpl, out)


def _save_atomic(tpl: _Template, out: Path) -> None:
    """Write next to ``out`` and rename, so a half-written DOCX never exists under its name."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{out}: 无法写入（{exc.strerror or exc}）") from exc
    tmp = Path(tmp_name)
    try:
        tpl.save(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the DOCX is an ordinary output
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"{out}: 无法写入（{exc.strerror or exc}）") from exc
    finally:
        tmp.unlink(missing_ok=True)
