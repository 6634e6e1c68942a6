"""``explain.html``: one self-contained page (every image embedded) of the explanations and their checks."""
from __future__ import annotations

import base64

from warmstart.explain.faithfulness import BOOTSTRAP, RANDOM_DRAWS
from warmstart.explain.views import CLASS_DEPENDENT, METHOD_DOCS, escape

BASELINES = {"image": "a removed pixel turns black (0), the Integrated Gradients baseline is the black image",
             "table": "a removed column takes 0, the training mean of the standardised features (one-hot levels "
                      "of a categorical column are removed together); the Integrated Gradients baseline is the "
                      "mean row",
             "text": "a removed token becomes the pad token, which attention masks out; the Integrated Gradients "
                     "baseline replaces every token but [CLS]/[SEP] by the pad token's embedding"}
#: Rows drawn as cards (every row's attributions are in attributions.safetensors).
SHOWN = 32
EXTRA_STYLE = """.cards{display:grid;grid-template-columns:1fr 1fr;gap:1em}.card{border:1px solid #ddd;
border-radius:6px;padding:.5em .7em;overflow-x:auto}.card h4{margin:.2em 0;font-size:.95em}
.card .model{font-size:.85em;color:#444;margin:.4em 0 .1em}.imaps td,.imaps th{border:none;padding:2px;
font-size:.75em;text-align:center}.imaps img{width:84px;image-rendering:pixelated}.tokens{margin:.25em 0;
font-size:.9em;line-height:1.9}.tokens span{padding:1px 3px;border-radius:3px;margin:0 1px}
.tokens span.focus{outline:2px solid #222}.attr td{font-size:.8em}.verdict-bad{color:#b00;font-weight:bold}
.verdict-good{color:#070}body{max-width:1200px}"""


