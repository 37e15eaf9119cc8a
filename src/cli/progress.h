/* Progress of long work on a terminal: records done, rate and, with a known total, the
 * percentage and the time left, redrawn on one stderr line at most five times a second.
 * Silent when stderr is not a terminal (a pipe, a file, CI) or TERM is "dumb": the lines
 * the commands print anyway stay the only output there. */
#ifndef KEFU_CLI_PROGRESS_H
#define KEFU_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct kefu_progress {
  FILE *out;        /* NULL: silent */
  const char *what; /* "producing", "processing" ... */
  const char *unit; /* "records", "bytes" */
  int64_t total;    /* -1: unknown */
  int64_t done, records;
  double start_s, drawn_s;
} kefu_progress_t;

/** @brief Starts a progress line for @p what, @p total units of @p unit (-1: unknown). */
void kefu_progress_start(kefu_progress_t *p, const char *what, const char *unit, int64_t total);

/** @brief @p done units and @p records records so far (the same when the unit is
 *  records); redraws when the last drawing is 200 ms old. */
void kefu_progress_update(kefu_progress_t *p, int64_t done, int64_t records);

/** @brief Clears the line. */
void kefu_progress_end(kefu_progress_t *p);

/** @brief The line for @p p at @p now_s into @p out (for tests and the drawing). */
void kefu_progress_format(const kefu_progress_t *p, double now_s, char *out, size_t outlen);

/** @brief Whether progress is drawn on stderr (a terminal whose TERM is not "dumb"). */
bool kefu_progress_wanted(void);

#endif
