#!/usr/bin/env bash
# Makes sure the external services the suite needs are installed and running.
# Tests start their own instances on free loopback ports; this only installs
# packages (as root, from Debian) and checks PostgreSQL. Under CI=true a missing
# PostgreSQL is an error; locally its tests report that they did not run.
set -uo pipefail

pg_ready() {
    .venv/bin/python - <<'PY' 2>/dev/null
import psycopg
psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=3).close()
PY
}

if ! pg_ready; then
    if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        sleep 2
    fi
fi
if pg_ready; then
    echo "PostgreSQL: reachable on 127.0.0.1:5432"
elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL is required in CI but 127.0.0.1:5432 is not reachable" >&2
    exit 1
else
    echo "PostgreSQL: NOT reachable; its contract-suite cases will be reported as not run"
fi
