"""The command line: arguments → one stage → printed problems → exit code. No logic here.

Exit codes: 0 success; 1 the data has errors (or warnings under --strict) or a build failed;
2 the command line is wrong; 3 an internal error (a bug in reportgen, reported without a
traceback unless REPORTGEN_DEBUG is set).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from . import __version__
from .errors import ReportgenError, UsageError
from .package import write_bytes
from .progress import progress_printer
from .region_folders import add_region_folders
from .state import Tree, look_at_tree

if TYPE_CHECKING:
    from .regions import Region
    from .validate import Checked

# The commands import what they use when they run: an unchanged tree is answered by `build`
# without loading the checking and the regions (three quarters of its time otherwise).

DEFAULT_DATA = Path("data")
DEFAULT_OUT = Path("build")
PATHS = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


def _friendly(command: Callable) -> Callable:
    """Turn reportgen's errors into a message and exit 1; anything else into exit 3."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ReportgenError as exc:
            click.echo(f"错误：{exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("已中断：未完成的文件已删除，之前生成的文件保持不变。", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader went away (`reportgen validate | head`): stop quietly, as other tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:
            if os.environ.get("REPORTGEN_DEBUG"):
                raise
            hint = "请报告此问题；设置 REPORTGEN_DEBUG=1 可显示详情"
            click.echo(f"reportgen 内部错误：{type(exc).__name__}: {exc}（{hint}）", err=True)
            sys.exit(3)

    return run


def _check(paths: tuple[Path, ...]) -> list[Checked]:
    from .validate import check_paths

    return check_paths(list(paths) or [DEFAULT_DATA])


def _print_problems(results: list[Checked]) -> None:
    from . import report

    for line in report.problem_lines(results):
        click.echo(line)
    click.echo(report.summary_line(results))


def _failed(results: list[Checked], strict: bool) -> bool:
    problems = [p for checked in results for p in checked.problems]
    return any(p.is_error or strict for p in problems) or not results


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `kill` gets the same clean-up as Ctrl-C


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reportgen")
@click.option("--regions", "region_folders", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="自己的地区文件夹（一个地区，或含多个地区的文件夹）；可写多次。也可用环境变量 REPORTGEN_REGIONS。")
def main(region_folders: tuple[Path, ...]) -> None:
    """reportgen：由项目 YAML 文件生成项目支出绩效自评表。"""
    signal.signal(signal.SIGTERM, _interrupt)
    add_region_folders(region_folders)


def _region(name: str | None) -> Region:
    from .regions import find_region, suggest_region

    region = find_region(name)
    if region is None:
        raise UsageError(suggest_region(name or ""))
    return region


REGION_OPTION = click.option(
    "--region", "region_name", default=None, help="地区 id 或名称（见 reportgen regions）；缺省为缺省地区。"
)


@main.command()
@PATHS
@click.option("--strict", is_flag=True, help="有警告也按失败处理（退出码 1）。")
@_friendly
def validate(paths: tuple[Path, ...], strict: bool) -> None:
    """检查项目文件，逐行列出所有问题。PATHS 为文件或文件夹，缺省为 data/。"""
    results = _check(paths)
    _print_problems(results)
    if not results:
        click.echo("没有找到项目文件（*.yaml）。", err=True)
    sys.exit(1 if _failed(results, strict) else 0)


@main.command()
@PATHS
@click.option("--explain", is_flag=True, help="逐项列出计分规则、输入、计算得分与填写得分。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出（每个项目一个对象）。")
@_friendly
def score(paths: tuple[Path, ...], explain: bool, as_json: bool) -> None:
    """计算每个项目的总分和等次。"""
    from . import report

    results = _check(paths)
    scored = [checked for checked in results if checked.ok]
    if as_json:
        click.echo(json.dumps([report.score_json(c) for c in scored], ensure_ascii=False, indent=2))
    else:
        for checked in scored:
            lines = report.explanation(checked) if explain else [report.score_line(checked)]
            click.echo("\n".join(lines))
    for line in report.problem_lines(results):
        click.echo(line, err=True)
    sys.exit(1 if _failed(results, strict=False) else 0)


@main.command()
@click.option("--region", "region_name", default=None, help="只列出该地区表格上的字段，用该地区的叫法。")
@_friendly
def fields(region_name: str | None) -> None:
    """打印字段说明（由数据模型和地区的字段声明生成）。"""
    from .reference import field_reference

    click.echo(field_reference(_region(region_name) if region_name else None))


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@REGION_OPTION
@click.option("--force", is_flag=True, help="覆盖已存在的文件。")
@_friendly
def new(file: Path, region_name: str | None, force: bool) -> None:
    """生成一个带注释的项目文件模板（中文键，只含该地区表格上的栏目）。"""
    from .reference import starter_yaml

    region = _region(region_name)
    if file.exists() and not force:
        raise UsageError(f"{file} 已存在；如需覆盖请加 --force")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(starter_yaml(region), encoding="utf-8")
    click.echo(f"已生成 {file}（{region.name}）")


@main.command()
@PATHS
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="输出文件夹。")
@click.option("--force", is_flag=True, help="全部重新生成，不跳过未变化的项目。")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None,
              help="同时运行的 LibreOffice 数量（缺省为 CPU 核数）。")
