/* The value codec (see codec.h): Confluent framing and Avro binary <-> plain JSON.
 *
 * Who does what. avro-c reads and writes the Avro binary: a frame's datum is read with
 * avro_value_read() into a generic value of the writer's schema, and a record is
 * written with avro_value_write() from a generic value of the topic's current schema.
 * Each codec makes one generic value per schema the first time it meets the schema and
 * reuses it (avro_value_reset) for every later record, as it reuses one memory reader
 * and one memory writer, so nothing is parsed or built per event. This file does the
 * rest: the 5-byte frame, the conversion between generic values and kefu's plain JSON
 * (by field name; enums as symbols; unions as the bare value; maps in key order), the
 * defaults avro-c cannot supply (it drops field defaults when it parses a schema, and
 * its schema resolution cannot fill them; SPEC 1.2), kefu's checks and error messages,
 * and the validator below.
 *
 * Why a validator runs before avro-c reads a frame: avro_value_read (1.11.1) trusts the
 * wire. It mallocs a string's or bytes' length before checking it against the data (a
 * random varint asks for terabytes, a negative one wraps), loops over array and map
 * counts as given (5 bytes make 16 million nulls), checks a union branch only for being
 * negative (a large one indexes past avro-c's table of branches) and an enum index not
 * at all, and leaks what it allocated when a read fails half-way. So every frame first
 * goes through validate_datum(): a walk over the writer's schema that allocates nothing
 * and checks every length, count, enum index and union branch against the bytes left
 * and the schema, bounds nesting and the number of zero-byte items (null, empty
 * records) per datum, requires UTF-8 strings and map keys (JSON carries nothing else),
 * and requires the datum to fill the frame exactly. A frame that passes cannot make
 * avro-c fail (short of memory), and what avro-c allocates for it is a small multiple
 * of its size plus at most MAX_FREE_ITEMS zero-byte items. The validator also names
 * what is wrong and where: "avro: <what> at <field path>". tests/unit/test_codec.c
 * feeds it random and hostile frames and watches avro-c's allocations.
 *
 * Decoding uses the writer's schema (the id in the frame) for the bytes and, beside it,
 * the topic's current schema: every record the writer lacks a field of gets the current
 * schema's default for it (SPEC 1.2: read fields by name, take kefu's defaults).
 *
 * Encoding sets the generic value field by field from the JSON (unknown fields, unknown
 * symbols, out-of-range numbers and missing fields without a default are errors) and
 * lets avro-c write it: one block per non-empty array or map, positive counts, and map
 * entries in the order they were added, which is byte order of their keys, so one
 * record always gives the same bytes (replays compare bytes).
 *
 * Field paths cost a little on every field, so the walks run without them and, when
 * one fails, run once more with them to name the field (failures are rare: the DLQ). */
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
/* Items of a zero-byte type (null, an empty record) cost no input, so their number
 * cannot be checked against the bytes left; it is capped per datum instead. */
#define MAX_FREE_ITEMS 65536

/* What the flat-record encoder needs of a record schema's field, looked up once. */
typedef struct field_info {
  const char *name; /* avro-c's */
  avro_schema_t type;
  int takes_null;
} field_info_t;

/* A flat record's field name (a static string: its address is the key, its text is
 * checked) -> the schema's field index. */
#define NAME_SLOTS 128
typedef struct name_slot {
  const char *name;
  int index;
} name_slot_t;

/* avro-c's generic value for one schema, made on first use and reused per record; for
 * a record schema encoded from flat records, its fields (made on first such use). */
typedef struct cached_value {
  avro_schema_t schema; /* borrowed from the table */
  avro_value_iface_t *iface;
  avro_value_t value;
  field_info_t *fields; /* owned; NULL until a flat record is encoded */
  size_t nfields;
  name_slot_t *names; /* owned, NAME_SLOTS of them */
} cached_value_t;

struct kefu_codec {
  kefu_schemas_t *schemas; /* borrowed */
  cached_value_t *values;
  size_t nvalues, cap;
  avro_reader_t reader; /* pointed at each frame's datum in turn */
  avro_writer_t writer; /* pointed at each output buffer in turn */
};

/* State of one decode or encode call: where we are (for error messages) and how deep. */
typedef struct ctx {
  const kefu_schemas_t *schemas;
  char *errstr;
  size_t errlen;
  int decoding;  /* errors read "avro: <what> at <path>" rather than "<path>: <what>" */
  int with_path; /* keep the field path: the second run of a walk that failed */
  int depth;
  size_t free_items; /* zero-byte items seen in this datum */
  size_t pathlen;
  char path[256];
  char scratch[8]; /* errstr when the caller gave none */
} ctx_t;

/* ---- field paths and errors ---------------------------------------------------- */

