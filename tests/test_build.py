"""The whole pipeline with real LibreOffice: outputs, bundles, reproducibility, incremental builds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from docx import Document
from pypdf import PdfReader

from reportgen.build import Job, Options, build

from .conftest import BASE_PROJECT, DATA, DATA_PROJECTS, converted_together, run_cli

pytestmark = pytest.mark.soffice

JINFENG = "2023/金凤区智慧城市运营中心"
JINFENG_PROJECTS = ["互联网专线费", "办公经费", "政府批准聘用人员支出", "智慧金凤社会治理综合平台运行费", "社区网格员工作终端使用费"]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".reportgen" not in p.parts
    }


@pytest.fixture
def built(built_data: Path) -> Path:
    return built_data


def test_every_project_has_docx_and_pdf(built: Path) -> None:
    pdfs = sorted(p.stem for p in built.rglob("*.pdf") if p.stem != "全部项目")
    assert len(pdfs) == len(DATA_PROJECTS)
    for pdf in built.rglob("*.pdf"):
        assert pdf.with_suffix(".docx").is_file()
        assert len(PdfReader(pdf).pages) >= 1


def test_merged_pdf_has_one_bookmark_per_project_in_order(built: Path) -> None:
    reader = PdfReader(built / JINFENG / "全部项目.pdf")
    titles = [item.title for item in reader.outline]
    assert titles == ["汇总表", *JINFENG_PROJECTS]
    pages = [reader.get_destination_page_number(item) for item in reader.outline]
    assert pages == sorted(pages) and pages[0] == 0
    assert len(reader.pages) == sum(len(PdfReader(built / JINFENG / f"{n}.pdf").pages) for n in JINFENG_PROJECTS) + 1


def test_merged_docx_holds_summary_then_every_form(built: Path) -> None:
    text = "\n".join(
        cell.text for table in Document(built / JINFENG / "全部项目.docx").tables for row in table.rows for cell in row.cells
    )
    assert text.index("互联网专线费") < text.index("政府批准聘用人员支出")
    assert text.count("项目名称") >= 6  # the summary's header and each form's


def test_summary_csv(built: Path) -> None:
    raw = (built / JINFENG / "汇总表.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == "项目名称,预算数（元）,执行数（元）,执行率,总分,等次,警告数"
    assert "政府批准聘用人员支出,\"2,076,892.00\",\"1,809,721.20\",87.14%,93,优,3" in lines


def test_manifest_checksums_match_the_files(built: Path) -> None:
    folder = built / JINFENG
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["regions"].keys() == {"yinchuan-jinfeng"}
    assert {o["path"] for o in manifest["outputs"]} == {
        *(f"{n}.{s}" for n in JINFENG_PROJECTS for s in ("docx", "pdf")), "全部项目.docx", "全部项目.pdf", "汇总表.csv",
    }
    for output in manifest["outputs"]:
        assert hashlib.sha256((folder / output["path"]).read_bytes()).hexdigest() == output["sha256"]
    assert any(i["path"].endswith("_unit.yaml") for i in manifest["inputs"])


def test_zip_holds_the_bundle(built: Path) -> None:
    with zipfile.ZipFile(built / f"{JINFENG}.zip") as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert "金凤区智慧城市运营中心/manifest.json" in names
        assert {info.date_time for info in archive.infolist()} == {(2023, 12, 31, 12, 0, 0)}


def test_two_builds_are_byte_identical(built: Path, tmp_path: Path) -> None:
    report = build([DATA], tmp_path)
    assert report.ok
    assert tree_digest(tmp_path) == tree_digest(built)


def test_source_date_epoch_sets_pdf_dates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    data = DATA / "2020"
    assert build([data], tmp_path / "a").ok and build([data], tmp_path / "b").ok
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    pdf = next((tmp_path / "a").rglob("数字城管运行费.pdf"))
    assert PdfReader(pdf).metadata["/CreationDate"] == "D:20231114221320Z'"  # LibreOffice's UTC form


def _looks(pdf: Path) -> tuple[bytes, bytes]:
    """A PDF's text (pdftotext) and its pages drawn at 100 dpi (pdftoppm): what a reader sees."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True).stdout
    pixels = subprocess.run(["pdftoppm", "-r", "100", "-gray", str(pdf)], capture_output=True, check=True).stdout
    return text, pixels