@click.option("--soffice", default="soffice", show_default=True, envvar="REPORTGEN_SOFFICE", help="LibreOffice 程序。")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120.0, show_default=True,
              help="单个文件转换的超时秒数。")
@click.option("--pdfa", is_flag=True, help="生成 PDF/A-2b（存档用）。")
@click.option("--shard", default=None, metavar="K/N", callback=lambda _c, _p, value: _shard(value),
              help="只生成 N 份中的第 K 份单位（按单位名称固定分配），用于在多台电脑上分别生成。")
@click.option("--keep-libreoffice", "keep", type=click.FloatRange(0, 86400), default=None, metavar="秒",
              envvar="REPORTGEN_KEEP_LIBREOFFICE",
              help="生成结束后 LibreOffice 未被使用时再保持运行多少秒，下次生成不必再启动；"
                   "0 表示随生成结束。缺省 600。")
@_friendly
def build(paths: tuple[Path, ...], out: Path, force: bool, jobs: int | None, soffice: str, timeout: float,
          pdfa: bool, shard: tuple[int, int] | None, keep: float | None) -> None:
    """校验、计分，生成每个项目的 Word 和 PDF，并按单位、年度打包。"""
    from .convert import office_allocator

    given = list(paths) or [DEFAULT_DATA]
    office_allocator()  # a wrong REPORTGEN_LIBREOFFICE_MALLOC is refused also when nothing is to convert
    tree = Tree(None) if force else look_at_tree(given, out, pdfa, shard)
    result = tree.report
    if result is None:
        from .build import Options
        from .build import build as run_build

        options = Options(force=force, jobs=jobs, soffice=soffice, timeout=timeout, pdfa=pdfa, shard=shard, keep=keep)
        with progress_printer() as progress:
            result = run_build(given, out, options, progress, tree)
    for problem in result.problems:
        click.echo(str(problem))
    for failure in result.failures:
        click.echo(f"失败：{failure}", err=True)
    for notice in result.notices:
        click.echo(f"提示：{notice}", err=True)
    for archive in result.bundles:
        click.echo(f"报送包：{archive}")
    click.echo(result.summary())
    sys.exit(0 if result.ok else 1)


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise click.BadParameter(f"应写成 K/N，1 ≤ K ≤ N，如 2/5：{value}")
    return int(index), int(count)


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_DATA,
              show_default=True, help="写入项目文件的数据文件夹（按 年度/单位/ 整理）。")
@REGION_OPTION
@click.option("--force", is_flag=True, help="覆盖已存在的项目文件。")
@click.option("--soffice", default="soffice", show_default=True, envvar="REPORTGEN_SOFFICE",
              help="LibreOffice 程序（导入 .doc 时用）。")
@_friendly
def import_forms(paths: tuple[Path, ...], out: Path, region_name: str | None, force: bool, soffice: str) -> None:
    """把已填好的自评表（.docx、.doc，或其所在文件夹）读回项目文件。"""
    from .importer import import_paths
    from .validate import check_paths

    report = import_paths(list(paths), out, _region(region_name) if region_name else None, force, soffice)
    for problem in report.problems:
        click.echo(str(problem))
    for path in report.files:
        click.echo(f"已写入 {path}")
    checked = check_paths(report.projects) if report.projects else []
    if checked:
        _print_problems(checked)
    click.echo(f"导入了 {report.forms} 张表：写入 {len(report.files)} 个文件")
    failed = any(p.is_error for p in report.problems) or not report.projects or _failed(checked, strict=False)
    sys.exit(1 if failed else 0)


