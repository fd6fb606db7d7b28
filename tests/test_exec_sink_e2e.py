"""Issue 23, ``--exec CMD``: the real CLI against the reference server, running a real
handler per message: success (the line on stdin, the fields in C2_* variables, its
output on stderr prefixed), a retry then success, a dead letter, a hung handler killed
with its process group, and kill -9 of c2ws in the middle of a handler (that message
runs again after the restart, as documented)."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from test_resilience_e2e import FAST, KEY, outcome, start, wait_subscribed

from c2ws.exitcodes import ExitCode
from c2ws.testing import TestServer

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(1, 2),
                                           heartbeat_interval=0.5, heartbeat_grace=1.0)

# One handler for every test; what it does is said by HANDLER_* variables.  It logs each
# run as a JSON line (its C2_* variables and its stdin) to HANDLER_LOG.
HANDLER = textwrap.dedent("""\
    import json, os, subprocess, sys, time
    line = sys.stdin.buffer.read()
    env = {k: v for k, v in os.environ.items() if k.startswith("C2_")}
    seq = env["C2_SEQ_ID"]
    log = os.environ["HANDLER_LOG"]
    mode = os.environ.get("HANDLER_MODE", "ok")
    runs = sum(1 for entry in open(log) if json.loads(entry)["env"]["C2_SEQ_ID"] == seq) \\
        if os.path.exists(log) else 0
    with open(log, "a") as out:
        out.write(json.dumps({"env": env, "stdin": line.decode(), "run": runs + 1}) + "\\n")
    print("handled", seq, "\\x1b[31mred\\x1b[0m", flush=True)
    print("a warning", file=sys.stderr, flush=True)
    if mode == "fail-first" and runs == 0:
        sys.exit(5)
    if mode == "fail-seq-2" and seq == "2":
        sys.exit(3)
    if mode == "hang-seq-1" and seq == "1":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open(os.environ["HANDLER_CHILD"], "w").write(str(child.pid))
        child.wait()
    if mode == "block-seq-2" and seq == "2" and runs == 0:
        open(os.environ["HANDLER_STARTED"], "w").write(str(os.getpid()))
        while not os.path.exists(os.environ["HANDLER_RELEASE"]):
            time.sleep(0.05)