def test_noop_rebuild_and_changed_project_rebuilds_its_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forms of a unit are converted together: one changed form converts its chunk again,
    and the other forms' PDFs are cut again from it, the same to read and to look at (their
    fonts now hold the changed form's characters too, so their bytes may differ); their DOCX
    are the last build's, copied, unless someone changed them."""
    from reportgen import build as build_module

    rendered: list[str] = []
    render_form = build_module.render_form
    monkeypatch.setattr(build_module, "render_form", lambda job, target: (rendered.append(job.stem),
                                                                           render_form(job, target)))
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out = tmp_path / "out"
    first = build([data], out)
    assert first.rebuilt == 2
    converted_together(first, [data], out)
    before = tree_digest(out)
    unit = out / "2022/深圳市龙华区平安建设中心"
    same = unit / "数字化城管信息系统运行项目（系统操作员）.pdf"
    looks = _looks(same)
    again = build([data], out)
    assert (again.rebuilt, again.skipped) == (0, 2)
    assert tree_digest(out) == before
    changed = next(data.rglob("网格信息采集工作.yaml"))
    changed.write_text(changed.read_text(encoding="utf-8").replace("工作人员满意度", "工作人员满意程度"), encoding="utf-8")
    rendered.clear()
    third = build([data], out)
    assert (third.rebuilt, third.skipped) == (2, 0)
    assert rendered == ["网格信息采集工作"]  # the other form's DOCX is the one it had
    converted_together(third, [data], out)
    after = tree_digest(out)
    assert _looks(same) == looks
    assert after[f"{unit.relative_to(out)}/网格信息采集工作.pdf"] != before[f"{unit.relative_to(out)}/网格信息采集工作.pdf"]
    assert after[f"{unit.relative_to(out)}/全部项目.pdf"] != before[f"{unit.relative_to(out)}/全部项目.pdf"]
    fresh = tmp_path / "fresh"
    converted_together(build([data], fresh), [data], fresh)
    assert tree_digest(fresh) == after  # an incremental build gives what a cold one does
    forced = build([data], out, Options(force=True))
    assert forced.rebuilt == 2
    converted_together(forced, [data], out)
    assert tree_digest(out) == after
    # A DOCX changed by hand is not taken for the form's: rendered again.
    with zipfile.ZipFile(same.with_suffix(".docx"), "a") as edited:
        edited.writestr("customXml/note.xml", "<note/>")
    changed.write_text(changed.read_text(encoding="utf-8").replace("工作人员满意程度", "工作人员满意度"), encoding="utf-8")
    rendered.clear()
    assert build([data], out).rebuilt == 2
    assert sorted(rendered) == ["数字化城管信息系统运行项目（系统操作员）", "网格信息采集工作"]
    assert tree_digest(out) == before


def _submitted(monkeypatch: pytest.MonkeyPatch) -> list[list[Path]]:
    """Every list of documents handed to LibreOffice from now on, in order."""
    from reportgen import convert

    batches: list[list[Path]] = []
    submit = convert.Pool.submit
    monkeypatch.setattr(convert.Pool, "submit", lambda pool, batch, retry=True: (batches.append(list(batch)),
                                                                                submit(pool, batch, retry))[1])
    return batches


def _change(project: Path) -> None:
    project.write_text(project.read_text(encoding="utf-8").replace("工作人员满意度", "工作人员满意程度"), encoding="utf-8")


def _built_then_one_changed(tmp_path: Path) -> tuple[Path, Path]:
    """data/2022 copied and built; then one of its two projects changed: (data, out)."""
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out = tmp_path / "out"
    converted_together(build([data], out), [data], out)
    _change(next(data.rglob("网格信息采集工作.yaml")))
    return data, out


