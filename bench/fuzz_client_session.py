"""Fuzz the client session for much longer than the test suite does.

    .venv/bin/python bench/fuzz_client_session.py [--examples 100000] [--seed N]

Runs the property of ``tests/test_hostile_client.py`` (sequences of random bytes and of
envelopes with hostile values in any field): ``receive`` and the deadlines never raise,
and state is kept only for the subscribed streams.  Exits 1 with the failing example.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_hostile_client as fuzz  # noqa: E402  (the property lives with the tests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=None, help="fixed seed for a rerun")
    args = parser.parse_args()

    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(fuzz.envelopes(), max_size=16))
    def sequences(frames: list[bytes]) -> None:
        fuzz.check_client_session_survives(frames)

    if args.seed is not None:
        sequences = seed(args.seed)(sequences)
    started = time.monotonic()
    try:
        sequences()
    except Exception as exc:  # the falsifying example is printed by hypothesis
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.examples} sequences, no failure, {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
