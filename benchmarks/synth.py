"""Synthetic benchmark data: ``python -m benchmarks.synth N DIR``.

Writes N distinct, valid projects as a data tree ``DIR/<年度>/<实施单位>/<项目名称>.yaml``, each
unit folder with its own ``_unit.yaml``, spread over all five regions. Every project is a
variation of one of the real forms under ``data/`` (``national`` is derived from the 银川金凤
forms, which have its shape: 产出 50 / 效益 30 / 满意度 10 + 预算执行率 10):

- the project name is unique per unit and year;
- all amounts are scaled by one factor, the executed amount is redrawn at or below the smallest
  budget column, the 其中 rows still add up to the totals;
- the printed 执行率, the execution score, 总分 (and 晋中's 评价结果等次) are recomputed;
- numbers in indicator targets/actuals are scaled together (their ratio, hence their score, is
  unchanged) and digit-free notes are appended to plain-text ones; weights are never touched.

The output is deterministic for a given N. Warnings inherited from the seed forms (entered
scores that differ from the rules, missing 偏差原因) are kept: they are part of real data.
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import yaml

from reportgen.regions import Region, find_region
from reportgen.score import parse_quantity
from reportgen.values import format_decimal, is_not_applicable, parse_points, round_half_up

ROOT = Path(__file__).resolve().parent.parent
SEED_DATA = ROOT / "data"
REGIONS = ("jinzhong", "shenzhen-longhua", "beijing-fengtai", "yinchuan-jinfeng", "national")
NATIONAL_FROM = "yinchuan-jinfeng"
PROJECTS_PER_UNIT = 10
UNIT_JITTER = 2

TOTAL, FISCAL = "年度资金总额", "当年财政拨款"
OTHER_ROWS = ("上年结转资金", "上级财政资金", "其他资金")
BUDGET_COLUMNS = {"initial": "年初预算数", "annual": "全年预算数", "adjusted": "调整后预算数"}
EXECUTED = "全年执行数"
HUNDRED = Decimal(100)

PLACES = ("东片区", "西片区", "南片区", "北片区", "中心城区", "开发区", "新区", "老城区", "高新区", "园区")
TARGET_NOTES = ("（全年）", "（按合同约定）", "（按计划）")
ACTUAL_NOTES = ("（已核实）", "（经复核）", "（见佐证材料）")
_AMOUNT = re.compile(r"^\s*(\d[\d,]*(?:\.\d+)?)\s*(万元|元)?\s*$")
_INTEGER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True)
class Seed:
    """One real form: its region, its unit file's data and its project file's data."""

    region: str
    year: str
    unit: dict
    project: dict


# --- seeds ----------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_seeds(data: Path = SEED_DATA) -> dict[str, list[Seed]]:
    """The seed forms by region id; ``national`` reuses the 银川金凤 forms."""
    seeds: dict[str, list[Seed]] = {region: [] for region in REGIONS}
    for unit_file in sorted(data.rglob("_unit.yaml")):
        unit = _read_yaml(unit_file)
        region = find_region(str(unit["地区"]))
        assert region is not None, unit_file
        if region.id not in seeds:  # a seed of another region: the synthetic tree keeps to these five
            continue
        for path in sorted(unit_file.parent.glob("*.yaml")):
            if not path.name.startswith(("_", ".")):
                seeds[region.id].append(Seed(region.id, str(unit["年度"]), unit, _read_yaml(path)))
    seeds["national"] = [
        replace(seed, region="national", unit={**seed.unit, "地区": "national"})
        for seed in seeds[NATIONAL_FROM]
    ]
    missing = [region for region, found in seeds.items() if not found]
    if missing:
        raise SystemExit(f"no seed forms for {', '.join(missing)} under {data}")
    return seeds


# --- units ----------------------------------------------------------------------------------


def unit_sizes(n: int, rng: random.Random) -> list[int]:
    """About ten projects per unit (8–12), at least one unit per region when N allows."""
    if n <= 0:
        return []
    units = max(min(len(REGIONS), n), round(n / PROJECTS_PER_UNIT))
    sizes = [n // units + (index < n % units) for index in range(units)]
    low, high = max(1, min(sizes) - UNIT_JITTER), max(sizes) + UNIT_JITTER
    for _ in range(units):
        give, take = rng.randrange(units), rng.randrange(units)
        move = min(rng.randint(0, UNIT_JITTER), sizes[give] - low, high - sizes[take])
        if give != take and move > 0:
            sizes[give] -= move
            sizes[take] += move
    return sizes


def chinese_number(number: int) -> str:
    """1 → 一, 12 → 十二, 40 → 四十, 105 → 一百零五 (enough for unit names)."""
    hundreds, rest = divmod(number, 100)
    tens, ones = divmod(rest, 10)
    text = f"{_DIGITS[hundreds]}百" if hundreds else ""
    if tens:
        text += ("" if tens == 1 and not hundreds else _DIGITS[tens]) + "十"
    elif hundreds and ones:
        text += "零"
    return text + (_DIGITS[ones] if ones else "")


def unit_data(seed: Seed, ordinal: int) -> dict:
    """The seed's unit file with a distinct 实施单位 (and the fields that repeat it)."""
    unit = copy.deepcopy(seed.unit)
    name = f"{unit['实施单位']}第{chinese_number(ordinal)}分中心"
    for key in ("实施单位", "主管部门", "一级预算单位"):
        if key in unit:
            unit[key] = name
    return unit