def test_a_changed_projects_chunk_is_converted_while_the_tree_is_checked(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One project file changed: its chunk, planned from its folder, goes to LibreOffice before
    the other projects are checked; the chunk the whole tree gives is written with the same
    bytes, so that conversion is the one used, and the outputs are a cold build's."""
    data, out = _built_then_one_changed(tmp_path)
    batches = _submitted(monkeypatch)
    report = converted_together(build([data], out), [data], out)
    assert (report.rebuilt, report.skipped) == (2, 0)
    assert len(batches) == 1 and len(batches[0]) == 1  # the early one, and no other
    assert batches[0][0].parent.parent.name == "early"
    fresh = tmp_path / "fresh"
    converted_together(build([data], fresh), [data], fresh)
    assert tree_digest(out) == tree_digest(fresh)


def test_no_chunk_is_converted_early_when_its_folder_must_be_checked_anew(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """After an update of reportgen nothing checked before counts: the whole tree is checked
    anew, by a helper process for half of a large tree, which a conversion running in a thread
    of the build would forbid (a process with threads is not forked). The folder of the changed
    project, checked first, shows it: no chunk goes to LibreOffice before the tree is checked."""
    import reportgen
    from reportgen import build as build_module

    data, out = _built_then_one_changed(tmp_path)
    for module in (reportgen, build_module):
        monkeypatch.setattr(module, "code_digest", lambda: "the code of a later update")
    checked = _counting_checks(monkeypatch)
    batches = _submitted(monkeypatch)
    report = converted_together(build([data], out), [data], out)
    assert (report.rebuilt, report.skipped) == (2, 0)
    assert len(checked) == 2  # each project once: the folder's, checked first, are taken from there
    assert batches and not any(doc.parent.parent.name == "early" for batch in batches for doc in batch)


def test_a_unit_spread_over_two_folders_is_converted_as_the_whole_tree_plans_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The early guess sees one folder: for a unit whose projects lie in two, the chunk it writes
    lacks the other folder's project (its 汇总表 lists one row, not two). The build converts the
    chunk it plans from the whole tree instead; the early PDF is not used."""
    data = tmp_path / "data"
    unit = next((DATA / "2022").iterdir())
    for folder, project in (("甲", "系统操作员.yaml"), ("乙", "网格信息采集工作.yaml")):
        (data / folder).mkdir(parents=True)
        shutil.copy(unit / "_unit.yaml", data / folder / "_unit.yaml")
        shutil.copy(unit / project, data / folder / project)
    out = tmp_path / "out"
    first = converted_together(build([data], out), [data], out)
    assert len(first.bundles) == 1
    _change(data / "乙" / "网格信息采集工作.yaml")
    batches = _submitted(monkeypatch)
    report = converted_together(build([data], out), [data], out)
    assert (report.rebuilt, report.skipped) == (2, 0)
    assert [len(batch) for batch in batches] == [1, 1]  # the early guess, then the chunk as planned
    assert batches[0][0].parent.parent.name == "early" and batches[1][0].parent.parent.name != "early"
    fresh = tmp_path / "fresh"
    converted_together(build([data], fresh), [data], fresh)
    assert tree_digest(out) == tree_digest(fresh)


def _fake_soffice(folder: Path, body: str) -> Path:
    fake = folder / "soffice"
    fake.write_text(f"#!/bin/bash\n{body}\n", encoding="utf-8")
    fake.chmod(0o755)
    return fake


def _one_project(tmp_path: Path) -> Path:
    project = tmp_path / "data" / "p.yaml"
    project.parent.mkdir()
    project.write_text(BASE_PROJECT, encoding="utf-8")
    return project


def _processes_named(marker: str) -> list[str]:
    listing = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if marker in line and "ps -eo" not in line]


def test_hung_soffice_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    marker = f"reportgen-hang-{os.getpid()}"
    fake = _fake_soffice(tmp_path, f"exec -a {marker} sleep 600")
    project = _one_project(tmp_path)
    started = time.monotonic()
    report = build([project.parent], tmp_path / "out", Options(soffice=str(fake), timeout=2))
    elapsed = time.monotonic() - started
    assert not report.ok
    assert report.failures == [
        f"{project}: LibreOffice 转换超时（2 秒内没有完成）：00002-测试项目.docx",
        f"{tmp_path}/out/2022/测试单位: 本单位有项目未能生成，报送包未更新",
    ]
    assert elapsed < 15  # two attempts of 2 seconds each, and the rest of the build
    assert _processes_named(marker) == []
    assert list((tmp_path / "out").rglob("*.pdf")) == []
    assert len(list((tmp_path / "out").rglob("*.docx"))) == 1  # the DOCX is still written


def test_missing_soffice_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("data").mkdir()
    Path("data/p.yaml").write_text(BASE_PROJECT, encoding="utf-8")
    result = run_cli("build", "data", "-o", "out", "--soffice", "no-such-soffice")
    assert result.exit_code == 1
    assert (
        "失败：data/p.yaml: 找不到 LibreOffice（no-such-soffice），无法生成 PDF；Word 文件已生成。"
        "请安装：apt-get install libreoffice-writer-nogui"
    ) in result.output
    assert "提示：" not in result.output  # nothing was converted one by one either
    assert [p.name for p in Path("out").rglob("*.docx")] == ["测试项目.docx"]


def test_pdfa_build_marks_each_form_as_pdfa_2b(tmp_path: Path) -> None:
    assert build([DATA / "2020"], tmp_path, Options(pdfa=True)).ok
    data = next(tmp_path.rglob("数字城管运行费.pdf")).read_bytes()
    assert b"<pdfaid:part>2</pdfaid:part>" in data
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in data


def test_soffice_killed_mid_batch_is_retried_once_then_reported(tmp_path: Path) -> None:
    marker = f"reportgen-crash-{os.getpid()}"
    fake = _fake_soffice(tmp_path, f'echo "{marker}" >> "{tmp_path}/calls"; kill -9 $$')
    project = _one_project(tmp_path)
    report = build([project.parent], tmp_path / "out", Options(soffice=str(fake), timeout=30, jobs=1))
    assert report.failures[0] == f"{project}: LibreOffice 未能转换 00002-测试项目.docx：退出码 -9"
    # the unit's document once, then its form (and summary) alone, then one retry of those
    assert (tmp_path / "calls").read_text(encoding="utf-8").count(marker) == 3
    assert _processes_named(marker) == []
    assert [p.name for p in (tmp_path / "out").rglob("*.docx")] == ["测试项目.docx"]
    assert list((tmp_path / "out").rglob("*.part")) == []


@pytest.mark.parametrize(
    ("pdf", "failure"),
    [
        # cut short: no end-of-file marker, so LibreOffice did not finish it; retried, then reported
        ("%PDF-1.6\\n1 0 obj", "LibreOffice 未能转换 00002-测试项目.docx"),
        # finished but unreadable: found when its dates are stamped
        ("%PDF-1.6\\nnot a pdf body\\n%%EOF\\n", "00002-测试项目.pdf：PDF 文件已损坏，无法读取"),
    ],
)
def test_a_broken_pdf_is_reported_and_not_published(tmp_path: Path, pdf: str, failure: str) -> None:
    fake = _fake_soffice(tmp_path, FAKE_ARGUMENTS + f"""
for doc in "${{docs[@]}}"; do printf '%b' '{pdf}' > "$out/$(basename "$doc" .docx).pdf"; done""")
    project = _one_project(tmp_path)
    report = build([project.parent], tmp_path / "out", Options(soffice=str(fake), timeout=30, jobs=1))
    assert report.failures[0].startswith(f"{project}: {failure}")
    assert report.failures[1:] == [f"{tmp_path}/out/2022/测试单位: 本单位有项目未能生成，报送包未更新"]
    assert [p.name for p in (tmp_path / "out").rglob("*.docx")] == ["测试项目.docx"]
    assert list((tmp_path / "out").rglob("*.pdf")) == []


def test_long_batches_are_split_below_libreoffices_limit() -> None:
    from reportgen.convert import MAX_DOCS_PER_CALL, _distinct_names

    batch = [Path(f"/staging/{i:05d}/项目{i % 300}.docx") for i in range(600)]
    parts = _distinct_names(batch)
    assert all(len(part) <= MAX_DOCS_PER_CALL <= 200 for part in parts)
    assert sorted(doc for part in parts for doc in part) == sorted(batch)
    assert all(len({doc.stem for doc in part}) == len(part) for part in parts)  # one --outdir each


# A fake soffice's reading of its command line: the --outdir and the documents, in order.
FAKE_ARGUMENTS = """
out=""; docs=()
while [ $# -gt 0 ]; do
  case "$1" in --outdir) out="$2"; shift 2;; --convert-to) shift 2;; -*) shift;; *) docs+=("$1"); shift;; esac
