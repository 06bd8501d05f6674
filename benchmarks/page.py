"""(e') One project changed and its unit rebuilt from the local web page: ``python -m
benchmarks.page DATA OUT PROJECT...`` prints one JSON line per project (seconds, the build's
summary).

The page (``reportgen serve``) builds in its own long-running process: reportgen is imported once
and LibreOffice stays running between builds. This measures what a clerk waits for after pressing
生成 for a unit whose project has just been changed — from the request (``start_build``, which
checks the data folder to find the unit's projects) until the build has finished — through the
page's own code, without a browser and HTTP.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.run import changed_name
from reportgen.serve.workspace import BuildJob, Workspace

POLL_SECONDS = 0.005


def build_unit(workspace: Workspace, unit: str) -> BuildJob:
    job = workspace.start_build(unit)
    while job.state == "running":
        time.sleep(POLL_SECONDS)
    return job


def unit_of(workspace: Workspace, project: Path) -> str:
    relative = workspace.rel(project)
    for _, units in workspace.overview()["years"]:
        for unit in units:
            if any(view["path"] == relative for view in unit["projects"]):
                return unit["key"]
    raise SystemExit(f"{project}: not in any unit of the overview")


def main(argv: list[str] | None = None) -> int:
    data, out, *projects = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    workspace = Workspace(data, out)
    try:
        for project in projects:
            unit = unit_of(workspace, project)
            build_unit(workspace, unit)  # as the last build left it (the page's first build adopts LibreOffice)
            original = project.read_text(encoding="utf-8")
            project.write_text(changed_name(original), encoding="utf-8")
            try:
                started = time.monotonic()
                job = build_unit(workspace, unit)
                seconds = time.monotonic() - started
            finally:
                project.write_text(original, encoding="utf-8")
            if job.state != "done":
                raise SystemExit(f"{unit}: {job.message} {job.failures}")
            print(json.dumps({"project": str(project), "seconds": seconds, "summary": job.message}), flush=True)
            build_unit(workspace, unit)  # back as before, not timed
    finally:
        workspace.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
