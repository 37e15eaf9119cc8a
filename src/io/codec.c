/* The value codec (see codec.h): Avro binary <-> plain JSON, driven by avro-c's parsed
 * schemas.
 *
 * Why not avro-c's own reader and writer: its generic values cannot fill a reader's
 * defaults during schema resolution (SPEC 1.2), and its binary reader (1.11.1) trusts
 * lengths and counts from the wire: a random varint becomes a malloc of terabytes
 * (which AddressSanitizer aborts on), and 5 bytes make an array of 16 million nulls.
 * Both directions here are a single
 * recursive walk over the schema, straight between the wire bytes and jansson values,
 * so there is no intermediate avro_value_t to fill or copy, and no allocation beyond
 * the JSON itself (encode writes into the caller's reused buffer). The bytes are plain
 * Avro binary; tests/unit/test_codec.c checks them against avro-c's reader and writer.
 *
 * Decoding reads with the writer's schema (the id in the frame) and, beside it, the
 * topic's current schema: every record the writer lacks a field of gets the current
 * schema's default for it (SPEC 1.2: read fields by name, take kefu's defaults).
 * Untrusted input: every length, count, union branch and enum index is checked against
 * the bytes left and the schema before use, nesting is bounded, and strings must be
 * UTF-8 (JSON cannot carry anything else).
 *
 * Encoding writes what Java's and avro-c's encoders write: one block per non-empty
 * array or map, positive counts, and map entries in byte order of their keys, so one
 * record always gives the same bytes (replays compare bytes). */
#include "io/codec.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
/* Elements of a zero-byte type (null, an empty record) cost no input, so their count
 * cannot be checked against the bytes left; cap it instead. */
#define MAX_FREE_ITEMS 65536

/* All per-call state lives on the stack (ctx_t), so a codec holds only its table; it
 * stays an object so that caches can be added without touching callers. */
struct kefu_codec {
  kefu_schemas_t *schemas; /* borrowed */
};

/* State of one decode or encode call: where we are (for error messages) and how deep. */
typedef struct ctx {
  const kefu_schemas_t *schemas;
  char *errstr;
  size_t errlen;
  int decoding; /* errors read "avro: <what> at <path>" rather than "<path>: <what>" */
  int depth;
  size_t pathlen;
  char path[256];
  char scratch[8]; /* errstr when the caller gave none */
} ctx_t;

/* ---- field paths and errors ---------------------------------------------------- */

static size_t path_push(ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the path; returns the length to restore afterwards. */
static size_t path_push(ctx_t *x, const char *fmt, ...) {
  size_t old = x->pathlen;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(x->path + old, sizeof x->path - old, fmt, ap);
  va_end(ap);
  if (n > 0)
    x->pathlen = old + (size_t)n < sizeof x->path ? old + (size_t)n : sizeof x->path - 1;
  return old;
}

static size_t path_field(ctx_t *x, const char *name) {
  return path_push(x, x->pathlen ? ".%s" : "%s", name);
}

static void path_pop(ctx_t *x, size_t len) {
  x->pathlen = len;
  x->path[len] = '\0';
}

static int fail(ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(ctx_t *x, const char *fmt, ...) {
  char what[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (x->decoding)
    snprintf(x->errstr, x->errlen, "avro: %s%s%s", what, x->pathlen ? " at " : "", x->path);
  else if (x->pathlen)
    snprintf(x->errstr, x->errlen, "%s: %s", x->path, what);
  else
    snprintf(x->errstr, x->errlen, "%s", what);
  return -1;
}

/* ---- schema helpers ------------------------------------------------------------- */

static avro_schema_t resolve(avro_schema_t s) {
  while (s && is_avro_link(s))
    s = avro_schema_link_target(s);
  return s;
}

static const char *avro_kind(avro_schema_t s) {
  switch (avro_typeof(s)) {
  case AVRO_NULL: return "null";
  case AVRO_BOOLEAN: return "boolean";
  case AVRO_INT32: return "int";
  case AVRO_INT64: return "long";
  case AVRO_FLOAT: return "float";
  case AVRO_DOUBLE: return "double";
  case AVRO_STRING: return "string";
  case AVRO_BYTES: return "bytes";
  case AVRO_FIXED: return "fixed";
  case AVRO_ENUM: return "enum symbol";
  case AVRO_ARRAY: return "array";
  case AVRO_MAP: return "object (map)";
  case AVRO_RECORD: return "object";
  case AVRO_UNION: return "union";
  default: return "?";
  }
}

static const char *json_kind(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "real";
  case JSON_TRUE: return "true";
  case JSON_FALSE: return "false";
  default: return "null";
  }
}

/* The type in the current schema that corresponds to the writer's type @p w, found
 * through a union if the current schema made the value optional; NULL when none. */
static avro_schema_t counterpart(avro_schema_t cur, avro_schema_t w) {
  cur = resolve(cur);
  if (!cur)
    return NULL;
  if (avro_typeof(cur) == avro_typeof(w))
    return cur;
  if (is_avro_union(cur))
    for (size_t i = 0; i < avro_schema_union_size(cur); i++) {
      avro_schema_t b = resolve(avro_schema_union_branch(cur, (int)i));
      if (b && avro_typeof(b) == avro_typeof(w))
        return b;
    }
  return NULL;
}

/* Fewest bytes a value of @p s takes on the wire (0 for null and empty records). */
static size_t min_size(avro_schema_t s, int depth) {
  s = resolve(s);
  if (!s || depth > 8)
    return 0;
  switch (avro_typeof(s)) {
  case AVRO_NULL: return 0;
  case AVRO_FLOAT: return 4;
  case AVRO_DOUBLE: return 8;
  case AVRO_FIXED: return (size_t)avro_schema_fixed_size(s);
  case AVRO_RECORD: {
    size_t n = 0;
    for (size_t i = 0; i < avro_schema_record_size(s) && n < 16; i++)
      n += min_size(avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
    return n;
  }
  default: return 1;
  }
}

/* ---- decoding: Avro binary -> JSON -------------------------------------------- */

typedef struct reader {
  const uint8_t *p, *end;
} reader_t;

static int dec_value(ctx_t *x, reader_t *r, avro_schema_t w, avro_schema_t cur, json_t **out);

static int rd_long(ctx_t *x, reader_t *r, int64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    if (r->p == r->end)
      return fail(x, "truncated");
    uint8_t b = *r->p++;
    if (i == 9 && b > 1)
      break;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1); /* zigzag */
      return 0;
    }
  }
  return fail(x, "varint longer than 64 bits");
}

