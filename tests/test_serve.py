"""reportgen serve without a browser: saving changes only what changed, and the server refuses
paths outside the data folder, requests from other origins and hosts, and escapes user text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.load import Source
from reportgen.regions import find_region
from reportgen.serve.form import layout
from reportgen.validate import Checked, Files

from .serve_helpers import Running, copy_data, serving

SEED = "2021/银川市数字化城市管理监督指挥中心/数字化城市管理信息采集服务.yaml"
SHENZHEN = "2022/深圳龙华区平安建设中心/系统操作员.yaml"
PAYLOAD = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">&amp;'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Running:
    root = tmp_path_factory.mktemp("serve")
    data = copy_data(root / "data")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("项目名称: 机密\n", encoding="utf-8")
    (data / "link.yaml").symlink_to(outside / "secret.yaml")
    (data / "linkdir").symlink_to(outside, target_is_directory=True)
    with serving(data, root / "build") as running:
        yield running


def _state(server: Running, relative: str) -> tuple[str, str, dict]:
    parsed, version, _ = server.workspace.open(relative)
    assert parsed.snapshot is not None
    return parsed.text, version, parsed.snapshot.state()


def test_the_form_is_the_regions_table() -> None:
    form = layout(find_region("hubei-provincial"))
    assert [(s.kind, getattr(s, "title", "")) for s in form.sections] == [
        ("group", "基本信息"), ("grid", "项目资金"), ("table", "绩效指标"), ("group", "总分与等次"),
        ("group", "签字"), ("group", "本地区表格的栏目"),
    ]
    declared = form.sections[-1]
    assert [(f.key, f.label, f.kind, f.options) for f in declared.fields][:1] == [
        ("fields.category", "项目类别", "choice", ("部门预算项目", "省直专项", "省对下转移支付项目"))
    ]
    table = form.tables["indicators"]
    assert [c.label for c in table.columns if not c.extra] == [
        "一级指标", "二级指标", "三级指标", "年初目标值", "实际完成值", "分值", "得分",
    ]
    assert table.choices["level1"] == ["产出指标", "效益指标"]


def test_saving_one_value_changes_that_value_only(server: Running) -> None:
    text, version, state = _state(server, SEED)
    state["values"]["funds.total.executed"] = "170.00"
    status, answer = server.post("/api/save", {"path": SEED, "version": version, "base": text, "state": state})
    assert status == 200 and answer["written"]
    written = (server.workspace.data / SEED).read_text(encoding="utf-8")
    assert written == text.replace('全年执行数(B): "173.47"', '全年执行数(B): "170.00"')
    assert written != text


def test_a_value_the_file_lacks_is_added_beside_its_siblings_in_the_files_spelling(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    (data / "2022" / "u").mkdir(parents=True)
    project = data / "2022" / "u" / "p.yaml"
    source = (
        "# a project written with English keys\r\n"
        "region: shenzhen-longhua\r\n"
        "year: 2022\r\n"
        "name: English keys   # kept\r\n"
        "funds:\r\n"
        "  total:\r\n"
        "    initial: 100\r\n"
        "    executed: 90\r\n"
        "indicators:\r\n"
        "  - level1: 产出指标\r\n"
        "    name: 甲\r\n"
        "    weight: 90\r\n"
    )
    project.write_bytes(b"\xef\xbb\xbf" + source.encode("utf-8"))
    with serving(data, tmp_path / "build") as server:
        text, version, state = _state(server, "2022/u/p.yaml")
        state["values"]["funds.total.annual"] = "100"
        state["values"]["code"] = "A-1"
        state["rows"]["indicators"][0]["values"]["score"] = "80"
        state["rows"]["indicators"].append({"orig": None, "values": {"name": "乙", "weight": "0"}})
        status, answer = server.post("/api/save", {"path": "2022/u/p.yaml", "version": version, "base": text,
                                                   "state": state})
    assert status == 200, answer
    assert project.read_bytes() == b"\xef\xbb\xbf" + (
        "# a project written with English keys\r\n"
        "region: shenzhen-longhua\r\n"
        "year: 2022\r\n"
        "code: A-1\r\n"
        "name: English keys   # kept\r\n"
        "funds:\r\n"
        "  total:\r\n"
        "    initial: 100\r\n"
        "    annual: 100\r\n"
        "    executed: 90\r\n"
        "indicators:\r\n"
        "  - level1: 产出指标\r\n"
        "    name: 甲\r\n"
        "    weight: 90\r\n"
        "    score: 80\r\n"
        "  - name: 乙\r\n"
        "    weight: 0\r\n"
    ).encode()


def test_a_file_changed_on_disk_is_not_overwritten_and_the_draft_carries_over(server: Running) -> None:
    text, version, state = _state(server, SHENZHEN)
    path = server.workspace.data / SHENZHEN
    path.write_text(text.replace('项目编号: "440309210901500004279"', '项目编号: "X-2"'), encoding="utf-8")
    state["values"]["funds.total.executed"] = "1808698.00"
    status, answer = server.post("/api/save", {"path": SHENZHEN, "version": version, "base": text, "state": state})
    assert status == 409 and answer["conflict"]
    assert answer["error"].startswith("此文件在本页打开之后已在磁盘上被修改")
    assert 'X-2' in path.read_text(encoding="utf-8") and "1808698.00" not in path.read_text(encoding="utf-8")
    status, merged = server.post("/api/rebase", {"path": SHENZHEN, "base": text, "state": state})
    assert status == 200
    assert merged["state"]["values"]["code"] == "X-2"  # theirs, untouched here
    assert merged["state"]["values"]["funds.total.executed"] == "1808698.00"  # mine


@pytest.mark.parametrize(
    "path",
    [
        "/project/../../outside/secret.yaml",
        "/project/%2e%2e/%2e%2e/outside/secret.yaml",
        "/project/%2E%2E%2F%2E%2E%2Foutside%2Fsecret.yaml",
        "/project//etc/passwd",
        "/project/%2Fetc%2Fpasswd",
        "/project/link.yaml",
        "/project/linkdir/secret.yaml",
        "/project/2022/深圳龙华区平安建设中心/_unit.yaml",
        "/download/../data/2022/深圳龙华区平安建设中心/系统操作员.yaml",
        "/download/%2e%2e/outside/secret.yaml",
        "/download/.reportgen/state.json",
    ],
)
def test_paths_outside_the_data_folder_are_refused(server: Running, path: str) -> None:
    status, page = server.request("GET", path)
    assert status in (403, 404)
    assert "机密" not in page


@pytest.mark.parametrize("relative", ["../outside/secret.yaml", "/etc/passwd", "link.yaml", "linkdir/secret.yaml",
                                      "%2e%2e/outside/secret.yaml", "C:/Windows/win.ini"])
def test_the_api_refuses_paths_outside_the_data_folder(server: Running, relative: str) -> None:
    secret = server.workspace.data.parent / "outside" / "secret.yaml"
    before = secret.read_bytes()
    for endpoint in ("/api/check", "/api/save"):
        status, answer = server.post(endpoint, {"path": relative, "version": "x", "base": "项目名称: 甲\n",
                                                "state": {"values": {"name": "乙"}}})
        assert status in (403, 404), answer
    status, answer = server.post("/api/new", {"folder": "../outside", "name": "x.yaml", "region": "national"})
    assert (status, answer) == (403, {"error": "路径无效"})
    status, answer = server.post("/api/new", {"folder": "", "name": "../x.yaml", "region": "national"})
    assert (status, answer) == (403, {"error": "文件名不能为空，不能含 / \\，不能以 _ 或 . 开头"})
    assert secret.read_bytes() == before
    assert not (server.workspace.data.parent / "x.yaml").exists()


def test_requests_from_other_origins_and_hosts_are_refused(server: Running) -> None:
    text, _, state = _state(server, SHENZHEN)
    body = {"path": SHENZHEN, "base": text, "state": state}
    token = server.token()
    status, answer = server.request("POST", "/api/check", body, {"Origin": "http://evil.example", "X-CSRF-Token": token})
    assert (status, json.loads(answer)) == (403, {"error": "拒绝：请求来自其他网站"})
    status, answer = server.request("POST", "/api/check", body, {"Origin": server.url.rstrip("/")})
    assert (status, json.loads(answer)) == (403, {"error": "拒绝：缺少或错误的 CSRF 令牌，请刷新页面"})
    status, answer = server.request("GET", "/", headers={"Host": "evil.example"})
    assert (status, answer) == (400, "拒绝：Host 不是本服务的地址")
    status, answer = server.request("POST", "/api/check", body, {"Origin": server.url.rstrip("/"), "X-CSRF-Token": token})
    assert status == 200 and json.loads(answer)["ok"]


def test_user_text_is_escaped_in_every_page(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "2022" / "单位").mkdir(parents=True)
    form = layout(find_region("shenzhen-longhua"))
    texts = [f for f in form.fields.values() if f.kind == "text" and "." not in f.key and f.key not in ("region", "year")]
    lines = ["地区: shenzhen-longhua", "年度: 2022"]
    lines += [f"{f.label}: '{PAYLOAD}'" for f in texts]
    lines += ["绩效指标:", f"  - 三级指标: '{PAYLOAD}'", f"    年度指标值: '{PAYLOAD}'", "    分值: 90"]
    project = data / "2022" / "单位" / f"{'<b>'}.yaml"
    project.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with serving(data, tmp_path / "build") as server:
        for path in ("/", "/project/2022/%E5%8D%95%E4%BD%8D/%3Cb%3E.yaml"):
            status, page = server.request("GET", path)
            assert status == 200
            assert "<script>window" not in page and "<img src=x" not in page and "<b>" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in server.request("GET", "/")[1]
        text, _, state = _state(server, "2022/单位/<b>.yaml")
        status, answer = server.post("/api/check", {"path": "2022/单位/<b>.yaml", "base": text, "state": state})
    assert status == 200
    assert answer["problems"]  # the messages quote the user's text: the page writes them as text
    assert state["values"]["name"] == PAYLOAD


def test_serve_answers_on_the_loopback_only_unless_asked() -> None:
    from reportgen.serve import allowed_hosts

    assert allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"}


def test_a_second_build_of_the_same_folder_is_refused_clearly(server: Running) -> None:
    workspace = server.workspace
    assert workspace._build_lock.acquire(blocking=False)  # a build running
    try:
        unit = "2022/深圳市龙华区平安建设中心"
        status, answer = server.post("/api/build", {"unit": unit})
    finally:
        workspace._build_lock.release()
    assert (status, answer) == (409, {"error": "已有一个生成任务正在进行，请等它结束后再生成"})
    assert os.path.isdir(workspace.data)


def test_a_region_added_as_data_gets_its_form(tmp_path: Path) -> None:
    from reportgen.regions import copy_region

    data = tmp_path / "data"
    folder = copy_region(find_region("national"), "mycounty", data / "regions")
    (folder / "fields.yaml").write_text(
        "fields:\n  - {id: kind, label: 项目类型, type: choice, options: [常年性, 延续性, 一次性]}\n", encoding="utf-8"
    )
    with serving(data, tmp_path / "build") as server:
        status, answer = server.post("/api/new", {"folder": "2024/县公路段", "name": "道路养护", "region": "mycounty"})
        assert (status, answer) == (200, {"path": "2024/县公路段/道路养护.yaml",
                                          "url": "/project/2024/%E5%8E%BF%E5%85%AC%E8%B7%AF%E6%AE%B5/%E9%81%93%E8%B7%AF%E5%85%BB%E6%8A%A4.yaml"})
        status, page = server.request("GET", answer["url"])
        assert status == 200
        assert ('<select class="v" data-key="fields.kind" aria-label="项目类型" title="本地区表格的栏目">'
                '<option value=""></option><option value="常年性">常年性</option><option value="延续性">延续性</option>'
                '<option value="一次性">一次性</option></select>') in page
        text, version, state = _state(server, "2024/县公路段/道路养护.yaml")
        assert state["values"]["fields.kind"] == "常年性"  # the starter's first option
        state["values"]["fields.kind"] = "延续性"
        status, _ = server.post("/api/save", {"path": "2024/县公路段/道路养护.yaml", "version": version, "base": text,
                                              "state": state})
    assert status == 200
    written = (data / "2024" / "县公路段" / "道路养护.yaml").read_text(encoding="utf-8")
    assert written == text.replace("项目类型: 常年性", "项目类型: 延续性")


def test_a_file_with_a_yaml_error_shows_where_it_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "2024").mkdir(parents=True)
    (data / "2024" / "p.yaml").write_text("地区: national\n年度: 2024\n项目名称 甲\n金额: 1\n", encoding="utf-8")
    with serving(data, tmp_path / "build") as server:
        status, page = server.request("GET", "/project/2024/p.yaml")
    assert status == 200
    assert "<h1>无法按表格显示此文件</h1>" in page
    assert "<li class=\"error\">2024/p.yaml:3:1：缺少冒号「:」：每行应写成「键: 值」（冒号后有一个空格）</li>" in page


@pytest.mark.soffice
def test_the_preview_is_the_drafts_real_pdf(server: Running) -> None:
    text, _, state = _state(server, SEED)
    state["values"]["name"] = "预览中的项目名称"
    status, answer = server.post("/api/preview", {"path": SEED, "base": text, "state": state})
    assert status == 200, answer
    pages = [answer["pdf"].replace("preview.pdf", f"page-{n}.png") for n in (1, 2)]  # the form takes two pages
    assert answer["pdf"].endswith("/preview.pdf") and answer["pages"] == pages
    status, _ = server.request("GET", answer["pages"][0])
    assert status == 200
    pdf = server.workspace.preview_file(*answer["pdf"].split("/")[2:])
    from pypdf import PdfReader

    assert "预览中的项目名称" in PdfReader(pdf).pages[0].extract_text()
    # nothing was written into the data folder
    assert "预览中的项目名称" not in (server.workspace.data / SEED).read_text(encoding="utf-8")


def test_a_filled_word_form_is_imported_into_the_data_folder(tmp_path: Path) -> None:
    from reportgen import build
    from reportgen.validate import check_paths

    [checked] = check_paths([copy_data(tmp_path / "seed") / SHENZHEN])
    [job] = build.plan([checked], tmp_path / "out", build.Options())
    build.render_form(job, tmp_path / "表格.docx")
    data = tmp_path / "data"
    data.mkdir()
    with serving(data, tmp_path / "build") as server:
        headers = {"X-CSRF-Token": server.token(), "Origin": server.url.rstrip("/"),
                   "Content-Type": "application/octet-stream", "X-File-Name": "%E8%A1%A8%E6%A0%BC.docx"}
        status, text = server.request("POST", "/api/import", (tmp_path / "表格.docx").read_bytes(), headers)
        answer = json.loads(text)
        assert status == 200, answer
        assert answer["forms"] == 1
        assert [f["path"] for f in answer["files"]] == ["2022/深圳市龙华区平安建设中心/数字化城管信息系统运行项目（系统操作员）.yaml"]
        assert answer["units"] == ["2022/深圳市龙华区平安建设中心/_unit.yaml"]
        status, again = server.request("POST", "/api/import", (tmp_path / "表格.docx").read_bytes(), headers)
        assert json.loads(again)["files"] == []  # an existing file is kept
        status, refused = server.request("POST", "/api/import", b"x", {**headers, "X-File-Name": "..%2Fa.yaml"})
        assert (status, json.loads(refused)) == (403, {"error": "只能导入 Word 文件（.docx 或 .doc）"})
    [imported] = check_paths([data])
    assert imported.ok and imported.project is not None and imported.project.name == "数字化城管信息系统运行项目（系统操作员）"


def test_the_overview_checks_again_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every overview and every build from the page checks the data folder: a project unchanged
    since the page last looked is taken from the check cache, and what the page finds is what
    checking every project anew finds."""
    from reportgen import validate
    from reportgen.serve.workspace import Workspace

    data = copy_data(tmp_path / "data")
    workspace = Workspace(data, tmp_path / "build")
    checked: list[Path] = []
    check_source = validate.check_source

    def counted(source: Source, files: Files | None = None) -> Checked:
        checked.append(source.path)
        return check_source(source, files)

    monkeypatch.setattr(validate, "check_source", counted)
    first = workspace.overview()
    projects = sorted(path.resolve() for path in data.rglob("*.yaml") if path.name != "_unit.yaml")
    assert sorted(checked) == projects and first["projects"] == len(projects) > 5

    checked.clear()
    assert workspace.overview() == first
    assert checked == []

    changed = data / SEED
    text = changed.read_text(encoding="utf-8")
    changed.write_text(text.replace('全年执行数(B): "173.47"', '全年执行数(B): "17.47"'), encoding="utf-8")
    looked = workspace.overview()
    assert checked == [changed.resolve()]
    assert looked["warnings"] != first["warnings"] or looked["errors"] != first["errors"]
    found = {c.source.path: (c.problems, c.result) for c in workspace.check_all()}
    anew = {c.source.path: (c.problems, c.result) for c in validate.check_paths([data])}
    assert found == anew


