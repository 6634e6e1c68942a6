"""``bench/check_stale.py``: a BENCHMARKS.md section is stale once the code it measured has changed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import check_stale  # noqa: E402
import revision  # noqa: E402


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A checkout with one bench script measuring src/a.py, and a section written at the first commit."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "bench" / "speed.py").write_text('MEASURES = ["src/a.py"]\n')
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "src" / "b.py").write_text("y = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "empty")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code")
    monkeypatch.setattr(revision, "ROOT", tmp_path)
    (tmp_path / "BENCHMARKS.md").write_text(
        f"# Benchmarks\n\n<!-- bench:speed -->\nfigures\n\n{revision.stamp(tmp_path / 'bench/speed.py')}\n"
        "<!-- /bench:speed -->\n")
    return tmp_path


def commit(root: Path, path: str, text: str) -> None:
    (root / path).write_text(text)
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", f"change {path}")


def test_a_section_is_fresh_until_a_file_it_measures_changes(repo, capsys):
    assert check_stale.main([]) == 0
    commit(repo, "src/b.py", "y = 2\n")  # not measured: still fresh
    assert check_stale.main([]) == 0
    commit(repo, "src/a.py", "x = 2\n")
    assert check_stale.main([]) == 1
    assert "stale: speed: measured at" in capsys.readouterr().out


def test_a_change_to_the_script_itself_counts(repo):
    commit(repo, "bench/speed.py", 'MEASURES = ["src/a.py"]\nSTEPS = 2\n')
    assert check_stale.main([]) == 1


def test_a_commit_made_while_a_bench_ran_leaves_its_section_stale(repo, capsys):
    started = revision.head()
    commit(repo, "src/a.py", "x = 2\n")  # committed mid-run: the running script measured x = 1
    line = revision.stamp(repo / "bench/speed.py", started)  # what write_section writes when the run ends
    assert f"`{started}`" in line
    (repo / "BENCHMARKS.md").write_text(f"<!-- bench:speed -->\nfigures\n\n{line}\n<!-- /bench:speed -->\n")
    assert check_stale.main([]) == 1
    assert "stale: speed" in capsys.readouterr().out


def test_dirty_missing_and_unlisted_stamps_are_stale(repo, capsys):
    (repo / "src" / "a.py").write_text("x = 3\n")  # measured with an uncommitted change
    assert "-dirty" in revision.stamp(repo / "bench/speed.py")
    text = (repo / "BENCHMARKS.md").read_text()
    (repo / "BENCHMARKS.md").write_text(text.replace("Measured at", "Measured on"))
    assert check_stale.main([]) == 1
    assert "records no revision" in capsys.readouterr().out
    commit(repo, "bench/speed.py", 'MEASURES = ["src/gone.py"]\n')
    (repo / "BENCHMARKS.md").write_text(text)
    assert check_stale.main([]) == 1
    assert "src/gone.py" in capsys.readouterr().out


def test_an_acknowledged_section_passes_until_its_code_changes_again(repo, capsys):
    commit(repo, "src/a.py", "x = 2\n")
    assert check_stale.main([]) == 1
    assert check_stale.main(["--acknowledge", "speed", "--reason", "an hour of CPU"]) == 0
    text = (repo / "BENCHMARKS.md").read_text()
    head = git(repo, "rev-parse", "--short", "HEAD")
    assert (f"**Stale:** the code this section measures has changed since; not re-measured as of revision "
            f"`{head}` (an hour of CPU).") in text  # visible to readers
    assert check_stale.main([]) == 0
    assert f"acknowledged at {head}: speed: measured at" in capsys.readouterr().out
    git(repo, "add", "BENCHMARKS.md")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "acknowledge")
    assert check_stale.main([]) == 0  # committing the acknowledgement does not undo it
    commit(repo, "src/a.py", "x = 3\n")
    assert check_stale.main([]) == 1  # a later change needs a new measurement or a new acknowledgement
    assert check_stale.main(["--acknowledge", "speed", "--reason", "still an hour"]) == 0
    assert (repo / "BENCHMARKS.md").read_text().count("**Stale:**") == 1  # replaced, not stacked
    assert check_stale.main([]) == 0


def test_acknowledging_needs_a_reason_a_known_section_and_committed_code(repo):
    with pytest.raises(SystemExit):
        check_stale.main(["--acknowledge", "speed"])
    with pytest.raises(SystemExit, match="no section 'sped'"):
        check_stale.main(["--acknowledge", "sped", "--reason", "r"])
    (repo / "src" / "a.py").write_text("x = 4\n")
    with pytest.raises(SystemExit, match="uncommitted changes"):
        check_stale.main(["--acknowledge", "speed", "--reason", "r"])
