"""An unchanged tree answered from the record of the last build, and everything that stops it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.build import Options, build
from reportgen.state import TREE_KEY, look_at_tree

from .conftest import BASE_PROJECT, DATA

pytestmark = pytest.mark.soffice

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two projects, one with warnings, built once, the working folder beside them."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    project = next(data.rglob("网格信息采集工作.yaml"))  # a score below the weight: three warnings
    lowered = '实际完成值: "97.11%"\n    分值: "10"\n    得分: "9.5"'
    project.write_text(project.read_text(encoding="utf-8").replace(lowered.replace("9.5", "10"), lowered), encoding="utf-8")
    out = tmp_path / "out"
    assert build([data], out, Options(keep=0)).ok
    return data, out


def _unchanged(data: Path, out: Path, pdfa: bool = False, shard: tuple[int, int] | None = None) -> bool:
    return look_at_tree([data], out, pdfa, shard).report is not None


def test_an_unchanged_tree_gives_the_report_a_build_would(tree: tuple[Path, Path]) -> None:
    data, out = tree
    replayed = look_at_tree([data], out, False, None).report
    looked = build([data], out, Options(keep=0))  # a build looks at every project (and records again)
    assert replayed is not None and looked.ok
    assert replayed.problems == looked.problems and len(looked.problems) == 3
    assert all(problem.severity == "warning" for problem in replayed.problems)
    assert (replayed.projects, replayed.rebuilt, replayed.skipped, replayed.warnings, replayed.failures) == (
        looked.projects, looked.rebuilt, looked.skipped, looked.warnings, looked.failures) == (2, 0, 2, 3, [])
    assert replayed.bundles == looked.bundles == [out / "2022" / "深圳市龙华区平安建设中心.zip"]
    assert _unchanged(data, out)


def test_any_changed_input_setting_or_output_means_a_build_looks(tree: tuple[Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import reportgen

    data, out = tree
    project = next(data.rglob("网格信息采集工作.yaml"))
    text = project.read_bytes()
    project.write_bytes(text.replace("工作人员满意度".encode(), "工作人员满意程度".encode()))
    assert not _unchanged(data, out)
    project.write_bytes(text)
    assert _unchanged(data, out)  # the same bytes again: nothing to do

    added = project.with_name("新项目.yaml")
    shutil.copy(project, added)
    assert not _unchanged(data, out)
    added.unlink()
    unit = project.with_name("_unit.yaml")
    unit_text = unit.read_bytes()
    unit.write_bytes(unit_text + "# 改过\n".encode())
    assert not _unchanged(data, out)
    unit.write_bytes(unit_text)

    region = data / "regions" / "my-county"  # a new region may be the one a project names
    shutil.copytree(REPO / "templates/docx/shenzhen-longhua", region)
    assert not _unchanged(data, out)
    shutil.rmtree(data / "regions")
    assert _unchanged(data, out)

    assert not _unchanged(data, out, pdfa=True)
    assert not _unchanged(data, out, shard=(1, 2))
    with monkeypatch.context() as changed:
        changed.setenv("SOURCE_DATE_EPOCH", "1700000000")
        assert not _unchanged(data, out)
    with monkeypatch.context() as changed:
        changed.chdir(out)  # problems are printed relative to the working folder
        assert not _unchanged(data, out)
    with monkeypatch.context() as changed:
        changed.setattr(reportgen, "code_digest", lambda: "the code of a later update")
        assert not _unchanged(data, out)

    pdf = next(out.rglob("网格信息采集工作.pdf"))
    stat = pdf.stat()
    os.utime(pdf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not _unchanged(data, out)
    os.utime(pdf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _unchanged(data, out)
    stray = pdf.with_name("别处的.pdf")
    stray.write_bytes(b"%PDF-")
    assert not _unchanged(data, out)  # a build would remove it
    stray.unlink()
    kept = pdf.read_bytes()
    pdf.unlink()
    assert not _unchanged(data, out)
    pdf.write_bytes(kept)
    assert not _unchanged(data, out)  # written again: its time differs
    assert build([data], out, Options(keep=0)).rebuilt == 0
    assert _unchanged(data, out)


def test_a_build_with_failures_or_stopped_is_never_answered_from(tree: tuple[Path, Path]) -> None:
    data, out = tree
    broken = data / "2022" / "有错.yaml"
    broken.write_text(BASE_PROJECT.replace("项目名称:", "项目名称: [未闭合", 1), encoding="utf-8")
    assert not build([data], out, Options(keep=0)).ok
    state = json.loads((out / ".reportgen/state.json").read_text(encoding="utf-8"))
    assert TREE_KEY not in state
    assert not _unchanged(data, out)
    broken.unlink()
    assert not _unchanged(data, out)  # the record went with the failed build
    assert build([data], out, Options(keep=0)).ok
    assert _unchanged(data, out)


def test_the_command_answers_an_unchanged_tree_without_loading_the_checking(tree: tuple[Path, Path]) -> None:
    data, out = tree
    state_file = out / ".reportgen/state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    del state[TREE_KEY]  # as left by a build that could not record it: this one looks
    state_file.write_text(json.dumps(state), encoding="utf-8")

    def run() -> tuple[list[str], str]:
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "reportgen", "build", "data", "-o", "out"],
                              cwd=data.parent, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        return re.sub(r"用时 [\d.]+ 秒", "用时", done.stdout).splitlines(), done.stderr

    looked, looked_imports = run()
    answered, answered_imports = run()
    assert "reportgen.validate" in looked_imports and "reportgen.validate" not in answered_imports
    assert "reportgen.regions\n" not in answered_imports and "pydantic\n" not in answered_imports
    assert answered == looked
    assert looked[-1] == "项目 2 个：重新生成 0，未变化跳过 2，警告 3，失败 0；报送包 1 个；用时"
    assert any(": warning: " in line for line in looked)


def test_an_unchanged_tree_with_a_wrong_allocator_setting_is_refused_too(tree: tuple[Path, Path]) -> None:
    """The same command gives the same answer whether or not anything is to be converted."""
    data, out = tree
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    environment = {**os.environ, "PYTHONPATH": str(REPO), "REPORTGEN_LIBREOFFICE_MALLOC": "tcmaloc"}
    done = subprocess.run([sys.executable, "-m", "reportgen", "build", "data", "-o", "out"], cwd=data.parent,
                          env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", "错误：环境变量 REPORTGEN_LIBREOFFICE_MALLOC 只能是 tcmalloc 或 system，不能是「tcmaloc」\n")
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before
    assert _unchanged(data, out)  # still answered from the record once the setting is right


def test_the_command_takes_the_trees_key_once_before_the_build_reads_anything(
        tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen import build as build_module
    from reportgen import state

    from .conftest import run_cli

    data, out = tree
    project = next(data.rglob("网格信息采集工作.yaml"))
    project.write_text(project.read_text(encoding="utf-8").replace("工作人员满意度", "工作人员满意程度"), encoding="utf-8")
    taken: list[tuple] = []
    real = state.tree_key
    for module in (state, build_module):
        monkeypatch.setattr(module, "tree_key", lambda *args: taken.append(args) or real(*args))
    found: list[list[Path]] = []
    discover = state.discover
    monkeypatch.setattr(state, "discover", lambda paths: found.append(paths) or discover(paths))
    monkeypatch.setattr("reportgen.load.discover", lambda paths: found.append(paths) or discover(paths))
    result = run_cli("build", "data", "-o", "out")
    assert result.exit_code == 0 and "重新生成 2，未变化跳过 0" in result.output
    assert len(taken) == 1  # looked at once: the build is handed the key the command took
    assert len(found) == 1  # and the project files it found

    def printed(output: str) -> list[str]:  # the problems and bundles (not the progress, on stderr)
        return [line for line in output.splitlines() if ": warning: " in line or line.startswith("报送包")]

    answered = run_cli("build", "data", "-o", "out")
    assert "重新生成 0，未变化跳过 2" in answered.output
    assert printed(answered.output) == printed(result.output) and len(printed(result.output)) == 4
    assert len(taken) == 2 and look_at_tree([data], out, False, None).report is not None


def test_an_output_folder_that_cannot_be_looked_into_is_left_to_the_build(
        tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = tree
    is_file = Path.is_file

    def refused(path: Path) -> bool:
        if path.name == "state.json":
            raise PermissionError(13, "Permission denied", str(path))
        return is_file(path)

    monkeypatch.setattr(Path, "is_file", refused)
    looked = look_at_tree([data], out, False, None)
    assert looked.report is None and looked.key is not None  # no answer, but the key for the build


@pytest.mark.parametrize("record", [
    {"problems": "不是列表"}, {"problems": [[1, 2]]}, {"projects": "两个"}, {"bundles": None}, "不是字典",
])
def test_a_damaged_record_is_left_to_the_build(tree: tuple[Path, Path], record: object) -> None:
    data, out = tree
    state_file = out / ".reportgen/state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state[TREE_KEY] = {**state[TREE_KEY], **record} if isinstance(record, dict) else record
    state_file.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    looked = look_at_tree([data], out, False, None)
    assert looked.report is None and looked.key is not None
    again = build([data], out, Options(keep=0), tree=looked)
    assert again.ok and (again.rebuilt, again.skipped) == (0, 2)
    assert _unchanged(data, out)  # recorded anew