def test_the_benchmarks_page_route_rebuilds_a_changed_unit_and_restores_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``benchmarks.page`` (e'): one line per project, the unit rebuilt with the change, the
    project file as it was."""
    from benchmarks import page
    from benchmarks.synth import synthesize
    from reportgen.build import Options, build

    data, out = tmp_path / "data", tmp_path / "build"
    synthesize(6, data)
    assert build([data], out, Options(keep=0)).ok
    project = sorted(p for p in data.rglob("*.yaml") if p.name != "_unit.yaml")[0]
    before = project.read_bytes()
    assert page.main([str(data), str(out), str(project)]) == 0
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["project"] == str(project) and line["seconds"] > 0
    assert "重新生成 0" not in line["summary"] and "失败 0" in line["summary"]
    assert project.read_bytes() == before


def test_a_units_projects_are_found_again_by_reading_only_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """生成本单位 finds the unit's projects: the first time by checking every project, then
    only the project files that changed (a project moved to another unit moves), and always what
    planning the whole checked data folder gives."""
    from reportgen import build, validate
    from reportgen.load import discover
    from reportgen.serve.workspace import Workspace

    data = copy_data(tmp_path / "data")
    out = tmp_path / "build"
    workspace = Workspace(data, out)
    checked: list[Path] = []
    check_source = validate.check_source

    def counted(source: Source, files: Files | None = None) -> Checked:
        checked.append(source.path)
        return check_source(source, files)

    def planned(folder: Path) -> list[Path]:  # the page's way before: plan every project checked
        results = [c for c in map(check_source, discover([data])) if c.project is not None and c.region is not None]
        return [job.checked.source.path for job in build.plan(results, workspace.out, build.Options())
                if job.folder.resolve() == folder]

    monkeypatch.setattr(validate, "check_source", counted)
    unit = workspace.out / "2022" / "深圳市龙华区平安建设中心"
    moved_to = workspace.out / "2022" / "深圳市龙华区另一中心"
    projects = sorted(path for path in data.rglob("*.yaml") if path.name != "_unit.yaml")
    members = [source.path for source in workspace.unit_members(unit)]
    assert sorted(checked) == projects
    assert [path.name for path in members] == ["系统操作员.yaml", "网格信息采集工作.yaml"]
    assert members == planned(unit)

    checked.clear()
    assert [source.path for source in workspace.unit_members(unit)] == members and checked == []

    moved = data / "2022" / "深圳龙华区平安建设中心" / "系统操作员.yaml"
    text = moved.read_text(encoding="utf-8")
    moved.write_text(text.replace('项目名称: "', '实施单位: "深圳市龙华区另一中心"\n项目名称: "', 1), encoding="utf-8")
    assert [source.path.name for source in workspace.unit_members(unit)] == ["网格信息采集工作.yaml"]
    assert checked == [moved]
    checked.clear()
    assert [source.path for source in workspace.unit_members(moved_to)] == [moved] == planned(moved_to)
    assert checked == []
    added = moved.with_name("新项目.yaml")
    added.write_text(text, encoding="utf-8")
    assert [source.path for source in workspace.unit_members(unit)] == [added, members[1]] == planned(unit)
    assert checked == [added]


@pytest.mark.parametrize("value", ["10 分钟", "-1"])
def test_serve_refuses_a_wrong_keep_setting_at_its_start(tmp_path: Path, value: str) -> None:
    """Its builds read REPORTGEN_KEEP_LIBREOFFICE without the command line's check: a typo
    stops the server before it listens, instead of passing for the default later."""
    (tmp_path / "data").mkdir()
    done = subprocess.run([sys.executable, "-m", "reportgen", "serve", "data", "--no-browser", "--port", "0"],
                          cwd=tmp_path, env={**os.environ, "REPORTGEN_KEEP_LIBREOFFICE": value},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("错误：环境变量 REPORTGEN_KEEP_LIBREOFFICE 应为 0 到 86400 之间的秒数"
                           f"（0 表示生成结束后不保持 LibreOffice 运行），现在是「{value}」\n")
