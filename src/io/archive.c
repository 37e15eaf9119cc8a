/* Archive files and directories (see archive.h).
 *
 * Writing: avro-c's file writer, deflate codec, one generic value of kefu.ArchivedRecord
 * per directory reused for every record. avro-c writes a block only when its datum
 * buffer is full and fails a record larger than the buffer, so the buffer is sized for
 * the largest record (KEFU_ARCHIVE_MAX_RECORD; allocated, mostly never touched) and this
 * file ends a block itself (avro_file_writer_sync) once it holds BLOCK_TARGET bytes:
 * blocks stay small, whatever the record sizes.
 *
 * Reading: avro-c 1.11.1's file reader trusts the container. A negative block size makes
 * it return the previous block's records again; a huge one is malloc'd unchecked and read
 * into NULL; a deflate stream cut short grows its buffer without end; inside a block every
 * length is malloc'd before it is checked (see io/codec.c). So kefu_archive_reader_open
 * maps the file and walks it first: the header (magic, metadata, sync marker), the
 * schema (kefu.ArchivedRecord, else "not a kefu archive file"), then every block: its
 * count and size against the bytes left, its sync marker, its deflate stream inflated to
 * the end (at most MAX_BLOCK bytes) and each of its records checked by the codec's
 * validator (kefu_avro_check_datum), the block filled exactly. avro-c then reads only
 * the blocks that passed, through a stdio stream over that prefix of the mapping
 * (fmemopen), and the first bad block becomes the error "truncated or corrupt after N
 * records" once the records before it were read. This costs a second inflate of the
 * file, which is cheap next to what a reader does with the records.
 *
 * A file cut exactly at a block boundary is a valid shorter file; only the manifest's
 * count tells (kefu_archive_reader_expect). Deflate has no checksum: a byte flipped
 * inside a compressed block may still inflate to records that pass every check. */
#include "io/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/embedded.h"
#include "io/codec.h"

#define SCHEMA_FILE "schemas/archived_record.avsc"
#define BLOCK_TARGET (64u << 10)
#define MAX_BLOCK (256u << 20) /* inflated; foreign writers may make larger blocks than ours */
#define SYNC_LEN 16

enum { F_TOPIC, F_PARTITION, F_OFFSET, F_TIMESTAMP, F_KEY, F_VALUE, F_HEADERS };

/* kefu.ArchivedRecord, parsed once per reader or writer, and one generic value of it
 * reused for every record. */
typedef struct record_value {
  avro_schema_t schema;
  avro_value_iface_t *iface;
  avro_value_t value;
  int has_value;
} record_value_t;

static int record_value_init(record_value_t *v, char *err, size_t errlen) {
  const kefu_embedded_t *f = kefu_embedded_find(SCHEMA_FILE);
  if (!f || avro_schema_from_json_length(f->data, f->len, &v->schema)) {
    v->schema = NULL;
    snprintf(err, errlen, "%s: %s", SCHEMA_FILE, f ? avro_strerror() : "not embedded");
    return -1;
  }
  if (!(v->iface = avro_generic_class_from_schema(v->schema)) ||
      avro_generic_value_new(v->iface, &v->value)) {
    snprintf(err, errlen, "avro-c: %s", avro_strerror());
    return -1;
  }
  v->has_value = 1;
  return 0;
}

static void record_value_free(record_value_t *v) {
  if (v->has_value)
    avro_value_decref(&v->value);
  if (v->iface)
    avro_value_iface_decref(v->iface);
  if (v->schema)
    avro_schema_decref(v->schema);
  memset(v, 0, sizeof *v);
}

static void *copy_bytes(const void *p, size_t n) {
  void *c = malloc(n ? n : 1);
  if (c && n)
    memcpy(c, p, n);
  return c;
}

void kefu_archived_clear(kefu_archived_t *r) {
  if (!r)
    return;
  free(r->topic);
  free(r->key);
  free(r->value);
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  memset(r, 0, sizeof *r);
}

/* ---- reading: the walk over the container --------------------------------------- */

