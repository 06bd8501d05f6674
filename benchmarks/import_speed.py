"""How long `reportgen import` takes to read N filled forms back (the goal: 100 DOCX under 5 s).

    python -m benchmarks.import_speed            # N = 100, 3 runs
    python -m benchmarks.import_speed -n 500 -r 1

N synthetic projects (benchmarks.synth, the seed regions) are rendered to DOCX once; then each run
imports every DOCX and writes the project files, as `reportgen import DIR -o DATA` does, in a
fresh process state for the template maps (the first form of each region reads its template).
Figures: seconds per run, the median, and milliseconds per form.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import render_all
from benchmarks.synth import synthesize
from reportgen import importer


def import_all(documents: list[Path], out: Path) -> tuple[float, int]:
    importer._template_map_cached.cache_clear()  # each run reads the templates again, as a new process does
    started = time.monotonic()
    forms = []
    for document in documents:
        found, problems = importer.import_file(document)
        assert not [p for p in problems if p.is_error], problems
        forms.extend(found)
    written = importer.write_projects(forms, out, force=True)
    return time.monotonic() - started, len(written.files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="forms to import (default 100)")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="runs (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reportgen-import-bench-") as scratch:
        root = Path(scratch)
        synthesize(args.n, root / "data")
        documents, render_seconds = render_all(root / "data", root / "docx")
        print(f"N = {len(documents)} DOCX rendered in {render_seconds:.1f} s")
        runs = []
        for run in range(args.repeats):
            seconds, files = import_all(documents, root / f"imported-{run}")
            runs.append(seconds)
            print(f"run {run + 1}: {seconds:.2f} s, {files} files written")
        median = statistics.median(runs)
        per_form = median / len(documents) * 1000
        verdict = "met" if len(documents) < 100 or median * 100 / len(documents) < 5 else "NOT met"
        print(f"import of {len(documents)} DOCX: median {median:.2f} s ({per_form:.1f} ms per form); "
              f"goal 100 in < 5 s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