/* A byte length that must fit in what is left of the buffer. */
static int rd_len(ctx_t *x, reader_t *r, size_t *out) {
  int64_t n;
  if (rd_long(x, r, &n))
    return -1;
  if (n < 0)
    return fail(x, "negative length %" PRId64, n);
  if ((uint64_t)n > (uint64_t)(r->end - r->p))
    return fail(x, "length %" PRId64 " exceeds the %zu bytes left", n, (size_t)(r->end - r->p));
  *out = (size_t)n;
  return 0;
}

static int rd_raw(ctx_t *x, reader_t *r, size_t n, const uint8_t **out) {
  if ((size_t)(r->end - r->p) < n)
    return fail(x, "truncated");
  *out = r->p;
  r->p += n;
  return 0;
}

static uint64_t le_bytes(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* Avro's JSON form of bytes and fixed: one code point U+0000..U+00FF per byte. */
static json_t *latin1_string(const uint8_t *p, size_t n) {
  char *u = malloc(2 * n + 1);
  size_t k = 0;
  if (!u)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < 0x80) {
      u[k++] = (char)p[i];
    } else {
      u[k++] = (char)(0xc0 | p[i] >> 6);
      u[k++] = (char)(0x80 | (p[i] & 0x3f));
    }
  }
  json_t *s = json_stringn(u, k);
  free(u);
  return s;
}

/* float and double: IEEE 754, little-endian. JSON has no NaN or infinity. */
static int dec_real(ctx_t *x, reader_t *r, avro_schema_t w, json_t **out) {
  const uint8_t *p = NULL;
  double d;
  if (is_avro_float(w)) {
    float f;
    uint32_t bits;
    if (rd_raw(x, r, 4, &p))
      return -1;
    bits = (uint32_t)le_bytes(p, 4);
    memcpy(&f, &bits, sizeof f);
    d = f;
  } else {
    uint64_t bits;
    if (rd_raw(x, r, 8, &p))
      return -1;
    bits = le_bytes(p, 8);
    memcpy(&d, &bits, sizeof d);
  }
  if (!isfinite(d))
    return fail(x, "%s is not finite", avro_kind(w));
  *out = json_real(d);
  return 0;
}

