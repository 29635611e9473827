# shellcheck shell=bash
# Start and stop a private PostgreSQL 15 cluster and a private Redis 7 server,
# for the test environment (tools/testenv) and the development stack
# (tools/dev up, under .run/). Source this file; it defines functions only and
# changes no shell options.
#
# Both servers listen on 127.0.0.1 only and need a password. They are tuned for
# speed, not durability (fsync=off, no Redis persistence): never for real data.
#
#   crm_free_port
#       Prints a TCP port that nothing listens on at 127.0.0.1 (range 20000-59999).
#
#   pg_start DIR PORT SUPERUSER PASSWORD
#       Creates (initdb, first time only) a cluster in DIR/pg whose superuser is
#       SUPERUSER with PASSWORD (scram-sha-256, TCP on 127.0.0.1 only, no unix
#       socket), starts it on PORT with its log in DIR/pg.log, and waits until it
#       accepts connections (60 s at most). An existing cluster is reused: its
#       superuser and password are the ones given when it was created.
#       Exports PGHOST=127.0.0.1 PGPORT PGUSER PGPASSWORD PGDATABASE=postgres,
#       which pg_create_service_db and psql then use.
#       As root, initdb and postgres run as the `postgres` user, which must be
#       able to reach DIR (DIR/pg is chowned to it).
#       Returns non-zero (with the log tail on stderr) if it cannot start.
#       A cluster already running in DIR/pg is left running (safe to repeat).
#
#   pg_stop DIR
#       Stops the cluster in DIR/pg (fast shutdown, then SIGKILL after 30 s).
#       Succeeds if nothing runs there. Keeps the data.
#
#   pg_create_service_db NAME PASSWORD
#       Creates (or updates the password of) the login role NAME and creates the
#       database NAME owned by it, connectable by that role only. Idempotent.
#       NAME must match [a-z][a-z0-9_]{0,62}. Uses the PG* variables (pg_start
#       sets them). The password never appears on a command line.
#
#   redis_start DIR PORT PASSWORD
#       Starts redis-server with its config (mode 600, holding the password),
#       pid file and log in DIR/redis/, bound to 127.0.0.1:PORT, requirepass
#       PASSWORD, no RDB/AOF persistence, and waits until it answers (30 s at
#       most). Returns non-zero (with the log tail) if it cannot start. A server
#       already running from DIR is left running (safe to repeat).
#
#   redis_stop DIR
#       Stops the server started by redis_start DIR (SIGTERM, SIGKILL after
#       10 s). Succeeds if nothing runs there. Removes nothing.

CRM_PG_BIN=${CRM_PG_BIN:-/usr/lib/postgresql/15/bin}

crm_free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 40000))
    if [[ -z "$(ss -Hltn "sport = :${port}" 2>/dev/null)" ]]; then
      echo "${port}"
      return 0
    fi
  done
  echo "crm_free_port: no free port found" >&2
  return 1
}

