/* Logging: one line per event of note, to stderr, "ts level component: message".
 * The macro checks the level before evaluating its arguments (as Redis's serverLog
 * does), so a disabled DEBUG line costs one comparison. */
#ifndef KEFU_OPS_LOG_H
#define KEFU_OPS_LOG_H

typedef enum kefu_log_level {
  KEFU_LOG_DEBUG = 0,
  KEFU_LOG_INFO = 1,
  KEFU_LOG_WARN = 2,
  KEFU_LOG_ERROR = 3,
} kefu_log_level_t;

extern kefu_log_level_t kefu_log_min_level;

/** @brief Parses "debug", "info", "warn" or "error"; returns -1 when unknown. */
int kefu_log_level_parse(const char *s);

void kefu_log_write(kefu_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define KEFU_LOG(level, component, ...)                                                            \
  do {                                                                                             \
    if ((level) >= kefu_log_min_level)                                                             \
      kefu_log_write((level), (component), __VA_ARGS__);                                           \
  } while (0)

#define KEFU_DEBUG(c, ...) KEFU_LOG(KEFU_LOG_DEBUG, c, __VA_ARGS__)
#define KEFU_INFO(c, ...) KEFU_LOG(KEFU_LOG_INFO, c, __VA_ARGS__)
#define KEFU_WARN(c, ...) KEFU_LOG(KEFU_LOG_WARN, c, __VA_ARGS__)
#define KEFU_ERROR(c, ...) KEFU_LOG(KEFU_LOG_ERROR, c, __VA_ARGS__)

#endif
