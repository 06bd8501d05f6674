"""Regions as data: a region is a folder a clerk makes with Word and a text editor, no Python.

The folders live outside the repository here (a tmp folder), as a district keeps its own.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
from docx import Document
from docx.text.run import Run

from reportgen.build import build
from reportgen.errors import RegionError
from reportgen.regions import all_regions, find_region, forget_region_folders

from .conftest import BASE_PROJECT, DATA, ROOT, distinct_cells, run_cli

NATIONAL = ROOT / "templates" / "docx" / "national"

FIELDS_YAML = """\
# 测试县的表格比全国表多印：评价结论（必填）、项目负责人（可写在单位文件中）、项目类型（勾选）、报表编号
fields:
  - {id: conclusion, label: 评价结论, aliases: [自评结论], required: true}
  - {id: leader, label: 项目负责人, unit: true}
  - {id: kind, label: 项目类型, type: choice, options: [常年性, 延续性, 一次性]}
  - {id: form_code, label: 报表编号, value: 绩效表3}
"""

COUNTY_PROJECT = """\
地区: 测试县
年度: 2024
项目名称: 乡村道路养护
主管部门: 县交通运输局
实施单位: 县公路段
评价结论: 项目按期完成，道路完好率达标。
项目类型: 延续性
项目资金:
  年度资金总额:
    年初预算数: "100"
    全年预算数: "100"
    全年执行数: "95"
预期目标: 养护县乡道路 120 公里
实际完成情况: 养护 120 公里
绩效指标:
  - 一级指标: 产出指标
    二级指标: 数量指标
    三级指标: 养护里程
    年度指标值: "≥120公里"
    实际完成值: "120公里"
    分值: 50
  - 一级指标: 效益指标
    二级指标: 社会效益指标
    三级指标: 道路完好率
    年度指标值: "≥90%"
    实际完成值: "92%"
    分值: 30
  - 一级指标: 满意度指标
    二级指标: 服务对象满意度指标
    三级指标: 群众满意度
    年度指标值: "≥90%"
    实际完成值: "95%"
    分值: 10
"""


def _set_runs(paragraph, *texts: str) -> None:
    """Replace a paragraph's text by runs as Word stores them after editing: one tag over several."""
    first, *rest = paragraph.runs
    for run in rest:
        run._r.getparent().remove(run._r)
    first.text = texts[0]
    anchor = first._r
    for text in texts[1:]:
        element = copy.deepcopy(first._r)
        anchor.addnext(element)
        anchor = element
        Run(element, paragraph).text = text


def _set_text(cell, text: str) -> None:
    paragraph = cell.paragraphs[0]
    if text:
        _set_runs(paragraph, text)
    else:
        for run in paragraph.runs:
            run._r.getparent().remove(run._r)


def _word_edit(form: Path) -> None:
    """What a clerk does in Word: the name tag split over three runs, a row copied and its last
    cells merged by hand for a new field, a checkbox row, a signature line."""
    document = Document(str(form))
    table = document.tables[0]
    _set_runs(table.rows[0].cells[-1].paragraphs[0], "{", "{ project.na", "me }}")
    template_row = table.rows[1]._tr  # 主管部门 | … | 实施单位 | …: four cells
    for label, tag in (("评价结论", "{{ fields.conclusion }}"), ("项目类型", "{{ fields.kind }}")):
        template_row.addnext(copy.deepcopy(template_row))
        cells = distinct_cells(table.rows[2].cells)
        for cell, text in zip(cells, (label, tag, "", ""), strict=True):
            _set_text(cell, text)
        cells[1].merge(cells[3])  # merged by hand: the value spans the rest of the row
    document.add_paragraph("项目负责人：{{ fields.leader }}　　报表编号：{{ fields.form_code }}")
    document.save(str(form))




