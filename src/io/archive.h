/* Archives of Kafka records (SPEC §7, `kefu archive`): Avro object container files whose
 * record schema is kefu.ArchivedRecord (schemas/archived_record.avsc, embedded), deflate
 * codec, one file per topic and partition named "<topic>-<partition>.avro", and a
 * manifest.json that lists the files with their offset ranges and record counts:
 *
 *   {"format": "kefu-archive/1", "created_ms": 1700000000000,
 *    "files": [{"file": "kefu.chat.events-0.avro", "topic": "kefu.chat.events",
 *               "partition": 0, "first_offset": 0, "last_offset": 41, "records": 42}]}
 *
 * first_offset and last_offset are those of the first and the last record written to the
 * file (-1 for a file without records: a partition that was archived but held nothing in
 * the range, written so that a reader knows it exists). Any Avro tool reads the files
 * (python3-avro's DataFileReader, avro-tools); avro-c writes and reads them here.
 *
 * The reader never trusts a file: it checks the container framing and every record
 * before avro-c sees them (see archive.c), so a truncated, corrupt or foreign file is an
 * error naming the file, never a crash or a hang.
 *
 * @locality Writers and readers are used by one thread at a time. */
#ifndef KEFU_IO_ARCHIVE_H
#define KEFU_IO_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The manifest's "format". */
#define KEFU_ARCHIVE_FORMAT "kefu-archive/1"
/** The manifest's file name in an archive directory. */
#define KEFU_ARCHIVE_MANIFEST "manifest.json"
/** The largest record (its Avro encoding) an archive file takes. */
#define KEFU_ARCHIVE_MAX_RECORD (64u << 20)

typedef struct kefu_archived_header {
  char *name; /* UTF-8, NUL-terminated */
  void *value;
  size_t len;
  bool has_value; /* false: a header without a value (null) */
} kefu_archived_header_t;

/* One archived record. What a reader returns is owned by the caller, every pointer a
 * heap copy (kefu_archived_clear frees them); what a writer is given is borrowed. */
typedef struct kefu_archived {
  char *topic;
  int32_t partition;
  int64_t offset, timestamp; /* timestamp: Kafka's, epoch ms (-1: none) */
  void *key;
  size_t key_len;
  bool has_key; /* false: a null key */
  void *value;
  size_t value_len;
  bool has_value; /* false: a tombstone */
  kefu_archived_header_t *headers;
  size_t nheaders;
} kefu_archived_t;

/** @brief Frees the fields of @p r (as a reader filled them) and zeroes it. */
void kefu_archived_clear(kefu_archived_t *r);

/* ---- one file ------------------------------------------------------------------- */

typedef struct kefu_archive_reader kefu_archive_reader_t;

/** @brief Opens the archive file @p path. Its header must be an Avro object container's
 *  with the kefu.ArchivedRecord schema and the deflate (or null) codec.
 *  @returns the reader (kefu_archive_reader_close), or NULL with the reason in @p err,
 *  which names the file: "<path>: not a kefu archive file (schema kefu.v1.ChatEvent)",
 *  "<path>: truncated or corrupt after 0 records: header: ...". */
kefu_archive_reader_t *kefu_archive_reader_open(const char *path, char *err, size_t errlen);

/** @brief The number of records the file is to hold (a manifest's count): reading then
 *  ends with an error when the file holds fewer ("<path>: truncated: 3 of 5 records")
 *  or more. A file cut at a block boundary is otherwise a valid, shorter file. */
void kefu_archive_reader_expect(kefu_archive_reader_t *r, int64_t records);

/** @brief The next record.
 *  @returns 1 with the record in @p *out (owned by the caller: kefu_archived_clear; @p *out
 *  is overwritten, not freed, so clear it between calls), 0 at the end of the file, or -1
 *  with the reason in @p err ("<path>: truncated or corrupt after 7 records: ..."); after
 *  -1 every call returns -1 again. */
int kefu_archive_reader_next(kefu_archive_reader_t *r, kefu_archived_t *out, char *err,
                             size_t errlen);

/** @brief Closes the file and frees the reader. NULL is a no-op. */
void kefu_archive_reader_close(kefu_archive_reader_t *r);

/* ---- a directory ---------------------------------------------------------------- */

/* A file of an archive directory as its manifest lists it. */
typedef struct kefu_archive_file {
  char *path; /* the directory joined with the file's name */
  char *topic;
  int32_t partition;
  int64_t first_offset, last_offset, records; /* first, last: -1 when records is 0 */
} kefu_archive_file_t;

typedef struct kefu_archive_dir kefu_archive_dir_t; /* a writer */

/** @brief Starts writing an archive into @p dir, created with its parents when missing.
 *  Refuses a directory that already holds a manifest.json (a finished archive). Files
 *  named as this archive's own are overwritten.
 *  @returns the writer (kefu_archive_dir_close), or NULL with the reason in @p err. */
kefu_archive_dir_t *kefu_archive_dir_create(const char *dir, char *err, size_t errlen);

/** @brief Makes sure the file of (@p topic, @p partition) exists, even if no record is
 *  ever appended to it: a partition archived but empty in the range. */
int kefu_archive_dir_add_partition(kefu_archive_dir_t *d, const char *topic, int32_t partition,
                                   char *err, size_t errlen);

/** @brief Appends @p r (borrowed) to the file of its topic and partition, created on
 *  first use. Records go to a file in the order they are appended (kefu archive: offset
 *  order); the manifest's first/last offsets are those of the first and last appended.
 *  Topic and header names must be UTF-8 (Avro strings), the record at most
 *  KEFU_ARCHIVE_MAX_RECORD bytes encoded.
 *  @returns 0, or -1 with the reason in @p err (the writer stays usable). */
int kefu_archive_dir_append(kefu_archive_dir_t *d, const kefu_archived_t *r, char *err,
                            size_t errlen);

/** @brief Writes every file's pending block to the file (readers then see every record
 *  appended so far): what kefu archive --follow does each second. */
int kefu_archive_dir_flush(kefu_archive_dir_t *d, char *err, size_t errlen);

/** @brief Total records appended so far (for progress lines). */
int64_t kefu_archive_dir_records(const kefu_archive_dir_t *d);

/** @brief Closes every file (written to disk with fsync), then writes manifest.json
 *  atomically (manifest.json.tmp, fsync, rename) and frees @p d. NULL is a no-op.
 *  @returns 0, or -1 with the reason in @p err (then no manifest was written). */
int kefu_archive_dir_close(kefu_archive_dir_t *d, char *err, size_t errlen);

/** @brief Reads DIR/manifest.json: its files, sorted by topic, then partition, each
 *  checked to exist (a regular file).
 *  @returns 0 with the array in @p *files (kefu_archive_files_free) and its length in
 *  @p *nfiles, or -1 with the reason in @p err. */
int kefu_archive_manifest_read(const char *dir, kefu_archive_file_t **files, size_t *nfiles,
                               char *err, size_t errlen);

/** @brief Frees what kefu_archive_manifest_read returned. NULL is a no-op. */
void kefu_archive_files_free(kefu_archive_file_t *files, size_t n);

#endif