struct kefu_archive_reader {
  char *path;
  uint8_t *map;
  size_t size;
  record_value_t rec; /* its schema is kefu.ArchivedRecord, ours */
  int deflate;
  uint8_t sync[SYNC_LEN];
  z_stream z;
  int z_ready;
  uint8_t *buf; /* an inflated block */
  size_t cap;
  avro_file_reader_t avro;
  int64_t valid, read, expect; /* records in the blocks that passed; read; -1: any */
  char *scan_err;              /* why the walk stopped before the end, or NULL */
  char *failed;                /* the error every later call returns */
};

typedef struct cursor {
  const uint8_t *p, *end;
} cursor_t;

static int rd_long(cursor_t *c, int64_t *v) {
  return kefu_avro_read_long(&c->p, c->end, v) ? -1 : 0;
}

/* A length-prefixed byte string of the header. */
static int rd_bytes(cursor_t *c, const uint8_t **s, size_t *n) {
  int64_t len;
  if (rd_long(c, &len) || len < 0 || (uint64_t)len > (uint64_t)(c->end - c->p))
    return -1;
  *s = c->p;
  *n = (size_t)len;
  c->p += len;
  return 0;
}

static const char *schema_name(avro_schema_t s, char *buf, size_t len) {
  const char *ns = avro_schema_namespace(s), *name = avro_schema_name(s);
  if (!name)
    return avro_schema_type_name(s);
  snprintf(buf, len, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "." : "", name);
  return buf;
}

/* The header's codec and schema: 0, or -1 with the reason in @p why and *@p foreign set
 * when the file is something else rather than a damaged archive. */
static int check_meta(kefu_archive_reader_t *r, const uint8_t *codec, size_t codec_len,
                      const uint8_t *schema, size_t schema_len, int *foreign, char *why,
                      size_t len) {
  avro_schema_t theirs = NULL;
  char name[256];
  *foreign = 1;
  if (codec && codec_len == 7 && !memcmp(codec, "deflate", 7))
    r->deflate = 1;
  else if (codec && !(codec_len == 4 && !memcmp(codec, "null", 4))) {
    snprintf(why, len, "codec %.*s", (int)(codec_len < 32 ? codec_len : 32), codec);
    return -1;
  }
  if (!schema) {
    snprintf(why, len, "no schema in its header");
    return -1;
  }
  if (avro_schema_from_json_length((const char *)schema, schema_len, &theirs)) {
    snprintf(why, len, "its schema does not parse: %s", avro_strerror());
    return -1;
  }
  int same = avro_schema_equal(theirs, r->rec.schema);
  if (!same)
    snprintf(why, len, "schema %s", schema_name(theirs, name, sizeof name));
  avro_schema_decref(theirs);
  return same ? 0 : -1;
}

/* Magic, metadata map and sync marker; *@p c moves past them. */
static int walk_header(kefu_archive_reader_t *r, cursor_t *c, int *foreign, char *why, size_t len) {
  static const uint8_t magic[4] = {'O', 'b', 'j', 1};
  const uint8_t *codec = NULL, *schema = NULL, *k, *v;
  size_t codec_len = 0, schema_len = 0, kn, vn;
  size_t have = (size_t)(c->end - c->p);
  int64_t count, bytes;

  *foreign = memcmp(c->p, magic, have < 4 ? have : 4) != 0;
  if (*foreign || have < 4) {
    snprintf(why, len, *foreign ? "not an Avro object container file" : "header: cut short");
    return -1;
  }
  c->p += 4;
  for (;;) {
    if (rd_long(c, &count) || count == INT64_MIN)
      goto cut;
    if (count == 0)
      break;
    if (count < 0 && rd_long(c, &bytes))
      goto cut;
    for (int64_t i = count < 0 ? -count : count; i > 0; i--) {
      if (rd_bytes(c, &k, &kn) || rd_bytes(c, &v, &vn))
        goto cut;
      if (kn == 10 && !memcmp(k, "avro.codec", 10))
        codec = v, codec_len = vn;
      else if (kn == 11 && !memcmp(k, "avro.schema", 11))
        schema = v, schema_len = vn;
    }
  }
  if ((size_t)(c->end - c->p) < SYNC_LEN)
    goto cut;
  memcpy(r->sync, c->p, SYNC_LEN);
  c->p += SYNC_LEN;
  return check_meta(r, codec, codec_len, schema, schema_len, foreign, why, len);
cut:
  snprintf(why, len, "header: cut short or corrupt");
  return -1;
}