@pytest.fixture
def county(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A region made as a user would: copied from national, edited in "Word" and a text editor."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("region", "new", "county", "--from", "national", "--into", "regions")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "regions" / "county"
    rules = (folder / "rules.yaml").read_text(encoding="utf-8")
    (folder / "rules.yaml").write_text(rules.replace("name: 请填写地区全称", "name: 测试县"), encoding="utf-8")
    (folder / "fields.yaml").write_text(FIELDS_YAML, encoding="utf-8")
    _word_edit(folder / "form.docx")
    return folder


def test_region_new_copies_a_region_that_is_not_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("region", "new", "county", "--from", "national", "--into", "regions")
    assert result.exit_code == 0
    copied = tmp_path / "regions" / "county"
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in NATIONAL.iterdir())
    rules = (copied / "rules.yaml").read_text(encoding="utf-8")
    assert "default:" not in rules and "name: 请填写地区全称" in rules and "aliases: []" in rules
    again = run_cli("region", "new", "county", "--from", "national", "--into", "regions")
    assert (again.exit_code, again.output) == (1, f"错误：{Path('regions') / 'county'} 已存在\n")
    bad = run_cli("region", "new", "County 1", "--from", "national", "--into", "regions")
    assert bad.output == "错误：地区 id「County 1」只能由小写英文字母、数字和连字符组成，如 hubei-county\n"


