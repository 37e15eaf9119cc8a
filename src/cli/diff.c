/* The diff engine of `kefu replay --diff` (SPEC §7).
 *
 * Matching is online, so that a run of a few million records keeps in memory only what
 * is still unmatched. Each topic has a map from a record's key (shop_id and id, see
 * key_of) to a bucket holding, per side, the records of that key not matched yet, in
 * arrival order. Since the k-th record of a key on one side matches the k-th of that key
 * on the other, at most one side of a bucket is ever non-empty: a record that finds the
 * other side waiting is compared with its oldest record at once, both are freed, and
 * only the outcome stays (counts per topic and kind, per-field counts with the three
 * examples of lowest recorded sequence, and the diff-out line of a changed pair). What
 * is left in the buckets at report time is only on one side.
 *
 * A record's kind is its `type` (invitations, response events, rate records), else its
 * `card` (service cards), else its `step` (routing decisions), else "-" (insights, the
 * DLQ). A matched pair counts as unchanged or changed under the recorded record's kind,
 * so when a pair's kind itself changed (a decision's step, say), the replayed column of
 * a kind need not add up to unchanged + changed + only replayed; the totals always do.
 *
 * The response-rate verdicts come from the VIOLATION records of each side: the set of
 * (shop, day)s each side found violating. */
#include "cli/diff.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/map.h"
#include "io/codec.h"
#include "rules/effects.h"

#define EXAMPLES 3
#define EXAMPLE_CHARS 60
#define SHOPS_LISTED 10
#define KINDS_MAX 100
#define KIND_CHARS 64
#define OTHER_KINDS "(other kinds)"

enum { C_RECORDED, C_REPLAYED, C_UNCHANGED, C_CHANGED, C_ONLY_RECORDED, C_ONLY_REPLAYED, C__N };

typedef struct example {
  long seq; /* the recorded record's */
  char *id, *recorded, *replayed;
} example_t;

typedef struct field_stats {
  long n;
  int nex;
  example_t ex[EXAMPLES]; /* by seq */
} field_stats_t;

typedef struct kind_stats {
  char *name;
  long c[C__N];
  kefu_map_t fields; /* name -> field_stats_t */
} kind_stats_t;

/* A record waiting for its match, kept as printed (kefu_json_dumps_record): a fraction
 * of its jansson tree's size, and a pair whose texts are equal needs no parsing. */
typedef struct entry {
  long seq;
  kind_stats_t *kind;
  struct entry *next;
  size_t len;
  char text[]; /* NUL-terminated */
} entry_t;

typedef struct bucket {
  entry_t *head[2], *tail[2];
} bucket_t;

typedef struct change {
  kefu_topic_t topic;
  long seq;   /* the recorded record's */
  char *line; /* owned: the diff-out line */
} change_t;

struct kefu_diff {
  const char *id_field[KEFU_T__COUNT]; /* NULL: topic without an id field */
  kefu_map_t buckets[KEFU_T__COUNT];   /* key -> bucket_t */
  kefu_map_t kinds[KEFU_T__COUNT];     /* kind name -> kind_stats_t */
  kefu_map_t violating[2];             /* "shop\x1fday" -> non-NULL */
  long violations[2];
  long seq[2];
  long recorded, replayed, unchanged, changed;
  change_t *changes;
  size_t nchanges, capchanges;
  char *key; /* reused by key_of */
  size_t keycap;
  char *text; /* reused by kefu_diff_add */
  size_t textcap;
};

kefu_diff_t *kefu_diff_new(void) {
  kefu_diff_t *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  for (int k = 0; k < KEFU_REC__COUNT; k++) {
    kefu_topic_t t = kefu_topic_by_suffix(kefu_record_kinds[k].topic_suffix);
    if (t != KEFU_TOPIC_NONE)
      d->id_field[t] = kefu_record_kinds[k].id_field;
  }
  d->id_field[KEFU_T_DLQ] = "source";
  return d;
}

static const char *str_field(const json_t *rec, const char *name) {
  const char *s = json_string_value(json_object_get(rec, name));
  return s && *s ? s : NULL;
}

/* ---- keys ---------------------------------------------------------------------- */

