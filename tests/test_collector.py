"""The streaming commands' garbage-collector settings (c2ws/cli/collector.py)."""

import subprocess
import sys
import textwrap


def test_tuning_freezes_startup_objects_and_raises_only_the_young_threshold() -> None:
    # In a child process: the settings are process-wide and must not leak into pytest's.
    code = textwrap.dedent("""
        import gc
        from c2ws.cli.collector import YOUNG_THRESHOLD, tune_for_streaming
        before = gc.get_threshold()
        tune_for_streaming()
        after = gc.get_threshold()
        assert after == (YOUNG_THRESHOLD, *before[1:]), (before, after)
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_library_leaves_the_collector_alone() -> None:
    code = textwrap.dedent("""
        import gc
        before = gc.get_threshold()
        import c2ws, c2ws.engine
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
