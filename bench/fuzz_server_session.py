"""Fuzz the reference server's session for much longer than the test suite does.

    .venv/bin/python bench/fuzz_server_session.py [--examples 100000] [--seed N]

Runs the properties of ``tests/test_fuzz_server.py`` (random bytes, random text, random
JSON, envelopes with hostile values in any field, single frames and sequences): every
reply is a well-formed message of a documented type, ``receive`` never raises, and no
state grows for strategies the key may not see.  Exits 1 with the failing example.
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

import test_fuzz_server as fuzz  # noqa: E402  (the properties live with the tests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000,
                        help="examples per property (two properties)")
    parser.add_argument("--seed", type=int, default=None, help="fixed seed for a rerun")
    args = parser.parse_args()

    run_settings = settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    @run_settings
    @given(fuzz.frames)
    def single_frames(frame: bytes | str) -> None:
        fuzz.check_session_survives([frame])

    @run_settings
    @given(st.lists(fuzz.frames, max_size=16))
    def frame_sequences(sent: list[bytes | str]) -> None:
        fuzz.check_session_survives(sent)

    for name, prop in (("single frames", single_frames), ("sequences", frame_sequences)):
        if args.seed is not None:
            prop = seed(args.seed)(prop)
        started = time.monotonic()
        prop()
        print(f"{name}: {args.examples} examples passed in "
              f"{time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
