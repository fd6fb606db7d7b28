"""From results.json's measurements to the summary (medians, per-round ratios, targets)
and to RESULTS.md."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any, Final

import clients
from clients import BARE

Result = dict[str, Any]


def one_line(result: Result) -> str:
    """A progress line for one measurement."""
    if "error" in result:
        return f"ERROR {result['error']}" + (
            f" | {result['stderr_tail'].strip()[-160:]}" if result.get("stderr_tail") else ""
        )
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    note = f"  ({result['note']})" if result.get("note") else ""
    if "mib_per_s" in result:
        return f"{result['msgs_per_s']:>12,.0f} msg/s  {result['mib_per_s']:,.0f} MiB/s"
    if "msgs_per_s" in result:
        return f"{result['msgs_per_s']:>12,.0f} msg/s{note}"
    if "p50_ms" in result:
        return (
            f"p50 {result['p50_ms']:.3f}  p99 {result['p99_ms']:.3f}  "
            f"p99.9 {result['p999_ms']:.3f} ms  ({result['received']:,} samples){note}"
        )
    if "syscalls_per_heartbeat" in result:
        return f"{result['syscalls_per_heartbeat']:.1f} syscalls/heartbeat{note}"
    if "cpu_us_per_heartbeat" in result:
        return (
            f"{result['cpu_us_per_heartbeat']:.0f} us CPU/heartbeat ({result['heartbeats']} beats)"
        )
    if "growth_mib" in result:
        return (
            f"RSS {kib(result['rss_sample_kib'])} at {result['sample_at']:,}, "
            f"{kib(result['rss_end_kib'])} at {result['count']:,}"
        )
    if "growth_during_stall_mib" in result:
        connections = result.get("connections")
        return (
            f"RSS {kib(result['rss_before_kib'])} -> peak {kib(result['rss_peak_stall_kib'])}"
            " in the stall"
            + (f", {connections} connection(s)" if connections is not None else "")
            + note
        )
    if "ratio_median" in result:
        rates = result["median_msg_per_s"]
        return (
            f"c2ws {rates['c2ws']:,} msg/s, plain nats-py {rates['plain']:,} msg/s: "
            f"{result['ratio_median']:.2f}x"
        )
    if "median_ms" in result:
        return ", ".join(f"{name} {value:.1f} ms" for name, value in result["median_ms"].items())
    if "cpu_ms_per_s" in result:
        return (
            f"{result['cpu_ms_per_s']:.3f} ms CPU/s, RSS {kib(result['rss_kib'])}; "
            f"{result['subscriptions']} subscription(s), {result['connections']} "
            f"connection(s), {result['threads']} threads"
        )
    return str(result)


def kib(value: int | None) -> str:
    return "?" if value is None else f"{value / 1024:.1f} MiB"


def median(values: Iterable[float]) -> float | None:
    listed = list(values)
    return statistics.median(listed) if listed else None


def _spread(values: list[float]) -> Result:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _per_round(rounds: list[Result], section: str, name: str, key: str) -> list[float | None]:
    values: list[float | None] = []
    for record in rounds:
        result = record.get(section, {}).get(name)
        value = result.get(key) if isinstance(result, dict) and "error" not in result else None
        values.append(value)
    return values


def _ratios(
    rounds: list[Result], section: str, name: str, key: str, reference: str = BARE
) -> list[float]:
    """client / reference, for each round where both measured."""
    ours = _per_round(rounds, section, name, key)
    theirs = _per_round(rounds, section, reference, key)
    return [a / b for a, b in zip(ours, theirs, strict=True) if a is not None and b]


def _differences(
    rounds: list[Result], section: str, name: str, key: str, reference: str = BARE
) -> list[float]:
    """client - reference, for each round where both measured."""
    ours = _per_round(rounds, section, name, key)
    theirs = _per_round(rounds, section, reference, key)
    return [a - b for a, b in zip(ours, theirs, strict=True) if a is not None and b is not None]


def _errors(rounds: list[Result], section: str, name: str) -> list[str]:
    found = []
    for record in rounds:
        result = record.get(section, {}).get(name)
        if isinstance(result, dict) and "error" in result:
            found.append(f"round {record['round']}: {result['error']}")
    return found


def summarize(results: Result) -> Result:
    rounds: list[Result] = results["rounds"]
    once: Result = results.get("once", {})
    names = [name for name, info in results["clients"].items() if info["available"]]
    summary: Result = {}

    ceilings = [r["ceiling"]["msgs_per_s"] for r in rounds if "msgs_per_s" in r.get("ceiling", {})]
    if ceilings or any("ceiling" in r for r in rounds):
        summary["ceiling"] = _spread(ceilings)
        summary["ceiling"]["mib_per_s"] = median(
            r["ceiling"]["mib_per_s"] for r in rounds if "mib_per_s" in r.get("ceiling", {})
        )

    for sink in ("null", "pipe"):
        section = f"throughput_{sink}"
        if not any(section in r for r in rounds):
            continue
        summary[section] = {
            name: {
                "msgs_per_s": median(
                    v for v in _per_round(rounds, section, name, "msgs_per_s") if v
                ),
                "ratio": _spread(_ratios(rounds, section, name, "msgs_per_s")),
                "server_cpu_share": max(
                    (
                        v
                        for v in _per_round(rounds, section, name, "server_cpu_share")
                        if v is not None
                    ),
                    default=None,
                ),
                "errors": _errors(rounds, section, name),
            }
            for name in names
        }

    for rate, _ in results["config"]["latency"]:
        section = f"latency_{rate}"
        if not any(section in r for r in rounds):
            continue
        summary[section] = {}
        for name in names:
            entry: Result = {"errors": _errors(rounds, section, name)}
            for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms"):
                entry[key] = median(
                    v for v in _per_round(rounds, section, name, key) if v is not None
                )
            entry["p99_ratio"] = _spread(_ratios(rounds, section, name, "p99_ms"))
            entry["p99_added_ms"] = _spread(_differences(rounds, section, name, "p99_ms"))
            entry["busy_core_share"] = median(
                v for v in _per_round(rounds, section, name, "busy_core_share") if v is not None
            )
            received = _per_round(rounds, section, name, "received")
            expected = _per_round(rounds, section, name, "expected")
            entry["received_share"] = min(
                (a / b for a, b in zip(received, expected, strict=True) if a is not None and b),
                default=None,
            )
            summary[section][name] = entry

    if any("pty" in r for r in rounds):
        variants = sorted({variant for r in rounds for variant in r.get("pty", {})})
        summary["pty"] = {
            variant: {
                "msgs_per_s": median(
                    v for v in _per_round(rounds, "pty", variant, "msgs_per_s") if v
                ),
                "errors": _errors(rounds, "pty", variant),
            }
            for variant in variants
        }
        summary["pty_ratios"] = {
            "c2ws-table / c2ws-ndjson": _spread(
                _ratios(rounds, "pty", "c2ws-table", "msgs_per_s", reference="c2ws-ndjson")
            ),
            "wscat-tty / c2ws-ndjson": _spread(
                _ratios(rounds, "pty", "wscat-tty", "msgs_per_s", reference="c2ws-ndjson")
            ),
        }

    if any("modes" in r for r in rounds):
        summary["modes"] = {}
        for variant, (sink, _, reference) in clients.MODES.items():
            summary["modes"][variant] = {
                "sink": sink,
                "reference": reference,
                "msgs_per_s": median(
                    v for v in _per_round(rounds, "modes", variant, "msgs_per_s") if v
                ),
                "ratio": _spread(
                    _ratios(rounds, "modes", variant, "msgs_per_s", reference=reference)
                ),
                "partial_rounds": sum(
                    1 for v in _per_round(rounds, "modes", variant, "partial") if v
                ),
                "errors": _errors(rounds, "modes", variant),
            }

    if any("library" in r for r in rounds):
        summary["library"] = {
            variant: {
                "msgs_per_s": median(
                    v for v in _per_round(rounds, "library", variant, "msgs_per_s") if v
                ),
                "ratio": _spread(_ratios(rounds, "library", variant, "msgs_per_s")),
                "errors": _errors(rounds, "library", variant),
            }
            for variant in clients.LIBRARY_VARIANTS
        }

    if any("idle" in r for r in rounds):
        summary["idle"] = {
            name: {
                "cpu_us_per_heartbeat": median(
                    v
                    for v in _per_round(rounds, "idle", name, "cpu_us_per_heartbeat")
                    if v is not None
                ),
                "ratio": _spread(_ratios(rounds, "idle", name, "cpu_us_per_heartbeat")),
                "errors": _errors(rounds, "idle", name),
            }
            for name in names
        }

    for section in ("syscalls", "memory", "stall", "nats"):
        if section in once:
            summary[section] = once[section]

    scale = once.get("scale")
    if isinstance(scale, dict) and "skipped" not in scale:
        one, many = scale.get("one", {}), scale.get("many", {})
        ratio = None
        if "cpu_ms_per_s" in one and "cpu_ms_per_s" in many and one["cpu_ms_per_s"] > 0:
            ratio = many["cpu_ms_per_s"] / one["cpu_ms_per_s"]
        # Several windows: the median of each window's many / one (a window's few
        # heartbeats, each after a long sleep, make one window's ratio noisy).
        windowed = _window_ratios(many, one)
        if windowed:
            ratio = statistics.median(windowed)
        # Each connection gets (and answers) its own heartbeats: the many-subscription
        # run has one per connection in the window, so its CPU per heartbeat says what a
        # connection costs apart from the heartbeats the server sends it.
        per_heartbeat = None
        if ratio is not None and one.get("heartbeats") and many.get("heartbeats"):
            per_heartbeat = ratio * one["heartbeats"] / many["heartbeats"]
        summary["scale"] = {"one": one, "many": many, "cpu_ratio": ratio,
                            "cpu_per_heartbeat_ratio": per_heartbeat,
                            "window_ratios": windowed}
        # The floor (peers/raw_many.py): the same connections in one thread, nothing
        # else; its many / one is what the heartbeats alone cost any client.  The native
        # floor (peers/raw_many.c) is the same with no interpreter: what they cost a
        # client in any language.
        for floor in ("floor", "native"):
            floor_one, floor_many = scale.get(f"{floor}-one", {}), scale.get(f"{floor}-many", {})
            if not (floor_one or floor_many):
                continue
            summary["scale"][f"{floor}-one"] = floor_one
            summary["scale"][f"{floor}-many"] = floor_many
            if ("cpu_ms_per_s" in floor_one and "cpu_ms_per_s" in floor_many
                    and floor_one["cpu_ms_per_s"] > 0):
                summary["scale"][f"{floor}_cpu_ratio"] = (
                    floor_many["cpu_ms_per_s"] / floor_one["cpu_ms_per_s"])
            floor_windowed = _window_ratios(floor_many, floor_one)
            summary["scale"][f"{floor}_window_ratios"] = floor_windowed
            if floor_windowed:
                summary["scale"][f"{floor}_cpu_ratio"] = statistics.median(floor_windowed)
        if "native_skipped" in scale:
            summary["scale"]["native_skipped"] = scale["native_skipped"]

    startup = once.get("startup", {})
    if "median_ms" in startup:
        medians = startup["median_ms"]
        base = medians.get("python -c pass")
        summary["startup"] = {
            command: {"median_ms": value, "ratio": value / base if base else None}
            for command, value in medians.items()
        }
    summary["targets"] = targets(summary)
    return summary


def _get(tree: Result, *path: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def targets(summary: Result) -> list[Result]:
    """Issue 22's targets, issue 21's (the library) and those of issue 15 that still
    stand, each with what was measured here (None when not measured)."""
    rows: list[Result] = []

    def add(issue: int, target: str, measured: float | None, met: bool | None, shown: str) -> None:
        rows.append(
            {"issue": issue, "target": target, "measured": measured, "met": met, "shown": shown}
        )

    def at_least(issue: int, target: str, value: float | None, limit: float) -> None:
        add(issue, target, value, None if value is None else value >= limit, _x(value))

    at_least(
        22,
        "NDJSON throughput to a pipe >= 3.5x the lean bare loop (moonshot 5.6x)",
        _get(summary, "throughput_pipe", "c2ws", "ratio", "median"),
        3.5,
    )
    at_least(
        22,
        "NDJSON throughput to /dev/null >= 4x the lean bare loop",
        _get(summary, "throughput_null", "c2ws", "ratio", "median"),
        4.0,
    )
    for variant, label, limit in (
        ("--state to a pipe", "`--state` to a pipe >= 0.5x NDJSON to a pipe", 0.5),
        ("--state >> file", "`--state >> file` >= 0.9x NDJSON `>> file`", 0.9),
        ("-o csv to a pipe", "`-o csv` to a pipe >= 0.5x NDJSON to a pipe", 0.5),
        ("-o tsv to a pipe", "`-o tsv` to a pipe >= 0.5x NDJSON to a pipe", 0.5),
    ):
        at_least(22, label, _get(summary, "modes", variant, "ratio", "median"), limit)
    at_least(
        22,
        "table on a pty >= 0.8x NDJSON on the same pty",
        _get(summary, "pty_ratios", "c2ws-table / c2ws-ndjson", "median"),
        0.8,
    )
    for rate, limit in ((1000, 0.25), (10000, 2.0)):
        added = _get(summary, f"latency_{rate}", "c2ws", "p99_added_ms", "median")
        received = _get(summary, f"latency_{rate}", "c2ws", "received_share")
        add(
            22,
            f"p99 latency added over the bare loop < {limit} ms at {rate:,} msg/s, "
            "another process keeping a core busy",
            added,
            None if added is None else added < limit and (received or 0) >= 1.0,
            "-" if added is None else f"{added:+.3f} ms",
        )
    at_least(
        21,
        "`for msg in c2ws.stream(...)` reading `.line`, to a pipe, >= 1.0x the lean bare loop",
        _get(summary, "library", "library-line", "ratio", "median"),
        1.0,
    )
    at_least(
        21,
        "the same reading `.symbol`/`.side`/`.quantity` of every message >= 0.5x the lean "
        "bare loop",
        _get(summary, "library", "library-fields", "ratio", "median"),
        0.5,
    )
    ratio = _get(summary, "scale", "cpu_ratio")
    many = _get(summary, "scale", "many") or {}
    add(
        22,
        f"idle CPU of {many.get('subscriptions', 1000)} subscriptions over "
        f"{many.get('connections', 10)} connections <= 1.5x that of one",
        ratio,
        None if ratio is None else ratio <= 1.5,
        _x(ratio),
    )
    rss = many.get("rss_kib")
    add(
        22,
        "RSS of that many-subscription c2ws <= 40 MiB",
        None if rss is None else rss / 1024,
        None if rss is None else rss / 1024 <= 40,
        kib(rss),
    )
    for command, limit in (("c2ws --version", 2.5), ("c2ws subscribe --help", 4.0)):
        ratio = _get(summary, "startup", command, "ratio")
        add(
            15,
            f"`{command}` < {limit}x `python -c pass`",
            ratio,
            None if ratio is None else ratio < limit,
            _x(ratio),
        )
    idle = _get(summary, "idle", "c2ws", "ratio", "median")
    add(
        15,
        "idle CPU per heartbeat <= 1.2x the bare loop",
        idle,
        None if idle is None else idle <= 1.2,
        _x(idle),
    )
    growth = _get(summary, "memory", "c2ws", "growth_mib")
    add(
        15,
        "RSS growth < 5 MB from 100k to 1M messages",
        growth,
        None if growth is None else growth * 1.048576 < 5,
        "-" if growth is None else f"{growth:.1f} MiB",
    )
    return rows


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# --- RESULTS.md ---------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio_cell(spread: Result | None) -> str:
    if not spread or spread.get("median") is None:
        return "-"
    if spread["n"] == 1:
        return f"**{spread['median']:.2f}**"
    return f"**{spread['median']:.2f}** ({spread['min']:.2f}-{spread['max']:.2f})"


def _memory(meminfo: str) -> str:
    number = meminfo.split()[0]
    return f"{int(number) / 2**20:.0f} GiB" if number.isdigit() else meminfo


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(results: Result) -> str:
    summary = results["summary"]
    config = results["config"]
    machine = results["machine"]
    names = [name for name, info in results["clients"].items() if info["available"]]
    lines: list[str] = []
    out = lines.append

    out("# Benchmark results")
    out("")
    quick = " (**--quick: tiny sizes, the numbers mean nothing**)" if config["quick"] else ""
    out(
        f"`{results['command']}`{quick}, {results['date']}, "
        f"{results['duration_s'] / 60:.1f} minutes.  What each benchmark does and how to read it: "
        "[README.md](README.md).  Every measurement of every round: `results.json`."
    )
    out("")
    out("## Machine")
    out("")
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    out(
        f"- CPU: {machine['cpu']}, {machine['cores']} cores, {_memory(machine['memory'])} memory; "
        f"Linux {machine['kernel']}"
    )
    out(f"- Python {machine['python']}; {packages}")
    if machine.get("commit"):
        out(f"- Checkout measured (c2ws and this harness): `{machine['commit']}`")
    out(f"- node {machine['node']}; {machine['strace']}; {machine['hyperfine']}")
    start, end = results.get("load_average_start"), results.get("load_average_end")
    if start and end:
        out(
            f"- Load average (1/5/15 min) at the start {'/'.join(map(str, start))}, at the end "
            f"{'/'.join(map(str, end))}: anything else running on the machine moved these "
            "figures; the per-round ratios against the bare loop cancel a steady load, not a "
            "bursty one."
        )
    out("")
    out("## Sizes")
    out("")
    stream = results.get("stream", {})
    out(
        f"- {config['rounds']} interleaved round(s); in each, every metric runs every client "
        "once, in an order rotated by one client per round.  Ratios are the median of the "
        "per-round ratios against the bare loop measured in the same round (min-max in "
        "brackets)."
    )
    out(
        f"- Throughput: {config['count']:,} messages per run.  Latency: "
        + ", ".join(f"{count:,} messages at {rate:,} msg/s" for rate, count in config["latency"])
        + f".  Pty: {config['pty_count']:,} messages.  Idle: {config['idle_seconds']} s "
        f"windows of heartbeats every {config['idle_interval']} s."
    )
    if "modes_count" in config:
        out(
            f"- c2ws modes: {config['modes_count']:,} messages per run, a run still short of "
            f"the last message after {config['modes_seconds']:g} s measured on what it had "
            f"written.  Latency load: {config['latency_load']} (see Latency added).  Scale: "
            f"{config['scale_strategies']:,} strategies vs one, heartbeats every "
            f"{config['scale_heartbeat']:g} s per connection, "
            f"{config.get('scale_windows', 1)} window(s) of {config['scale_seconds']:g} s "
            "(once per run)."
        )
    out(
        f"- Once per run: syscalls (strace), RSS over {config['rss_count']:,} messages "
        f"(sampled at {config['rss_sample']:,}), a {config['stall_seconds']} s stalled reader "
        f"in a {config['stall_count']:,}-message blast, startup ({config['startup_runs']} runs)."
    )
    if stream:
        out(
            f"- Messages: `strategy.signal` envelopes of {stream['envelope_bytes_min']}-"
            f"{stream['envelope_bytes_max']} bytes (mean {stream['envelope_bytes_mean']:.0f}), "
            f"{stream['distinct_payloads']} distinct OrderStatusDTO-like payloads, pre-encoded."
        )
    if config["skipped_metrics"]:
        out(f"- Metrics skipped on request: {', '.join(config['skipped_metrics'])}.")
    out("")
    out("## Clients")
    out("")
    out("| client | version | what runs |")
    out("|---|---|---|")
    for name, info in results["clients"].items():
        what = info["description"] if info["available"] else f"**skipped**: {info['skipped']}"
        out(f"| {name} | {info['version'] or '-'} | {what} |")
    out("")

    if summary.get("targets"):
        out("## Targets, c2ws as measured here")
        out("")
        out(
            "Issue 22's targets, issue 21's (the library) and issue 15's that still stand.  "
            "Throughput ratios are against the lean bare loop (the library's against the one "
            "measured beside it); the modes against plain NDJSON on the same sink; "
            "latency is c2ws's p99 minus the bare loop's in the same round (the loop "
            "flushing every line), median over rounds."
        )
        out("")
        out("| issue | target | measured | met |")
        out("|---|---|---|---|")
        for row in summary["targets"]:
            met = "-" if row["met"] is None else ("yes" if row["met"] else "**no**")
            out(f"| {row.get('issue', 15)} | {row['target']} | {row['shown']} | {met} |")
        out("")

    if "ceiling" in summary:
        ceiling = summary["ceiling"]
        fastest = max(
            (
                _get(summary, f"throughput_{sink}", name, "msgs_per_s") or 0
                for sink in ("null", "pipe")
                for name in names
            ),
            default=0,
        )
        out("## The feed server is not the bottleneck")
        out("")
        out(
            "The feed server process against `peers/discard.py` (subscribes, then `recv_into` "
            "and drops bytes until EOF): the rate it can feed any client at."
        )
        out("")
        if ceiling["median"]:
            share = max(
                (
                    _get(summary, f"throughput_{sink}", name, "server_cpu_share") or 0
                    for sink in ("null", "pipe")
                    for name in names
                ),
                default=0,
            )
            out(
                f"- {_rate(ceiling['median'])} msg/s median "
                f"({_rate(ceiling['min'])} in the slowest round), "
                f"{ceiling['mib_per_s']:,.0f} MiB/s.  The fastest client below reaches "
                f"{_rate(fastest)} msg/s: the server's slowest round is "
                f"**{ceiling['min'] / fastest:.1f}x** that, its median "
                f"{ceiling['median'] / fastest:.1f}x."
                if fastest
                else "- no client throughput to compare with."
            )
            out(
                f"- During the client throughput runs the server used at most {share:.0%} of "
                "a core (its CPU time over the run's duration)."
            )
        else:
            out("- failed: see results.json.")
        out("")

    for sink, title, what in (
        (
            "null",
            "Throughput to /dev/null",
            "stdout is /dev/null; the end is the client's last "
            "`write()`, seen as its `/proc/<pid>/io` wchar stopping (polled every 2 ms)",
        ),
        (
            "pipe",
            "Throughput to a pipe",
            "stdout is a pipe (64 KiB, the default) that the harness "
            "drains with `os.read`; the end is the read that completes the last message",
        ),
    ):
        section = summary.get(f"throughput_{sink}")
        if not section:
            continue
        out(f"## {title}")
        out("")
        out(f"Messages per second from the server's first stream frame to the end; {what}.")
        out("")
        out("| client | msg/s (median) | x lean bare loop |")
        out("|---|---|---|")
        for name in sorted(names, key=lambda n: -(section[n]["msgs_per_s"] or 0)):
            entry = section[name]
            failed = f" ({len(entry['errors'])} failed)" if entry["errors"] else ""
            out(
                f"| {name} | {_rate(entry['msgs_per_s'])}{failed} | {_ratio_cell(entry['ratio'])} |"
            )
        out("")

    rates = [rate for rate, _ in config["latency"] if f"latency_{rate}" in summary]
    if rates:
        load = config.get("latency_load", "none")
        out("## Latency added")
        out("")
        out(
            "Milliseconds from the server's CLOCK_MONOTONIC stamp (taken just before the frame "
            "is written) to the harness's `os.read` that returns the line from the client's "
            "stdout pipe.  Medians over rounds of each round's percentile; *p99 added* is "
            "the client's p99 minus the bare loop's in the same round (median, min-max), "
            "the ratio the one over the other (lower is better).  In these runs the bare "
            "loop flushes every line (`--flush-each-line`): the lowest latency a loop can "
            "have, so what another client adds is read against the floor."
        )
        out("")
        if load != "none":
            out(
                "Under load: during every latency run another process (a Python busy loop) "
                + (
                    "pinned to the last CPU"
                    if load == "pinned"
                    else "wherever the scheduler puts it"
                )
                + " keeps a core busy; *busy core* is the share of a core it had over the "
                "run."
            )
            out("")
        for rate in rates:
            section = summary[f"latency_{rate}"]
            out(f"At {rate:,} msg/s:")
            out("")
            out(
                "| client | p50 ms | p99 ms | p99.9 ms | max ms | p99 added ms | p99 x bare "
                "| busy core | kept up |"
            )
            out("|---|---|---|---|---|---|---|---|---|")
            for name in names:
                entry = section[name]
                share = entry["received_share"]
                kept = (
                    "-"
                    if share is None
                    else ("yes" if share >= 1 else f"**no**: {share:.0%} by the deadline")
                )
                failed = f" ({len(entry['errors'])} failed)" if entry["errors"] else ""
                busy = entry.get("busy_core_share")
                out(
                    f"| {name}{failed} | {_ms(entry['p50_ms'])} | {_ms(entry['p99_ms'])} | "
                    f"{_ms(entry['p999_ms'])} | {_ms(entry['max_ms'])} | "
                    f"{_added_cell(entry.get('p99_added_ms'))} | "
                    f"{_ratio_cell(entry['p99_ratio'])} | "
                    f"{'-' if busy is None else f'{busy:.0%}'} | {kept} |"
                )
            out("")

    if "pty" in summary:
        out("## On a terminal")
        out("")
        out(
            f"Each client's stdout and stderr on a {160}x{40} pseudo-terminal that the harness "
            "drains as fast as it can; the end is the moment the last message's symbol "
            "(`ZZEND`) appears on it."
        )
        out("")
        out("| variant | msg/s (median) |")
        out("|---|---|")
        for variant, entry in summary["pty"].items():
            failed = f" ({len(entry['errors'])} failed)" if entry["errors"] else ""
            out(f"| {variant}{failed} | {_rate(entry['msgs_per_s'])} |")
        out("")
        for label, spread in summary["pty_ratios"].items():
            if spread["median"] is not None:
                out(f"- {label}: {_ratio_cell(spread)}")
        out("")

    if "modes" in summary:
        out("## c2ws's realistic modes")
        out("")
        out(
            "c2ws as it is run for real, each against plain NDJSON on the same sink in the "
            "same round: `--state FILE` (exactly once across restarts), `-o csv`/`-o tsv`, "
            "stdout a pipe the harness drains or a file opened for appending (`>> file`, "
            "read back as it grows, every 2 ms when idle).  The end is the moment the last "
            "message's symbol (`ZZEND`) has come out.  A run still short of it after "
            f"{config.get('modes_seconds', 0):g} s is measured on the messages written by "
            "then (*partial*)."
        )
        out("")
        out("| mode | msg/s (median) | x NDJSON on the same sink | partial runs |")
        out("|---|---|---|---|")
        for variant, entry in summary["modes"].items():
            failed = f" ({len(entry['errors'])} failed)" if entry["errors"] else ""
            out(
                f"| `{variant}`{failed} | {_rate(entry['msgs_per_s'])} | "
                f"{_ratio_cell(entry['ratio'])} | {entry['partial_rounds'] or '-'} |"
            )
        out("")

    if "library" in summary:
        out("## The library")
        out("")
        out(
            "c2ws as a Python library (`peers/library_loop.py`): `for msg in "
            "c2ws.stream(...)` writing each message's `.line` to the buffered stdout "
            "(`library-line`), and the same reading `.symbol`, `.side` and `.quantity` of "
            "every message first, which decodes its payload (`library-fields`).  Each against "
            "the lean bare loop run beside it in the same round, in an order rotated per "
            "round; to a pipe, as *Throughput to a pipe* measures."
        )
        out("")
        out("| client | msg/s (median) | x lean bare loop |")
        out("|---|---|---|")
        for variant, entry in summary["library"].items():
            failed = f" ({len(entry['errors'])} failed)" if entry["errors"] else ""
            out(f"| {variant}{failed} | {_rate(entry['msgs_per_s'])} | "
                f"{_ratio_cell(entry['ratio'])} |")
        out("")

    if "idle" in summary or "syscalls" in summary:
        out("## Idle: heartbeats only")
        out("")
        out(
            "A subscribed client, no stream, a heartbeat every "
            f"{config['idle_interval']} s.  CPU: all its threads' "
            "`/proc/<pid>/task/*/schedstat` run time over the window, per heartbeat sent in "
            "it.  Every client of a round runs at the same time, each on a feed server of "
            "its own, over the same window: a heartbeat's few tens of microseconds move by 2x "
            "with the machine's state, and side by side the clients share it.  Syscalls: "
            "`strace -c -f` attached for a separate window (once per run).  "
            "websocat and wscat are answered through their stdin by the harness, whose own "
            "work is not counted."
        )
        out("")
        out("| client | CPU us/heartbeat | x bare | syscalls/heartbeat | most frequent |")
        out("|---|---|---|---|---|")
        for name in names:
            idle = _get(summary, "idle", name) or {}
            trace = _get(summary, "syscalls", name) or {}
            top = ", ".join(
                f"{call} {count:.1f}"
                for call, count in list((trace.get("syscalls_top") or {}).items())[:4]
            )
            calls = trace.get("syscalls_per_heartbeat")
            out(
                f"| {name} | {_rate(idle.get('cpu_us_per_heartbeat'))} | "
                f"{_ratio_cell(idle.get('ratio'))} | "
                f"{'-' if calls is None else f'{calls:.1f}'} | {top or trace.get('error', '-')} |"
            )
        out("")

    if "memory" in summary:
        out("## Memory")
        out("")
        out(
            "VmRSS from `/proc/<pid>/status`: one blast to a pipe drained at full speed, "
            "sampled when the stream starts, after the first sample count and at the end; "
            "growth is the end minus the first sample."
        )
        out("")
        out(
            f"| client | RSS at start | at {config['rss_sample']:,} | at {config['rss_count']:,} "
            "| growth | peak (HWM) |"
        )
        out("|---|---|---|---|---|---|")
        for name in names:
            steady = _get(summary, "memory", name) or {}
            if "error" in steady:
                out(f"| {name} | error: {steady['error']} | | | | |")
                continue
            growth = steady.get("growth_mib")
            out(
                f"| {name} | {kib(steady.get('rss_start_kib'))} | "
                f"{kib(steady.get('rss_sample_kib'))} | {kib(steady.get('rss_end_kib'))} | "
                f"{'-' if growth is None else f'{growth:+.1f} MiB'} | "
                f"{kib(steady.get('hwm_end_kib'))} |"
            )
        out("")

    if "scale" in summary:
        _scale_section(out, summary, config)

    if "stall" in summary:
        _stall_section(out, summary, config, names)

    if "startup" in summary:
        startup = results["once"]["startup"]
        out("## Startup")
        out("")
        out(
            f"Median wall time of {startup['runs']} runs ({startup['tool']}"
            + (", `-N`, after warm-up runs" if startup["tool"] == "hyperfine" else ", interleaved")
            + "), same interpreter as c2ws."
        )
        out("")
        out("| command | median ms | x `python -c pass` |")
        out("|---|---|---|")
        for command, entry in summary["startup"].items():
            ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.1f}"
            out(f"| `{command}` | {entry['median_ms']:.1f} | {ratio} |")
        out("")

    nats = summary.get("nats")
    if isinstance(nats, dict) and "ratio_median" in nats:
        rates = nats["median_msg_per_s"]
        out("## NATS JetStream publishing (`--to nats://`)")
        out("")
        out(
            f"{nats['count']:,} signal envelopes in batches of {nats['batch']:,}, every ack "
            "awaited, into a fresh file-storage stream of a nats-server on 127.0.0.1 "
            "(bench/nats_publish.py): c2ws's sink as `subscribe --to` drives it (pipelined "
            "across batches); the plain loop is nats-py's `publish_async` for every message "
            "with the same subjects and headers, then `publish_async_completed`. Median of "
            f"{nats['rounds']} round(s)."
        )
        out("")
        out("| publisher | msg/s (median) |")
        out("|---|---|")
        out(f"| plain nats-py loop | {rates['plain']:,} |")
        out(f"| c2ws NATS sink | {rates['c2ws']:,} |")
        out("")
        met = "met" if nats["met"] else "**not met**"
        out(
            f"c2ws / plain: {nats['ratio_median']:.2f}x; target "
            f"{nats['target_msg_per_s']:,} msg/s: {met}."
        )
        out("")
    elif isinstance(nats, dict) and "skipped" in nats:
        out("## NATS JetStream publishing (`--to nats://`)")
        out("")
        out(f"Skipped: {nats['skipped']}.")
        out("")

    problems = _problems(results)
    if problems:
        out("## Failures and notes")
        out("")
        for problem in problems:
            out(f"- {problem}")
        out("")
    return "\n".join(lines)


def _added_cell(spread: Result | None) -> str:
    if not spread or spread.get("median") is None:
        return "-"
    if spread["n"] == 1:
        return f"{spread['median']:+.3f}"
    return f"{spread['median']:+.3f} ({spread['min']:+.3f} to {spread['max']:+.3f})"


def _window_ratios(many: Result, one: Result) -> list[float]:
    """Each scale window's CPU of ``many`` over ``one`` (empty: fewer than two windows)."""
    pairs = list(zip(many.get("windows") or [], one.get("windows") or [], strict=False))
    if len(pairs) < 2:
        return []
    return [m["cpu_ms_per_s"] / o["cpu_ms_per_s"] for m, o in pairs if o["cpu_ms_per_s"] > 0]


