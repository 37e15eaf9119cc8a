/* Writes the seed corpora of fuzz_decode, fuzz_produce_json and fuzz_archive from
 * JSON-lines files named kefu.<topic suffix>.jsonl (the conformance sets' input/ and
 * expected/ files):
 *
 *   make_corpus OUTDIR FILE...
 *
 * Of each topic it keeps the first record of every kind (type, card or step), at most
 * MAX_PER_TOPIC, and writes
 * OUTDIR/fuzz_produce_json/<suffix>-NN (the topic byte and the JSON line) and, for the
 * input topics, OUTDIR/fuzz_decode/<suffix>-NN (the topic byte and the frame that
 * kefu produce would write). Topic bytes are letters, so the JSON seeds read as text.
 *
 * For fuzz_archive it writes an archive with kefu's own writer (io/archive.h): the
 * frames of the first ARCHIVE_RECORDS chat events, with keys, headers and a tombstone,
 * in two blocks in kefu.chat.events-0.avro, and an empty kefu.chat.events-1.avro; then
 * OUTDIR/fuzz_archive/ gets both files ('f', the record count or 0xff for none, the
 * file) and the manifest ('m', its text). A copy of the first file with the null codec
 * (avro-c re-writes the same records uncompressed, as a foreign writer may) lets the
 * fuzzer change the records' bytes themselves, which deflate otherwise hides. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avro.h>

#include "cli/produce.h"
#include "common/embedded.h"
#include "io/archive.h"
#include "io/codec.h"
#include "io/schemas.h"
#include "io/topics.h"

#define MAX_PER_TOPIC 20
#define MAX_SHAPES (KEFU_T__COUNT * MAX_PER_TOPIC)

static char shapes[MAX_SHAPES][128];
static int nshapes, per_topic[KEFU_T__COUNT];

#define ARCHIVE_RECORDS 4
#define ARCHIVE_TOPIC "kefu.chat.events"

/* The chat frames the archive seeds hold. */
static struct {
  uint8_t frame[2048];
  size_t len;
  char key[256];
} archived[ARCHIVE_RECORDS];
static int narchived;

/* A letter whose value modulo @p n is @p t: the topic byte of a seed. */
static int topic_byte(int t, int n) {
  for (int c = 'a'; c <= 'z'; c++)
    if (c % n == t)
      return c;
  return t;
}

static kefu_topic_t topic_of_path(const char *path) {
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char name[128];
  size_t n = strlen(base);
  if (n < 7 || strcmp(base + n - 6, ".jsonl") != 0 || n - 6 >= sizeof name)
    return KEFU_TOPIC_NONE;
  snprintf(name, sizeof name, "%.*s", (int)(n - 6), base);
  return kefu_topic_by_name(name);
}

/* "<topic>/<type, card or step>": records of one kind share most of their fields. */
static void shape_of(kefu_topic_t t, const json_t *rec, char *out, size_t len) {
  const char *kind = json_string_value(json_object_get(rec, "type"));
  if (!kind)
    kind = json_string_value(json_object_get(rec, "card"));
  if (!kind)
    kind = json_string_value(json_object_get(rec, "step"));
  snprintf(out, len, "%d/%s", (int)t, kind ? kind : "");
}

static int is_new_shape(kefu_topic_t t, const json_t *rec) {
  char shape[128];
  if (per_topic[t] >= MAX_PER_TOPIC || nshapes >= MAX_SHAPES)
    return 0;
  shape_of(t, rec, shape, sizeof shape);
  for (int i = 0; i < nshapes; i++)
    if (strcmp(shapes[i], shape) == 0)
      return 0;
  snprintf(shapes[nshapes++], sizeof shapes[0], "%s", shape);
  return 1;
}

static int write_seed(const char *dir, const char *target, kefu_topic_t t, int n, int byte,
                      const void *body, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s-%02d", dir, target, kefu_topics[t].suffix, n);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    return -1;
  }
  fputc(byte, f);
  fwrite(body, 1, len, f);
  return fclose(f);
}