static const char *key_set(kefu_diff_t *d, const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
  if (n > d->keycap) {
    char *k = realloc(d->key, n);
    if (!k)
      return NULL;
    d->key = k;
    d->keycap = n;
  }
  snprintf(d->key, n, "%s\x1f%s%s%s", a, b, c ? "\x1f" : "", c ? c : "");
  return d->key;
}

/* The record's identity fields, or 0 when it has none usable (it then matches by its
 * whole JSON). An invitation keeps its id over its life cycle, so its type is part of
 * its key (SPEC §3: unique key invitation_id + type). A response-rate record is the
 * shop's record of its type for its day (DAILY_REPORT, VIOLATION, ... at most one each):
 * that is its key, not its record_id, which counts the rate records of the cause across
 * the task's shops, so that one shop's new VIOLATION renumbers the records after it
 * (docs/DECISIONS.md 51); a moved record_id then shows as a changed field. */
static int ident_of(const kefu_diff_t *d, kefu_topic_t t, const json_t *rec, const char **shop,
                    const char **id, const char **type) {
  *shop = *id = *type = NULL;
  if (!d->id_field[t] || !json_is_object(rec) || !(*id = str_field(rec, d->id_field[t])))
    return 0;
  if (t == KEFU_T_DLQ)
    return 1;
  if (!(*shop = str_field(rec, "shop_id")))
    return 0;
  if (t == KEFU_T_LOGISTICS_INVITATIONS)
    *type = str_field(rec, "type");
  if (t == KEFU_T_RESPONSE_VIOLATIONS && str_field(rec, "day") && str_field(rec, "type")) {
    *id = str_field(rec, "day"); /* a shop has one record of a type per day */
    *type = str_field(rec, "type");
  }
  return 1;
}

/* The bucket key of @p rec, in d->key (NULL when out of memory). */
static const char *key_of(kefu_diff_t *d, kefu_topic_t t, const json_t *rec) {
  const char *shop, *id, *type;
  if (ident_of(d, t, rec, &shop, &id, &type))
    return key_set(d, shop ? shop : "", id, type);
  char *whole = json_dumps(rec, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
  const char *k = whole ? key_set(d, "\x1e", whole, NULL) : NULL;
  free(whole);
  return k;
}

/* {"shop_id", "id"} (and "type" for an invitation), nulls for a record without an id. */
static json_t *key_json(const kefu_diff_t *d, kefu_topic_t t, const json_t *rec) {
  const char *shop, *id, *type;
  ident_of(d, t, rec, &shop, &id, &type);
  json_t *k = json_pack("{s:s?, s:s?}", "shop_id", shop,
                        t == KEFU_T_RESPONSE_VIOLATIONS && type ? "day" : "id", id);
  if (k && type)
    json_object_set_new(k, "type", json_string(type));
  return k;
}

/* ---- kinds and verdicts ---------------------------------------------------------- */

/* Kinds are enum symbols; a topic whose records name more (odd input) or longer ones
 * gets one row for the rest rather than a table as long as the input. */
static const char *kind_name(const json_t *rec) {
  static const char *const fields[] = {"type", "card", "step"};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    const char *s = str_field(rec, fields[i]);
    if (s)
      return strlen(s) <= KIND_CHARS ? s : OTHER_KINDS;
  }
  return "-";
}

static kind_stats_t *kind_of(kefu_diff_t *d, kefu_topic_t t, const json_t *rec) {
  const char *name = kind_name(rec);
  kind_stats_t *k = kefu_map_get(&d->kinds[t], name);
  if (k)
    return k;
  if (kefu_map_size(&d->kinds[t]) >= KINDS_MAX && (k = kefu_map_get(&d->kinds[t], OTHER_KINDS)))
    return k;
  if (kefu_map_size(&d->kinds[t]) >= KINDS_MAX)
    name = OTHER_KINDS;
  if (!(k = calloc(1, sizeof *k)) || !(k->name = strdup(name))) {
    free(k);
    return NULL;
  }
  kefu_map_put(&d->kinds[t], name, k);
  return k;
}

static void note_violation(kefu_diff_t *d, int side, const json_t *rec) {
  const char *type = str_field(rec, "type");
  if (!type || strcmp(type, "VIOLATION") != 0)
    return;
  d->violations[side]++;
  const char *shop = str_field(rec, "shop_id"), *day = str_field(rec, "day");
  const char *k = shop && day ? key_set(d, shop, day, NULL) : NULL;
  if (k)
    kefu_map_put(&d->violating[side], k, d);
}

