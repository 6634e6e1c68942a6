"""The study report's Protocol section in words: the data, task, budgets, pretraining, fine-tuning, baselines,
validation and privacy, from the saved settings and the registries' own descriptions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from warmstart.config import read_yaml
from warmstart.study.files import pretrain_dirs, read_cells
from warmstart.study.summary import Summary


def _count(n, noun: str) -> str:
    """``1 epoch``, ``5 epochs``: the protocol paragraphs said "runs 1 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _doc(obj: Any) -> str:
    """First paragraph of a registered thing's docstring, on one line (so the protocol follows the code)."""
    text = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
    return " ".join(text.replace("``", "").split()).rstrip(".")


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

