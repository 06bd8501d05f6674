"""One test per validation rule, each asserting the exact output line, line number included."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.load import LocatedMap
from reportgen.regions import all_regions
from reportgen.schema import Project
from reportgen.validate import check_paths

from .conftest import BASE_PROJECT, DATA, run_cli


def validate(*args: str) -> tuple[int, list[str]]:
    result = run_cli("validate", *args)
    return result.exit_code, result.stdout.splitlines()


def test_base_project_is_valid(project_file) -> None:
    assert validate(project_file()) == (0, ["检查了 1 个项目文件：0 个错误，0 个警告"])


def test_weights_must_add_up_to_the_total(project_file) -> None:
    name = project_file(BASE_PROJECT.replace("    分值: 10\n", "    分值: 8\n"))
    code, lines = validate(name)
    assert code == 1
    assert lines[0] == "p.yaml:16:1: error: 绩效指标: 各项分值之和为 98，应为 100（含预算执行率分值）"
    assert "p.yaml:30:5: error: 绩效指标[3].一级指标: 一级指标「满意度指标」各行分值之和为 8，应为 10" in lines


def test_category_must_match_its_share(project_file) -> None:
    text = BASE_PROJECT.replace("    分值: 50\n", "    分值: 45\n").replace("    分值: 30\n", "    分值: 35\n")
    code, lines = validate(project_file(text))
    assert code == 1
    assert lines[:2] == [
        "p.yaml:17:5: error: 绩效指标[1].一级指标: 一级指标「产出指标」各行分值之和为 45，应为 50",
        "p.yaml:23:5: error: 绩效指标[2].一级指标: 一级指标「效益指标」各行分值之和为 35，应为 30",
    ]


def test_project_shares_override_the_region(project_file) -> None:
    text = BASE_PROJECT.replace("    分值: 50\n", "    分值: 45\n").replace("    分值: 30\n", "    分值: 35\n")
    text += "一级指标分值:\n  产出指标: 45\n  效益指标: 35\n"
    assert validate(project_file(text))[0] == 0


def test_score_above_weight(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT.replace("    得分: 30\n", "    得分: 31\n")))
    assert code == 1
    assert lines[0] == "p.yaml:29:5: error: 绩效指标[2].得分: 得分 31 超过分值 30"


def test_parts_must_add_up_to_the_total_row(project_file) -> None:
    text = BASE_PROJECT.replace('    全年执行数: "990.00"\n  分值', '    全年执行数: "900.00"\n  分值')
    code, lines = validate(project_file(text))
    assert code == 1
    assert lines[0] == (
        "p.yaml:10:5: error: 项目资金.年度资金总额.全年执行数: "
        "「其中」各行的全年执行数之和 900 元与年度资金总额 990 元不一致"
    )


def test_executed_above_budget_is_a_warning(project_file) -> None:
    text = BASE_PROJECT.replace('"990.00"', '"1200.00"')
    code, lines = validate(project_file(text))
    assert code == 0
    assert lines[0] == "p.yaml:10:5: warning: 项目资金.年度资金总额.全年执行数: 全年执行数 1200 元超过全年预算数 1000 元"


def test_printed_rate_off_by_more_than_a_hundredth_is_a_warning(project_file) -> None:
    off = project_file(BASE_PROJECT.replace("  分值: 10\n绩效", "  分值: 10\n  执行率: 98.98%\n绩效"), "off.yaml")
    close = project_file(BASE_PROJECT.replace("  分值: 10\n绩效", "  分值: 10\n  执行率: 98.99%\n绩效"), "close.yaml")
    assert validate(off) == (0, [
        "off.yaml:16:3: warning: 项目资金.执行率: 填写的执行率 98.98% 与计算值 99.00% 不一致",
        "检查了 1 个项目文件：0 个错误，1 个警告",
    ])
    assert validate(close)[1] == ["检查了 1 个项目文件：0 个错误，0 个警告"]


def test_score_below_weight_needs_a_reason(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT.replace("    得分: 30\n", "    得分: 28\n")))
    assert code == 0
    assert lines[0] == "p.yaml:23:5: warning: 绩效指标[2].偏差原因分析及改进措施: 得分 28 低于分值 30，但没有填写偏差原因分析及改进措施"
    text = BASE_PROJECT.replace("    得分: 30\n", "    得分: 28\n    偏差原因分析及改进措施: 两件积案未结\n")
    assert validate(project_file(text))[1] == ["检查了 1 个项目文件：0 个错误，0 个警告"]


def test_entered_score_differing_from_rule_is_kept_and_warned(project_file) -> None:
    text = BASE_PROJECT.replace("    分值: 50\n", "    分值: 50\n    得分: 45\n    偏差原因分析及改进措施: 人员流动\n")
    code, lines = validate(project_file(text))
    assert code == 0
    assert lines[0] == (
        "p.yaml:23:5: warning: 绩效指标[1].得分: 填写的得分 45 与按规则计算的 50 不一致"
        "（正向指标：B / A × 分值，最高为分值），已保留填写值"
    )
    score = run_cli("score", "p.yaml").stdout
    assert "总分 94.9，等次 优" in score  # 9.9 + 45 + 30 + 10: the entered 45 counts


def test_entered_total_and_grade_are_audited(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT + "总分: 100\n评价结果等次: 良\n"))
    assert code == 0
    assert lines[:2] == [
        "p.yaml:36:1: warning: 总分: 填写的总分 100 与各行得分之和 99.9 不一致；表上将印 99.9",
        "p.yaml:37:1: warning: 评价结果等次: 填写的等次「良」与总分 99.9 对应的「优」不一致；表上将印「优」",
    ]


def test_qualitative_score_outside_its_tier(project_file) -> None:
    text = BASE_PROJECT.replace("    实际完成值: 重点解决\n", "    实际完成值: 达成预期指标\n").replace(
        "    得分: 30\n", "    得分: 20\n    偏差原因分析及改进措施: 部分事件办理超时\n"
    )
    code, lines = validate(project_file(text))
    assert code == 0
    assert lines[0] == (
        "p.yaml:29:5: warning: 绩效指标[2].得分: 得分 20 不在定性指标「达成年度指标」：分值的 80%–100%（24–30 分）的区间内"
    )


def test_unscorable_indicator_needs_an_entered_score(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT.replace("    得分: 30\n", "")))
    assert code == 1
    assert lines[0] == (
        "p.yaml:23:5: error: 绩效指标[2].得分: 无法按规则计算得分（指标值与实际值不是可比较的数字），请填写得分"
    )


def test_unknown_key_with_suggestion(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT.replace("    年初预算数: \"1000.00\"\n    全年", "    年初预算: \"1000.00\"\n    全年", 1)))
    assert code == 1
    assert lines[0] == "p.yaml:8:5: error: 项目资金.年度资金总额.年初预算: 未知的键「年初预算」，是否想写「年初预算数」？"


def test_duplicate_key_is_an_error(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT.replace("    分值: 50\n", "    分值: 50\n    分值: 40\n")))
    assert code == 1
    assert lines[0] == "p.yaml:23:5: error: 绩效指标[1].分值: 键重复（第 22 行已有同名键）；请删除或合并其中一个"


def test_same_field_in_two_spellings(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT + "name: 另一个名称\n"))
    assert code == 1
    assert lines[0] == "p.yaml:36:1: error: name: 与第 3 行的「项目名称」重复，二者都表示「项目名称」"


def test_two_projects_with_the_same_name_in_one_unit_and_year(project_file) -> None:
    project_file(name="a.yaml")
    project_file(name="b.yaml")
    code, lines = validate(".")
    assert code == 1
    assert lines[0] == "b.yaml:3:1: error: 项目名称: 与 a.yaml 的项目同名（同一单位、同一年度的项目名称不能重复）"


def test_unknown_region(project_file) -> None:
    code, lines = validate(project_file(BASE_PROJECT.replace("地区: 深圳龙华", "地区: 深圳龙化")))
    assert code == 1
    assert lines[0] == (
        "p.yaml:1:1: error: 地区: 未知的地区「深圳龙化」，是否想写「深圳龙华」？"
        f"（可用：{'、'.join(all_regions())}）"
    )


def test_strict_turns_warnings_into_failure(project_file) -> None:
    name = project_file(BASE_PROJECT.replace('"990.00"', '"1200.00"'))
    assert validate(name)[0] == 0
    assert validate("--strict", name)[0] == 1


def test_unit_file_is_inherited_and_may_be_overridden(project_file, tmp_path: Path) -> None:
    jinzhong = DATA / "2020" / "晋中市数字化城市管理中心"
    unit = (jinzhong / "_unit.yaml").read_text(encoding="utf-8").replace('实施单位: "晋中市数字化城市管理中心"', "实施单位: 单位甲")
    project_file(unit, "u/_unit.yaml")
    body = (jinzhong / "数字城管运行费.yaml").read_text(encoding="utf-8")
    project_file(body + "签字:\n  联系电话: '456'\n", "u/p.yaml")
    [checked] = check_paths([tmp_path / "u"])
    assert checked.ok, [str(p) for p in checked.problems]
    assert (checked.project.year, checked.project.implementing_unit) == (2020, "单位甲")
    assert (checked.project.signoff.handler, checked.project.signoff.phone) == ("刘卫智", "456")


def test_unit_file_may_only_set_unit_fields(project_file) -> None:
    project_file("地区: 深圳龙华\n项目名称: 不应在这里\n", "u/_unit.yaml")
    project_file(BASE_PROJECT, "u/p.yaml")
    code, lines = validate("u")
    assert code == 1
    assert lines[0].startswith("u/_unit.yaml:2:1: error: 项目名称: 单位文件中不能设置此项（可设置：地区、年度、")


ENGLISH = """\
region: shenzhen-longhua
year: 2022
name: 测试项目
implementing_unit: 测试单位
funds:
  unit: 元
  total: {initial: "1000.00", annual: "1000.00", executed: "990.00"}
  fiscal: {initial: "1000.00", annual: "1000.00", executed: "990.00"}
  weight: 10
