"""``reportgen build --shard K/N``: each machine builds a fixed share of the units; the shares'
outputs put together are the build of the whole tree, byte for byte (real LibreOffice)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reportgen.build import Options, build, in_shard

from .conftest import DATA, DATA_PROJECTS, DATA_UNITS, converted_together, run_cli
from .test_build import tree_digest

pytestmark = pytest.mark.soffice


def test_three_shards_put_together_are_a_build_of_the_whole_tree(tmp_path: Path, built_data: Path) -> None:
    together = tmp_path / "together"
    projects = units = 0
    for index in (1, 2, 3):
        out = tmp_path / f"shard-{index}"
        report = converted_together(build([DATA], out, Options(shard=(index, 3))), [DATA], out,
                                    Options(shard=(index, 3)))
        projects += report.projects
        units += len(report.bundles)
        shutil.copytree(out, together, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".reportgen"))
    assert (projects, units) == (len(DATA_PROJECTS), len(DATA_UNITS))  # each project and unit once
    assert tree_digest(together) == tree_digest(built_data)


def test_a_units_shard_is_fixed_by_its_name_alone() -> None:
    keys = [f"2023/单位{number}" for number in range(300)]
    shares = [[key for key in keys if in_shard(key, (index, 4))] for index in (1, 2, 3, 4)]
    assert sorted(key for share in shares for key in share) == sorted(keys)  # every unit, once
    assert all(50 < len(share) < 100 for share in shares)  # about a quarter each
    assert [key for key in keys if in_shard(key, (2, 4))] == shares[1]  # the same on every call


@pytest.mark.parametrize("value", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_a_shard_is_k_of_n(tmp_path: Path, value: str) -> None:
    result = run_cli("build", str(DATA), "-o", str(tmp_path / "out"), "--shard", value)
    assert result.exit_code == 2
    assert f"应写成 K/N，1 ≤ K ≤ N，如 2/5：{value}" in result.output
    assert not (tmp_path / "out").exists()
