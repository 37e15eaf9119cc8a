/* Small helpers shared by every Kafka client kefu makes. */
#ifndef KEFU_IO_KAFKA_H
#define KEFU_IO_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/** @brief A librdkafka configuration with @p bootstrap, quiet logging routed through
 *  kefu's log, and the `key=value` pairs of @p props (may be NULL, @p nprops pairs as
 *  "key=value" strings). NULL with @p errstr when a property is rejected. */
rd_kafka_conf_t *kefu_kafka_conf(const char *bootstrap, char **props, int nprops, char *errstr,
                                 size_t errlen);

/** What a librdkafka configuration is for: a property of the other kind is left out. */
typedef enum kefu_kafka_role {
  KEFU_KAFKA_ANY,
  KEFU_KAFKA_CONSUMER,
  KEFU_KAFKA_PRODUCER
} kefu_kafka_role_t;

/** @brief kefu_kafka_conf with only the properties of @p props that apply to @p role, by
 *  the scope librdkafka's own table gives them (C, P or both): a consumer-only property
 *  does not reach a producer, which would warn that it ignores it, and the reverse.
 *  A property librdkafka does not list (an alias it resolves, a typo it then rejects)
 *  goes to every role. */
rd_kafka_conf_t *kefu_kafka_conf_for(kefu_kafka_role_t role, const char *bootstrap, char **props,
                                     int nprops, char *errstr, size_t errlen);

/** @brief The scope of librdkafka property @p name: 'C' consumer, 'P' producer, '*' both,
 *  or '?' when its table does not list it. */
char kefu_kafka_property_scope(const char *name);

/** @brief Sets one property; returns -1 with @p errstr on failure. */
int kefu_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                   size_t errlen);

/** @brief Partition count of @p topic, or -1 with @p errstr (waits up to @p timeout_ms). */
int kefu_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                               size_t errlen);

/** @brief The value of header @p name of @p msg as a NUL-terminated copy in @p out, or
 *  "" when absent. */
void kefu_kafka_header(const rd_kafka_message_t *msg, const char *name, char *out, size_t outlen);

/** @brief The generation id of the group @p consumer is a member of, -1 before it joined
 *  (or when librdkafka's serialized group metadata is not the one this expects). */
int32_t kefu_kafka_generation(rd_kafka_t *consumer);

#endif
