"""The benchmark's outputs: the targets checked one by one, bench/results.json, the table in bench/RESULTS.md
(only between its markers: the notes around it are kept) and bench/latency.png (matplotlib, Agg).

    python -m bench.report     rewrite RESULTS.md from results.json (the plot needs a run's samples)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _find(results: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    return next((s for s in results["scenarios"] if s["name"].startswith(prefix)), None)


def targets(results: dict[str, Any], _by: object = None) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    out: list[dict[str, Any]] = []

    def add(measure: str, target: str, value: str, met: bool, note: str = "") -> None:
        out.append({"measure": measure, "target": target, "value": value, "met": bool(met), "note": note})

    if s := _find(results, "200 calls/s"):
        sp, fl = s["screenpop"], s["floor"]
        add("200 calls/s, 1,000 idle agents: card complete p99", "<= 1.5 x floor p99, 0 lost",
            f"{sp['p99_ms']} ms vs floor {fl['p99_ms']} ms = {s['ratio_p99']} x, lost {sp['lost']}",
            s["ratio_p99"] <= 1.5 and sp["lost"] == 0)
    if s := _find(results, "ramp"):
        rate = s["screenpop"]["max_rate"]
        add("highest rate with p99 < 50 ms", ">= 500 calls/s", f"{rate} calls/s (floor {s['floor']['max_rate']})",
            rate >= 500)
    if s := _find(results, "stubs"):
        sp = s["screenpop"]
        add("stubs at 50/100/200 ms: card complete minus 200 ms, p99", "<= 5 ms",
            f"{sp['p99_ms']} ms (floor {s['floor']['p99_ms']} ms)", sp["p99_ms"] <= 5 and sp["lost"] == 0)
    if s := _find(results, "repeat"):
        sp = s["screenpop"]
        cached = results.get("method", {}).get("cache_configured", False)
        add("repeat caller, cache warm: card complete p99", "<= 3 ms", f"{sp['p99_ms']} ms",
            cached and sp["p99_ms"] <= 3 and sp["lost"] == 0, "" if cached else "not met: no cache yet")
    if s := _find(results, "two instances"):
        sp, fl = s["screenpop"], s["floor"]
        add("two instances on Redis, 200 calls/s: p99", "<= 1.5 x floor p99 with a Redis hop",
            f"{sp['p99_ms']} ms vs floor {fl['p99_ms']} ms = {s['ratio_p99']} x, lost {sp['lost']}",
            s["ratio_p99"] <= 1.5 and sp["lost"] == 0)
    if s := _find(results, "cluster"):
        sp, one = s["screenpop"], s["one_instance"]
        v1, vf = s["ratios"]["vs_one_instance"], s["ratios"]["vs_floor"]
        add("cluster, 100 calls/s, events round-robin: lost cards", "0",
            f"{sp['lost']} (one instance {one['lost']}, floor {s['floor']['lost']})", sp["lost"] == 0)
        add("cluster: CPU per call of the pair", "<= 1.5 x one instance's",
            f"{sp['cpu_us_per_call']} us vs {one['cpu_us_per_call']} us = {v1['cpu_per_call']} x "
            f"(floor pair: {vf['cpu_per_call']} x{_floor_split(s)}; HAProxy {sp['haproxy_cpu_us_per_call']} us apart)",
            v1["cpu_per_call"] <= 1.5)
    if m := results.get("memory_per_idle_socket", {}).get("screenpop"):
        fl = results["memory_per_idle_socket"].get("floor", {})
        add("idle agent socket, resident memory", "<= 30 KiB each",
            f"{m['kib_per_socket']} KiB (floor {fl.get('kib_per_socket')} KiB)", m["kib_per_socket"] <= 30)
    return out


def _row(s: dict[str, Any]) -> str:
    def cells(x: dict[str, Any]) -> str:
        return f"{x['p50_ms']} / {x['p90_ms']} / {x['p99_ms']} / {x['max_ms']} | {x['lost']} | {x['cpu_s']}"

    name = s["name"]
    if "stats_at_rate" in s:
        name += (f" (at {s['stats_at_rate']}/s; max rate: screenpop {s['screenpop']['max_rate']}/s,"
                 f" floor {s['floor']['max_rate']}/s)")
    return f"| {name} | {cells(s['screenpop'])} | {cells(s['floor'])} | {s['ratio_p99']} |"


def _floor_split(s: dict[str, Any]) -> str:
    """', floor pair / one floor process: R x' when the run measured it."""
    r = s["ratios"].get("floor_pair_vs_floor_one")
    return f"; floor pair / one floor process {r['cpu_per_call']} x" if r else ""


def cluster_table(s: dict[str, Any]) -> list[str]:
    """The cluster scenario's sides, with the pair's ratios to the others."""
    v1, vf = s["ratios"]["vs_one_instance"], s["ratios"]["vs_floor"]
    rows = [("two instances behind HAProxy", s["screenpop"]), ("one instance (scenario 3's shape)", s["one_instance"]),
            ("floor: two processes, Redis hop, HAProxy", s["floor"])]
    if "floor_one" in s:  # measured since session 13 (2026-11-30)
        rows.append(("floor: one process, no Redis (reference)", s["floor_one"]))
    lines = [
        "",
        f"Cluster scenario ({s['rate']} calls/s, 1,000 idle agents, {s['rounds']} rounds of {s['seconds_per_segment']}"
        " s a side; every "
        "webhook through HAProxy; agent sockets through HAProxy too, sockets per instance "
        f"{s['screenpop'].get('sockets_per_instance')}):",
        "",
        "| side | p50 / p90 / p99 / max (ms) | lost | CPU per call (µs) | HAProxy CPU per call (µs) | calls whose "
        "ringing and ended hit different instances | lookups running after (per instance) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in rows:
        split = f"{x['calls_split']} of {x['calls_routed']}" if "calls_split" in x else ""
        lines.append(f"| {name} | {x['p50_ms']} / {x['p90_ms']} / {x['p99_ms']} / {x['max_ms']} | {x['lost']} | "
                     f"{x['cpu_us_per_call']} | {x.get('haproxy_cpu_us_per_call', '')} | {split} | "
                     f"{x.get('live_calls_after', '')} |")
    lines += ["", f"Pair against one instance: p50 {v1['p50']} x, p99 {v1['p99']} x, CPU per call "
              f"{v1['cpu_per_call']} x. Pair against the floor pair: p50 {vf['p50']} x, p99 {vf['p99']} x, "
              f"CPU per call {vf['cpu_per_call']} x."]
    if "floor_pair_vs_floor_one" in s["ratios"]:
        lines += ["", "The same split of the floor (the least a screen pop must do, one Redis hop per card): two floor "
                  f"processes against one {s['ratios']['floor_pair_vs_floor_one']['cpu_per_call']} x. Where the "
                  f"pair's `ringing` webhooks landed: {s['screenpop'].get('ringing_on')} (a call's two webhooks "
                  "alternate, so round-robin puts nearly every lookup on one instance and every `ended` on the other)."]
    return lines


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    merged = results.get("merged")
    note = (f" Re-run with `--only {','.join(merged['only'])}`; the other scenarios are from the run of "
            f"{merged['others_from']} ({merged['others_mode']} mode, {merged.get('others_cpu')}), and latency.png too."
            if merged else "")
    cluster = _find(results, "cluster")
    lines = [
        START,
        f"Run of {results['date']} ({results['mode']} mode, {results['seconds']} s) on {m['cores']} cores "
        f"({m['cpu']}), Python {m['python']}; load average {m['loadavg_start'][0]} at the start, "
        f"{m['loadavg_end'][0]} at the end.{note}",
        "",
        "Card complete, in ms from each call's scheduled send time: p50 / p90 / p99 / max; lost cards count at "
        f"the bound ({results['method']['bound_s']:.0f} s); cpu_s = CPU seconds of the server process(es).",
        "",
        "| scenario | screenpop p50 / p90 / p99 / max | lost | cpu_s | floor p50 / p90 / p99 / max | lost | cpu_s "
        "| p99 ratio |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(s) for s in results["scenarios"]),
        "",
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        *(f"| {t['measure']} | {t['target']} | {t['value']} | {'met' if t['met'] else t['note'] or 'NOT met'} |"
          for t in results["targets"]),
        *(cluster_table(cluster) if cluster else []),
        "",
        "![latency distributions](latency.png)",
        END,
    ]
    return "\n".join(lines)


def write_markdown(results: dict[str, Any], path: Path) -> None:
    table = markdown(results)
    if path.exists():
        text = path.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            path.write_text(head + table + rest.split(END, 1)[1])
            return
    path.write_text("# screenpop benchmark results\n\nProduced by `make bench` (bench/run.py); see bench/README.md."
                    "\n\n" + table + "\n")


def plot(samples: dict[str, dict[str, list[float]]], path: Path) -> None:
    """One panel per scenario: the cumulative distribution of card-complete times, screenpop and floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    names = [n for n in samples if not n.startswith("ramp")]
    cols = 2
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for key, color in (("floor", "tab:gray"), ("screenpop", "tab:blue")):
            xs = sorted(samples[name].get(key, []))
            if not xs:
                continue
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.plot([max(x, 0.05) for x in xs], ys, label=key, color=color)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("card complete (ms)")
        ax.set_ylabel("fraction of calls")
        ax.axhline(0.99, color="tab:red", linewidth=0.6, linestyle=":")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def merge(previous: dict[str, Any], new: dict[str, Any], only: list[str]) -> dict[str, Any]:
    """The results of an `--only` run merged into an earlier run's: each scenario run now replaces its namesake
    (or is added), the others are kept; `merged` says which were re-run, and when the rest was."""
    ran = {s["name"] for s in new["scenarios"]}
    kept = [s for s in previous.get("scenarios", []) if s["name"] not in ran]
    out = {**new, "scenarios": kept + new["scenarios"]}
    memory = dict(previous.get("memory_per_idle_socket", {}))
    memory.update(new.get("memory_per_idle_socket", {}))
    out["memory_per_idle_socket"] = memory
    out["merged"] = {"only": only, "others_from": previous.get("merged", {}).get("others_from", previous.get("date")),
                     "others_mode": previous.get("merged", {}).get("others_mode", previous.get("mode")),
                     "others_cpu": previous.get("merged", {}).get("others_cpu", previous.get("machine", {}).get("cpu"))}
    out["targets"] = targets(out)
    return out


def write_all(results: dict[str, Any], samples: dict[str, dict[str, list[float]]], out: Path,
              plot_it: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, out / "RESULTS.md")
    if not plot_it:
        return
    try:
        plot(samples, out / "latency.png")
    except ImportError:
        print("bench: matplotlib is not installed (pip install -e '.[bench]'): no latency.png")


if __name__ == "__main__":
    data = json.loads((HERE / "results.json").read_text())
    write_markdown(data, HERE / "RESULTS.md")