static int dec_scalar(ctx_t *x, reader_t *r, avro_schema_t w, json_t **out) {
  const uint8_t *p = NULL;
  int64_t v = 0;
  size_t n = 0;
  switch (avro_typeof(w)) {
  case AVRO_NULL: *out = json_null(); return 0;
  case AVRO_BOOLEAN:
    if (rd_raw(x, r, 1, &p))
      return -1;
    if (*p > 1)
      return fail(x, "boolean byte 0x%02x", *p);
    *out = json_boolean(*p);
    return 0;
  case AVRO_INT32:
  case AVRO_INT64:
    if (rd_long(x, r, &v))
      return -1;
    if (is_avro_int32(w) && (v < INT32_MIN || v > INT32_MAX))
      return fail(x, "int %" PRId64 " out of range", v);
    *out = json_integer((json_int_t)v);
    return 0;
  case AVRO_FLOAT:
  case AVRO_DOUBLE: return dec_real(x, r, w, out);
  case AVRO_STRING:
    if (rd_len(x, r, &n) || rd_raw(x, r, n, &p))
      return -1;
    if (!(*out = json_stringn((const char *)p, n)))
      return fail(x, "string is not UTF-8");
    return 0;
  case AVRO_BYTES:
  case AVRO_FIXED:
    if (is_avro_fixed(w))
      n = (size_t)avro_schema_fixed_size(w);
    else if (rd_len(x, r, &n))
      return -1;
    if (rd_raw(x, r, n, &p))
      return -1;
    *out = latin1_string(p, n);
    return 0;
  default: return fail(x, "unsupported type");
  }
}

static int dec_enum(ctx_t *x, reader_t *r, avro_schema_t w, json_t **out) {
  int64_t i;
  if (rd_long(x, r, &i))
    return -1;
  if (i < 0 || i >= avro_schema_enum_number_of_symbols(w))
    return fail(x, "enum index %" PRId64 " out of range", i);
  *out = json_string(avro_schema_enum_get(w, (int)i));
  return 0;
}

static int dec_union(ctx_t *x, reader_t *r, avro_schema_t w, avro_schema_t cur, json_t **out) {
  int64_t i;
  if (rd_long(x, r, &i))
    return -1;
  if (i < 0 || (uint64_t)i >= avro_schema_union_size(w))
    return fail(x, "union branch %" PRId64 " out of range", i);
  return dec_value(x, r, avro_schema_union_branch(w, (int)i), cur, out);
}

/* Reads the next block header of an array or map: its item count (0 at the end). The
 * optional byte size of a negative-count block is read and ignored. */
static int rd_block(ctx_t *x, reader_t *r, size_t item_min, size_t *total, size_t *count) {
  int64_t n, bytes;
  if (rd_long(x, r, &n))
    return -1;
  if (n == INT64_MIN)
    return fail(x, "bad block count");
  if (n < 0) {
    if (rd_long(x, r, &bytes))
      return -1;
    n = -n;
  }
  uint64_t left = (uint64_t)(r->end - r->p);
  if (item_min ? (uint64_t)n > left / item_min : *total + (uint64_t)n > MAX_FREE_ITEMS)
    return fail(x, "block of %" PRId64 " items exceeds the data", n);
  *count = (size_t)n;
  *total += (size_t)n;
  return 0;
}

static int dec_array(ctx_t *x, reader_t *r, avro_schema_t w, avro_schema_t cur, json_t **out) {
  avro_schema_t items = avro_schema_array_items(w);
  avro_schema_t cur_items = cur ? avro_schema_array_items(cur) : NULL;
  size_t item_min = min_size(items, 0), total = 0, count, index = 0;
  json_t *arr = json_array(), *v;

  if (!arr)
    return fail(x, "out of memory");
  for (;;) {
    if (rd_block(x, r, item_min, &total, &count))
      goto fail;
    if (count == 0)
      break;
    for (size_t k = 0; k < count; k++, index++) {
      size_t mark = path_push(x, "[%zu]", index);
      if (dec_value(x, r, items, cur_items, &v) || json_array_append_new(arr, v))
        goto fail;
      path_pop(x, mark);
    }
  }
  *out = arr;
  return 0;
fail:
  json_decref(arr);
  return -1;
}

typedef struct map_entry {
  char *key;
  json_t *value;
  size_t order; /* position on the wire: of repeated keys the last wins, as in Java */
} map_entry_t;

static int entry_cmp(const void *a, const void *b) {
  const map_entry_t *l = a, *r = b;
  int c = strcmp(l->key, r->key);
  return c ? c : (l->order > r->order) - (l->order < r->order);
}

static int dec_map_entry(ctx_t *x, reader_t *r, avro_schema_t values, avro_schema_t cur_values,
                         map_entry_t *e) {
  const uint8_t *p = NULL;
  size_t n = 0;
  if (rd_len(x, r, &n) || rd_raw(x, r, n, &p))
    return -1;
  json_t *probe = json_stringn((const char *)p, n); /* validates UTF-8 */
  int text = probe && !memchr(p, 0, n);
  json_decref(probe);
  if (!text)
    return fail(x, "map key is not UTF-8 text");
  if (!(e->key = strndup((const char *)p, n)))
    return fail(x, "out of memory");
  size_t mark = path_push(x, ".%s", e->key);
  int rc = dec_value(x, r, values, cur_values, &e->value);
  path_pop(x, mark);
  return rc;
}

