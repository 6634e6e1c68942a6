"""The study report: ``report.md`` and a self-contained ``report.html`` (PNGs embedded), from a study dir.

It reads only what the study wrote — ``results.csv``, ``cells/*.json`` (confusion matrices),
``study.yaml``, ``study_info.json`` and ``pretrain/*/`` (the embedding map, pretraining cost) — and
recomputes nothing, so ``warmstart report RUN_DIR`` is instant. Sections whose inputs are missing say so.
The statistics (mean, 95% t-interval, labels saved) live in ``summary.py``, the Protocol section's text in
``protocol.py`` and the Markdown and HTML renderers in ``render.py``; this file lays the sections out.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from warmstart.checkpoint import atomic_write_bytes, atomic_write_text, load_tensors
from warmstart.config import read_yaml
from warmstart.errors import UserError
from warmstart.study.files import pretrain_dirs, read_cells
from warmstart.study.plots import confusion_png, curve_png, embedding_png, sweep_png
from warmstart.study.protocol import protocol
from warmstart.study.render import to_html, to_markdown
from warmstart.study.summary import PRETRAINED_KINDS, Summary, read_results, study_metrics


def _sweep(summary: Summary, rows: list[dict], config: dict, pngs: dict) -> list[tuple]:
    """The primary metric versus the swept setting, one line per method and budget, and the ε each cell spent."""
    swept = [r for r in rows if r.get("setting")]
    if not swept:
        return []
    key = swept[0]["setting"].split("=")[0]
    values: dict[str, float] = {}
    for r in swept:
        raw = r["setting"].split("=", 1)[1]
        try:
            values[r["setting"]] = float(raw)
        except ValueError:
            return [("h2", f"Sweep of {key}"), ("p", "The swept values are not numbers; see the tables above.")]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for method in summary.methods:
        setting = next((r["setting"] for r in swept if r["method"] == method), None)
        if setting is None:
            continue
        base = method[: -len(f"[{setting}]")]
        for budget in summary.budgets:
            if (method, budget) in summary.stat:
                stat = summary.stat[method, budget]
                label = base if len(summary.budgets) == 1 else f"{base}, {summary.labels[budget]} labels"
                lines.setdefault(label, []).append((values[setting], stat.mean, stat.ci))
    private = key == "privacy.epsilon"
    xlabel = "target ε (privacy budget of the labeled rows; log scale)" if private else key
    pngs["sweep.png"] = sweep_png(lines, xlabel, f"test {summary.metric}", log_x=private or min(values.values()) > 0)
    what = "accuracy-versus-ε" if private else f"{summary.metric}-versus-{key}"
    blocks = [("h2", f"{summary.metric} versus {key}"),
              ("img", "sweep.png", f"the {what} curve: mean over seeds with 95% CI bands, one line per method "
               "and label budget")]
    spent = [r for r in swept if not np.isnan(r.get("epsilon", float("nan")))]
    if spent:
        header = ["method"] + [f"{summary.labels[b]} labels" for b in summary.budgets]
        table = [[m] + [f"{max(r['epsilon'] for r in spent if r['method'] == m and r['budget'] == b):.2f}"
                        if any(r["method"] == m and r["budget"] == b for r in spent) else "—"
                        for b in summary.budgets]
                 for m in summary.methods if any(r["method"] == m for r in spent)]
        blocks += [("p", "ε spent by each private method (largest over seeds), as the accountant reported it:"),
                   ("table", header, table, set())]
    return blocks


def _scores(summary: Summary, rows: list[dict], metrics: list[str], pngs: dict) -> list[tuple]:
    """The curve, the primary metric's table (best per budget in bold) and the other metrics' tables."""
    metric, lower = summary.metric, "" if summary.higher_is_better else ", lower is better"
    pngs["curve.png"] = curve_png(summary)
    header = ["method"] + [f"{summary.labels[b]} labels" for b in summary.budgets]
    table = [[m] + [summary.cell_text(m, b) for b in summary.budgets] for m in summary.methods]
    bold = {(i, j + 1) for i, m in enumerate(summary.methods) for j, b in enumerate(summary.budgets)
            if summary.best(b) == m}
    blocks = [("h2", "Label-efficiency curve"),
              ("img", "curve.png", f"{metric} versus labels, one line per method, 95% CI bands"
               if len(summary.budgets) > 1 else f"one budget: {metric} per method, 95% CI"),
              ("h2", f"Test {metric} (mean ± 95% CI over seeds{lower}; best per budget by "
                     f"{summary.selected_on(summary.budgets[0])} score in bold)"),
              ("table", header, table, bold)]
    for other in [m for m in metrics if m != metric and m in rows[0]]:
        s = Summary(rows, other)
        blocks.append(("details", f"{other} (mean ± 95% CI)",
                       [("table", header, [[m] + [s.cell_text(m, b) for b in s.budgets] for m in s.methods], set())]))
    pretrained = [m for m in summary.methods if summary.kind[m] == "pretrained"]
    if pretrained and "scratch" in summary.kind:
        blocks += [("h2", "Labels saved by pretraining"),
                   ("p", f"How many more labels scratch needs to match each pretrained method's mean {metric} "
                         "(≤ 1.0× means no saving; > max budget: scratch never got there within this study)."),
                   ("table", header, [[m] + [summary.labels_saved(m, b) if (m, b) in summary.stat else "—"
                                             for b in summary.budgets] for m in pretrained], set())]
    return blocks


def _confusion(summary: Summary, run_dir: Path, class_names: list[str], pngs: dict) -> list[tuple]:
    """The best method's confusion matrix at the smallest budget, summed over seeds (classification only)."""
    smallest = summary.budgets[0]
    top = summary.best(smallest)
    matrices = [np.array(c["confusion_matrix"]) for (m, b, _s), c in read_cells(run_dir).items()
                if m == top and b == smallest and "confusion_matrix" in c]
    if not matrices:
        return []
    total = np.sum(matrices, axis=0)
    names = class_names if len(class_names) == len(total) else [str(i) for i in range(len(total))]
    pngs["confusion.png"] = confusion_png(total, names, f"{top}, {summary.labels[smallest]} labels, "
                                          f"summed over {len(matrices)} seed{'s' if len(matrices) != 1 else ''}")
    return [("h2", "Confusion matrix"),
            ("img", "confusion.png", f"confusion matrix of {top}, the best method at the smallest budget "
             f"({summary.labels[smallest]} labels), test predictions summed over seeds")]


