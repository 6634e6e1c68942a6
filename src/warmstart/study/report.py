"""The study report: ``report.md`` and a self-contained ``report.html`` (PNGs embedded), from a study dir.

It reads only what the study wrote — ``results.csv``, ``cells/*.json`` (confusion matrices),
``study.yaml``, ``study_info.json`` and ``pretrain/*/`` (the embedding map, pretraining cost) — and
recomputes nothing, so ``warmstart report RUN_DIR`` is instant. Sections whose inputs are missing say so.
The statistics (mean, 95% t-interval, labels saved) live in ``summary.py``; this file lays them out.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from warmstart.checkpoint import atomic_write_bytes, atomic_write_text, load_tensors
from warmstart.config import read_yaml
from warmstart.errors import UserError
from warmstart.study.plots import confusion_png, curve_png, embedding_png, sweep_png
from warmstart.study.summary import PRETRAINED_KINDS, Summary, read_results, study_metrics

# --- the document ---------------------------------------------------------------------------------


def _count(n, noun: str) -> str:
    """``1 epoch``, ``5 epochs``: the protocol paragraphs said "runs 1 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

def _doc(obj: Any) -> str:
    """First paragraph of a registered thing's docstring, on one line (so the protocol follows the code)."""
    text = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
    return " ".join(text.replace("``", "").split()).rstrip(".")


def read_cells(run_dir: Path) -> dict[tuple[str, str, int], dict]:
    """Every finished cell's record (``cells/*.json``: its row, with what results.csv leaves out, e.g. the
    confusion matrix), keyed by ``(method, budget, seed)``."""
    found = {}
    for path in sorted((run_dir / "cells").glob("*.json")):
        cell = json.loads(path.read_text())
        found[cell["method"], cell["budget"], int(cell["seed"])] = cell
    return found


def validation_protocol(summary: Summary, info: dict, run_dir: Path | None) -> list[str]:
    """What was chosen on what: the validation rows, the epochs kept, the recipes' choices."""
    from warmstart.data.validation import Validation

    spec = Validation.parse(info.get("validation", "none"))
    rows = info.get("validation_rows", {})
    sizes = ", ".join(f"{n} at {b}" for b, n in rows.items()) or "0"
    if spec.mode == "none":
        text = ("Validation: none. No choice was made on data — every fine-tune kept its last epoch — and "
                "the best method per budget is marked by test score, which describes the results and selects nothing.")
    else:
        where = "held out of the label budget" if spec.mode == "budget" else "drawn beyond the label budget"
        kept = _kept_epochs(run_dir) if run_dir is not None else ""
        text = (f"Validation ({spec}): labeled training rows {where} ({sizes}), stratified like the budget, the "
                "same for every method at a budget and seed. No method trains on them or on their labels; every "
                "method is scored on them (val column of results.csv). Each fine-tune kept the weights with the "
                f"best validation score{kept}, and the best method per budget is marked by validation score. The "
                "test split was read once per cell, by its final evaluation.")
    out = [text]
    for asked, recipe in info.get("recipes", {}).items():
        out.append(f"Recipe {asked}: ran {recipe['ran']} — {recipe['summary']} Why: {recipe['why']}.")
    return out


def pretrain_dirs(run_dir: Path, info: dict) -> list[Path]:
    """The pretraining run directories the study used (older studies: everything in ``RUN_DIR/pretrain``)."""
    root = Path(info.get("pretrain_dir") or run_dir / "pretrain")
    if "pretrain_runs" in info:
        return [root / name for name in info["pretrain_runs"]]
    return sorted(p for p in (run_dir / "pretrain").glob("*") if p.is_dir())


def _pretraining_runs(run_dir: Path, info: dict) -> list[tuple[str, str, str, Any]]:
    """``(label, objective, encoder, epochs)`` of each pretraining run the study made."""
    found = []
    for path in [d / "config.yaml" for d in pretrain_dirs(run_dir, info) if (d / "config.yaml").is_file()]:
        settings = read_yaml(path)
        found.append((path.parent.name, settings.get("objective", "?"), settings.get("encoder", "?"),
                      settings.get("epochs", "?")))
    return found


