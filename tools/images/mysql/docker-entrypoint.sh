#!/usr/bin/env bash
# Entrypoint of the mysql:8.4.6 stand-in, which runs MariaDB (see Dockerfile). Our
# own short script with the official image's contract:
#   * arguments starting with "-" are mysqld options (CMD is mysqld);
#   * on an empty data directory: MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or
#     MYSQL_RANDOM_ROOT_PASSWORD (one is required), MYSQL_ROOT_HOST (default %),
#     MYSQL_DATABASE, MYSQL_USER + MYSQL_PASSWORD (ALL on MYSQL_DATABASE), the *_FILE
#     variants, MYSQL_INITDB_SKIP_TZINFO, then /docker-entrypoint-initdb.d/*.sh, *.sql
#     and *.sql.gz in name order, all against a temporary server on the socket only
#     (no TCP, so a TCP health check stays unhealthy until this is done);
#   * mysqld runs in the foreground (exec) as the mysql user.
# Not done: MYSQL_ONETIME_PASSWORD, *.sql.bz2/.xz/.zst init files. Accounts use
# MariaDB's mysql_native_password, not MySQL 8.4's caching_sha2_password.
set -eo pipefail
shopt -s nullglob

note() { printf '%s [Note] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*"; }
die() { printf '%s [ERROR] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*" >&2; exit 1; }
banner() {
  local v; v="$(mariadbd --version | sed -n 's/.* Ver \([^ ]*\).*/\1/p')"
  echo "stand-in for mysql:8.4.6: this is MariaDB ${v:-(unknown version)}, not MySQL" >&2
}

# VAR or the content of VAR_FILE (Docker and Kubernetes secrets), as the official image.
file_env() {
  local var=$1 file_var="${1}_FILE" val=${2:-}
  [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ] && die "both $var and $file_var are set (they are exclusive)"
  if [ -n "${!var:-}" ]; then val=${!var}; elif [ -n "${!file_var:-}" ]; then val="$(<"${!file_var}")"; fi
  export "$var=$val"
  unset "$file_var"
}

# A value as an SQL string literal (backslash and quote escaped).
sql_str() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf "'%s'" "$s"; }

# SQL from stdin against the temporary server, as root over the socket; the root
# password once it is set (MYSQL_PWD keeps it off the command line). Init scripts
# that are sourced may call it too, as with the official image.
docker_process_sql() {
  local pw=$MYSQL_ROOT_PASSWORD
  if [ "$1" = --dont-use-mysql-root-password ]; then pw=; shift; fi
  if [ -n "$MYSQL_DATABASE" ]; then set -- --database="$MYSQL_DATABASE" "$@"; fi
  MYSQL_PWD=$pw mysql --protocol=socket --socket="$SOCKET" -uroot --comments "$@"
}

# The one-time initialisation of an empty data directory; "$@" is the server command.
init_database() {
  if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "$MYSQL_ALLOW_EMPTY_PASSWORD" ] && [ -z "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
    die "database is uninitialized and no password option is given: set MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD"
  fi
  [ "$MYSQL_USER" = root ] && die 'MYSQL_USER="root" is not allowed: MYSQL_ROOT_PASSWORD sets the root password'
  # Fail before creating anything if the init directory is unreadable.
  ls /docker-entrypoint-initdb.d/ >/dev/null

  note "Initializing database files in $DATADIR"
  # Root without a password for now (set below), no test database; server
  # options (e.g. the chart's --datadir) pass through.
  mariadb-install-db "${@:2}" --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --default-time-zone=SYSTEM >/dev/null \
    || die "mariadb-install-db failed"

  note "Starting temporary server (socket only)"
  "$@" --skip-networking --socket="$SOCKET" --default-time-zone=SYSTEM \
    --loose-innodb-buffer-pool-load-at-startup=0 --loose-innodb-buffer-pool-dump-at-shutdown=0 &
  local pid=$! waited=0
  until docker_process_sql --dont-use-mysql-root-password --database=mysql <<<'SELECT 1' >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "the temporary server exited during start-up"
    [ $((waited += 1)) -le 60 ] || die "the temporary server did not answer within 60 s"
    sleep 1
  done

  if [ -z "$MYSQL_INITDB_SKIP_TZINFO" ]; then
    mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null \
      | docker_process_sql --dont-use-mysql-root-password --database=mysql
  fi
  if [ -n "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
    MYSQL_ROOT_PASSWORD="$(head -c 18 /dev/urandom | base64)"; export MYSQL_ROOT_PASSWORD
    note "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
  fi

  # Keep only root@localhost (and MariaDB's own mariadb.sys): mariadb-install-db also
  # makes password-less root@127.0.0.1, root@::1 and anonymous accounts.
  local pw; pw="$(sql_str "$MYSQL_ROOT_PASSWORD")"
  {
    echo "SET autocommit = 1;"
    docker_process_sql --dont-use-mysql-root-password --database=mysql -N <<<"SELECT CONCAT('DROP USER ',
      QUOTE(User), '@', QUOTE(Host), ';') FROM mysql.user
      WHERE NOT (User = 'root' AND Host = 'localhost') AND User <> 'mariadb.sys';"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $pw;"
    echo "GRANT ALL ON *.* TO 'root'@'localhost' WITH GRANT OPTION;"
    if [ -n "$MYSQL_ROOT_HOST" ] && [ "$MYSQL_ROOT_HOST" != localhost ]; then
      echo "CREATE USER 'root'@$(sql_str "$MYSQL_ROOT_HOST") IDENTIFIED BY $pw;"
      echo "GRANT ALL ON *.* TO 'root'@$(sql_str "$MYSQL_ROOT_HOST") WITH GRANT OPTION;"
    fi
    echo "DROP DATABASE IF EXISTS test;"
    echo "FLUSH PRIVILEGES;"
  } | docker_process_sql --dont-use-mysql-root-password --database=mysql

  if [ -n "$MYSQL_DATABASE" ]; then
    note "Creating database $MYSQL_DATABASE"
    docker_process_sql --database=mysql <<<"CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE//\`/\`\`}\`;"
  fi
  if [ -n "$MYSQL_USER" ] && [ -n "$MYSQL_PASSWORD" ]; then
    note "Creating user $MYSQL_USER"
    docker_process_sql --database=mysql <<<"CREATE USER $(sql_str "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_str "$MYSQL_PASSWORD");"
    if [ -n "$MYSQL_DATABASE" ]; then
      # "_" is a wildcard in a GRANT's database name; escaped, it means this one database.
      local db=${MYSQL_DATABASE//\`/\`\`}
      docker_process_sql --database=mysql <<<"GRANT ALL ON \`${db//_/\\_}\`.* TO $(sql_str "$MYSQL_USER")@'%';"
    fi
  elif [ -n "$MYSQL_USER$MYSQL_PASSWORD" ]; then
    echo "MYSQL_USER and MYSQL_PASSWORD go together; no user created" >&2
  fi

  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        # shellcheck disable=SC1090  # the init scripts are the user's, known only at run time
        if [ -x "$f" ]; then note "running $f"; "$f"; else note "sourcing $f"; . "$f"; fi ;;
      *.sql) note "running $f"; docker_process_sql <"$f" ;;
      *.sql.gz) note "running $f"; gunzip -c "$f" | docker_process_sql ;;
      *) echo "ignoring $f" >&2 ;;
    esac
  done

  note "Stopping temporary server"
  kill -TERM "$pid"
  wait "$pid" || die "the temporary server did not stop cleanly"
  note "Init process done; starting the server"
}

