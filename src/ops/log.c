#include "ops/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

kefu_log_level_t kefu_log_min_level = KEFU_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int kefu_log_level_parse(const char *s) {
  static const char *const lower[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, lower[i]) == 0)
      return i;
  return -1;
}

void kefu_log_write(kefu_log_level_t level, const char *component, const char *fmt, ...) {
  struct timeval tv;
  struct tm tm;
  char stamp[32];
  char line[1024];
  va_list ap;

  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* One write per line keeps lines whole when several threads log. */
  fprintf(stderr, "%s.%03dZ %s %s: %s\n", stamp, (int)(tv.tv_usec / 1000), level_names[level],
          component, line);
}
