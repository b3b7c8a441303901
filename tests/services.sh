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

# MLflow (PyPI) for the MLflowRegistry tests: its own virtualenv, .venv-mlflow, so its
# pins never meet ours (modelreg talks to it over REST only). Tests start
# `mlflow server` on a loopback port. 3.17.2: 3.18.0's mlflow-tracing pin is not
# installable from the index this project uses.
MLFLOW_VERSION=3.17.2
mlflow_ok() {
    [ -x .venv-mlflow/bin/mlflow ] && .venv-mlflow/bin/python -c \
        "import importlib.metadata as m, sys; sys.exit(m.version('mlflow') != '$MLFLOW_VERSION')" 2>/dev/null
}
if ! mlflow_ok; then
    ${PYTHON:-python3} -m venv .venv-mlflow \
        && .venv-mlflow/bin/python -m pip install -q "mlflow==$MLFLOW_VERSION" >/dev/null
fi
if mlflow_ok; then
    echo "MLflow: .venv-mlflow/bin/mlflow ($MLFLOW_VERSION)"
elif [ "${CI:-}" = "true" ]; then
    echo "mlflow==$MLFLOW_VERSION is required in CI but could not be installed in .venv-mlflow" >&2
    exit 1
else
    echo "MLflow: NOT installed; the MLflowRegistry tests will not run"
fi

# schemathesis (PyPI) for the API contract test: its own virtualenv, .venv-schemathesis,
# so its pins (hypothesis, ...) never meet ours; it talks to the daemon over HTTP only.
SCHEMATHESIS_VERSION=4.32.5
schemathesis_ok() {
    [ -x .venv-schemathesis/bin/st ] && .venv-schemathesis/bin/python -c \
        "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" 2>/dev/null
}
if ! schemathesis_ok; then
    ${PYTHON:-python3} -m venv .venv-schemathesis \
        && .venv-schemathesis/bin/python -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null
fi
if schemathesis_ok; then
    echo "schemathesis: .venv-schemathesis/bin/st ($SCHEMATHESIS_VERSION)"
elif [ "${CI:-}" = "true" ]; then
    echo "schemathesis==$SCHEMATHESIS_VERSION is required in CI but could not be installed" >&2
    exit 1
else
    echo "schemathesis: NOT installed; the API contract test will not run"
fi

# Prometheus and Alertmanager (monitors integration tests start their own
# instances on loopback ports; Debian's system services are never started).
prom_missing() {
    ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null
}
if prom_missing && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # policy-rc.d exit 101 keeps dpkg from starting the packaged daemons.
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 0 ] && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        prometheus prometheus-alertmanager >/dev/null
    [ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
fi
if ! prom_missing; then
    echo "Prometheus/Alertmanager: $(command -v prometheus), $(command -v prometheus-alertmanager)"
elif [ "${CI:-}" = "true" ]; then
    echo "prometheus and prometheus-alertmanager are required in CI but not installed" >&2
    exit 1
else
    echo "Prometheus/Alertmanager: NOT installed (run as root to install); integration tests will not run"
fi

# nginx and HAProxy (controller router integration tests start their own with a
# generated config on loopback ports; Debian's services are never started).
# systemd-analyze (unit file tests) comes with the systemd package.
if { ! [ -x /usr/sbin/nginx ] || ! [ -x /usr/sbin/haproxy ] \
    || ! command -v systemd-analyze >/dev/null; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 0 ] && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        nginx haproxy systemd >/dev/null
    [ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
fi
if [ -x /usr/sbin/nginx ] && [ -x /usr/sbin/haproxy ] && command -v systemd-analyze >/dev/null; then
    echo "nginx/haproxy/systemd-analyze: /usr/sbin/nginx, /usr/sbin/haproxy, $(command -v systemd-analyze)"
elif [ "${CI:-}" = "true" ]; then
    echo "nginx, haproxy and systemd-analyze are required in CI but not installed" >&2
    exit 1
else
    echo "nginx/haproxy/systemd-analyze: NOT installed (run as root to install); their tests will not run"
fi

# moto's S3 server (PyPI moto[server], in the dev extra that ./dev installs): the
# object-storage tests start their own instance on a loopback port.
if .venv/bin/python -c 'import moto.server, flask, s3fs' 2>/dev/null; then
    echo "moto S3 server: installed (tests start it on loopback)"
elif [ "${CI:-}" = "true" ]; then
    echo "moto[server] and s3fs are required in CI but not installed (pip install -e '.[dev]')" >&2
    exit 1
else
    echo "moto S3 server: NOT installed (pip install -e '.[dev]'); S3 tests will not run"
fi

# Chromium (Debian) driven by Playwright (PyPI, in the dev extra) for the dashboard's
# browser tests: Playwright's own browser download cannot run here, so the tests
# launch /usr/bin/chromium through executable_path.
if ! [ -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
fi
if [ -x /usr/bin/chromium ] && .venv/bin/python -c 'import playwright.sync_api' 2>/dev/null; then
    echo "Chromium/Playwright: /usr/bin/chromium ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
elif [ "${CI:-}" = "true" ]; then
    echo "chromium (Debian) and playwright (pip install -e '.[dev]') are required in CI" >&2
    exit 1
else
    echo "Chromium/Playwright: NOT installed; the dashboard's browser tests will not run"
fi
