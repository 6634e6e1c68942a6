"""Fail when a BENCHMARKS.md section describes code that has changed since it was measured.

Each ``<!-- bench:NAME -->`` section ends with ``Measured at revision `REV` by `SCRIPT`.`` (written by
``common.write_section``). A section is stale when a commit after REV touches SCRIPT or a file in its
``MEASURES`` list, when REV is ``-dirty`` (measured on uncommitted code), or when REV is not in this
branch's history; a section without the line is an error too. Reads git and the scripts' source only:
no torch, no training, about a second.

    python bench/check_stale.py        # or: make bench-check; exit 1 and one line per stale section
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import revision

SECTION = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->", re.S)


def problem(name: str, body: str) -> str | None:
    """Why section ``name`` is stale, or None when it describes the code as it is."""
    found = revision.STAMP.search(body)
    if found is None:
        return f"{name}: records no revision; rerun its bench script (it ends the section with one)"
    rev, script = found["rev"], found["script"]
    rerun = f"rerun `python {script}` (its command is in the section)"
    if not (revision.ROOT / script).is_file():
        return f"{name}: written by {script}, which no longer exists; rerun the script that measures it now"
    try:
        files = revision.measured_files(script)
    except (ValueError, SyntaxError) as err:
        return f"{name}: {err}"
    if found["dirty"]:
        return f"{name}: measured on uncommitted changes to {rev}'s code; commit them, then {rerun}"
    try:
        revision.git("merge-base", "--is-ancestor", rev, "HEAD")
    except subprocess.CalledProcessError:
        return f"{name}: revision {rev} is not in this branch's history (rebased, or a shallow clone); {rerun}"
    newer = revision.git("log", "--format=%h %cs", f"{rev}..HEAD", "--", *files).splitlines()
    if newer:
        changed = revision.git("diff", "--name-only", rev, "HEAD", "--", *files).split()
        return (f"{name}: measured at {rev}, but {len(newer)} later commit(s) (newest {newer[0]}) changed "
                f"{', '.join(changed) or 'its files'}; {rerun}")
    return None


def main() -> int:
    text = (revision.ROOT / "BENCHMARKS.md").read_text()
    sections = list(SECTION.finditer(text))
    problems = [p for m in sections if (p := problem(m["name"], m["body"]))]
    for line in problems:
        print(f"stale: {line}")
    print(f"{len(sections) - len(problems)} of {len(sections)} BENCHMARKS.md sections describe the code as it is")
    return 1 if problems or not sections else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