done"""


def _blank_pdf(path: Path) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def test_each_pdf_is_handed_back_while_libreoffice_still_converts(tmp_path: Path) -> None:
    """A unit can be bundled while LibreOffice works on the next: results come one by one."""
    from reportgen.convert import Pool

    blank, finished = _blank_pdf(tmp_path / "blank.pdf"), tmp_path / "finished"
    fake = _fake_soffice(tmp_path, FAKE_ARGUMENTS + f"""
for doc in "${{docs[@]}}"; do cp "{blank}" "$out/$(basename "$doc" .docx).pdf"; sleep 0.3; done
sleep 2; touch "{finished}" """)
    docs = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        docs.append(tmp_path / name / f"{name}.docx")
        docs[-1].write_bytes(b"not read by the fake")
    arrived: list[tuple[str, bool]] = []
    with Pool(str(fake), timeout=30, on_result=lambda doc, pdf: arrived.append((doc.name, finished.exists()))) as pool:
        pool.submit(docs)
    # a.pdf is complete once b.pdf exists, b once c does, c once it ends with its %%EOF marker:
    # all three before LibreOffice exits.
    assert arrived == [("a.docx", False), ("b.docx", False), ("c.docx", False)]
    assert all(doc.with_suffix(".pdf").is_file() for doc in docs)


def test_work_is_balanced_by_weight_and_keeps_order() -> None:
    from reportgen.convert import balance

    assert balance([5, 1, 4, 2, 3], 2) == [[0, 1, 3], [2, 4]]  # weights 8 and 7
    assert balance([1, 1], 4) == [[0], [1]]
    assert balance([], 2) == []


def _jobs(tmp_path: Path, sizes: list[int], template: Path | None = None) -> list:
    """Stand-ins for planned projects: a project file of each size, a region template."""
    from types import SimpleNamespace

    template = template or DATA.parent / "templates/docx/national/form.docx"
    tmp_path.mkdir(parents=True, exist_ok=True)
    made = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"{index:03d}.yaml"
        path.write_bytes(b"x" * size)
        checked = SimpleNamespace(source=SimpleNamespace(path=path), region=SimpleNamespace(template=template))
        made.append(Job(checked, tmp_path / "out/2023/单位", f"p{index}", "", None, own=f"own{index}"))  # type: ignore[arg-type]
    return made


def test_a_units_forms_are_converted_in_chunks_of_a_fixed_size(tmp_path: Path) -> None:
    """Chunks depend on the unit alone (never on the number of cores): a form's PDF bytes depend
    on its chunk, and must be the same on every machine. A unit is cut into as few chunks as
    CHUNK_BYTES of project files allow, of near-equal size; the summary opens the first."""
    from reportgen.build import CHUNK_BYTES, SUMMARY_BYTES, Bundle, plan_chunks

    count = CHUNK_BYTES // 2000 + 5  # two chunks' worth
    jobs = _jobs(tmp_path, [2000] * count)
    item = Bundle(tmp_path / "out/2023/单位", jobs, "unit-fingerprint")
    chunks = plan_chunks(jobs, [item], Options())
    assert [chunk.with_summary for chunk in chunks] == [True, False]
    assert [job for chunk in chunks for job in chunk.jobs] == jobs
    sizes = [len(chunk.jobs) * 2000 + SUMMARY_BYTES * chunk.with_summary for chunk in chunks]
    assert max(sizes) <= CHUNK_BYTES and max(sizes) - min(sizes) <= 2000
    assert all(job.chunk is chunk for chunk in chunks for job in chunk.jobs)
    assert len({job.fingerprint for job in jobs}) == len(jobs)  # each its own, and its chunk's
    again = _jobs(tmp_path, [2000] * count)
    assert [c.fingerprint for c in plan_chunks(again, [Bundle(item.folder, again, "unit-fingerprint")], Options())] == [
        c.fingerprint for c in chunks]
    small = _jobs(tmp_path / "small", [2000] * 3)
    assert [len(c.jobs) for c in plan_chunks(small, [Bundle(item.folder, small, "u")], Options())] == [3]
    assert plan_chunks(_jobs(tmp_path, [2000] * 3), [], Options(pdfa=True)) == []  # PDF/A: one by one


def test_a_unit_of_several_chunks_has_one_merged_pdf_with_every_page_bookmark_and_tag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """全部项目.pdf of a unit converted as three documents (the 汇总表, then each form): their
    pages in order, one bookmark per part, each page's marked content in the one structure tree."""
    from reportgen import build as build_module

    monkeypatch.setattr(build_module, "CHUNK_BYTES", 1000)
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out = tmp_path / "out"
    assert build([data], out, Options(keep=0)).ok
    unit = out / "2022/深圳市龙华区平安建设中心"
    assert len(list((out / ".reportgen/chunks").iterdir())) == 3
    merged = PdfReader(unit / "全部项目.pdf", strict=True)
    names = ["数字化城管信息系统运行项目（系统操作员）", "网格信息采集工作"]
    assert [item.title for item in merged.outline] == ["汇总表", *names]
    forms = [PdfReader(unit / f"{name}.pdf") for name in names]
    assert len(merged.pages) == 1 + sum(len(form.pages) for form in forms)
    texts = [page.extract_text() for page in merged.pages]
    assert texts[1:] == [page.extract_text() for form in forms for page in form.pages]
    tree = merged.trailer["/Root"]["/StructTreeRoot"]
    keys = set(tree["/ParentTree"]["/Nums"][0::2])
    assert sorted(page["/StructParents"] for page in merged.pages) == sorted(keys)
    assert int(tree["/ParentTreeNextKey"]) == max(keys) + 1
    document = tree.raw_get("/K")[0]
    parts = [part.get_object() for part in document.get_object()["/K"]]
    assert [part["/S"] for part in parts] == ["/Part"] * 3
    assert all(part.raw_get("/P").idnum == document.idnum for part in parts)


