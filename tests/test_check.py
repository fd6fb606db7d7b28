"""``c2ws check``: exit codes, the report, and the clock offset against a reference server
whose clock is skewed on purpose."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.probe import ClockOffset
from c2ws.testing import TestServer

REPO = Path(__file__).resolve().parent.parent
KEY = "check-secret-key-9012"
VISIBLE = 12345678
HIDDEN = 99999999


def c2ws(*args: str, url: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C2_", "C2WS_"))}
    env["C2WS_URL"] = url
    env["C2WS_CONFIG"] = os.devnull  # an empty config file: no profile of the user's
    if key is not None:
        env["C2_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "c2ws", "check", *args], cwd=REPO, env=env,
                          text=True, capture_output=True, timeout=60)


pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(VISIBLE,), lifetime=120)


# --- the clock offset estimate (sans-I/O) --------------------------------------------------


def test_one_stamp_brackets_the_offset_by_the_exchange_and_the_resolution() -> None:
    offset = ClockOffset()
    assert offset.estimate() is None
    # Sent at 100.2, received at 100.4 (our clock); the server stamped 130 (its clock):
    # the offset is between 130 - 100.4 and 131 - 100.2.
    offset.observe("1970-01-01T00:02:10Z", 100.2, 100.4)
    estimate = offset.estimate()
    assert estimate is not None
    assert estimate.offset == pytest.approx((29.6 + 30.8) / 2)
    assert estimate.uncertainty == pytest.approx((30.8 - 29.6) / 2)


def test_stamps_are_intersected_and_a_stepped_clock_starts_again() -> None:
    offset = ClockOffset()
    offset.observe("1970-01-01T00:00:10Z", 0.0, 0.1)  # [9.9, 11.0]
    offset.observe("1970-01-01T00:00:11Z", 0.95, 1.0)  # [10.0, 11.05]
    estimate = offset.estimate()
    assert estimate is not None
    assert (estimate.offset - estimate.uncertainty, estimate.offset + estimate.uncertainty) == (
        pytest.approx(10.0), pytest.approx(11.0))
    offset.observe("1970-01-01T00:01:40Z", 2.0, 2.1)  # disagrees: the server stepped
    estimate = offset.estimate()
    assert estimate is not None and estimate.offset == pytest.approx((97.9 + 99.0) / 2)


def test_a_fractional_stamp_is_read_to_the_millisecond_and_junk_is_ignored() -> None:
    offset = ClockOffset()
    offset.observe("1970-01-01T00:00:10.500Z", 10.0, 10.0)
    offset.observe("not a time", 0.0, 1.0)
    offset.observe("1970-01-01T00:00:10Z", None, 1.0)
    estimate = offset.estimate()
    assert estimate is not None and estimate.uncertainty == pytest.approx(0.0005)


# --- end to end -------------------------------------------------------------------------------


def test_a_good_check_reports_and_exits_0(server: TestServer) -> None:
    result = c2ws(str(VISIBLE), url=server.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["endpoint", server.url]
    assert lines[1].startswith("connected     yes, in ")
    assert lines[2].startswith("round trip    ") and lines[2].endswith("ms (ping)")
    assert lines[3].startswith("server clock  agrees with this machine's (± ")
    assert lines[4:] == [f"allowed       strategy.signal:{VISIBLE}",
                         f"allowed       strategy.positions:{VISIBLE}"]
    assert result.stderr == ""
    # It leaves cleanly: unsubscribed, closed with 1000.
    record = server.wait_for(lambda: (r := server.connections()[-1]) and not r.open and r)
    assert record.client_close_code == spec.CLOSE_NORMAL
    actions = [m["payload"]["action"] for m in record.received
               if m.get("msg_type") == "subscription.request"]
    assert actions == ["subscribe", "subscribe", "unsubscribe", "unsubscribe"]


def test_no_strategies_checks_the_connection_only(server: TestServer) -> None:
    result = c2ws("--json", url=server.url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["subscriptions"] == []
    assert report["round_trip_method"] == "ping" and report["round_trip_ms"] >= 0
    assert abs(report["clock_offset_s"]) < 2


def test_a_rejected_subscription_exits_7(server: TestServer) -> None:
    result = c2ws(str(VISIBLE), str(HIDDEN), "-c", "signal", url=server.url)
    assert result.returncode == ExitCode.NOTHING_TO_STREAM
    assert f"rejected      strategy.signal:{HIDDEN}: FORBIDDEN (StrategyId)" in result.stdout
    assert f"allowed       strategy.signal:{VISIBLE}" in result.stdout
    assert "1 of 2 subscription(s) rejected" in result.stderr


def test_quiet_prints_nothing_but_keeps_the_exit_code(server: TestServer) -> None:
    good = c2ws("-q", str(VISIBLE), url=server.url)
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    bad = c2ws("-q", str(HIDDEN), url=server.url)
    assert bad.returncode == ExitCode.NOTHING_TO_STREAM and bad.stdout == ""


def test_a_wrong_key_exits_3_without_showing_it(server: TestServer) -> None:
    result = c2ws("--json", url=server.url, key="wrong-key-abc")
    assert result.returncode == ExitCode.AUTH_FAILED
    assert json.loads(result.stdout) == {"ok": False, "exit_code": 3, "url": server.url,
                                         "error": "authentication failed: Invalid API key"}
    assert "wrong-key-abc" not in result.stdout + result.stderr


def test_nothing_listening_exits_4() -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    result = c2ws(url=f"ws://127.0.0.1:{port}/ws")
    assert result.returncode == ExitCode.CONNECT_FAILED
    assert result.stderr.startswith("c2ws: check failed: cannot connect")


def test_a_busy_server_exits_5(server: TestServer) -> None:
    server.reject_next_connections(spec.HTTP_SERVICE_UNAVAILABLE, count=100)  # every one
    result = c2ws(url=server.url)
    assert result.returncode == ExitCode.SERVER_BUSY


def test_no_key_is_a_usage_error() -> None:
    result = c2ws(url="ws://127.0.0.1:9/ws", key=None)
    assert result.returncode == ExitCode.USAGE
    assert "no API key" in result.stderr


@pytest.mark.c2_server_options(clock_offset=30.0)
def test_a_server_clock_30_s_ahead_is_a_warning(server: TestServer) -> None:
    result = c2ws(str(VISIBLE), "--json", url=server.url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 28 <= report["clock_offset_s"] <= 32
    assert "warning: the server's clock is 30 s ahead of this machine's" in result.stderr


@pytest.mark.c2_server_options(clock_offset=-90.0)
def test_a_server_clock_90_s_behind_rejects_us_and_exits_7(server: TestServer) -> None:
    result = c2ws(str(VISIBLE), "-c", "signal", url=server.url)
    no_strategies = c2ws("-q", url=server.url)
    assert result.returncode == ExitCode.NOTHING_TO_STREAM
    assert "server clock  90 s behind this machine's (± " in result.stdout
    assert "INVALID_PARAMETER (Timestamp)" in result.stdout
    assert "the server rejects client timestamps more than 60 s off" in result.stderr
    # Without a subscription to be refused, the clock alone fails the check.
    assert no_strategies.returncode == ExitCode.NOTHING_TO_STREAM
    assert "90 s behind" in no_strategies.stderr


# --- the library: c2ws.check() -----------------------------------------------------------------


def test_the_library_check_reports_what_the_command_prints(server: TestServer) -> None:
    import c2ws

    result = c2ws.check([VISIBLE, HIDDEN], "signal", api_key=KEY, url=server.url)
    assert isinstance(result, c2ws.CheckResult)
    assert result.url == server.url and result.connect_seconds >= 0
    assert result.round_trip_method == "ping" and result.round_trip_seconds is not None
    assert result.clock is not None and not result.clock_off and not result.clock_rejected
    assert [(str(sub.key), sub.allowed) for sub in result.subscriptions] == [
        (f"strategy.signal:{VISIBLE}", True), (f"strategy.signal:{HIDDEN}", False)]
    assert result.rejected == result.subscriptions[1:]
    assert result.rejected[0].reason.startswith("FORBIDDEN (StrategyId)")
    assert not result.ok
    assert c2ws.check(VISIBLE, api_key=KEY, url=server.url).ok


@pytest.mark.c2_server_options(clock_offset=-90.0)
def test_the_library_check_says_when_the_server_rejects_our_clock(server: TestServer) -> None:
    import c2ws

    result = c2ws.check(api_key=KEY, url=server.url)
    assert result.subscriptions == () and result.clock_rejected and result.clock_off
    assert not result.ok


def test_the_library_check_raises_the_typed_error_of_each_ending(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import c2ws
    from c2ws.errors import AuthenticationFailed, ConfigError, ServerBusy

    with pytest.raises(AuthenticationFailed, match="Invalid API key") as refused:
        c2ws.check(api_key="wrong-key-abc", url=server.url)
    assert "wrong-key-abc" not in str(refused.value)
    server.reject_next_connections(spec.HTTP_SERVICE_UNAVAILABLE)
    with pytest.raises(ServerBusy):
        c2ws.check(api_key=KEY, url=server.url)
    with pytest.raises(ConfigError, match="a check tries at most 100") as too_many:
        c2ws.check(range(1, 52), api_key=KEY, url=server.url)
    assert too_many.value.param == "STRATEGY_ID"
    with pytest.raises(ConfigError, match="not a ws:// or wss:// URL"):
        c2ws.check(api_key=KEY, url="http://example.com/ws")
    with pytest.raises(ConfigError, match="timeout must be a positive"):
        c2ws.check(api_key=KEY, url=server.url, timeout=0)
    # The key and URL as the command line finds them.
    monkeypatch.setenv("C2WS_CONFIG", os.devnull)
    monkeypatch.setenv("C2_API_KEY", KEY)
    monkeypatch.setenv("C2WS_URL", server.url)
    monkeypatch.delenv("C2WS_PROFILE", raising=False)
    monkeypatch.delenv("C2WS_API_KEY_FILE", raising=False)
    assert c2ws.check(VISIBLE, "positions").ok


def test_too_many_subscriptions_for_a_check_is_a_usage_error() -> None:
    result = c2ws(*map(str, range(1, 52)), url="ws://127.0.0.1:9/ws")
    assert result.returncode == ExitCode.USAGE
    assert "102 subscriptions: a check tries at most 100" in result.stderr
