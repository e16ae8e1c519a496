#!/bin/sh
# The container's entrypoint: wait for the database, bring its schema up to date, then
# become the command (by default `storekeeper serve`) with `exec`, so the signals the
# container receives (SIGTERM on `docker stop`) reach the server itself.
#
#   STOREKEEPER_DB_WAIT_SECONDS   how long to wait for the database (default 60), then exit 1
#   STOREKEEPER_MIGRATE_ON_START  `true` (default): `storekeeper serve` runs `db upgrade` first;
#                                 compose sets `false`, its one-shot `migrate` service does it
#
# Any other command (`sh`, `storekeeper users create ...`) runs as given, without waiting.
set -eu

wait_seconds="${STOREKEEPER_DB_WAIT_SECONDS:-60}"
migrate_on_start="${STOREKEEPER_MIGRATE_ON_START:-true}"

if [ "$#" -eq 0 ]; then
    set -- storekeeper serve
fi

if [ "$1" = "storekeeper" ]; then
    case "${2:-}" in
        serve | worker | db)
            storekeeper db wait --timeout "$wait_seconds"
            ;;
    esac
    if [ "${2:-}" = "serve" ] && [ "$migrate_on_start" = "true" ]; then
        storekeeper db upgrade
    fi
fi

exec "$@"
