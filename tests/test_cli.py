"""Command-level behaviour of demo, version and the missing server extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from c2ws import spec
from c2ws.exitcodes import ExitCode

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "c2ws", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_demo_streams_the_synthetic_feed_without_a_key() -> None:
    result = run("demo", "-o", "ndjson", "-n", "5", "--rate", "50")
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(messages) == 5
    assert {m["msg_type"] for m in messages} <= set(spec.STREAM_MSG_TYPES)
    assert all(isinstance(m["seq_id"], int) and m["payload"]["StrategyId"] for m in messages)
    assert result.stderr.startswith("c2ws demo: reference server on ws://127.0.0.1:")


def test_demo_without_the_server_extra_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['websockets'] = None; sys.argv = ['c2ws', 'demo']; "
        "from c2ws.cli import main; main()"
    )
    result = run(code=code)
    assert result.returncode == ExitCode.USAGE
    assert "pip install 'c2ws[server]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("c2ws ")


def test_a_closed_stdout_is_no_internal_error() -> None:
    result = subprocess.run(
        ["bash", "-c", f"C2_API_KEY=k {sys.executable} -m c2ws subscribe 1 >&-"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    assert result.stderr == "c2ws: stdout is closed; nothing to stream to\n"


@pytest.mark.parametrize("output", ["table", "ndjson"])
def test_head_closing_stdout_ends_either_output_mode_with_exit_0(output: str) -> None:
    script = (f"set -o pipefail; {sys.executable} -m c2ws demo -o {output} --rate 50 "
              "| head -2")
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "Error" not in result.stderr


def test_a_closed_stderr_does_not_stop_the_data() -> None:
    script = (f"set -o pipefail; {sys.executable} -m c2ws demo -o ndjson -n 20 --rate 50 -v "
              "2>&1 >/dev/null | head -c 0")
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0


def test_a_full_disk_is_a_clear_error_with_its_own_exit_code() -> None:
    script = f"{sys.executable} -m c2ws demo -o ndjson -n 3 --rate 50 > /dev/full"
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == ExitCode.OUTPUT_FAILED
    assert "c2ws: cannot write to stdout: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
