#!/usr/bin/env python3
"""Writes benches/README.md from the results of benches/vs-mosquitto (Python 3, stdlib only).

    python3 benches/report.py RESULTS_DIR [WORK_DIR] README

With WORK_DIR (what vs-mosquitto leaves in its temporary directory: facts.tsv, scenarios.tsv,
brokers.tsv, load.txt, mosquitto.conf), first collects the run's facts into RESULTS_DIR/run.json,
merges the per-round `conn` comparisons into one file and trims the JSON to what is worth
committing. Without it, re-renders the README from the committed RESULTS_DIR alone.
"""

import glob
import json
import os
import statistics
import sys

A, B = "RingMQ", "mosquitto"
# compare's warning threshold: the load generator may be the bottleneck above this share.
SATURATION_SHARE = 0.9
# CPUs kept busy by other work before a scenario above which the run notes call the machine busy.
BUSY_CPUS = 0.25
# Publishers listed one by one in the committed JSON; beyond this only their count is kept.
PER_PUBLISHER_KEPT_MAX = 10

# Targets from issue 4. kind: "ratio_min" (RingMQ / mosquitto at least), "a_max" (RingMQ at
# most). `ref` is the mosquitto figure on this kind of machine.
SCENARIOS = [
    ("p2p-qos0-16B", "Max-rate point to point, QoS 0, 16 B, 10 -> 10, window 1000", [
        ("delivered msgs/s", ("ratio_min", 25), "94k msgs/s"),
        ("broker cpu s/M msgs", ("a_max", 0.35), "10.4"),
        ("lost %", None, None),
    ]),
    ("p2p-qos0-1KiB", "Max-rate point to point, QoS 0, 1 KiB, 10 -> 10, window 1000", [
        ("delivered msgs/s", None, None),
        ("broker cpu s/M msgs", ("a_max", 1.0), None),
        ("lost %", None, None),
    ]),
    ("p2p-qos1-16B", "Max-rate point to point, QoS 1, 16 B, 10 -> 10, window 1000", [
        ("delivered msgs/s", ("ratio_min", 35), "51k msgs/s"),
        ("broker cpu s/M msgs", ("a_max", 0.45), "19.3"),
        ("lost %", None, None),
    ]),
    ("p2p-qos1-1KiB", "Max-rate point to point, QoS 1, 1 KiB, 10 -> 10, window 1000", [
        ("delivered msgs/s", None, None),
        ("broker cpu s/M msgs", ("a_max", 1.0), None),
        ("lost %", None, None),
    ]),
    ("fanout-100-qos0-16B", "Fan-out 1 -> 100, QoS 0, 16 B", [
        ("delivered msgs/s", ("ratio_min", 25), "251k msgs/s"),
        ("broker cpu s/M msgs", None, "3.9"),
        ("lost %", None, None),
    ]),
    ("fanout-1000-qos0-16B", "Fan-out 1 -> 1000, QoS 0, 16 B", [
        ("delivered msgs/s", None, None),
        ("broker cpu s/M msgs", None, None),
        ("lost %", None, None),
    ]),
    ("fanin-1000-qos1-16B", "Fan-in 1000 -> 1, QoS 1, 16 B, window 100 per publisher", [
        ("delivered msgs/s", None, None),
        ("broker cpu s/M msgs", None, None),
        ("lost %", None, None),
    ]),
    ("latency-20k-qos1-16B", "Latency at a fixed offered 20k msgs/s, QoS 1, 16 B, 10 -> 10", [
        ("p50 us", None, "~300 us"),
        ("p99 us", ("a_max", 1000), "~2.4 ms"),
        ("p99.9 us", None, "~5.3 ms"),
        ("delivered msgs/s", None, None),
        ("lost %", None, None),
    ]),
    ("conn-idle", "10,000 idle connections (`conn`), freshly started brokers", [
        ("broker rss B/conn", ("a_max", 1024), "735 B"),
        ("broker cpu us/connect", ("a_max", 25), "38 us"),
        ("connects/s", None, None),
    ]),
]