def _task_sections(task_name: str, run_dir: Path, summary: Summary, pngs: dict) -> list[tuple]:
    """What the task itself adds to the report (``Task.report_sections``; e.g. predicted masks and boxes)."""
    from warmstart.tasks import TASKS

    if task_name not in TASKS:
        return []
    blocks, extra = TASKS.get(task_name).report_sections(run_dir, summary)
    pngs.update(extra)
    return blocks


def _embedding(summary: Summary, run_dir: Path, class_names: list[str], pngs: dict, info: dict) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Test embeddings of the best pretrained encoder")]
    best_pre = summary.best_overall(PRETRAINED_KINDS)
    objective = None
    if best_pre is not None and summary.kind[best_pre] == "recipe":  # the recipe's first pretraining run
        objective = (info.get("recipes", {}).get(best_pre.removeprefix("recipe:"), {}).get("runs") or [None])[0]
    elif best_pre is not None:
        objective = best_pre.split("+")[0]
    names = () if objective is None else (objective, f"{objective}-seed0")
    root = Path(info.get("pretrain_dir") or run_dir / "pretrain")
    found = [path for path in (root / name / "embedding.safetensors" for name in names) if path.is_file()]
    if not found:
        return blocks + [("p", "No pretrained encoder in this study, or its embedding file is missing.")]
    tensors, meta = load_tensors(found[0])
    variance = meta.get("explained_variance", [])
    names = meta.get("class_names", class_names)
    coloured = f"coloured by {meta['coloured_by']}" if meta.get("coloured_by") else "coloured by true class"
    title = f"{objective} encoder (best pretrained: {best_pre}), PCA of test features"
    pngs["embedding.png"] = embedding_png(tensors["xy"].numpy(), tensors["y"].numpy(), names, title,
                                          meta.get("coloured_by", ""))
    return blocks + [("img", "embedding.png", f"PCA of the {objective} encoder's test-set features before "
                      f"fine-tuning, {coloured} (variance explained: "
                      + ", ".join(f"PC{i + 1} {v:.1%}" for i, v in enumerate(variance)) + ")")]


