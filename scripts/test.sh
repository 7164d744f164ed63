#!/usr/bin/env bash
# Run mailwright's whole test suite: ruff check, ruff format --check, mypy, pytest.
#
# Creates or updates .venv (with the first python3.11+ found), installs
# mailwright with its test extras, and installs Postfix's smtp-source and
# smtp-sink (used as real peers by the integration tests) and Chromium (for the
# preference centre's browser tests) with apt-get when they are missing and we
# are root. The notification store's tests also run against PostgreSQL on
# 127.0.0.1:5432 when it is there (and must, with MAILWRIGHT_REQUIRE_SERVICES=1). Extra arguments go to pytest, for instance
# `./scripts/test.sh -x tests/unit`.
#
# With MAILWRIGHT_REQUIRE_SERVICES=1 (CI), a missing smtp-sink is an error here
# rather than a wall of failing tests later.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "scripts/test.sh: Python 3.11 or newer is needed" >&2
    return 1
}

# -- the virtual environment ------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

# -- Postfix's smtp-source and smtp-sink -------------------------------------------
if [ ! -x /usr/sbin/smtp-sink ] || [ ! -x /usr/sbin/smtp-source ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        # "No configuration": install the binaries without starting a Postfix instance.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
    elif [ "${MAILWRIGHT_REQUIRE_SERVICES:-0}" = 1 ]; then
        echo "scripts/test.sh: /usr/sbin/smtp-sink is missing and cannot be installed" >&2
        exit 1
    else
        echo "scripts/test.sh: warning: Postfix's smtp-sink is missing; tests using it fail" >&2
    fi
fi

# -- Debian's Chromium, for the preference centre's browser tests -----------------------
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    elif [ "${MAILWRIGHT_REQUIRE_SERVICES:-0}" = 1 ]; then
        echo "scripts/test.sh: /usr/bin/chromium is missing and cannot be installed" >&2
        exit 1
    else
        echo "scripts/test.sh: warning: Chromium is missing; the browser tests are skipped" >&2
    fi
fi

# -- checks -------------------------------------------------------------------------
.venv/bin/ruff check src tests bench fuzz
.venv/bin/ruff format --check src tests bench fuzz
.venv/bin/mypy

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "scripts/test.sh: pytest collected no tests" >&2
fi
exit "$status"