/* ---- comparing ------------------------------------------------------------------- */

/* Equal as the JSON form means them: numbers by value (an integer and a real of one
 * value are equal), and in objects a missing member equals null. */
static int values_equal(const json_t *a, const json_t *b) {
  a = a ? a : json_null();
  b = b ? b : json_null();
  if (json_is_number(a) && json_is_number(b)) {
    if (json_is_integer(a) && json_is_integer(b))
      return json_integer_value(a) == json_integer_value(b);
    return json_number_value(a) == json_number_value(b);
  }
  if (json_typeof(a) != json_typeof(b))
    return 0;
  const char *k;
  json_t *v;
  switch (json_typeof(a)) {
  case JSON_OBJECT:
    json_object_foreach((json_t *)a, k, v) {
      if (!values_equal(v, json_object_get(b, k)))
        return 0;
    }
    json_object_foreach((json_t *)b, k, v) {
      if (!json_object_get(a, k) && !json_is_null(v))
        return 0;
    }
    return 1;
  case JSON_ARRAY:
    if (json_array_size(a) != json_array_size(b))
      return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!values_equal(json_array_get(a, i), json_array_get(b, i)))
        return 0;
    return 1;
  case JSON_STRING: return json_equal(a, b);
  default: return 1; /* true, false, null */
  }
}

/* The changed top-level fields of a pair, {"f": {"recorded", "replayed"}}, or NULL. */
static json_t *changed_fields(const json_t *r0, const json_t *r1) {
  json_t *fields = json_object();
  const char *k;
  json_t *v;
  if (!json_is_object(r0) || !json_is_object(r1)) {
    if (!values_equal(r0, r1))
      json_object_set_new(fields, "(record)",
                          json_pack("{s:O, s:O}", "recorded", r0, "replayed", r1));
  } else {
    json_object_foreach((json_t *)r0, k, v) {
      json_t *w = json_object_get(r1, k);
      if (!values_equal(v, w))
        json_object_set_new(
            fields, k, json_pack("{s:O, s:O}", "recorded", v, "replayed", w ? w : json_null()));
    }
    json_object_foreach((json_t *)r1, k, v) {
      if (!json_object_get(r0, k) && !json_is_null(v))
        json_object_set_new(fields, k, json_pack("{s:n, s:O}", "recorded", "replayed", v));
    }
  }
  if (json_object_size(fields))
    return fields;
  json_decref(fields);
  return NULL;
}

/* @p v printed as `kefu consume` does, cut to about EXAMPLE_CHARS (on a UTF-8 boundary). */
static char *short_value(const json_t *v) {
  char *s = NULL;
  if (kefu_json_dumps_record(v ? v : json_null(), &s) < 0)
    return strdup("?");
  size_t n = strlen(s);
  if (n <= EXAMPLE_CHARS)
    return s;
  n = EXAMPLE_CHARS;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  memcpy(s + n, "…", sizeof "…");
  return s;
}

static char *example_id(const json_t *key) {
  const char *shop = json_string_value(json_object_get(key, "shop_id"));
  const char *id = json_string_value(json_object_get(key, "id"));
  const char *day = json_string_value(json_object_get(key, "day"));
  char buf[512];
  if (day) /* a response-rate record: its day */
    id = day;
  snprintf(buf, sizeof buf, "%s%s%s%s", id ? id : "(no id)", shop ? " (" : "", shop ? shop : "",
           shop ? ")" : "");
  return strdup(buf);
}

static void example_clear(example_t *e) {
  free(e->id);
  free(e->recorded);
  free(e->replayed);
}

/* Keeps the EXAMPLES changes of lowest recorded sequence. */
static void field_note(field_stats_t *f, long seq, const json_t *key, const json_t *change) {
  f->n++;
  int at = f->nex;
  while (at > 0 && f->ex[at - 1].seq > seq)
    at--;
  if (at == EXAMPLES)
    return;
  if (f->nex == EXAMPLES)
    example_clear(&f->ex[--f->nex]);
  memmove(&f->ex[at + 1], &f->ex[at], (size_t)(f->nex - at) * sizeof *f->ex);
  f->ex[at] = (example_t){seq, example_id(key), short_value(json_object_get(change, "recorded")),
                          short_value(json_object_get(change, "replayed"))};
  f->nex++;
}

