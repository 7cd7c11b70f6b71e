"""The pages of `fastmlp report`: OUT/report.html, one self-contained file (CSS inline, every image
inlined as a base64 data: URL, no script, no network), and OUT/report.md beside the step folders
(images by relative path).

Each step's section shows what its folder holds: the Markdown files its command wrote (tables
and the lines around them), every PNG in the folder (figures added to a study later show up
without changes here) and, folded away, the PNGs of the runs inside it; then the command that
reproduces the step and the base config of its runs (every run's exact config is in its folder's
metrics.json, and configs.json of a study).
"""
import base64
import html
import json
import time
from pathlib import Path

from .. import __version__
from ..checkpoint import atomic_write_text
from ..jsonio import dumps
from ..plots import OVERVIEW as RUN_FIGURE   # a run's four-panel figure
from ..table import format_table
from .fullreport import largest_rel_error

# The Markdown files a step's section shows, in this order (those present).
SHOWN = {"gradients": ("net*/gradcheck.md",), "search": ("results.md", "final/summary.md")}
STUDY_SHOWN = ("results.md",)
COMMAND_WIDTH = 100     # characters of a command line on the page (its <pre> holds about 125)
CSS = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.85rem;white-space:pre-wrap}
img{max-width:100%;border:1px solid #ddd;margin:.3rem 0}figure{margin:.5rem 0}
figcaption{font-size:.8rem;color:#555}details{margin:.5rem 0}summary{cursor:pointer;color:#035}
.status{color:#555;font-size:.9rem}"""


def write_pages(out, done, base, plan, command):
    """Write OUT/report.html and OUT/report.md for the Done steps; return their paths."""
    out = Path(out)
    sections = [_section(out, d) for d in done]
    title = f"DD2424 Assignment 3 study on {base.dataset}" + (" (quick)" if plan.quick else "")
    meta = [("command", command or "fastmlp report"), ("fastmlp", __version__),
            ("written", time.strftime("%Y-%m-%d %H:%M:%S %Z")), ("folder", str(out))]
    summary = format_table(["step", "result", "seconds", "this session"], [
        [d.step.name, headline(d), f"{d.record.get('seconds') or 0:.1f}", "reused" if d.reused else "ran"]
        for d in done])
    paths = out / "report.html", out / "report.md"
    atomic_write_text(paths[0], _html(title, meta, summary, sections))
    atomic_write_text(paths[1], _markdown(title, meta, summary, sections, out))
    return paths


def _section(out, d):
    """What a step's section shows: {name, title, status, texts, figures, folded, command, config}."""
    folder = d.folder
    patterns = SHOWN.get(d.step.name, STUDY_SHOWN)
    texts = [(p.relative_to(out), _untitled(p.read_text(encoding="utf-8"), d.step.title)) for pattern in patterns
             for p in sorted(folder.glob(pattern))]
    pngs = sorted(folder.rglob("*.png"))
    top = [p for p in pngs if p.parent == folder]
    folded = {}
    for p in pngs:
        if p.parent != folder:
            folded.setdefault(p.parent, []).append(p)
    status = (f"reused: finished in an earlier session ({d.record.get('seconds') or 0:.1f} s, "
              f"{d.record.get('finished_at', '')})" if d.reused else f"ran in {d.record['seconds']:.1f} s")
    configs = folder / "configs.json"      # a study's: the exact config of every run
    config = (("the exact config of every run (configs.json)", configs.read_text(encoding="utf-8"))
              if configs.is_file() else ("the base config of the runs (each run's exact config: metrics.json in "
                                         "its folder)", dumps(d.step.settings["base"], indent=2)))
    return {"name": d.step.name, "title": d.step.title, "status": status, "folder": folder.relative_to(out),
            "texts": texts, "figures": top, "folded": folded, "command": shell_lines(d.step.command),
            "config": config}


def shell_lines(command, width=COMMAND_WIDTH):
    """Each line of `command` longer than `width` broken before a flag, with a shell continuation
    (" \\" and an indent): the page's <pre> otherwise wraps it inside a flag ("--" at one line's
    end, "seed 0" on the next).  A line with quotes is left whole (a flag may be inside them)."""
    lines = []
    for line in command.splitlines():
        words = line.split(" --")
        if len(line) <= width or "'" in line or '"' in line:
            lines.append(line)
            continue
        rows = [words[0]]
        for word in words[1:]:
            if len(rows[-1]) + 3 + len(word) > width:
                rows.append("    --" + word)
            else:
                rows[-1] += " --" + word
        lines.append(" \\\n".join(rows))
    return "\n".join(lines)


def _untitled(text, title):
    """A step's Markdown without its first line when that is the section's own title."""
    first, _, rest = text.partition("\n")
    return rest.lstrip("\n") if first.lstrip("# ").strip() == title else text


def headline(d):
    """One cell for the summary table: the step's main result, read back from its files."""
    folder = d.folder
    try:
        if d.step.name == "gradients":
            rows = [r for p in sorted(folder.glob("net*/gradcheck.json")) for r in json.loads(p.read_text())["rows"]]
            return f"largest relative error {largest_rel_error(rows):.2e}"
        if d.step.name == "search":
            final = json.loads((folder / "final" / "summary.json").read_text())
            test = final["summary"]["test_accuracy"]
            return (f"lam = {final['final']['lam']:.3e}: test accuracy "
                    f"{'-' if test is None else f'{100 * test:.2f}%'} after {final['final']['cycles']} cycles")
        trials = json.loads((folder / "results.json").read_text())["trials"]
        ranked = [t for t in trials if t.get("val_accuracy_mean") is not None]
        if not ranked:
            return "every run diverged"
        best = max(ranked, key=lambda t: t["val_accuracy_mean"])
        cells = ", ".join(f"{k} {best[k]}" for k in best if not k.startswith(_RESULTS))
        test = best["test_accuracy_mean"]
        return (f"best by validation: {cells} (val {100 * best['val_accuracy_mean']:.2f}%, test "
                f"{'-' if test is None else f'{100 * test:.2f}%'})")
    except (OSError, ValueError, KeyError, TypeError):
        return "-"


# a study trial's result fields (and their _mean, _std, per-seed lists); the fields before them
# are the trial's settings.  A list of names missed val_loss and printed "val_loss [0.3378165041312016]"
_RESULTS = ("train_", "val_", "test_", "runs", "diverged", "seeds")


# ---- HTML --------------------------------------------------------------------------------------
def _text(text):
    """Text as HTML; quotes stay as they are (no text here goes into an attribute but through
    _attr), so the JSON of a config reads as JSON in the source too."""
    return html.escape(str(text), quote=False)


def _attr(text):
    return html.escape(str(text), quote=True)


def _html(title, meta, summary, sections):
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_text(title)}</title><style>{CSS}</style></head><body>", f"<h1>{_text(title)}</h1>",
             "<dl>" + "".join(f"<dt>{_text(k)}</dt><dd><code>{_text(v)}</code></dd>" for k, v in meta) + "</dl>",
             "<h2>Summary</h2>", markdown_html(summary), "<ul>" + "".join(
                 f'<li><a href="#{_attr(s["name"])}">{_text(s["title"])}</a></li>' for s in sections) + "</ul>"]
    for s in sections:
        parts += [f'<h2 id="{_attr(s["name"])}">{_text(s["title"])}</h2>',
                  f'<p class="status">{_text(s["status"])}; folder <code>{_text(str(s["folder"]))}</code></p>']
        for name, text in s["texts"]:
            parts += [f"<h3>{_text(str(name))}</h3>", markdown_html(text)]
        parts += [_figure(p, s["folder"]) for p in s["figures"]]
        if s["folded"]:
            parts.append(f"<details><summary>Figures of the {len(s['folded'])} runs inside (each run's "
                         f"{RUN_FIGURE}; its single-panel PNGs are in its folder)</summary>")
            for parent, pngs in s["folded"].items():
                # a run's curves.png has its cost, loss and accuracy panels: only that one is
                # inlined (all four made a full study's page 31 MB; report.md links every one)
                shown = [p for p in pngs if p.name == RUN_FIGURE] or pngs
                parts += [f"<h4>{_text(parent.name)}</h4>", *(_figure(p, s["folder"]) for p in shown)]
            parts.append("</details>")
        parts += ["<h3>Command</h3>", f"<pre>{_text(s['command'])}</pre>",
                  f"<details><summary>Config: {_text(s['config'][0])}</summary>",
                  f"<pre>{_text(s['config'][1])}</pre></details>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figure(path, folder):
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = _attr(path.name if path.parent.name == str(folder.name) else f"{path.parent.name}/{path.name}")
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def markdown_html(text):
    """HTML of the Markdown fastmlp writes: '# ' headings, pipe tables (format_table's), paragraphs."""
    parts, table = [], []

    def flush():
        if table:
            parts.append(_table_html(table))
            table.clear()
    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            parts.append(f"<h{level}>{_text(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            parts.append(f"<p>{_text(line)}</p>")
    flush()
    return "\n".join(parts)


def _table_html(lines):
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, rule, body = rows[0], rows[1] if len(rows) > 1 else [], rows[2:]
    right = [c.endswith(":") for c in rule] + [False] * len(header)
    cell = lambda tag, c, r: f'<{tag}{" class=num" if r and tag == "td" else ""}>{_text(c)}</{tag}>'  # noqa: E731
    return ("<table><thead><tr>" + "".join(cell("th", c, False) for c in header) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(cell("td", c, right[k]) for k, c in enumerate(row)) + "</tr>"
                      for row in body) + "</tbody></table>")


# ---- Markdown ----------------------------------------------------------------------------------
def _markdown(title, meta, summary, sections, out):
    lines = [f"# {title}", "", *(f"- {k}: `{v}`" for k, v in meta), "", "## Summary", "", summary, ""]
    for s in sections:
        lines += [f"## {s['title']}", "", f"{s['status']}; folder `{s['folder']}`.", ""]
        for name, text in s["texts"]:
            lines += [f"### {name}", "", _demote(text), ""]
        lines += [f"![{p.name}]({p.relative_to(out).as_posix()})" for p in s["figures"]] + [""]
        for parent, pngs in s["folded"].items():
            links = ", ".join(f"[{p.name}]({p.relative_to(out).as_posix()})" for p in pngs)
            lines.append(f"- `{parent.relative_to(out).as_posix()}`: {links}")
        lines += ["", "Command:", "", "```console", s["command"], "```", "",
                  f"Config: {s['config'][0]}:", "", "```json", s["config"][1].rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _demote(text):
    """A step's Markdown under the page's '###' heading: its own headings two levels down."""
    return "\n".join("###" + line if line.startswith("#") else line for line in text.splitlines())
