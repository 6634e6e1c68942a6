"""Rendering the study report's renderer-neutral blocks: Markdown, and a self-contained HTML page (PNGs embedded
as data URIs, the page's CSS in ``STYLE``)."""
from __future__ import annotations

import base64
import html


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
