"""A study's "Explanations" section: the best pretrained method and scratch at the smallest budget (seed 0),
fine-tuned again into ``explain-models/`` (same seed and settings as their cells, so the same model), then
explained together into ``explain/``. The report reads ``explain/faithfulness.json`` and its PNGs and
recomputes nothing; without the ``explain`` extra the study runs and reports as before, saying so.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from warmstart.explain.write import FAITHFULNESS_FILE

EXPLAIN_DIR = "explain"
MODELS_DIR = "explain-models"


def explain_problem(task, modality: str) -> str:
    """Why a study of ``task`` on ``modality`` data has no Explanations section ("" when it has one)."""
    from warmstart.explain.views import VIEWS
    from warmstart.tasks.base import Task

    if modality not in VIEWS:
        return f"explain does not handle {modality} data yet"
    if type(task).explain_outputs is Task.explain_outputs:
        return f"the {task.name} task does not say which output to explain yet"
    return ""


def _study_problem(info: dict) -> str:
    from warmstart.tasks import TASKS

    task, modality = info.get("task"), info.get("modality")
    if task not in TASKS or not modality:
        return ""
    return explain_problem(TASKS.get(task), modality)


def captum_available() -> bool:
    try:
        import captum  # noqa: F401
    except ImportError:
        return False
    return True


def explained_cells(runner, rows: list[dict]) -> list:
    """The seed-0 cells of the best pretrained method or recipe (by the report's rule: mean validation score,
    or mean test score without validation rows) and of scratch (at the same sweep value, in a sweep), at the
    smallest budget."""
    from warmstart.study.summary import PRETRAINED_KINDS, Summary

    task = runner.task
    summary = Summary(rows, task.primary, task.higher_is_better)
    smallest = summary.budgets[0]
    best = summary.best(smallest, PRETRAINED_KINDS)
    sweep = best[best.index("["):] if best and "[" in best else ""  # a sweep's scratch carries the same value
    wanted = [m for m in (best, f"scratch{sweep}") if m is not None]
    seed = min(r["seed"] for r in rows)
    by_method = {c.method: c for c in runner.plan.cells if c.budget == smallest and c.seed == seed}
    return [by_method[m] for m in wanted if m in by_method]


def explain_study(runner, rows: list[dict]) -> None:
    """Fine-tune the explained cells' models (once) and explain them into ``OUT/explain`` (once)."""
    from warmstart.explain import explain

    out, config = runner.out, runner.config
    target = out / EXPLAIN_DIR
    if (target / FAITHFULNESS_FILE).is_file():
        return
    problem = explain_problem(runner.task, runner.data.modality)
    if problem:
        runner.echo(f"explanations skipped: {problem}")
        return
    if not captum_available():
        runner.echo("explanations skipped: pip install 'warmstart[explain]' to add them to the report")
        return
    cells = explained_cells(runner, rows)
    if not cells:
        return
    runner.echo(f"explaining {', '.join(c.method for c in cells)} at {cells[0].budget} (seed {cells[0].seed})")
    dirs = []
    for cell in cells:
        run_dir = out / MODELS_DIR / cell.method.replace("+", "-")
        if not (run_dir / "model.safetensors").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)  # a fine-tune killed midway starts again
            runner.finetune_cell(cell, run_dir)
        dirs.append(run_dir)
    shutil.rmtree(target, ignore_errors=True)  # no faithfulness.json: whatever is there is incomplete
    explain(dirs, runner.data, target, n=min(config.explain, len(runner.data.y_test)), seed=0,
            labels=[c.method for c in cells])


def report_blocks(run_dir: Path, pngs: dict[str, bytes], info: dict | None = None,
                  chosen_on: str = "test") -> list[tuple]:
    """The report's blocks for ``run_dir/explain`` (the AUC table, the curves and the embedding maps); without
    them, why not: the study's task or data (``info``, its ``study_info.json``) or a missing extra.
    ``chosen_on`` ("validation" or "test") is the score the explained pretrained method was chosen by."""
    path = Path(run_dir) / EXPLAIN_DIR / FAITHFULNESS_FILE
    blocks: list[tuple] = [("h2", "Explanations")]
    if not path.is_file():
        problem = _study_problem(info or {})
        if problem:
            return blocks + [("p", f"Not computed: {problem}.")]
        return blocks + [("p", "Not computed: studies add explanations when the explain extra is installed "
                               "(pip install 'warmstart[explain]') and explain is not 0.")]
    info = json.loads(path.read_text())
    labels = " and ".join(m["label"] for m in info["models"])
    which = (f"the pretrained method is the best at that budget by mean {chosen_on} score, as above"
             if len(info["models"]) > 1 else "the study has no pretrained method")
    blocks.append(("p", f"{labels} at the smallest budget (seed 0; {which}), "
                        f"explained on {info['n']} test rows ({info['correct']} right, "
                        f"{info['wrong']} wrong for the first model) in {info['wall_s']:.0f} s; every map with "
                        f"examples is in {EXPLAIN_DIR}/explain.html. Deletion AUC: lower is more faithful; "
                        "insertion AUC: higher; 'vs random' is the gain over a random ranking with its 95% "
                        "bootstrap interval."))
    header = ["model", "ranking", "deletion AUC", "vs random", "insertion AUC", "vs random"]
    body = []
    for m in info["models"]:
        for row in m["table"]:
            versus = [row.get(f"{c}_vs_random") for c in ("deletion", "insertion")]
            cells = [f"{v['gain']:+.3f} ({v['verdict']})" if v else "—" for v in versus]
            body.append([m["label"], row["ranking"], f"{row['deletion_auc']:.3f}", cells[0],
                         f"{row['insertion_auc']:.3f}", cells[1]])
    blocks.append(("table", header, body, set()))
    figures = [(m["curves_png"], f"{m['label']}: deletion and insertion curves") for m in info["models"]]
    if info.get("maps_png"):
        figures.append((info["maps_png"], f"PCA and t-SNE maps of the test features, {labels} side by side"))
    for file, caption in figures:
        source = Path(run_dir) / EXPLAIN_DIR / file
        if source.is_file():
            pngs[f"explain_{file}"] = source.read_bytes()
            blocks.append(("img", f"explain_{file}", caption))
    return blocks
