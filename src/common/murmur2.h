/* Kafka's murmur2 (the Java client's Utils.murmur2, seed 0x9747b28c): partitions keys
 * like a Java producer and seeds kefu's reproducible draws (ROUTE-7, XFER-1). */
#ifndef KEFU_COMMON_MURMUR2_H
#define KEFU_COMMON_MURMUR2_H
#include <stddef.h>
#include <stdint.h>

/** @brief murmur2 of @p len bytes, as Java's int (two's complement in an int32). */
int32_t kefu_murmur2(const void *data, size_t len);

/** @brief The partition a Java producer picks for a non-null key:
 *  (murmur2(key) & 0x7fffffff) % partitions. */
int kefu_murmur2_partition(const void *key, size_t len, int partitions);

#endif