MICROBENCHMARKS = """\
## Micro-benchmarks (criterion)

One file per hot path, each with a baseline beside it (STYLE.md). They print to the terminal
only (criterion without plots or HTML reports):

```sh
cargo bench --bench codec          # decode/encode by packet type and size, 3.1.1 and 5.0; baseline memcpy
cargo bench --bench trie           # match at 10^3..10^6 subscriptions, subscribe+unsubscribe; baseline AHashMap
cargo bench --bench mesh           # SPSC ring across two threads, batch 1/64/1024; baseline std sync_channel
cargo bench --bench publish_path   # PUBLISH bytes -> shard -> encoded deliveries, QoS 0/1/2, 1->1 and 1->100;
                                   # baseline: a zero-logic forwarder (decode, exact-topic map, encode)
cargo bench --bench trie -- --quick                # a fast, rougher pass
cargo bench --bench codec -- publish_qos1_1KiB     # one group
```

Each file's `//!` header says what it measures and what the baseline is. The defaults are
short (0.5 s warm-up, 2 s measurement per benchmark) to suit a 2-core machine; the mesh
benchmark uses both cores, so run it on a quiet machine.

## Access control, hardening and soak scripts

Each prints its own results; curated runs are in `results/`.

```sh
benches/access        # CONNECT cost with $7$ passwords (cache on/off), publish latency during a
                      # burst of 1,000 password CONNECTs, p2p QoS 0 CPU-s/M with a 1,001-rule ACL
                      # against none (ringmq-loadgen compare); ~3 min -> results/access.md
benches/non-readers   # RSS of a broker holding 1,000 clients that pipeline requests and never read
benches/soak          # 15,000 churning connections on 3 shards for 3 minutes, then no leaked fds
                      # or sessions and RSS within 10% of the post-warm-up baseline; ~5 min
cargo bench --bench acl   # may_read/may_publish over 1,000 users and 10 patterns; baseline: a
                          # mosquitto-style walk that builds a string per pattern
```
"""


def read_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return rows


