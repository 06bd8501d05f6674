"""LibreOffice profiles kept warm between builds, in the user's cache folder.

LibreOffice keeps its settings in a profile folder (``-env:UserInstallation``); given an empty
one it first creates it, which costs each worker a tenth of a second or more on every build.
Profiles are therefore kept in ``<cache>/libreoffice/<installation>/slot-<n>`` (the cache folder
``glyphs.cache_folder`` names, ``$XDG_CACHE_HOME/reportgen`` or ``~/.cache/reportgen``), one per
worker slot, and reused.

- A slot is locked (``flock`` on ``slot-<n>.lock``) while a build uses it, so that two builds
  running at once (into different folders) never share one: the second takes the next free
  slot. The lock goes with the process that holds it, also when that process is killed.
- A profile is trusted only if the build that used it last finished with it (the file
  ``reportgen-ready`` in it). The mark is taken away while a build uses the profile and put back
  when it is done; a profile without it (a build killed meanwhile, a LibreOffice that crashed
  or could not start with it) is removed and LibreOffice makes a new one.
- Profiles of different LibreOffice installations do not mix (``<installation>`` is named after
  the program's path and modification time).

- A LibreOffice left running for the next build (``convert.KEEP_SECONDS``) is recorded beside
  its profile (``slot-<n>.office.json``) and ended when its profile is not to be trusted.
- Every profile notes the installed LibreOffice's version as the last one that used it
  (``note_version``): LibreOffice runs graphics self-tests, drawing on bitmaps of up to 4096 ×
  4096 pixels (0.8 of the 1.25 CPU seconds it needs to start and convert a one-page form here),
  whenever a profile was last used by an older version, and without a window it never notes the
  version itself: it ran them at every start.

Without a cache folder (no home, or one that cannot be written), each build uses temporary
profiles as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

from .errors import ReportgenError
from .package import write_bytes

READY = "reportgen-ready"
MAX_SLOTS = 64
SETTINGS = Path("user") / "registrymodifications.xcu"  # a profile's settings, as LibreOffice keeps them
_LAST_VERSION = 'oor:name="ooSetupLastVersion"'
_EMPTY_SETTINGS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
    'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n</oor:items>\n'
)


def root_folder(soffice: str) -> Path | None:
    """The folder of this LibreOffice installation's profiles, or None without a cache folder."""
    from .glyphs import cache_folder  # glyphs imports convert, which imports this module

    folder = cache_folder()
    if folder is None:
        return None
    program = os.path.realpath(soffice)
    try:
        stamp = os.stat(program).st_mtime_ns
    except OSError:
        stamp = 0
    key = hashlib.sha256(f"{program}\0{stamp}".encode(errors="surrogateescape")).hexdigest()[:16]
    return folder / "libreoffice" / key


class Profile:
    """A profile folder for one LibreOffice process at a time."""

    def __init__(self, folder: Path, handle: int | None, warm: bool, soffice: str = "soffice") -> None:
        self.folder, self._handle, self.warm, self.soffice = folder, handle, warm, soffice
        self.good = True  # every LibreOffice run with it went well
        note_version(folder, soffice)

    @property
    def kept(self) -> bool:
        return self._handle is not None

    @property
    def lock(self) -> Path:
        return self.folder.with_name(f"{self.folder.name}.lock")

    @property
    def stamp(self) -> Path:
        """Touched whenever a build is done with the slot: how long its LibreOffice has been idle."""
        return self.folder.with_name(f"{self.folder.name}.used")

    @property
    def _office_file(self) -> Path:
        return self.folder.with_name(f"{self.folder.name}.office.json")

    def office(self) -> dict | None:
        """The LibreOffice an earlier build left running with this profile, as it recorded it."""
        return _read_office(self._office_file) if self.kept else None

    def keep_office(self, record: dict) -> None:
        """Note the LibreOffice left running for the next build, and that it was just used."""
        with contextlib.suppress(OSError):
            self._office_file.write_text(json.dumps(record), encoding="utf-8")
            self.stamp.touch()

    def forget_office(self) -> None:
        with contextlib.suppress(OSError):
            self._office_file.unlink(missing_ok=True)

    def broken(self) -> None:
        """LibreOffice failed with this profile: the next run starts with a new one."""
        _clear(self.folder)
        note_version(self.folder, self.soffice)
        self.warm = False

    def release(self) -> None:
        """Done with it: a kept profile is marked ready (if it served well) and unlocked; a
        temporary one is removed."""
        if self._handle is None:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        if self.good:
            with contextlib.suppress(OSError):
                (self.folder / READY).write_bytes(b"")
        with contextlib.suppress(OSError):
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            os.close(self._handle)
        self._handle = None


