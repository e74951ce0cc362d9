#!/usr/bin/env bash
# Runs pytest on a suite directory from the repository's .venv, first
# installing the suite's requirements.txt when it changed since the last
# install (a stamp per suite). The suites' run.sh scripts call it:
#   gateway/tests/pytest_in_venv.sh SUITE_DIR [pytest args…]
set -euo pipefail
suite=$(cd "$1" && pwd)
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
stamp="$venv/.requirements-$(basename "$suite")"
if ! cat "$suite/requirements.txt" "$root/gateway/tests/pika/requirements.txt" | cmp -s - "$stamp"; then
  "$venv/bin/pip" install -q -r "$suite/requirements.txt"
  cat "$suite/requirements.txt" "$root/gateway/tests/pika/requirements.txt" > "$stamp"
fi
cd "$suite"
exec "$venv/bin/pytest" -q -p no:cacheprovider "$suite" "$@"
