"""Run every benchmark of bench/README.md in one interleaved run and write the results.

    python bench/run.py            # full sizes (about 15 minutes on 2 cores)
    python bench/run.py --quick    # tiny sizes, a few seconds: checks the harness works

Run it with the interpreter of a venv that has c2ws and the peers installed (see
bench/README.md: bench/setup.sh makes bench/.venv).  Writes results.json (every
measurement of every round) and RESULTS.md (the summary) into --out (default: bench/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import clients
import measure
import nats_publish
import report
from feedctl import BENCH, FeedServer

LAUNCHERS = {name: client.launch for name, client in clients.ALL.items()}
METRICS = (
    "ceiling",
    "throughput",
    "latency",
    "pty",
    "modes",
    "library",
    "idle",
    "syscalls",
    "memory",
    "scale",
    "stall",
    "startup",
    "nats",
)


def parse_rates(text: str) -> list[tuple[int, int]]:
    """``1000:8000,10000:40000`` -> [(rate, count), ...]."""
    pairs = []
    for part in text.split(","):
        rate, _, count = part.partition(":")
        pairs.append((int(rate), int(count)))
    return pairs


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one round (a smoke test of the harness)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 1)")
    parser.add_argument("--clients", help=f"comma-separated subset of {','.join(clients.ALL)}")
    parser.add_argument(
        "--skip", default="", help=f"comma-separated metrics to skip: {','.join(METRICS)}"
    )
    parser.add_argument("--count", type=int, help="messages per throughput run (default 200000)")
    parser.add_argument("--latency", help="rate:count pairs (default 1000:8000,10000:40000)")
    parser.add_argument(
        "--latency-load",
        choices=measure.LOADS,
        default="pinned",
        help="during the latency runs another process keeps a core busy: pinned to the "
        "last CPU (default), free (anywhere), none",
    )
    parser.add_argument("--pty-count", type=int, help="messages per pty run (default 50000)")
    parser.add_argument(
        "--modes-count", type=int, help="messages per c2ws mode run (default: --count)"
    )
    parser.add_argument(
        "--modes-seconds",
        type=float,
        help="a mode run still short of the last message after this long is measured on "
        "what it wrote by then (default 15 s; quick 5)",
    )
    parser.add_argument(
        "--scale-strategies",
        type=int,
        help="strategies of the scale run's many-subscription c2ws (default 1000: 10 "
        "connections; quick 200)",
    )
    parser.add_argument(
        "--scale-seconds", type=float, help="the scale run's idle window (default 30 s)"
    )
    parser.add_argument(
        "--scale-windows",
        type=int,
        help="back-to-back idle windows of the scale run, its ratios the median of theirs "
        "(default 4; quick 1)",
    )
    parser.add_argument(
        "--scale-heartbeat",
        type=float,
        help="heartbeat interval per connection in the scale run (default 30 s, C2's)",
    )
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window (default 4)")
    parser.add_argument(
        "--idle-interval",
        type=float,
        default=0.05,
        help="heartbeat interval in the idle runs (default 0.05 s)",
    )
    parser.add_argument("--rss-count", type=int, help="messages of the RSS run (default 1000000)")
    parser.add_argument("--rss-sample", type=int, help="first RSS sample (default 100000)")
    parser.add_argument(
        "--stall-count", type=int, help="messages of the stall run (default 200000)"
    )
    parser.add_argument("--stall-seconds", type=float, help="how long the reader stops (default 3)")
    parser.add_argument(
        "--stall-max-buffer",
        type=int,
        help="c2ws --max-buffer in the stall run only (default: c2ws's own, 10000; quick "
        "1000, so that the quick stall makes c2ws close and resume)",
    )
    parser.add_argument(
        "--nats-count",
        type=int,
        help="messages per NATS JetStream publishing run (default 100000; quick 3000)",
    )
    parser.add_argument("--startup-runs", type=int, help="runs per startup command (default 20)")
    parser.add_argument("--settle", type=float, help="pause between ack and stream (default 0.3 s)")
    parser.add_argument(
        "--out", type=Path, default=BENCH, help="where results.json and RESULTS.md go"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite RESULTS.md from the results.json in --out",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "rounds": 1 if quick else 5,
        "count": 3_000 if quick else 200_000,
        "latency": "1000:200,10000:1000" if quick else "1000:8000,10000:40000",
        "pty_count": 1_500 if quick else 50_000,
        "modes_count": None,
        "modes_seconds": 5.0 if quick else 15.0,
        "scale_strategies": 200 if quick else 1000,
        "scale_seconds": 1.0 if quick else 30.0,
        "scale_windows": 1 if quick else 4,
        "scale_heartbeat": 0.5 if quick else 30.0,
        "idle_seconds": 0.5 if quick else 4.0,
        "rss_count": 20_000 if quick else 1_000_000,
        "rss_sample": 2_000 if quick else 100_000,
        "stall_count": 8_000 if quick else 200_000,
        # Quick: long enough for c2ws to give up waiting for its stalled writer (0.5 s
        # without progress) and pass --max-buffer, so it closes and resumes.
        "stall_seconds": 1.5 if quick else 3.0,
        "stall_max_buffer": 1_000 if quick else 0,
        "startup_runs": 3 if quick else 20,
        "nats_count": 3_000 if quick else 100_000,
        "settle": 0.05 if quick else 0.3,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.modes_count is None:
        args.modes_count = args.count
    args.latency_pairs = parse_rates(args.latency)
    args.skipped_metrics = {name for name in args.skip.split(",") if name}
    unknown = args.skipped_metrics - set(METRICS)
    if unknown:
        parser.error(f"unknown metrics in --skip: {', '.join(sorted(unknown))}")
    names = args.clients.split(",") if args.clients else list(clients.ALL)
    for name in names:
        if name not in clients.ALL:
            parser.error(f"unknown client {name!r}; known: {', '.join(clients.ALL)}")
    if clients.BARE not in names:
        parser.error("the bare loop is the reference of every ratio: keep it in --clients")
    args.client_names = names
    return args


def say(text: str) -> None:
    print(text, flush=True)


class Runner:
    def __init__(self, args: argparse.Namespace, server: FeedServer) -> None:
        self.args = args
        self.server = server
        self.available: list[str] = []
        self.results: dict[str, Any] = {"rounds": [], "once": {}}

    def guarded(self, label: str, measurement: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        began = time.monotonic()
        try:
            result = measurement()
        except Exception as error:  # a broken run is a result to report, not a crash
            result = {"error": f"harness: {type(error).__name__}: {error}"}
        if not self.server.alive:
            raise SystemExit(f"the feed server died during {label}; see its log")
        say(f"  {label:<34} {report.one_line(result)}  [{time.monotonic() - began:.1f} s]")
        return result

    def rotated(self, names: list[str], round_index: int) -> list[str]:
        shift = round_index % len(names) if names else 0
        return names[shift:] + names[:shift]

    def per_client(
        self,
        label: str,
        names: list[str],
        sink: clients.Sink,
        measurement: Callable[[clients.Launch], dict[str, Any]],
        launchers: Mapping[str, Callable[[str, clients.Sink], clients.Launch]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """``measurement`` of each client in turn, each started afresh."""
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            launcher = (launchers or LAUNCHERS)[name]
            found[name] = self.guarded(
                f"{label}: {name}", partial(self.measure_one, measurement, launcher, sink)
            )
        return found

    def measure_one(
        self,
        measurement: Callable[[clients.Launch], dict[str, Any]],
        launcher: Callable[[str, clients.Sink], clients.Launch],
        sink: clients.Sink,
    ) -> dict[str, Any]:
        return measurement(launcher(self.server.url, sink))

    def round(self, index: int) -> dict[str, Any]:
        args, server, skip = self.args, self.server, self.args.skipped_metrics
        order = self.rotated(self.available, index)
        record: dict[str, Any] = {"round": index + 1, "order": order}
        say(f"round {index + 1} of {args.rounds}: {', '.join(order)}")
        if "ceiling" not in skip:
            record["ceiling"] = self.guarded(
                "feed server vs discard reader", partial(measure.server_ceiling, server, args.count)
            )
        if "throughput" not in skip:
            for sink in ("null", "pipe"):
                record[f"throughput_{sink}"] = self.per_client(
                    f"throughput to {sink}",
                    order,
                    sink,
                    partial(
                        measure.throughput, server, sink=sink, count=args.count, settle=args.settle
                    ),
                )
        if "latency" not in skip:
            for rate, count in args.latency_pairs:
                record[f"latency_{rate}"] = self.per_client(
                    f"latency at {rate}/s",
                    order,
                    "pipe",
                    partial(
                        measure.latency,
                        server,
                        rate=rate,
                        count=count,
                        settle=args.settle,
                        load=args.latency_load,
                    ),
                    clients.LATENCY_LAUNCHERS,
                )
        if "pty" not in skip:
            variants = [
                v for v, (base, _) in clients.PTY_VARIANTS.items() if base in self.available
            ]
            record["pty"] = self.per_client(
                "pty",
                self.rotated(variants, index),
                "pty",
                partial(
                    measure.throughput, server, sink="pty", count=args.pty_count, settle=args.settle
                ),
                {variant: launcher for variant, (_, launcher) in clients.PTY_VARIANTS.items()},
            )
        if "modes" not in skip and "c2ws" in self.available:
            record["modes"] = self.modes(index)
        if "library" not in skip and "c2ws" in self.available:
            record["library"] = self.library(index)
        if "idle" not in skip:
            record["idle"] = self.idle_side_by_side(order)
        return record

    def modes(self, index: int) -> dict[str, dict[str, Any]]:
        """c2ws's realistic modes and plain NDJSON on the same sinks, one after the other
        in an order rotated per round."""
        args = self.args
        found: dict[str, dict[str, Any]] = {}
        for variant in self.rotated(list(clients.MODES), index):
            sink, launcher, _ = clients.MODES[variant]
            found[variant] = self.guarded(
                f"c2ws {variant}",
                partial(
                    measure.throughput,
                    self.server,
                    launcher(self.server.url, sink),
                    sink=sink,
                    count=args.modes_count,
                    settle=args.settle,
                    end_by_marker=True,
                    max_seconds=args.modes_seconds,
                ),
            )
        return found

    def library(self, index: int) -> dict[str, dict[str, Any]]:
        """``for msg in c2ws.stream(...)`` reading ``.line``, and reading
        ``.symbol``/``.side``/``.quantity``, and the lean bare loop they are compared
        with, one after the other in an order rotated per round, to a pipe."""
        args = self.args
        launchers = {
            variant: make(args.count) for variant, make in clients.LIBRARY_VARIANTS.items()
        }
        return self.per_client(
            "library to pipe",
            self.rotated(list(launchers), index),
            "pipe",
            partial(
                measure.throughput, self.server, sink="pipe", count=args.count,
                settle=args.settle,
            ),
            launchers,
        )

    def idle_side_by_side(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Every client idle at the same time, over the same window (see
        measure.idle_side_by_side); one line per client."""
        args = self.args
        launchers = {name: partial(LAUNCHERS[name], sink="pipe") for name in names}
        began = time.monotonic()
        try:
            found = measure.idle_side_by_side(
                launchers, interval=args.idle_interval, seconds=args.idle_seconds,
                warmup=0.2 if args.quick else 1.0,
            )
        except Exception as error:  # a broken run is a result to report, not a crash
            found = {name: {"error": f"harness: {type(error).__name__}: {error}"}
                     for name in names}
        took = time.monotonic() - began
        for name in names:
            say(f"  {'idle CPU (side by side): ' + name:<34} {report.one_line(found[name])}"
                f"  [{took:.1f} s]")
        return found

    def idle_measurement(self, trace: bool = False) -> Callable[[clients.Launch], dict[str, Any]]:
        args = self.args
        return partial(
            measure.idle,
            self.server,
            interval=args.idle_interval,
            seconds=args.idle_seconds,
            warmup=0.2 if args.quick else 1.0,
            trace=trace,
        )

    def scale(self) -> dict[str, Any]:
        """c2ws idle with one subscription and with --scale-strategies, side by side."""
        args = self.args
        native, why_not = clients.native_floor()
        native_missing = why_not if native is None else None
        launchers = clients.scale_launchers(args.scale_strategies, native)
        per_connection = 100  # C2's limit, which c2ws fills before opening another
        variants = {
            "one": measure.ScaleVariant(partial(launchers["one"], sink="pipe"), 1, 1),
            "many": measure.ScaleVariant(
                partial(launchers["many"], sink="pipe"),
                args.scale_strategies,
                -(-args.scale_strategies // per_connection),
            ),
        }
        # The floor: one thread polling the same connections (peers/raw_many.py), and
        # the same in C (peers/raw_many.c) where this machine can build it.
        for floor in ("floor", "native"):
            if floor == "native" and native_missing is not None:
                continue
            for name in ("one", "many"):
                given = variants[name]
                variants[f"{floor}-{name}"] = measure.ScaleVariant(
                    partial(launchers[f"{floor}-{name}"], sink="pipe"), given.subscriptions,
                    given.connections)
        began = time.monotonic()
        try:
            found: dict[str, Any] = measure.scale(
                variants,
                interval=args.scale_heartbeat,
                seconds=args.scale_seconds,
                warmup=0.2 if args.quick else 1.0,
                windows=args.scale_windows,
            )
        except Exception as error:  # a broken run is a result to report, not a crash
            found = {name: {"error": f"harness: {type(error).__name__}: {error}"}
                     for name in variants}
        took = time.monotonic() - began
        for name in variants:
            say(f"  {'scale, idle: ' + name:<34} {report.one_line(found[name])}"
                f"  [{took:.1f} s]")
        if native_missing is not None:
            found["native_skipped"] = native_missing
            say(f"  scale, idle: native floor skipped: {native_missing}")
        return found

    def once(self) -> dict[str, Any]:
        args, server, skip = self.args, self.server, self.args.skipped_metrics
        record: dict[str, Any] = {}
        names = self.available
        say("once per run")
        if "syscalls" not in skip:
            if shutil.which("strace") is None:
                record["syscalls"] = {"skipped": "strace is not installed"}
                say("  syscalls: skipped, strace is not installed")
            else:
                record["syscalls"] = self.per_client(
                    "syscalls (strace -c -f)", names, "pipe", self.idle_measurement(trace=True)
                )
        if "memory" not in skip:
            record["memory"] = self.per_client(
                f"RSS over {args.rss_count:,}",
                names,
                "pipe",
                partial(
                    measure.memory,
                    server,
                    count=args.rss_count,
                    sample_at=args.rss_sample,
                    settle=args.settle,
                ),
            )
        if "scale" not in skip:
            if "c2ws" in self.available:
                record["scale"] = self.scale()
            else:
                record["scale"] = {"skipped": "c2ws is not available"}
        if "stall" not in skip:
            launchers = dict(LAUNCHERS)
            if args.stall_max_buffer:
                launchers["c2ws"] = clients.c2ws_launch(
                    "ndjson", "--max-buffer", str(args.stall_max_buffer)
                )
            record["stall"] = self.per_client(
                "stalled reader",
                names,
                "pipe",
                partial(
                    measure.stalled,
                    server,
                    count=args.stall_count,
                    stall_after=max(1, args.stall_count // 10),
                    stall_seconds=args.stall_seconds,
                    settle=args.settle,
                ),
                launchers,
            )
        if "startup" not in skip:
            if "c2ws" in self.available:
                c2ws = str(clients.c2ws_command())
                commands = {
                    "python -c pass": [sys.executable, "-c", "pass"],
                    "c2ws --version": [c2ws, "--version"],
                    "c2ws subscribe --help": [c2ws, "subscribe", "--help"],
                }
                record["startup"] = self.guarded(
                    "startup", lambda: measure.startup(commands, args.startup_runs)
                )
            else:
                record["startup"] = {"skipped": "c2ws is not available"}
        if "nats" not in skip:
            # Issue 23: --to nats:// against the plain nats-py publisher loop, the same
            # messages and batches, into a nats-server of its own (bench/nats_publish.py).
            record["nats"] = self.guarded(
                "NATS publish, acks awaited",
                lambda: nats_publish.measure(args.nats_count, args.rounds, batch=1_000),
            )
        return record


def machine() -> dict[str, Any]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    def tool(argv: list[str]) -> str:
        if shutil.which(argv[0]) is None:
            return "not installed"
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if text else "?"

    packages = {}
    for name in (
        "c2ws", "websocket-client", "orjson", "msgspec", "websockets", "aiohttp", "picows",
        "aiofastnet", "typer", "rich",
    ):
        try:
            from importlib.metadata import version

            packages[name] = version(name)
        except Exception:
            packages[name] = "not installed"
    return {
        "commit": tool(["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"]),
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": packages,
        "node": tool(["node", "--version"]),
        "strace": tool(["strace", "--version"]),
        "hyperfine": tool(["hyperfine", "--version"]),
    }


def main(argv: list[str] | None = None) -> None:
    args = options(argv)
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
        results["summary"] = report.summarize(results)
        (args.out / "RESULTS.md").write_text(report.markdown(results))
        say(f"rewrote {args.out / 'RESULTS.md'} from results.json")
        return
    began = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(began)),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "load_average_start": load_average(),
        "config": {
            "quick": args.quick,
            "rounds": args.rounds,
            "count": args.count,
            "latency": args.latency_pairs,
            "pty_count": args.pty_count,
            "latency_load": args.latency_load,
            "modes_count": args.modes_count,
            "modes_seconds": args.modes_seconds,
            "scale_strategies": args.scale_strategies,
            "scale_seconds": args.scale_seconds,
            "scale_windows": args.scale_windows,
            "scale_heartbeat": args.scale_heartbeat,
            "idle_seconds": args.idle_seconds,
            "idle_interval": args.idle_interval,
            "rss_count": args.rss_count,
            "rss_sample": args.rss_sample,
            "stall_count": args.stall_count,
            "stall_seconds": args.stall_seconds,
            "stall_max_buffer": args.stall_max_buffer or None,
            "startup_runs": args.startup_runs,
            "nats_count": args.nats_count,
            "settle": args.settle,
            "skipped_metrics": sorted(args.skipped_metrics),
        },
        "clients": {},
    }
    log_path = args.out / "feed_server.log"
    with FeedServer(log_path=log_path) as server:
        runner = Runner(args, server)
        for name in args.client_names:
            client = clients.ALL[name]
            reason = client.unavailable()
            results["clients"][name] = {
                "description": client.description,
                "available": reason is None,
                "skipped": reason,
                "version": client.version() if reason is None else None,
            }
            if reason is None:
                runner.available.append(name)
            else:
                say(f"skipping {name}: {reason}")
        if clients.BARE not in runner.available:
            raise SystemExit(
                f"the bare loop cannot run: {results['clients'][clients.BARE]['skipped']}"
            )
        results["stream"] = stream_shape()
        results["rounds"] = []
        for index in range(args.rounds):
            record = runner.round(index)
            record["load_average_after"] = load_average()
            results["rounds"].append(record)
        results["once"] = runner.once()
    results["load_average_end"] = load_average()
    results["duration_s"] = time.time() - began
    results["summary"] = report.summarize(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "RESULTS.md").write_text(report.markdown(results))
    if log_path.exists() and log_path.stat().st_size == 0:
        log_path.unlink()
    say(f"done in {results['duration_s'] / 60:.1f} min: {args.out / 'RESULTS.md'}")


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [round(value, 2) for value in os.getloadavg()]


def stream_shape() -> dict[str, Any]:
    import statistics

    import wire

    sizes = [len(payload) + wire.ENVELOPE_OVERHEAD for payload in wire.payload_pool(12345678)]
    return {
        "envelope_bytes_min": min(sizes),
        "envelope_bytes_mean": statistics.mean(sizes),
        "envelope_bytes_max": max(sizes),
        "distinct_payloads": len(sizes),
    }


if __name__ == "__main__":
    main()