""")


def payload(strategy_id: int, n: int) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "Side": "1" if n % 2 else "2", "OrderType": "2",
            "OrderQuantity": 10 + n, "Limit": 4312.25, "C2Symbol": {"FullSymbol": "@ESZ6"},
            "StrategyName": "Alpha Momentum"}


def runs(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def handler(tmp_path: Path) -> tuple[str, Path]:
    script = tmp_path / "handler.py"
    script.write_text(HANDLER)
    return f"{sys.executable} {script}", tmp_path / "handler.log"


def exec_run(server: TestServer, command: str, log: Path, *args: str,
             mode: str = "ok", **env: str) -> Any:
    return start(server, "1", "-c", "signal", "--exec", command, *FAST, *args,
                 env={"HANDLER_LOG": str(log), "HANDLER_MODE": mode, **env})


def test_each_message_runs_the_command_with_its_line_and_fields(
    server: TestServer, handler: tuple[str, Path],
) -> None:
    command, log = handler
    process = exec_run(server, command, log, "-n", "3")
    wait_subscribed(server, 1, 1)
    sent = [server.publish(1, payload(1, n)) for n in range(3)]
    out, raw_err = process.communicate(timeout=45)
    err = raw_err.decode()
    assert process.returncode == 0, err
    assert out == b""  # the messages went to the sink
    done = runs(log)
    assert [entry["env"]["C2_SEQ_ID"] for entry in done] == ["1", "2", "3"]
    first = done[0]
    assert json.loads(first["stdin"]) == sent[0] and first["stdin"].endswith("\n")
    assert first["env"] | {"C2_TIMESTAMP": ""} == {
        "C2_MSG_TYPE": "strategy.signal", "C2_CHANNEL": "strategy.signal",
        "C2_STRATEGY_ID": "1", "C2_SEQ_ID": "1", "C2_TIMESTAMP": "",
        "C2_STRATEGY_NAME": "Alpha Momentum", "C2_SIGNAL_ID": "", "C2_SIDE": "SELL",
        "C2_OPEN_CLOSE": "", "C2_SYMBOL": "@ESZ6", "C2_QUANTITY": "10",
        "C2_FILLED_QUANTITY": "", "C2_ORDER_TYPE": "LIMIT", "C2_TIME_IN_FORCE": "",
        "C2_STATUS": "", "C2_LIMIT_PRICE": "4312.25", "C2_STOP_PRICE": "",
        "C2_AVG_FILL_PRICE": "",
    }
    assert first["env"]["C2_TIMESTAMP"].endswith("Z")
    assert "C2_API_KEY" not in first["env"]  # the key is not the handler's
    # Its output (stdout and stderr) on c2ws's stderr, prefixed, escaped.
    assert "c2ws: exec strategy.signal:1 seq 1: handled 1 red" in err and "\x1b" not in err
    assert "c2ws: exec strategy.signal:1 seq 2: a warning" in err


def test_a_failed_run_is_retried_with_backoff_then_succeeds(
    server: TestServer, handler: tuple[str, Path], tmp_path: Path,
) -> None:
    command, log = handler
    state = tmp_path / "state.json"
    process = exec_run(server, command, log, "-n", "2", "--exec-retries", "2", "--state",
                       str(state), mode="fail-first")
    wait_subscribed(server, 1, 1)
    for n in range(2):
        server.publish(1, payload(1, n))
    code, err = outcome(process)
    assert code == 0, err
    assert [(e["env"]["C2_SEQ_ID"], e["run"]) for e in runs(log)] == [
        ("1", 1), ("1", 2), ("2", 1), ("2", 2)]
    assert ("exec strategy.signal:1 seq 1: exit status 5; running it again in 0.5 s "
            "(retry 1 of 2)") in err
    # --state with --exec says what it keeps: at least once.
    assert "--state with --exec" in err and "at least once, not exactly once" in err
    assert json.loads(state.read_text())["cursors"] == {"strategy.signal:1": 2}


def test_a_message_failing_every_retry_goes_to_the_dead_letter_file_and_the_stream_goes_on(
    server: TestServer, handler: tuple[str, Path], tmp_path: Path,
) -> None:
    command, log = handler
    dead = tmp_path / "dead.jsonl"
    process = exec_run(server, command, log, "-n", "3", "--exec-retries", "1",
                       "--dead-letter", str(dead), mode="fail-seq-2")
    wait_subscribed(server, 1, 1)
    sent = [server.publish(1, payload(1, n)) for n in range(3)]
    code, err = outcome(process)
    assert code == 0, err
    assert [e["env"]["C2_SEQ_ID"] for e in runs(log)] == ["1", "2", "2", "3"]
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["message"] == sent[1] and letter["runs"] == 2
    assert letter["failure"] == "exit status 3" and letter["command"][0] == sys.executable
    assert oct(dead.stat().st_mode & 0o777) == "0o600"
    assert "written to the dead-letter file" in err


def test_without_a_dead_letter_file_a_failure_stops_the_run_before_the_message(
    server: TestServer, handler: tuple[str, Path], tmp_path: Path,
) -> None:
    command, log = handler
    state = tmp_path / "state.json"
    process = exec_run(server, command, log, "--exec-retries", "0", "--state", str(state),
                       mode="fail-seq-2")
    wait_subscribed(server, 1, 1)
    for n in range(3):
        server.publish(1, payload(1, n))
    code, err = outcome(process)
    assert code == ExitCode.SINK_FAILED, err
    assert "exit status 3, 1 run(s) in all; stopping (--exec-fail stop)" in err
    # Message 1 was handled; 2 was not: the next run starts with it.
    assert json.loads(state.read_text())["cursors"] == {"strategy.signal:1": 1}


def test_exec_fail_stop_with_a_dead_letter_file_buries_the_message_then_stops(
    server: TestServer, handler: tuple[str, Path], tmp_path: Path,
) -> None:
    command, log = handler
    dead, state = tmp_path / "dead.jsonl", tmp_path / "state.json"
    process = exec_run(server, command, log, "--exec-retries", "0", "--dead-letter",
                       str(dead), "--exec-fail", "stop", "--state", str(state),
                       mode="fail-seq-2")
    wait_subscribed(server, 1, 1)
    for n in range(3):
        server.publish(1, payload(1, n))
    code, err = outcome(process)
    assert code == ExitCode.SINK_FAILED, err
    assert "written to the dead-letter file" in err and "stopping (--exec-fail stop)" in err
    assert [e["env"]["C2_SEQ_ID"] for e in runs(log)] == ["1", "2"]  # 3 never ran
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["message"]["seq_id"] == 2
    # 2 is handled (its trace is the dead-letter file): the next run starts with 3.
    assert json.loads(state.read_text())["cursors"] == {"strategy.signal:1": 2}


def test_a_hung_handler_is_killed_with_its_process_group_at_the_timeout(
    server: TestServer, handler: tuple[str, Path], tmp_path: Path,
) -> None:
    command, log = handler
    child = tmp_path / "child.pid"
    process = exec_run(server, command, log, "-n", "2", "--exec-timeout", "1",
                       "--exec-retries", "0", "--dead-letter", str(tmp_path / "dead.jsonl"),
                       mode="hang-seq-1", HANDLER_CHILD=str(child))
    wait_subscribed(server, 1, 1)
    for n in range(2):
        server.publish(1, payload(1, n))
    code, err = outcome(process)
    assert code == 0, err
    assert ("exec strategy.signal:1 seq 1: timed out after 1 s (--exec-timeout); killed "
            "with its process group") in err
    grandchild = int(child.read_text())
    server.wait_for(lambda: not Path(f"/proc/{grandchild}").exists()
                    or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2],
                    timeout=10)
    assert [e["env"]["C2_SEQ_ID"] for e in runs(log)] == ["1", "2"]


def test_kill_9_in_the_middle_of_a_handler_runs_that_message_again(
    server: TestServer, handler: tuple[str, Path], tmp_path: Path,
) -> None:
    command, log = handler
    state, started, release = (tmp_path / "state.json", tmp_path / "started",
                               tmp_path / "release")
    env = {"HANDLER_STARTED": str(started), "HANDLER_RELEASE": str(release)}
    process = exec_run(server, command, log, "--state", str(state), mode="block-seq-2", **env)
    wait_subscribed(server, 1, 1)
    for n in range(3):
        server.publish(1, payload(1, n))
    server.wait_for(started.exists, timeout=30)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    release.touch()  # the orphaned handler (its own session) finishes on its own
    before = max(r.number for r in server.connections())
    again = exec_run(server, command, log, "--state", str(state), "-n", "2",
                     mode="block-seq-2", **env)
    wait_subscribed(server, 1, 1, after=before)
    code, err = outcome(again, timeout=15)
    assert code == 0, err
    seqs = [e["env"]["C2_SEQ_ID"] for e in runs(log)]
    assert seqs.count("1") == 1  # acknowledged before the kill
    assert seqs.count("2") == 2  # running at the kill: runs again
    assert seqs.count("3") == 1
