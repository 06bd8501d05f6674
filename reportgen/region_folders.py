"""Where regions are: the built-in folder, then the user's folders (``REPORTGEN_REGIONS``,
``--regions`` and a ``regions/`` folder at the top of a data folder), in the order in which they
override each other. Nothing here reads a region (``regions`` does): a build that finds nothing
to do looks at these folders without loading what regions are read into.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from .errors import RegionError, display_path
from .load import REGIONS_FOLDER

TEMPLATES_ENV = "REPORTGEN_TEMPLATES"  # replaces the built-in folder (for testing a changed copy)
REGIONS_ENV = "REPORTGEN_REGIONS"  # the user's region folders, separated like PATH
RULES_FILE, FIELDS_FILE, TEMPLATE_FILE = "rules.yaml", "fields.yaml", "form.docx"
BUILTIN = "内置"


def templates_root() -> Path:
    """The built-in regions: from $REPORTGEN_TEMPLATES, the installed package, or the checkout."""
    if os.environ.get(TEMPLATES_ENV):
        return Path(os.environ[TEMPLATES_ENV])
    here = _package_folder()
    for candidate in (here / "templates" / "docx", here.parent / "templates" / "docx"):
        if candidate.is_dir():
            return candidate
    raise RegionError("找不到地区模板文件夹 templates/docx；可用环境变量 REPORTGEN_TEMPLATES 指定")


@cache  # asked once per project; resolving the module's path costs a system call per folder level
def _package_folder() -> Path:
    return Path(__file__).resolve().parent


_user_folders: list[Path] = []


def add_region_folders(folders: Iterable[Path]) -> None:
    """Make the user's region folders known: each is a region folder or a folder of them."""
    for folder in folders:
        folder = folder.absolute()  # a relative name would mean another folder after a chdir
        if folder not in _user_folders:
            _user_folders.append(folder)


def forget_region_folders() -> None:
    """Back to the built-in regions and REPORTGEN_REGIONS only (each test starts from there)."""
    _user_folders.clear()


def data_region_folders(paths: Iterable[Path]) -> list[Path]:
    """The ``regions/`` folders at the top of the given data folders (or above a given file)."""
    found = []
    for path in paths:
        for folder in ([path] if path.is_dir() else []) + list(path.resolve().parents):
            candidate = folder / REGIONS_FOLDER
            if any(candidate.glob(f"*/{RULES_FILE}")):
                found.append(candidate)
                break
    return found


def region_sources() -> list[tuple[Path, str]]:
    """Folders holding regions, in the order they override each other, with their origin."""
    sources = [(templates_root(), BUILTIN)]
    env = [Path(p) for p in os.environ.get(REGIONS_ENV, "").split(os.pathsep) if p]
    for folder in [*env, *_user_folders]:
        if not folder.is_dir():
            raise RegionError(f"找不到地区文件夹：{display_path(folder)}")
        sources.append((folder, display_path(folder)))
    return sources


def regions_in(root: Path) -> list[Path]:
    """The region folders in ``root``: itself when it is one, else those inside it."""
    if (root / RULES_FILE).is_file():  # a single region's folder
        return [root]
    return sorted(p for p in root.iterdir() if (p / RULES_FILE).is_file())