def test_a_kept_chunk_is_read_while_libreoffice_converts_the_changed_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild of a unit of three chunks after one form changed: the chunk whose forms did not
    change is read (for 全部项目.pdf) while LibreOffice converts the other two, and the outputs
    are a cold build's."""
    from reportgen import build as build_module

    monkeypatch.setattr(build_module, "CHUNK_BYTES", 1000)
    read: list[list[str]] = []
    read_ahead = build_module._Assembly.read_ahead

    def noted(assembly: build_module._Assembly) -> None:
        read.append([job.stem for job in assembly.ahead[0].jobs])
        read_ahead(assembly)

    monkeypatch.setattr(build_module._Assembly, "read_ahead", noted)
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out = tmp_path / "out"
    assert build([data], out, Options(keep=0)).ok
    assert read == []  # a cold build keeps nothing
    before = tree_digest(out)
    changed = next(data.rglob("网格信息采集工作.yaml"))
    text = changed.read_text(encoding="utf-8")
    changed.write_text(text.replace("工作人员满意度", "工作人员满意程度"), encoding="utf-8")
    again = build([data], out, Options(keep=0))
    assert (again.rebuilt, again.skipped) == (1, 1)
    assert read == [["数字化城管信息系统运行项目（系统操作员）"]]
    fresh = tmp_path / "fresh"
    assert build([data], fresh, Options(keep=0)).ok
    assert tree_digest(out) == tree_digest(fresh)
    # With no room to hold a chunk read ahead, it is read when its bundle is written: the same outputs.
    monkeypatch.setattr(build_module, "READ_AHEAD", 0)
    changed.write_text(text, encoding="utf-8")
    assert build([data], out, Options(keep=0)).rebuilt == 1
    assert len(read) == 1 and tree_digest(out) == before


def test_forms_laid_out_differently_among_others_are_converted_alone(tmp_path: Path) -> None:
    """LibreOffice lays out a repeated header row that starts a merged cell (晋中's 评分表 as it
    was) differently in a document of many forms: those forms are converted one by one."""
    from reportgen.build import Bundle, plan_chunks

    header_starts_merge = Path(__file__).parent / "fixtures" / "header-row-starts-merge.docx"
    jobs = _jobs(tmp_path, [2000] * 3, header_starts_merge)
    chunks = plan_chunks(jobs, [Bundle(tmp_path / "out/2023/单位", jobs, "unit")], Options())
    assert [(len(chunk.jobs), chunk.with_summary) for chunk in chunks] == [(0, True)]  # the summary alone
    assert all(job.chunk is None for job in jobs)


def test_many_short_forms_weigh_more_than_a_few_long_ones(tmp_path: Path) -> None:
    """LibreOffice's time per document is mostly fixed: ten one-page forms (2.3 KB of YAML each,
    about 60 ms each) take longer than three three-page ones (8 KB, about 90 ms each)."""
    from reportgen.build import _Conversion

    short = [_Conversion(tmp_path / "s", job=job) for job in _jobs(tmp_path / "a", [2300] * 10)]
    long = [_Conversion(tmp_path / "l", job=job) for job in _jobs(tmp_path / "b", [8000] * 3)]
    assert sum(2300 for _ in range(10)) < sum(8000 for _ in range(3))  # bytes alone say the opposite
    assert sum(c.weight for c in short) > sum(c.weight for c in long)
    assert _Conversion(tmp_path / "summary", summary=True).weight > 0  # a summary page alone is work too


def test_a_form_that_fails_to_render_is_reported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LibreOffice is launched before the forms are written; one that never is must cost no
    retry and no second message, and its unit's bundle is not updated."""
    from reportgen import build as pipeline
    from reportgen.errors import TemplateError

    render_form = pipeline.render_form

    def failing(job, target: Path) -> None:
        if job.stem == "网格信息采集工作":
            raise TemplateError("模板渲染失败：测试")
        render_form(job, target)

    monkeypatch.setattr(pipeline, "render_form", failing)
    report = build([DATA / "2022"], tmp_path)
    unit = tmp_path / "2022/深圳市龙华区平安建设中心"
    assert report.failures == [
        "data/2022/深圳龙华区平安建设中心/网格信息采集工作.yaml: 模板渲染失败：测试",
        f"{unit}: 本单位有项目未能生成，报送包未更新",
    ]
    assert report.rebuilt == 1
    form = "数字化城管信息系统运行项目（系统操作员）"
    assert sorted(p.name for p in unit.iterdir()) == [f"{form}.docx", f"{form}.pdf"]