def _kept_epochs(run_dir: Path) -> str:
    kept = [(c.get("validation") or {}) for c in read_cells(run_dir).values()]
    kept = [k for k in kept if "epoch" in k]
    if not kept:
        return ""
    last = sum(k["epoch"] == k["of_epochs"] for k in kept)
    return f" (the last epoch in {last} of {len(kept)} fine-tunes, an earlier one in the others)"


def protocol(summary: Summary, config: dict, info: dict, run_dir: Path | None = None) -> list[str]:
    """The protocol in words, from the saved settings and the registries' own descriptions."""
    from warmstart.baselines import BASELINES
    from warmstart.objectives import OBJECTIVES
    from warmstart.strategies import STRATEGIES

    from warmstart.tasks import TASKS

    seeds = sorted({r["seed"] for r in summary.rows})
    budgets = ", ".join(f"{summary.labels[b]} ({b})" for b in summary.budgets)
    fine = config.get("finetune", {})
    shape = "×".join(str(d) for d in info.get("input_shape", []))
    shape = f" {shape}" if shape else ""  # text has no input shape
    task = info.get("task", "classify")
    labels = (f"targets {', '.join(info.get('target_names', []))}" if info.get("target_names") else
              f"{len(info.get('class_names', []))} {'entity types' if task == 'tag' else 'classes'}")
    direction = "higher" if summary.higher_is_better else "lower"
    paragraphs = [
        f"Data: {config.get('data', '?')} ({info.get('modality', '?')} inputs{shape}, {labels}), "
        f"{info.get('n_train', '?')} training and {info.get('n_test', '?')} test examples. The test split is fixed "
        "and is never seen by pretraining, fine-tuning or any choice made here; every test score is on all of it.",
        f"Task: {task} — {TASKS.get(task).description if task in TASKS else '?'}. Methods are ranked by "
        f"{summary.metric} ({direction} is better).",
        f"Label budgets: {budgets}. For each budget and each seed in {seeds}, a stratified labeled subset is "
        "drawn from the training split with that seed; every method at that budget and seed gets exactly these "
        "labeled examples (the labeled_hash column of results.csv shows it). The rest of the training split is "
        "the unlabeled pool: its labels are withheld from every method.",
    ]
    runs = _pretraining_runs(run_dir, info) if run_dir is not None else []
    if runs:
        names = sorted({objective for _, objective, _, _ in runs})
        how = "once per run and seed" if config.get("pretrain_per_seed") else "once per run (seed 0)"
        described = "; ".join(f"{n}: {_doc(OBJECTIVES.get(n))}" for n in names if n in OBJECTIVES)
        listed = ", ".join(f"{label} ({objective}, {encoder} encoder, {_count(epochs, 'epoch')})"
                           for label, objective, encoder, epochs in runs)
        paragraphs.append(
            f"Pretraining ({described}) reads all {info.get('n_train', '?')} training inputs without labels, "
            f"{how} (AdamW, warm-up then cosine decay): {listed}. Each encoder is reused by every budget, "
            "strategy and seed.")
    strategies = sorted({r["strategy"] for r in summary.rows if r["kind"] != "baseline"})
    described = "; ".join(f"{s}: {_doc(STRATEGIES.get(s))}" for s in strategies if s in STRATEGIES)
    paragraphs.append(
        f"Fine-tuning ({described}) runs {_count(fine.get('epochs', '?'), 'epoch')} over the labeled subset (batch "
        f"{fine.get('batch_size', '?')}, AdamW, peak LR {fine.get('lr', '?')}), seeded by the cell's seed.")
    baselines = sorted({r["strategy"] for r in summary.rows if r["kind"] == "baseline"})
    if baselines:
        described = "; ".join(f"{b}: {_doc(BASELINES.get(b).fit_predict)}" for b in baselines if b in BASELINES)
        paragraphs.append(f"Classical baselines (warmstart.baselines, with the settings a user gets; on the same "
                          f"labeled rows): {described}.")
    paragraphs += validation_protocol(summary, info, run_dir)
    paragraphs += _privacy_protocol(summary.rows, config)
    paragraphs.append(
        f"Intervals are 95% Student-t intervals over the {len(seeds)} seeds (mean ± t·s/√n, s with ddof=1). "
        f"Labels saved: the labels scratch would need for the same mean {summary.metric}, interpolated linearly in "
        "log-labels on its mean curve, divided by the method's own labels.")
    return paragraphs


