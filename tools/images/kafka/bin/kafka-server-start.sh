#!/usr/bin/env bash
# kafka-server-start.sh server.properties [--override k=v ...]: the broker in the
# foreground, with the release script's defaults (1 GiB heap unless KAFKA_HEAP_OPTS,
# log4j2.yaml logging, a GC log).
[ $# -ge 1 ] || { echo "USAGE: $0 server.properties [--override property=value]*" >&2; exit 1; }
base_dir=$(cd "$(dirname "$0")/.." && pwd)
export KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base_dir/config/log4j2.yaml}
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
exec "$(dirname "$0")/kafka-run-class.sh" -name kafkaServer -loggc kafka.Kafka "$@"
