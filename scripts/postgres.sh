#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for many-worker studies and their tests;
# print the storage URL (and nothing else) on stdout.
#
#     export ALLOCSEARCH_TEST_POSTGRES="$(./scripts/postgres.sh)"
#     ./scripts/postgres.sh stop
#
# Installs Debian's postgresql package when no server is found. The cluster lives in
# $ALLOCSEARCH_PG_DATA (default /tmp/allocsearch-pg), listens on 127.0.0.1:$ALLOCSEARCH_PG_PORT
# (default 55432) only, and trusts local connections: it is for tests and one-machine trials,
# not for a shared server (see README, "Many workers").
set -euo pipefail
DATA="${ALLOCSEARCH_PG_DATA:-/tmp/allocsearch-pg}"
PORT="${ALLOCSEARCH_PG_PORT:-55432}"
USER_NAME=allocsearch
DB=allocsearch

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN="$(bindir)"
if [ -z "$BIN" ]; then
    echo "postgres.sh: installing Debian's postgresql package" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres.sh: no PostgreSQL server and not root: apt-get install postgresql" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BIN="$(bindir)"
fi

# The server refuses to run as root: run it as the package's system user.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-start}" = "stop" ]; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
    exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U "$USER_NAME" -A trust --no-sync -E UTF8 >&2
fi
if ! as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -w -l "$DATA/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=200 -c fsync=off" \
        start >&2
fi
PSQL=(psql -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -qtA)
if [ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    "${PSQL[@]}" -c "CREATE DATABASE $DB" >&2
fi
echo "postgresql://$USER_NAME@127.0.0.1:$PORT/$DB"
