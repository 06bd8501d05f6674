"""Files written so that nothing half-written is ever visible and the same content gives the
same bytes: atomic renames, and DOCX/zip packages with fixed entry dates."""

from __future__ import annotations

import contextlib
import datetime
import html
import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

CORE_PART = "docProps/core.xml"
# Characters XML 1.0 forbids (C0 controls but tab/newline/CR, lone surrogates, U+FFFE/FFFF):
# one of them in a value would make Word refuse the whole document.
ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it only if the block succeeds."""
    temporary = target.with_name(f".{target.name}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, target)
    except OSError as exc:
        _remove_quietly(temporary)
        raise OutputError(f"无法写入 {target}：{exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # the error being reported matters more
        path.unlink(missing_ok=True)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)


ZIP_EPOCH = datetime.datetime(1980, 1, 1, tzinfo=datetime.UTC)  # the earliest a zip can store


def zip_time(when: datetime.datetime | None) -> tuple[int, int, int, int, int, int]:
    when = max(when or ZIP_EPOCH, ZIP_EPOCH)
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


def _stamp_core(xml: bytes, when: datetime.datetime | None, title: str | None) -> bytes:
    if when is not None:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        xml = re.sub(
            rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)", lambda m: m[1] + stamp + m[3], xml
        )
    if title is not None:
        text = html.escape(ILLEGAL_XML.sub("", title), quote=False).encode()
        xml = re.sub(rb"<dc:title/>|<dc:title>[^<]*</dc:title>", lambda _: b"<dc:title>" + text + b"</dc:title>", xml)
    return xml


def write_package(
    entries: list[tuple[str, bytes]], target: Path, when: datetime.datetime | None, title: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> None:
    """Write a DOCX package atomically, every entry dated ``when``: same content, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as package:
        for name, data in entries:
            if name == CORE_PART:
                data = _stamp_core(data, when, title)
            entry = zipfile.ZipInfo(name, zip_time(when))
            entry.compress_type = compression
            entry.external_attr = 0o644 << 16
            package.writestr(entry, data)
    write_bytes(target, buffer.getvalue())
