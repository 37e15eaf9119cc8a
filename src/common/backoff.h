/* The doubling backoff of kefu's retries (Redis, the broker, the Schema Registry): the
 * first pause is KEFU_BACKOFF_FIRST_MS, each next one twice the last, never more than the
 * configured cap (redis.retry_max_ms). */
#ifndef KEFU_COMMON_BACKOFF_H
#define KEFU_COMMON_BACKOFF_H

#define KEFU_BACKOFF_FIRST_MS 100

/** @brief The pause after one of @p ms: twice it, at most @p max_ms (and at least 1). */
static inline int kefu_backoff_next(int ms, int max_ms) {
  if (max_ms < 1)
    max_ms = 1;
  return ms > max_ms / 2 ? max_ms : ms < 1 ? 1 : ms * 2;
}

#endif
