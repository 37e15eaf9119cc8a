#!/bin/sh
# Creates kefu's topics (SPEC §1.1) on a Kafka cluster with Kafka's kafka-topics.sh, then
# checks that the four keyed input topics are co-partitioned (kefu refuses to start
# otherwise). Idempotent: existing topics are left as they are (--if-not-exists), and
# only reported when their partition count differs from the one asked for.
#
# usage: deploy/kafka-topics.sh [BOOTSTRAP [PARTITIONS [REPLICATION_FACTOR]]]
#
# Settings (arguments win over the environment):
#   KEFU_BOOTSTRAP_SERVERS  bootstrap servers (as for kefu)             default localhost:9092
#   KEFU_TOPIC_PREFIX       topic prefix (as for kefu's topic.prefix)    default kefu.
#   PARTITIONS              partitions of the keyed inputs and outputs   default 12
#   REPLICATION_FACTOR      replicas per partition                       default 3
#   MIN_INSYNC_REPLICAS     min.insync.replicas          default 2 when REPLICATION_FACTOR >= 3, else 1
#   DLQ_RETENTION_MS        retention of the DLQ                         default 1209600000 (14 days)
#   COMMAND_CONFIG          client properties file for SASL/TLS (kafka-topics.sh --command-config)
#   TOPICS_CMD              the kafka-topics.sh to run     default kafka-topics.sh in PATH, else
#                                                          /opt/kafka/bin/kafka-topics.sh
#   DRY_RUN=1               print the commands instead of running them
#
# The partition count of the keyed topics is the most instances that can share the work
# (one task = one partition number of the four keyed topics). Choose it once: adding
# partitions later moves shops to other partitions while their state and timers stay
# indexed under the old task (docs/OPERATIONS.md, "Scaling").
#
# Exit codes: 0 ok, 1 a kafka-topics.sh call failed, 3 the keyed inputs are not co-partitioned.
set -eu

BOOTSTRAP=${1:-${KEFU_BOOTSTRAP_SERVERS:-localhost:9092}}
PARTITIONS=${2:-${PARTITIONS:-12}}
REPLICATION_FACTOR=${3:-${REPLICATION_FACTOR:-3}}
PREFIX=${KEFU_TOPIC_PREFIX-kefu.}
if [ "$REPLICATION_FACTOR" -ge 3 ]; then
  MIN_INSYNC_REPLICAS=${MIN_INSYNC_REPLICAS:-2}
else
  MIN_INSYNC_REPLICAS=${MIN_INSYNC_REPLICAS:-1}
fi
DLQ_RETENTION_MS=${DLQ_RETENTION_MS:-1209600000}
if [ -z "${TOPICS_CMD:-}" ]; then
  if command -v kafka-topics.sh >/dev/null 2>&1; then
    TOPICS_CMD=kafka-topics.sh
  else
    TOPICS_CMD=/opt/kafka/bin/kafka-topics.sh
  fi
fi

# The topics of SPEC §1.1 under their default names; another prefix replaces "kefu.".
KEYED_INPUTS="kefu.chat.events kefu.order.events kefu.agent.events kefu.shop.config"
OUTPUTS="kefu.routing.decisions kefu.logistics.invitations kefu.response.violations
kefu.response.events kefu.service.cards kefu.inquiry.insights kefu.dlq"
GLOBAL_TABLE="kefu.courier.status"

name() { printf '%s%s' "$PREFIX" "${1#kefu.}"; }

topics() { # kafka-topics.sh with the connection options, then "$@"
  if [ -n "${COMMAND_CONFIG:-}" ]; then
    set -- --command-config "$COMMAND_CONFIG" "$@"
  fi
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "$TOPICS_CMD --bootstrap-server $BOOTSTRAP $*"
  else
    "$TOPICS_CMD" --bootstrap-server "$BOOTSTRAP" "$@"
  fi
}

create() { # topic partitions [--config k=v]...
  topic=$(name "$1")
  parts=$2
  shift 2
  echo "kafka-topics: $topic: $parts partitions, replication $REPLICATION_FACTOR $*" >&2
  topics --create --if-not-exists --topic "$topic" --partitions "$parts" \
    --replication-factor "$REPLICATION_FACTOR" \
    --config "min.insync.replicas=$MIN_INSYNC_REPLICAS" "$@"
}

partition_count() { # topic -> its PartitionCount, from --describe
  topics --describe --topic "$(name "$1")" |
    sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1
}

# The four co-partitioned keyed inputs (same partition count; the config table compacted:
# a later record replaces a shop's whole config).
for t in $KEYED_INPUTS; do
  case $t in
    kefu.shop.config) create "$t" "$PARTITIONS" --config cleanup.policy=compact ;;
    *) create "$t" "$PARTITIONS" ;;
  esac
done
# The global courier-status table: every instance reads it whole; one partition, compacted.
create "$GLOBAL_TABLE" 1 --config cleanup.policy=compact
# Outputs, keyed by shop_id (the DLQ: as received), and a longer retention for the DLQ.
for t in $OUTPUTS; do
  case $t in
    kefu.dlq) create "$t" "$PARTITIONS" --config "retention.ms=$DLQ_RETENTION_MS" ;;
    *) create "$t" "$PARTITIONS" ;;
  esac
done

[ "${DRY_RUN:-0}" = 1 ] && exit 0

# Co-partitioning: what kefu checks at start, checked here first.
first=""
status=0
for t in $KEYED_INPUTS; do
  n=$(partition_count "$t")
  if [ -z "$n" ]; then
    echo "kafka-topics: cannot read the partition count of $(name "$t")" >&2
    exit 1
  fi
  [ "$n" = "$PARTITIONS" ] ||
    echo "kafka-topics: note: $(name "$t") already exists with $n partitions (not $PARTITIONS)" >&2
  if [ -z "$first" ]; then
    first=$n
  elif [ "$n" != "$first" ]; then
    echo "kafka-topics: $(name "$t") has $n partitions but $(name kefu.chat.events) has $first:" \
      "the keyed input topics must be co-partitioned" >&2
    status=3
  fi
done
[ "$status" = 0 ] && echo "kafka-topics: ok: the keyed inputs have $first partitions each" >&2
exit "$status"