# --- money ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    value: Decimal
    suffix: str


def read_amount(text: object) -> Amount:
    match = _AMOUNT.match(str(text))
    if match is None:
        raise ValueError(f"not an amount: {text!r}")
    return Amount(Decimal(match.group(1).replace(",", "")), match.group(2) or "")


def _places(funds: dict) -> int:
    """Decimals for the project's amounts: as many as its cells use, ≥ 2 in 万元."""
    cells = [str(v) for row in funds.values() if isinstance(row, dict) for v in row.values()]
    used = max((len(str(read_amount(c).value).partition(".")[2]) for c in cells), default=0)
    return max(used, 2) if funds.get("金额单位") == "万元" else used


def _quantize(value: Decimal, places: int) -> Decimal:
    return round_half_up(value, places)


def _write(value: Decimal, suffix: str, places: int) -> str:
    return f"{format_decimal(value, places)}{suffix}"


def _draw_totals(total: dict, places: int, rng: random.Random) -> dict[str, Decimal]:
    """New 年度资金总额 cells: budgets scaled by one factor, executed ≤ the smallest budget."""
    factor = Decimal(str(round(rng.uniform(0.3, 3.0), 3)))
    cells = {
        column: _quantize(read_amount(total[column]).value * factor, places)
        for column in BUDGET_COLUMNS.values() if column in total
    }
    budget = min(cells.values())
    ratio = Decimal(1) if rng.random() < 0.35 else Decimal(str(round(rng.uniform(0.82, 0.999), 4)))
    cells[EXECUTED] = _quantize(budget * ratio, places)
    cells["factor"] = factor
    return cells


def vary_funds(funds: dict, rng: random.Random) -> None:
    """Rescale the money block in place; the 其中 rows keep adding up to the totals."""
    places = _places(funds)
    total = funds[TOTAL]
    cells = _draw_totals(total, places, rng)
    factor = cells.pop("factor")
    for column, value in cells.items():
        total[column] = _write(value, read_amount(total[column]).suffix, places)
    for column, value in cells.items():
        others = [funds[row] for row in OTHER_ROWS if column in (funds.get(row) or {})]
        scaled = [_quantize(read_amount(row[column]).value * factor, places) for row in others]
        if sum(scaled, Decimal(0)) > value:
            scaled = [Decimal(0) for _ in scaled]
        for row, amount in zip(others, scaled, strict=True):
            row[column] = _write(amount, read_amount(row[column]).suffix, places)
        fiscal = funds.get(FISCAL)
        if isinstance(fiscal, dict) and (column in fiscal or others):
            suffix = read_amount(fiscal.get(column, total[column])).suffix
            fiscal[column] = _write(value - sum(scaled, Decimal(0)), suffix, places)


def _yuan(funds: dict, column: str) -> Decimal | None:
    if column not in funds[TOTAL]:
        return None
    amount = read_amount(funds[TOTAL][column])
    unit = amount.suffix or funds.get("金额单位") or "元"
    return amount.value * (Decimal(10000) if unit == "万元" else Decimal(1))


def execution_score(funds: dict, region: Region, weight: Decimal) -> tuple[Decimal, Decimal]:
    """(rate in percent, score) by the region's rule: weight × min(执行数 / base, 1)."""
    base = _yuan(funds, BUDGET_COLUMNS[region.execution.base])
    executed = _yuan(funds, EXECUTED)
    assert base and executed is not None, "seed forms have the base column and the executed amount"
    rate = executed / base * HUNDRED
    decimals = region.execution.rate_decimals
    used = rate if decimals is None else round_half_up(rate, decimals)
    return rate, round_half_up(weight * min(used / HUNDRED, Decimal(1)), region.score_decimals)


# --- indicators -----------------------------------------------------------------------------


def _scalable(text: object) -> bool:
    """A target/actual stating one whole number (not a percentage, not a date)."""
    if not isinstance(text, str) or "%" in text:
        return False
    numbers = _INTEGER.findall(text)
    return len(numbers) == 1 and numbers[0].isdigit() and parse_quantity(text) is not None


def _scale(text: str, factor: int) -> str:
    return _INTEGER.sub(lambda match: str(int(match.group()) * factor), text, count=1)


def _plain(text: object) -> bool:
    if not isinstance(text, str) or not text.strip():
        return False
    return not is_not_applicable(text) and not re.search(r"\d", text)


def vary_indicator(row: dict, rng: random.Random) -> None:
    """Scale the target and actual together (same ratio, same score) or annotate plain texts."""
    target, actual = row.get("年度指标值"), row.get("实际完成值")
    if _scalable(target) and _scalable(actual):
        factor = rng.choice((1, 2, 3, 5))
        row["年度指标值"], row["实际完成值"] = _scale(target, factor), _scale(actual, factor)
        return
    if _plain(target) and rng.random() < 0.5:
        row["年度指标值"] = target + rng.choice(TARGET_NOTES)
    if _plain(actual) and rng.random() < 0.5:
        row["实际完成值"] = actual + rng.choice(ACTUAL_NOTES)


