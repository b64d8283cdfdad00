#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at 127.0.0.1:5432 for the tests (or at $TASKSERVICE_TEST_POSTGRES):
# start the local Debian cluster when it is down, install Debian's postgresql when it is missing.
set -euo pipefail

dsn="${TASKSERVICE_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/postgres}"
ready() { pg_isready -q -d "$dsn" 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "== installing PostgreSQL (Debian's postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    # The tests connect as postgres over TCP without a password, as on the machines this project runs on.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
fi
if ! ready; then
    echo "== starting PostgreSQL"
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
fi
for _ in $(seq 1 30); do
    if ready; then
        echo "== PostgreSQL answers at $dsn"
        exit 0
    fi
    sleep 1
done
echo "PostgreSQL does not answer at $dsn" >&2
exit 1