/* Writes the seeds of one JSON line when its shape is new; -1 on an error. */
static int one_line(const char *dir, kefu_codec_t *codec, kefu_topic_t t, const char *line,
                    char **buf, size_t *cap) {
  char errstr[512];
  kefu_produce_record_t r;
  int rc = 0;
  if (kefu_produce_record_from_line(&r, codec, t, line, buf, cap, errstr, sizeof errstr) != 0) {
    fprintf(stderr, "make_corpus: %s: %s\n", kefu_topics[t].suffix, errstr);
    kefu_produce_record_clear(&r);
    return -1;
  }
  if (t == KEFU_T_CHAT && !r.tombstone && narchived < ARCHIVE_RECORDS &&
      r.len <= sizeof archived[0].frame) {
    memcpy(archived[narchived].frame, *buf, r.len);
    archived[narchived].len = r.len;
    snprintf(archived[narchived++].key, sizeof archived[0].key, "%.*s", (int)r.keylen, r.key);
  }
  if (is_new_shape(t, r.rec)) {
    int n = per_topic[t]++;
    rc = write_seed(dir, "fuzz_produce_json", t, n, topic_byte(t, KEFU_T_DLQ), line, strlen(line));
    if (rc == 0 && t <= KEFU_T_COURIER_STATUS)
      rc = write_seed(dir, "fuzz_decode", t, n, topic_byte(t, KEFU_KEYED_INPUTS + 1), *buf, r.len);
  }
  kefu_produce_record_clear(&r);
  return rc;
}

static int one_file(const char *dir, kefu_codec_t *codec, const char *path) {
  kefu_topic_t t = topic_of_path(path);
  FILE *f = t == KEFU_TOPIC_NONE || t == KEFU_T_DLQ ? NULL : fopen(path, "r");
  char *line = NULL, *buf = NULL;
  size_t linecap = 0, cap = 0;
  int rc = 0;
  if (!f) {
    fprintf(stderr, "make_corpus: %s: not a readable kefu.<topic>.jsonl file\n", path);
    return -1;
  }
  while (rc == 0 && getline(&line, &linecap, f) > 0)
    if (strspn(line, " \t\r\n") != strlen(line))
      rc = one_line(dir, codec, t, line, &buf, &cap);
  free(line);
  free(buf);
  fclose(f);
  return rc;
}

/* OUTDIR/fuzz_archive/NAME: @p prefix (1 or 2 bytes), then the bytes of @p path. */
static int copy_seed(const char *outdir, const char *name, const char *prefix, size_t plen,
                     const char *path) {
  char out[4096], buf[4096];
  size_t n;
  snprintf(out, sizeof out, "%s/fuzz_archive/%s", outdir, name);
  FILE *in = fopen(path, "rb"), *f = in ? fopen(out, "wb") : NULL;
  if (!f) {
    perror(in ? out : path);
    if (in)
      fclose(in);
    return -1;
  }
  fwrite(prefix, 1, plen, f);
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    fwrite(buf, 1, n, f);
  fclose(in);
  return fclose(f);
}

/* Appends the archived frames to @p d: record 1 a tombstone, record 2 without a key,
 * headers on every other one; a block ends after record 1 (as kefu archive --follow
 * ends one each second). */
static int append_records(kefu_archive_dir_t *d, char *err, size_t errlen) {
  kefu_archived_header_t hdrs[2] = {{"kefu.source", "conformance", 11, true},
                                    {"no-value", NULL, 0, false}};
  for (int i = 0; i < narchived; i++) {
    kefu_archived_t r = {.topic = ARCHIVE_TOPIC,
                         .partition = 0,
                         .offset = 100 + i,
                         .timestamp = 1773098160000 + i,
                         .key = archived[i].key,
                         .key_len = strlen(archived[i].key),
                         .has_key = i != 2,
                         .value = archived[i].frame,
                         .value_len = archived[i].len,
                         .has_value = i != 1,
                         .headers = i % 2 ? NULL : hdrs,
                         .nheaders = i % 2 ? 0 : 2};
    if (!r.has_key)
      r.key = NULL, r.key_len = 0;
    if (!r.has_value)
      r.value = NULL, r.value_len = 0;
    if (kefu_archive_dir_append(d, &r, err, errlen) ||
        (i == 1 && kefu_archive_dir_flush(d, err, errlen)))
      return -1;
  }
  return 0;
}

/* Re-writes the archive file @p from with the null codec into @p to, with the schema
 * as kefu embeds it (given the reader's own schema, avro-c 1.11.1 leaked about 8 KB a
 * copy). */
