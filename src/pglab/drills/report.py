"""`pglab report`: one self-contained HTML page from a lab's drill JSON lines and its last verify
run: a summary table per drill kind and setting, the checks and anomalies with their evidence, a
chart of write unavailability, each drill's timeline, the verify results.

Everything the page shows is inside it (plots as ``data:`` URIs, CSS inline, no script): it opens
from a file, a CI artifact or a mail, offline, and shows the same thing everywhere.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from pathlib import Path
from typing import Any

from pglab.drills.result import timeline_name
from pglab.drills.summary import setting, summary_of_lines
from pglab.errors import PglabError

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1180px; color: #1d2329; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #d8dee4; }
h3 { font-size: 15px; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; } th, td { border: 1px solid #d8dee4; padding: 4px 8px; }
th { background: #f3f5f7; text-align: left; vertical-align: bottom; } td.num { text-align: right; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; }
.muted { color: #57606a; } img { max-width: 100%; border: 1px solid #d8dee4; }
pre { background: #f6f8fa; padding: 8px; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
"""


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The drills' JSON lines; a line that is not JSON is skipped (a drill killed mid-write)."""
    lines = []
    for text in path.read_text().splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and "kind" in line:
            lines.append(line)
    return lines


def build(lab_name: str, drills_dir: Path, verify_file: Path | None) -> str:
    """The page's HTML: drills from ``drills_dir/drills.jsonl`` (timelines beside it), the last
    verify run from ``verify_file`` (JSON of `pglab verify --json`) when it exists."""
    jsonl = drills_dir / "drills.jsonl"
    lines = read_lines(jsonl) if jsonl.exists() else []
    verify = json.loads(verify_file.read_text()) if verify_file is not None and verify_file.exists() else None
    if not lines and verify is None:
        raise PglabError(f"nothing to report for lab {lab_name}: no drills in {jsonl} and no verify run. "
                         "Run `pglab drill KIND` or `pglab verify` first.")
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>pglab report: {_e(lab_name)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>pglab report: lab {_e(lab_name)}</h1>",
             f"<p class='muted'>{len(lines)} drill(s); written {now}. Every figure comes from the drills' JSON "
             f"lines in {_e(str(jsonl))}.</p>"]
    if lines:
        parts += [_summary(lines), _chart(lines), _anomalies(lines), _timelines(lines, drills_dir)]
    parts.append(_verify(verify))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(lab_name: str, drills_dir: Path, verify_file: Path | None, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build(lab_name, drills_dir, verify_file))
    return out


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _summary(lines: list[dict[str, Any]]) -> str:
    rows = summary_of_lines(lines)
    out = ["<h2>Drills</h2>", "<table id='summary'><thead><tr><th>Drill</th><th>Setting</th><th>n</th>"
           "<th>Writes down (s)<br>min / median / max</th><th>Acked lost</th><th>Failed but committed</th>"
           "<th>Checks (violations)</th><th>Leaders</th><th>Result</th></tr></thead><tbody>"]
    for r in rows:
        u = r["unavailable_s"]
        spread = "-" if u is None else f"{u['min']:.2f} / {u['median']:.2f} / {u['max']:.2f}"
        checks = "<br>".join(f"<span class='{'bad' if n else ''}'>{_e(c)} {n}</span>" for c, n in r["checks"].items())
        verdict = "<span class='ok'>ok</span>" if r["ok"] else "<span class='bad'>FAILED</span>"
        out.append(f"<tr><td>{_e(r['kind'])}</td><td>{_e(r['setting'])}</td><td class='num'>{r['drills']}</td>"
                   f"<td class='num'>{spread}</td><td class='num'>{r['lost']}</td>"
                   f"<td class='num'>{r['failed_committed']}</td><td>{checks}</td>"
                   f"<td>{'<br>'.join(_e(x) for x in r['leaders'])}</td><td>{verdict}</td></tr>")
    out.append("</tbody></table>")
    out.append(_details(lines))
    out.append(_measured(lines))
    return "\n".join(out)


