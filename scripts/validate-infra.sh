#!/usr/bin/env bash
# Validates infra/template.yaml offline, with no AWS credentials:
#   1. cfn-lint on the SAM template (errors and warnings fail; informational notes pass),
#   2. sam validate --lint,
#   3. cfn-lint on the template after the SAM transform (cfn-lint 1.58 no longer expands SAM itself, so
#      circular dependencies and errors in generated resources show up only here),
#   4. infra/tests (contract and least-privilege checks against the Rust sources).
# Tools are pinned in infra/requirements-validate.txt and installed once into .venv-infra/ (re-installed
# when that file or the Python version changes). Usage: scripts/validate-infra.sh
# INFRA_TEMPLATE=other.yaml validates another template (e.g. a deliberately broken copy).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="${INFRA_TEMPLATE:-$root/infra/template.yaml}"
export INFRA_TEMPLATE="$template"
requirements="$root/infra/requirements-validate.txt"
venv="$root/.venv-infra"
stamp="$venv/.installed"
work="$root/target/validate-infra"
python="${PYTHON:-python3}"

step() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 ||
    fail "$python not found: install Python 3 with its venv module (e.g. apt-get install python3 python3-venv)"
[[ -f "$template" ]] || fail "$template is missing"

# The stamp records what the venv was built from; any difference rebuilds it.
wanted="$(cat "$requirements"; "$python" -c 'import sys; print(sys.version)')"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    step "venv: installing pinned cfn-lint and aws-sam-cli into .venv-infra (first run takes a minute)"
    rm -rf "$venv"
    "$python" -m venv "$venv" ||
        fail "'$python -m venv' failed: install Python's venv module (e.g. apt-get install python3-venv)"
    mkdir -p "$work"
    if ! "$venv/bin/pip" install --disable-pip-version-check -q -r "$requirements" >"$work/pip.log" 2>&1; then
        tail -n 20 "$work/pip.log" >&2
        fail "pip could not install infra/requirements-validate.txt (full log: $work/pip.log)"
    fi
    printf '%s' "$wanted" >"$stamp"
else
    step "venv: .venv-infra is up to date"
fi
mkdir -p "$work"

# Offline and credential-free: no telemetry, no AWS config or profile, no keys.
export SAM_CLI_TELEMETRY=0 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_DEFAULT_REGION=us-east-1
# Keep infra/tests free of __pycache__ directories.
export PYTHONDONTWRITEBYTECODE=1
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

# cfn-lint's exit code is a bitmask: 2 errors, 4 warnings, 8 informational. Warnings fail too: the
# template has none, and a new one is either fixed or ignored in the template with a reason.
lint() {
    local what="$1" file="$2" rc=0
    "$venv/bin/cfn-lint" --format parseable "$file" || rc=$?
    if (( rc == 0 || rc == 8 )); then
        return 0
    elif (( rc & 2 )); then
        fail "cfn-lint found errors in the $what (listed above)"
    elif (( rc & 4 )); then
        fail "cfn-lint found warnings in the $what (listed above): fix them, or ignore one deliberately with Metadata cfn-lint ignore_checks and a comment"
    else
        fail "cfn-lint could not check the $what (exit code $rc)"
    fi
}

step "cfn-lint $(basename "$template") ($("$venv/bin/cfn-lint" --version))"
lint "SAM template" "$template"

step "sam validate --lint ($("$venv/bin/sam" --version))"
"$venv/bin/sam" validate --lint --template "$template" --region us-east-1 ||
    fail "sam validate rejected $template (see above)"

step "SAM transform, then cfn-lint on the expanded template"
translated="$work/template.expanded.json"
"$venv/bin/python" "$root/infra/tests/template_tools.py" translate "$template" "$translated" ||
    fail "the SAM transform failed (see above)"
lint "expanded template ($translated)" "$translated"

step "infra/tests"
"$venv/bin/python" -m unittest discover -s "$root/infra/tests" -t "$root/infra/tests" ||
    fail "infra/tests failed (see above)"

step "infra: valid"