/* Map entries are collected first and inserted in key order, whatever order the writer
 * used, so the JSON form of a map is always sorted (SPEC 1.2). */
static int dec_map(ctx_t *x, reader_t *r, avro_schema_t w, avro_schema_t cur, json_t **out) {
  avro_schema_t values = avro_schema_map_values(w);
  avro_schema_t cur_values = cur ? avro_schema_map_values(cur) : NULL;
  size_t item_min = 1 + min_size(values, 0), total = 0, count, n = 0;
  map_entry_t *e = NULL;
  json_t *obj = NULL;
  int rc = -1;

  for (;;) {
    if (rd_block(x, r, item_min, &total, &count))
      goto done;
    if (count == 0)
      break;
    map_entry_t *grown = realloc(e, total * sizeof *e);
    if (!grown) {
      fail(x, "out of memory");
      goto done;
    }
    e = grown;
    for (size_t k = 0; k < count; k++, n++) {
      e[n] = (map_entry_t){.order = n};
      if (dec_map_entry(x, r, values, cur_values, &e[n])) {
        n++;
        goto done;
      }
    }
  }
  if (n > 1)
    qsort(e, n, sizeof *e, entry_cmp);
  if (!(obj = json_object())) {
    fail(x, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    json_object_set_new(obj, e[i].key, e[i].value);
    e[i].value = NULL;
  }
  *out = obj;
  rc = 0;
done:
  for (size_t i = 0; i < n; i++) {
    free(e[i].key);
    json_decref(e[i].value);
  }
  free(e);
  return rc;
}

/* Fields of the current schema's record @p cur that the writer's record lacked get
 * their defaults. */
static int fill_defaults(ctx_t *x, json_t *obj, avro_schema_t cur) {
  for (size_t i = 0; i < avro_schema_record_size(cur); i++) {
    const char *name = avro_schema_record_field_name(cur, (int)i);
    if (json_object_get(obj, name))
      continue;
    const json_t *def = kefu_schemas_field_default(x->schemas, cur, i);
    if (!def)
      return fail(x, "writer's schema lacks field %s, which has no default", name);
    if (json_object_set_new(obj, name, json_deep_copy(def)))
      return fail(x, "out of memory");
  }
  return 0;
}

static int dec_record(ctx_t *x, reader_t *r, avro_schema_t w, avro_schema_t cur, json_t **out) {
  json_t *obj = json_object(), *v;

  if (!obj)
    return fail(x, "out of memory");
  for (size_t i = 0; i < avro_schema_record_size(w); i++) {
    const char *name = avro_schema_record_field_name(w, (int)i);
    int ci = cur ? avro_schema_record_field_get_index(cur, name) : -1;
    avro_schema_t cur_type = ci >= 0 ? avro_schema_record_field_get_by_index(cur, ci) : NULL;
    size_t mark = path_field(x, name);
    if (dec_value(x, r, avro_schema_record_field_get_by_index(w, (int)i), cur_type, &v) ||
        json_object_set_new(obj, name, v))
      goto fail;
    path_pop(x, mark);
  }
  /* Same schema: nothing can be missing. */
  if (cur && cur != w && fill_defaults(x, obj, cur))
    goto fail;
  *out = obj;
  return 0;
fail:
  json_decref(obj);
  return -1;
}

static int dec_value(ctx_t *x, reader_t *r, avro_schema_t w, avro_schema_t cur, json_t **out) {
  int rc;
  *out = NULL;
  w = resolve(w);
  if (!w)
    return fail(x, "unresolved schema");
  if (++x->depth > MAX_DEPTH)
    return fail(x, "nesting deeper than %d", MAX_DEPTH);
  /* A union passes the current type on untouched: its branch finds its own match. */
  if (!is_avro_union(w))
    cur = counterpart(cur, w);
  switch (avro_typeof(w)) {
  case AVRO_RECORD: rc = dec_record(x, r, w, cur, out); break;
  case AVRO_ARRAY: rc = dec_array(x, r, w, cur, out); break;
  case AVRO_MAP: rc = dec_map(x, r, w, cur, out); break;
  case AVRO_UNION: rc = dec_union(x, r, w, cur, out); break;
  case AVRO_ENUM: rc = dec_enum(x, r, w, out); break;
  default: rc = dec_scalar(x, r, w, out); break;
  }
  x->depth--;
  if (rc == 0 && !*out)
    rc = fail(x, "out of memory");
  return rc;
}

/* ---- encoding: JSON -> Avro binary -------------------------------------------- */

typedef struct writer {
  char **buf;
  size_t *cap;
  size_t len;
} writer_t;

static int enc_value(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j);

static int wr_reserve(ctx_t *x, writer_t *w, size_t n) {
  if (*w->cap - w->len >= n && *w->buf)
    return 0;
  size_t cap = *w->cap ? *w->cap : 256;
  while (cap - w->len < n)
    cap *= 2;
  char *grown = realloc(*w->buf, cap);
  if (!grown)
    return fail(x, "out of memory");
  *w->buf = grown;
  *w->cap = cap;
  return 0;
}

static int wr_raw(ctx_t *x, writer_t *w, const void *p, size_t n) {
  if (wr_reserve(x, w, n))
    return -1;
  if (n)
    memcpy(*w->buf + w->len, p, n);
  w->len += n;
  return 0;
}

static int wr_long(ctx_t *x, writer_t *w, int64_t v) {
  uint8_t b[10];
  size_t n = 0;
  uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
  while (z > 0x7f) {
    b[n++] = (uint8_t)(z & 0x7f) | 0x80;
    z >>= 7;
  }
  b[n++] = (uint8_t)z;
  return wr_raw(x, w, b, n);
}

static int wr_le(ctx_t *x, writer_t *w, uint64_t bits, int n) {
  uint8_t b[8];
  for (int i = 0; i < n; i++)
    b[i] = (uint8_t)(bits >> (8 * i));
  return wr_raw(x, w, b, (size_t)n);
}

static int mismatch(ctx_t *x, avro_schema_t s, const json_t *j) {
  return fail(x, "expected %s, got %s", avro_kind(s), json_kind(j));
}

/* Bytes and fixed from Avro's JSON form: code points U+0000..U+00FF, one per byte. */
static int enc_latin1(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  const unsigned char *p = (const unsigned char *)json_string_value(j);
  size_t n = json_string_length(j), k = 0;
  uint8_t *out = malloc(n + 1);
  int rc = -1;
  if (!out)
    return fail(x, "out of memory");
  for (size_t i = 0; i < n; i++, k++) {
    if (p[i] < 0x80) {
      out[k] = p[i];
    } else if ((p[i] == 0xc2 || p[i] == 0xc3) && i + 1 < n) {
      out[k] = (uint8_t)((p[i] & 0x03) << 6 | (p[i + 1] & 0x3f));
      i++;
    } else {
      fail(x, "bytes must be code points U+0000..U+00FF");
      goto done;
    }
  }
  if (is_avro_fixed(s) && (int64_t)k != avro_schema_fixed_size(s))
    fail(x, "fixed takes %" PRId64 " bytes, got %zu", avro_schema_fixed_size(s), k);
  else if ((is_avro_fixed(s) || wr_long(x, w, (int64_t)k) == 0) && wr_raw(x, w, out, k) == 0)
    rc = 0;
done:
  free(out);
  return rc;
}

/* float and double: IEEE 754, little-endian; JSON integers are taken too. */
static int enc_real(ctx_t *x, writer_t *w, avro_schema_t s, double d) {
  if (is_avro_double(s)) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return wr_le(x, w, bits, 8);
  }
  if (fabs(d) > FLT_MAX)
    return fail(x, "%g is out of the float range", d);
  float f = (float)d;
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return wr_le(x, w, bits, 4);
}