@pytest.mark.soffice
def test_a_region_made_in_word_and_a_text_editor_builds(county: Path, tmp_path: Path) -> None:
    unit = tmp_path / "data" / "2024" / "县公路段"
    unit.mkdir(parents=True)
    (unit / "_unit.yaml").write_text("项目负责人: 王五\n", encoding="utf-8")
    (unit / "道路养护.yaml").write_text(COUNTY_PROJECT, encoding="utf-8")
    result = run_cli("--regions", str(county.parent), "build", "data", "-o", "out")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "2024" / "县公路段"
    document = Document(str(folder / "乡村道路养护.docx"))
    rows = [[cell.text for cell in distinct_cells(row.cells)] for row in document.tables[0].rows]
    assert rows[0] == ["项目名称", "乡村道路养护"]  # the tag split over three runs
    assert rows[2] == ["项目类型", "☐常年性　☑延续性　☐一次性"]
    assert rows[3] == ["评价结论", "项目按期完成，道路完好率达标。"]  # the hand-merged cell
    assert document.paragraphs[-1].text == "项目负责人：王五　　报表编号：绩效表3"
    text = subprocess.run(["pdftotext", "-layout", str(folder / "乡村道路养护.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout.replace(" ", "")
    for value in ("乡村道路养护", "☑延续性", "项目按期完成，道路完好率达标。", "项目负责人：王五", "绩效表3", "99.5"):
        assert value in text, value


def test_declared_fields_are_checked_like_common_ones(county: Path, tmp_path: Path) -> None:
    project = COUNTY_PROJECT.replace("项目类型: 延续性", "项目类型: 新增").replace("评价结论: 项目按期完成，道路完好率达标。\n", "")
    (tmp_path / "p.yaml").write_text(project + "报表编号: 表9\n自评结论X: 好\n", encoding="utf-8")
    result = run_cli("--regions", str(county.parent), "validate", "p.yaml")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "p.yaml:6:7: error: 项目类型: 「新增」不是可选值之一：常年性、延续性、一次性",
        "p.yaml:33:1: error: 报表编号: 「报表编号」是表上的固定文字（绩效表3），不用填写",
        "p.yaml:34:1: error: 自评结论X: 未知的键「自评结论X」，是否想写「评价结论」？",
        "检查了 1 个项目文件：3 个错误，0 个警告",
    ]
    (tmp_path / "p.yaml").write_text(project.replace("项目类型: 新增", "项目类型: 一次性"), encoding="utf-8")
    result = run_cli("--regions", str(county.parent), "validate", "p.yaml")
    assert result.output.splitlines()[0] == "p.yaml:1:1: error: 缺少必填项「评价结论」（测试县的表格要求）"


def test_fields_new_and_templates_check_know_the_declared_fields(county: Path, tmp_path: Path) -> None:
    regions = str(county.parent)
    reference = run_cli("--regions", regions, "fields", "--region", "county").output.splitlines()
    assert "| `fields.conclusion` | 评价结论 | 自评结论 | 文字 | 是 | 本地区表格的栏目 |" in reference
    assert "| `fields.kind` | 项目类型 |  | 单选：常年性、延续性、一次性 |  | 本地区表格的栏目 |" in reference
    assert not any(line.startswith("| `overview`") for line in reference)  # national prints no 项目概况
    assert run_cli("--regions", regions, "new", "--region", "county", "p.yaml").exit_code == 0
    starter = (tmp_path / "p.yaml").read_text(encoding="utf-8")
    assert "评价结论: 请填写评价结论  # 文字（必填）" in starter
    assert "项目类型: 常年性  # 单选：常年性、延续性、一次性" in starter
    assert "报表编号" not in starter
    check = run_cli("--regions", regions, "templates", "check", "--region", "county")
    assert (check.exit_code, check.output) == (0, "检查了 1 个地区模板：0 个问题\n")


def test_templates_check_names_broken_and_unknown_tags_and_unprinted_fields_with_their_place(county: Path) -> None:
    form = county / "form.docx"
    document = Document(str(form))
    _set_runs(document.tables[0].rows[1].cells[-1].paragraphs[0], "{{ project.implementing_unt }}")
    broken = document.add_paragraph("注：{{ project.name }")
    document.save(str(form))
    (county / "fields.yaml").write_text(FIELDS_YAML + "indicator_columns:\n  - {id: unit_of_measure, label: 度量单位}\n",
                                        encoding="utf-8")
    check = run_cli("--regions", str(county.parent), "templates", "check", "--region", "county")
    assert (check.exit_code, check.output.splitlines()) == (1, [
        f"{form}: 段落「注：{{{{ project.name }}」: 标签没有闭合（「注：{{{{ project.name }}」）",
        "检查了 1 个地区模板：1 个问题",
    ])
    broken._p.getparent().remove(broken._p)  # fixed: now the template parses, and the rest shows
    document.save(str(form))
    check = run_cli("--regions", str(county.parent), "templates", "check", "--region", "county")
    assert check.output.splitlines() == [
        f"{form}: 表1 第2行 第4列: 未知的标签「project.implementing_unt」（测试县的上下文中没有）",
        f"{form}: 声明的字段「度量单位」（indicators[].unit_of_measure）在模板中没有印出；请在模板中加入它，或删除声明",
        "检查了 1 个地区模板：2 个问题",
    ]


def test_every_mistake_in_a_regions_yaml_is_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "regions" / "bad"
    shutil.copytree(NATIONAL, folder)
    rules = (folder / "rules.yaml").read_text(encoding="utf-8")
    rules = rules.replace("default: true\n", "").replace("aliases: [全国, 全国通用, 财预〔2020〕10号, 默认]", "aliases: []")
    rules = rules.replace("execution: {weight: 10, base: annual}", "execution: {wieght: 10, base: yearly}")
    rules = rules.replace("share: 30,", "share: 三十,")
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    (folder / "fields.yaml").write_text(
        "fields:\n  - {id: Conclusion, label: 评价结论}\n  - {id: kind, label: 类型, type: choise}\nlables: {}\n",
        encoding="utf-8",
    )
    result = run_cli("--regions", "regions", "regions")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "错误：地区文件有误：",
        "regions/bad/fields.yaml:2:5: error: fields[1]: id「Conclusion」只能由小写英文字母、数字和下划线组成，并以字母开头",
        "regions/bad/fields.yaml:3:27: error: fields[2].type: 应为以下之一：text, date, money, rate, points, choice",
        "regions/bad/fields.yaml:4:1: error: lables: 未知的键「lables」，是否想写「labels」？",
        "regions/bad/rules.yaml:9:13: error: execution.wieght: 未知的键「wieght」，是否想写「weight」？",
        "regions/bad/rules.yaml:9:25: error: execution.base: 应为以下之一：initial, annual, adjusted",
        "regions/bad/rules.yaml:12:18: error: categories[2].share: 应为数字",
    ]


def test_a_users_region_overrides_the_builtin_one_and_regions_says_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine" / "national"
    shutil.copytree(NATIONAL, mine)
    rules = mine / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("execution: {weight: 10,", "execution: {weight: 20,"),
                     encoding="utf-8")
    listing = run_cli("--regions", "mine", "regions").output.splitlines()
    assert [line.split("\t")[0] for line in listing] == sorted(all_regions())
    national = next(line for line in listing if line.startswith("national\t"))
    assert national.endswith("\tmine")
    assert all(line.endswith("\t内置") for line in listing if line != national)
    assert find_region("national").execution.weight == 20