static size_t path_push(ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the path (when it is kept); returns the length to restore afterwards. */
static size_t path_push(ctx_t *x, const char *fmt, ...) {
  size_t old = x->pathlen;
  if (!x->with_path)
    return old;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(x->path + old, sizeof x->path - old, fmt, ap);
  va_end(ap);
  if (n > 0)
    x->pathlen = old + (size_t)n < sizeof x->path ? old + (size_t)n : sizeof x->path - 1;
  return old;
}

static size_t path_field(ctx_t *x, const char *name) {
  return x->with_path ? path_push(x, x->pathlen ? ".%s" : "%s", name) : x->pathlen;
}

static void path_pop(ctx_t *x, size_t len) {
  if (!x->with_path)
    return;
  x->pathlen = len;
  x->path[len] = '\0';
}

/* Starts a walk over again from the top, keeping the path or not. */
static void walk_start(ctx_t *x, int with_path) {
  x->with_path = with_path;
  x->depth = 0;
  x->free_items = 0;
  x->pathlen = 0;
  x->path[0] = '\0';
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

/* An avro-c call that returned @p rc: 0, or -1 with avro-c's reason. After the
 * validator, reads and gets fail only when memory runs out. */
static int avro_ok(ctx_t *x, int rc) {
  return rc ? fail(x, "avro-c: %s", avro_strerror()) : 0;
}

/* ---- schema helpers ------------------------------------------------------------- */

static avro_schema_t resolve(avro_schema_t s) {
  while (s && is_avro_link(s))
    s = avro_schema_link_target(s);
  return s;
}

/* Steps into a value of @p *s (resolved in place) one level deeper: 0, or -1. The
 * caller leaves with x->depth--. */
static int descend(ctx_t *x, avro_schema_t *s) {
  *s = resolve(*s);
  if (!*s)
    return fail(x, "unresolved schema");
  if (++x->depth > MAX_DEPTH)
    return fail(x, "nesting deeper than %d", MAX_DEPTH);
  return 0;
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

/* Whether a value of @p s can hold an array or a map (unknown depths count as yes). */
static int holds_collection(avro_schema_t s, int depth) {
  s = resolve(s);
  if (!s || depth > 8)
    return 1;
  switch (avro_typeof(s)) {
  case AVRO_ARRAY:
  case AVRO_MAP: return 1;
  case AVRO_RECORD:
    for (size_t i = 0; i < avro_schema_record_size(s); i++)
      if (holds_collection(avro_schema_record_field_get_by_index(s, (int)i), depth + 1))
        return 1;
    return 0;
  case AVRO_UNION:
    for (size_t i = 0; i < avro_schema_union_size(s); i++)
      if (holds_collection(avro_schema_union_branch(s, (int)i), depth + 1))
        return 1;
    return 0;
  default: return 0;
  }
}

/* ---- the validator: is this datum safe to hand to avro-c? ---------------------- */

/* Reads nothing into memory: it only moves over the bytes, checking them against the
 * writer's schema, and stops at the first problem with its reason. */

typedef struct reader {
  const uint8_t *p, *end;
} reader_t;

static int check_value(ctx_t *x, reader_t *r, avro_schema_t w);

int kefu_avro_read_long(const uint8_t **p, const uint8_t *end, int64_t *out) {
  uint64_t v = 0;
  *out = 0; /* defined on every path: -O3 cannot see that the callers' fail() is never 0 */
  for (int i = 0; i < 10; i++) {
    if (*p == end)
      return -1;
    uint8_t b = *(*p)++;
    if (i == 9 && b > 1)
      break;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1); /* zigzag */
      return 0;
    }
  }
  return -2;
}

static int rd_long(ctx_t *x, reader_t *r, int64_t *out) {
  int rc = kefu_avro_read_long(&r->p, r->end, out);
  return rc == 0 ? 0 : fail(x, rc == -1 ? "truncated" : "varint longer than 64 bits");
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

/* Whether @p p holds UTF-8 exactly as jansson accepts it (json_stringn): no overlong
 * forms, no surrogates, nothing above U+10FFFF; NUL bytes pass. The converter below
 * then hands strings to jansson unchecked. */
int kefu_codec_utf8_ok(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n;) {
    uint8_t b = p[i];
    size_t more;
    uint32_t cp, least;
    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xc2 && b <= 0xdf)
      more = 1, cp = b & 0x1f, least = 0x80;
    else if (b >= 0xe0 && b <= 0xef)
      more = 2, cp = b & 0x0f, least = 0x800;
    else if (b >= 0xf0 && b <= 0xf4)
      more = 3, cp = b & 0x07, least = 0x10000;
    else
      return 0;
    if (n - i <= more)
      return 0;
    for (size_t k = 1; k <= more; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += more + 1;
  }
  return 1;
}

static int check_scalar(ctx_t *x, reader_t *r, avro_schema_t w) {
  const uint8_t *p = NULL;
  int64_t v = 0;
  size_t n = 0;
  double d;
  switch (avro_typeof(w)) {
  case AVRO_NULL: return 0;
  case AVRO_BOOLEAN:
    if (rd_raw(x, r, 1, &p))
      return -1;
    return *p > 1 ? fail(x, "boolean byte 0x%02x", *p) : 0;
  case AVRO_INT32:
  case AVRO_INT64:
    if (rd_long(x, r, &v))
      return -1;
    if (is_avro_int32(w) && (v < INT32_MIN || v > INT32_MAX))
      return fail(x, "int %" PRId64 " out of range", v);
    return 0;
  case AVRO_FLOAT:
  case AVRO_DOUBLE: /* IEEE 754, little-endian; JSON has no NaN or infinity */
    if (rd_raw(x, r, is_avro_float(w) ? 4 : 8, &p))
      return -1;
    if (is_avro_float(w)) {
      float f;
      uint32_t bits =
          (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      memcpy(&f, &bits, sizeof f);
      d = f;
    } else {
      uint64_t bits = 0;
      for (int i = 7; i >= 0; i--)
        bits = bits << 8 | p[i];
      memcpy(&d, &bits, sizeof d);
    }
    return isfinite(d) ? 0 : fail(x, "%s is not finite", avro_kind(w));
  case AVRO_STRING:
    if (rd_len(x, r, &n) || rd_raw(x, r, n, &p))
      return -1;
    return kefu_codec_utf8_ok(p, n) ? 0 : fail(x, "string is not UTF-8");
  case AVRO_BYTES: return rd_len(x, r, &n) || rd_raw(x, r, n, &p) ? -1 : 0;
  case AVRO_FIXED: return rd_raw(x, r, (size_t)avro_schema_fixed_size(w), &p);
  default: return fail(x, "unsupported type");
  }
}

static int check_enum(ctx_t *x, reader_t *r, avro_schema_t w) {
  int64_t i;
  if (rd_long(x, r, &i))
    return -1;
  if (i < 0 || i >= avro_schema_enum_number_of_symbols(w))
    return fail(x, "enum index %" PRId64 " out of range", i);
  return 0;
}

static int check_union(ctx_t *x, reader_t *r, avro_schema_t w) {
  int64_t i;
  if (rd_long(x, r, &i))
    return -1;
  if (i < 0 || (uint64_t)i >= avro_schema_union_size(w))
    return fail(x, "union branch %" PRId64 " out of range", i);
  return check_value(x, r, avro_schema_union_branch(w, (int)i));
}

/* Reads the next block header of an array or map: its item count (0 at the end). The
 * optional byte size of a negative-count block is read and ignored. Items of
 * @p item_min bytes or more must fit in the bytes left; zero-byte ones count against
 * the datum's cap. */
static int rd_block(ctx_t *x, reader_t *r, size_t item_min, size_t *count) {
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
  if (item_min ? (uint64_t)n > left / item_min : x->free_items + (uint64_t)n > MAX_FREE_ITEMS)
    return fail(x, "block of %" PRId64 " items exceeds the data", n);
  if (!item_min)
    x->free_items += (size_t)n;
  *count = (size_t)n;
  return 0;
}

static int check_array(ctx_t *x, reader_t *r, avro_schema_t w) {
  avro_schema_t items = avro_schema_array_items(w);
  size_t item_min = min_size(items, 0), count, index = 0;
  for (;;) {
    if (rd_block(x, r, item_min, &count))
      return -1;
    if (count == 0)
      return 0;
    for (size_t k = 0; k < count; k++, index++) {
      size_t mark = path_push(x, "[%zu]", index);
      if (check_value(x, r, items))
        return -1;
      path_pop(x, mark);
    }
  }
}

typedef struct map_key {
  const uint8_t *p;
  size_t n;
} map_key_t;

static int key_order(const void *a, const void *b) {
  const map_key_t *l = a, *r = b;
  int c = memcmp(l->p, r->p, l->n < r->n ? l->n : r->n);
  return c ? c : (l->n > r->n) - (l->n < r->n);
}

/* Of repeated keys the last wins, as in Java, and avro-c agrees when the values are
 * plain: it reads the repeated entry over the first. Values that hold an array or a
 * map it would merge instead, so there a repeated key is an error. */
static int check_unique_keys(ctx_t *x, map_key_t *keys, size_t n) {
  if (n < 2)
    return 0;
  qsort(keys, n, sizeof *keys, key_order);
  for (size_t i = 1; i < n; i++)
    if (key_order(&keys[i - 1], &keys[i]) == 0)
      return fail(x, "map key %.*s repeated", (int)keys[i].n, (const char *)keys[i].p);
  return 0;
}

static int check_map(ctx_t *x, reader_t *r, avro_schema_t w) {
  avro_schema_t values = avro_schema_map_values(w);
  size_t item_min = 1 + min_size(values, 0), count, n = 0;
  int unique = holds_collection(values, 0);
  map_key_t *keys = NULL, key;
  int rc = -1;

  for (;;) {
    if (rd_block(x, r, item_min, &count))
      goto done;
    if (count == 0)
      break;
    if (unique) {
      map_key_t *grown = realloc(keys, (n + count) * sizeof *keys);
      if (!grown) {
        fail(x, "out of memory");
        goto done;
      }
      keys = grown;
    }
    for (size_t k = 0; k < count; k++) {
      if (rd_len(x, r, &key.n) || rd_raw(x, r, key.n, &key.p))
        goto done;
      if (!kefu_codec_utf8_ok(key.p, key.n) || memchr(key.p, 0, key.n)) {
        fail(x, "map key is not UTF-8 text");
        goto done;
      }
      if (unique)
        keys[n++] = key;
      size_t mark = path_push(x, ".%.*s", (int)key.n, (const char *)key.p);
      if (check_value(x, r, values))
        goto done;
      path_pop(x, mark);
    }
  }
  rc = unique ? check_unique_keys(x, keys, n) : 0;
done:
  free(keys);
  return rc;
}

static int check_record(ctx_t *x, reader_t *r, avro_schema_t w) {
  for (size_t i = 0; i < avro_schema_record_size(w); i++) {
    size_t mark = path_field(x, avro_schema_record_field_name(w, (int)i));
    if (check_value(x, r, avro_schema_record_field_get_by_index(w, (int)i)))
      return -1;
    path_pop(x, mark);
  }
  return 0;
}

static int check_value(ctx_t *x, reader_t *r, avro_schema_t w) {
  int rc;
  if (descend(x, &w))
    return -1;
  switch (avro_typeof(w)) {
  case AVRO_RECORD: rc = check_record(x, r, w); break;
  case AVRO_ARRAY: rc = check_array(x, r, w); break;
  case AVRO_MAP: rc = check_map(x, r, w); break;
  case AVRO_UNION: rc = check_union(x, r, w); break;
  case AVRO_ENUM: rc = check_enum(x, r, w); break;
  default: rc = check_scalar(x, r, w); break;
  }
  x->depth--;
  return rc;
}

/* The datum @p p of @p n bytes, written with @p w: 0 when avro-c may read it. */
static int validate_datum(ctx_t *x, const uint8_t *p, size_t n, avro_schema_t w) {
  for (int with_path = 0; with_path < 2; with_path++) {
    reader_t r = {p, p + n};
    walk_start(x, with_path);
    if (check_value(x, &r, w) == 0)
      return r.p == r.end ? 0 : fail(x, "%zu trailing bytes", (size_t)(r.end - r.p));
  }
  return -1;
}

int kefu_avro_check_datum(avro_schema_t w, const uint8_t **p, const uint8_t *end, char *errstr,
                          size_t errlen) {
  ctx_t x = {.errstr = errstr, .errlen = errlen, .decoding = 1};
  for (int with_path = 0; with_path < 2; with_path++) {
    reader_t r = {*p, end};
    walk_start(&x, with_path);
    if (check_value(&x, &r, w) == 0) {
      *p = r.p;
      return 0;
    }
  }
  return -1;
}

/* ---- decoding: avro-c's generic value -> JSON ---------------------------------- */

/* The value was read by avro-c from a datum the validator passed, so its strings are
 * UTF-8, its enum indexes and union branches in range, and its depth bounded. */

static int to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur, json_t **out);

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

static int scalar_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, json_t **out) {
  const void *buf = NULL;
  const char *str = NULL;
  size_t size = 0;
  int rc, b = 0;
  int32_t i32 = 0;
  int64_t i64 = 0;
  float f = 0;
  double d = 0;
  switch (avro_typeof(w)) {
  case AVRO_NULL: *out = json_null(); return 0;
  case AVRO_BOOLEAN:
    if ((rc = avro_value_get_boolean(v, &b)) == 0)
      *out = json_boolean(b);
    break;
  case AVRO_INT32:
    if ((rc = avro_value_get_int(v, &i32)) == 0)
      *out = json_integer(i32);
    break;
  case AVRO_INT64:
    if ((rc = avro_value_get_long(v, &i64)) == 0)
      *out = json_integer(i64);
    break;
  case AVRO_FLOAT:
    if ((rc = avro_value_get_float(v, &f)) == 0)
      *out = json_real(f);
    break;
  case AVRO_DOUBLE:
    if ((rc = avro_value_get_double(v, &d)) == 0)
      *out = json_real(d);
    break;
  case AVRO_STRING: /* avro-c's size counts the NUL it keeps after the text */
    if ((rc = avro_value_get_string(v, &str, &size)) == 0)
      *out = json_stringn_nocheck(str, size ? size - 1 : 0);
    break;
  case AVRO_BYTES:
    if ((rc = avro_value_get_bytes(v, &buf, &size)) == 0)
      *out = latin1_string(buf, size);
    break;
  case AVRO_FIXED:
    if ((rc = avro_value_get_fixed(v, &buf, &size)) == 0)
      *out = latin1_string(buf, size);
    break;
  default: return fail(x, "unsupported type");
  }
  return avro_ok(x, rc);
}

