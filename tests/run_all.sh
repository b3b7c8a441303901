#!/usr/bin/env bash
# The whole suite: lint, types, layer contracts, then pytest (slow tests included).
# Called by `./dev test` inside the project's virtualenv; .ci/run calls `./dev test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

echo "== services"
tests/services.sh

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy (strict)"
mypy
echo "== import-linter"
lint-imports

echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$rc"
