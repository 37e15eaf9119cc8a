/* Archive files and directories (src/io/archive.c, SPEC §7 kefu archive): records with
 * tombstones, null and empty keys, headers without values and binary bytes come back
 * equal; the manifest lists every file with its offsets and counts, an empty partition
 * included; and no file makes the reader crash or hang: a foreign file (another schema,
 * JSON, random bytes, empty), the archive cut at every byte, and every byte flipped
 * give -1 with a message naming the file, or records that pass every check. Run it
 * under ASan too (scripts/build.sh --sanitize). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rng.h"

#include <avro.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/embedded.h"
#include "io/archive.h"

static char err[1024];

/* The next byte to cut at or flip: every one, or under KEFU_TEST_QUICK (valgrind,
 * scripts/memcheck.sh) every one of the header and then one in 61. */
static size_t next_byte(size_t i) {
  static int quick = -1;
  if (quick < 0)
    quick = getenv("KEFU_TEST_QUICK") != NULL;
  return i + (quick && i >= 700 ? 61 : 1);
}

static char *make_tmpdir(void) {
  char tmpl[] = "/tmp/kefu-test-archive-XXXXXX";
  char *d = mkdtemp(tmpl);
  assert_non_null(d);
  return strdup(d);
}

static void remove_tree(char *dir) {
  DIR *dp = opendir(dir);
  struct dirent *e;
  char path[4096];
  while (dp && (e = readdir(dp)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  if (dp)
    closedir(dp);
  rmdir(dir);
  free(dir);
}

static char *path_in(const char *dir, const char *name) {
  static char buf[8192];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

static uint8_t *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(*n ? *n : 1);
  assert_int_equal(fread(p, 1, *n, f), *n);
  fclose(f);
  return p;
}

static void write_all(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  fclose(f);
}

/* ---- records ------------------------------------------------------------------- */

static uint8_t binary[256];
static kefu_archived_header_t hdrs[3] = {
    {"kefu.source", "chat", 4, true}, {"no-value", NULL, 0, false}, {"kefu.source", "", 0, true}};

/* Record @p i of a test stream: a varied mix of what Kafka records hold. */
static kefu_archived_t sample(int i, const char *topic, int32_t partition, uint8_t *value,
                              size_t value_len) {
  kefu_archived_t r = {.topic = (char *)topic,
                       .partition = partition,
                       .offset = 10 + 2 * i,
                       .timestamp = 1700000000000 + i};
  r.has_key = i % 5 != 1; /* some null keys */
  r.key = r.has_key ? (i % 7 == 3 ? "" : "shop-1") : NULL;
  r.key_len = r.key ? strlen(r.key) : 0;
  r.has_value = i % 4 != 2; /* some tombstones */
  r.value = r.has_value ? value : NULL;
  r.value_len = r.has_value ? value_len : 0;
  r.headers = i % 3 ? hdrs : NULL;
  r.nheaders = i % 3 ? 3 : 0;
  return r;
}

static void assert_same(const kefu_archived_t *a, const kefu_archived_t *b) {
  assert_string_equal(a->topic, b->topic);
  assert_int_equal(a->partition, b->partition);
  assert_int_equal(a->offset, b->offset);
  assert_int_equal(a->timestamp, b->timestamp);
  assert_int_equal(a->has_key, b->has_key);
  assert_int_equal(a->key_len, b->key_len);
  if (a->key_len)
    assert_memory_equal(a->key, b->key, a->key_len);
  assert_int_equal(a->has_value, b->has_value);
  assert_int_equal(a->value_len, b->value_len);
  if (a->value_len)
    assert_memory_equal(a->value, b->value, a->value_len);
  assert_int_equal(a->nheaders, b->nheaders);
  for (size_t i = 0; i < a->nheaders; i++) {
    assert_string_equal(a->headers[i].name, b->headers[i].name);
    assert_int_equal(a->headers[i].has_value, b->headers[i].has_value);
    assert_int_equal(a->headers[i].len, b->headers[i].len);
    if (a->headers[i].len)
      assert_memory_equal(a->headers[i].value, b->headers[i].value, a->headers[i].len);
  }
}

/* Reads @p path whole, comparing with what @p expect returns for each index, and
 * returns the reader's last result (0: clean end). *@p n gets the records read. */
static int read_file(const char *path, int64_t expect_n, kefu_archived_t (*expect)(int),
                     int64_t *n) {
  kefu_archive_reader_t *r = kefu_archive_reader_open(path, err, sizeof err);
  kefu_archived_t got;
  int rc = -1;
  *n = 0;
  if (!r)
    return -2;
  if (expect_n >= 0)
    kefu_archive_reader_expect(r, expect_n);
  while ((rc = kefu_archive_reader_next(r, &got, err, sizeof err)) == 1) {
    if (expect) {
      kefu_archived_t want = expect((int)*n);
      assert_same(&want, &got);
    }
    kefu_archived_clear(&got);
    (*n)++;
  }
  if (rc < 0) /* stays failed */
    assert_int_equal(kefu_archive_reader_next(r, &got, err, sizeof err), -1);
  kefu_archive_reader_close(r);
  return rc;
}

static kefu_archived_t chat0(int i) {
  return sample(i, "kefu.chat.events", 0, binary, sizeof binary);
}

/* ---- a directory round trip ---------------------------------------------------- */

static void test_archive_dir_round_trip(void **state) {
  (void)state;
  char *dir = make_tmpdir(), sub[4200];
  snprintf(sub, sizeof sub, "%s/a/b", dir);
  for (int i = 0; i < 256; i++)
    binary[i] = (uint8_t)i;

  kefu_archive_dir_t *d = kefu_archive_dir_create(sub, err, sizeof err);
  assert_non_null(d);
  assert_int_equal(kefu_archive_dir_add_partition(d, "kefu.agent.events", 3, err, sizeof err), 0);
  for (int i = 0; i < 50; i++) {
    kefu_archived_t r = chat0(i);
    assert_int_equal(kefu_archive_dir_append(d, &r, err, sizeof err), 0);
    r = sample(i, "kefu.chat.events", 1, binary, 10);
    if (i < 3)
      assert_int_equal(kefu_archive_dir_append(d, &r, err, sizeof err), 0);
  }
  kefu_archived_t bad = chat0(0);
  bad.topic = "../evil";
  assert_int_equal(kefu_archive_dir_append(d, &bad, err, sizeof err), -1);
  kefu_archived_header_t latin1 = {"caf\xe9", NULL, 0, false};
  bad = chat0(0);
  bad.headers = &latin1;
  bad.nheaders = 1;
  assert_int_equal(kefu_archive_dir_append(d, &bad, err, sizeof err), -1);
  assert_non_null(strstr(err, "UTF-8"));
  assert_int_equal(kefu_archive_dir_records(d), 53);
  assert_int_equal(kefu_archive_dir_close(d, err, sizeof err), 0);

  /* A finished archive is not overwritten. */
  assert_null(kefu_archive_dir_create(sub, err, sizeof err));
  assert_non_null(strstr(err, "manifest.json"));

  kefu_archive_file_t *files;
  size_t n;
  assert_int_equal(kefu_archive_manifest_read(sub, &files, &n, err, sizeof err), 0);
  assert_int_equal(n, 3);
  assert_string_equal(files[0].topic, "kefu.agent.events");
  assert_int_equal(files[0].partition, 3);
  assert_int_equal(files[0].records, 0);
  assert_int_equal(files[0].first_offset, -1);
  assert_int_equal(files[0].last_offset, -1);
  assert_string_equal(files[1].topic, "kefu.chat.events");
  assert_int_equal(files[1].partition, 0);
  assert_int_equal(files[1].records, 50);
  assert_int_equal(files[1].first_offset, 10);
  assert_int_equal(files[1].last_offset, 10 + 2 * 49);
  assert_string_equal(files[1].path, path_in(sub, "kefu.chat.events-0.avro"));
  assert_int_equal(files[2].partition, 1);
  assert_int_equal(files[2].records, 3);

  int64_t got;
  assert_int_equal(read_file(files[0].path, 0, NULL, &got), 0);
  assert_int_equal(got, 0);
  assert_int_equal(read_file(files[1].path, files[1].records, chat0, &got), 0);
  assert_int_equal(got, 50);
  /* The manifest's count is checked both ways. */
  assert_int_equal(read_file(files[1].path, 51, NULL, &got), -1);
  assert_non_null(strstr(err, "truncated: 50 of 51 records"));
  assert_int_equal(read_file(files[1].path, 49, NULL, &got), -1);

  /* The manifest's format and entries, and a listed file that is gone. */
  json_error_t jerr;
  json_t *m = json_load_file(path_in(sub, "manifest.json"), 0, &jerr);
  assert_non_null(m);
  assert_string_equal(json_string_value(json_object_get(m, "format")), "kefu-archive/1");
  assert_true(json_integer_value(json_object_get(m, "created_ms")) > 1700000000000);
  json_decref(m);
  unlink(files[2].path);
  kefu_archive_files_free(files, n);
  assert_int_equal(kefu_archive_manifest_read(sub, &files, &n, err, sizeof err), -1);
  assert_non_null(strstr(err, "kefu.chat.events-1.avro, which is missing"));
  unlink(path_in(sub, "kefu.chat.events-0.avro"));
  unlink(path_in(sub, "kefu.agent.events-3.avro"));
  unlink(path_in(sub, "manifest.json"));
  rmdir(sub);
  snprintf(sub, sizeof sub, "%s/a", dir);
  rmdir(sub);
  remove_tree(dir);
}

/* A record far larger than a block (avro-c fails those unless its buffer fits them). */
static void test_archive_large_record(void **state) {
  (void)state;
  char *dir = make_tmpdir();
  size_t big = 3u << 20;
  uint8_t *v = malloc(big);
  for (size_t i = 0; i < big; i++)
    v[i] = (uint8_t)rnd();
  kefu_archive_dir_t *d = kefu_archive_dir_create(dir, err, sizeof err);
  assert_non_null(d);
  kefu_archived_t r = sample(0, "t", 0, v, big);
  assert_int_equal(kefu_archive_dir_append(d, &r, err, sizeof err), 0);
  r = sample(1, "t", 0, v, 5);
  assert_int_equal(kefu_archive_dir_append(d, &r, err, sizeof err), 0);
  assert_int_equal(kefu_archive_dir_close(d, err, sizeof err), 0);

  kefu_archive_reader_t *rd = kefu_archive_reader_open(path_in(dir, "t-0.avro"), err, sizeof err);
  assert_non_null(rd);
  kefu_archived_t got;
  assert_int_equal(kefu_archive_reader_next(rd, &got, err, sizeof err), 1);
  assert_int_equal(got.value_len, big);
  assert_memory_equal(got.value, v, big);
  kefu_archived_clear(&got);
  assert_int_equal(kefu_archive_reader_next(rd, &got, err, sizeof err), 1);
  kefu_archived_clear(&got);
  assert_int_equal(kefu_archive_reader_next(rd, &got, err, sizeof err), 0);
  kefu_archive_reader_close(rd);
  free(v);
  remove_tree(dir);
}

/* tests/unit/archive_python.avro: 40 records in two blocks, written by python3-avro's
 * DataFileWriter (deflate, which leaves 3 bytes of zlib's checksum after each block):
 *   for i in range(40): w.append({"topic": "kefu.chat.events", "partition": 1,
 *     "offset": 100 + i, "timestamp": 1700000000000 + i,
 *     "key": None if i % 5 == 1 else b"shop-%d" % i,
 *     "value": None if i % 4 == 2 else bytes((i * 7 + k) % 256 for k in range(i)),
 *     "headers": [] if i % 3 == 0 else [{"key": "h%d" % i, "value": None if i % 2 else b"x"}]})
 *   and w.sync() after i == 19. */
static char py_key[40][16], py_name[40][8];
static uint8_t py_value[40][40];
static kefu_archived_header_t py_header[40];

static kefu_archived_t python_record(int i) {
  kefu_archived_t r = {.topic = "kefu.chat.events",
                       .partition = 1,
                       .offset = 100 + i,
                       .timestamp = 1700000000000 + i};
  snprintf(py_key[i], sizeof py_key[i], "shop-%d", i);
  snprintf(py_name[i], sizeof py_name[i], "h%d", i);
  for (int k = 0; k < i; k++)
    py_value[i][k] = (uint8_t)((i * 7 + k) % 256);
  r.has_key = i % 5 != 1;
  r.key = r.has_key ? py_key[i] : NULL;
  r.key_len = r.has_key ? strlen(py_key[i]) : 0;
  r.has_value = i % 4 != 2;
  r.value = r.has_value ? py_value[i] : NULL;
  r.value_len = r.has_value ? (size_t)i : 0;
  py_header[i] = (kefu_archived_header_t){py_name[i], i % 2 ? NULL : "x", i % 2 ? 0 : 1, !(i % 2)};
  r.headers = i % 3 ? &py_header[i] : NULL;
  r.nheaders = i % 3 ? 1 : 0;
  return r;
}

static void test_archive_reads_python_avro_files(void **state) {
  (void)state;
  char path[4096];
  const char *marker = strstr(__FILE__, "tests/unit/");
  assert_non_null(marker);
  snprintf(path, sizeof path, "%.*stests/unit/archive_python.avro", (int)(marker - __FILE__),
           __FILE__);
  int64_t got;
  assert_int_equal(read_file(path, 40, python_record, &got), 0);
  assert_int_equal(got, 40);
}

/* ---- what the reader must survive ---------------------------------------------- */

static void assert_open_fails(const char *path, const char *what) {
  assert_null(kefu_archive_reader_open(path, err, sizeof err));
  assert_non_null(strstr(err, path));
  if (what && !strstr(err, what))
    fail_msg("%s: expected '%s' in: %s", path, what, err);
}

static void test_archive_foreign_files(void **state) {
  (void)state;
  char *dir = make_tmpdir();
  char path[4200];

  snprintf(path, sizeof path, "%s/empty.avro", dir);
  write_all(path, "", 0);
  assert_open_fails(path, "truncated or corrupt after 0 records: empty file");
  snprintf(path, sizeof path, "%s/manifest.avro", dir);
  write_all(path, "{\"format\": \"kefu-archive/1\"}\n", 29);
  assert_open_fails(path, "not a kefu archive file (not an Avro object container file)");
  snprintf(path, sizeof path, "%s/random.avro", dir);
  uint8_t noise[4096];
  for (size_t i = 0; i < sizeof noise; i++)
    noise[i] = (uint8_t)rnd();
  write_all(path, noise, sizeof noise);
  assert_open_fails(path, "not a kefu archive file");
  memcpy(noise, "Obj\1", 4); /* the magic, then noise */
  write_all(path, noise, sizeof noise);
  assert_open_fails(path, NULL);
  assert_open_fails(dir, "not a regular file");
  snprintf(path, sizeof path, "%s/missing.avro", dir);
  assert_open_fails(path, "No such file");

  /* A valid Avro container file of another schema, written by avro-c. */
  const kefu_embedded_t *chat = kefu_embedded_find("schemas/courier_status.avsc");
  avro_schema_t s;
  avro_file_writer_t w;
  assert_int_equal(avro_schema_from_json_length(chat->data, chat->len, &s), 0);
  snprintf(path, sizeof path, "%s/courier.avro", dir);
  assert_int_equal(avro_file_writer_create_with_codec(path, s, &w, "deflate", 0), 0);
  avro_value_iface_t *iface = avro_generic_class_from_schema(s);
  avro_value_t v, f, b;
  avro_generic_value_new(iface, &v);
  avro_value_get_by_name(&v, "courier", &f, NULL);
  avro_value_set_string(&f, "SF");
  avro_value_get_by_name(&v, "region_code", &f, NULL);
  avro_value_set_string(&f, "11");
  avro_value_get_by_name(&v, "reason", &f, NULL);
  avro_value_set_branch(&f, 0, &b);
  avro_value_get_by_name(&v, "valid_until", &f, NULL);
  avro_value_set_branch(&f, 0, &b);
  assert_int_equal(avro_file_writer_append_value(w, &v), 0);
  avro_file_writer_close(w);
  avro_value_decref(&v);
  avro_value_iface_decref(iface);
  avro_schema_decref(s);
  assert_open_fails(path, "not a kefu archive file (schema kefu.v1.CourierStatus)");
  remove_tree(dir);
}

static kefu_archived_t noisy_value[200];
static uint8_t noise_bytes[200][760];

static kefu_archived_t noisy(int i) {
  return noisy_value[i];
}

/* An archive file of two blocks and its bytes. The values are text (they compress, as
 * Avro records do), so the file is small and every byte of it can be tried. */
static uint8_t *two_block_file(const char *dir, size_t *n, int *records) {
  kefu_archive_dir_t *d = kefu_archive_dir_create(dir, err, sizeof err);
  assert_non_null(d);
  *records = 160; /* 160 x ~650 bytes (a quarter tombstones): two blocks */
  for (int i = 0; i < *records; i++) {
    size_t len = 600 + (size_t)i % 100, at = 0;
    while (at < len)
      at += (size_t)snprintf((char *)noise_bytes[i] + at, sizeof noise_bytes[i] - at,
                             "buyer-%d said %d; ", (int)(rnd() % 8), i);
    noisy_value[i] = sample(i, "kefu.order.events", 2, noise_bytes[i], len);
    assert_int_equal(kefu_archive_dir_append(d, &noisy_value[i], err, sizeof err), 0);
  }
  assert_int_equal(kefu_archive_dir_close(d, err, sizeof err), 0);
  return read_all(path_in(dir, "kefu.order.events-2.avro"), n);
}

static void test_archive_truncated_at_every_byte(void **state) {
  (void)state;
  char *dir = make_tmpdir(), cut[4200];
  size_t n;
  int records;
  int64_t got;
  uint8_t *file = two_block_file(dir, &n, &records);
  assert_int_equal(read_file(path_in(dir, "kefu.order.events-2.avro"), records, noisy, &got), 0);
  assert_int_equal(got, records);

  snprintf(cut, sizeof cut, "%s/cut.avro", dir);
  int boundaries = 0;
  for (size_t len = 0; len < n; len = next_byte(len)) {
    write_all(cut, file, len);
    int rc = read_file(cut, records, noisy, &got);
    if (rc == -2)
      continue; /* refused at open: header */
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, cut));
    assert_true(got < records);
    if (strstr(err, "truncated: "))
      boundaries++; /* cut exactly after a block: only the count tells */
  }
  /* after the header, after the first block (not both tried under KEFU_TEST_QUICK) */
  assert_true(boundaries >= (getenv("KEFU_TEST_QUICK") ? 0 : 2));
  free(file);
  remove_tree(dir);
}