static int enum_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, json_t **out) {
  int i = 0;
  if (avro_ok(x, avro_value_get_enum(v, &i)))
    return -1;
  *out = json_string_nocheck(avro_schema_enum_get(w, i)); /* Avro names: ASCII */
  return 0;
}

static int union_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur,
                         json_t **out) {
  int i = 0;
  avro_value_t branch;
  if (avro_ok(x, avro_value_get_discriminant(v, &i)) ||
      avro_ok(x, avro_value_get_current_branch(v, &branch)))
    return -1;
  /* The current type passes on untouched: the branch finds its own match in it. */
  return to_json(x, &branch, avro_schema_union_branch(w, i), cur, out);
}

static int array_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur,
                         json_t **out) {
  avro_schema_t items = avro_schema_array_items(w);
  avro_schema_t cur_items = cur ? avro_schema_array_items(cur) : NULL;
  size_t n = 0;
  json_t *arr = json_array(), *item;
  avro_value_t child;

  if (!arr)
    return fail(x, "out of memory");
  if (avro_ok(x, avro_value_get_size(v, &n)))
    goto fail;
  for (size_t i = 0; i < n; i++) {
    size_t mark = path_push(x, "[%zu]", i);
    if (avro_ok(x, avro_value_get_by_index(v, i, &child, NULL)) ||
        to_json(x, &child, items, cur_items, &item))
      goto fail;
    if (json_array_append_new(arr, item)) {
      fail(x, "out of memory");
      goto fail;
    }
    path_pop(x, mark);
  }
  *out = arr;
  return 0;
fail:
  json_decref(arr);
  return -1;
}