static int inflate_block(kefu_archive_reader_t *r, const uint8_t *data, size_t n, size_t *out,
                         char *why, size_t len) {
  if (!r->z_ready) {
    if (inflateInit2(&r->z, -15) != Z_OK) {
      snprintf(why, len, "inflateInit2 failed");
      return -1;
    }
    r->z_ready = 1;
  } else {
    inflateReset(&r->z);
  }
  r->z.next_in = (Bytef *)data;
  r->z.avail_in = (uInt)n;
  size_t used = 0;
  for (;;) {
    if (used == r->cap) {
      size_t cap = r->cap ? 2 * r->cap : BLOCK_TARGET * 2;
      uint8_t *grown = cap <= MAX_BLOCK ? realloc(r->buf, cap) : NULL;
      if (!grown) {
        snprintf(why, len, "block inflates past %u MiB", MAX_BLOCK >> 20);
        return -1;
      }
      r->buf = grown;
      r->cap = cap;
    }
    r->z.next_out = r->buf + used;
    r->z.avail_out = (uInt)(r->cap - used);
    int rc = inflate(&r->z, Z_NO_FLUSH);
    used = r->cap - r->z.avail_out;
    if (rc == Z_STREAM_END)
      break;
    if (rc == Z_BUF_ERROR && r->z.avail_in == 0) {
      snprintf(why, len, "deflate stream cut short");
      return -1;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      snprintf(why, len, "deflate: %s", r->z.msg ? r->z.msg : "error");
      return -1;
    }
  }
  /* Bytes after the stream's end are ignored, as avro-c and python3-avro do: python3-avro
   * writes 3 (the rest of zlib's checksum) after every block. */
  *out = used;
  return 0;
}

/* The next block at *@p c: 1 when it passed (its record count added to r->valid), 0 at
 * the end of the file, -1 with the reason in @p why. */
static int walk_block(kefu_archive_reader_t *r, cursor_t *c, char *why, size_t len) {
  int64_t count, size;
  if (c->p == c->end)
    return 0;
  if (rd_long(c, &count) || rd_long(c, &size)) {
    snprintf(why, len, "block header cut short");
    return -1;
  }
  if (count <= 0 || size < 0) {
    snprintf(why, len, "block of %" PRId64 " records, %" PRId64 " bytes", count, size);
    return -1;
  }
  if ((uint64_t)size + SYNC_LEN > (uint64_t)(c->end - c->p)) {
    snprintf(why, len, "block of %" PRId64 " bytes with %zu left", size, (size_t)(c->end - c->p));
    return -1;
  }
  const uint8_t *data = c->p, *sync = c->p + size;
  if (memcmp(sync, r->sync, SYNC_LEN)) {
    snprintf(why, len, "sync marker differs");
    return -1;
  }
  size_t n = (size_t)size;
  if (r->deflate) {
    if (inflate_block(r, data, (size_t)size, &n, why, len))
      return -1;
    data = r->buf;
  }
  const uint8_t *p = data, *end = data + n;
  for (int64_t i = 0; i < count; i++)
    if (kefu_avro_check_datum(r->rec.schema, &p, end, why, len))
      return -1;
  if (p != end) {
    snprintf(why, len, "%zu bytes after the block's %" PRId64 " records", (size_t)(end - p), count);
    return -1;
  }
  c->p = sync + SYNC_LEN;
  r->valid += count;
  return 1;
}