def _img(pngs: dict[str, bytes], name: str, alt: str) -> str:
    data = base64.b64encode(pngs[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _vs(entry: dict | None) -> str:
    if entry is None:
        return "<td>—</td>"
    css = "verdict-good" if entry["verdict"] == "better than random" else "verdict-bad"
    return (f'<td>{entry["gain"]:+.3f} [{entry["low"]:+.3f}, {entry["high"]:+.3f}] '
            f'<span class="{css}">{escape(entry["verdict"])}</span></td>')


def faithfulness_table(model: dict) -> str:
    head = ("<tr><th>ranking</th><th>deletion AUC ↓</th><th>vs random (95% CI)</th><th>insertion AUC ↑</th>"
            "<th>vs random (95% CI)</th><th>attribution s</th></tr>")
    rows = []
    for row in model["table"]:
        seconds = "—" if row["ranking"] == "random" else f"{row['seconds']:.2f}"
        rows.append(f"<tr><td>{escape(row['ranking'])}</td><td>{row['deletion_auc']:.3f}</td>"
                    f"{_vs(row.get('deletion_vs_random'))}<td>{row['insertion_auc']:.3f}</td>"
                    f"{_vs(row.get('insertion_vs_random'))}<td>{seconds}</td></tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def card(result, i: int, row: int) -> str:
    """One test row: for each model, its prediction and the maps of the prediction (and of the truth)."""
    first = result.results[0].explained[i]
    parts = [f"<h4>test row {row}: true {escape(first.truth)}</h4>"]
    for r in result.results:
        e, example = r.explained[i], r.examples[i]
        groups = [(f"predicted {e.prediction}", [(m, r.attributions[m][i]) for m in result.methods])]
        if e.true_score is not None:
            groups.append((f"true {e.truth}", [(m, r.true_attributions[m][i]) for m in result.methods
                                               if m in CLASS_DEPENDENT]))
        verdict = "" if e.correct is None else (" ✓" if e.correct else " ✗ wrong")
        parts.append(f'<div class="model">{escape(r.subject.label)}: predicted {escape(e.prediction)}{verdict}</div>')
        parts.append(result.view.draw(example, groups))
    return '<div class="card">' + "".join(parts) + "</div>"


def examples_section(result) -> str:
    """Cards of at most ``SHOWN`` rows: correct and wrong predictions in two columns where there are both."""
    first = result.results[0].explained
    indexed = list(enumerate(result.rows))
    more = f"<p>{len(indexed) - SHOWN} more rows are in attributions.safetensors.</p>" if len(indexed) > SHOWN else ""
    if all(e.correct is None for e in first) or all(e.correct for e in first) or not any(e.correct for e in first):
        return ('<div class="cards">' + "".join(card(result, i, row) for i, row in indexed[:SHOWN]) + "</div>"
                + more)
    columns = []
    for title, want in (("Correct predictions", True), ("Wrong predictions", False)):
        chosen = [(i, row) for i, row in indexed if first[i].correct is want]
        cards = "".join(card(result, i, row) for i, row in chosen[:SHOWN // 2])
        shown = f", {SHOWN // 2} shown" if len(chosen) > SHOWN // 2 else ""
        columns.append(f"<div><h3>{title} ({len(chosen)}{shown})</h3>" + (cards or "<p>none among these rows</p>")
                       + "</div>")
    return '<div class="cards">' + "".join(columns) + "</div>"


def render_html(result, info: dict, pngs: dict[str, bytes]) -> str:
    from warmstart.study.render import STYLE

    modality = result.results[0].subject.bundle.modality
    models = ", ".join(f"{m['label']} ({escape(m['run_dir'])})" for m in info["models"])
    judged = info["correct"] + info["wrong"]
    right_wrong = f" ({info['correct']} predicted right, {info['wrong']} wrong)" if judged else ""
    body = [f"<h1>Explanations: {escape(info['data'])} ({escape(info['task'])})</h1>",
            f"<p>Models: {models}. {info['n']} test rows{right_wrong}"
            + f"; methods {', '.join(result.methods)}. Computed in {info['wall_s']:.1f} s wall, "
            f"{info['cpu_s']:.1f} s CPU.</p>",
            "<h2>Faithfulness: deletion and insertion curves against a random ranking</h2>",
            f"<p>Each method ranks an example's units; deleting the most-attributed first should make the explained "
            f"output fall fast (low deletion AUC), inserting them first into the baseline should restore it fast "
            f"(high insertion AUC). Curves are normalised per example (1 = the full input's output, 0 = the "
            f"baseline's) and averaged with weights |f(input) − f(baseline)|; the reference is {RANDOM_DRAWS} random "
            f"rankings per example. 'vs random' is the AUC gain over random (positive = more faithful) with a 95% "
            f"bootstrap interval over the examples ({BOOTSTRAP} resamples); a method whose interval contains 0 is "
            f"labelled no better than random. Units: {escape(BASELINES.get(modality, ''))}.</p>"]
    for m in info["models"]:
        body += [f"<h3>{escape(m['label'])}</h3>", faithfulness_table(m),
                 f"<figure>{_img(pngs, m['curves_png'], 'curves')}</figure>"]
    body += ["<h2>Examples</h2>",
             "<p>Red supports the explained output, blue opposes it; each map is scaled to its own largest value. "
             "Wrong predictions are also explained for the true label.</p>", examples_section(result)]
    if info["maps_png"]:
        body += ["<h2>Embedding maps of the test set</h2>",
                 "<p>Each model's encoder features of the test rows (up to 1000, a seeded sample), by PCA and by "
                 "t-SNE, coloured by the true class or target: side by side they show what pretraining changed.</p>",
                 f"<figure>{_img(pngs, info['maps_png'], 'embedding maps')}</figure>"]
    body += ["<h2>Methods</h2>", "<ul>" + "".join(f"<li><b>{k}</b>: {escape(METHOD_DOCS[k])}.</li>"
                                                   for k in result.methods) + "</ul>"]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Explanations: '
            f'{escape(info["data"])}</title><style>{STYLE}{EXTRA_STYLE}</style></head><body>\n'
            + "\n".join(body) + "\n</body></html>\n")