typedef struct map_entry {
  const char *key; /* borrowed from avro-c's map */
  size_t index;
} map_entry_t;

static int entry_order(const void *a, const void *b) {
  return strcmp(((const map_entry_t *)a)->key, ((const map_entry_t *)b)->key);
}

/* avro-c keeps a map's entries in the order they came (its keys are unique); JSON gets
 * them in key order, whatever order the writer used (SPEC 1.2). */
static int map_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur,
                       json_t **out) {
  avro_schema_t values = avro_schema_map_values(w);
  avro_schema_t cur_values = cur ? avro_schema_map_values(cur) : NULL;
  size_t n = 0;
  map_entry_t *e = NULL;
  json_t *obj = json_object(), *item;
  avro_value_t child;
  int rc = -1;

  if (!obj)
    return fail(x, "out of memory");
  if (avro_ok(x, avro_value_get_size(v, &n)))
    goto done;
  if (n && !(e = malloc(n * sizeof *e))) {
    fail(x, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    e[i].index = i;
    if (avro_ok(x, avro_value_get_by_index(v, i, &child, &e[i].key)))
      goto done;
  }
  if (n > 1)
    qsort(e, n, sizeof *e, entry_order);
  for (size_t i = 0; i < n; i++) {
    size_t mark = path_push(x, ".%s", e[i].key);
    if (avro_ok(x, avro_value_get_by_index(v, e[i].index, &child, NULL)) ||
        to_json(x, &child, values, cur_values, &item))
      goto done;
    if (json_object_set_new_nocheck(obj, e[i].key, item)) {
      fail(x, "out of memory");
      goto done;
    }
    path_pop(x, mark);
  }
  rc = 0;
done:
  free(e);
  if (rc)
    json_decref(obj);
  else
    *out = obj;
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

static int record_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur,
                          json_t **out) {
  json_t *obj = json_object(), *item;
  avro_value_t field;

  if (!obj)
    return fail(x, "out of memory");
  for (size_t i = 0; i < avro_schema_record_size(w); i++) {
    const char *name = avro_schema_record_field_name(w, (int)i);
    /* By name: the current schema may have moved, added or dropped fields. */
    int ci = cur == w ? (int)i : cur ? avro_schema_record_field_get_index(cur, name) : -1;
    avro_schema_t cur_type = ci >= 0 ? avro_schema_record_field_get_by_index(cur, ci) : NULL;
    size_t mark = path_field(x, name);
    if (avro_ok(x, avro_value_get_by_index(v, i, &field, NULL)) ||
        to_json(x, &field, avro_schema_record_field_get_by_index(w, (int)i), cur_type, &item))
      goto fail;
    if (json_object_set_new_nocheck(obj, name, item)) {
      fail(x, "out of memory");
      goto fail;
    }
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

static int to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur, json_t **out) {
  int rc;
  *out = NULL;
  w = resolve(w);
  if (!w)
    return fail(x, "unresolved schema");
  if (!is_avro_union(w))
    cur = counterpart(cur, w);
  switch (avro_typeof(w)) {
  case AVRO_RECORD: rc = record_to_json(x, v, w, cur, out); break;
  case AVRO_ARRAY: rc = array_to_json(x, v, w, cur, out); break;
  case AVRO_MAP: rc = map_to_json(x, v, w, cur, out); break;
  case AVRO_UNION: rc = union_to_json(x, v, w, cur, out); break;
  case AVRO_ENUM: rc = enum_to_json(x, v, w, out); break;
  default: rc = scalar_to_json(x, v, w, out); break;
  }
  if (rc == 0 && !*out)
    rc = fail(x, "out of memory");
  return rc;
}

/* ---- encoding: JSON -> avro-c's generic value ---------------------------------- */

static int from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j);

static int mismatch(ctx_t *x, avro_schema_t s, const json_t *j) {
  return fail(x, "expected %s, got %s", avro_kind(s), json_kind(j));
}

/* Bytes and fixed from Avro's JSON form: code points U+0000..U+00FF, one per byte. */
static int latin1_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  const unsigned char *p = (const unsigned char *)json_string_value(j);
  size_t n = json_string_length(j), k = 0;
  uint8_t *bytes = malloc(n + 1);
  int rc = -1;
  if (!bytes)
    return fail(x, "out of memory");
  for (size_t i = 0; i < n; i++, k++) {
    if (p[i] < 0x80) {
      bytes[k] = p[i];
    } else if ((p[i] == 0xc2 || p[i] == 0xc3) && i + 1 < n) {
      bytes[k] = (uint8_t)((p[i] & 0x03) << 6 | (p[i + 1] & 0x3f));
      i++;
    } else {
      fail(x, "bytes must be code points U+0000..U+00FF");
      goto done;
    }
  }
  if (!is_avro_fixed(s))
    rc = avro_ok(x, avro_value_set_bytes(v, bytes, k));
  else if ((int64_t)k != avro_schema_fixed_size(s))
    fail(x, "fixed takes %" PRId64 " bytes, got %zu", avro_schema_fixed_size(s), k);
  else
    rc = avro_ok(x, avro_value_set_fixed(v, bytes, k));
done:
  free(bytes);
  return rc;
}