static void push_change(kefu_diff_t *d, kefu_topic_t t, long seq, char *line) {
  if (d->nchanges == d->capchanges) {
    size_t cap = d->capchanges ? d->capchanges * 2 : 256;
    change_t *c = realloc(d->changes, cap * sizeof *c);
    if (!c) {
      free(line);
      return;
    }
    d->changes = c;
    d->capchanges = cap;
  }
  d->changes[d->nchanges++] = (change_t){t, seq, line};
}

/* A matched pair: @p r0 recorded (of kind @p k, sequence @p seq), @p r1 replayed. */
static void compare_pair(kefu_diff_t *d, kefu_topic_t t, kind_stats_t *k, long seq,
                         const json_t *r0, const json_t *r1) {
  json_t *fields = r0 && r1 ? changed_fields(r0, r1) : NULL;
  if (!fields) {
    k->c[C_UNCHANGED]++;
    d->unchanged++;
    return;
  }
  k->c[C_CHANGED]++;
  d->changed++;
  json_t *key = key_json(d, t, r0);
  const char *name;
  json_t *change;
  json_object_foreach(fields, name, change) {
    field_stats_t *f = kefu_map_get(&k->fields, name);
    if (!f && (f = calloc(1, sizeof *f)))
      kefu_map_put(&k->fields, name, f);
    if (f)
      field_note(f, seq, key, change);
  }
  json_t *line = json_pack("{s:s, s:s, s:o, s:s, s:o}", "topic", kefu_topic_name(t), "kind",
                           k->name, "key", key, "change", "changed", "fields", fields);
  char *text = NULL;
  if (line && kefu_json_dumps_record(line, &text) >= 0)
    push_change(d, t, seq, text);
  json_decref(line);
}

/* ---- adding ---------------------------------------------------------------------- */

static entry_t *bucket_pop(bucket_t *b, int side) {
  entry_t *e = b->head[side];
  b->head[side] = e->next;
  if (!b->head[side])
    b->tail[side] = NULL;
  return e;
}

static int bucket_push(kefu_diff_t *d, kefu_topic_t t, const char *key, bucket_t *b, int side,
                       entry_t *e) {
  if (!b) {
    if (!(b = calloc(1, sizeof *b)))
      return -1;
    kefu_map_put(&d->buckets[t], key, b);
  }
  if (b->tail[side])
    b->tail[side]->next = e;
  else
    b->head[side] = e;
  b->tail[side] = e;
  return 0;
}

