"""Where the code lives: the wheel built from this checkout, installed into a fresh virtual
environment outside it, is a working tool; and the suite's unprivileged test passes from a
checkout in a folder other users cannot read.

The slow tests of the suite (a wheel build, a pip install, a full build, a nested pytest):
deselect them with ``-m "not packaging"``. They need no network: pip installs only the wheel,
and the fresh environments import the other packages from this one's site-packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import DATA, DATA_UNITS, ROOT, run_cli
from .test_faults import ELSEWHERE, public_python

pytestmark = [pytest.mark.packaging, pytest.mark.soffice]

# What a fresh clone does not have, or what pip and the tools make in the working tree.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"
)


def run(command: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` with none of this process's ELSEWHERE settings."""
    env = {k: v for k, v in os.environ.items() if k not in ELSEWHERE}
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def succeeds(command: list[str | Path], cwd: Path) -> str:
    result = run(command, cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def copy_checkout(target: Path) -> Path:
    """This working tree as a fresh clone would have it (uncommitted changes included)."""
    shutil.copytree(ROOT, target, ignore=NOT_IN_A_CLONE, symlinks=True)
    return target


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment (without pip: faster) that can import this environment's
    packages after its own; returns its python."""
    succeeds([sys.executable, "-m", "venv", "--without-pip", folder], cwd=folder.parent)
    python = folder / "bin" / "python"
    site = succeeds([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=folder).strip()
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    # Named in a .pth file: the folders join sys.path, their own .pth files (such as the editable
    # install of this checkout) are not run.
    (Path(site) / "lent-packages.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    return python


def files_under(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_wheel_installed_outside_the_checkout_builds_data(
    tmp_path: Path, built_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ELSEWHERE:
        monkeypatch.delenv(name, raising=False)  # also for the in-process run_cli below
    # pip builds in the source folder (build/, *.egg-info): a copy keeps this checkout clean.
    source = copy_checkout(tmp_path / "source")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    succeeds([*pip_wheel, "-w", tmp_path / "wheels", source], cwd=tmp_path)
    [wheel] = (tmp_path / "wheels").glob("reportgen-*.whl")

    # The wheel holds the code, fonts.conf, and every file of the templates' folders (region
    # folders and summary), under reportgen/templates/; nothing else (no templates/generate.py).
    code = {f"reportgen/{name}" for name in files_under(source / "reportgen")}
    templates = {
        f"reportgen/templates/{folder}/{name}"
        for folder in ("docx", "summary")
        for name in files_under(source / "templates" / folder)
    }
    with zipfile.ZipFile(wheel) as archive:
        installed = {name for name in archive.namelist() if not name.startswith("reportgen-")}
    assert "reportgen/fonts/fonts.conf" in code
    assert {"reportgen/templates/docx/national/form.docx", "reportgen/templates/summary/form.docx"} <= templates
    assert installed == code | templates

    python = fresh_environment(tmp_path / "env")
    succeeds(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], tmp_path
    )
    reportgen = tmp_path / "env" / "bin" / "reportgen"
    package = Path(succeeds([python, "-c", "import reportgen; print(reportgen.__file__)"], tmp_path).strip()).parent
    assert package.is_relative_to(tmp_path / "env")

    regions = succeeds([reportgen, "regions"], cwd=tmp_path)
    assert regions == run_cli("regions").output
    folders = sorted(p.parent.name for p in (source / "templates" / "docx").glob("*/rules.yaml"))
    assert [line.split("\t")[0] for line in regions.splitlines()] == folders

    succeeds([reportgen, "build", DATA, "-o", "out"], cwd=tmp_path)
    out, expected = files_under(tmp_path / "out"), files_under(built_data)
    outputs = {name for name in out if not name.startswith(".reportgen/")}
    assert outputs == {name for name in expected if not name.startswith(".reportgen/")}
    assert len([name for name in outputs if name.endswith(".zip")]) == len(DATA_UNITS)
    # Forms and summaries are the same bytes as the checkout's build; the manifests (and the zips
    # holding them) differ only in where the templates were read from: the installed package.
    for name in outputs:
        if name.endswith((".pdf", ".docx", ".csv")):
            assert out[name].read_bytes() == expected[name].read_bytes(), name
        elif name.endswith(".zip"):
            with zipfile.ZipFile(out[name]) as ours, zipfile.ZipFile(expected[name]) as theirs:
                assert ours.namelist() == theirs.namelist()
    # Each manifest lists the files read (relative to the working folder, or absolute): besides
    # the project files, the region's files from the installed package, none from this checkout.
    installed_templates = (package / "templates" / "docx").resolve()
    for name in (name for name in outputs if name.endswith("manifest.json")):
        inputs = [(tmp_path / i["path"]).resolve() for i in json.loads(out[name].read_text(encoding="utf-8"))["inputs"]]
        read = [path for path in inputs if not path.is_relative_to(DATA.resolve())]
        assert read, name
        assert [path for path in read if not path.is_relative_to(installed_templates)] == [], name


def test_unprivileged_test_passes_from_a_checkout_in_a_private_folder(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)  # like a clone under /root, or in a folder made by mktemp -d
    clone = copy_checkout(private / "reportgen")
    python = fresh_environment(clone / ".venv")
    where = succeeds([python, "-c", "import sys, reportgen; print(sys.prefix); print(reportgen.__file__)"], clone)
    assert where == f"{clone / '.venv'}\n{clone / 'reportgen' / '__init__.py'}\n"

    # Other users cannot read the clone: run from it directly, reportgen is not found.
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", public_python(), "-S"]
    denied = subprocess.run(
        [*map(str, nobody), "-c", "import reportgen"],
        capture_output=True,
        text=True,
        cwd=clone,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(clone)},
    )
    assert denied.stderr.splitlines()[-1] == "ModuleNotFoundError: No module named 'reportgen'"

    test = "tests/test_faults.py::test_read_only_output_folder_keeps_earlier_outputs"
    options = ["-q", "-p", "no:cacheprovider", f"--basetemp={private / 'pytest'}"]
    result = run([python, "-m", "pytest", *options, test], cwd=clone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"1 passed in \d+\.\d+s", result.stdout.splitlines()[-1]), result.stdout
