#!/usr/bin/env bash
# Installs, starts and reuses the real services the platform's tests need:
#   * MariaDB (Debian package), listening on 127.0.0.1:3306
#   * Apache Kafka 4 (single KRaft broker+controller, jars from Maven Central),
#     PLAINTEXT on 127.0.0.1:9092, SASL_PLAINTEXT/PLAIN on 127.0.0.1:9094
#
# There is no init system on the machines this runs on, so both servers are
# started as detached background processes (setsid) and stopped by pid.
#
# Usage: scripts/deps.sh [up|env|status|kafka-jars|mariadb-start|mariadb-stop|
#                         kafka-start|kafka-stop|kafka-kill|
#                         mariadb-freeze|mariadb-thaw|kafka-freeze|kafka-thaw|help]
#   *-freeze / *-thaw  SIGSTOP / SIGCONT the server: it stops answering but keeps its
#                 connections open, as a server stalled by I/O or the scheduler does
#   up (default)  install + start everything, then print `export` lines
#   env           print only the `export` lines:  eval "$(scripts/deps.sh env)"
#   kafka-jars    only resolve the Kafka jars (nothing is started); print their libs
#                 directory (tools/images/kafka/build.sh copies them into the image)
#
# Progress goes to stderr with a "[deps]" prefix; stdout carries only the
# export lines, so `eval "$(scripts/deps.sh up)"` works too.
set -euo pipefail

# ----------------------------------------------------------------------------
# Settings (overridable from the environment)
# ----------------------------------------------------------------------------
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

MYSQL_HOST=127.0.0.1
MYSQL_PORT=3306
MARIADB_CNF=/etc/mysql/mariadb.conf.d/99-platform.cnf
MARIADB_SOCKET=/run/mysqld/mysqld.sock
MARIADB_PIDFILE=/run/mysqld/mysqld.pid
MARIADB_LOG=/var/log/mysql/platform-mariadbd.log

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_HOME="$PLATFORM_CACHE/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-/tmp/platform-kafka}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_SASL_PORT=9094
KAFKA_SASL_USER=platform
KAFKA_SASL_PASSWORD=platform-secret
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# Short-lived admin tool JVMs: C1 only starts noticeably faster.
KAFKA_TOOL_JVM_OPTS=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC)

KAFKA_PIDFILE="$KAFKA_DATA_DIR/kafka.pid"
KAFKA_LOG_DIR="$KAFKA_DATA_DIR/logs"          # log4j output (server.log, stdout.log)
KAFKA_STORAGE_DIR="$KAFKA_DATA_DIR/kraft-logs" # topic data + KRaft metadata log
KAFKA_CONFIG="$KAFKA_DATA_DIR/server.properties"

# Generous bounds: a cold JVM on 2 busy cores can take a while.
START_TIMEOUT_S="${DEPS_START_TIMEOUT_S:-120}"
STOP_TIMEOUT_S="${DEPS_STOP_TIMEOUT_S:-60}"

# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------
LOG_TAG=deps LOG_FD=2 DIE_WORD=ERROR

require_root() {
  [[ $EUID -eq 0 ]] || die "must run as root to $1 (no sudo handling here)"
}

