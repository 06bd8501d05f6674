"""The small commands: fields, new, regions, templates check, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.regions import all_regions

from .conftest import run_cli


def test_fields_reference_is_generated_from_the_model() -> None:
    result = run_cli("fields")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "| `name` | 项目名称 |  | 文字 | 是 | 项目名称 |" in lines
    assert any(line.startswith("| `funds.total.initial` | 年初预算数 | 年初预算数(A)、预算资金 | 金额") for line in lines)
    assert any(line.startswith("| `indicators.weight` | 分值 | 指标分值 | 分数，或 无/不适用 |") for line in lines)


def _fill_in(text: str) -> str:
    """What a clerk does with a starter file: names, amounts and values."""
    return (
        text.replace("请填写项目名称", "示例项目")
        .replace("全年执行数: 0", "全年执行数: 90")
        .replace("年初预算数: 0", "年初预算数: 100")
        .replace("全年预算数: 0", "全年预算数: 100")
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
    assert (result.exit_code, result.stdout) == (0, "检查了 5 个地区模板：0 个问题\n")


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