indicators:
  - {level1: 产出指标, level2: 数量指标, name: 操作员数量, target: "17", actual: "27", weight: 50}
  - {level1: 效益指标, level2: 社会效益指标, name: 事件办理, target: 重点解决, actual: 重点解决, weight: 30, score: 30}
  - {level1: 满意度指标, level2: 服务对象满意度指标, name: 市民满意度, target: "≥95%", actual: "100%", weight: 10}
"""


def test_english_and_chinese_keys_load_to_equal_models(project_file, tmp_path: Path) -> None:
    project_file(BASE_PROJECT, "zh/p.yaml")
    project_file(ENGLISH, "en/p.yaml")
    [chinese] = check_paths([tmp_path / "zh"])
    [english] = check_paths([tmp_path / "en"])
    assert chinese.ok and english.ok
    assert chinese.project == english.project
    assert isinstance(chinese.project, Project)


@pytest.mark.parametrize(
    ("written", "yuan"),
    [("180.97212万元", "1809721.2"), ("1,663,900.00元", "1663900.00"), ("１２３．４", "1234"), ("500", "5000000")],
)
def test_amounts_convert_exactly(project_file, tmp_path: Path, written: str, yuan: str) -> None:
    text = BASE_PROJECT.replace("  金额单位: 元\n", "  金额单位: 万元\n").replace(
        '    年初预算数: "1000.00"\n    全年预算数', f'    年初预算数: "{written}"\n    全年预算数', 1
    )
    [checked] = check_paths([Path(project_file(text))])
    amount = checked.project.funds.total.initial
    expected = {"１２３．４": "1234000"}.get(written, yuan)  # bare numbers are in the file's 金额单位
    assert amount.in_yuan("万元") == __import__("decimal").Decimal(expected)


def test_located_map_remembers_key_positions(project_file) -> None:
    from reportgen.load import load_file

    document = load_file(Path(project_file()))
    assert isinstance(document.data, LocatedMap)
    assert document.data.key_marks["绩效指标"] == (16, 1)
    assert document.data["绩效指标"].item_marks[1] == (23, 5)