static int enc_scalar(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  switch (avro_typeof(s)) {
  case AVRO_NULL: return json_is_null(j) ? 0 : mismatch(x, s, j);
  case AVRO_BOOLEAN: {
    uint8_t b = json_is_true(j);
    return json_is_boolean(j) ? wr_raw(x, w, &b, 1) : mismatch(x, s, j);
  }
  case AVRO_INT32:
  case AVRO_INT64: {
    if (!json_is_integer(j))
      return mismatch(x, s, j);
    json_int_t v = json_integer_value(j);
    if (is_avro_int32(s) && (v < INT32_MIN || v > INT32_MAX))
      return fail(x, "%" JSON_INTEGER_FORMAT " is out of the int range", v);
    return wr_long(x, w, (int64_t)v);
  }
  case AVRO_FLOAT:
  case AVRO_DOUBLE:
    return json_is_number(j) ? enc_real(x, w, s, json_number_value(j)) : mismatch(x, s, j);
  case AVRO_STRING: {
    if (!json_is_string(j))
      return mismatch(x, s, j);
    size_t n = json_string_length(j);
    return wr_long(x, w, (int64_t)n) || wr_raw(x, w, json_string_value(j), n) ? -1 : 0;
  }
  case AVRO_BYTES:
  case AVRO_FIXED: return json_is_string(j) ? enc_latin1(x, w, s, j) : mismatch(x, s, j);
  default: return fail(x, "unsupported type");
  }
}

static int enc_enum(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  if (!json_is_string(j))
    return mismatch(x, s, j);
  int i = avro_schema_enum_get_by_name(s, json_string_value(j));
  if (i < 0)
    return fail(x, "unknown symbol %s", json_string_value(j));
  return wr_long(x, w, i);
}

