#!/usr/bin/env bash
# kafka-run-class.sh CLASS [ARGS]: run a Kafka main class the way the release's script
# of the same name does, honouring the same variables: KAFKA_HEAP_OPTS,
# KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_GC_LOG_OPTS, KAFKA_JMX_OPTS (+ JMX_PORT,
# JMX_RMI_PORT), KAFKA_LOG4J_OPTS, KAFKA_OPTS, LOG_DIR, CLASSPATH, JAVA_HOME.
# Leading `-name NAME` and `-loggc` (used by kafka-server-start.sh) turn on a GC log
# in $LOG_DIR/NAME-gc.log. Always execs, so signals reach the JVM.
set -eu
[ $# -ge 1 ] || { echo "USAGE: $0 [-name NAME] [-loggc] classname [opts]" >&2; exit 1; }
base_dir=$(cd "$(dirname "$0")/.." && pwd)

name=kafka loggc=
while [ $# -gt 0 ]; do
  case "$1" in
    -name) name=$2; shift 2 ;;
    -loggc) loggc=1; shift ;;
    *) break ;;
  esac
done

# Everything in libs/, after anything the caller adds.
cp="$base_dir/libs/*"
[ -n "${CLASSPATH:-}" ] && cp="$CLASSPATH:$cp"

LOG_DIR=${LOG_DIR:-$base_dir/logs}
mkdir -p "$LOG_DIR"

# The release's defaults: tools log by tools-log4j2.yaml and get a small heap.
KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base_dir/config/tools-log4j2.yaml}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx256M}
KAFKA_JVM_PERFORMANCE_OPTS=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
KAFKA_JMX_OPTS=${KAFKA_JMX_OPTS:--Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false}
if [ -n "${JMX_PORT:-}" ]; then
  KAFKA_JMX_OPTS="$KAFKA_JMX_OPTS -Dcom.sun.management.jmxremote.port=$JMX_PORT"
  [ -n "${JMX_RMI_PORT:-}" ] && KAFKA_JMX_OPTS="$KAFKA_JMX_OPTS -Dcom.sun.management.jmxremote.rmi.port=$JMX_RMI_PORT"
fi
[ -n "$loggc" ] && KAFKA_GC_LOG_OPTS="-Xlog:gc*:file=$LOG_DIR/$name-gc.log:time,tags:filecount=10,filesize=100M"

java=java
[ -n "${JAVA_HOME:-}" ] && java="$JAVA_HOME/bin/java"

# The option variables are word-split on purpose: each holds several JVM flags.
# shellcheck disable=SC2086
exec "$java" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS ${KAFKA_GC_LOG_OPTS:-} $KAFKA_JMX_OPTS \
  $KAFKA_LOG4J_OPTS -Dkafka.logs.dir="$LOG_DIR" -cp "$cp" ${KAFKA_OPTS:-} "$@"