/* float and double take any JSON number; a float must be within its range. */
static int real_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, double d) {
  if (is_avro_double(s))
    return avro_ok(x, avro_value_set_double(v, d));
  if (fabs(d) > FLT_MAX)
    return fail(x, "%g is out of the float range", d);
  return avro_ok(x, avro_value_set_float(v, (float)d));
}

static int scalar_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  switch (avro_typeof(s)) {
  case AVRO_NULL: return json_is_null(j) ? avro_ok(x, avro_value_set_null(v)) : mismatch(x, s, j);
  case AVRO_BOOLEAN:
    if (!json_is_boolean(j))
      return mismatch(x, s, j);
    return avro_ok(x, avro_value_set_boolean(v, json_is_true(j)));
  case AVRO_INT32: {
    if (!json_is_integer(j))
      return mismatch(x, s, j);
    json_int_t i = json_integer_value(j);
    if (i < INT32_MIN || i > INT32_MAX)
      return fail(x, "%" JSON_INTEGER_FORMAT " is out of the int range", i);
    return avro_ok(x, avro_value_set_int(v, (int32_t)i));
  }
  case AVRO_INT64:
    if (!json_is_integer(j))
      return mismatch(x, s, j);
    return avro_ok(x, avro_value_set_long(v, (int64_t)json_integer_value(j)));
  case AVRO_FLOAT:
  case AVRO_DOUBLE:
    return json_is_number(j) ? real_from_json(x, v, s, json_number_value(j)) : mismatch(x, s, j);
  case AVRO_STRING: /* avro-c's size counts the NUL, which jansson keeps after the text */
    if (!json_is_string(j))
      return mismatch(x, s, j);
    return avro_ok(x,
                   avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1));
  case AVRO_BYTES:
  case AVRO_FIXED: return json_is_string(j) ? latin1_from_json(x, v, s, j) : mismatch(x, s, j);
  default: return fail(x, "unsupported type");
  }
}

static int enum_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  if (!json_is_string(j))
    return mismatch(x, s, j);
  int i = avro_schema_enum_get_by_name(s, json_string_value(j));
  if (i < 0)
    return fail(x, "unknown symbol %s", json_string_value(j));
  return avro_ok(x, avro_value_set_enum(v, i));
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
static int union_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  avro_value_t branch;
  for (size_t i = 0; i < avro_schema_union_size(s); i++) {
    avro_schema_t b = resolve(avro_schema_union_branch(s, (int)i));
    if (b && json_fits(b, j)) {
      if (avro_ok(x, avro_value_set_branch(v, (int)i, &branch)))
        return -1;
      return from_json(x, &branch, b, j);
    }
  }
  return fail(x, "no branch of the union takes a JSON %s", json_kind(j));
}

/* JSON null reads as an empty array. */
static int array_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  avro_value_t child;
  if (!json_is_array(j) && !json_is_null(j))
    return mismatch(x, s, j);
  for (size_t i = 0; i < json_array_size(j); i++) {
    size_t mark = path_push(x, "[%zu]", i);
    if (avro_ok(x, avro_value_append(v, &child, NULL)) ||
        from_json(x, &child, avro_schema_array_items(s), json_array_get(j, i)))
      return -1;
    path_pop(x, mark);
  }
  return 0;
}

static int key_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Entries are added in byte order of their keys, which is the order avro-c writes
 * them in, so equal maps give equal bytes. JSON null reads as an empty map. */
static int map_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  size_t n = json_object_size(j), i = 0;
  const char **keys, *k;
  json_t *item;
  avro_value_t child;
  int rc = -1;

  if (!json_is_object(j) && !json_is_null(j))
    return mismatch(x, s, j);
  if (n == 0)
    return 0;
  if (!(keys = malloc(n * sizeof *keys)))
    return fail(x, "out of memory");
  json_object_foreach((json_t *)j, k, item) {
    keys[i++] = k;
  }
  qsort(keys, n, sizeof *keys, key_cmp);
  for (i = 0; i < n; i++) {
    size_t mark = path_push(x, ".%s", keys[i]);
    if (avro_ok(x, avro_value_add(v, keys[i], &child, NULL, NULL)) ||
        from_json(x, &child, avro_schema_map_values(s), json_object_get(j, keys[i])))
      goto done;
    path_pop(x, mark);
  }
  rc = 0;
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

static int record_from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  avro_value_t field;
  if (!json_is_object(j))
    return mismatch(x, s, j);
  if (check_unknown_fields(x, s, j))
    return -1;
  for (size_t i = 0; i < avro_schema_record_size(s); i++) {
    const char *name = avro_schema_record_field_name(s, (int)i);
    avro_schema_t type = avro_schema_record_field_get_by_index(s, (int)i);
    const json_t *jv = json_object_get(j, name);
    size_t mark = path_field(x, name);
    /* Absent, or null where null is not a value: SPEC 1.2 treats both as "not given". */
    if (!jv || (json_is_null(jv) && !takes_null(type))) {
      const json_t *def = kefu_schemas_field_default(x->schemas, s, i);
      if (!def)
        return fail(x, "%s", jv ? "null for a required field" : "missing required field");
      jv = def;
    }
    /* Field i of the generic record is field i of the schema, found above by name. */
    if (avro_ok(x, avro_value_get_by_index(v, i, &field, NULL)) || from_json(x, &field, type, jv))
      return -1;
    path_pop(x, mark);
  }
  return 0;
}