def _range(ratios: list[float] | None) -> str:
    """`` (min-max over N windows)`` when there were several."""
    if not ratios:
        return ""
    return f" ({min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} windows)"


# The scale section's floors: (how a line names it, what it is, what its many / one over
# 1.5x says).
_FLOORS: Final = {
    "floor": ("The floor's", "one thread, no work but answering each connection's heartbeats",
              "a 1.5x target is below what those heartbeats cost with no client around them"),
    "native": ("The native floor's",
               "the floor in C: no interpreter to wake, a heartbeat costs a read and a write",
               "no client in any language answers these heartbeats within 1.5x"),
}


def _scale_section(out: Callable[[str], None], summary: Result, config: Result) -> None:
    scale = summary["scale"]
    out("## Scale: many subscriptions, idle")
    out("")
    out(
        f"c2ws subscribed to one strategy's signals, and to {config['scale_strategies']:,} "
        "strategies' (one subscription each, spread by c2ws over connections of 100, C2's "
        "limit), side by side, each on a feed server of its own serving its connections "
        f"at once; no stream, a heartbeat every {config['scale_heartbeat']:g} s on every "
        "connection (C2 sends one every 30 s).  CPU: all the client's threads' run time "
        f"over the same {config.get('scale_windows', 1)} back-to-back window(s) of "
        f"{config['scale_seconds']:g} s, per second; memory at the end.  With several "
        "windows each ratio below is the median of the windows' ratios (min-max in "
        "brackets): a window holds one heartbeat per connection, each after a long sleep, "
        "whose cost varies with what the host reclaimed meanwhile (the page faults column: "
        "major faults are pages read back from disk)."
    )
    out("")
    out(
        "The floor (peers/raw_many.py) runs beside them, on feed servers of their own: the "
        "same connections and subscriptions in ONE thread blocked in epoll, raw sockets, a "
        "heartbeat found by a substring test and answered, nothing else; its many / one is "
        "what the heartbeats alone cost a client that must answer each connection's own.  "
        "The native floor (peers/raw_many.c, built with the machine's C compiler) is the "
        "same program in C."
    )
    out("")
    out(
        "| client | subscriptions | connections | threads | heartbeats in the window(s) | "
        "CPU ms/s | CPU ms/s per window | page faults minor/major | RSS | peak (HWM) |"
    )
    out("|---|---|---|---|---|---|---|---|---|---|")
    shown = {"one": "c2ws, one", "many": "c2ws, many", "floor-one": "floor, one",
             "floor-many": "floor, many", "native-one": "native floor, one",
             "native-many": "native floor, many"}
    for name, label in shown.items():
        entry = scale.get(name) or {}
        if "error" in entry:
            out(f"| {label} | error: {entry['error']} | | | | | | | | |")
            continue
        if not entry:
            continue
        windows = entry.get("windows") or []
        per_window = " / ".join(f"{w['cpu_ms_per_s']:.3f}" for w in windows)
        minor = sum(w.get("minor_faults") or 0 for w in windows)
        major = sum(w.get("major_faults") or 0 for w in windows)
        out(
            f"| {label} | {entry['subscriptions']} | {entry['connections']} | "
            f"{entry['threads']} | {entry['heartbeats']} | {entry['cpu_ms_per_s']:.3f} | "
            f"{per_window} | {minor}/{major} | "
            f"{kib(entry['rss_kib'])} | {kib(entry['hwm_kib'])} |"
        )
    out("")
    if scale.get("cpu_ratio") is not None:
        out(f"- CPU, many / one: **{scale['cpu_ratio']:.2f}x**"
            + _range(scale.get("window_ratios")))
        if scale.get("cpu_per_heartbeat_ratio") is not None:
            out(f"- CPU per heartbeat received, many / one: "
                f"**{scale['cpu_per_heartbeat_ratio']:.2f}x** (each connection is sent, and "
                "answers, its own heartbeats: the many-subscription c2ws gets one per "
                "connection)")
        for floor, (label, what, beyond) in _FLOORS.items():
            ratio = scale.get(f"{floor}_cpu_ratio")
            if ratio is None:
                continue
            out(f"- {label} CPU, many / one: **{ratio:.2f}x**"
                + _range(scale.get(f"{floor}_window_ratios")) + f" ({what})"
                + (f": {beyond}" if ratio > 1.5 else ""))
            if floor != "floor":
                continue
            many, floor_many = scale.get("many") or {}, scale.get("floor-many") or {}
            if many.get("cpu_ms_per_s") and floor_many.get("cpu_ms_per_s"):
                out(f"- c2ws many / the floor's many: "
                    f"**{many['cpu_ms_per_s'] / floor_many['cpu_ms_per_s']:.2f}x**")
        if scale.get("native_cpu_ratio") is None and scale.get("native_skipped"):
            out(f"- The native floor was not measured: {scale['native_skipped']}")
        out("")


