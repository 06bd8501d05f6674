"""Problems found in a user's files, and the errors reportgen raises.

A ``Problem`` is something wrong with the user's data, located in a file; a ``ReportgenError``
stops a command. The CLI prints both and turns them into exit codes; nothing else in the
package prints.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    """One located finding: ``path:line:col: severity: key path: message``."""

    file: str
    line: int
    col: int
    severity: Severity
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.key}: " if self.key else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {where}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def display_path(path: Path) -> str:
    """A path as the user should read it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(_resolved(os.getcwd())))
    except ValueError:
        return str(path)


@functools.lru_cache(maxsize=8)  # asked for every project file; resolving looks at each folder level
def _resolved(folder: str) -> Path:
    return Path(folder).resolve()


class ReportgenError(Exception):
    """Base class: a failure the user can act on; its message is shown as is."""


class UsageError(ReportgenError):
    """The command line names something that does not exist or cannot be used."""


class RegionError(ReportgenError):
    """A region folder's rules profile, field declarations or template is broken."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class TemplateError(ReportgenError):
    """A template failed to render (a misspelt tag, bad syntax); names template and tag."""


class ConvertError(ReportgenError):
    """LibreOffice failed, hung or is missing; names the document."""


class OutputError(ReportgenError):
    """An output file or folder could not be written."""