static int from_json(ctx_t *x, avro_value_t *v, avro_schema_t s, const json_t *j) {
  int rc;
  if (descend(x, &s))
    return -1;
  switch (avro_typeof(s)) {
  case AVRO_RECORD: rc = record_from_json(x, v, s, j); break;
  case AVRO_ARRAY: rc = array_from_json(x, v, s, j); break;
  case AVRO_MAP: rc = map_from_json(x, v, s, j); break;
  case AVRO_UNION: rc = union_from_json(x, v, s, j); break;
  case AVRO_ENUM: rc = enum_from_json(x, v, s, j); break;
  default: rc = scalar_from_json(x, v, s, j); break;
  }
  x->depth--;
  return rc;
}

/* ---- encoding: a flat record -> avro-c's generic value --------------------------- */

/* The same walk as from JSON (record_from_json and below), over a flat record
 * (common/record.h): each field reads as the JSON value kefu_record_to_json gives it,
 * so the checks, the chosen union branches and the bytes are those of the JSON path.
 * Null, booleans and nested JSON values go through the JSON path itself. */

static const char *flat_kind(const kefu_field_t *f) {
  switch (f->kind) {
  case KEFU_FIELD_INT: return "integer";
  case KEFU_FIELD_REAL: return "real";
  case KEFU_FIELD_STR: return "string";
  default: return "?";
  }
}

/* json_fits() for an integer, real or string field. */
static int flat_fits(avro_schema_t s, const kefu_field_t *f) {
  switch (avro_typeof(s)) {
  case AVRO_INT32:
  case AVRO_INT64: return f->kind == KEFU_FIELD_INT;
  case AVRO_FLOAT:
  case AVRO_DOUBLE: return f->kind == KEFU_FIELD_INT || f->kind == KEFU_FIELD_REAL;
  case AVRO_STRING:
  case AVRO_BYTES:
  case AVRO_FIXED:
  case AVRO_ENUM: return f->kind == KEFU_FIELD_STR;
  default: return 0;
  }
}

static int flat_value(ctx_t *x, avro_value_t *v, avro_schema_t s, const kefu_record_t *r,
                      const kefu_field_t *f);

static int flat_scalar(ctx_t *x, avro_value_t *v, avro_schema_t s, const kefu_record_t *r,
                       const kefu_field_t *f) {
  avro_value_t branch;
  switch (avro_typeof(s)) {
  case AVRO_UNION:
    for (size_t i = 0; i < avro_schema_union_size(s); i++) {
      avro_schema_t b = resolve(avro_schema_union_branch(s, (int)i));
      if (b && flat_fits(b, f))
        return avro_ok(x, avro_value_set_branch(v, (int)i, &branch))
                   ? -1
                   : flat_value(x, &branch, b, r, f);
    }
    return fail(x, "no branch of the union takes a JSON %s", flat_kind(f));
  case AVRO_ENUM: {
    if (f->kind != KEFU_FIELD_STR)
      break;
    int i = avro_schema_enum_get_by_name(s, kefu_record_text(r, f));
    if (i < 0)
      return fail(x, "unknown symbol %s", kefu_record_text(r, f));
    return avro_ok(x, avro_value_set_enum(v, i));
  }
  case AVRO_STRING: /* avro-c's size counts the NUL, which the record keeps after the text */
    if (f->kind != KEFU_FIELD_STR)
      break;
    return avro_ok(x, avro_value_set_string_len(v, kefu_record_text(r, f), f->len + 1));
  case AVRO_INT32:
    if (f->kind != KEFU_FIELD_INT)
      break;
    if (f->v.i < INT32_MIN || f->v.i > INT32_MAX)
      return fail(x, "%" PRId64 " is out of the int range", f->v.i);
    return avro_ok(x, avro_value_set_int(v, (int32_t)f->v.i));
  case AVRO_INT64:
    if (f->kind != KEFU_FIELD_INT)
      break;
    return avro_ok(x, avro_value_set_long(v, f->v.i));
  case AVRO_FLOAT:
  case AVRO_DOUBLE:
    if (f->kind == KEFU_FIELD_INT)
      return real_from_json(x, v, s, (double)f->v.i);
    if (f->kind == KEFU_FIELD_REAL)
      return real_from_json(x, v, s, f->v.d);
    break;
  case AVRO_BYTES:
  case AVRO_FIXED: { /* Avro's JSON form of bytes: as from JSON (no output record has one) */
    if (f->kind != KEFU_FIELD_STR)
      break;
    json_t *j = json_stringn(kefu_record_text(r, f), f->len);
    int rc = j ? latin1_from_json(x, v, s, j) : fail(x, "out of memory");
    json_decref(j);
    return rc;
  }
  default: break;
  }
  return fail(x, "expected %s, got %s", avro_kind(s), flat_kind(f));
}

static int flat_value(ctx_t *x, avro_value_t *v, avro_schema_t s, const kefu_record_t *r,
                      const kefu_field_t *f) {
  switch (f->kind) {
  case KEFU_FIELD_NULL: return from_json(x, v, s, json_null());
  case KEFU_FIELD_BOOL: return from_json(x, v, s, json_boolean(f->v.i));
  case KEFU_FIELD_JSON: return from_json(x, v, s, f->v.json);
  default: break;
  }
  int rc;
  if (descend(x, &s))
    return -1;
  rc = flat_scalar(x, v, s, r, f);
  x->depth--;
  return rc;
}

static int is_null_field(const kefu_field_t *f) {
  return f->kind == KEFU_FIELD_NULL || (f->kind == KEFU_FIELD_JSON && json_is_null(f->v.json));
}