def acquire(soffice: str, count: int, cached: bool = True) -> list[Profile]:
    """``count`` profiles, each for one worker: free slots of the cache, locked, or temporary
    folders when there is no cache to use (or ``cached`` is false: not LibreOffice's own program)."""
    found: list[Profile] = []
    root = root_folder(soffice) if cached else None
    if root is not None:
        with contextlib.suppress(OSError):
            root.mkdir(parents=True, exist_ok=True)
            for slot in range(MAX_SLOTS):
                if len(found) == count:
                    break
                profile = _take(root, slot, soffice)
                if profile is not None:
                    found.append(profile)
    while len(found) < count:
        found.append(Profile(Path(tempfile.mkdtemp(prefix="reportgen-lo-")), None, False, soffice))
    return found


def _take(root: Path, slot: int, soffice: str) -> Profile | None:
    """Slot ``slot`` locked for this process, or None if another holds it."""
    handle = os.open(root / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    folder = root / f"slot-{slot}"
    warm = (folder / READY).is_file()
    if warm:
        (folder / READY).unlink()  # back once this build is done with it
    else:
        # Unfinished or broken: ended if still running, and LibreOffice makes a new one.
        left = _read_office(root / f"slot-{slot}.office.json")
        group = left.get("group") if left else None
        if isinstance(group, int) and group > 1:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(OSError):
            (root / f"slot-{slot}.office.json").unlink(missing_ok=True)
        _clear(folder)
    folder.mkdir(exist_ok=True)
    return Profile(folder, handle, warm, soffice)


def _read_office(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)


def note_version(folder: Path, soffice: str) -> None:
    """Note in the profile ``folder`` the version of the LibreOffice ``soffice`` as the last one
    that used it, as LibreOffice with a window does at its first start (see the module's notes);
    nothing when the profile notes one already, or when the version cannot be told."""
    version = product_version(soffice)
    if version is None:
        return
    settings = folder / SETTINGS
    try:
        text = settings.read_text(encoding="utf-8") if settings.exists() else _EMPTY_SETTINGS
    except (OSError, UnicodeDecodeError):
        return  # LibreOffice reads it as it can, and runs its tests
    end = text.rfind("</oor:items>")
    if _LAST_VERSION in text or end < 0:
        return
    item = (f'<item oor:path="/org.openoffice.Setup/Product"><prop {_LAST_VERSION} oor:op="fuse">'
            f"<value>{version}</value></prop></item>\n")
    with contextlib.suppress(ReportgenError):  # not written: LibreOffice runs its tests, as before
        write_bytes(settings, (text[:end] + item + text[end:]).encode("utf-8"))


@functools.cache
def product_version(soffice: str) -> str | None:
    """The version LibreOffice gives itself ("7.4"), from its installation's configuration, or
    None (another program, another layout)."""
    program = Path(shutil.which(soffice) or soffice).resolve().parent
    try:
        data = (program.parent / "share" / "registry" / "main.xcd").read_bytes()
    except OSError:
        return None
    found = re.search(rb'<prop oor:name="ooSetupVersion"[^>]*>\s*<value>(\d+\.\d+)</value>', data)
    return found[1].decode() if found else None