def test_a_document_written_after_libreoffice_reached_it_is_converted_in_the_retry(tmp_path: Path) -> None:
    """Batches are launched before their documents are written; one LibreOffice reaches too
    early is skipped by it, and converted by the retry once every document is written."""
    from reportgen.convert import Pool

    blank, calls = _blank_pdf(tmp_path / "blank.pdf"), tmp_path / "calls"
    fake = _fake_soffice(tmp_path, FAKE_ARGUMENTS + f"""
for doc in "${{docs[@]}}"; do [ -f "$doc" ] && cp "{blank}" "$out/$(basename "$doc" .docx).pdf"; done
echo call >> "{calls}"
""")
    docs = []
    for name in ("a", "b", "never"):
        (tmp_path / name).mkdir()
        docs.append(tmp_path / name / f"{name}.docx")
    docs[0].write_bytes(b"written in time")
    with Pool(str(fake), timeout=30) as pool:
        pool.submit(docs)
        while not calls.exists():  # the first call has looked at every document: b was not there
            time.sleep(0.01)
        docs[1].write_bytes(b"written late")
        pool.inputs_written()  # "never" failed to render: it is not retried
    outcomes = pool.outcomes
    assert outcomes[docs[0]] == docs[0].with_suffix(".pdf")
    assert outcomes[docs[1]] == docs[1].with_suffix(".pdf")
    assert outcomes[docs[2]] == "LibreOffice 未能转换 never.docx：退出码 0"
    assert calls.read_text(encoding="utf-8").count("call") == 2  # the batch, then b alone


# --- what checking found is kept for the next build (validate.CheckCache) ---------------------


def _counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The project files checked from here on (not taken from the cache)."""
    from reportgen import validate

    checked: list[Path] = []
    check_source = validate.check_source

    def counting(source, files=None):
        checked.append(source.path)
        return check_source(source, files)

    monkeypatch.setattr(validate, "check_source", counting)
    return checked


_CHECK_AHEAD = """
import json, os, sys
from pathlib import Path
from reportgen import validate

if sys.argv[3:] == ["--helper-fails"]:
    this, entry = os.getpid(), validate._entry
    def failing(checked):
        if os.getpid() != this:
            raise RuntimeError("the helper fails")
        return entry(checked)
    validate._entry = failing
counted = []
check_source = validate.check_source
validate.check_source = lambda source, files=None: (counted.append(source.path), check_source(source, files))[1]
data = Path(sys.argv[1])
alone = validate.check_paths([data])  # no cache: no helper
counted.clear()
cache = validate.CheckCache(Path(sys.argv[2]))
together = validate.check_paths([data], cache)
print(json.dumps({
    "projects": len(together), "checked_here": len(counted), "kept": len(cache.used),
    "paths": [a.source.path == b.source.path for a, b in zip(alone, together)],
    "problems": [a.problems == b.problems for a, b in zip(alone, together)],
    "scores": [a.result == b.result and a.result is not None for a, b in zip(alone, together)],
    "regions": [a.region is b.region for a, b in zip(alone, together)],
}))
"""


def test_a_helper_process_checks_half_of_a_large_tree_while_the_build_checks_the_rest(tmp_path: Path) -> None:
    """In a process of its own: the helper is forked only by a process without other threads."""
    from benchmarks.synth import synthesize

    data = tmp_path / "data"
    synthesize(40, data)
    found = json.loads(subprocess.run([sys.executable, "-c", _CHECK_AHEAD, str(data), str(tmp_path / "checked.pickle")],
                                      capture_output=True, text=True, check=True).stdout)
    assert (found["projects"], found["checked_here"], found["kept"]) == (40, 20, 40)  # the helper checked 20
    assert all(found["paths"]) and all(found["problems"]) and all(found["scores"]) and all(found["regions"])
    # A helper that fails hands nothing over: this process checks those projects itself.
    found = json.loads(subprocess.run([sys.executable, "-c", _CHECK_AHEAD, str(data), str(tmp_path / "other.pickle"),
                                       "--helper-fails"], capture_output=True, text=True, check=True).stdout)
    assert (found["projects"], found["checked_here"], found["kept"]) == (40, 40, 40)
    assert all(found["paths"]) and all(found["problems"]) and all(found["scores"]) and all(found["regions"])


def test_a_rebuild_takes_what_checking_found_from_the_last_build(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    out = tmp_path / "out"
    options = Options(keep=0)
    first = build([data], out, options)
    assert first.ok and (out / ".reportgen/checked.pickle").is_file()
    checked = _counting_checks(monkeypatch)
    again = build([data], out, options)
    assert checked == []
    assert again.problems == first.problems and again.rebuilt == 0  # every warning, where it was
    project = next(data.glob("2022/*/[!_]*.yaml"))
    project.write_text(project.read_text(encoding="utf-8").replace("项目名称: ", "项目名称: 新", 1), encoding="utf-8")
    changed = build([data], out, options)
    assert checked == [project] and changed.rebuilt >= 1
    unit = next(data.glob("2023/*/_unit.yaml"))
    unit.write_text(unit.read_text(encoding="utf-8") + "\n# 改过\n", encoding="utf-8")
    checked.clear()
    build([data], out, options)
    assert sorted(checked) == sorted(p for p in unit.parent.glob("*.yaml") if p.name != "_unit.yaml")


def test_a_build_of_one_unit_keeps_what_checking_found_for_the_others(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Building one unit (as the web page does) leaves the other units' entries in the cache: the
    next build of the whole tree checks nothing again. Older versions of a project and projects
    since deleted are not kept."""
    import pickle

    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    out, options = tmp_path / "out", Options(keep=0)
    projects = sorted(p for p in data.rglob("*.yaml") if p.name != "_unit.yaml" and "regions" not in p.parts)
    assert build([data], out, options).ok

    def kept() -> list[str]:
        with (out / ".reportgen/checked.pickle").open("rb") as stored:
            return sorted(place for place, _ in pickle.load(stored).values())

    assert kept() == [str(p) for p in projects]
    unit = next(data.glob("2022/*/"))
    project = sorted(unit.glob("[!_]*.yaml"))[0]
    project.write_text(project.read_text(encoding="utf-8").replace("项目名称: ", "项目名称: 新", 1), encoding="utf-8")
    checked = _counting_checks(monkeypatch)
    assert build([unit], out, options).ok
    assert checked == [project]
    assert kept() == [str(p) for p in projects]  # the older version of the changed project is gone
    checked.clear()
    again = build([data], out, options)
    assert checked == [] and again.ok
    gone = next(p for p in projects if unit not in p.parents)
    gone.unlink()
    assert build([unit], out, options).ok
    assert kept() == [str(p) for p in projects if p != gone]
    # Entries of another shape (a damaged file) are not read, and the file is written anew.
    damaged = {"a": (1, 2, 3), "b": ("x",), "c": ("/p", "not bytes"), "d": None, 5: (None, b"")}
    (out / ".reportgen/checked.pickle").write_bytes(pickle.dumps(damaged))
    checked.clear()
    assert build([data], out, options).ok
    assert len(checked) == len(projects) - 1 and kept() == [str(p) for p in projects if p != gone]


