/* The embedded development cluster: librdkafka's mock cluster with kefu's topics. */
#ifndef KEFU_IO_MOCK_H
#define KEFU_IO_MOCK_H

#include <stddef.h>

typedef struct kefu_mock kefu_mock_t;

/** @brief Starts a mock cluster of @p brokers brokers on loopback and creates every
 *  topic of SPEC §1.1 under @p prefix with @p partitions partitions (the courier-status
 *  table included). NULL with @p errstr on failure. */
kefu_mock_t *kefu_mock_start(int brokers, int partitions, const char *prefix, char *errstr,
                             size_t errlen);

/** @brief "host:port,..." of the cluster; owned by @p m. */
const char *kefu_mock_bootstraps(const kefu_mock_t *m);

/** @brief Stops the cluster and frees @p m. */
void kefu_mock_stop(kefu_mock_t *m);

#endif
