#!/usr/bin/env bash
# The suite-wide log scan (run by `make test` after the tests): no captured log line of any test may hold a
# secret, a token or an authorisation code.
#
# Logs: every `<dir>/test-logs/*.jsonl` (each test process's captured lines, from testkit::logs) and every
# `functions.log` under `<dir>/test-artifacts` (the function binaries the local runner started).
# Secrets: every `<dir>/test-logs/*.secrets` (one JSON string per line: each test world's secret values, the
# tokens and codes its Polar simulator issued and its Smartabase session tokens) and the `secrets.json`
# beside each `functions.log`.
# Each secret is looked for as is, percent-encoded and JSON-escaped. A hit fails the scan and is printed as
# file:line with every secret in the line masked.
#
# Usage: scripts/scan-test-logs.sh [TARGET_DIR]     (default: $CARGO_TARGET_DIR, else target/)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-${CARGO_TARGET_DIR:-$root/target}}"

exec python3 - "$dir" <<'PY'
import glob, json, os, subprocess, sys, tempfile, urllib.parse

target = sys.argv[1]
MIN_LEN = 8          # testkit::logs::MIN_SECRET_LEN: shorter values would match ordinary text
ACCOUNT_NAMES = {"polar_client_id", "smartabase_username"}

logs = sorted(glob.glob(os.path.join(target, "test-logs", "*.jsonl")))
secret_sources = {}  # secret -> where it was recorded (a file name, never the value)

for path in sorted(glob.glob(os.path.join(target, "test-logs", "*.secrets"))):
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                sys.exit(f"error: {path}:{number} is not a JSON string")
            if isinstance(value, str):
                secret_sources.setdefault(value, os.path.basename(path))

for path in sorted(glob.glob(os.path.join(target, "test-artifacts", "**", "functions.log"), recursive=True)):
    logs.append(path)
    beside = os.path.join(os.path.dirname(path), "secrets.json")
    if os.path.isfile(beside):
        with open(beside, encoding="utf-8") as f:
            for name, value in json.load(f).items():
                if isinstance(value, str) and name not in ACCOUNT_NAMES:
                    secret_sources.setdefault(value, os.path.relpath(beside, target))

secrets = {s: src for s, src in secret_sources.items() if len(s) >= MIN_LEN and "\n" not in s}
if not logs or not secrets:
    sys.exit(f"error: nothing to scan under {target} ({len(logs)} log files, {len(secrets)} secrets): "
             "did the tests run with testkit's log capture?")

# Every form a secret could take in a log line: raw, inside a URL, inside a JSON string.
forms = {}
for secret, source in secrets.items():
    for form in (secret, urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]):
        forms.setdefault(form, (secret, source))

line_count = 0
for path in logs:
    with open(path, "rb") as f:
        line_count += sum(1 for _ in f)

# grep -F matches thousands of fixed strings at once; Python only looks at the lines it returns.
with tempfile.NamedTemporaryFile("w", encoding="utf-8", delete=False) as patterns:
    patterns.write("\n".join(forms) + "\n")
os.chmod(patterns.name, 0o600)
try:
    found = subprocess.run(["grep", "-F", "-n", "-H", "-a", "-f", patterns.name, "--", *logs],
                           capture_output=True, text=True, errors="replace")
finally:
    os.unlink(patterns.name)
if found.returncode not in (0, 1):
    sys.exit(f"error: grep failed: {found.stderr.strip()}")

hits = []
for hit in found.stdout.splitlines():
    path, number, line = None, None, None
    for log in logs:  # log paths may contain ':'; match the known prefix
        if hit.startswith(log + ":"):
            path = log
            number, _, line = hit[len(log) + 1:].partition(":")
            break
    if path is None:
        continue
    leaked = sorted({src for form, (s, src) in forms.items() if form in line})
    masked = line
    for form in sorted(forms, key=len, reverse=True):
        masked = masked.replace(form, "[SECRET]")
    if len(masked) > 400:
        masked = masked[:400] + "…"
    hits.append((os.path.relpath(path, target), number, leaked, masked))

if hits:
    print(f"error: {len(hits)} log line(s) contain a secret, token or code:", file=sys.stderr)
    for path, number, leaked, masked in hits:
        print(f"  {path}:{number} (secret recorded in {', '.join(leaked)}):", file=sys.stderr)
        print(f"    {masked}", file=sys.stderr)
    sys.exit(1)
print(f"log scan: {line_count} lines in {len(logs)} log files, none holds any of {len(secrets)} secrets")
PY