def _details(lines: list[dict[str, Any]]) -> str:
    """One row per drill: when, throughput, lag at the fault, staleness, what the clients cost."""
    out = ["<h3>Each drill</h3><table id='drills'><thead><tr><th>#</th><th>Started</th><th>Drill</th>"
           "<th>Setting</th><th>Down (s)</th><th>Acked / failed</th><th>Writes/s before / during / after</th>"
           "<th>Replica lag at the fault (bytes)</th><th>Read-your-writes (ms, median / max after)</th>"
           "<th>Discarded by a deposed primary</th><th>Client CPU (cores)</th></tr></thead><tbody>"]
    for i, line in enumerate(lines, 1):
        tp = line.get("throughput") or {}
        rates = " / ".join("-" if tp.get(k) is None else f"{tp[k]:g}" for k in ("before", "during", "after"))
        lag = line.get("lag_at_fault") or {}
        lags = ", ".join(f"{_e(name)} {v.get('replay_bytes')}" for name, v in lag.items() if isinstance(v, dict))
        after = ((line.get("staleness") or {}).get("after") or {})
        stale = "-" if after.get("median_ms") is None else f"{after['median_ms']} / {after['max_ms']}"
        discarded = sum((line.get("discarded") or {}).values())
        cpu = (line.get("cpu") or {}).get("cores")
        out.append(f"<tr><td>{i}</td><td>{_e(line.get('started', ''))}</td><td>{_e(line['kind'])}</td>"
                   f"<td>{_e(setting(line))}</td><td class='num'>{line['unavailable_s']:.2f}</td>"
                   f"<td class='num'>{line['acknowledged']} / {line['failed']}</td><td class='num'>{rates}</td>"
                   f"<td>{lags or '-'}</td><td class='num'>{stale}</td><td class='num'>{discarded}</td>"
                   f"<td class='num'>{'-' if cpu is None else cpu}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _measured(lines: list[dict[str, Any]]) -> str:
    """One row per drill: commit latency around the fault, the worst lag, when the cluster was
    healthy again, what the stack said it decided (lines written before these figures: dashes)."""
    out = ["<h3>Around the fault</h3><table id='measured'><thead><tr><th>#</th><th>Drill</th>"
           "<th>Commit p50 / p99 (ms)<br>before</th><th>during</th><th>after</th>"
           "<th>Worst replay lag (bytes)</th><th>Healthy again (s)</th><th>The stack said</th></tr></thead><tbody>"]
    for i, line in enumerate(lines, 1):
        latency = line.get("commit_latency_ms") or {}
        cells = "".join(f"<td class='num'>{_latency(latency.get(w))}</td>" for w in ("before", "during", "after"))
        worst = ", ".join(f"{_e(name)} {v.get('replay_bytes')}" for name, v in (line.get("lag_worst") or {}).items())
        again = line.get("healthy_again_s")
        said = line.get("stack_said")
        words = (f"<span class='muted'>{_e(said['service'])} on {_e(said['node'])}:</span> "
                 + "<br>".join(_e(text) for text in said["lines"])) if said else "-"
        out.append(f"<tr><td>{i}</td><td>{_e(line['kind'])}</td>{cells}<td>{worst or '-'}</td>"
                   f"<td class='num'>{'-' if again is None else again}</td><td>{words}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _latency(window: dict[str, Any] | None) -> str:
    return "-" if not window else f"{window['p50']:g} / {window['p99']:g}"


def _anomalies(lines: list[dict[str, Any]]) -> str:
    found = [(i, line, a) for i, line in enumerate(lines, 1) for a in line.get("anomalies") or []]
    problems = [(i, line) for i, line in enumerate(lines, 1) if line.get("problem")]
    if not found and not problems:
        return "<h2>Anomalies</h2><p id='anomalies' class='ok'>None: every check held in every drill.</p>"
    out = ["<h2>Anomalies</h2><div id='anomalies'>"]
    for i, line, a in found:
        out.append(f"<h3 class='bad'>drill #{i} ({_e(line['kind'])}): {_e(a['check'])}</h3><p>{_e(a['what'])}</p>"
                   f"<pre>{_e(json.dumps(a.get('evidence'))[:4000])}</pre>")
    for i, line in problems:
        out.append(f"<h3 class='bad'>drill #{i} ({_e(line['kind'])})</h3><p>{_e(line['problem'])}</p>")
    out.append("</div>")
    return "\n".join(out)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _chart(lines: list[dict[str, Any]]) -> str:
    """Write unavailability of every drill, by kind and setting, as an inline PNG."""
    import matplotlib  # imported here: only reports pay for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[tuple[float, bool]]] = {}
    for line in lines:
        groups.setdefault(f"{line['kind']}\n{setting(line)}", []).append((line["unavailable_s"], bool(line["ok"])))
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.55 * len(groups)), dpi=90)
    for y, values in enumerate(groups.values()):
        ax.scatter([v for v, _ in values], [y] * len(values), s=40,
                   c=["tab:green" if ok else "tab:red" for _, ok in values], zorder=3)
    ax.set_yticks(range(len(groups)), list(groups), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds without an acknowledged write (green: every check held, red: failed)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return (f"<h3>Write unavailability</h3><img id='chart' alt='write unavailability per drill' "
            f"src='{_png_uri(buffer.getvalue())}'>")


def _timelines(lines: list[dict[str, Any]], drills_dir: Path) -> str:
    out = ["<h2>Timelines</h2>"]
    shown = 0
    for i, line in enumerate(lines, 1):
        name = line.get("timeline") or timeline_name(line["kind"], line.get("started", ""), line.get("run", 1))
        png = drills_dir / str(name)
        if not png.is_file() or png.resolve().parent != drills_dir.resolve():  # only the drills' own files
            continue
        shown += 1
        out.append(f"<h3>drill #{i}: {_e(line['kind'])}, {_e(line.get('started', ''))}</h3>"
                   f"<img class='timeline' alt='timeline of drill {i}' src='{_png_uri(png.read_bytes())}'>")
    if not shown:
        out.append("<p class='muted'>No timeline PNG beside the JSON lines.</p>")
    return "\n".join(out)


def _verify(verify: dict[str, Any] | None) -> str:
    if verify is None:
        return "<h2>Verify</h2><p id='verify' class='muted'>No `pglab verify` run recorded for this lab yet.</p>"
    verdict = "<span class='ok'>passed</span>" if verify.get("passed") else "<span class='bad'>failed</span>"
    out = [f"<h2>Verify</h2><p>Last run: {verdict} in {verify.get('seconds')} s"
           f"{', at ' + _e(verify['finished']) if verify.get('finished') else ''}.</p>",
           "<table id='verify'><thead><tr><th>Check</th><th>Test</th><th>Node</th><th>Outcome</th>"
           "<th>Seconds</th></tr></thead><tbody>"]
    for r in verify.get("results", []):
        style = "ok" if r.get("outcome") == "passed" else ("bad" if r.get("outcome") in ("failed", "error") else "")
        message = f"<br><span class='muted'>{_e(r['message'])}</span>" if r.get("message") else ""
        out.append(f"<tr><td>{_e(r.get('check'))}</td><td>{_e(r.get('name'))}{message}</td>"
                   f"<td>{_e(r.get('node') or '')}</td><td class='{style}'>{_e(r.get('outcome'))}</td>"
                   f"<td class='num'>{r.get('seconds')}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