static int json_fits(avro_schema_t s, const json_t *j) {
  switch (avro_typeof(s)) {
  case AVRO_NULL: return json_is_null(j);
  case AVRO_BOOLEAN: return json_is_boolean(j);
  case AVRO_INT32:
  case AVRO_INT64: return json_is_integer(j);
  case AVRO_FLOAT:
  case AVRO_DOUBLE: return json_is_number(j);
  case AVRO_STRING:
  case AVRO_BYTES:
  case AVRO_FIXED:
  case AVRO_ENUM: return json_is_string(j);
  case AVRO_ARRAY: return json_is_array(j);
  case AVRO_MAP:
  case AVRO_RECORD: return json_is_object(j);
  default: return 0;
  }
}

/* Plain JSON has no union wrapper: the value picks the first branch of its JSON type. */
static int enc_union(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  for (size_t i = 0; i < avro_schema_union_size(s); i++) {
    avro_schema_t b = resolve(avro_schema_union_branch(s, (int)i));
    if (b && json_fits(b, j))
      return wr_long(x, w, (int64_t)i) || enc_value(x, w, b, j) ? -1 : 0;
  }
  return fail(x, "no branch of the union takes a JSON %s", json_kind(j));
}

static int enc_array(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  size_t n = json_array_size(j);
  if (!json_is_array(j) && !json_is_null(j))
    return mismatch(x, s, j);
  if (n && wr_long(x, w, (int64_t)n))
    return -1;
  for (size_t i = 0; i < n; i++) {
    size_t mark = path_push(x, "[%zu]", i);
    if (enc_value(x, w, avro_schema_array_items(s), json_array_get(j, i)))
      return -1;
    path_pop(x, mark);
  }
  return wr_long(x, w, 0);
}

static int key_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int enc_map(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  size_t n = json_object_size(j), i = 0;
  const char **keys, *k;
  json_t *v;
  int rc = -1;

  if (!json_is_object(j) && !json_is_null(j))
    return mismatch(x, s, j);
  if (n == 0)
    return wr_long(x, w, 0);
  if (!(keys = malloc(n * sizeof *keys)))
    return fail(x, "out of memory");
  json_object_foreach((json_t *)j, k, v) {
    keys[i++] = k;
  }
  qsort(keys, n, sizeof *keys, key_cmp);
  if (wr_long(x, w, (int64_t)n))
    goto done;
  for (i = 0; i < n; i++) {
    size_t mark = path_push(x, ".%s", keys[i]);
    size_t klen = strlen(keys[i]);
    if (wr_long(x, w, (int64_t)klen) || wr_raw(x, w, keys[i], klen) ||
        enc_value(x, w, avro_schema_map_values(s), json_object_get(j, keys[i])))
      goto done;
    path_pop(x, mark);
  }
  rc = wr_long(x, w, 0);
done:
  free(keys);
  return rc;
}

/* Whether JSON null is a value of @p s itself (so it must not be replaced by the
 * field's default): null, a union with null, or an array or map (null reads as empty). */
static int takes_null(avro_schema_t s) {
  s = resolve(s);
  if (!s)
    return 0;
  if (is_avro_union(s)) {
    for (size_t i = 0; i < avro_schema_union_size(s); i++)
      if (is_avro_null(resolve(avro_schema_union_branch(s, (int)i))))
        return 1;
    return 0;
  }
  return is_avro_null(s) || is_avro_array(s) || is_avro_map(s);
}

static int check_unknown_fields(ctx_t *x, avro_schema_t s, const json_t *j) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    if (avro_schema_record_field_get_index(s, k) < 0) {
      path_field(x, k);
      snprintf(x->errstr, x->errlen, "unknown field %s", x->path);
      return -1;
    }
  }
  return 0;
}

static int enc_record(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  if (!json_is_object(j))
    return mismatch(x, s, j);
  if (check_unknown_fields(x, s, j))
    return -1;
  for (size_t i = 0; i < avro_schema_record_size(s); i++) {
    const char *name = avro_schema_record_field_name(s, (int)i);
    avro_schema_t type = avro_schema_record_field_get_by_index(s, (int)i);
    const json_t *v = json_object_get(j, name);
    size_t mark = path_field(x, name);
    /* Absent, or null where null is not a value: SPEC 1.2 treats both as "not given". */
    if (!v || (json_is_null(v) && !takes_null(type))) {
      const json_t *def = kefu_schemas_field_default(x->schemas, s, i);
      if (!def)
        return fail(x, "%s", v ? "null for a required field" : "missing required field");
      v = def;
    }
    if (enc_value(x, w, type, v))
      return -1;
    path_pop(x, mark);
  }
  return 0;
}