static int map_file(kefu_archive_reader_t *r, char *why, size_t len) {
  struct stat st;
  int fd = open(r->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, len, "%s", strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    snprintf(why, len, "not a regular file");
    close(fd);
    return -1;
  }
  r->size = (size_t)st.st_size;
  if (r->size && (r->map = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
    r->map = NULL;
    snprintf(why, len, "mmap: %s", strerror(errno));
  }
  close(fd);
  return r->size && !r->map ? -1 : 0;
}

static int start_avro(kefu_archive_reader_t *r, size_t prefix, char *why, size_t len) {
  FILE *fp = fmemopen(r->map, prefix, "rb");
  if (!fp || avro_file_reader_fp(fp, r->path, 1, &r->avro)) {
    snprintf(why, len, "avro-c: %s", fp ? avro_strerror() : strerror(errno));
    r->avro = NULL;
    return -1;
  }
  return 0;
}

kefu_archive_reader_t *kefu_archive_reader_open(const char *path, char *err, size_t errlen) {
  kefu_archive_reader_t *r = calloc(1, sizeof *r);
  char why[400];
  int foreign = 0;

  if (!r || !(r->path = strdup(path))) {
    snprintf(err, errlen, "%s: out of memory", path);
    free(r);
    return NULL;
  }
  r->expect = -1;
  if (record_value_init(&r->rec, why, sizeof why) || map_file(r, why, sizeof why)) {
    snprintf(err, errlen, "%s: %s", path, why);
    goto fail;
  }
  if (!r->size) {
    snprintf(err, errlen, "%s: truncated or corrupt after 0 records: empty file", path);
    goto fail;
  }
  cursor_t c = {r->map, r->map + r->size};
  if (walk_header(r, &c, &foreign, why, sizeof why)) {
    if (foreign)
      snprintf(err, errlen, "%s: not a kefu archive file (%s)", path, why);
    else
      snprintf(err, errlen, "%s: truncated or corrupt after 0 records: %s", path, why);
    goto fail;
  }
  int rc;
  const uint8_t *good = c.p;
  while ((rc = walk_block(r, &c, why, sizeof why)) == 1)
    good = c.p;
  if (rc < 0) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s: truncated or corrupt after %" PRId64 " records: %s", path,
             r->valid, why);
    r->scan_err = strdup(msg);
  }
  if (start_avro(r, (size_t)(good - r->map), why, sizeof why)) {
    snprintf(err, errlen, "%s: %s", path, why);
    goto fail;
  }
  return r;
fail:
  kefu_archive_reader_close(r);
  return NULL;
}

void kefu_archive_reader_expect(kefu_archive_reader_t *r, int64_t records) {
  r->expect = records;
}

static int reader_fail(kefu_archive_reader_t *r, char *err, size_t errlen, const char *msg) {
  if (!r->failed)
    r->failed = strdup(msg);
  snprintf(err, errlen, "%s", r->failed ? r->failed : msg);
  return -1;
}

static int nullable_bytes(avro_value_t *rec, int field, void **out, size_t *len, bool *has) {
  avro_value_t u, b;
  int branch = 0;
  const void *p = NULL;
  if (avro_value_get_by_index(rec, field, &u, NULL) || avro_value_get_discriminant(&u, &branch) ||
      avro_value_get_current_branch(&u, &b))
    return -1;
  *has = branch == 1;
  if (!*has)
    return 0;
  if (avro_value_get_bytes(&b, &p, len))
    return -1;
  return (*out = copy_bytes(p, *len)) ? 0 : -1;
}

static int copy_string(avro_value_t *rec, int field, char **out) {
  avro_value_t f;
  const char *s = NULL;
  size_t n = 0;
  if (avro_value_get_by_index(rec, field, &f, NULL) || avro_value_get_string(&f, &s, &n))
    return -1;
  return (*out = strndup(s, n ? n - 1 : 0)) ? 0 : -1; /* n counts the NUL */
}

static int copy_headers(avro_value_t *rec, kefu_archived_t *out) {
  avro_value_t arr, h;
  size_t n = 0;
  if (avro_value_get_by_index(rec, F_HEADERS, &arr, NULL) || avro_value_get_size(&arr, &n))
    return -1;
  if (!n)
    return 0;
  if (!(out->headers = calloc(n, sizeof *out->headers)))
    return -1;
  for (size_t i = 0; i < n; i++) {
    kefu_archived_header_t *x = &out->headers[i];
    out->nheaders++;
    if (avro_value_get_by_index(&arr, i, &h, NULL) || copy_string(&h, 0, &x->name) ||
        nullable_bytes(&h, 1, &x->value, &x->len, &x->has_value))
      return -1;
  }
  return 0;
}

static int copy_record(avro_value_t *v, kefu_archived_t *out) {
  avro_value_t f;
  memset(out, 0, sizeof *out);
  if (copy_string(v, F_TOPIC, &out->topic) || avro_value_get_by_index(v, F_PARTITION, &f, NULL) ||
      avro_value_get_int(&f, &out->partition) || avro_value_get_by_index(v, F_OFFSET, &f, NULL) ||
      avro_value_get_long(&f, &out->offset) || avro_value_get_by_index(v, F_TIMESTAMP, &f, NULL) ||
      avro_value_get_long(&f, &out->timestamp) ||
      nullable_bytes(v, F_KEY, &out->key, &out->key_len, &out->has_key) ||
      nullable_bytes(v, F_VALUE, &out->value, &out->value_len, &out->has_value) ||
      copy_headers(v, out)) {
    kefu_archived_clear(out);
    return -1;
  }
  return 0;
}