static int uncompressed_copy(const char *from, const char *to) {
  const kefu_embedded_t *json = kefu_embedded_find("schemas/archived_record.avsc");
  avro_schema_t schema = NULL;
  avro_file_reader_t r = NULL;
  avro_file_writer_t w;
  avro_value_iface_t *iface = NULL;
  avro_value_t v;
  int rc = -1;
  if (json && !avro_schema_from_json_length(json->data, json->len, &schema) &&
      !avro_file_reader(from, &r) &&
      !avro_file_writer_create_with_codec(to, schema, &w, "null", 0)) {
    if ((iface = avro_generic_class_from_schema(schema)) && !avro_generic_value_new(iface, &v)) {
      rc = 0;
      while (rc == 0 && avro_file_reader_read_value(r, &v) == 0)
        rc = avro_file_writer_append_value(w, &v);
      avro_value_decref(&v);
    }
    avro_file_writer_close(w);
  }
  if (iface)
    avro_value_iface_decref(iface);
  if (r)
    avro_file_reader_close(r);
  if (schema)
    avro_schema_decref(schema);
  if (rc)
    fprintf(stderr, "make_corpus: %s: avro-c: %s\n", to, avro_strerror());
  return rc;
}

static int archive_seeds(const char *outdir) {
  char tmpl[] = "/tmp/kefu-make-corpus-XXXXXX", err[512], path[4096], dst[4096];
  char count[2] = {'f', 0};
  char *dir = mkdtemp(tmpl);
  const char *names[] = {ARCHIVE_TOPIC "-0.avro", ARCHIVE_TOPIC "-1.avro", KEFU_ARCHIVE_MANIFEST,
                         "null.avro"};
  kefu_archive_dir_t *d = dir ? kefu_archive_dir_create(dir, err, sizeof err) : NULL;
  int rc = -1;
  if (!d) {
    fprintf(stderr, "make_corpus: archive: %s\n", dir ? err : "mkdtemp failed");
    return -1;
  }
  if (kefu_archive_dir_add_partition(d, ARCHIVE_TOPIC, 1, err, sizeof err) ||
      append_records(d, err, sizeof err)) {
    fprintf(stderr, "make_corpus: archive: %s\n", err);
    kefu_archive_dir_close(d, err, sizeof err);
    goto done;
  }
  if (kefu_archive_dir_close(d, err, sizeof err)) {
    fprintf(stderr, "make_corpus: archive: %s\n", err);
    goto done;
  }
  count[1] = (char)narchived;
  snprintf(path, sizeof path, "%s/%s", dir, names[0]);
  rc = copy_seed(outdir, "chat-0", count, 2, path);
  rc = rc ? rc : copy_seed(outdir, "chat-0-no-count", "f\xff", 2, path);
  snprintf(dst, sizeof dst, "%s/%s", dir, names[3]);
  rc = rc ? rc : uncompressed_copy(path, dst);
  rc = rc ? rc : copy_seed(outdir, "chat-0-null-codec", count, 2, dst);
  snprintf(path, sizeof path, "%s/%s", dir, names[1]);
  rc = rc ? rc : copy_seed(outdir, "chat-1-empty", "f\0", 2, path);
  snprintf(path, sizeof path, "%s/%s", dir, names[2]);
  rc = rc ? rc : copy_seed(outdir, "manifest", "m", 1, path);
done:
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
  return rc;
}

int main(int argc, char **argv) {
  char errstr[256];
  kefu_schemas_t *schemas = kefu_schemas_new(errstr, sizeof errstr);
  kefu_codec_t *codec = schemas ? kefu_codec_new(schemas) : NULL;
  int rc = codec && argc >= 3 ? 0 : 1;
  if (argc < 3)
    fprintf(stderr, "usage: make_corpus OUTDIR kefu.<topic>.jsonl...\n");
  for (int i = 2; rc == 0 && i < argc; i++)
    rc = one_file(argv[1], codec, argv[i]) ? 1 : 0;
  if (rc == 0 && narchived > 0)
    rc = archive_seeds(argv[1]) ? 1 : 0;
  kefu_codec_destroy(codec);
  kefu_schemas_destroy(schemas);
  return rc;
}
