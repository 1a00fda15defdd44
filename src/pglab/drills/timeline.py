"""A drill's timeline as a PNG: every write attempt over time, acknowledged or failed, with the
fault, the leader change, the node's return and the recovery marked."""

from __future__ import annotations

from pathlib import Path

from pglab.drills.result import DrillResult


def write_png(result: DrillResult, path: Path) -> Path:
    import matplotlib  # imported here: only drills pay for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [(end, max(end - start, 0.0004)) for start, end, good in result.attempts if good]
    failed = [(end, end - start) for start, end, good in result.attempts if not good]
    fig, ax = plt.subplots(figsize=(9, 4.0), dpi=90)
    if ok:
        ax.scatter([t for t, _ in ok], [d * 1000 for _, d in ok], s=4, color="tab:green",
                   label=f"acknowledged ({len(ok)})")
    if failed:
        ax.scatter([t for t, _ in failed], [d * 1000 for _, d in failed], s=14, marker="x", color="tab:red",
                   label=f"failed ({len(failed)})")
    beside_ok = [(end, max(end - start, 0.0004)) for start, end, good in result.beside_attempts if good]
    if beside_ok:
        ax.scatter([t for t, _ in beside_ok], [d * 1000 for _, d in beside_ok], s=4, color="tab:orange",
                   label=f"acknowledged by {result.node} directly, from its own machine")
    t = result.tally
    resumed = next((m.at for m in result.markers if m.what == "writes resumed"), None)
    if resumed is not None and t.unavailable > 0:
        ax.axvspan(resumed - t.unavailable, resumed, color="tab:red", alpha=0.08,
                   label=f"no acknowledged write: {t.unavailable:.2f} s")
    healthy_again = result.measures.healthy_again_s
    if healthy_again is not None:
        ax.axvline(healthy_again, color="tab:blue", linestyle=":", linewidth=1,
                   label=f"cluster healthy again: {healthy_again:.1f} s")
    colors = {"writes resumed": "tab:green", "healthy": "tab:blue"}
    top = ax.get_ylim()[1] if ok or failed else 1.0
    for i, marker in enumerate(result.markers):
        color = "tab:red" if marker.at == 0 else colors.get(marker.what, "tab:gray")
        ax.axvline(marker.at, color=color, linestyle="--", linewidth=1)
        ax.annotate(marker.what, (marker.at, top), xytext=(3, -12 - 11 * (i % 3)), textcoords="offset points",
                    fontsize=8, color=color)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.3)
    ax.set_xlabel("seconds after the fault")
    ax.set_ylabel("attempt latency (ms)")
    verdict = "OK" if result.ok else "FAILED"
    own = result.part.headline() if result.part else ""  # the kind's own figures
    # every client's lost writes (the one beside a cut-off node too), and what the other checks found
    checks = result.clients.checks if result.clients else {"lost": len(t.lost)}
    others = sum(n for check, n in checks.items() if check != "lost")
    setting = f"{result.clients.workload} x{result.clients.spec.clients}, " if result.clients else ""
    ax.set_title(f"drill {result.kind} #{result.run} ({setting}{result.old_leader} -> {result.new_leader}): "
                 f"writes unavailable {t.unavailable:.2f} s, lost {checks.get('lost', 0)}, "
                 f"failed but committed {len(t.failed_committed)}, other anomalies {others}{own} [{verdict}]",
                 fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.text(0.01, 0.045, result.measures.line(), fontsize=7.5, color="tab:gray")
    fig.text(0.01, 0.01, result.measures.said_line(150), fontsize=7.5, color="tab:gray")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