def _privacy_protocol(rows: list[dict], config: dict) -> list[str]:
    """The privacy protocol in words, when fine-tuning ran DP-SGD."""
    spent = [r for r in rows if not np.isnan(r.get("epsilon", float("nan")))]
    if not spent:
        return []
    fine, pre = config.get("finetune", {}).get("privacy") or {}, config.get("pretrain", {}).get("privacy") or {}
    delta = sorted({r["delta"] for r in spent})
    pool = ("The pretraining pool is private too: pretraining ran DP-SGD on its objective "
            f"(target ε {pre.get('epsilon')}, noise multiplier {pre.get('noise_multiplier')}), and the two budgets "
            "add up (sequential composition) for rows that are both in the pool and labeled."
            if pre.get("private_pool") else
            "The pretraining pool is treated as public: pretraining costs no privacy, and the ε shown covers the "
            "labeled rows' fine-tuning only.")
    return [f"Privacy: fine-tuning is DP-SGD (Opacus): Poisson-sampled batches, each example's gradient clipped to "
            f"norm {fine.get('max_grad_norm', 1.0)}, Gaussian noise added each step; the labeled rows are the private "
            f"data, with δ = {', '.join(f'{d:g}' for d in delta)} and ε from the {fine.get('accountant', 'prv')} "
            f"accountant. {pool} The classical baselines are not private; they are shown for scale."]


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


# --- rendering ------------------------------------------------------------------------------------

def to_markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(f"{'#' if kind == 'h1' else '##'} {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})\n\n*{block[2]}*")
        elif kind == "table":
            _, header, body, bold = block
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(f"**{c}**" if (i, j) in bold else c for j, c in enumerate(r)) + " |"
                      for i, r in enumerate(body)]
            out.append("\n".join(lines))
        elif kind == "details":
            out.append(f"<details><summary>{block[1]}</summary>\n\n{to_markdown(block[2])}\n</details>")
    return "\n\n".join(out) + "\n"


STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f4f4f4}td.best{background:#e6f4ea;font-weight:bold}figure{margin:1em 0}
img{max-width:100%}figcaption{font-size:.85em;color:#555}details{margin:.8em 0}"""


def to_html(blocks: list[tuple], pngs: dict[str, bytes], title: str) -> str:
    def render(items: list[tuple]) -> list[str]:
        out: list[str] = []
        for block in items:
            kind = block[0]
            if kind in ("h1", "h2"):
                out.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
            elif kind == "p":
                out.append(f"<p>{html.escape(block[1])}</p>")
            elif kind == "img":
                data = base64.b64encode(pngs[block[1]]).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}">'
                           f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
            elif kind == "table":
                _, header, body, bold = block
                rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
                rows += ["<tr>" + "".join((f'<td class="best">{html.escape(c)} ★</td>' if (i, j) in bold
                                           else f"<td>{html.escape(c)}</td>") for j, c in enumerate(r)) + "</tr>"
                         for i, r in enumerate(body)]
                out.append("<table>" + "".join(rows) + "</table>")
            elif kind == "details":
                out.append(f"<details><summary>{html.escape(block[1])}</summary>{''.join(render(block[2]))}</details>")
        return out

    body = "\n".join(render(blocks))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


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