static json_t *parse_entry(const entry_t *e) {
  return json_loadb(e->text, e->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* @p rec (printed as @p text) meets @p e, the oldest record of its key on the other side. */
static void match(kefu_diff_t *d, kefu_topic_t t, int side, const json_t *rec, kind_stats_t *kind,
                  long seq, const char *text, size_t len, const entry_t *e) {
  kind_stats_t *k0 = side ? e->kind : kind;
  long seq0 = side ? e->seq : seq;
  if (len == e->len && memcmp(text, e->text, len) == 0) {
    k0->c[C_UNCHANGED]++;
    d->unchanged++;
    return;
  }
  json_t *stored = parse_entry(e);
  compare_pair(d, t, k0, seq0, side ? stored : rec, side ? rec : stored);
  json_decref(stored);
}

static entry_t *entry_new(long seq, kind_stats_t *kind, const char *text, size_t len) {
  entry_t *e = malloc(sizeof *e + len + 1);
  if (!e)
    return NULL;
  *e = (entry_t){seq, kind, NULL, len};
  memcpy(e->text, text, len + 1);
  return e;
}

static void add_record(kefu_diff_t *d, int side, kefu_topic_t topic, const json_t *rec) {
  if (topic == KEFU_T_RESPONSE_VIOLATIONS)
    note_violation(d, side, rec); /* before key_of: both use d->key */
  long seq = d->seq[side]++;
  kind_stats_t *kind = kind_of(d, topic, rec);
  int len = kefu_json_dumpb_record(rec, &d->text, &d->textcap);
  const char *key = key_of(d, topic, rec);
  if (!kind || len < 0 || !key) /* out of memory */
    return;
  kind->c[side ? C_REPLAYED : C_RECORDED]++;
  *(side ? &d->replayed : &d->recorded) += 1;
  bucket_t *b = kefu_map_get(&d->buckets[topic], key);
  int other = 1 - side;
  if (b && b->head[other]) {
    entry_t *e = bucket_pop(b, other);
    e->kind->c[other ? C_ONLY_REPLAYED : C_ONLY_RECORDED]--;
    match(d, topic, side, rec, kind, seq, d->text, (size_t)len, e);
    if (!b->head[0] && !b->head[1])
      free(kefu_map_del(&d->buckets[topic], key));
    free(e);
    return;
  }
  entry_t *e = entry_new(seq, kind, d->text, (size_t)len);
  if (!e || bucket_push(d, topic, key, b, side, e)) {
    free(e);
    return;
  }
  kind->c[side ? C_ONLY_REPLAYED : C_ONLY_RECORDED]++;
}

void kefu_diff_add(kefu_diff_t *d, int side, kefu_topic_t topic, json_t *rec) {
  if (d && rec && side >= 0 && side <= 1 && (int)topic >= 0 && topic < KEFU_T__COUNT)
    add_record(d, side, topic, rec);
  json_decref(rec);
}

/* ---- loading --------------------------------------------------------------------- */

static int load_file(kefu_diff_t *d, int side, kefu_topic_t t, const char *path, char *err,
                     size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long lineno = 0;
  int rc = 0;
  while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
    lineno++;
    if (strspn(line, " \t\r\n") == (size_t)n)
      continue;
    json_error_t je;
    json_t *rec = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!rec) {
      snprintf(err, errlen, "%s:%ld: %s", path, lineno, je.text);
      rc = -1;
    } else {
      kefu_diff_add(d, side, t, rec);
    }
  }
  if (rc == 0 && ferror(f)) {
    snprintf(err, errlen, "%s:%ld: %s", path, lineno + 1, strerror(errno));
    rc = -1;
  }
  free(line);
  fclose(f);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names of @p dir's "*.jsonl" files, sorted, NULL-terminated (NULL with err). */
static char **jsonl_files(const char *dir, char *err, size_t errlen) {
  DIR *dh = opendir(dir);
  if (!dh) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return NULL;
  }
  size_t n = 0, cap = 8;
  char **names = malloc(cap * sizeof *names);
  struct dirent *de;
  while (names && (de = readdir(dh))) {
    size_t len = strlen(de->d_name);
    if (len <= 6 || strcmp(de->d_name + len - 6, ".jsonl") != 0)
      continue;
    if (n + 1 == cap) {
      char **more = realloc(names, (cap *= 2) * sizeof *names);
      if (!more)
        break;
      names = more;
    }
    names[n++] = strndup(de->d_name, len - 6);
  }
  closedir(dh);
  if (!names) {
    snprintf(err, errlen, "%s: out of memory", dir);
    return NULL;
  }
  names[n] = NULL;
  qsort(names, n, sizeof *names, cmp_str);
  return names;
}

int kefu_diff_load_dir(kefu_diff_t *d, int side, const char *dir, char *err, size_t errlen) {
  char **names = jsonl_files(dir, err, errlen);
  if (!names)
    return -1;
  int rc = 0;
  for (char **name = names; *name; name++) {
    kefu_topic_t t = kefu_topic_by_name(*name);
    if (rc == 0 && t != KEFU_TOPIC_NONE) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s.jsonl", dir, *name);
      rc = load_file(d, side, t, path, err, errlen);
    }
    free(*name);
  }
  free(names);
  return rc;
}

/* ---- counts and verdicts --------------------------------------------------------- */

kefu_diff_counts_t kefu_diff_total(kefu_diff_t *d) {
  kefu_diff_counts_t c = {d->recorded,
                          d->replayed,
                          d->unchanged,
                          d->changed,
                          d->recorded - d->unchanged - d->changed,
                          d->replayed - d->unchanged - d->changed};
  return c;
}

typedef struct verdicts {
  long days[2];        /* newly violating, no longer violating */
  kefu_map_t shops[2]; /* newly penalised, no longer penalised: shop -> non-NULL */
} verdicts_t;