int kefu_archive_reader_next(kefu_archive_reader_t *r, kefu_archived_t *out, char *err,
                             size_t errlen) {
  char msg[600];
  if (r->failed)
    return reader_fail(r, err, errlen, r->failed);
  if (r->read == r->valid) {
    if (r->scan_err)
      return reader_fail(r, err, errlen, r->scan_err);
    if (r->expect >= 0 && r->valid < r->expect) {
      snprintf(msg, sizeof msg, "%s: truncated: %" PRId64 " of %" PRId64 " records", r->path,
               r->valid, r->expect);
      return reader_fail(r, err, errlen, msg);
    }
    if (r->expect >= 0 && r->valid > r->expect) {
      snprintf(msg, sizeof msg, "%s: holds %" PRId64 " records, its manifest lists %" PRId64,
               r->path, r->valid, r->expect);
      return reader_fail(r, err, errlen, msg);
    }
    return 0;
  }
  /* A value of our schema, which the walk found equal to the file's. */
  avro_value_reset(&r->rec.value);
  if (avro_file_reader_read_value(r->avro, &r->rec.value)) {
    snprintf(msg, sizeof msg, "%s: truncated or corrupt after %" PRId64 " records: avro-c: %s",
             r->path, r->read, avro_strerror());
    return reader_fail(r, err, errlen, msg);
  }
  if (copy_record(&r->rec.value, out)) {
    snprintf(msg, sizeof msg, "%s: out of memory", r->path);
    return reader_fail(r, err, errlen, msg);
  }
  r->read++;
  return 1;
}

void kefu_archive_reader_close(kefu_archive_reader_t *r) {
  if (!r)
    return;
  if (r->avro)
    avro_file_reader_close(r->avro);
  record_value_free(&r->rec);
  if (r->z_ready)
    inflateEnd(&r->z);
  if (r->map)
    munmap(r->map, r->size);
  free(r->buf);
  free(r->scan_err);
  free(r->failed);
  free(r->path);
  free(r);
}

/* ---- writing -------------------------------------------------------------------- */

typedef struct dir_file {
  char *topic, *path;
  int32_t partition;
  avro_file_writer_t w;
  size_t block_bytes; /* encoded bytes in the block avro-c is filling */
  int64_t first, last, records;
} dir_file_t;

struct kefu_archive_dir {
  char *dir;
  record_value_t rec;
  int ready; /* built whole: close writes a manifest */
  dir_file_t *files;
  size_t n, cap, last; /* last: the file used last, looked at first */
  int64_t records;
};

static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* mkdir -p */
static int make_dirs(const char *dir, char *err, size_t errlen) {
  char *p = strdup(dir);
  struct stat st;
  int rc = 0;
  if (!p) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (char *s = p + 1; *s && !rc; s++)
    if (*s == '/') {
      *s = '\0';
      if (mkdir(p, 0777) && errno != EEXIST)
        rc = -1;
      *s = '/';
    }
  if (!rc && mkdir(p, 0777) && errno != EEXIST)
    rc = -1;
  if (rc)
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
  else if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s: not a directory", dir);
    rc = -1;
  }
  free(p);
  return rc;
}

kefu_archive_dir_t *kefu_archive_dir_create(const char *dir, char *err, size_t errlen) {
  kefu_archive_dir_t *d = calloc(1, sizeof *d);
  char why[300], *manifest = NULL;
  if (!d || !(d->dir = strdup(dir)) || !(manifest = join(dir, KEFU_ARCHIVE_MANIFEST))) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (access(manifest, F_OK) == 0) {
    snprintf(err, errlen, "%s already holds an archive (%s)", dir, KEFU_ARCHIVE_MANIFEST);
    goto fail;
  }
  if (make_dirs(dir, err, errlen))
    goto fail;
  if (record_value_init(&d->rec, err, errlen))
    goto fail;
  d->ready = 1;
  free(manifest);
  return d;
fail:
  free(manifest);
  kefu_archive_dir_close(d, why, sizeof why);
  return NULL;
}