static int enc_value(ctx_t *x, writer_t *w, avro_schema_t s, const json_t *j) {
  int rc;
  s = resolve(s);
  if (!s)
    return fail(x, "unresolved schema");
  if (++x->depth > MAX_DEPTH)
    return fail(x, "nesting deeper than %d", MAX_DEPTH);
  switch (avro_typeof(s)) {
  case AVRO_RECORD: rc = enc_record(x, w, s, j); break;
  case AVRO_ARRAY: rc = enc_array(x, w, s, j); break;
  case AVRO_MAP: rc = enc_map(x, w, s, j); break;
  case AVRO_UNION: rc = enc_union(x, w, s, j); break;
  case AVRO_ENUM: rc = enc_enum(x, w, s, j); break;
  default: rc = enc_scalar(x, w, s, j); break;
  }
  x->depth--;
  return rc;
}

/* ---- public API --------------------------------------------------------------- */

kefu_codec_t *kefu_codec_new(kefu_schemas_t *schemas) {
  kefu_codec_t *c = calloc(1, sizeof *c);
  if (c)
    c->schemas = schemas;
  return c;
}

void kefu_codec_destroy(kefu_codec_t *c) {
  free(c);
}

static void ctx_init(ctx_t *x, const kefu_codec_t *c, char *errstr, size_t errlen) {
  memset(x, 0, sizeof *x);
  x->schemas = c->schemas;
  x->errstr = errstr && errlen ? errstr : x->scratch;
  x->errlen = errstr && errlen ? errlen : sizeof x->scratch;
  x->errstr[0] = '\0';
}

int kefu_codec_decode(kefu_codec_t *c, kefu_topic_t topic, const void *buf, size_t len,
                      json_t **out, char *errstr, size_t errlen) {
  const uint8_t *b = buf;
  kefu_topic_t owner = KEFU_TOPIC_NONE;
  ctx_t x;

  *out = NULL;
  ctx_init(&x, c, errstr, errlen);
  if (!buf || len < KEFU_CODEC_HEADER_LEN)
    return fail(&x, "bad framing: %zu bytes, need at least %d", len, KEFU_CODEC_HEADER_LEN);
  if (b[0] != 0)
    return fail(&x, "bad framing: magic byte 0x%02x", b[0]);
  int32_t id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]);
  avro_schema_t w = kefu_schemas_by_id(c->schemas, id, &owner);
  if (!w)
    return fail(&x, "unknown schema id %d", (int)id);
  if (owner != topic)
    return fail(&x, "schema id %d belongs to topic %s", (int)id, kefu_topic_name(owner));

  reader_t r = {b + KEFU_CODEC_HEADER_LEN, b + len};
  x.decoding = 1;
  if (dec_value(&x, &r, w, kefu_schemas_current(c->schemas, topic), out))
    return -1;
  if (r.p != r.end) {
    json_decref(*out);
    *out = NULL;
    return fail(&x, "%zu trailing bytes", (size_t)(r.end - r.p));
  }
  return 0;
}

int kefu_codec_encode(kefu_codec_t *c, kefu_topic_t topic, const json_t *rec, char **buf,
                      size_t *cap, size_t *len, char *errstr, size_t errlen) {
  int32_t id = kefu_schemas_current_id(c->schemas, topic);
  avro_schema_t s = id < 0 ? NULL : kefu_schemas_by_id(c->schemas, id, NULL);
  writer_t w = {buf, cap, 0};
  uint8_t head[KEFU_CODEC_HEADER_LEN] = {0, (uint8_t)((uint32_t)id >> 24),
                                         (uint8_t)((uint32_t)id >> 16),
                                         (uint8_t)((uint32_t)id >> 8), (uint8_t)id};
  ctx_t x;

  ctx_init(&x, c, errstr, errlen);
  if ((int)topic < 0 || topic >= KEFU_T__COUNT)
    return fail(&x, "unknown topic %d", (int)topic);
  if (!s)
    return fail(&x, "topic %s has no schema", kefu_topic_name(topic));
  if (!json_is_object(rec))
    return fail(&x, "a record must be a JSON object, got %s", rec ? json_kind(rec) : "nothing");
  if (wr_raw(&x, &w, head, sizeof head) || enc_value(&x, &w, s, rec))
    return -1;
  *len = w.len;
  return 0;
}

/* ---- printing JSON ------------------------------------------------------------ */

typedef struct sbuf {
  char **buf;
  size_t *cap;
  size_t len;
  int oom;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (*b->cap - b->len < n + 1 || !*b->buf) {
    size_t cap = *b->cap ? *b->cap : 256;
    while (cap - b->len < n + 1)
      cap *= 2;
    char *grown = realloc(*b->buf, cap);
    if (!grown) {
      b->oom = 1;
      return;
    }
    *b->buf = grown;
    *b->cap = cap;
  }
  memcpy(*b->buf + b->len, s, n);
  b->len += n;
  (*b->buf)[b->len] = '\0';
}