def _stall_section(
    out: Callable[[str], None], summary: Result, config: Result, names: list[str]
) -> None:
    max_buffer = config.get("stall_max_buffer")
    out("## Stalled reader")
    out("")
    out(
        f"A {config['stall_count']:,}-message blast; after a tenth of it the harness stops "
        f"reading the client's stdout for {config['stall_seconds']} s, sampling VmRSS every "
        "50 ms, then reads on to the stream's last message.  The feed server serves "
        "reconnections: a `resume_from` within the last 1000 frames it sent is replayed "
        "from there, an older one gets a `gap` message and the stream goes on at the "
        "oldest retained frame (C2 replays at most 1000)."
    )
    out("")
    out(
        "- *growth in the stall*: the peak VmRSS during the stall minus VmRSS just before "
        "it: what the client itself holds for the stopped reader.  A client that blocks "
        "on its full stdout (the bare loop) holds next to nothing: its backlog waits in "
        "the pipe, the socket buffers and the server, outside its RSS.  A client that "
        "queues its output without bound can have taken in the whole blast before the "
        "stall begins: then it shows in *RSS before*, not in the growth.  Not the steady "
        "growth of the Memory section (that one is over a stream drained at full speed)."
    )
    out(
        "- *complete, in order*: every seq_id 1..N came out on stdout exactly once, "
        "ascending (the harness parses `seq_id` from each line)."
    )
    out(
        "- *connections*: 1 when the client never left; more when it closed and "
        "resubscribed, with the `resume_from` values it sent and the gaps the server "
        "answered with.  A client that closes resumes from the last message it holds; "
        "what the server had already sent beyond it (at blast speed, thousands of frames "
        "in the socket buffers) is replayed up to 1000 and the rest announced by the gap, "
        "as C2 would past its replay limit."
    )
    if max_buffer:
        out(
            f"- c2ws ran with `--max-buffer {max_buffer:,}` in this run only (default "
            "10,000), so that these sizes make it close and resume."
        )
    out("")
    out(
        "| client | RSS before | peak in the stall | growth in the stall | after | survived "
        "| complete, in order | connections |"
    )
    out("|---|---|---|---|---|---|---|---|")
    for name in names:
        stall = _get(summary, "stall", name) or {}
        if "error" in stall:
            out(f"| {name} | error: {stall['error']} | | | | | | |")
            continue
        survived = stall.get("survived")
        if survived is None:  # results.json of an older harness
            survived = stall.get("exit_status_during_stall") is None and not stall.get("note")
        growth = stall.get("growth_during_stall_mib")
        out(
            f"| {name} | {kib(stall.get('rss_before_kib'))} | "
            f"{kib(stall.get('rss_peak_stall_kib'))} | "
            f"{'-' if growth is None else f'{growth:+.1f} MiB'} | "
            f"{kib(stall.get('rss_after_kib'))} | {'yes' if survived else '**no**'} | "
            f"{_completeness(stall)} | {_connections(stall)} |"
        )
    out("")