# --- scores and totals ----------------------------------------------------------------------


def _points(value: object) -> Decimal:
    return Decimal(0) if value is None or is_not_applicable(str(value)) else parse_points(value)


def rescore_indicators(project: dict, region: Region) -> None:
    """执行率, the execution score and 总分 for a form scored by its indicator table."""
    funds = project["项目资金"]
    weight = _points(funds.get("分值", region.execution.weight))
    rate, score = execution_score(funds, region, weight)
    if "执行率" in funds:
        printed = format_decimal(rate, 2, trim_zeros=not str(funds["执行率"]).endswith("%"))
        funds["执行率"] = printed + "%" if str(funds["执行率"]).endswith("%") else printed
    if "得分" in funds:
        funds["得分"] = format_decimal(score, 2, trim_zeros=True)
    total = score + sum((_points(row.get("得分")) for row in project.get("绩效指标", [])), Decimal(0))
    if "总分" in project:
        project["总分"] = format_decimal(total, 2, trim_zeros=True)


def rescore_scorecard(project: dict, region: Region) -> None:
    """The 评分表's 预算执行率 row, 总分 and 评价结果等次 (晋中)."""
    rows = project["评分表"]
    for row in rows:
        if row.get("三级指标") == region.execution.scorecard_row:
            _, score = execution_score(project["项目资金"], region, _points(row["指标分值"]))
            row["评价得分"] = format_decimal(score, 2)
    total = sum((_points(row.get("评价得分")) for row in rows), Decimal(0))
    if "总分" in project:
        project["总分"] = format_decimal(total, 2)
    if "评价结果等次" in project:
        project["评价结果等次"] = region.grade_of(total)


# --- projects -------------------------------------------------------------------------------


def project_name(seed_name: str, index: int) -> str:
    """Unique within a unit: (片区, 期) differs for every index."""
    place, batch = PLACES[index % len(PLACES)], index // len(PLACES) + 1
    return f"{seed_name}（{place}{batch}期）"


def project_data(seed: Seed, index: int, serial: int, rng: random.Random) -> dict:
    region = find_region(seed.region)
    assert region is not None
    project = copy.deepcopy(seed.project)
    project["项目名称"] = project_name(str(project["项目名称"]), index)
    if "项目编号" in project:
        code = str(project["项目编号"])
        project["项目编号"] = f"{code[:-5]}{serial:05d}"
    vary_funds(project["项目资金"], rng)
    for row in project.get("绩效指标", []):
        vary_indicator(row, rng)
    if region.score_table == "scorecard":
        rescore_scorecard(project, region)
    else:
        rescore_indicators(project, region)
    return project


def _dump(path: Path, data: dict, note: str) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
    path.write_text(f"# {note}\n{text}", encoding="utf-8")


def _safe(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name)


def plan_units(n: int, seeds: dict[str, list[Seed]], rng: random.Random) -> Iterator[tuple[str, int, int]]:
    """(region, ordinal of the unit, projects in it) for every unit.

    Ordinals count per seed unit, not per region: ``national`` and 银川金凤 share their seed
    unit, and must not share a 实施单位.
    """
    counts: dict[str, int] = {}
    for position, size in enumerate(unit_sizes(n, rng)):
        region = REGIONS[position % len(REGIONS)]
        base = str(seeds[region][0].unit["实施单位"])
        counts[base] = counts.get(base, 0) + 1
        yield region, counts[base], size


def synthesize(n: int, out: Path, seed_data: Path = SEED_DATA) -> list[Path]:
    """Write N projects under ``out``; returns the project files written."""
    rng = random.Random(f"benchmarks.synth:{n}")
    seeds = load_seeds(seed_data)
    written: list[Path] = []
    for region, ordinal, size in plan_units(n, seeds, rng):
        first = seeds[region][0]
        unit = unit_data(first, ordinal)
        folder = out / first.year / _safe(unit["实施单位"])
        folder.mkdir(parents=True)
        _dump(folder / "_unit.yaml", unit, f"benchmarks.synth: 合成数据（{region}），单位共用信息")
        for index in range(size):
            seed = seeds[region][rng.randrange(len(seeds[region]))]
            project = project_data(seed, index, len(written) + 1, rng)
            path = folder / f"{_safe(project['项目名称'])}.yaml"
            _dump(path, project, f"benchmarks.synth: 合成数据（{region}），据 {seed.project['项目名称']}")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synth", description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of projects")
    parser.add_argument("dir", type=Path, help="output folder (must be empty or absent)")
    parser.add_argument("--seeds", type=Path, default=SEED_DATA, help="seed data tree (default: data/)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("N must be at least 1")
    if args.dir.exists() and any(args.dir.iterdir()):
        parser.error(f"{args.dir} is not empty")
    files = synthesize(args.n, args.dir, args.seeds)
    units = len({path.parent for path in files})
    print(f"wrote {len(files)} projects in {units} units under {args.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
