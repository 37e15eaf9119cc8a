/* What `kefu archive` does, as a library call for other commands (kefu replay -b archives
 * the ranges it is given into a temporary directory, then replays that).
 *
 * Every partition of each topic is read directly (assign, no consumer group, nothing
 * committed) with isolation.level=read_committed, from its start to its stop, and each
 * record goes to the archive directory (io/archive.h) with its topic, partition, offset,
 * Kafka timestamp, key, value (null: a tombstone) and headers. Every partition gets a
 * file, an empty one when nothing in its range was read. */
#ifndef KEFU_CLI_ARCHIVE_RUN_H
#define KEFU_CLI_ARCHIVE_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kefu_archive_spec {
  const char *bootstrap;
  const char **topics;
  int ntopics;
  /* Per (topic, partition) start: the first offset to archive. A partition not listed
   * (and every partition when nfrom is 0) starts at its beginning, or as has_from_ts /
   * from_end say. Listed topics must be among @p topics. */
  const char **from_topic;
  const int32_t *from_partition;
  const int64_t *from_offset;
  int nfrom;
  /* Per (topic, partition) stop: the LAST offset to archive (inclusive). A partition not
   * listed (and every partition when nuntil is 0) stops at its end offset as read at the
   * start (the high watermark; with read_committed, what the consumer reports as the
   * end), or never with follow. */
  const char **until_topic;
  const int32_t *until_partition;
  const int64_t *until_offset;
  int nuntil;
  char **props; /* "key=value" for librdkafka (-X) */
  int nprops;
  bool quiet; /* no progress or summary on stderr */
  /* Options of the command line; all false/0 for a library call that gives ranges. */
  bool has_from_ts;  /* start partitions not in from_* at the first record with ts >= from_ts */
  int64_t from_ts;   /* (Kafka's offsetsForTimes) */
  bool from_end;     /* start partitions not in from_* at their end (--follow alone) */
  bool has_until_ts; /* stop a partition at its first record with timestamp > until_ts */
  int64_t until_ts;
  bool follow; /* past the end offsets until *stop (or every partition met its until) */
  volatile sig_atomic_t *stop; /* may be NULL: set non-zero (a signal) to end cleanly */
} kefu_archive_spec_t;

/* kefu_archive_topics' results besides 0. */
#define KEFU_ARCHIVE_FAILED (-1) /* a runtime failure (Kafka, the file system) */
#define KEFU_ARCHIVE_USAGE (-2)  /* an unknown topic, a from/until of another topic */

/** @brief Parses "TOPIC:PARTITION:OFFSET" (a --from or --until of kefu archive and kefu
 *  replay) in place: @p text is cut at its last two colons, *@p topic points into it.
 *  @returns 0, or -1 when it is malformed (no topic, a partition or offset that is not
 *  a number >= 0). */
int kefu_archive_parse_position(char *text, const char **topic, int32_t *partition,
                                int64_t *offset);

/** @brief Archives what @p s describes into the new archive directory @p dir
 *  (kefu_archive_dir_create: refused when it already holds a manifest), writing its
 *  manifest at the end, also when *s->stop ends the run early.
 *  @returns 0, KEFU_ARCHIVE_USAGE or KEFU_ARCHIVE_FAILED, with the reason in @p err. */
int kefu_archive_topics(const kefu_archive_spec_t *s, const char *dir, char *err, size_t errlen);

#endif