def _explanations(summary: Summary, run_dir: Path, pngs: dict, info: dict) -> list[tuple]:
    """The Explanations section (``warmstart.explain.study``; it needs no Captum to be read back)."""
    from warmstart.explain.study import report_blocks

    return report_blocks(run_dir, pngs, info, summary.selected_on(summary.budgets[0], PRETRAINED_KINDS))


def _compute(summary: Summary, run_dir: Path, rows: list[dict], info: dict) -> list[tuple]:
    pre_rows = []
    infos = [d / "pretrain_info.json" for d in pretrain_dirs(run_dir, info)]
    for path in [p for p in infos if p.is_file()]:
        p = json.loads(path.read_text())
        loss = p.get("final_loss")
        pre_rows.append([path.parent.name, f"{p['wall_s']:.1f}", f"{p['images_per_s']:.0f}",
                         "—" if loss is None else f"{loss:.4f}"])
    blocks: list[tuple] = [("h2", "Compute")]
    if pre_rows:
        blocks += [("p", "Pretraining, once per encoder (shared by its cells):"),
                   ("table", ["pretraining run", "wall s", "examples/s", "final loss"], pre_rows, set())]
    header = ["method"] + [f"{summary.labels[b]} labels" for b in summary.budgets]
    wall = [[m] + [f"{np.mean([r['wall_s'] for r in rows if r['method'] == m and r['budget'] == b]):.2f}"
                   if (m, b) in summary.stat else "—" for b in summary.budgets] for m in summary.methods]
    total = sum(r["wall_s"] for r in rows) + sum(float(p[1]) for p in pre_rows)
    blocks += [("p", f"Mean wall seconds per cell (fine-tuning + test evaluation, or the baseline's fit + predict); "
                     f"the whole study took {total:.0f} s of compute."),
               ("table", header, wall, set())]
    metric = summary.metric
    per_cell = [[r["method"], str(r["labels"]), str(r["seed"]), f"{r[metric]:.4f}", f"{r['wall_s']:.2f}",
                 f"{r['images_per_s']:.0f}"] for r in rows]
    return blocks + [("details", f"Every cell ({len(rows)})",
                      [("table", ["method", "labels", "seed", metric, "wall s", "examples/s"], per_cell, set())])]


def build_blocks(run_dir: Path) -> tuple[list[tuple], dict[str, bytes]]:
    """The report as renderer-neutral blocks, and the PNGs it refers to (file name -> bytes)."""
    rows = read_results(run_dir)
    metric, higher, metrics = study_metrics(run_dir)
    summary = Summary(rows, metric, higher)
    config = read_yaml(run_dir / "study.yaml") if (run_dir / "study.yaml").is_file() else {}
    info_path = run_dir / "study_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    class_names = info.get("class_names") or []
    pngs: dict[str, bytes] = {}
    blocks: list[tuple] = [("h1", f"warmstart study: {config.get('data', run_dir.name)}")]
    best = [f"{summary.labels[b]} labels: {summary.best(b)} (test {summary.stat[summary.best(b), b].mean:.3f})"
            for b in summary.budgets]
    on = summary.selected_on(summary.budgets[0])
    blocks += [("p", f"Best method per budget by {on} {metric} — " + "; ".join(best) + ".")]
    blocks += [("h2", "Protocol")] + [("p", text) for text in protocol(summary, config, info, run_dir)]
    blocks += _scores(summary, rows, metrics, pngs)
    blocks += _sweep(summary, rows, config, pngs)
    blocks += _confusion(summary, run_dir, class_names, pngs)
    blocks += _task_sections(info.get("task", "classify"), run_dir, summary, pngs)
    blocks += _embedding(summary, run_dir, class_names, pngs, info)
    blocks += _explanations(summary, run_dir, pngs, info)
    blocks += _compute(summary, run_dir, rows, info)
    return blocks, pngs


def write_report(run_dir: str | Path) -> Path:
    """Render ``report.md``, ``report.html`` and the PNGs in ``run_dir`` from what the study saved."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory; point to a `warmstart study` output directory")
    blocks, pngs = build_blocks(run_dir)
    for name, data in pngs.items():
        atomic_write_bytes(run_dir / name, data)
    atomic_write_text(run_dir / "report.md", to_markdown(blocks))
    atomic_write_text(run_dir / "report.html", to_html(blocks, pngs, blocks[0][1]))
    return run_dir / "report.html"
