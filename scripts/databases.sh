#!/usr/bin/env bash
# Throw-away PostgreSQL and MariaDB servers for the tests of crates/store-sqlx.
#
#   eval "$(scripts/databases.sh start)"   # installs (Debian's packages) when missing, starts
#                                          # both on loopback, prints the two URLs to export
#   scripts/databases.sh stop              # stops what `start` started, removes its data
#
# Each `start` makes new clusters in a private directory (not the machine's own services), on
# their own ports, with one database and one user each, so a test run never sees another run's
# data. scripts/test.sh calls both.
set -euo pipefail
cd "$(dirname "$0")/.."

# Under /tmp: the `postgres` user must reach it, which it may not inside a home directory.
RUN_DIR="${SPONSORSHIP_DB_DIR:-/tmp/sponsorship-test-databases-$(id -u)}"
PG_PORT="${SPONSORSHIP_PG_PORT:-55432}"
MY_PORT="${SPONSORSHIP_MY_PORT:-53306}"
DB=sponsorship_test
USER_NAME=sponsorship
PASSWORD="test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

log() { echo "databases: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
  command -v mariadbd >/dev/null || command -v mysqld >/dev/null || missing+=(mariadb-server)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (Debian packages)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
      || { as_root apt-get update -q >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
    # The packages start the machine's own services; these tests use their own clusters.
    as_root service postgresql stop >/dev/null 2>&1 || true
    as_root service mariadb stop >/dev/null 2>&1 || true
  fi
}

pg_bin() { dirname "$(compgen -G "/usr/lib/postgresql/*/bin/postgres" | sort -V | tail -1)"; }

# PostgreSQL refuses to run as root: as root, its cluster belongs to the `postgres` user.
pg_run() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin dir="$RUN_DIR/postgres"
  bin="$(pg_bin)"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  pg_run "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$RUN_DIR/postgres-init.log" 2>&1 \
    || { cat "$RUN_DIR/postgres-init.log" >&2; exit 1; }
  pg_run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $dir -c fsync=off -c max_connections=200" start >&2
  pg_run "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
    -c "CREATE USER $USER_NAME PASSWORD '$PASSWORD'" \
    -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2
  log "PostgreSQL on 127.0.0.1:$PG_PORT"
}

start_mariadb() {
  local dir="$RUN_DIR/mariadb" server
  server="$(command -v mariadbd || command -v mysqld)"
  mkdir -p "$dir"
  mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal >"$RUN_DIR/mariadb-init.log" 2>&1 \
    || { cat "$RUN_DIR/mariadb-init.log" >&2; exit 1; }
  "$server" --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --port="$MY_PORT" --bind-address=127.0.0.1 \
    --user="$(id -un)" --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=256M \
    --max-connections=300 \
    --log-error="$dir/server.log" >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    mariadb --no-defaults -S "$dir/mysqld.sock" -u root -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
  done
  mariadb --no-defaults -S "$dir/mysqld.sock" -u root -e \
    "CREATE DATABASE $DB; CREATE USER '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
     GRANT ALL ON $DB.* TO '$USER_NAME'@'127.0.0.1';" >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
  log "MariaDB on 127.0.0.1:$MY_PORT"
}

stop() {
  if [ -d "$RUN_DIR/postgres/data" ]; then
    pg_run "$(pg_bin)/pg_ctl" -D "$RUN_DIR/postgres/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -f "$RUN_DIR/mariadb/mysqld.pid" ]; then
    kill "$(cat "$RUN_DIR/mariadb/mysqld.pid")" 2>/dev/null || true
    for _ in $(seq 1 60); do [ -f "$RUN_DIR/mariadb/mysqld.pid" ] || break; sleep 0.5; done
  fi
  rm -rf "$RUN_DIR"
}

case "${1:-}" in
  start)
    stop
    mkdir -p "$RUN_DIR"
    install_missing
    start_postgres
    start_mariadb
    echo "export SPONSORSHIP_TEST_POSTGRES_URL=postgres://$USER_NAME:$PASSWORD@127.0.0.1:$PG_PORT/$DB"
    echo "export SPONSORSHIP_TEST_MYSQL_URL=mysql://$USER_NAME:$PASSWORD@127.0.0.1:$MY_PORT/$DB"
    ;;
  stop) stop ;;
  *) echo "usage: scripts/databases.sh start|stop" >&2; exit 2 ;;
esac
