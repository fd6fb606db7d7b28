#!/bin/sh
# Makes bench/.venv: c2ws from this checkout (editable) plus the Python peers, and
# installs wscat from npm into bench/node_modules.  Idempotent; run from anywhere.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q -e "$here/..[nats]" -r "$here/requirements.txt"
if command -v npm >/dev/null 2>&1; then
    (cd "$here" && npm ci --no-audit --no-fund --silent) || echo "npm ci failed: wscat will be skipped"
else
    echo "npm not found: wscat will be skipped"
fi
command -v strace >/dev/null 2>&1 || echo "optional: apt-get install strace (else no syscall counts)"
command -v hyperfine >/dev/null 2>&1 || echo "optional: apt-get install hyperfine (else a plain loop times startup)"
echo "ready: $here/.venv/bin/python $here/run.py"