static void test_archive_flipped_bytes(void **state) {
  (void)state;
  char *dir = make_tmpdir(), bad[4200];
  size_t n;
  int records, errors = 0, tried = 0;
  int64_t got;
  uint8_t *file = two_block_file(dir, &n, &records);

  snprintf(bad, sizeof bad, "%s/bad.avro", dir);
  for (size_t i = 0; i < n; i = next_byte(i)) {
    uint8_t keep = file[i];
    tried++;
    file[i] ^= (uint8_t)(1u << (rnd() % 8)) | (i % 2 ? 0x80 : 0);
    write_all(bad, file, n);
    int rc = read_file(bad, records, NULL, &got); /* records may differ: no comparison */
    if (rc != 0) {
      errors++;
      assert_non_null(strstr(err, bad));
    }
    file[i] = keep;
  }
  /* Deflate carries no checksum, so a flip can inflate to other records that pass
   * every check; what breaks the framing, the header or a record's structure is
   * caught. */
  print_message("flipped bytes: %d of %d detected\n", errors, tried);
  assert_true(errors > 0);
  free(file);
  remove_tree(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_archive_dir_round_trip),
      cmocka_unit_test(test_archive_large_record),
      cmocka_unit_test(test_archive_reads_python_avro_files),
      cmocka_unit_test(test_archive_foreign_files),
      cmocka_unit_test(test_archive_truncated_at_every_byte),
      cmocka_unit_test(test_archive_flipped_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