@main.command()
@_friendly
def regions() -> None:
    """列出可用的地区：id、名称、表名、来自哪个文件夹。"""
    from .regions import all_regions

    for region in all_regions().values():
        aliases = f"（也可写：{'、'.join(region.aliases)}）" if region.aliases else ""
        default = "［缺省］" if region.default else ""
        click.echo(f"{region.id}\t{region.name}{default}\t{region.title}{aliases}\t{region.origin}")


@main.group("region")
def region_group() -> None:
    """地区文件夹相关命令。"""


@region_group.command("new")
@click.argument("region_id")
@click.option("--from", "source", required=True, help="复制哪个地区作为起点（id 或名称，见 reportgen regions）。")
@click.option("--into", "into", type=click.Path(path_type=Path, file_okay=False), default=Path("data") / "regions",
              show_default=True, help="新地区文件夹放在哪里（数据文件夹的 regions/ 会被自动使用）。")
@_friendly
def region_new(region_id: str, source: str, into: Path) -> None:
    """复制一个地区文件夹作为新地区的起点。"""
    from .regions import copy_region

    folder = copy_region(_region(source), region_id, into)
    click.echo(f"已生成 {folder}：先改 rules.yaml 中的 name，再在 Word 中修改 form.docx（见 README「添加自己的地区」）")


@main.group()
def templates() -> None:
    """地区模板相关命令。"""


@templates.command("check")
@REGION_OPTION
@_friendly
def templates_check(region_name: str | None) -> None:
    """检查地区模板：每个标签都在该地区的上下文中，每个声明的字段都印在表上。"""
    from .regions import all_regions
    from .templates import check_templates  # loads docxtpl: only for this command

    chosen = [_region(region_name)] if region_name else list(all_regions().values())
    problems = check_templates(chosen)
    for line in problems:
        click.echo(line)
    click.echo(f"检查了 {len(chosen)} 个地区模板：{len(problems)} 个问题")
    sys.exit(1 if problems else 0)


@templates.command("dump")
@click.argument("what")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="写入文件（如 form.txt）；缺省打印出来。")
@_friendly
def templates_dump(what: str, out: Path | None) -> None:
    """把模板（地区 id 或 .docx 文件）写成可审阅的文字（form.txt 的格式）。"""
    from .templates import dump

    path = Path(what)
    text = dump(path if path.is_file() else _region(what).template)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_bytes(out, text.encode("utf-8"))
        click.echo(f"已写入 {out}")


@main.command()
@click.argument("data_dir", required=False, default=DEFAULT_DATA, type=click.Path(path_type=Path, file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="端口；0 表示任选一个空闲端口。")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="监听的地址。改为其他地址会让本机以外的电脑也能打开此页面（会给出警告）。")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=None,
              help="输出文件夹（缺省为数据文件夹旁边的 build/）。")
@click.option("--no-browser", is_flag=True, help="不自动打开浏览器。")
@_friendly
def serve(data_dir: Path, port: int, host: str, out: Path | None, no_browser: bool) -> None:
    """在本机浏览器中填写、检查和生成自评表（本地网页，不连互联网）。DATA_DIR 缺省为 data/。"""
    from .convert import keep_seconds
    from .serve import run_server  # the web server: loaded only for this command

    keep_seconds()  # its builds read REPORTGEN_KEEP_LIBREOFFICE: a wrong value stops it here, not later
    run_server(data_dir, out, host, port, open_browser=not no_browser, say=click.echo)


def run(prog_name: str | None = None, before_exit: Callable[[int], None] | None = None) -> NoReturn:
    """The command, run in this process (``resident.run`` decides where). It exits without the
    interpreter's clean-up: every file is written and closed by then, and freeing a build's
    objects one by one would only add a tenth of a second to each run."""
    try:
        main(prog_name=prog_name)
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    with contextlib.suppress(OSError):  # a reader that went away takes what it had
        if isinstance(code, str):
            print(code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    exit_code = code if isinstance(code, int) else (0 if code is None else 1)
    if before_exit is not None:
        before_exit(exit_code)
    os._exit(exit_code)
