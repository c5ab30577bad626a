#!/usr/bin/env bash
# Runs a command with one moto server (from .venv) for its whole duration: MOTO_ENDPOINT points the
# tests at it, and the server is stopped when the command ends, whether it passed, failed or was
# interrupted. Usage: scripts/with-moto.sh cargo test --workspace
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
moto_server="$root/.venv/bin/moto_server"
if [[ ! -x "$moto_server" ]]; then
    echo "error: $moto_server is missing; run 'make venv' first" >&2
    exit 1
fi
if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
mkdir -p "$root/target"
log="$root/target/moto-server.log"

"$moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
stop_moto() {
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait until the server answers (it usually takes under a second), or give up after 30 s.
if ! python3 - "$port" "$moto_pid" <<'PY'
import os, sys, time, urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("moto server exited at start")
    try:
        with opener.open(f"http://127.0.0.1:{port}/moto-api/", timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("moto server did not answer within 30 s")
PY
then
    echo "error: the moto server did not start; its output ($log):" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
fi

export MOTO_ENDPOINT="http://127.0.0.1:$port"
echo "==> moto server at $MOTO_ENDPOINT (pid $moto_pid, log target/moto-server.log)"
"$@"