# True if something accepts TCP connections on host:port.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Wait until "$@" succeeds, at most $1 seconds; returns 1 on timeout.
wait_for() {
  local timeout="$1"; shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

not() { ! "$@"; }

# Serialise concurrent invocations (e.g. several test binaries calling `up`).
# Servers we launch get fd 9 closed so they do not hold the lock forever.
take_lock() {
  mkdir -p "$PLATFORM_CACHE"
  exec 9>"$PLATFORM_CACHE/deps.lock"
  if ! flock -w 600 9; then
    die "another scripts/deps.sh has held $PLATFORM_CACHE/deps.lock for 10 minutes"
  fi
}

# Start "$@" detached (own session, no stdin, fd 9 closed), output appended
# to $1, and write the server's own pid to $2. `bash -c ... exec` keeps the
# pid written equal to the server's pid whether or not setsid forks.
launch_detached() {
  local out="$1" pidfile="$2"; shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$out" 2>&1 9>&- &
  wait_for 10 test -s "$pidfile" || die "could not launch: $*"
}

# ----------------------------------------------------------------------------
# MariaDB
# ----------------------------------------------------------------------------
mariadb_root() { mariadb --protocol=socket --socket="$MARIADB_SOCKET" -uroot; }

mariadb_running() {
  [[ -S "$MARIADB_SOCKET" ]] || return 1
  mariadb-admin --protocol=socket --socket="$MARIADB_SOCKET" -uroot ping >/dev/null 2>&1 \
    && port_open "$MYSQL_HOST" "$MYSQL_PORT"
}

mariadb_pid() {
  if [[ -r "$MARIADB_PIDFILE" ]]; then cat "$MARIADB_PIDFILE"; fi
}

ensure_mariadb_installed() {
  if [[ -x /usr/sbin/mariadbd ]] && command -v mariadb >/dev/null && command -v mariadb-admin >/dev/null; then
    log "MariaDB already installed: $(/usr/sbin/mariadbd --version | head -n1)"
    return
  fi
  # policy-rc.d on these machines stops the package from starting the server
  # itself, which is what we want: we start it below without systemd.
  apt_install mariadb-server mariadb-client
  [[ -x /usr/sbin/mariadbd ]] || die "mariadb-server installed but /usr/sbin/mariadbd is missing"
}

# Our overrides go in a file that sorts after Debian's 50-server.cnf.
write_mariadb_config() {
  require_root "configure MariaDB"
  local tmp; tmp="$(mktemp)"
  cat >"$tmp" <<EOF
# Written by scripts/deps.sh (platform test dependencies); rewritten on start.
[mysqld]
bind-address            = $MYSQL_HOST
port                    = $MYSQL_PORT
socket                  = $MARIADB_SOCKET
pid-file                = $MARIADB_PIDFILE
character-set-server    = utf8mb4
collation-server        = utf8mb4_unicode_ci
# Give every connection the server charset/collation above, whatever the
# client's handshake asks for (clients may still SET NAMES afterwards).
character-set-client-handshake = FALSE
# Tests open many pools in parallel (and a fresh database per test).
max_connections         = 1000
# No DNS on these machines: resolving client hosts would only add latency.
skip-name-resolve
# Test server: fsync the redo log once a second instead of per commit. A
# clean mariadb-stop still loses nothing; it only matters for an OS crash.
innodb_flush_log_at_trx_commit = 2

[client]
default-character-set   = utf8mb4
EOF
  if ! cmp -s "$tmp" "$MARIADB_CNF" 2>/dev/null; then
    log "writing $MARIADB_CNF"
    install -m 0644 "$tmp" "$MARIADB_CNF"
  fi
  rm -f "$tmp"
}

start_mariadb() {
  if mariadb_running; then
    log "MariaDB already running (pid $(mariadb_pid)) on $MYSQL_HOST:$MYSQL_PORT"
    return
  fi
  if port_open "$MYSQL_HOST" "$MYSQL_PORT"; then
    die "port $MYSQL_PORT is taken by a server that does not answer on $MARIADB_SOCKET; stop it first"
  fi
  require_root "start MariaDB"
  write_mariadb_config
  install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    log "initialising MariaDB data dir /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2 \
      || die "mariadb-install-db failed"
  fi
  log "starting mariadbd (log: $MARIADB_LOG)"
  local pidfile=/run/mysqld/platform-launch.pid
  launch_detached "$MARIADB_LOG" "$pidfile" /usr/sbin/mariadbd --user=mysql
  local pid; pid="$(cat "$pidfile")"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until mariadb_running; do
    if ! pid_alive "$pid"; then
      tail -n 30 "$MARIADB_LOG" >&2 || true
      die "mariadbd (pid $pid) exited during startup; see $MARIADB_LOG"
    fi
    ((SECONDS < deadline)) || die "MariaDB did not answer within ${START_TIMEOUT_S}s; see $MARIADB_LOG"
    sleep 0.5
  done
  log "MariaDB is up (pid $pid) on $MYSQL_HOST:$MYSQL_PORT"
}

stop_mariadb() {
  local pid; pid="$(mariadb_pid)"
  if ! mariadb_running && ! pid_alive "$pid"; then
    log "MariaDB is not running"
    return
  fi
  require_root "stop MariaDB"
  log "stopping MariaDB (pid ${pid:-?}) cleanly"
  if ! mariadb-admin --protocol=socket --socket="$MARIADB_SOCKET" -uroot shutdown >&2; then
    [[ -n "$pid" ]] || die "mariadb-admin shutdown failed and no pid file at $MARIADB_PIDFILE"
    log "mariadb-admin shutdown failed; sending SIGTERM to $pid"
    kill -TERM "$pid" 2>/dev/null || true
  fi
  wait_for "$STOP_TIMEOUT_S" not pid_alive "$pid" \
    || die "mariadbd (pid $pid) still running ${STOP_TIMEOUT_S}s after shutdown"
  wait_for "$STOP_TIMEOUT_S" not port_open "$MYSQL_HOST" "$MYSQL_PORT" \
    || die "port $MYSQL_PORT still open after MariaDB stopped"
  log "MariaDB stopped; port $MYSQL_PORT closed"
}

# Idempotent: safe to run on every `up`. Accounts use mysql_native_password
# because the sqlx MySQL driver speaks it with MariaDB.
provision_mariadb() {
  log "provisioning databases and accounts (users, notifications, platform_test)"
  mariadb_root <<'SQL' || die "provisioning SQL failed"
CREATE DATABASE IF NOT EXISTS `users` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS `notifications` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'user_service'@'%';
CREATE USER IF NOT EXISTS 'user_service'@'localhost';
ALTER USER 'user_service'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('user_service');
ALTER USER 'user_service'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('user_service');
GRANT ALL PRIVILEGES ON `users`.* TO 'user_service'@'%';
GRANT ALL PRIVILEGES ON `users`.* TO 'user_service'@'localhost';

CREATE USER IF NOT EXISTS 'notification_service'@'%';
CREATE USER IF NOT EXISTS 'notification_service'@'localhost';
ALTER USER 'notification_service'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('notification_service');
ALTER USER 'notification_service'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('notification_service');
GRANT ALL PRIVILEGES ON `notifications`.* TO 'notification_service'@'%';
GRANT ALL PRIVILEGES ON `notifications`.* TO 'notification_service'@'localhost';

-- Tests create and drop one database per test, all named test_<something>.
CREATE USER IF NOT EXISTS 'platform_test'@'%';
CREATE USER IF NOT EXISTS 'platform_test'@'localhost';
ALTER USER 'platform_test'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('platform_test');
ALTER USER 'platform_test'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('platform_test');
GRANT ALL PRIVILEGES ON `test\_%`.* TO 'platform_test'@'%';
GRANT ALL PRIVILEGES ON `test\_%`.* TO 'platform_test'@'localhost';
FLUSH PRIVILEGES;
SQL
}

# Log in over TCP the way the tests do.
verify_mariadb() {
  local out
  out="$(mariadb --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" -uplatform_test -pplatform_test \
    -N -B -e 'SELECT @@character_set_server, @@collation_server, @@max_connections' 2>&1)" \
    || die "cannot log in as platform_test over TCP: $out"
  log "MariaDB OK as platform_test (charset, collation, max_connections: $(tr '\t' ' ' <<<"$out"))"
}

