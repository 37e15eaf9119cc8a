#!/usr/bin/env bash
# Creates kefu's topics (SPEC §1.1) on a real cluster with kafka-topics.sh.
# usage: deploy/kafka-topics.sh BOOTSTRAP [PARTITIONS] [REPLICATION]
set -euo pipefail
bootstrap=${1:?bootstrap servers}
partitions=${2:-12}
replication=${3:-1}
create() { # name partitions [config...]
  local name=$1 parts=$2; shift 2
  kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
    --partitions "$parts" --replication-factor "$replication" "$@"
}
# the four co-partitioned keyed inputs: equal partition counts (kefu refuses otherwise)
create kefu.chat.events "$partitions"
create kefu.order.events "$partitions"
create kefu.agent.events "$partitions"
create kefu.shop.config "$partitions" --config cleanup.policy=compact
# the global courier-status table: one partition, compacted
create kefu.courier.status 1 --config cleanup.policy=compact
for t in kefu.routing.decisions kefu.logistics.invitations kefu.response.violations \
         kefu.response.events kefu.service.cards kefu.inquiry.insights kefu.dlq; do
  create "$t" "$partitions"
done
