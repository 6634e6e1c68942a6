"""Which code a BENCHMARKS.md section measured: the git revision stamp and each bench script's ``MEASURES``.

Every bench script lists the source files its figures depend on in a module-level ``MEASURES = [...]``;
the script itself counts too. ``common.write_section`` ends each section with the line

    Measured at revision `abc1234` by `bench/throughput.py`.

(``abc1234-dirty`` when those files had uncommitted changes), and ``check_stale.py`` compares that revision
with the last commit touching the files. Imports nothing heavy, so the check runs in CI in a second.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"Measured at revision `(?P<rev>[0-9a-f]{4,40}|unknown)(?P<dirty>-dirty)?` by `(?P<script>[^`]+)`")


def git(*args: str) -> str:
    """``git ARGS`` in the checkout; raises ``subprocess.CalledProcessError`` on failure."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def measured_files(script: str | Path) -> list[str]:
    """``script`` (relative to the checkout) and the files its ``MEASURES`` list names, read without
    importing it. Raises ``ValueError`` when the script has no ``MEASURES`` or names a missing file."""
    path = ROOT / script
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MEASURES" for t in node.targets):
            files = [str(script), *ast.literal_eval(node.value)]
            missing = [f for f in files if not (ROOT / f).exists()]
            if missing:
                raise ValueError(f"{script}: MEASURES names {', '.join(missing)}, which do(es) not exist; update it")
            return files
    raise ValueError(f"{script} has no module-level MEASURES = [...] list of the files it measures; add one")


def head() -> str:
    """The checkout's short commit hash ("unknown" outside git)."""
    try:
        return git("rev-parse", "--short", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stamp(script: str | Path, started_at: str | None = None) -> str:
    """The line that ends a section measured by ``script``: at ``started_at`` (the revision when the
    measurement began; default the current one), so a commit made while a long run was going counts as
    later than the figures and the check calls the section stale rather than crediting the new code."""
    script = Path(script).resolve().relative_to(ROOT).as_posix()
    rev = started_at or head()
    try:
        dirty = rev != "unknown" and bool(git("status", "--porcelain", "--", *measured_files(script)))
    except (OSError, subprocess.CalledProcessError):
        rev, dirty = "unknown", False
    return f"Measured at revision `{rev}{'-dirty' if dirty else ''}` by `{script}`."