mariadb_up() {
  ensure_mariadb_installed
  write_mariadb_config
  start_mariadb
  provision_mariadb
  verify_mariadb
}

# ----------------------------------------------------------------------------
# Kafka
# ----------------------------------------------------------------------------
ensure_java_and_maven() {
  # Kafka 4 brokers need Java 17+.
  local spec=""
  if command -v java >/dev/null; then
    spec="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  fi
  if [[ -z "$spec" || "${spec%%.*}" -lt 17 ]]; then
    apt_install openjdk-17-jre-headless
  fi
  if ! command -v mvn >/dev/null; then
    apt_install maven
  fi
  command -v java >/dev/null || die "java is missing after install"
  command -v mvn >/dev/null || die "mvn is missing after install"
}

# Kafka's bin/ scripts are not published to Maven, only the jars. We resolve
# kafka_2.13 + kafka-tools (console producer/consumer, topic admin) with all
# runtime dependencies into a cached libs/ dir, marked complete at the end.
fetch_kafka() {
  if [[ -f "$KAFKA_HOME/.complete" && -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
    log "Kafka $KAFKA_VERSION jars cached in $KAFKA_LIBS ($(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars)"
    return
  fi
  ensure_java_and_maven
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies with mvn"
  # Resolve into a scratch dir next to the cache; only a complete set is
  # moved into place, so an interrupted download is simply redone.
  local work="$KAFKA_HOME.partial"
  rm -rf "$work"; mkdir -p "$work"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.platform</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  if ! mvn -B -q -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "mvn could not resolve Kafka $KAFKA_VERSION (set KAFKA_VERSION to another 4.x release?)"
  fi
  # The POMs carry slf4j-api but no binding (the release tarball adds one);
  # without it the broker logs nothing. Use the binding matching log4j-core.
  local core log4j_version
  core="$(find "$work/libs" -name 'log4j-core-*.jar' | head -n1)"
  [[ -n "$core" ]] || die "Kafka's dependencies contain no log4j-core jar; cannot configure logging"
  log4j_version="$(basename "$core" .jar)"; log4j_version="${log4j_version#log4j-core-}"
  log "adding slf4j->log4j2 binding log4j-slf4j-impl:$log4j_version"
  if ! mvn -B -q -Dstyle.color=never -f "$work/pom.xml" dependency:copy -Dartifact="org.apache.logging.log4j:log4j-slf4j-impl:$log4j_version" \
      -DoutputDirectory="$work/libs" >"$work/mvn-slf4j.log" 2>&1; then
    tail -n 30 "$work/mvn-slf4j.log" >&2
    die "mvn could not fetch org.apache.logging.log4j:log4j-slf4j-impl:$log4j_version"
  fi
  [[ -f "$work/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  mkdir -p "$KAFKA_HOME"
  rm -rf "$KAFKA_LIBS"
  mv "$work/libs" "$KAFKA_LIBS"
  date -u +%FT%TZ >"$KAFKA_HOME/.complete"
  rm -rf "$work"
  log "Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

# Run a Kafka CLI class quietly (tools log WARN+ to stderr only), bounded in
# time so a wedged broker cannot hang the script.
kafka_tool() {
  timeout 120 java -cp "$KAFKA_LIBS/*" "${KAFKA_TOOL_JVM_OPTS[@]}" \
    -Dlog4j2.configurationFile="$KAFKA_DATA_DIR/tools-log4j2.properties" "$@"
}

# The broker's server.properties, on stdout.
kafka_server_properties() {
  cat <<EOF
# Written by scripts/deps.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
# SASL/PLAIN only on the 9094 listener, for security tests.
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SASL_USER" password="$KAFKA_SASL_PASSWORD" user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
log.dirs=$KAFKA_STORAGE_DIR
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
# Topics are created explicitly by the services/tests.
auto.create.topics.enable=false
# Single node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Longer than the fault tests' 20 s broker freeze: this node is its own
# controller, and with a shorter session it fences itself for a moment when it
# wakes. A metadata answer in that moment lists no broker, and librdkafka 2.12
# then decommissions its only known broker while the consumer group still holds
# it as coordinator: the consumer never reconnects (docs/operations.md,
# "Gray failures"). The cost: after kafka-kill the restarted node waits for its
# old session to expire before it re-registers.
broker.session.timeout.ms=30000
broker.heartbeat.interval.ms=1000
# Consumer groups start at once instead of waiting 3s for more members.
group.initial.rebalance.delay.ms=0
EOF
}

write_kafka_config() {
  mkdir -p "$KAFKA_DATA_DIR" "$KAFKA_LOG_DIR" "$KAFKA_STORAGE_DIR"
  # Regenerated on every start so edits to this script take effect; topic
  # data and the cluster id live in $KAFKA_STORAGE_DIR and are kept.
  kafka_server_properties >"$KAFKA_CONFIG"
  cat >"$KAFKA_DATA_DIR/log4j2.properties" <<EOF
# Broker logging (written by scripts/deps.sh).
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $KAFKA_LOG_DIR/server.log
appender.file.filePattern = $KAFKA_LOG_DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# Per-request/state-change chatter is not useful for tests.
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  cat >"$KAFKA_DATA_DIR/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  cat >"$KAFKA_DATA_DIR/sasl-client.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SASL_USER" password="$KAFKA_SASL_PASSWORD";
EOF
}

# Format storage once; later starts reuse the data (topics survive restarts).
format_kafka_storage() {
  if [[ -f "$KAFKA_STORAGE_DIR/meta.properties" ]]; then
    return
  fi
  local cluster_id
  cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid)" || die "kafka StorageTool random-uuid failed"
  log "formatting Kafka storage in $KAFKA_STORAGE_DIR (cluster id $cluster_id)"
  kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONFIG" >&2 \
    || die "kafka StorageTool format failed"
}

# Pid from the pid file, only if that process is alive and really our broker.
kafka_pid() {
  local pid
  [[ -r "$KAFKA_PIDFILE" ]] || return 0
  pid="$(cat "$KAFKA_PIDFILE")"
  if pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    echo "$pid"
  fi
}

# Ask the broker for metadata (lists topics); proves it serves requests.
kafka_answers_metadata() {
  kafka_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" --list >/dev/null 2>&1
}

kafka_sasl_answers() {
  kafka_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_HOST:$KAFKA_SASL_PORT" \
    --command-config "$KAFKA_DATA_DIR/sasl-client.properties" --list >/dev/null 2>&1
}

kafka_started_in_log() {
  grep -q 'Kafka Server started' "$KAFKA_LOG_DIR/server.log" 2>/dev/null
}

start_kafka() {
  local pid; pid="$(kafka_pid)"
  if [[ -n "$pid" ]] && ! kafka_server_properties | cmp -s - "$KAFKA_CONFIG"; then
    log "Kafka (pid $pid) runs with settings this script no longer writes: restarting it"
    signal_kafka TERM
    pid=""
  fi
  if [[ -n "$pid" ]]; then
    log "Kafka already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
    return
  fi
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_PORT"; do
    if port_open "$KAFKA_HOST" "$p"; then
      die "port $p is taken by a process not recorded in $KAFKA_PIDFILE; stop it first"
    fi
  done
  ensure_java_and_maven
  write_kafka_config
  format_kafka_storage
  # Keep the previous run's log for post-mortems; readiness is read from a
  # fresh server.log.
  if [[ -f "$KAFKA_LOG_DIR/server.log" ]]; then
    mv -f "$KAFKA_LOG_DIR/server.log" "$KAFKA_LOG_DIR/server-previous.log"
  fi
  : >"$KAFKA_LOG_DIR/stdout.log"
  log "starting Kafka $KAFKA_VERSION broker (data: $KAFKA_DATA_DIR, log: $KAFKA_LOG_DIR/server.log)"
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  launch_detached "$KAFKA_LOG_DIR/stdout.log" "$KAFKA_PIDFILE" \
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_DATA_DIR/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG"
  pid="$(cat "$KAFKA_PIDFILE")"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until kafka_started_in_log && port_open "$KAFKA_HOST" "$KAFKA_PORT"; do
    if ! pid_alive "$pid"; then
      tail -n 30 "$KAFKA_LOG_DIR/stdout.log" "$KAFKA_LOG_DIR/server.log" >&2 2>/dev/null || true
      die "Kafka (pid $pid) exited during startup; see $KAFKA_LOG_DIR"
    fi
    ((SECONDS < deadline)) || die "Kafka did not start within ${START_TIMEOUT_S}s; see $KAFKA_LOG_DIR/server.log"
    sleep 0.5
  done
  log "Kafka broker started (pid $pid); port $KAFKA_PORT open"
}

verify_kafka() {
  log "checking Kafka answers metadata on $KAFKA_HOST:$KAFKA_PORT"
  wait_for 60 kafka_answers_metadata || die "Kafka on $KAFKA_HOST:$KAFKA_PORT does not answer metadata requests"
  log "checking SASL/PLAIN login as '$KAFKA_SASL_USER' on $KAFKA_HOST:$KAFKA_SASL_PORT"
  kafka_sasl_answers || die "Kafka SASL_PLAINTEXT listener on $KAFKA_HOST:$KAFKA_SASL_PORT rejects $KAFKA_SASL_USER"
  log "Kafka OK"
}

# Signal the broker and wait until it is gone and its port closed.
signal_kafka() {
  local sig="$1" pid; pid="$(kafka_pid)"
  if [[ -z "$pid" ]]; then
    log "Kafka is not running"
    return
  fi
  log "sending SIG$sig to Kafka (pid $pid)"
  kill "-$sig" "$pid"
  if ! wait_for "$STOP_TIMEOUT_S" not pid_alive "$pid"; then
    [[ "$sig" == KILL ]] && die "Kafka (pid $pid) survived SIGKILL for ${STOP_TIMEOUT_S}s"
    log "Kafka did not stop within ${STOP_TIMEOUT_S}s after SIG$sig; escalating to SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 30 not pid_alive "$pid" || die "Kafka (pid $pid) survived SIGKILL"
  fi
  wait_for 30 not port_open "$KAFKA_HOST" "$KAFKA_PORT" \
    || die "port $KAFKA_PORT still open after Kafka exited"
  rm -f "$KAFKA_PIDFILE"
  log "Kafka stopped (pid $pid gone, port $KAFKA_PORT closed)"
}

# SIGSTOP or SIGCONT a server by pid (gray failures: stalled, not dead).
signal_server() {
  local name="$1" sig="$2" pid="$3"
  [[ -n "$pid" ]] || die "$name is not running"
  kill "-$sig" "$pid"
  log "sent SIG$sig to $name (pid $pid)"
}

# A server left frozen by an interrupted test would hang every client: thaw before use.
thaw_all() {
  local pid
  for pid in "$(mariadb_pid)" "$(kafka_pid)"; do
    [[ -n "$pid" ]] && kill -CONT "$pid" 2>/dev/null || true
  done
}

kafka_up() {
  fetch_kafka
  start_kafka
  verify_kafka
}

# ----------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------
print_env() {
  cat <<EOF
export TEST_MYSQL_URL=mysql://platform_test:platform_test@$MYSQL_HOST:$MYSQL_PORT
export TEST_KAFKA_BROKERS=$KAFKA_HOST:$KAFKA_PORT
export TEST_KAFKA_SASL_BROKERS=$KAFKA_HOST:$KAFKA_SASL_PORT
export TEST_KAFKA_SASL_USERNAME=$KAFKA_SASL_USER
export TEST_KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD
EOF
}

cmd_status() {
  if mariadb_running; then
    echo "mariadb: running (pid $(mariadb_pid)) on $MYSQL_HOST:$MYSQL_PORT"
  else
    echo "mariadb: not running"
  fi
  local pid; pid="$(kafka_pid)"
  if [[ -n "$pid" ]]; then
    local ports=""
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_PORT"; do
      port_open "$KAFKA_HOST" "$p" && ports+=" $p" || ports+=" ($p closed)"
    done
    echo "kafka:   running (pid $pid) version $KAFKA_VERSION, ports$ports, data $KAFKA_DATA_DIR"
  else
    echo "kafka:   not running (data $KAFKA_DATA_DIR)"
  fi
}

# The header comment above doubles as the help text.
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

main() {
  local cmd="${1:-up}"
  case "$cmd" in
    env) print_env; return ;;
    status) cmd_status; return ;;
    help|-h|--help) usage; return ;;
  esac
  take_lock
  local t0=$SECONDS
  case "$cmd" in
    up)
      thaw_all
      mariadb_up
      kafka_up
      log "all dependencies up in $((SECONDS - t0))s"
      print_env
      ;;
    mariadb-start) ensure_mariadb_installed; start_mariadb; provision_mariadb; verify_mariadb ;;
    mariadb-stop) stop_mariadb ;;
    kafka-start) kafka_up ;;
    kafka-jars) fetch_kafka; echo "$KAFKA_LIBS" ;;
    kafka-stop) signal_kafka TERM ;;
    kafka-kill) signal_kafka KILL ;;
    mariadb-freeze) signal_server MariaDB STOP "$(mariadb_pid)" ;;
    mariadb-thaw) signal_server MariaDB CONT "$(mariadb_pid)" ;;
    kafka-freeze) signal_server Kafka STOP "$(kafka_pid)" ;;
    kafka-thaw) signal_server Kafka CONT "$(kafka_pid)" ;;
    *) usage >&2; die "unknown subcommand: $cmd" ;;
  esac
}

main "$@"
