"""Shared test helpers: the seed data folder, a CLI runner, and a small valid project."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from reportgen.cli import main
from reportgen.regions import forget_region_folders

if TYPE_CHECKING:
    from reportgen.build import Options
    from reportgen.state import Report

# LibreOffice started by the tests' builds is used again by the next build for half a minute,
# not the ten minutes a clerk's rebuilds get (``reportgen build --keep-libreoffice``).
os.environ.setdefault("REPORTGEN_KEEP_LIBREOFFICE", "30")
# Commands run as subprocesses start Python and import reportgen themselves, as with
# REPORTGEN_KEEP_REPORTGEN=0; tests/test_resident.py runs them through a kept reportgen (and the
# whole suite can: REPORTGEN_KEEP_REPORTGEN=60 make test).
os.environ.setdefault("REPORTGEN_KEEP_REPORTGEN", "0")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
# The seed and example projects of data/, and their units (one bundle each).
DATA_PROJECTS = sorted(p for p in DATA.rglob("*.yaml") if not p.name.startswith("_") and "regions" not in p.parts)
DATA_UNITS = sorted({p.parent for p in DATA_PROJECTS})

# A valid 深圳龙华 project: weights 10 (execution) + 50 + 30 + 10 = 100.
BASE_PROJECT = """\
地区: 深圳龙华
年度: 2022
项目名称: 测试项目
实施单位: 测试单位
项目资金:
  金额单位: 元
  年度资金总额:
    年初预算数: "1000.00"
    全年预算数: "1000.00"
    全年执行数: "990.00"
  当年财政拨款:
    年初预算数: "1000.00"
    全年预算数: "1000.00"
    全年执行数: "990.00"
  分值: 10
绩效指标:
  - 一级指标: 产出指标
    二级指标: 数量指标
    三级指标: 操作员数量
    年度指标值: "17"
    实际完成值: "27"
    分值: 50
  - 一级指标: 效益指标
    二级指标: 社会效益指标
    三级指标: 事件办理
    年度指标值: 重点解决
    实际完成值: 重点解决
    分值: 30
    得分: 30
  - 一级指标: 满意度指标
    二级指标: 服务对象满意度指标
    三级指标: 市民满意度
    年度指标值: "≥95%"
    实际完成值: "100%"
    分值: 10
"""


def distinct_cells(cells) -> list:
    """A row's cells, each merged cell once (python-docx repeats a cell over its grid span)."""
    seen, found = set(), []
    for cell in cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            found.append(cell)
    return found


def table_texts(table) -> list[list[str]]:
    """A DOCX table as the texts of its rows' cells, each merged cell once."""
    return [[cell.text for cell in distinct_cells(row.cells)] for row in table.rows]


@pytest.fixture(autouse=True)
def _only_builtin_regions():
    """Region folders a test makes known (``--regions``, a data folder's ``regions/``) end with it."""
    yield
    forget_region_folders()


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def project_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a project file into tmp_path (the working folder) and return its name."""
    monkeypatch.chdir(tmp_path)

    def write(text: str = BASE_PROJECT, name: str = "p.yaml") -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return name

    return write


@pytest.fixture(scope="session")
def built_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/ built once with real LibreOffice, for the tests that read the outputs."""
    from reportgen.build import build

    out = tmp_path_factory.mktemp("built")
    report = build([DATA], out)
    rebuilt = report.rebuilt
    report = converted_together(report, [DATA], out)
    assert (report.projects, rebuilt, len(report.bundles)) == (len(DATA_PROJECTS), len(DATA_PROJECTS), len(DATA_UNITS))
    return out


def converted_together(report: Report, paths: list[Path], out: Path, options: Options | None = None) -> Report:
    """``report``, or, when LibreOffice failed to convert a unit's forms together (they are
    then converted one by one, with a notice, not recorded as built: other bytes), the report of
    the next build, which converts them together again. Never a report with a notice: the
    tests that compare bytes compare what a unit's document gives."""
    import dataclasses

    from reportgen.build import Options, build

    if report.notices:
        report = build(paths, out, dataclasses.replace(options or Options(), force=False))
    assert report.ok and not report.notices, (report.failures, report.notices)
    return report


def kept_reportgen_pid(env: dict[str, str], *flags: str, cwd: Path | None = None) -> int | None:
    """The kept reportgen that would run commands with ``env`` and Python's ``flags`` in ``cwd``
    (``reportgen.resident``), if any."""
    probe = [sys.executable, *flags, "-c", "from reportgen.resident import serving; print(serving() or '')"]
    found = subprocess.run(probe, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    return int(found) if found else None


def own_kept_reportgen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run as subprocesses from here on are handed to a kept reportgen of this test's
    own: its key differs from every other one's by a PYTHON… setting, which the key covers as it
    covers the interpreter's other settings."""
    monkeypatch.setenv("REPORTGEN_KEEP_REPORTGEN", "60")
    monkeypatch.setenv("PYTHONREPORTGENTEST", uuid.uuid4().hex)


@pytest.fixture
def kept_reportgen(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A kept reportgen of this test's own (``own_kept_reportgen``): started, answering, ended
    with the test. Its pid."""
    own_kept_reportgen(monkeypatch)
    started = subprocess.run([sys.executable, "-m", "reportgen", "regions"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 60
    while (pid := kept_reportgen_pid(dict(os.environ))) is None:
        assert time.monotonic() < deadline, "no kept reportgen answered"
        time.sleep(0.1)
    yield pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