# Runs a command as the postgres OS user when we are root.
_pg_as_owner() {
  if [[ ${EUID} -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_pg_log_tail() {
  local log=$1
  if [[ -f "${log}" ]]; then
    echo "---- last lines of ${log} ----" >&2
    tail -n 20 "${log}" >&2
  fi
}

pg_start() {
  local dir=$1 port=$2 superuser=$3 password=$4
  if [[ -z "${dir}" || -z "${port}" || -z "${superuser}" || -z "${password}" ]]; then
    echo "usage: pg_start DIR PORT SUPERUSER PASSWORD" >&2
    return 2
  fi
  dir=$(realpath -m "${dir}")
  local data="${dir}/pg" log="${dir}/pg.log"
  mkdir -p "${data}" || return 1
  if [[ ${EUID} -eq 0 ]]; then
    chown postgres:postgres "${data}" || return 1
    touch "${log}" && chown postgres:postgres "${log}" || return 1
  fi
  chmod 700 "${data}" || return 1
  if ! _pg_as_owner test -w "${data}"; then
    echo "pg_start: the postgres user cannot write ${data}; make its parent directories traversable" >&2
    return 1
  fi
  if [[ ! -f "${data}/PG_VERSION" ]]; then
    local pwfile
    pwfile=$(mktemp "${dir}/.pwfile.XXXXXX") || return 1
    printf '%s\n' "${password}" >"${pwfile}"
    [[ ${EUID} -eq 0 ]] && chown postgres:postgres "${pwfile}"
    if ! _pg_as_owner "${CRM_PG_BIN}/initdb" -D "${data}" -U "${superuser}" --pwfile="${pwfile}" \
      --auth-host=scram-sha-256 --auth-local=reject --encoding=UTF8 --locale=C.UTF-8 \
      --no-sync >"${dir}/initdb.log" 2>&1; then
      rm -f "${pwfile}"
      echo "pg_start: initdb failed" >&2
      _pg_log_tail "${dir}/initdb.log"
      return 1
    fi
    rm -f "${pwfile}"
    cat >>"${data}/postgresql.conf" <<'EOF'

# crm: a private cluster for tests and development (tools/lib/pgredis.sh).
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 30min
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
EOF
  fi
  if _pg_as_owner "${CRM_PG_BIN}/pg_ctl" -D "${data}" status >/dev/null 2>&1; then
    :  # Already running (pg_start is safe to repeat).
  elif ! _pg_as_owner "${CRM_PG_BIN}/pg_ctl" -D "${data}" -l "${log}" -o "-p ${port}" -w -t 60 \
    start >/dev/null 2>&1; then
    echo "pg_start: postgres did not start on port ${port}" >&2
    _pg_log_tail "${log}"
    return 1
  fi
  local i
  for ((i = 0; i < 600; i++)); do
    if "${CRM_PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "${port}" -t 1; then
      export PGHOST=127.0.0.1 PGPORT="${port}" PGUSER="${superuser}" PGPASSWORD="${password}"
      export PGDATABASE=postgres
      return 0
    fi
    sleep 0.1
  done
  echo "pg_start: postgres on port ${port} does not accept connections" >&2
  _pg_log_tail "${log}"
  return 1
}

pg_stop() {
  local dir=$1
  if [[ -z "${dir}" ]]; then
    echo "usage: pg_stop DIR" >&2
    return 2
  fi
  local data="${dir}/pg"
  [[ -f "${data}/postmaster.pid" ]] || return 0
  local pid
  pid=$(head -n 1 "${data}/postmaster.pid" 2>/dev/null)
  if [[ -z "${pid}" ]] || ! kill -0 "${pid}" 2>/dev/null; then
    rm -f "${data}/postmaster.pid"
    return 0
  fi
  if ! _pg_as_owner "${CRM_PG_BIN}/pg_ctl" -D "${data}" -m fast -w -t 30 stop >/dev/null 2>&1; then
    kill -KILL "${pid}" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "${data}/postmaster.pid"
  fi
  return 0
}

pg_create_service_db() {
  local name=$1 password=$2
  if [[ ! "${name}" =~ ^[a-z][a-z0-9_]{0,62}$ || -z "${password}" ]]; then
    echo "usage: pg_create_service_db NAME PASSWORD (NAME: [a-z][a-z0-9_]{0,62})" >&2
    return 2
  fi
  CRM_PG_SERVICE_PASSWORD="${password}" psql -X -q -v ON_ERROR_STOP=1 -v name="${name}" \
    -d postgres -f - >/dev/null <<'EOF'
\getenv pw CRM_PG_SERVICE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'name')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \gexec
REVOKE CONNECT, TEMPORARY ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
EOF
}

redis_start() {
  local dir=$1 port=$2 password=$3
  if [[ -z "${dir}" || -z "${port}" || -z "${password}" ]]; then
    echo "usage: redis_start DIR PORT PASSWORD" >&2
    return 2
  fi
  dir=$(realpath -m "${dir}")
  local rdir="${dir}/redis"
  mkdir -p "${rdir}" || return 1
  chmod 700 "${rdir}"
  (
    umask 077
    cat >"${rdir}/redis.conf" <<EOF
# crm: a private Redis for tests and development (tools/lib/pgredis.sh).
bind 127.0.0.1
protected-mode yes
port ${port}
requirepass "${password}"
dir "${rdir}"
pidfile "${rdir}/redis.pid"
logfile "${rdir}/redis.log"
daemonize yes
save ""
appendonly no
databases 16
EOF
  ) || return 1
  if [[ -s "${rdir}/redis.pid" ]] && kill -0 "$(cat "${rdir}/redis.pid")" 2>/dev/null; then
    return 0  # Already running (redis_start is safe to repeat).
  fi
  rm -f "${rdir}/redis.pid"
  if ! redis-server "${rdir}/redis.conf" >/dev/null 2>&1; then
    echo "redis_start: redis-server failed" >&2
    _pg_log_tail "${rdir}/redis.log"
    return 1
  fi
  local i reply
  for ((i = 0; i < 300; i++)); do
    reply=$(REDISCLI_AUTH="${password}" redis-cli -h 127.0.0.1 -p "${port}" ping 2>/dev/null)
    if [[ "${reply}" == PONG ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "redis_start: redis on port ${port} does not answer" >&2
  _pg_log_tail "${rdir}/redis.log"
  return 1
}

redis_stop() {
  local dir=$1
  if [[ -z "${dir}" ]]; then
    echo "usage: redis_stop DIR" >&2
    return 2
  fi
  local pidfile="${dir}/redis/redis.pid"
  [[ -f "${pidfile}" ]] || return 0
  local pid i
  pid=$(head -n 1 "${pidfile}" 2>/dev/null)
  if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null &&
    [[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" == redis-server ]]; then
    kill -TERM "${pid}" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${pid}" 2>/dev/null
  fi
  rm -f "${pidfile}"
  return 0
}