/* The fields of record schema @p e (looked up on first use); -1 when out of memory. */
static int flat_fields(ctx_t *x, cached_value_t *e) {
  avro_schema_t s = e->schema;
  if (e->fields)
    return 0;
  size_t n = avro_schema_record_size(s);
  if (!(e->fields = calloc(n ? n : 1, sizeof *e->fields)) ||
      !(e->names = calloc(NAME_SLOTS, sizeof *e->names))) {
    free(e->fields);
    e->fields = NULL;
    return fail(x, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    e->fields[i].name = avro_schema_record_field_name(s, (int)i);
    e->fields[i].type = avro_schema_record_field_get_by_index(s, (int)i);
    e->fields[i].takes_null = takes_null(e->fields[i].type);
  }
  e->nfields = n;
  return 0;
}

/* The index of field @p name in @p e's schema, or -1: remembered by the name's address
 * (names are static strings), confirmed by its text. */
static int flat_index(cached_value_t *e, const char *name) {
  size_t h = ((uintptr_t)name >> 3) % NAME_SLOTS;
  for (size_t probe = 0; probe < NAME_SLOTS; probe++, h = (h + 1) % NAME_SLOTS) {
    name_slot_t *slot = &e->names[h];
    if (slot->name == name && strcmp(e->fields[slot->index].name, name) == 0)
      return slot->index;
    if (!slot->name) {
      int i = avro_schema_record_field_get_index(e->schema, name);
      if (i >= 0)
        *slot = (name_slot_t){name, i};
      return i;
    }
  }
  return avro_schema_record_field_get_index(e->schema, name);
}

/* record_from_json() for the top-level record of a flat record; @p e is the record
 * schema's cached value, @p v its value. */
static int record_from_flat(ctx_t *x, avro_value_t *v, cached_value_t *e, const kefu_record_t *r) {
  const kefu_field_t *by_index[KEFU_RECORD_MAX_FIELDS * 4] = {0};
  avro_value_t field;
  if (r->overflow)
    return fail(x, "a record of more than %d fields (or out of memory)", KEFU_RECORD_MAX_FIELDS);
  if (flat_fields(x, e))
    return -1;
  if (e->nfields > sizeof by_index / sizeof *by_index)
    return fail(x, "a schema of %zu fields", e->nfields);
  for (uint32_t k = 0; k < r->n; k++) {
    int i = flat_index(e, r->fields[k].name);
    if (i < 0) {
      path_field(x, r->fields[k].name);
      snprintf(x->errstr, x->errlen, "unknown field %s", x->path);
      return -1;
    }
    by_index[i] = &r->fields[k];
  }
  for (size_t i = 0; i < e->nfields; i++) {
    const field_info_t *fi = &e->fields[i];
    const kefu_field_t *f = by_index[i];
    size_t mark = path_field(x, fi->name);
    int rc;
    if (avro_ok(x, avro_value_get_by_index(v, i, &field, NULL)))
      return -1;
    if (!f || (is_null_field(f) && !fi->takes_null)) { /* as record_from_json */
      const json_t *def = kefu_schemas_field_default(x->schemas, e->schema, i);
      if (!def)
        return fail(x, "%s", f ? "null for a required field" : "missing required field");
      rc = from_json(x, &field, fi->type, def);
    } else {
      rc = flat_value(x, &field, fi->type, r, f);
    }
    if (rc)
      return -1;
    path_pop(x, mark);
  }
  return 0;
}

/* ---- public API --------------------------------------------------------------- */

/* The codec's generic value for schema @p s (made on first use), or NULL when avro-c
 * cannot make one. The pointer is good until the next call. */
static cached_value_t *cached_for(kefu_codec_t *c, avro_schema_t s) {
  for (size_t i = 0; i < c->nvalues; i++)
    if (c->values[i].schema == s)
      return &c->values[i];
  if (c->nvalues == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 8;
    cached_value_t *grown = realloc(c->values, cap * sizeof *grown);
    if (!grown)
      return NULL;
    c->values = grown;
    c->cap = cap;
  }
  cached_value_t *e = &c->values[c->nvalues];
  memset(e, 0, sizeof *e);
  e->schema = s;
  if (!(e->iface = avro_generic_class_from_schema(s)))
    return NULL;
  if (avro_generic_value_new(e->iface, &e->value)) {
    avro_value_iface_decref(e->iface);
    return NULL;
  }
  c->nvalues++;
  return e;
}

static avro_value_t *value_for(kefu_codec_t *c, avro_schema_t s) {
  cached_value_t *e = cached_for(c, s);
  return e ? &e->value : NULL;
}

kefu_codec_t *kefu_codec_new(kefu_schemas_t *schemas) {
  static const char nothing[1];
  kefu_codec_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->schemas = schemas;
  c->reader = avro_reader_memory(nothing, 0);
  c->writer = avro_writer_memory(nothing, 0);
  if (!c->reader || !c->writer) {
    kefu_codec_destroy(c);
    return NULL;
  }
  return c;
}

void kefu_codec_destroy(kefu_codec_t *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nvalues; i++) {
    avro_value_decref(&c->values[i].value);
    avro_value_iface_decref(c->values[i].iface);
    free(c->values[i].fields);
    free(c->values[i].names);
  }
  free(c->values);
  if (c->reader)
    avro_reader_free(c->reader);
  if (c->writer)
    avro_writer_free(c->writer);
  free(c);
}

static void ctx_init(ctx_t *x, const kefu_codec_t *c, char *errstr, size_t errlen) {
  memset(x, 0, sizeof *x);
  x->schemas = c->schemas;
  x->errstr = errstr && errlen ? errstr : x->scratch;
  x->errlen = errstr && errlen ? errlen : sizeof x->scratch;
  x->errstr[0] = '\0';
}

/* The validated value @p v (writer's schema @p w) in plain JSON, with the current
 * schema's defaults; a failure is run again to name the field. */
static int value_to_json(ctx_t *x, avro_value_t *v, avro_schema_t w, avro_schema_t cur,
                         json_t **out) {
  for (int with_path = 0; with_path < 2; with_path++) {
    walk_start(x, with_path);
    if (to_json(x, v, w, cur, out) == 0)
      return 0;
  }
  return -1;
}

bool kefu_codec_frame_id(const void *buf, size_t len, int32_t *id) {
  const uint8_t *b = buf;
  if (!buf || len < KEFU_CODEC_HEADER_LEN || b[0] != 0)
    return false;
  *id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]);
  return true;
}