def read_text(path):
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dump(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else 0.0


def figure_values(comparison, side, figure):
    """The figure's value in each run of `side` ("A" or "B"), in round order."""
    out = []
    for run in comparison["runs"]:
        if run["side"] == side:
            value = run_figure(run["report"], figure)
            if value is not None:
                out.append(value)
    return out


def run_figure(report, figure):
    """One figure from a single run's report, as compare names them."""
    messages, broker = report.get("messages"), report.get("broker") or {}
    connections = report.get("connections", {})
    table = {
        "connects/s": connections.get("connects_per_s"),
        "broker cpu s/M msgs": broker.get("cpu_s_per_million_msgs"),
        "broker cpu us/connect": broker.get("cpu_us_per_connect"),
        "broker rss B/conn": broker.get("rss_bytes_per_connection"),
        "loadgen cpu share": report.get("loadgen", {}).get("cpu_share"),
    }
    if messages:
        latency = messages.get("latency", {})
        table.update({
            "delivered msgs/s": messages.get("delivered_msgs_per_s"),
            "offered msgs/s": messages.get("offered_msgs_per_s"),
            "lost": messages.get("lost"),
            "lost %": (100.0 * messages.get("lost", 0) / messages["expected"]
                       if messages.get("expected") else None),
            "p50 us": latency.get("p50_us"),
            "p99 us": latency.get("p99_us"),
            "p99.9 us": latency.get("p99_9_us"),
        })
    return table.get(figure)


def merge_conn_rounds(results):
    """Folds conn-idle-roundK.json (one fresh-broker round each) into conn-idle.json."""
    paths = sorted(glob.glob(os.path.join(results, "conn-*-round*.json")))
    if not paths:
        return
    parts = [load(p) for p in paths]
    merged = {"a": parts[0]["a"], "b": parts[0]["b"], "rounds": len(parts), "runs": []}
    for round_no, part in enumerate(parts, 1):
        for run in part["runs"]:
            merged["runs"].append(dict(run, round=round_no))
    merged["medians"] = []
    for row in parts[0]["medians"]:
        figure = row["figure"]
        a = median([r["a"] for p in parts for r in p["medians"] if r["figure"] == figure])
        b = median([r["b"] for p in parts for r in p["medians"] if r["figure"] == figure])
        merged["medians"].append({"figure": figure, "a": a, "b": b,
                                  "ratio": a / b if b else None})
    name = os.path.basename(paths[0]).split("-round")[0]
    dump(os.path.join(results, name + ".json"), merged)
    first_svg = paths[0][:-len(".json")] + ".svg"
    if os.path.exists(first_svg):
        os.replace(first_svg, os.path.join(results, name + ".svg"))
    for path in paths:
        os.remove(path)
        svg = path[:-len(".json")] + ".svg"
        if os.path.exists(svg):
            os.remove(svg)


def trim(results):
    """Keeps committed JSON small: per-publisher tallies only for small runs."""
    for path in glob.glob(os.path.join(results, "*.json")):
        if os.path.basename(path) == "run.json":
            continue
        comparison = load(path)
        for run in comparison.get("runs", []):
            messages = run["report"].get("messages")
            if messages and len(messages.get("per_publisher", [])) > PER_PUBLISHER_KEPT_MAX:
                messages["per_publisher_omitted"] = len(messages.pop("per_publisher"))
        dump(path, comparison)


def collect(results, work):
    """The run's facts from vs-mosquitto's work directory into results/run.json."""
    if not os.path.exists(os.path.join(work, "scenarios.tsv")):
        sys.exit(f"{work} holds no vs-mosquitto run (no scenarios.tsv)")
    loads = [line.split() for line in read_text(os.path.join(work, "load.txt")).splitlines()
             if line.strip()]
    conf_path = os.path.join(work, "mosquitto.conf")
    run = {
        "facts": {k: v for k, v in read_tsv(os.path.join(work, "facts.tsv"))},
        "brokers": {k: v for k, v in read_tsv(os.path.join(work, "brokers.tsv"))},
        "mosquitto_conf": read_text(conf_path),
        "scenarios": [{"name": n, "exit": int(s), "seconds": int(t), "idle_wait_s": int(w),
                       "command": c}
                      for n, s, t, w, c in read_tsv(os.path.join(work, "scenarios.tsv"))],
        "other_busy_cpus": [float(x[0]) for x in loads],
        "other_builds": [int(x[1]) for x in loads],
    }
    dump(os.path.join(results, "run.json"), run)


def fmt(value, figure=""):
    if value is None:
        return "-"
    if figure.endswith(" us") and "cpu" not in figure:
        if value >= 1_000_000:
            return f"{value / 1e6:.2f} s"
        return f"{value / 1000:.1f} ms" if value >= 1000 else f"{value:.0f} us"
    if figure == "loadgen cpu share":
        return f"{value * 100:.0f} %"
    if figure == "lost %":
        return f"{value:.0f} %" if value >= 10 else (f"{value:.2g} %" if value else "0")
    if "msgs/s" in figure or figure == "connects/s":
        return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
    if abs(value) >= 100 or value == 0:
        return f"{value:,.0f}"
    return f"{value:.3g}"


# Counts of failures: a ratio of two loss counts says nothing.
NO_RATIO = {"lost", "lost %", "duplicated", "out of order"}


def fmt_ratio(a, b, figure=""):
    if not b or figure in NO_RATIO:
        return "-"
    return f"{a / b:.2f}x"


def target_text(target, figure):
    if target is None:
        return ""
    kind, value = target
    if kind == "ratio_min":
        return f">= {value}x mosquitto"
    return f"RingMQ <= {fmt(value, figure) if figure.endswith(' us') else f'{value:g}'}"


def target_met(target, a, b):
    if target is None:
        return ""
    kind, value = target
    ok = (b and a / b >= value) if kind == "ratio_min" else a <= value
    return "yes" if ok else "**no**"


def medians_of(comparison):
    return {row["figure"]: (row["a"], row["b"]) for row in comparison["medians"]}


def value_pair(comparison, figure):
    """compare's medians for `figure`, or the median over the runs for figures it lacks."""
    medians = medians_of(comparison)
    if figure in medians:
        return medians[figure]
    a, b = figure_values(comparison, "A", figure), figure_values(comparison, "B", figure)
    if not a and not b:
        return (None, None)
    return (median(a), median(b))


def saturated_side(comparison, side):
    shares = figure_values(comparison, side, "loadgen cpu share")
    return bool(shares) and max(shares) >= SATURATION_SHARE


def summary_table(comparisons):
    lines = [
        "| Scenario | Figure | RingMQ | mosquitto | RingMQ / mosquitto | Target (issue 4) | Met | mosquitto in issue 4 |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for name, title, figures in SCENARIOS:
        comparison = comparisons.get(name)
        if comparison is None:
            lines.append(f"| [{name}](#{name.lower()}) | *did not run* | | | | | | |")
            continue
        mark_a = " †" if saturated_side(comparison, "A") else ""
        mark_b = " †" if saturated_side(comparison, "B") else ""
        for figure, target, ref in figures:
            a, b = value_pair(comparison, figure)
            if a is None:
                continue
            rate = "msgs/s" in figure or figure == "connects/s"
            lines.append(
                f"| [{name}](#{name.lower()}) | {figure} | {fmt(a, figure)}{mark_a if rate else ''} | "
                f"{fmt(b, figure)}{mark_b if rate else ''} | {fmt_ratio(a, b, figure)} | "
                f"{target_text(target, figure)} | {target_met(target, a, b)} | {ref or ''} |")
    return lines


def loadgen_table(comparisons):
    lines = [
        "| Scenario | load generator CPU share against RingMQ | against mosquitto |",
        "|---|---:|---:|",
    ]
    for name, _, _ in SCENARIOS:
        comparison = comparisons.get(name)
        if comparison is None:
            continue
        a = max(figure_values(comparison, "A", "loadgen cpu share") or [0])
        b = max(figure_values(comparison, "B", "loadgen cpu share") or [0])
        flag = lambda v: " **saturated**" if v >= SATURATION_SHARE else ""
        lines.append(f"| {name} | {a * 100:.0f} %{flag(a)} | {b * 100:.0f} %{flag(b)} |")
    return lines


def scenario_section(name, title, figures, comparison, command):
    out = [f"### {name}", "", title + ".", ""]
    if command:
        out += ["```sh", command, "```", ""]
    if comparison is None:
        return out + ["*This scenario did not produce results; see the run notes.*", ""]
    rounds = "round 1" if name == "conn-idle" else "all rounds"
    out += [f"Latency spectra of {rounds}: [results/{name}.svg](results/{name}.svg) · "
            f"every round: [results/{name}.json](results/{name}.json)", ""]
    out += ["| Figure (median of rounds) | RingMQ | mosquitto | RingMQ / mosquitto |",
            "|---|---:|---:|---:|"]
    for row in comparison["medians"]:
        figure = row["figure"]
        out.append(f"| {figure} | {fmt(row['a'], figure)} | {fmt(row['b'], figure)} | "
                   f"{fmt_ratio(row['a'], row['b'], figure)} |")
    out.append("")
    head = figures[0][0]
    per_round = ", ".join(
        f"{label} " + " / ".join(fmt(v, head) for v in figure_values(comparison, side, head))
        for label, side in ((A, "A"), (B, "B")))
    out += [f"{head} per round: {per_round}.", ""]
    warnings = []
    for run in comparison["runs"]:
        side = A if run["side"] == "A" else B
        for w in run["report"].get("warnings", []) + run["report"].get("errors", []):
            text = f"{side}: {w}"
            if text not in warnings:
                warnings.append(text)
    if warnings:
        out += ["Warnings from the load generator:", ""]
        out += [f"- {w}" for w in warnings[:10]]
        out.append("")
    return out


def run_notes(run, comparisons):
    facts = run.get("facts", {})
    loads, builds = run.get("other_busy_cpus", []), run.get("other_builds", [])
    notes = []
    elapsed = int(facts.get("elapsed_s", "0"))
    notes.append(f"The whole script took {elapsed // 60} min {elapsed % 60} s "
                 f"({facts.get('rounds')} rounds of {facts.get('duration_s')} s per scenario).")
    if loads:
        busy = max(loads) > BUSY_CPUS or max(builds or [0]) > 0
        names = [sc["name"] for sc in run.get("scenarios", [])]
        busy_names = [name for name, cpus, k in zip(names, loads, builds)
                      if cpus > BUSY_CPUS or k > 0]
        notes.append(
            f"Other work on the machine, in the second before each scenario (brokers idle, no "
            f"load generator): {min(loads):.2f} to {max(loads):.2f} of {facts.get('cpus')} CPUs "
            f"busy; cargo/rustc processes seen: at most {max(builds or [0])}."
            + (" **The machine was busy with other work during this run**"
               + (f" (at the start of: {', '.join(busy_names)})" if busy_names else "")
               + ", so those figures are lower and noisier than on a quiet machine; the "
               "CPU-seconds per million messages are the steadier figures." if busy else
               " The machine was otherwise quiet."))
    saturated = [f"{name} (against {side})" for name, c in comparisons.items()
                 for side, key in ((A, "A"), (B, "B")) if saturated_side(c, key)]
    if saturated:
        notes.append(
            "The load generator (one thread on one CPU) was saturated in at least one round of: "
            + ", ".join(saturated) + ". There the broker's rate (msgs/s, connects/s) is the load "
            "generator's limit, "
            "a lower bound for the broker (marked † in the summary); its CPU-seconds per million "
            "messages still hold.")
    conn = comparisons.get("conn-idle")
    if conn and value_pair(conn, "max us")[1] and value_pair(conn, "max us")[1] >= 900_000:
        notes.append(
            "conn-idle: mosquitto listens with a backlog of 100 connections (RingMQ 4096, see "
            "`ss -ltn`); with up to 256 connects in flight some SYNs overflow its queue and the "
            "client's kernel retries them after 1 s, which is the 1 s tail of its connect "
            "latency.")
    failed = [s["name"] for s in run.get("scenarios", []) if s["exit"] != 0]
    if failed:
        notes.append("Scenarios whose `compare` exited non-zero: " + ", ".join(failed) + ".")
    lost_qos1 = [(name, medians_of(c).get("lost", (0, 0))) for name, c in comparisons.items()
                 if "qos1" in name]
    dropped = [f"{name} (RingMQ {fmt(a)}, mosquitto {fmt(b)})" for name, (a, b) in lost_qos1
               if a or b]
    if dropped:
        notes.append(
            "QoS 1 messages were lost at max rate in: " + "; ".join(dropped) + ". Both brokers "
            "PUBACK a publisher at once and queue at most 1000 messages per subscriber session "
            "(RingMQ `queued_messages_max`, mosquitto `max_queued_messages`) beyond the 20 in "
            "flight; when subscribers cannot keep up, the rest is dropped. Measured as is.")
    notes.append(
        "Fairness: TCP_NODELAY is on in both brokers (mosquitto `set_tcp_nodelay true`; RingMQ "
        "always sets it). mosquitto's per-connection log lines are off "
        "(`connection_messages false`) since RingMQ writes none. Both allow 20 QoS 1/2 "
        "messages in flight per session (mosquitto's default `max_inflight_messages`, RingMQ's "
        "`inflight_max`) and queue 1000 beyond that.")
    waits = [f"{s['name']} {s['idle_wait_s']} s" for s in run.get("scenarios", [])
             if s.get("idle_wait_s")]
    notes.append(
        "Both brokers are pinned to CPU 0 with `taskset`; the load generator runs on CPU 1 "
        "with one worker thread. `compare` alternates RingMQ, mosquitto, RingMQ, ... so only one "
        "broker is under load at a time. Before each scenario the script waits until both "
        "brokers are idle, since a broker can take seconds to work off a max-rate backlog "
        "after the clients are gone"
        + (f" (waited before: {', '.join(waits)})" if waits else "")
        + "; between the rounds inside one `compare` nothing waits, so such leftover work can "
        "overlap the other broker's next round.")
    notes.append(
        "Figures are medians over the rounds. For `conn`, "
        "both brokers are restarted before each round (RSS rarely shrinks), each round is a "
        "one-round `compare`, and the report takes the median of the rounds; its plot shows "
        "round 1.")
    notes.append(
        "`broker cpu s/M msgs` is broker CPU-seconds (user + system, from /proc) per million "
        "delivered messages over the run and drain: much steadier than msgs/s on a shared "
        "machine.")
    return notes


def render(results, readme):
    run = load(os.path.join(results, "run.json")) if os.path.exists(
        os.path.join(results, "run.json")) else {}
    comparisons = {}
    for name, _, _ in SCENARIOS:
        path = os.path.join(results, name + ".json")
        if os.path.exists(path):
            comparisons[name] = load(path)
    commands = {}
    for scenario in run.get("scenarios", []):
        name, command = scenario["name"], scenario["command"]
        if "-round" in name:
            # One single-round compare per round, each after a broker restart.
            round_tag = "-round" + name.split("-round")[1]
            name = name.split("-round")[0]
            command = ("# once per round K = 1..N, after restarting both brokers\n"
                       + command.replace(round_tag, "-round$K"))
        commands[name] = command
    facts = run.get("facts", {})
    out = [
        "# Benchmarks",
        "",
        "RingMQ against mosquitto on this machine, and the micro-benchmarks of the hot paths.",
        "This file is written by `benches/vs-mosquitto`; edit `benches/report.py` instead.",
        "",
        "## RingMQ vs mosquitto",
        "",
        "```sh",
        "benches/vs-mosquitto     # as root; about 10 minutes; rewrites benches/results/ and this file",
        "python3 benches/report.py benches/results benches/README.md   # re-render from the results",
        "```",
        "",
        "The script installs mosquitto from Debian if it is missing (and stops a system service),",
        "builds the release workspace, starts both brokers pinned to CPU 0 and runs each scenario",
        "of issue 4 through `ringmq-loadgen compare` on CPU 1, all over 127.0.0.1.",
        "",
        f"Run of {facts.get('date', 'unknown date')}: medians of {facts.get('rounds', '?')} "
        f"rounds, {facts.get('duration_s', '?')} s each.",
        "",
    ]
    out += summary_table(comparisons)
    out += ["", "† The load generator was saturated in at least one round against that broker: the "
            "rate is its limit, a lower bound for the broker (see the run notes).", "",
            "The load generator must not be the bottleneck; its own CPU share, highest round:",
            ""]
    out += loadgen_table(comparisons)
    out += ["", "## Machine", "", "| | |", "|---|---|"]
    for key in ["date", "cpus", "cpu model", "memory", "kernel", "mosquitto", "ringmq",
                "io backend", "rustc"]:
        out.append(f"| {key} | {facts.get(key, '-')} |")
    out += ["", "## Run notes", ""]
    out += [f"- {note}" for note in run_notes(run, comparisons)]
    out += ["", "## Brokers", "", "```sh"]
    out += [f"{v}    # {k}" for k, v in run.get("brokers", {}).items()]
    out += ["```", "", "`mosquitto.conf` (generated):", "", "```", run.get("mosquitto_conf", "").rstrip(),
            "```", "", "## Scenarios", ""]
    for name, title, figures in SCENARIOS:
        out += scenario_section(name, title, figures, comparisons.get(name), commands.get(name))
    out.append(MICROBENCHMARKS)
    with open(readme, "w", encoding="utf-8") as f:
        f.write("\n".join(out).rstrip() + "\n")


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    results, readme = argv[1], argv[-1]
    if len(argv) == 4:
        collect(results, argv[2])
        merge_conn_rounds(results)
        trim(results)
    render(results, readme)


if __name__ == "__main__":
    main(sys.argv)
