#include "cli/progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool kefu_progress_wanted(void) {
  const char *term = getenv("TERM");
  return isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
}

void kefu_progress_start(kefu_progress_t *p, const char *what, const char *unit, int64_t total) {
  memset(p, 0, sizeof *p);
  p->out = kefu_progress_wanted() ? stderr : NULL;
  p->what = what;
  p->unit = unit;
  p->total = total;
  p->start_s = mono_s();
}

void kefu_progress_format(const kefu_progress_t *p, double now_s, char *out, size_t outlen) {
  double secs = now_s - p->start_s;
  double rate = secs > 0 ? (double)p->records / secs : 0;
  int n = snprintf(out, outlen, "%s: %lld records, %.0f/s", p->what, (long long)p->records, rate);
  if (p->total > 0 && n >= 0 && (size_t)n < outlen) {
    double frac = (double)p->done / (double)p->total;
    frac = frac > 1 ? 1 : frac;
    if (frac > 0 && secs > 0) {
      long left = (long)(secs / frac - secs + 0.5);
      snprintf(out + n, outlen - (size_t)n, ", %.0f%% of %lld %s, %ld:%02ld left", 100 * frac,
               (long long)p->total, p->unit, left / 60, left % 60);
    } else {
      snprintf(out + n, outlen - (size_t)n, ", 0%% of %lld %s", (long long)p->total, p->unit);
    }
  }
}

void kefu_progress_update(kefu_progress_t *p, int64_t done, int64_t records) {
  p->done = done;
  p->records = records;
  if (!p->out)
    return;
  double now = mono_s();
  if (now - p->drawn_s < 0.2)
    return;
  char line[256];
  kefu_progress_format(p, now, line, sizeof line);
  fprintf(p->out, "\r\033[K%s", line);
  fflush(p->out);
  p->drawn_s = now;
}

void kefu_progress_end(kefu_progress_t *p) {
  if (!p->out || p->drawn_s == 0)
    return;
  fprintf(p->out, "\r\033[K");
  fflush(p->out);
}
