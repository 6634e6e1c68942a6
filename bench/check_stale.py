"""Fail when a BENCHMARKS.md section describes code that has changed since it was measured, unless the section
says so.

Each ``<!-- bench:NAME -->`` section ends with ``Measured at revision `REV` by `SCRIPT`.`` (written by
``common.write_section``). A section is stale when a commit after REV touches SCRIPT or a file in its
``MEASURES`` list, when REV is ``-dirty`` (measured on uncommitted code), or when REV is not in this
branch's history; a section without the line is an error too.

Some sections cost hours to remeasure. Such a section may carry a visible acknowledgement instead,
written by ``--acknowledge``: ``**Stale:** the code this section measures has changed since; not
re-measured as of revision `ACK` (REASON).`` It passes while no
commit after ACK touches its files, so every later change to measured code must be remeasured or
acknowledged again, and the reader always sees which figures predate the code. Reads git and the scripts'
source only: no torch, no training, about a second.

    python bench/check_stale.py        # or: make bench-check; exit 1 and one line per stale section
    python bench/check_stale.py --acknowledge regression --reason "3 CPU-hours; cells from 947553c"
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import revision

SECTION = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->", re.S)
ACK = re.compile(r"\*\*Stale:\*\* the code this section measures has changed since; not re-measured as of "
                 r"revision `(?P<rev>[0-9a-f]{4,40})` \((?P<reason>[^\n]*)\)\.\n*")


def changes_since(rev: str, files: list[str]) -> list[str]:
    """``"hash date"`` of each commit after ``rev`` that touches ``files`` (newest first); raises
    ``subprocess.CalledProcessError`` when ``rev`` is not in this branch's history."""
    revision.git("merge-base", "--is-ancestor", rev, "HEAD")
    return revision.git("log", "--format=%h %cs", f"{rev}..HEAD", "--", *files).splitlines()


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
        newer = changes_since(rev, files)
    except subprocess.CalledProcessError:
        return f"{name}: revision {rev} is not in this branch's history (rebased, or a shallow clone); {rerun}"
    if newer:
        changed = revision.git("diff", "--name-only", rev, "HEAD", "--", *files).split()
        return (f"{name}: measured at {rev}, but {len(newer)} later commit(s) (newest {newer[0]}) changed "
                f"{', '.join(changed) or 'its files'}; {rerun}")
    return None


def acknowledged(body: str) -> str | None:
    """The acknowledgement's revision when it still covers the section's files (nothing measured changed
    after it), else None."""
    ack, found = ACK.search(body), revision.STAMP.search(body)
    if ack is None or found is None or not (revision.ROOT / found["script"]).is_file():
        return None
    try:
        return None if changes_since(ack["rev"], revision.measured_files(found["script"])) else ack["rev"]
    except (ValueError, SyntaxError, subprocess.CalledProcessError):
        return None


def acknowledge(text: str, name: str, reason: str) -> str:
    """``text`` with section ``name`` carrying an acknowledgement at HEAD (replacing an older one), placed
    just above its revision stamp. Raises ``SystemExit`` with one line when that cannot be done honestly."""
    match = next((m for m in SECTION.finditer(text) if m["name"] == name), None)
    if match is None:
        raise SystemExit(f"no section '{name}' in BENCHMARKS.md; the names are the <!-- bench:NAME --> markers")
    body, found = match["body"], revision.STAMP.search(match["body"])
    if found is None:
        raise SystemExit(f"section '{name}' records no revision; rerun its bench script instead")
    if revision.git("status", "--porcelain", "--", *revision.measured_files(found["script"])):
        raise SystemExit(f"the files section '{name}' measures have uncommitted changes; commit them first")
    head = revision.git("rev-parse", "--short", "HEAD")
    line = (f"**Stale:** the code this section measures has changed since; not re-measured as of revision "
            f"`{head}` ({reason.strip().rstrip('.')}).\n\n")
    body = ACK.sub("", body)
    stamp_at = revision.STAMP.search(body).start()
    body = body[:stamp_at] + line + body[stamp_at:]
    return text[:match.start("body")] + body + text[match.end("body"):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acknowledge", metavar="SECTION", help="mark SECTION as knowingly not re-measured")
    parser.add_argument("--reason", default="", help="why (shown in the section): cost, what it would take")
    args = parser.parse_args(argv)
    path = revision.ROOT / "BENCHMARKS.md"
    text = path.read_text()
    if args.acknowledge:
        if not args.reason.strip():
            parser.error("--acknowledge needs --reason: say why the section is not re-measured")
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(acknowledge(text, args.acknowledge, args.reason))
        tmp.replace(path)
        return 0
    if revision.git("rev-parse", "--is-shallow-repository") == "true":
        print("bench-check: a shallow clone lacks the revisions the sections record; run it on a full clone")
        return 0
    sections = list(SECTION.finditer(text))
    stale = fresh = 0
    for m in sections:
        why = problem(m["name"], m["body"])
        if why is None:
            fresh += 1
        elif (ack := acknowledged(m["body"])) is not None:
            print(f"acknowledged at {ack}: {why.split('; rerun')[0]}")
        else:
            stale += 1
            print(f"stale: {why}")
    print(f"{fresh} of {len(sections)} BENCHMARKS.md sections describe the code as it is; "
          f"{len(sections) - fresh - stale} say they do not; {stale} are stale without saying so")
    return 1 if stale or not sections else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
