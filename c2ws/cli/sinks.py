"""``subscribe``'s sinks other than stdout (issue 23): ``--exec CMD`` and ``--to
nats://HOST:PORT``, their options, and the sink each builds (the sinks themselves are
library code, :mod:`c2ws.sinks`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from c2ws.cli.options import choice, seconds, whole_number
from c2ws.sinks import FailMode

if TYPE_CHECKING:
    pass

ExecOpt = Annotated[
    str | None,
    typer.Option("--exec", metavar="CMD", show_default=False,
                 help="Run CMD once per message (no shell: write sh -c '...' for one), the "
                      "NDJSON line on its stdin and its fields in C2_* variables; a message "
                      "counts as handled once CMD exits 0 (see 'Fan-out' in the README)."),
]
ExecRetriesOpt = Annotated[
    int,
    typer.Option("--exec-retries", metavar="N",
                 parser=whole_number("'--exec-retries'", minimum=0),
                 help="Run a failed CMD again up to N times, waiting 0.5 s, 1 s, 2 s... "
                      "between runs."),
]
ExecTimeoutOpt = Annotated[
    float | None,
    typer.Option("--exec-timeout", metavar="S", show_default=False,
                 parser=seconds("'--exec-timeout'", minimum=0, above=True),
                 help="Kill CMD (its whole process group) after S seconds: a failed run."),
]
ExecFailOpt = Annotated[
    FailMode | None,
    typer.Option("--exec-fail", metavar="stop|continue", show_default=False,
                 parser=choice(FailMode, "'--exec-fail'"),
                 help="After the last retry: stop (exit 12), or continue with the next "
                      "message. Default: continue with --dead-letter, else stop."),
]
DeadLetterOpt = Annotated[
    Path | None,
    typer.Option("--dead-letter", metavar="FILE", show_default=False,
                 help="Append each message CMD failed on (after its retries) to FILE as a "
                      "JSON line, and go on."),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", metavar="nats://HOST:PORT", show_default=False,
                 help="Publish every message to NATS JetStream (subject PREFIX.signal.ID "
                      "or PREFIX.positions.ID, deduplicated by Nats-Msg-Id); the "
                      "'nats' extra. Without --state, resumes from the stream itself."),
]
SubjectPrefixOpt = Annotated[
    str,
    typer.Option("--subject-prefix", metavar="PREFIX",
                 help="First token(s) of the NATS subjects."),
]
CreateStreamOpt = Annotated[
    str | None,
    typer.Option("--create-stream", metavar="NAME", show_default=False,
                 help="Create the JetStream stream NAME for PREFIX.> when it does not exist "
                      "(file storage, limits retention, 2 min duplicate window)."),
]
CredsOpt = Annotated[
    Path | None,
    typer.Option("--creds", metavar="FILE", show_default=False, envvar="NATS_CREDS",
                 help="NATS user credentials file (JWT and NKey seed); env NATS_CREDS."),
]
NkeyOpt = Annotated[
    Path | None,
    typer.Option("--nkey", metavar="FILE", show_default=False, envvar="NATS_NKEY",
                 help="NATS NKey seed file; env NATS_NKEY."),
]
UserOpt = Annotated[
    str | None,
    typer.Option("--user", metavar="USER", show_default=False, envvar="NATS_USER",
                 help="NATS user name (or token, without --password); env NATS_USER."),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option("--password", metavar="PASSWORD", show_default=False,
                 envvar="NATS_PASSWORD",
                 help="NATS password; env NATS_PASSWORD (arguments show in ps)."),
]
TlsCertOpt = Annotated[
    Path | None,
    typer.Option("--tlscert", metavar="FILE", show_default=False, envvar="NATS_CERT",
                 help="TLS client certificate for NATS; env NATS_CERT."),
]
TlsKeyOpt = Annotated[
    Path | None,
    typer.Option("--tlskey", metavar="FILE", show_default=False, envvar="NATS_KEY",
                 help="TLS client key for NATS; env NATS_KEY."),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option("--tlsca", metavar="FILE", show_default=False, envvar="NATS_CA",
                 help="CA certificates to trust for NATS's TLS; env NATS_CA."),
]
