"""The README's jq cookbook, run as written against the reference server.

Each recipe is taken verbatim from the README (the ``sh`` block after its
``<!-- jq-recipe: NAME -->`` marker) and run by bash, with ``c2ws`` a shell function
that runs this checkout's c2ws with ``-n``/``--timeout`` added (so the stream ends) and
keeps a copy of the NDJSON jq read.  The expected output is computed from that copy in
Python.  Without jq on PATH (``.ci/run`` installs it) the tests skip, saying so.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from c2ws.testing import TestServer

REPO = Path(__file__).resolve().parent.parent
KEY = "jq-secret-key-2468"
MESSAGES = 24

pytestmark = [
    pytest.mark.skipif(
        shutil.which("jq") is None,
        reason="jq is not installed (.ci/run installs it): the README's jq recipes were not run",
    ),
    # A fast synthetic feed of the three sample strategies the README's recipes use.
    pytest.mark.c2_server_options(api_key=KEY, synthetic_feed=True, feed_rate=200, seed=11,
                                  lifetime=120),
]


def recipes() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    found = dict(re.findall(r"<!-- jq-recipe: ([\w-]+) -->\n```sh\n(.*?)```", text, re.DOTALL))
    assert len(found) >= 6, "the README's jq cookbook lost recipes"
    return found


RECIPES = recipes()


def run_recipe(
    name: str, server: TestServer, workdir: Path
) -> tuple[str, list[dict[str, Any]]]:
    """(jq's output, the messages c2ws gave jq)."""
    capture = workdir / "stream.ndjson"
    prelude = (
        "set -euo pipefail\n"
        f'c2ws() {{ "$PYTHON" -m c2ws "$@" -n {MESSAGES} --timeout 30 | tee -a "$CAPTURE"; }}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C2_", "C2WS_"))}
    env.update({"PYTHON": sys.executable, "CAPTURE": str(capture), "C2_API_KEY": KEY,
                "C2WS_URL": server.url, "C2WS_CONFIG": os.devnull,
                "PYTHONPATH": str(REPO)})
    result = subprocess.run(["bash", "-c", prelude + RECIPES[name]], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in capture.read_text().splitlines()]
    assert len(messages) == MESSAGES
    return result.stdout, messages


def signals(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["msg_type"] == "strategy.signal"]


def test_only_fills(server: TestServer, tmp_path: Path) -> None:
    out, messages = run_recipe("fills", server, tmp_path)
    fills = [m for m in messages if m["payload"]["OrderStatus"] == "2"]
    assert fills and len(fills) < len(messages)
    assert [json.loads(line) for line in out.splitlines()] == fills


def test_one_line_per_signal(server: TestServer, tmp_path: Path) -> None:
    out, messages = run_recipe("one-line", server, tmp_path)
    lines = out.splitlines()
    assert len(lines) == len(messages)
    for line, message in zip(lines, messages, strict=True):
        p = message["payload"]
        words = line.split(" ")
        assert words[:4] == [{"1": "BUY", "2": "SELL"}[p["Side"]], str(p["OrderQuantity"]),
                             p["C2Symbol"]["FullSymbol"],
                             {"1": "MKT", "2": "LMT", "3": "STP"}[p["OrderType"]]]
        price = p["Limit"] or p["Stop"]
        # jq 1.6 prints 17 significant digits: compare the number, not its spelling.
        assert (float(words[4]) == pytest.approx(price)) if price else len(words) == 4
    assert any(len(line.split()) == 5 for line in lines)


def test_net_position_per_symbol(server: TestServer, tmp_path: Path) -> None:
    out, messages = run_recipe("net-position", server, tmp_path)
    held: dict[str, dict[int, int]] = {}
    expected = []
    for message in messages:
        p = message["payload"]
        held.setdefault(p["C2Symbol"]["FullSymbol"], {})[p["StrategyId"]] = p["Quantity"]
        expected.append({symbol: sum(q.values()) for symbol, q in held.items()})
    assert [json.loads(line) for line in out.splitlines()] == expected
    assert len({p["payload"]["StrategyId"] for p in messages}) == 2


def test_first_signal_of_the_day(server: TestServer, tmp_path: Path) -> None:
    out, messages = run_recipe("first-of-day", server, tmp_path)
    seen: set[tuple[int, str]] = set()
    expected = []
    for m in signals(messages):
        day = (m["payload"]["StrategyId"], m["timestamp"][:10])
        if day not in seen:
            seen.add(day)
            expected.append(f"first signal today from {m['payload']['StrategyName']} "
                            f"at {m['timestamp']}")
    assert out.splitlines() == expected and len(expected) >= 2


def test_append_to_csv(server: TestServer, tmp_path: Path) -> None:
    (tmp_path / "signals.csv").write_text("earlier,row\n")
    out, messages = run_recipe("append-csv", server, tmp_path)
    assert out == ""
    with (tmp_path / "signals.csv").open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["earlier", "row"]
    assert len(rows) == 1 + len(messages)
    for row, m in zip(rows[1:], messages, strict=True):
        p = m["payload"]
        assert row[:7] == [m["timestamp"], str(p["StrategyId"]), str(m["seq_id"]), p["Side"],
                           str(p["OrderQuantity"]), p["C2Symbol"]["FullSymbol"], p["OrderType"]]
        for cell, value in zip(row[7:], (p["Limit"], p["Stop"]), strict=True):
            assert (float(cell) == pytest.approx(value)) if value is not None else cell == ""


def test_signals_per_strategy_per_minute(server: TestServer, tmp_path: Path) -> None:
    out, messages = run_recipe("per-minute", server, tmp_path)
    expected = Counter(f"{m['payload']['StrategyId']} {m['timestamp'][:16]}"
                       for m in signals(messages))
    got = {key: int(count) for key, count in (line.rsplit(" ", 1) for line in out.splitlines())}
    assert got == dict(expected) and sum(got.values()) == MESSAGES