def _docx_text(path: Path) -> str:
    return "\n".join(cell.text for table in Document(path).tables for row in table.rows for cell in row.cells)


def test_a_file_saved_while_it_is_built_is_built_again_by_the_next_build(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The build records each form as made from the content it checked, not from the file as it
    is later: a version saved meanwhile (here right after checking, as a clerk may while a build
    runs) is not taken for built, which would keep its value off the form for good; and the
    manifest names the inputs the forms were made from."""
    from reportgen import build as build_module

    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out, options = tmp_path / "out", Options(keep=0)
    project = next(data.rglob("网格信息采集工作.yaml"))
    built_from = project.read_bytes()
    check_paths = build_module.check_paths

    def checking_then_saved(*args, **kwargs):
        results = check_paths(*args, **kwargs)
        project.write_bytes(built_from.decode("utf-8").replace("工作人员满意度", "工作人员满意程度").encode("utf-8"))
        return results

    monkeypatch.setattr(build_module, "check_paths", checking_then_saved)
    assert build([data], out, options).ok
    monkeypatch.undo()
    docx = next(out.rglob("网格信息采集工作.docx"))
    assert "工作人员满意度" in _docx_text(docx) and "工作人员满意程度" not in _docx_text(docx)
    manifest = json.loads((docx.parent / "manifest.json").read_text(encoding="utf-8"))
    sha256 = {entry["path"]: entry["sha256"] for entry in manifest["inputs"]}
    assert sha256[next(p for p in sha256 if p.endswith("网格信息采集工作.yaml"))] == hashlib.sha256(built_from).hexdigest()
    again = build([data], out, options)
    assert again.ok and again.rebuilt == 2  # its chunk: both forms of the unit
    assert "工作人员满意程度" in _docx_text(docx)
    pdf_text = "".join(page.extract_text() for page in PdfReader(docx.with_suffix(".pdf")).pages)
    assert "工作人员满意程度" in "".join(pdf_text.split())  # the cell wraps it
    assert build([data], out, options).rebuilt == 0


def test_a_region_saved_while_it_is_used_is_used_again_by_the_next_build(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Likewise a region's rules.yaml saved after the build has read it: the forms are recorded
    as made from the rules they were made from, and the next build takes the new ones."""
    from reportgen import build as build_module
    from reportgen.regions import all_regions

    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    regions = tmp_path / "regions"
    shutil.copytree(all_regions()["shenzhen-longhua"].folder, regions / "shenzhen-longhua")
    monkeypatch.setenv("REPORTGEN_REGIONS", str(regions))
    rules = regions / "shenzhen-longhua" / "rules.yaml"
    read = rules.read_bytes()
    check_paths = build_module.check_paths

    def checking_then_saved(*args, **kwargs):
        results = check_paths(*args, **kwargs)
        rules.write_bytes(read.replace('level1_label: "{name} ({share}分)"'.encode(), 'level1_label: "{name}（{share}分）"'.encode()))
        return results

    monkeypatch.setattr(build_module, "check_paths", checking_then_saved)
    out, options = tmp_path / "out", Options(keep=0)
    assert build([data], out, options).ok
    monkeypatch.setattr(build_module, "check_paths", check_paths)
    docx = next(out.rglob("网格信息采集工作.docx"))
    assert "满意度指标 (10分)" in _docx_text(docx) and "满意度指标（10分）" not in _docx_text(docx)
    manifest = json.loads((docx.parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["regions"]["shenzhen-longhua"]["rules.yaml"] == hashlib.sha256(read).hexdigest()
    again = build([data], out, options)
    assert again.ok and again.rebuilt == 2
    assert "满意度指标（10分）" in _docx_text(docx)


def test_a_unit_converted_one_by_one_is_said_and_converted_together_next_time(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """When a unit's document cannot be cut into its forms, its forms are converted one by one:
    the build says so (the PDFs' bytes are not a cold build's), and the next build, even with
    nothing changed, converts the unit together again and gives a cold build's bytes."""
    from reportgen import pdfpages
    from reportgen.state import look_at_tree

    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out, cold, options = tmp_path / "out", tmp_path / "cold", Options(keep=0)
    split = pdfpages.split

    def failing_once(source, count):
        monkeypatch.setattr(pdfpages, "split", split)
        raise pdfpages.Unsupported("part markers: 0 for 3 parts")

    monkeypatch.setattr(pdfpages, "split", failing_once)
    first = build([data], out, options)
    assert first.ok and first.rebuilt == 2 and len(first.notices) == 1
    assert first.notices[0].startswith(f"{out / '2022/深圳市龙华区平安建设中心'}: 本单位的表未能一起转换（无法从 ")
    assert "part markers: 0 for 3 parts" in first.notices[0] and first.notices[0].endswith("下次生成时再一起转换")
    assert build([data], cold, options).ok
    assert look_at_tree([data], out, False, None).report is None  # the command line builds again
    again = build([data], out, options)
    assert again.ok and not again.notices and again.rebuilt == 2
    assert tree_digest(out) == tree_digest(cold)
    assert build([data], out, options).rebuilt == 0


def test_a_project_checked_is_the_content_its_cache_entry_is_kept_for(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A project file saved between reading it for the check cache's key and checking it: the
    check is of the content the key was made from, so that content found again (an edit undone)
    is never given the other version's check."""
    from reportgen import validate

    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    project = next(data.rglob("网格信息采集工作.yaml"))
    original = project.read_text(encoding="utf-8")
    load_file = validate.load_file

    def saved_first(path, *args):
        if path == project:
            project.write_text(original.replace("项目名称: ", "项目名称: 改", 1), encoding="utf-8")
        return load_file(path, *args)

    monkeypatch.setattr(validate, "load_file", saved_first)
    cache = validate.CheckCache(tmp_path / "checked.pickle")
    first = {c.source.path: c for c in validate.check_paths([data], cache)}
    cache.save()
    monkeypatch.undo()
    assert not first[project].project.name.startswith("改")  # the content read for the key
    assert first[project].digests[-1] == hashlib.sha256(original.encode("utf-8")).hexdigest()
    project.write_text(original, encoding="utf-8")  # the edit undone
    checked = _counting_checks(monkeypatch)
    again = {c.source.path: c for c in validate.check_paths([data], validate.CheckCache(tmp_path / "checked.pickle"))}
    assert checked == [] and again[project].project.name == first[project].project.name


def test_reportgen_updated_without_a_new_version_checks_and_builds_again(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """What the old code found and built does not stand for the new code's (a corrected rule,
    say), even when the version number stayed the same."""
    import reportgen
    from reportgen import build as build_module

    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    out = tmp_path / "out"
    assert build([data], out, Options(keep=0)).rebuilt == 2
    assert build([data], out, Options(keep=0)).skipped == 2
    checked = _counting_checks(monkeypatch)
    for module in (reportgen, build_module):
        monkeypatch.setattr(module, "code_digest", lambda: "the code of a later update")
    again = build([data], out, Options(keep=0))
    assert (again.rebuilt, again.skipped) == (2, 0)
    assert len(checked) == 2  # checked again, not taken from the cache


def test_a_changed_region_or_a_broken_cache_means_checking_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen.regions import all_regions

    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    regions = tmp_path / "regions"
    shutil.copytree(all_regions()["shenzhen-longhua"].folder, regions / "shenzhen-longhua")
    monkeypatch.setenv("REPORTGEN_REGIONS", str(regions))
    out = tmp_path / "out"
    assert build([data], out, Options(keep=0)).ok
    checked = _counting_checks(monkeypatch)
    projects = sorted(p for p in data.rglob("*.yaml") if p.name != "_unit.yaml")
    readme = regions / "shenzhen-longhua" / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\n补充说明。\n", encoding="utf-8")
    build([data], out, Options(keep=0))
    assert sorted(checked) == projects  # any file of any region: messages name other regions
    checked.clear()
    (out / ".reportgen/checked.pickle").write_bytes(b"not a pickle")
    report = build([data], out, Options(keep=0))
    assert report.ok and sorted(checked) == projects
    checked.clear()
    build([data], out, Options(keep=0))
    assert checked == []  # written anew


def test_a_name_used_twice_is_reported_alike_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check across projects (one name per unit and year) runs on every build, also on
    projects taken from the cache, and points at the same line."""
    data = tmp_path / "data"
    shutil.copytree(DATA / "2022", data / "2022")
    unit = next(data.glob("2022/*/"))
    first = sorted(p for p in unit.glob("*.yaml") if p.name != "_unit.yaml")[0]
    twin = unit / "副本.yaml"
    shutil.copy(first, twin)
    out = tmp_path / "out"
    before = build([data], out, Options(keep=0))
    checked = _counting_checks(monkeypatch)
    after = build([data], out, Options(keep=0))
    assert checked == []
    duplicate = [p for p in after.problems if "同名" in p.message]
    assert len(duplicate) == 1 and Path(duplicate[0].file).name == first.name  # the later of the two
    line = next(n for n, text in enumerate(first.read_text(encoding="utf-8").splitlines(), 1) if text.startswith("项目名称"))
    assert duplicate[0].line == line
    assert after.problems == before.problems and after.failures == before.failures
