"""Bundle helpers: safe file names, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.bundle import atomic_path, safe_filename
from reportgen.errors import OutputError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("数字城管运行费", "数字城管运行费"),
        ("a/b\\c", "a_b_c"),
        ("../../etc/passwd", "___etc_passwd"),
        ("x\x00y", "x_y"),
        ("C:项目", "C_项目"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("项目?*<>|\"名", "项目______名"),
        ("  .hidden. ", "hidden"),
        ("", "项目"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, set()) == expected


def test_safe_filename_is_short_and_distinct(tmp_path: Path) -> None:
    taken: set[str] = set()
    long_name = "很长的项目名称" * 40  # 280 characters, 840 bytes
    first, second = safe_filename(long_name, taken), safe_filename(long_name, taken)
    assert len(first.encode()) <= 150 and first != second and second == f"{first}_2"
    assert safe_filename("项目", taken) == "项目" and safe_filename("项目", taken) == "项目_2"
    assert safe_filename("Abc", taken) == "Abc" and safe_filename("abc", taken) == "abc_2"  # case-insensitive file systems
    for name in taken:
        (tmp_path / f"{name}.pdf").write_bytes(b"x")  # every name is creatable here
    assert len(list(tmp_path.iterdir())) == len(taken)


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.pdf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pdf"]


def test_atomic_path_turns_os_errors_into_output_errors(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir-is-a-file"
    target.write_bytes(b"")
    with pytest.raises(OutputError, match="无法写入"), atomic_path(target / "x.pdf") as temporary:
        temporary.write_bytes(b"data")