def _completeness(stall: Result) -> str:
    if "complete_in_order" not in stall:
        return "-"
    if stall["complete_in_order"]:
        return "yes"
    parts = []
    if stall.get("missing_seq_ids"):
        parts.append(
            f"{stall['missing_seq_ids']:,} missing from {stall.get('first_missing_seq_id')}"
        )
    if stall.get("duplicate_seq_ids"):
        parts.append(f"{stall['duplicate_seq_ids']:,} doubled")
    if stall.get("out_of_order_seq_ids"):
        parts.append(f"{stall['out_of_order_seq_ids']:,} out of order")
    if stall.get("gap_lines"):
        parts.append(f"{stall['gap_lines']} gap written to stdout")
    return "**no**: " + ", ".join(parts)


def _connections(stall: Result) -> str:
    connections = stall.get("connections")
    if connections is None:
        return "-"
    resumes = stall.get("resumes") or []
    if not resumes:
        return str(connections)
    gaps = stall.get("gaps_sent") or 0
    detail = ", ".join(f"{value:,}" for value in resumes)
    return f"{connections} (resume_from {detail}; {gaps} gap{'s' if gaps != 1 else ''} sent)"


def _problems(results: Result) -> list[str]:
    found: list[str] = []
    for record in results["rounds"]:
        for section, entries in record.items():
            if not isinstance(entries, dict):
                continue
            candidates = entries.items() if "error" not in entries else [("server", entries)]
            for name, result in candidates:
                if isinstance(result, dict) and ("error" in result or result.get("note")):
                    text = result.get("error") or result.get("note")
                    found.append(f"round {record['round']}, {section}, {name}: {text}")
    for section, entries in results.get("once", {}).items():
        if isinstance(entries, dict):
            for name, result in entries.items():
                if isinstance(result, dict) and ("error" in result or result.get("note")):
                    found.append(f"{section}, {name}: {result.get('error') or result.get('note')}")
    return found