/* Kafka's legal topic names ([A-Za-z0-9._-], at most 249), which also makes safe file
 * names (not "." or ".."). */
static int topic_ok(const char *t) {
  size_t n = t ? strlen(t) : 0;
  if (n == 0 || n > 249 || !strcmp(t, ".") || !strcmp(t, ".."))
    return 0;
  return strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static dir_file_t *file_for(kefu_archive_dir_t *d, const char *topic, int32_t partition, char *err,
                            size_t errlen) {
  if (d->last < d->n && d->files[d->last].partition == partition &&
      !strcmp(d->files[d->last].topic, topic))
    return &d->files[d->last];
  for (size_t i = 0; i < d->n; i++)
    if (d->files[i].partition == partition && !strcmp(d->files[i].topic, topic))
      return &d->files[d->last = i];
  if (!topic_ok(topic) || partition < 0) {
    snprintf(err, errlen, "bad topic or partition '%s' [%d]", topic ? topic : "", (int)partition);
    return NULL;
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 16;
    dir_file_t *grown = realloc(d->files, cap * sizeof *grown);
    if (!grown) {
      snprintf(err, errlen, "out of memory");
      return NULL;
    }
    d->files = grown;
    d->cap = cap;
  }
  char name[300];
  dir_file_t *f = &d->files[d->n];
  memset(f, 0, sizeof *f);
  snprintf(name, sizeof name, "%s-%d.avro", topic, (int)partition);
  f->first = f->last = -1;
  f->partition = partition;
  if (!(f->topic = strdup(topic)) || !(f->path = join(d->dir, name))) {
    free(f->topic);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (avro_file_writer_create_with_codec(f->path, d->rec.schema, &f->w, "deflate",
                                         KEFU_ARCHIVE_MAX_RECORD + BLOCK_TARGET)) {
    snprintf(err, errlen, "%s: avro-c: %s", f->path, avro_strerror());
    free(f->topic);
    free(f->path);
    return NULL;
  }
  d->last = d->n++;
  return f;
}

int kefu_archive_dir_add_partition(kefu_archive_dir_t *d, const char *topic, int32_t partition,
                                   char *err, size_t errlen) {
  return file_for(d, topic, partition, err, errlen) ? 0 : -1;
}

static int set_nullable(avro_value_t *rec, int field, bool has, const void *p, size_t len) {
  avro_value_t u, b;
  if (avro_value_get_by_index(rec, field, &u, NULL) || avro_value_set_branch(&u, has, &b))
    return -1;
  return has ? avro_value_set_bytes(&b, (void *)(p ? p : ""), p ? len : 0)
             : avro_value_set_null(&b);
}

static int fill_value(kefu_archive_dir_t *d, const kefu_archived_t *r, char *err, size_t errlen) {
  avro_value_t *v = &d->rec.value, f, arr, h;
  avro_value_reset(v);
  if (avro_value_get_by_index(v, F_TOPIC, &f, NULL) || avro_value_set_string(&f, r->topic) ||
      avro_value_get_by_index(v, F_PARTITION, &f, NULL) || avro_value_set_int(&f, r->partition) ||
      avro_value_get_by_index(v, F_OFFSET, &f, NULL) || avro_value_set_long(&f, r->offset) ||
      avro_value_get_by_index(v, F_TIMESTAMP, &f, NULL) || avro_value_set_long(&f, r->timestamp) ||
      set_nullable(v, F_KEY, r->has_key, r->key, r->key_len) ||
      set_nullable(v, F_VALUE, r->has_value, r->value, r->value_len) ||
      avro_value_get_by_index(v, F_HEADERS, &arr, NULL))
    goto avro_fail;
  for (size_t i = 0; i < r->nheaders; i++) {
    const kefu_archived_header_t *x = &r->headers[i];
    if (!x->name || !kefu_codec_utf8_ok((const uint8_t *)x->name, strlen(x->name))) {
      snprintf(err, errlen, "header %zu: name is not UTF-8 text", i);
      return -1;
    }
    if (avro_value_append(&arr, &h, NULL) || avro_value_get_by_index(&h, 0, &f, NULL) ||
        avro_value_set_string(&f, x->name) || set_nullable(&h, 1, x->has_value, x->value, x->len))
      goto avro_fail;
  }
  return 0;
avro_fail:
  snprintf(err, errlen, "avro-c: %s", avro_strerror());
  return -1;
}

int kefu_archive_dir_append(kefu_archive_dir_t *d, const kefu_archived_t *r, char *err,
                            size_t errlen) {
  char why[300];
  size_t size = 0;
  dir_file_t *f = file_for(d, r->topic, r->partition, why, sizeof why);
  if (!f || fill_value(d, r, why, sizeof why))
    goto fail;
  if (avro_value_sizeof(&d->rec.value, &size) || size > KEFU_ARCHIVE_MAX_RECORD) {
    snprintf(why, sizeof why, "record of %zu bytes exceeds the archive's %u MiB", size,
             KEFU_ARCHIVE_MAX_RECORD >> 20);
    goto fail;
  }
  if (avro_file_writer_append_value(f->w, &d->rec.value)) {
    snprintf(why, sizeof why, "avro-c: %s", avro_strerror());
    goto fail;
  }
  if ((f->block_bytes += size) >= BLOCK_TARGET) {
    if (avro_file_writer_sync(f->w)) {
      snprintf(why, sizeof why, "avro-c: %s", avro_strerror());
      goto fail;
    }
    f->block_bytes = 0;
  }
  if (f->first < 0)
    f->first = r->offset;
  f->last = r->offset;
  f->records++;
  d->records++;
  return 0;
fail:
  snprintf(err, errlen, "%s [%d] @%" PRId64 ": %s", r->topic ? r->topic : "", (int)r->partition,
           r->offset, why);
  return -1;
}

int kefu_archive_dir_flush(kefu_archive_dir_t *d, char *err, size_t errlen) {
  for (size_t i = 0; i < d->n; i++) {
    if (avro_file_writer_flush(d->files[i].w)) {
      snprintf(err, errlen, "%s: avro-c: %s", d->files[i].path, avro_strerror());
      return -1;
    }
    d->files[i].block_bytes = 0;
  }
  return 0;
}

int64_t kefu_archive_dir_records(const kefu_archive_dir_t *d) {
  return d->records;
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static int file_order(const void *a, const void *b) {
  const dir_file_t *l = a, *r = b;
  int c = strcmp(l->topic, r->topic);
  return c ? c : (l->partition > r->partition) - (l->partition < r->partition);
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static int write_manifest(kefu_archive_dir_t *d, char *err, size_t errlen) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  json_t *files = json_array();
  json_t *m = json_pack("{s:s, s:I, s:o}", "format", KEFU_ARCHIVE_FORMAT, "created_ms",
                        (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, "files", files);
  char *path = join(d->dir, KEFU_ARCHIVE_MANIFEST), *tmp = join(d->dir, "manifest.json.tmp");
  int rc = -1;

  if (!m || !path || !tmp) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  qsort(d->files, d->n, sizeof *d->files, file_order);
  for (size_t i = 0; i < d->n; i++) {
    dir_file_t *f = &d->files[i];
    json_array_append_new(files,
                          json_pack("{s:s, s:s, s:i, s:I, s:I, s:I}", "file", base_name(f->path),
                                    "topic", f->topic, "partition", (int)f->partition,
                                    "first_offset", (json_int_t)f->first, "last_offset",
                                    (json_int_t)f->last, "records", (json_int_t)f->records));
  }
  if (json_dump_file(m, tmp, JSON_INDENT(2)) || fsync_path(tmp) || rename(tmp, path) ||
      fsync_path(d->dir)) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    unlink(tmp);
    goto done;
  }
  rc = 0;
done:
  json_decref(m);
  free(path);
  free(tmp);
  return rc;
}

int kefu_archive_dir_close(kefu_archive_dir_t *d, char *err, size_t errlen) {
  int rc = 0;
  if (!d)
    return 0;
  for (size_t i = 0; i < d->n; i++) {
    dir_file_t *f = &d->files[i];
    if ((avro_file_writer_close(f->w) || fsync_path(f->path)) && rc == 0) {
      snprintf(err, errlen, "%s: %s", f->path, errno ? strerror(errno) : avro_strerror());
      rc = -1;
    }
  }
  if (rc == 0 && d->ready)
    rc = write_manifest(d, err, errlen);
  for (size_t i = 0; i < d->n; i++) {
    free(d->files[i].topic);
    free(d->files[i].path);
  }
  record_value_free(&d->rec);
  free(d->files);
  free(d->dir);
  free(d);
  return rc;
}

/* ---- the manifest ----------------------------------------------------------------- */

void kefu_archive_files_free(kefu_archive_file_t *files, size_t n) {
  for (size_t i = 0; files && i < n; i++) {
    free(files[i].path);
    free(files[i].topic);
  }
  free(files);
}

static int listed_order(const void *a, const void *b) {
  const kefu_archive_file_t *l = a, *r = b;
  int c = strcmp(l->topic, r->topic);
  return c ? c : (l->partition > r->partition) - (l->partition < r->partition);
}

static int read_entry(const char *dir, json_t *e, kefu_archive_file_t *f, char *why, size_t len) {
  const char *file = json_string_value(json_object_get(e, "file"));
  const char *topic = json_string_value(json_object_get(e, "topic"));
  json_t *part = json_object_get(e, "partition");
  const char *names[] = {"first_offset", "last_offset", "records"};
  int64_t *vals[] = {&f->first_offset, &f->last_offset, &f->records};
  struct stat st;

  if (!file || !*file || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, "..") || !topic ||
      !json_is_integer(part) || json_integer_value(part) < 0 ||
      json_integer_value(part) > INT32_MAX) {
    snprintf(why, len, "bad file entry (file, topic, partition)");
    return -1;
  }
  for (int i = 0; i < 3; i++) {
    json_t *v = json_object_get(e, names[i]);
    if (!json_is_integer(v)) {
      snprintf(why, len, "%s: %s is not an integer", file, names[i]);
      return -1;
    }
    *vals[i] = json_integer_value(v);
  }
  f->partition = (int32_t)json_integer_value(part);
  if (f->records < 0 || !(f->path = join(dir, file)) || !(f->topic = strdup(topic))) {
    snprintf(why, len, "%s: bad record count, or out of memory", file);
    return -1;
  }
  if (stat(f->path, &st) || !S_ISREG(st.st_mode)) {
    snprintf(why, len, "lists %s, which is missing", file);
    return -1;
  }
  return 0;
}

int kefu_archive_manifest_read(const char *dir, kefu_archive_file_t **files, size_t *nfiles,
                               char *err, size_t errlen) {
  char *path = join(dir, KEFU_ARCHIVE_MANIFEST), why[400] = "out of memory";
  json_error_t jerr;
  json_t *m = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &jerr) : NULL;
  json_t *list = json_object_get(m, "files");
  const char *format = json_string_value(json_object_get(m, "format"));
  kefu_archive_file_t *out = NULL;
  size_t n = 0;

  *files = NULL;
  *nfiles = 0;
  if (path && !m)
    snprintf(why, sizeof why, "%s", jerr.text);
  else if (m && (!format || strcmp(format, KEFU_ARCHIVE_FORMAT)))
    snprintf(why, sizeof why, "format %s, expected " KEFU_ARCHIVE_FORMAT,
             format ? format : "missing");
  else if (m && !json_is_array(list))
    snprintf(why, sizeof why, "no files array");
  if (!m || !format || strcmp(format, KEFU_ARCHIVE_FORMAT) || !json_is_array(list))
    goto fail;
  if (!(out = calloc(json_array_size(list) + 1, sizeof *out)))
    goto fail;
  for (n = 0; n < json_array_size(list); n++)
    if (read_entry(dir, json_array_get(list, n), &out[n], why, sizeof why)) {
      n++;
      goto fail;
    }
  qsort(out, n, sizeof *out, listed_order);
  for (size_t i = 1; i < n; i++)
    if (listed_order(&out[i - 1], &out[i]) == 0) {
      snprintf(why, sizeof why, "%s [%d] is listed twice", out[i].topic, (int)out[i].partition);
      goto fail;
    }
  *files = out;
  *nfiles = n;
  json_decref(m);
  free(path);
  return 0;
fail:
  snprintf(err, errlen, "%s/%s: %s", dir, KEFU_ARCHIVE_MANIFEST, why);
  kefu_archive_files_free(out, n);
  json_decref(m);
  free(path);
  return -1;
}
