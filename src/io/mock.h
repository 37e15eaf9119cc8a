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

/** @brief Carries out one fault-injection command of `kefu broker --control` on @p m
 *  (the grammar is in kefu_mock_control_help). 0 with "ok" in @p reply, or -1 with the
 *  reason. */
int kefu_mock_control(kefu_mock_t *m, const char *line, char *reply, size_t replylen);

/** @brief The control commands, one per line, for --help. */
extern const char kefu_mock_control_help[];

/** @brief Stops the cluster and frees @p m. */
void kefu_mock_stop(kefu_mock_t *m);

#endif
