"""Command-level behaviour of demo, version and the missing server extra."""

from __future__ import annotations

import json
import os
import re
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
        ["bash", "-c", f"C2_API_KEY=cli-test-key {sys.executable} -m c2ws subscribe 1 >&-"],
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


@pytest.mark.parametrize("unbuffered", [True, False], ids=["PYTHONUNBUFFERED", "buffered"])
@pytest.mark.parametrize("output", ["ndjson", "csv", "json", "table"])
def test_a_full_disk_is_a_clear_error_with_its_own_exit_code(output: str,
                                                              unbuffered: bool) -> None:
    """Whether stdout is a raw file (PYTHONUNBUFFERED, python -u) or buffered, and whatever
    the output writes first: exit 9 and one line, never an internal error, nor a second
    failing flush when the interpreter exits (exit 120).  On a loaded machine the first
    batch may hold more than one message: the line then names how many and the last."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    script = f"{sys.executable} -m c2ws demo -o {output} -n 3 --rate 50 > /dev/full"
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == ExitCode.OUTPUT_FAILED, result.stderr
    last = result.stderr.splitlines()[-1]
    assert re.fullmatch(r"c2ws: cannot write to stdout: No space left on device; nothing was "
                        r"written( \(the write of \d+ message\(s\) up to \S+ seq \d+ failed\))?"
                        r"(; \d+ more received message\(s\) were not written)?", last), last
    assert len(result.stderr.splitlines()) == 2  # the demo's first line, and that one


# --- help that teaches, errors that point at the fix ---------------------------------------

COMMANDS = ["subscribe", "demo", "serve", "completions"]
# What leaked before: Python and validation-library types, and their wording.
LEAKS = re.compile(r"<(?:list|str|int|float|bool)\b|range>|Input should|Value error|pydantic")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_python_types(command: str) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert not LEAKS.search(result.stdout), result.stdout
    assert "{" not in result.stdout.splitlines()[0]  # "STRATEGY_ID...", not "{STRATEGY_ID}..."


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_examples(command: str) -> None:
    help_text = run(command, "--help").stdout
    examples = help_text.split("Examples:", 1)[1].split("\n\n")[0]
    assert 2 <= len([line for line in examples.splitlines() if "c2ws " in line]) <= 4
    assert all(len(line) <= 80 for line in help_text.splitlines())


def test_subscribe_help_lists_every_exit_code() -> None:
    help_text = run("subscribe", "--help").stdout
    codes = help_text.split("Exit codes:", 1)[1]
    listed = {int(line.split()[0]) for line in codes.splitlines() if line.strip()}
    assert listed == {int(code) for code in ExitCode}


def test_serve_help_shows_its_default_strategies() -> None:
    from c2ws.server.feed import DEFAULT_STRATEGIES

    help_text = " ".join(run("serve", "--help").stdout.split())
    assert "Default: " + ", ".join(map(str, DEFAULT_STRATEGIES)) in help_text


def test_typer_completion_options_are_gone_and_completion_still_works() -> None:
    assert "--install-completion" not in run("--help").stdout
    assert "--show-completion" not in run("--help").stdout
    script = run("completions", "bash").stdout
    assert "_C2WS_COMPLETE" in script


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscribe", "-1"], "'-1' is not a strategy id: ids are positive integers"),
        (["subscribe", "5", "-12345678"], "'-12345678' is not a strategy id"),
        (["subscribe", "0"], "'0' is not a strategy id (a positive integer)"),
        (["subscribe", "1", "--timeout", "0"],
         "give more than 0 seconds; leave --timeout out to run until stopped"),
        (["subscribe", "1", "--timeout", "soon"], "'soon' is not a number of seconds"),
        (["subscribe", "1", "-o", "xml"],
         "'xml' is not one of: auto, table, ndjson, json, csv, tsv"),
        (["subscribe", "1", "-n", "0"], "0 is out of range: give at least 1"),
        (["subscribe", "1", "--max-buffer", "many"], "'many' is not a whole number"),
        (["subscribe", "1", "--tz", "Mars/Olympus"], "use local, utc or an IANA name"),
        (["demo", "--rate", "0"], "give at least 0.1"),
        (["serve", "--port", "70000"], "give from 0 to 65535"),
        (["completions", "tcsh"], "'tcsh' is not one of: bash, zsh, fish"),
        # --to's options: usage errors before anything starts, not internal errors.
        (["subscribe", "1", "--api-key", "cli-test-key", "--to", "http://127.0.0.1:4"],
         "is not a NATS URL"),
        (["subscribe", "1", "--api-key", "cli-test-key", "--to", "nats://127.0.0.1:4",
          "--creds", "/dev/null"],
         "--creds /dev/null is a character device, not a regular file"),
        (["subscribe", "1", "--api-key", "cli-test-key", "--to", "nats://127.0.0.1:4",
          "--tlsca", "/nonexistent/ca.pem"],
         "cannot read --tlsca /nonexistent/ca.pem: No such file or directory"),
    ],
)
def test_usage_errors_say_what_is_wrong_in_our_words(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == ExitCode.USAGE
    assert message in result.stderr, result.stderr
    assert not LEAKS.search(result.stderr) and "No such option" not in result.stderr


def test_a_mistyped_option_is_still_an_unknown_option() -> None:
    result = run("subscribe", "1", "--timout", "5")
    assert result.returncode == ExitCode.USAGE
    assert "No such option: --timout" in result.stderr and "--timeout" in result.stderr


def test_too_many_subscriptions_says_ids_times_channels_and_suggests_c() -> None:
    ids = ",".join(str(n) for n in range(1, 502))
    result = subprocess.run([sys.executable, "-m", "c2ws", "subscribe", ids], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "C2_API_KEY": "cli-test-key"})
    assert result.returncode == ExitCode.USAGE
    assert "1002 subscriptions requested (strategies x channels)" in result.stderr
    assert "one channel with -c" in result.stderr


def test_a_url_without_ws_says_the_path_is_ws() -> None:
    from c2ws.server.app import ReferenceServer, ServerConfig

    with ReferenceServer(ServerConfig(api_keys=("cli-test-key",), feed="none")) as server:
        root = server.url.removesuffix("/ws") + "/"
        result = subprocess.run(
            [sys.executable, "-m", "c2ws", "subscribe", "12345678", "--url", root, "-o",
             "ndjson"], cwd=REPO, capture_output=True, text=True, timeout=60,
            env={**os.environ, "C2_API_KEY": "cli-test-key"},
        )
    assert result.returncode == ExitCode.CONNECT_FAILED
    assert "HTTP 404" in result.stderr and "the C2 endpoint's path is /ws" in result.stderr


def test_readme_is_self_contained() -> None:
    readme = (REPO / "README.md").read_text()
    assert "../shared" not in readme
    assert "docs/protocol.md" in readme
    protocol_doc = (REPO / "docs" / "protocol.md").read_text()
    assert "resume_from" in protocol_doc and "c2ws/spec.py" in protocol_doc


def test_tz_leaves_ndjson_timestamps_as_the_server_sent_them() -> None:
    result = run("demo", "-o", "ndjson", "-n", "4", "--rate", "50", "--tz", "Asia/Tokyo")
    assert result.returncode == 0, result.stderr
    stamps = [json.loads(line)["timestamp"] for line in result.stdout.splitlines()]
    assert len(stamps) == 4 and all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]{8}Z", s) for s in stamps)


def test_usage_errors_are_one_plain_line_even_on_a_terminal() -> None:
    import pty

    master, slave = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "c2ws", "subscribe", "1", "-o", "x"],
                                cwd=REPO, stdin=slave, stdout=slave, stderr=slave, timeout=60)
        output = os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == ExitCode.USAGE
    assert "Error: Invalid value for '-o' / '--output': 'x' is not one of" in output
    assert "╭" not in output  # no boxed panel


def test_the_group_help_lists_every_command_in_order() -> None:
    # Only the command run is registered for speed; the group help must still show all.
    result = run("--help")
    listed = re.findall(r"(?m)^  (\w+)\s{2,}", result.stdout.split("Commands:")[1])
    assert listed == ["subscribe", "demo", "positions", "orders", "check", "replay", "serve",
                      "completions", "config"]
