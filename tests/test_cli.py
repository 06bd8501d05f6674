"""The small commands: fields, new, regions, templates check, exit codes."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from reportgen.regions import all_regions
from reportgen.validate import check_paths

from .conftest import BASE_PROJECT, DATA, run_cli


def test_fields_reference_is_generated_from_the_model() -> None:
    result = run_cli("fields")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "| `name` | 项目名称 |  | 文字（不能为空） | 是 | 项目名称 |" in lines
    assert any(line.startswith("| `funds.total.initial` | 年初预算数 | 年初预算数(A)、预算资金 | 金额") for line in lines)
    assert any(line.startswith("| `indicators.weight` | 分值 | 指标分值 | 分数，或 无/不适用 |") for line in lines)


def _fill_in(text: str) -> str:
    """What a clerk does with a starter file: names, amounts and values."""
    text = re.sub(r"(全年执行数[^:\n]*): 0\n", r"\1: 90\n", text)  # the region's own spellings: 全年执行数(B)
    text = re.sub(r"((?:年初|全年|调整后?)预算数[^:\n]*): 0\n", r"\1: 100\n", text)
    return (
        text.replace("请填写项目名称", "示例项目")
        .replace("二级指标: 请填写", "二级指标: 示例")
        .replace("三级指标: 请填写", "三级指标: 示例")
        .replace("    评价得分:\n", "    评价得分: 1\n")
    )


@pytest.mark.parametrize("region", sorted(all_regions()))
def test_new_writes_a_starter_that_validates_once_filled_in(region: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("new", "--region", region, "p.yaml")
    assert result.exit_code == 0, result.output
    starter = Path("p.yaml").read_text(encoding="utf-8")
    assert starter.startswith("# ") and "项目名称: 请填写项目名称" in starter
    Path("p.yaml").write_text(_fill_in(starter), encoding="utf-8")
    validated = run_cli("validate", "p.yaml")
    assert validated.exit_code == 0, validated.output


def test_new_refuses_to_overwrite_and_unknown_regions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.yaml").write_text("keep", encoding="utf-8")
    result = run_cli("new", "p.yaml")
    assert (result.exit_code, result.output) == (1, "错误：p.yaml 已存在；如需覆盖请加 --force\n")
    assert Path("p.yaml").read_text(encoding="utf-8") == "keep"
    result = run_cli("new", "--region", "火星", "q.yaml")
    assert result.exit_code == 1 and "未知的地区「火星」" in result.output
    assert not Path("q.yaml").exists()


def test_regions_lists_every_region_folder() -> None:
    result = run_cli("regions")
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == sorted(all_regions())


def test_templates_check_passes_for_shipped_templates() -> None:
    result = run_cli("templates", "check")
    assert (result.exit_code, result.stdout) == (0, f"检查了 {len(all_regions())} 个地区模板：0 个问题\n")


def test_usage_errors_exit_2_and_missing_paths_exit_1(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli("validate", "--no-such-option").exit_code == 2
    result = run_cli("validate", "nowhere")
    assert (result.exit_code, result.output) == (1, "错误：找不到文件或文件夹：nowhere\n")


def test_empty_folder_is_a_failure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("empty").mkdir()
    result = run_cli("validate", "empty")
    assert result.exit_code == 1
    assert "没有找到项目文件（*.yaml）。" in result.output


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from reportgen.progress import progress_printer

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, plain in ((io.StringIO(), True), (Terminal(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress_printer() as progress:
            for done in range(1, 4):
                progress("生成 Word", done, 3)
        if plain:  # one line when the stage ends
            assert stream.getvalue() == "生成 Word：3/3\n"
        else:  # a bar, drawn on stderr with its count and cleared at the end
            assert "生成 Word" in stream.getvalue() and "3/3" in stream.getvalue()
            assert "生成 Word：3/3" not in stream.getvalue()


def test_a_reader_that_goes_away_stops_the_output_quietly() -> None:
    """`reportgen validate data | head -1`: the rest of the output has nowhere to go."""
    import subprocess
    import sys

    from .conftest import DATA

    process = subprocess.Popen(
        [sys.executable, "-m", "reportgen", "validate", str(DATA)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # before anything is written: every write fails
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 1
    assert errors == ""  # no "internal error", no traceback


def test_new_starter_rows_carry_each_level1s_usual_level2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli("new", "--region", "national", "p.yaml").exit_code == 0
    lines = Path("p.yaml").read_text(encoding="utf-8").splitlines()
    pairs = [(a.split(": ")[1], b.split(": ")[1]) for a, b in itertools.pairwise(lines) if a.startswith("  - 一级指标: ")]
    assert pairs == [("产出指标", "数量指标"), ("效益指标", "社会效益指标"), ("满意度指标", "服务对象满意度指标")]


def test_fields_reference_is_chinese_throughout() -> None:
    rows = [line for line in run_cli("fields").stdout.splitlines() if line.startswith("| `")]
    kinds = [row.split(" | ")[3] for row in rows]
    assert [kind for kind in kinds if any("a" <= c.lower() <= "z" for c in kind)] == []
    assert "| `funds` | 项目资金 | 资金使用情况、项目资金情况 | 映射（资金栏：各资金行和预算执行率得分） |" in "\n".join(rows)


def test_score_explain_prints_amounts_in_the_forms_unit() -> None:
    project = DATA / "2023" / "银川金凤区智慧城市运营中心" / "政府批准聘用人员支出.yaml"
    lines = run_cli("score", "--explain", str(project)).stdout.splitlines()
    assert lines[2].endswith("全年执行数 180.97212 万元，年初预算数 207.6892 万元")


def test_benniancaizhengbokuan_is_a_spelling_of_the_fiscal_row(project_file) -> None:
    name = project_file(BASE_PROJECT.replace("  当年财政拨款:", "  其中：本年财政拨款:"))
    [checked] = check_paths([Path(name)])
    assert checked.ok, [str(p) for p in checked.problems]
    assert str(checked.project.funds.fiscal.executed.value) == "990.00"


def test_the_progress_bar_runs_no_thread_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the bar is drawn at each step: a build forks a helper to check projects,
    which a process with other threads must not do."""
    import io
    import threading

    from reportgen.progress import progress_printer

    terminal = io.StringIO()
    monkeypatch.setattr(terminal, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stderr", terminal)
    before = threading.active_count()
    with progress_printer() as draw:
        draw("校验", 1, 2)
        assert threading.active_count() == before
        draw("校验", 2, 2)
    assert "校验" in terminal.getvalue()