int kefu_codec_decode(kefu_codec_t *c, kefu_topic_t topic, const void *buf, size_t len,
                      json_t **out, char *errstr, size_t errlen) {
  const uint8_t *b = buf;
  kefu_topic_t owner = KEFU_TOPIC_NONE;
  avro_value_t *v;
  ctx_t x;

  *out = NULL;
  ctx_init(&x, c, errstr, errlen);
  if (!buf || len < KEFU_CODEC_HEADER_LEN)
    return fail(&x, "bad framing: %zu bytes, need at least %d", len, KEFU_CODEC_HEADER_LEN);
  int32_t id;
  if (!kefu_codec_frame_id(buf, len, &id))
    return fail(&x, "bad framing: magic byte 0x%02x", b[0]);
  avro_schema_t w = kefu_schemas_by_id(c->schemas, id, &owner);
  if (!w)
    return fail(&x, "unknown schema id %d", (int)id);
  if (owner != topic)
    return fail(&x, "schema id %d belongs to topic %s", (int)id, kefu_topic_name(owner));

  const uint8_t *datum = b + KEFU_CODEC_HEADER_LEN;
  size_t datum_len = len - KEFU_CODEC_HEADER_LEN;
  x.decoding = 1;
  if (validate_datum(&x, datum, datum_len, w))
    return -1;
  if (!(v = value_for(c, w)))
    return avro_ok(&x, -1);
  avro_reader_memory_set_source(c->reader, (const char *)datum, (int64_t)datum_len);
  if (avro_ok(&x, avro_value_read(c->reader, v)))
    return -1;
  return value_to_json(&x, v, w, kefu_schemas_current(c->schemas, topic), out);
}

/* The buffer an encoding first tries to write into (most records are smaller). */
#define ENCODE_GUESS 4096

/* Makes room for @p n bytes in the caller's buffer. */
static int reserve(char **buf, size_t *cap, size_t n) {
  if (*buf && *cap >= n)
    return 0;
  size_t grown_cap = *cap ? *cap : 256;
  while (grown_cap < n)
    grown_cap *= 2;
  char *grown = realloc(*buf, grown_cap);
  if (!grown)
    return -1;
  *buf = grown;
  *cap = grown_cap;
  return 0;
}

/* What one encode call walks: a JSON object or a flat record. */
typedef struct encode_src {
  const json_t *json;
  const kefu_record_t *flat;
} encode_src_t;

static int encode(kefu_codec_t *c, kefu_topic_t topic, encode_src_t src, char **buf, size_t *cap,
                  size_t *len, char *errstr, size_t errlen) {
  int32_t id = kefu_schemas_current_id(c->schemas, topic);
  avro_schema_t s = id < 0 ? NULL : kefu_schemas_by_id(c->schemas, id, NULL);
  const uint8_t head[KEFU_CODEC_HEADER_LEN] = {0, (uint8_t)((uint32_t)id >> 24),
                                               (uint8_t)((uint32_t)id >> 16),
                                               (uint8_t)((uint32_t)id >> 8), (uint8_t)id};
  cached_value_t *e;
  avro_value_t *v;
  size_t size = 0;
  ctx_t x;

  ctx_init(&x, c, errstr, errlen);
  if ((int)topic < 0 || topic >= KEFU_T__COUNT)
    return fail(&x, "unknown topic %d", (int)topic);
  if (!s)
    return fail(&x, "topic %s has no schema", kefu_topic_name(topic));
  if (!src.flat && !json_is_object(src.json))
    return fail(&x, "a record must be a JSON object, got %s",
                src.json ? json_kind(src.json) : "nothing");
  if (!(e = cached_for(c, s)))
    return avro_ok(&x, -1);
  v = &e->value;
  for (int with_path = 0;; with_path = 1) { /* a failure is run again to name the field */
    walk_start(&x, with_path);
    if (avro_ok(&x, avro_value_reset(v)))
      return -1;
    x.depth = src.flat ? 1 : 0; /* from_json counts the top-level record itself */
    if ((src.flat ? record_from_flat(&x, v, e, src.flat) : from_json(&x, v, s, src.json)) == 0)
      break;
    if (with_path)
      return -1;
  }
  walk_start(&x, 0);
  /* Most records fit the buffer as it is: written straight away, avro-c's sizing walk
   * is needed only when the datum does not fit (avro-c then fails with ENOSPC). */
  if (reserve(buf, cap, ENCODE_GUESS))
    return fail(&x, "out of memory");
  memcpy(*buf, head, sizeof head);
  avro_writer_memory_set_dest(c->writer, *buf + KEFU_CODEC_HEADER_LEN,
                              (int64_t)(*cap - KEFU_CODEC_HEADER_LEN));
  if (avro_value_write(c->writer, v) == 0) {
    *len = KEFU_CODEC_HEADER_LEN + (size_t)avro_writer_tell(c->writer);
    return 0;
  }
  if (avro_ok(&x, avro_value_sizeof(v, &size)))
    return -1;
  if (reserve(buf, cap, KEFU_CODEC_HEADER_LEN + size))
    return fail(&x, "out of memory");
  avro_writer_memory_set_dest(c->writer, *buf + KEFU_CODEC_HEADER_LEN, (int64_t)size);
  if (avro_ok(&x, avro_value_write(c->writer, v)))
    return -1;
  if (avro_writer_tell(c->writer) != (int64_t)size)
    return fail(&x, "avro-c wrote %" PRId64 " bytes, not %zu", avro_writer_tell(c->writer), size);
  *len = KEFU_CODEC_HEADER_LEN + size;
  return 0;
}

int kefu_codec_encode(kefu_codec_t *c, kefu_topic_t topic, const json_t *rec, char **buf,
                      size_t *cap, size_t *len, char *errstr, size_t errlen) {
  return encode(c, topic, (encode_src_t){rec, NULL}, buf, cap, len, errstr, errlen);
}

int kefu_codec_encode_record(kefu_codec_t *c, kefu_topic_t topic, const kefu_record_t *rec,
                             char **buf, size_t *cap, size_t *len, char *errstr, size_t errlen) {
  return encode(c, topic, (encode_src_t){NULL, rec}, buf, cap, len, errstr, errlen);
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