def test_regions_folder_of_a_data_folder_is_used_and_not_read_as_projects(county: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.move(str(county.parent), str(data / "regions"))
    (data / "2024").mkdir()
    (data / "2024" / "p.yaml").write_text(COUNTY_PROJECT, encoding="utf-8")
    result = run_cli("validate", "data")
    assert (result.exit_code, result.output) == (0, "检查了 1 个项目文件：0 个错误，0 个警告\n")


@pytest.mark.parametrize("region", ["shenzhen-longhua", "national", "yinchuan-jinfeng", "beijing-fengtai"])
def test_a_key_of_another_regions_form_is_an_error_naming_both(region: str, project_file) -> None:
    text = BASE_PROJECT.replace("地区: 深圳龙华", f"地区: {region}") + "项目概况: 项目于年初启动\n"
    name = project_file(text)
    result = run_cli("validate", name)
    own, line = find_region(region).name, len(text.splitlines())
    assert result.exit_code == 1
    assert (
        f"p.yaml:{line}:1: error: 项目概况: 「项目概况」不在{own}的表格上，填写了也不会印出；印有此项的地区：山西省晋中市（jinzhong）"
    ) in result.output.splitlines()
    assert not build([Path(name)], Path("out")).rebuilt  # nothing built for that project
    assert not Path("out").exists() or not list(Path("out").rglob("*.docx"))


def test_jinzhongs_form_refuses_a_key_only_shenzhen_longhua_prints(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(DATA / "2020", tmp_path / "2020")
    project = next((tmp_path / "2020").rglob("数字城管运行费.yaml"))
    text = project.read_text(encoding="utf-8") + "项目编号: '1401'\n"
    project.write_text(text, encoding="utf-8")
    result = run_cli("validate", "2020")
    assert result.output.splitlines()[0] == (
        f"2020/晋中市数字化城市管理中心/数字城管运行费.yaml:{len(text.splitlines())}:1: error: 项目编号: "
        "「项目编号」不在山西省晋中市的表格上，填写了也不会印出；印有此项的地区：深圳市龙华区（shenzhen-longhua）"
    )
    assert not build([tmp_path / "2020"], tmp_path / "out").rebuilt


def test_a_unit_files_value_the_form_does_not_print_is_located_in_the_unit_file(project_file) -> None:
    project_file("评价人员:\n  - 姓名: 张三\n", "u/_unit.yaml")
    project_file(BASE_PROJECT, "u/p.yaml")
    result = run_cli("validate", "u")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "u/_unit.yaml:1:1: error: 评价人员: 「评价人员」不在深圳市龙华区的表格上，填写了也不会印出；印有此项的地区：山西省晋中市（jinzhong）"
    )


@pytest.mark.parametrize("region", sorted(p.name for p in (ROOT / "templates" / "docx").iterdir()))
def test_form_txt_is_the_dump_of_form_docx(region: str) -> None:
    folder = ROOT / "templates" / "docx" / region
    result = run_cli("templates", "dump", region)
    assert result.output == (folder / "form.txt").read_text(encoding="utf-8")


@pytest.mark.soffice
def test_editing_any_file_of_a_region_rebuilds_exactly_its_forms(county: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "a" / "p.yaml").write_text(COUNTY_PROJECT, encoding="utf-8")
    shutil.copytree(DATA / "2022", data / "2022")
    out = tmp_path / "out"
    from reportgen.regions import add_region_folders

    add_region_folders([county.parent])
    assert build([data], out).rebuilt == 3
    readme = county / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\n改过。\n", encoding="utf-8")
    again = build([data], out)
    assert (again.rebuilt, again.skipped) == (1, 2)


def test_a_missing_region_folder_and_an_unknown_template_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("--regions", "nowhere", "regions")
    assert (result.exit_code, result.output) == (1, "错误：找不到地区文件夹：nowhere\n")
    forget_region_folders()  # the next command runs as a new process would
    result = run_cli("templates", "dump", "nosuch")
    assert result.exit_code == 1
    assert result.output == f"错误：未知的地区「nosuch」（可用：{'、'.join(all_regions())}）\n"


def test_a_template_edited_between_two_checks_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking holds the regions and their templates as they were when it began (regions.held);
    the next check, in the same process (the web page), sees a template edited meanwhile."""
    from reportgen import view
    from reportgen.regions import all_regions, held

    regions = tmp_path / "regions"
    shutil.copytree(all_regions()["shenzhen-longhua"].folder, regions / "shenzhen-longhua")
    monkeypatch.setenv("REPORTGEN_REGIONS", str(regions))
    with held() as known:
        region = known["shenzhen-longhua"]
        assert view.printed_tags(region) == view.printed_tags(region)
        before = view.printed_tags(region)
    assert "project.name" in before
    document = Document(str(region.template))
    for paragraph in [p for table in document.tables for row in table.rows for cell in row.cells
                      for p in cell.paragraphs] + list(document.paragraphs):
        for run in paragraph.runs:
            run.text = run.text.replace("{{ project.name }}", "")
    document.save(str(region.template))
    with held() as known:
        assert "project.name" not in view.printed_tags(known["shenzhen-longhua"])


def test_a_region_read_once_comes_from_the_cache_folder_until_its_files_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen import regions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "county"
    shutil.copytree(NATIONAL, folder)
    read: list[Path] = []
    read_region = regions._read_region
    monkeypatch.setattr(regions, "_read_region",
                        lambda where, origin, yaml: (read.append(where), read_region(where, origin, yaml))[1])
    first = regions.load_region(folder, "mine")
    assert regions.load_region(folder, "mine") == first and read == [folder]  # the second from the cache
    rules = folder / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("name: 全国通用", "name: 某县通用"), encoding="utf-8")
    changed = regions.load_region(folder, "mine")
    assert changed.name.startswith("某县通用") and len(read) == 2  # an edited file is read again
    assert regions.load_region(folder, "elsewhere").origin == "elsewhere" and len(read) == 3
    for kept in (tmp_path / "cache/reportgen/regions").iterdir():
        kept.write_bytes(b"not what was kept")
    assert regions.load_region(folder, "mine") == changed and len(read) == 4  # a broken file: the YAML again
    blocked = tmp_path / "not a folder"
    blocked.write_text("", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # a cache folder that cannot be made: read every time
    assert regions.load_region(folder, "mine") == changed and regions.load_region(folder, "mine") == changed
    assert len(read) == 6
    (folder / "form.docx").unlink()
    with pytest.raises(RegionError):  # a region without its template is never taken from the cache
        regions.load_region(folder, "mine")


@pytest.mark.parametrize("key", ["id", "folder", "read_digests"])
def test_what_the_folder_gives_a_region_is_refused_in_its_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 key: str) -> None:
    """A region's id, folder and the digests of its YAML as read come from the folder: written in
    rules.yaml, they are an error at their line, and a build with such a region writes nothing."""
    from reportgen import regions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "regions" / "county"
    shutil.copytree(NATIONAL, folder)
    rules = folder / "rules.yaml"
    lines = rules.read_text(encoding="utf-8").splitlines()
    rules.write_text("\n".join([*lines, f"{key}: {{}}"]) + "\n", encoding="utf-8")
    with pytest.raises(RegionError) as raised:
        regions.load_region(folder, "mine")
    message = f"「{key}」由所在文件夹决定，不能写在文件中"
    assert [(p.line, p.col, p.severity, p.key, p.message) for p in raised.value.problems] == [
        (len(lines) + 1, 1, "error", key, message)]
    monkeypatch.setenv("REPORTGEN_REGIONS", str(folder.parent))
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    result = run_cli("build", str(data), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and f"{len(lines) + 1}:1: error: {key}: {message}" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pdf"))
