/* libFuzzer target: what kefu replay and kefu archive read back from an archive
 * directory (SPEC §7, src/io/archive.h): one archive file, or the manifest.
 *
 * Byte 0 % 2 picks the input. 0 ('f'): byte 1 is the record count the manifest would
 * give (0xff: none, so the reader's count check is reached both ways) and the rest is
 * the file, read as kefu replay reads one (kefu_archive_reader_open, _expect,
 * kefu_archive_reader_next until 0 or -1). 1 ('m'): the rest is the text of
 * manifest.json (kefu_archive_manifest_read). Both live in one temporary directory per
 * process, which also holds empty kefu.chat.events-0.avro and -1.avro from the start
 * (the files of the seed manifest), so that a manifest entry can name a file that
 * exists, and the same one on every run. Every error must name the file it is about; a
 * record read is as archive.h promises it; a clean end with a count checked means
 * exactly that many records; an accepted manifest lists files of its directory only,
 * sorted and each once. */
#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"
#include "io/archive.h"

#define NO_COUNT 0xff

/* Files that exist, empty, for a manifest's entries to name. */
static const char *const listed[] = {"kefu.chat.events-0.avro", "kefu.chat.events-1.avro"};
#define NLISTED (sizeof listed / sizeof *listed)

static char dir[64], file_path[128], manifest_path[128], listed_path[NLISTED][128];
static int file_fd = -1, manifest_fd = -1;

static void remove_dir(void) {
  unlink(file_path);
  unlink(manifest_path);
  for (size_t i = 0; i < NLISTED; i++)
    unlink(listed_path[i]);
  rmdir(dir);
}

static int open_in_dir(char *path, size_t len, const char *name) {
  snprintf(path, len, "%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0);
  return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  snprintf(dir, sizeof dir, "/tmp/kefu-fuzz-archive-XXXXXX");
  FUZZ_CHECK(mkdtemp(dir) != NULL);
  file_fd = open_in_dir(file_path, sizeof file_path, "input.avro");
  manifest_fd = open_in_dir(manifest_path, sizeof manifest_path, KEFU_ARCHIVE_MANIFEST);
  for (size_t i = 0; i < NLISTED; i++)
    close(open_in_dir(listed_path[i], sizeof listed_path[i], listed[i]));
  atexit(remove_dir);
  return 0;
}

static void write_input(int fd, const uint8_t *data, size_t size) {
  FUZZ_CHECK(ftruncate(fd, 0) == 0);
  FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
}

/* What archive.h promises of a record the reader returned. */
static void check_record(const kefu_archived_t *r) {
  FUZZ_CHECK(r->topic != NULL && kefu_codec_utf8_ok((const uint8_t *)r->topic, strlen(r->topic)));
  FUZZ_CHECK(r->has_key ? r->key != NULL : r->key == NULL && r->key_len == 0);
  FUZZ_CHECK(r->has_value ? r->value != NULL : r->value == NULL && r->value_len == 0);
  FUZZ_CHECK(r->nheaders == 0 || r->headers != NULL);
  for (size_t i = 0; i < r->nheaders; i++) {
    const kefu_archived_header_t *h = &r->headers[i];
    FUZZ_CHECK(h->name != NULL && kefu_codec_utf8_ok((const uint8_t *)h->name, strlen(h->name)));
    FUZZ_CHECK(h->has_value ? h->value != NULL : h->value == NULL && h->len == 0);
  }
}

static void read_file(int64_t expect, const uint8_t *data, size_t size) {
  char err[1024], again[1024];
  kefu_archived_t rec;
  int64_t n = 0;
  int rc;

  write_input(file_fd, data, size);
  err[0] = '\0';
  kefu_archive_reader_t *r = kefu_archive_reader_open(file_path, err, sizeof err);
  if (!r) {
    FUZZ_CHECK(strstr(err, file_path) == err);
    return;
  }
  if (expect >= 0)
    kefu_archive_reader_expect(r, expect);
  while ((rc = kefu_archive_reader_next(r, &rec, err, sizeof err)) == 1) {
    check_record(&rec);
    kefu_archived_clear(&rec);
    n++;
  }
  if (rc == 0) {
    FUZZ_CHECK(expect < 0 || n == expect);
  } else {
    FUZZ_CHECK(rc == -1 && strstr(err, file_path) == err);
    /* A reader that failed stays failed, with the same reason. */
    FUZZ_CHECK(kefu_archive_reader_next(r, &rec, again, sizeof again) == -1);
    FUZZ_CHECK(strcmp(err, again) == 0);
  }
  kefu_archive_reader_close(r);
}

static void read_manifest(const uint8_t *data, size_t size) {
  char err[1024];
  kefu_archive_file_t *files = NULL;
  size_t n = 0;

  write_input(manifest_fd, data, size);
  err[0] = '\0';
  if (kefu_archive_manifest_read(dir, &files, &n, err, sizeof err) != 0) {
    FUZZ_CHECK(files == NULL && n == 0 && strstr(err, manifest_path) == err);
    return;
  }
  FUZZ_CHECK(n == 0 || files != NULL);
  for (size_t i = 0; i < n; i++) {
    const kefu_archive_file_t *f = &files[i];
    /* Only files of the directory itself: no name reaches outside it. */
    FUZZ_CHECK(strncmp(f->path, dir, strlen(dir)) == 0 && f->path[strlen(dir)] == '/' &&
               !strchr(f->path + strlen(dir) + 1, '/'));
    FUZZ_CHECK(f->topic != NULL && f->partition >= 0 && f->records >= 0);
    if (i > 0) { /* sorted by topic, then partition, each listed once */
      int c = strcmp(files[i - 1].topic, f->topic);
      FUZZ_CHECK(c < 0 || (c == 0 && files[i - 1].partition < f->partition));
    }
  }
  kefu_archive_files_free(files, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  if (data[0] % 2 == 1) {
    read_manifest(data + 1, size - 1);
    return 0;
  }
  if (size < 2)
    return 0;
  read_file(data[1] == NO_COUNT ? -1 : data[1], data + 2, size - 2);
  return 0;
}
