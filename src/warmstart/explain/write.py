"""Writing an explanation directory: ``explain.html`` (self-contained), ``faithfulness.json`` (the AUC
table, read by a study's report), ``attributions.safetensors`` (the raw attributions and per-example AUCs)
and the figures as PNG. Everything is written into a temporary sibling directory that is renamed into
place at the end, so a failure leaves nothing half-written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from warmstart.checkpoint import atomic_write_bytes, atomic_write_text, save_tensors
from warmstart.explain.figures import curves_png, maps_png

FAITHFULNESS_FILE = "faithfulness.json"


def padded(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack equal-shaped arrays, or flatten and pad unequal ones (tokens) with NaN."""
    if len({a.shape for a in arrays}) == 1:
        return torch.as_tensor(np.stack(arrays), dtype=torch.float32)
    width = max(a.size for a in arrays)
    out = np.full((len(arrays), width), np.nan, np.float32)
    for i, a in enumerate(arrays):
        out[i, :a.size] = a.reshape(-1)
    return torch.from_numpy(out)


def colouring(result, r) -> tuple[np.ndarray, list[str], str]:
    from warmstart.study.embeddings import colour_values
    from warmstart.tasks import TASKS

    bundle = r.subject.bundle
    values, names = colour_values(TASKS.get(result.task), bundle)
    return values, names, bundle.target_names[0] if result.task == "regress" else ""


def figures(result, seed: int) -> tuple[dict[str, bytes], list[dict], str]:
    """The PNGs (file name -> bytes), each model's curves file, and the embedding maps' file ("" if none)."""
    from warmstart.explain.figures import map_rows

    pngs, names = {}, []
    for i, r in enumerate(result.results):
        names.append({"curves": f"curves_{i}.png"})
        pngs[names[-1]["curves"]] = curves_png(r.subject.label, r.faithfulness)
    if not result.results[0].maps:
        return pngs, names, ""
    values, classes, value_name = colouring(result, result.results[0])
    shown = values[map_rows(len(values), seed)]
    pngs["maps.png"] = maps_png([(r.subject.label, r.maps) for r in result.results], shown, classes, value_name)
    return pngs, names, "maps.png"


def table_rows(r) -> list[dict]:
    rows = []
    for name, s in r.faithfulness.items():
        row = {"ranking": name, "deletion_auc": round(s["deletion_auc"], 4),
               "insertion_auc": round(s["insertion_auc"], 4), "seconds": round(r.seconds.get(name, 0.0), 3)}
        if name in r.versus:
            row.update({f"{c}_vs_random": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}
                        for c, d in r.versus[name].items()})
        rows.append(row)
    return rows


def summary(result, files: list[dict], maps: str) -> dict:
    first = result.results[0].explained
    return {
        "task": result.task, "data": result.data, "n": len(result.rows), "rows": [int(r) for r in result.rows],
        "methods": result.methods, "correct": sum(e.correct is True for e in first),
        "wrong": sum(e.correct is False for e in first), "wall_s": round(result.wall_s, 2),
        "cpu_s": round(result.cpu_s, 2), "maps_png": maps,
        "models": [{"label": r.subject.label, "run_dir": str(r.subject.run_dir), "table": table_rows(r),
                    "curves_png": f["curves"], "curve_seconds": round(r.seconds["curves"], 3)}
                   for r, f in zip(result.results, files)],
    }


def tensors(result) -> tuple[dict[str, torch.Tensor], dict]:
    out = {"rows": torch.as_tensor(np.asarray(result.rows, np.int64))}
    units = {}
    for r in result.results:
        key = r.subject.label
        for method in result.methods:
            out[f"{key}/{method}/units"] = padded(r.attributions[method])
            out[f"{key}/{method}/units_true"] = padded(r.true_attributions[method])
            out[f"{key}/{method}/input"] = padded(r.raw[method])
        for name, s in r.faithfulness.items():
            out[f"{key}/{name}/deletion_auc"] = torch.as_tensor(s["deletion"], dtype=torch.float32)
            out[f"{key}/{name}/insertion_auc"] = torch.as_tensor(s["insertion"], dtype=torch.float32)
        out[f"{key}/weight"] = torch.as_tensor(r.faithfulness["random"]["weights"], dtype=torch.float32)
        units[key] = [e.names for e in r.examples]
    meta = {"models": [r.subject.label for r in result.results], "methods": result.methods,
            "unit_names": units, "task": result.task, "data": result.data,
            "predictions": {r.subject.label: [e.prediction for e in r.explained] for r in result.results},
            "truths": [e.truth for e in result.results[0].explained]}
    return out, meta


def write_explanations(result, path: Path, seed: int) -> None:
    from warmstart.explain.render import render_html

    pngs, files, maps = figures(result, seed)
    info = summary(result, files, maps)
    temporary = path.parent / f".{path.name}.partial"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        for name, data in pngs.items():
            atomic_write_bytes(temporary / name, data)
        atomic_write_text(temporary / FAITHFULNESS_FILE, json.dumps(info, indent=2))
        save_tensors(temporary / "attributions.safetensors", *tensors(result))
        atomic_write_text(temporary / "explain.html", render_html(result, info, pngs))
        if path.is_dir():
            path.rmdir()  # checked empty before any work
        temporary.rename(path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