/* Escapes as jansson does by default: quotes, backslash and control characters; UTF-8
 * passes through. */
static void put_string(sbuf_t *b, const char *s, size_t n) {
  size_t run = 0;
  sb_put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\')
      continue;
    sb_put(b, s + run, i - run);
    run = i + 1;
    char esc[7] = {'\\', (char)ch, 0};
    switch (ch) {
    case '"':
    case '\\': break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default:
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      sb_put(b, esc, 6);
      continue;
    }
    sb_put(b, esc, 2);
  }
  sb_put(b, s + run, n - run);
  sb_put(b, "\"", 1);
}

/* The shortest decimal digits of @p d (finite, >= 0) that read back as @p d: the digits
 * without a dot in @p dig, the decimal exponent of the first one in @p *exp; returns the
 * number of digits. */
static int shortest_digits(double d, char dig[20], int *exp) {
  char sci[40];
  int p, nd = 0;
  for (p = 0; p <= 16; p++) { /* %.16e (17 digits) always reads back exactly */
    snprintf(sci, sizeof sci, "%.*e", p, d);
    if (p == 16 || strtod(sci, NULL) == d)
      break;
  }
  const char *s = sci;
  for (; *s && *s != 'e'; s++)
    if (*s != '.')
      dig[nd++] = *s;
  *exp = atoi(s + 1);
  return nd;
}

/* Shortest round-trip digits laid out as Python's repr() does (positional for exponents
 * -4..15, else d.ddde+XX; integral values keep ".0"), so kefu prints doubles as the
 * platform's Python tools and the conformance files do. */
static void put_real(sbuf_t *b, double d) {
  char dig[20] = {0}, out[64];
  int exp, k = 0;

  if (signbit(d))
    out[k++] = '-';
  int nd = shortest_digits(fabs(d), dig, &exp);
  if (exp >= 16 || exp < -4) {
    out[k++] = dig[0];
    if (nd > 1)
      out[k++] = '.';
    for (int i = 1; i < nd; i++)
      out[k++] = dig[i];
    k += snprintf(out + k, sizeof out - (size_t)k, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
  } else if (exp >= 0) {
    for (int i = 0; i <= exp; i++)
      out[k++] = i < nd ? dig[i] : '0';
    out[k++] = '.';
    for (int i = exp + 1; i < nd; i++)
      out[k++] = dig[i];
    if (nd <= exp + 1)
      out[k++] = '0';
  } else {
    out[k++] = '0';
    out[k++] = '.';
    for (int i = 0; i < -exp - 1; i++)
      out[k++] = '0';
    for (int i = 0; i < nd; i++)
      out[k++] = dig[i];
  }
  sb_put(b, out, (size_t)k);
}

static void put_value(sbuf_t *b, const json_t *v, int depth) {
  char tmp[32];
  size_t i = 0;
  const char *k;
  json_t *item;

  if (depth > 2048) {
    b->oom = 1;
    return;
  }
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    sb_put(b, "{", 1);
    json_object_foreach((json_t *)v, k, item) {
      if (i++)
        sb_put(b, ",", 1);
      put_string(b, k, strlen(k));
      sb_put(b, ":", 1);
      put_value(b, item, depth + 1);
    }
    sb_put(b, "}", 1);
    break;
  case JSON_ARRAY:
    sb_put(b, "[", 1);
    json_array_foreach(v, i, item) {
      if (i)
        sb_put(b, ",", 1);
      put_value(b, item, depth + 1);
    }
    sb_put(b, "]", 1);
    break;
  case JSON_STRING: put_string(b, json_string_value(v), json_string_length(v)); break;
  case JSON_INTEGER:
    snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    sb_put(b, tmp, strlen(tmp));
    break;
  case JSON_REAL: put_real(b, json_real_value(v)); break;
  case JSON_TRUE: sb_put(b, "true", 4); break;
  case JSON_FALSE: sb_put(b, "false", 5); break;
  default: sb_put(b, "null", 4); break;
  }
}

int kefu_json_dumpb_record(const json_t *rec, char **buf, size_t *cap) {
  sbuf_t b = {buf, cap, 0, 0};
  if (!rec)
    return -1;
  put_value(&b, rec, 0);
  return b.oom ? -1 : (int)b.len;
}

int kefu_json_dumps_record(const json_t *rec, char **out) {
  size_t cap = 0;
  *out = NULL;
  int n = kefu_json_dumpb_record(rec, out, &cap);
  if (n < 0) {
    free(*out);
    *out = NULL;
  }
  return n;
}
