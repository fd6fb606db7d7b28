"""The typed errors of c2ws.errors and the one map to exit codes."""

from __future__ import annotations

import inspect

import pytest

from c2ws import errors
from c2ws.delivery import state
from c2ws.endings import ConnectionEnd, EndReason
from c2ws.exitcodes import EXIT_CODES, ExitCode, exit_code_for, exit_code_for_end


def error_classes() -> list[type[errors.C2wsError]]:
    found = [value for _, value in inspect.getmembers(errors, inspect.isclass)
             if issubclass(value, errors.C2wsError)]
    return sorted(set(found), key=lambda cls: cls.__name__)


def example(cls: type[errors.C2wsError]) -> errors.C2wsError:
    if issubclass(cls, errors.ConnectionFailed):
        return cls(ConnectionEnd(EndReason.LOST, "detail"))
    if cls is errors.BacklogFull:
        return errors.BacklogFull(10, 10)
    if cls is errors.GapDetected:
        from c2ws.events import SubscriptionKey

        return errors.GapDetected("gap", key=SubscriptionKey(1, "strategy.signal"))
    return cls("one line")  # type: ignore[call-arg]


def test_every_error_class_has_exactly_one_exit_code() -> None:
    """Walk the map: each class the module defines (but the two abstract bases) is in it
    once, and what the CLI reports for an instance is that code."""
    abstract = {errors.C2wsError, errors.ConnectionFailed}
    concrete = [cls for cls in error_classes() if cls not in abstract]
    assert set(EXIT_CODES) == set(concrete)
    for cls in concrete:
        assert exit_code_for(example(cls)) is EXIT_CODES[cls]
    # The lead's table: one class per ending a caller may handle differently.
    assert {cls.__name__: int(code) for cls, code in EXIT_CODES.items()} == {
        "InternalError": 1, "ConfigError": 2, "AuthenticationFailed": 3, "CannotConnect": 4,
        "ServerBusy": 5, "ConnectionLost": 6, "SubscriptionsRejected": 7,
        "BacklogOverflow": 8, "BacklogFull": 8, "StateFileError": 10, "GapDetected": 11,
        "SinkFailed": 12,
    }


def test_the_old_names_are_the_new_classes() -> None:
    assert errors.NothingToStream is errors.SubscriptionsRejected
    assert errors.StateError is errors.StateFileError
    assert errors.EngineError is errors.C2wsError


@pytest.mark.parametrize("cls", [state.StateCorrupt, state.StateForeign, state.StateLocked,
                                 state.StateIOFailure, state.StateFull])
def test_the_state_files_errors_are_state_file_errors(cls: type[errors.StateFileError]) -> None:
    error = cls("x", path=None)
    assert isinstance(error, errors.StateFileError)
    assert exit_code_for(error) is ExitCode.STATE_FAILED


@pytest.mark.parametrize(("reason", "cls"), [
    (EndReason.AUTH_FAILED, errors.AuthenticationFailed),
    (EndReason.REFUSED, errors.CannotConnect),
    (EndReason.UNREACHABLE, errors.CannotConnect),
    (EndReason.BUSY, errors.ServerBusy),
    (EndReason.OVERFLOW, errors.BacklogOverflow),
    (EndReason.LOST, errors.ConnectionLost),
    (EndReason.SILENT, errors.ConnectionLost),
    (EndReason.SERVER_CLOSED, errors.ConnectionLost),
    (EndReason.NO_ACK, errors.ConnectionLost),
    (EndReason.PROTOCOL_ERROR, errors.ConnectionLost),
    (EndReason.BUG, errors.InternalError),
])
def test_a_connection_ending_picks_its_class(reason: EndReason,
                                              cls: type[errors.C2wsError]) -> None:
    error = errors.connection_error(ConnectionEnd(reason, "it ended"))
    assert type(error) is cls and str(error) == "it ended"
    assert exit_code_for_end(reason) is exit_code_for(error)
    if isinstance(error, errors.ConnectionFailed):
        assert error.end.reason is reason
        # Built directly (older code does): the same status all the same.
        assert exit_code_for(errors.ConnectionFailed(error.end)) is exit_code_for(error)


def test_messages_are_one_line() -> None:
    full = errors.BacklogFull(120, 100)
    assert str(full) == ("120 messages delivered and not acknowledged: ack them (s.ack(msg), "
                         "cumulative) or use auto_ack=True; max_buffer=100")
    assert (full.unacknowledged, full.max_buffer) == (120, 100)
    for cls in error_classes():
        if cls not in (errors.C2wsError,):
            assert "\n" not in str(example(cls))
