#!/usr/bin/env bash
# A throw-away PostgreSQL for the tests of store/postgres: a new cluster in
# a temporary directory (initdb), started with pg_ctl on 127.0.0.1 and a
# port and socket directory of its own, fsync on, and removed at the end.
# Never a server that happens to be running: the tests get a DSN that
# names this one (BATON_TEST_PG_DSN).
#
#   bash scripts/pg.sh                 start one, check it answers, stop it
#   bash scripts/pg.sh CMD ARGS...     run CMD with BATON_TEST_PG_DSN set
#   eval "$(bash scripts/pg.sh start)" start one; prints the exports
#   bash scripts/pg.sh stop            stop the one BATON_PG_DIR names
#   source scripts/pg.sh; pg_start     in a script: exports, stops at exit
#
# The server refuses to run as root, so as root every server command runs
# as the postgres user. Debian's server package (postgresql) is installed
# with apt when initdb is missing; PG_BIN names another directory.

# pg_bin finds the directory of initdb and pg_ctl: PG_BIN, Debian's
# /usr/lib/postgresql/<version>/bin (the newest), or the PATH.
pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  return 1
}

# pg_install installs Debian's server when no initdb is found.
pg_install() {
  pg_bin >/dev/null && return 0
  echo "pg.sh: no initdb found; installing Debian's postgresql" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "pg.sh: not root and no sudo: install postgresql" >&2; return 1; }
    sudo="sudo -n"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq postgresql >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq postgresql >/dev/null; }
  pg_bin >/dev/null
}

# pg_as runs a server command as the postgres user when root.
pg_as() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_start creates and starts the cluster and exports BATON_TEST_PG_DSN
# and BATON_PG_DIR.
pg_start() {
  pg_install || return 1
  local bin dir port try
  bin=$(pg_bin)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/baton-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  pg_as "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1; }
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    # A port something answers on is taken: try another.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    if pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=on -c max_connections=200" \
      start >/dev/null; then
      export BATON_PG_DIR="$dir"
      export BATON_TEST_PG_DSN="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      return 0
    fi
  done
  cat "$dir/server.log" >&2
  rm -rf "$dir"
  return 1
}

# pg_stop stops the cluster of BATON_PG_DIR and removes it.
pg_stop() {
  local dir=${BATON_PG_DIR:-}
  [ -n "$dir" ] && [ -d "$dir/data" ] || return 0
  pg_as "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  unset BATON_PG_DIR BATON_TEST_PG_DSN
}

# Sourced: only the functions.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  return 0
fi

set -euo pipefail
case "${1:-}" in
start)
  pg_start
  printf 'export BATON_PG_DIR=%q BATON_TEST_PG_DSN=%q\n' "$BATON_PG_DIR" "$BATON_TEST_PG_DSN"
  ;;
stop)
  pg_stop
  ;;
"")
  pg_start
  trap pg_stop EXIT
  pg_as "$(pg_bin)/psql" "$BATON_TEST_PG_DSN" -Atc 'SELECT version()'
  echo "pg.sh: a throw-away server answered on $BATON_TEST_PG_DSN; stopped and removed"
  ;;
*)
  pg_start
  trap pg_stop EXIT
  "$@"
  ;;
esac