static void verdicts_compute(kefu_diff_t *d, verdicts_t *v) {
  memset(v, 0, sizeof *v);
  for (int dir = 0; dir < 2; dir++) {
    const kefu_map_t *from = &d->violating[1 - dir], *other = &d->violating[dir];
    const char *k;
    void *val;
    kefu_map_foreach(from, it, k, val) {
      if (kefu_map_get(other, k))
        continue;
      v->days[dir]++;
      char *shop = strndup(k, strcspn(k, "\x1f"));
      if (shop)
        kefu_map_put(&v->shops[dir], shop, v);
      free(shop);
    }
  }
}

static void verdicts_clear(verdicts_t *v) {
  kefu_map_clear(&v->shops[0], NULL);
  kefu_map_clear(&v->shops[1], NULL);
}

void kefu_diff_verdicts(kefu_diff_t *d, long *violations_recorded, long *violations_replayed,
                        long *days_newly, long *days_no_longer, long *shops_newly,
                        long *shops_no_longer) {
  verdicts_t v;
  verdicts_compute(d, &v);
  long out[6] = {d->violations[0], d->violations[1],           v.days[0],
                 v.days[1],        kefu_map_size(&v.shops[0]), kefu_map_size(&v.shops[1])};
  long *to[6] = {violations_recorded, violations_replayed, days_newly,
                 days_no_longer,      shops_newly,         shops_no_longer};
  for (int i = 0; i < 6; i++)
    if (to[i])
      *to[i] = out[i];
  verdicts_clear(&v);
}

/* ---- the summary ----------------------------------------------------------------- */

static const char *const count_names[C__N] = {"recorded", "replayed",      "unchanged",
                                              "changed",  "only recorded", "only replayed"};

/* The keys of @p m, sorted, in an array of kefu_map_size(m) (free() it; NULL if empty). */
static const char **sorted_keys(const kefu_map_t *m) {
  const char **keys = m->n ? malloc(m->n * sizeof *keys) : NULL;
  size_t n = 0;
  const char *k;
  void *v;
  if (!keys)
    return NULL;
  kefu_map_foreach(m, it, k, v) keys[n++] = k;
  qsort(keys, n, sizeof *keys, cmp_str);
  return keys;
}

static int cmp_topic(const void *a, const void *b) {
  return strcmp(kefu_topic_name(*(const kefu_topic_t *)a),
                kefu_topic_name(*(const kefu_topic_t *)b));
}

static void topics_by_name(kefu_topic_t order[KEFU_T__COUNT], int rank[KEFU_T__COUNT]) {
  for (int i = 0; i < KEFU_T__COUNT; i++)
    order[i] = (kefu_topic_t)i;
  qsort(order, KEFU_T__COUNT, sizeof *order, cmp_topic);
  for (int i = 0; i < KEFU_T__COUNT; i++)
    rank[order[i]] = i;
}

/* Calls @p fn for every kind of every topic, topics in @p order, kinds by name. */
static void each_kind(kefu_diff_t *d, const kefu_topic_t *order,
                      void (*fn)(void *arg, kefu_topic_t t, const kind_stats_t *k), void *arg) {
  for (int i = 0; i < KEFU_T__COUNT; i++) {
    const kefu_map_t *kinds = &d->kinds[order[i]];
    const char **names = sorted_keys(kinds);
    for (uint32_t j = 0; names && j < kefu_map_size(kinds); j++)
      fn(arg, order[i], kefu_map_get(kinds, names[j]));
    free(names);
  }
}

typedef struct table {
  FILE *out;
  int tw, kw, w[C__N]; /* column widths */
} table_t;

static int widest(int w, int n) {
  return n > w ? n : w;
}

static void table_measure(void *arg, kefu_topic_t t, const kind_stats_t *k) {
  table_t *tb = arg;
  tb->tw = widest(tb->tw, (int)strlen(kefu_topic_name(t)));
  tb->kw = widest(tb->kw, (int)strlen(k->name));
  for (int c = 0; c < C__N; c++)
    tb->w[c] = widest(tb->w[c], snprintf(NULL, 0, "%ld", k->c[c]));
}

static void table_row(void *arg, kefu_topic_t t, const kind_stats_t *k) {
  table_t *tb = arg;
  fprintf(tb->out, "%-*s  %-*s", tb->tw, kefu_topic_name(t), tb->kw, k->name);
  for (int c = 0; c < C__N; c++)
    fprintf(tb->out, "  %*ld", tb->w[c], k->c[c]);
  fputc('\n', tb->out);
}