# Options alone: run them with mysqld.
if [ "${1:0:1}" = - ]; then set -- mysqld "$@"; fi

case "$1" in mysqld | mariadbd) ;; *) banner; exec "$@" ;; esac
for arg; do
  case "$arg" in -'?' | --help | --print-defaults | -V | --version) banner; exec "$@" ;; esac
done

# The server's own view of its configuration (files and arguments), which also
# rejects bad options before anything is created.
help="$("$@" --verbose --help 2>&1)" || die "mysqld rejected its configuration: $help"
conf() { awk -v c="$1" '$1 == c && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }' <<<"$help"; }
DATADIR="$(conf datadir)"; DATADIR=${DATADIR%/}
SOCKET="$(conf socket)"
# Read as root, before stepping down: secret files may be readable by root only.
file_env MYSQL_ROOT_HOST '%'
file_env MYSQL_DATABASE
file_env MYSQL_USER
file_env MYSQL_PASSWORD
file_env MYSQL_ROOT_PASSWORD

if [ "$(id -u)" = 0 ]; then
  # As root (docker run): make the server's directories the mysql user's, then
  # continue as that user. Kubernetes starts us as 999 directly.
  dirs=("$DATADIR" "$(dirname "$SOCKET")" "$(dirname "$(conf pid-file)")")
  files_dir="$(conf secure-file-priv)"
  if [ -n "$files_dir" ] && [ "$files_dir" != NULL ]; then dirs+=("$files_dir"); fi
  mkdir -p "${dirs[@]}"
  find "${dirs[@]}" \! -user mysql -exec chown --no-dereference mysql:mysql '{}' +
  exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
fi

banner
mkdir -p "$DATADIR"
if [ ! -d "$DATADIR/mysql" ]; then
  init_database "$@"
fi
exec "$@"