static void print_table(kefu_diff_t *d, FILE *out, const kefu_topic_t *order) {
  table_t tb = {out, (int)strlen("topic"), (int)strlen("kind"), {0}};
  for (int c = 0; c < C__N; c++)
    tb.w[c] = (int)strlen(count_names[c]);
  each_kind(d, order, table_measure, &tb);
  fprintf(out, "%-*s  %-*s", tb.tw, "topic", tb.kw, "kind");
  for (int c = 0; c < C__N; c++)
    fprintf(out, "  %*s", tb.w[c], count_names[c]);
  fputc('\n', out);
  each_kind(d, order, table_row, &tb);
}

typedef struct field_row {
  const char *name;
  const field_stats_t *f;
} field_row_t;

static int cmp_field_row(const void *a, const void *b) {
  const field_row_t *x = a, *y = b;
  if (x->f->n != y->f->n)
    return x->f->n > y->f->n ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* One kind's changed fields (if any), most often changed first, with their examples. */
static void print_fields(void *arg, kefu_topic_t t, const kind_stats_t *k) {
  FILE *out = arg;
  size_t n = 0;
  field_row_t *rows = k->c[C_CHANGED] ? malloc(kefu_map_size(&k->fields) * sizeof *rows) : NULL;
  const char *name;
  void *v;
  if (!rows)
    return;
  kefu_map_foreach(&k->fields, it, name, v) rows[n++] = (field_row_t){name, v};
  qsort(rows, n, sizeof *rows, cmp_field_row);
  fprintf(out, "%s %s: %ld changed\n", kefu_topic_name(t), k->name, k->c[C_CHANGED]);
  for (size_t i = 0; i < n; i++) {
    fprintf(out, "  %s: %ld\n", rows[i].name, rows[i].f->n);
    for (int e = 0; e < rows[i].f->nex; e++) {
      const example_t *x = &rows[i].f->ex[e];
      fprintf(out, "    %s: %s → %s\n", x->id, x->recorded, x->replayed);
    }
  }
  free(rows);
}

static void print_changes(kefu_diff_t *d, FILE *out, const kefu_topic_t *order) {
  if (!d->changed)
    return;
  fputs("\nchanged fields (records changed, then per field: changes, first examples):\n", out);
  each_kind(d, order, print_fields, out);
}

/* "N shops <what>[: s1, s2, …]" with the first SHOPS_LISTED shops by name. */
static void print_shops(FILE *out, const kefu_map_t *shops, const char *what) {
  uint32_t n = kefu_map_size(shops);
  const char **names = sorted_keys(shops);
  fprintf(out, "%u shop%s %s", n, n == 1 ? "" : "s", what);
  for (uint32_t i = 0; names && i < n && i < SHOPS_LISTED; i++)
    fprintf(out, "%s%s", i ? ", " : ": ", names[i]);
  if (n > SHOPS_LISTED)
    fprintf(out, ", … (first %d)", SHOPS_LISTED);
  free(names);
}

static void print_verdicts(kefu_diff_t *d, FILE *out) {
  verdicts_t v;
  verdicts_compute(d, &v);
  fprintf(out, "\nresponse-rate verdicts (%s):\n", kefu_topic_name(KEFU_T_RESPONSE_VIOLATIONS));
  fprintf(out, "verdict: VIOLATION %ld → %ld; ", d->violations[0], d->violations[1]);
  print_shops(out, &v.shops[0], "newly penalised");
  fputs("; ", out);
  print_shops(out, &v.shops[1], "no longer penalised");
  fprintf(out, "\nverdict: days newly violating: %ld; days no longer violating: %ld\n", v.days[0],
          v.days[1]);
  fprintf(out, "verdict: shops newly penalised: %u; shops no longer penalised: %u\n",
          kefu_map_size(&v.shops[0]), kefu_map_size(&v.shops[1]));
  verdicts_clear(&v);
}

/* ---- diff-out -------------------------------------------------------------------- */

typedef struct out_item {
  int rank, side; /* topic by name; 0: changed and only recorded, 1: only replayed */
  long seq;
  kefu_topic_t topic;
  const char *line;   /* a changed pair's, or NULL */
  const entry_t *one; /* else the record only on one side */
} out_item_t;

static int cmp_out_item(const void *a, const void *b) {
  const out_item_t *x = a, *y = b;
  if (x->rank != y->rank)
    return x->rank - y->rank;
  if (x->side != y->side)
    return x->side - y->side;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static out_item_t *out_items(kefu_diff_t *d, const int *rank, size_t *n) {
  kefu_diff_counts_t c = kefu_diff_total(d);
  size_t cap = d->nchanges + (size_t)c.only_recorded + (size_t)c.only_replayed;
  out_item_t *items = malloc((cap ? cap : 1) * sizeof *items);
  *n = 0;
  if (!items)
    return NULL;
  for (size_t i = 0; i < d->nchanges; i++)
    items[(*n)++] =
        (out_item_t){rank[d->changes[i].topic], 0,   d->changes[i].seq, d->changes[i].topic,
                     d->changes[i].line,        NULL};
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    const char *k;
    void *v;
    kefu_map_foreach(&d->buckets[t], it, k, v) {
      const bucket_t *b = v;
      for (int side = 0; side < 2; side++)
        for (const entry_t *e = b->head[side]; e && *n < cap; e = e->next)
          items[(*n)++] = (out_item_t){rank[t], side, e->seq, (kefu_topic_t)t, NULL, e};
    }
  }
  qsort(items, *n, sizeof *items, cmp_out_item);
  return items;
}

static int write_item(kefu_diff_t *d, FILE *out, const out_item_t *it) {
  if (it->line)
    return fprintf(out, "%s\n", it->line) < 0 ? -1 : 0;
  const entry_t *e = it->one;
  const char *side = it->side ? "replayed" : "recorded";
  json_t *rec = parse_entry(e);
  json_t *line = rec ? json_pack("{s:s, s:s, s:o, s:s, s:o}", "topic", kefu_topic_name(it->topic),
                                 "kind", e->kind->name, "key", key_json(d, it->topic, rec),
                                 "change", it->side ? "only_replayed" : "only_recorded", side, rec)
                     : NULL;
  char *text = NULL;
  int rc = line && kefu_json_dumps_record(line, &text) >= 0 && fprintf(out, "%s\n", text) >= 0;
  free(text);
  json_decref(line);
  return rc ? 0 : -1;
}

static int write_diff_out(kefu_diff_t *d, FILE *out, const int *rank) {
  size_t n;
  out_item_t *items = out_items(d, rank, &n);
  int rc = items ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = write_item(d, out, &items[i]);
  free(items);
  return rc || fflush(out) || ferror(out) ? -1 : 0;
}

int kefu_diff_report(kefu_diff_t *d, FILE *summary, FILE *diff_out) {
  kefu_topic_t order[KEFU_T__COUNT];
  int rank[KEFU_T__COUNT];
  topics_by_name(order, rank);
  print_table(d, summary, order);
  print_changes(d, summary, order);
  print_verdicts(d, summary);
  kefu_diff_counts_t c = kefu_diff_total(d);
  fprintf(summary,
          "\ntotal: recorded %ld, replayed %ld, unchanged %ld, changed %ld, only recorded %ld, "
          "only replayed %ld\n",
          c.recorded, c.replayed, c.unchanged, c.changed, c.only_recorded, c.only_replayed);
  int rc = diff_out ? write_diff_out(d, diff_out, rank) : 0;
  return rc || fflush(summary) || ferror(summary) ? -1 : 0;
}

/* ---- freeing --------------------------------------------------------------------- */

static void bucket_free(void *p) {
  bucket_t *b = p;
  for (int side = 0; side < 2; side++)
    for (entry_t *e = b->head[side], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  free(b);
}

static void field_free(void *p) {
  field_stats_t *f = p;
  for (int i = 0; i < f->nex; i++)
    example_clear(&f->ex[i]);
  free(f);
}

static void kind_free(void *p) {
  kind_stats_t *k = p;
  kefu_map_clear(&k->fields, field_free);
  free(k->name);
  free(k);
}

void kefu_diff_free(kefu_diff_t *d) {
  if (!d)
    return;
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    kefu_map_clear(&d->buckets[t], bucket_free);
    kefu_map_clear(&d->kinds[t], kind_free);
  }
  kefu_map_clear(&d->violating[0], NULL);
  kefu_map_clear(&d->violating[1], NULL);
  for (size_t i = 0; i < d->nchanges; i++)
    free(d->changes[i].line);
  free(d->changes);
  free(d->key);
  free(d->text);
  free(d);
}
