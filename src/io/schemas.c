/* The schema table (see schemas.h).
 *
 * Each entry keeps three views of one schema: avro-c's parsed form (types, names,
 * symbols), the JSON text (for a registry), and, per record type, the field defaults
 * taken from the JSON, because avro-c drops them when it parses. Both parsed forms
 * list fields in the same order, so walking them side by side pairs every avro-c
 * record with its JSON "fields" array; the defaults are then found by the record's
 * avro_schema_t pointer and the field's index, with no name lookups.
 *
 * The table is small (a dozen ids, a few more per schema version), so lookups are
 * linear scans over a contiguous array. */
#include "io/schemas.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"

#define IDS_FILE "schemas/ids.tsv"

typedef struct schema_record {
  avro_schema_t record;    /* borrowed from the entry's schema */
  const json_t **defaults; /* per field, borrowed from the entry's doc; NULL: none */
  size_t nfields;
} schema_record_t;

typedef struct schema_entry {
  int32_t id;
  kefu_topic_t topic;
  avro_schema_t schema; /* owned */
  json_t *doc;          /* owned: the parsed JSON, which holds the defaults */
  char *text;           /* owned: the JSON text as added */
  schema_record_t *records;
  size_t nrecords;
  int unlisted; /* a reader's schema only: not found by its id (kefu_schemas_unlist) */
} schema_entry_t;

struct kefu_schemas {
  schema_entry_t *entries;
  size_t n, cap;
  int current[KEFU_T__COUNT]; /* index of the entry kefu writes and reads with; -1: none */
};

static avro_schema_t resolve(avro_schema_t t) {
  while (t && is_avro_link(t))
    t = avro_schema_link_target(t);
  return t;
}

/* Whether @p d is a valid Avro-JSON default for type @p t. A union's default belongs
 * to its first branch (Avro spec). */
static int default_ok(avro_schema_t t, const json_t *d, int depth) {
  t = resolve(t);
  if (!t || depth > 32)
    return 0;
  switch (avro_typeof(t)) {
  case AVRO_NULL: return json_is_null(d);
  case AVRO_BOOLEAN: return json_is_boolean(d);
  case AVRO_INT32:
    return json_is_integer(d) && json_integer_value(d) >= INT32_MIN &&
           json_integer_value(d) <= INT32_MAX;
  case AVRO_INT64: return json_is_integer(d);
  case AVRO_FLOAT:
  case AVRO_DOUBLE: return json_is_number(d);
  case AVRO_STRING:
  case AVRO_BYTES:
  case AVRO_FIXED: return json_is_string(d);
  case AVRO_ENUM:
    return json_is_string(d) && avro_schema_enum_get_by_name(t, json_string_value(d)) >= 0;
  case AVRO_UNION:
    return avro_schema_union_size(t) > 0 &&
           default_ok(avro_schema_union_branch(t, 0), d, depth + 1);
  case AVRO_ARRAY: {
    size_t i;
    const json_t *v;
    if (!json_is_array(d))
      return 0;
    json_array_foreach(d, i, v) {
      if (!default_ok(avro_schema_array_items(t), v, depth + 1))
        return 0;
    }
    return 1;
  }
  case AVRO_MAP: {
    const char *k;
    const json_t *v;
    if (!json_is_object(d))
      return 0;
    json_object_foreach((json_t *)d, k, v) {
      if (!default_ok(avro_schema_map_values(t), v, depth + 1))
        return 0;
    }
    return 1;
  }
  case AVRO_RECORD:
    /* Fields the default omits would need their own defaults; kefu's schemas have no
     * record-valued defaults, so only the shape is checked. */
    return json_is_object(d);
  default: return 0;
  }
}

static int add_record(schema_entry_t *e, avro_schema_t rec, const json_t *fields, char *errstr,
                      size_t errlen) {
  size_t n = avro_schema_record_size(rec);
  schema_record_t *grown = realloc(e->records, (e->nrecords + 1) * sizeof *grown);
  if (!grown)
    goto oom;
  e->records = grown;
  schema_record_t *r = &e->records[e->nrecords];
  r->record = rec;
  r->nfields = n;
  r->defaults = calloc(n ? n : 1, sizeof *r->defaults);
  if (!r->defaults)
    goto oom;
  e->nrecords++;
  for (size_t i = 0; i < n; i++) {
    const json_t *f = json_array_get(fields, i);
    const char *name = avro_schema_record_field_name(rec, (int)i);
    const json_t *def = json_object_get(f, "default");
    const char *jname = json_string_value(json_object_get(f, "name"));
    if (!name || !jname || strcmp(name, jname) != 0) {
      snprintf(errstr, errlen, "record %s: field %zu does not match its JSON",
               avro_schema_name(rec), i);
      return -1;
    }
    if (def && !default_ok(avro_schema_record_field_get_by_index(rec, (int)i), def, 0)) {
      snprintf(errstr, errlen, "record %s: default of field %s does not fit its type",
               avro_schema_name(rec), name);
      return -1;
    }
    r->defaults[i] = def;
  }
  return 0;
oom:
  snprintf(errstr, errlen, "out of memory");
  return -1;
}

/* Walks the JSON form @p js and avro-c's form @p as of one type together, recording
 * every record type defined in it. Named references (JSON strings) were recorded where
 * the type was defined. */
static int collect(schema_entry_t *e, const json_t *js, avro_schema_t as, int depth, char *errstr,
                   size_t errlen) {
  as = resolve(as);
  if (!as || depth > 64) {
    snprintf(errstr, errlen, "schema too deep or inconsistent");
    return -1;
  }
  if (json_is_array(js)) {
    for (size_t i = 0; i < json_array_size(js) && is_avro_union(as); i++)
      if (collect(e, json_array_get(js, i), avro_schema_union_branch(as, (int)i), depth + 1, errstr,
                  errlen))
        return -1;
    return 0;
  }
  if (!json_is_object(js))
    return 0;
  const json_t *type = json_object_get(js, "type");
  const char *kind = json_string_value(type);
  if (!kind)
    return type ? collect(e, type, as, depth + 1, errstr, errlen) : 0;
  /* {"type": "SomeRecord"} refers to a record defined elsewhere: nothing to record. */
  if (is_avro_record(as) && (!strcmp(kind, "record") || !strcmp(kind, "error"))) {
    const json_t *fields = json_object_get(js, "fields");
    if (add_record(e, as, fields, errstr, errlen))
      return -1;
    for (size_t i = 0; i < json_array_size(fields); i++)
      if (collect(e, json_object_get(json_array_get(fields, i), "type"),
                  avro_schema_record_field_get_by_index(as, (int)i), depth + 1, errstr, errlen))
        return -1;
  } else if (is_avro_array(as) && !strcmp(kind, "array")) {
    return collect(e, json_object_get(js, "items"), avro_schema_array_items(as), depth + 1, errstr,
                   errlen);
  } else if (is_avro_map(as) && !strcmp(kind, "map")) {
    return collect(e, json_object_get(js, "values"), avro_schema_map_values(as), depth + 1, errstr,
                   errlen);
  }
  return 0;
}

static void entry_free(schema_entry_t *e) {
  for (size_t i = 0; i < e->nrecords; i++)
    free(e->records[i].defaults);
  free(e->records);
  if (e->schema)
    avro_schema_decref(e->schema);
  json_decref(e->doc);
  free(e->text);
  memset(e, 0, sizeof *e);
}

/* The entry of wire id @p id (unlisted entries have none), or NULL. */
static const schema_entry_t *find(const kefu_schemas_t *s, int32_t id) {
  for (size_t i = 0; i < s->n; i++)
    if (s->entries[i].id == id && !s->entries[i].unlisted)
      return &s->entries[i];
  return NULL;
}

static const schema_entry_t *current_entry(const kefu_schemas_t *s, kefu_topic_t topic) {
  if ((int)topic < 0 || topic >= KEFU_T__COUNT || s->current[topic] < 0)
    return NULL;
  return &s->entries[s->current[topic]];
}

/* Parses one schema into @p e; on failure @p e holds whatever was built so far. */
static int entry_build(schema_entry_t *e, const char *json, size_t len, char *errstr,
                       size_t errlen) {
  json_error_t jerr;
  char why[200];

  if (!(e->text = strndup(json, len))) {
    snprintf(errstr, errlen, "out of memory");
    return -1;
  }
  if (!(e->doc = json_loadb(json, len, JSON_DECODE_ANY, &jerr))) {
    snprintf(errstr, errlen, "schema id %d: JSON: %s (line %d)", (int)e->id, jerr.text, jerr.line);
    return -1;
  }
  if (avro_schema_from_json_length(json, len, &e->schema)) {
    e->schema = NULL;
    snprintf(errstr, errlen, "schema id %d: avro: %s", (int)e->id, avro_strerror());
    return -1;
  }
  if (!is_avro_record(e->schema)) {
    snprintf(errstr, errlen, "schema id %d: not a record", (int)e->id);
    return -1;
  }
  if (collect(e, e->doc, e->schema, 0, why, sizeof why)) {
    snprintf(errstr, errlen, "schema id %d: %s", (int)e->id, why);
    return -1;
  }
  return 0;
}

int kefu_schemas_add(kefu_schemas_t *s, int32_t id, kefu_topic_t topic, const char *json,
                     size_t len, char *errstr, size_t errlen) {
  schema_entry_t e = {.id = id, .topic = topic};
  const schema_entry_t *old = find(s, id);

  if (id < 0 || (int)topic < 0 || topic >= KEFU_T__COUNT) {
    snprintf(errstr, errlen, "schema id %d: bad id or topic", (int)id);
    return -1;
  }
  if (old) {
    if (old->topic == topic && strlen(old->text) == len && memcmp(old->text, json, len) == 0)
      return 0;
    snprintf(errstr, errlen, "schema id %d is already taken (topic %s)", (int)id,
             kefu_topic_name(old->topic));
    return -1;
  }
  if (entry_build(&e, json, len, errstr, errlen))
    goto fail;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    schema_entry_t *grown = realloc(s->entries, cap * sizeof *grown);
    if (!grown) {
      snprintf(errstr, errlen, "out of memory");
      goto fail;
    }
    s->entries = grown;
    s->cap = cap;
  }
  s->entries[s->n++] = e;
  /* An unlisted current one is kefu's own reader schema: only set_current replaces it. */
  const schema_entry_t *cur = current_entry(s, topic);
  if (!cur || (!cur->unlisted && id > cur->id))
    s->current[topic] = (int)s->n - 1;
  return 0;
fail:
  entry_free(&e);
  return -1;
}

static kefu_topic_t topic_by_suffix(const char *suffix) {
  for (int i = 0; i < KEFU_T__COUNT; i++)
    if (strcmp(kefu_topics[i].suffix, suffix) == 0)
      return (kefu_topic_t)i;
  return KEFU_TOPIC_NONE;
}

/* One line of ids.tsv: "<id>\t<topic suffix>\t<schema file>". */
static int add_line(kefu_schemas_t *s, char *line, int lineno, char *errstr, size_t errlen) {
  char *save = NULL, *end = NULL;
  const char *idtxt = strtok_r(line, "\t", &save);
  const char *suffix = strtok_r(NULL, "\t", &save);
  const char *file = strtok_r(NULL, "\t\r", &save);
  char why[300];

  if (!idtxt || !suffix || !file) {
    snprintf(errstr, errlen, IDS_FILE " line %d: want <id> TAB <topic> TAB <file>", lineno);
    return -1;
  }
  errno = 0;
  long id = strtol(idtxt, &end, 10);
  kefu_topic_t topic = topic_by_suffix(suffix);
  const kefu_embedded_t *f = kefu_embedded_find(file);
  if (errno || *end || id < 0 || id > INT32_MAX)
    snprintf(why, sizeof why, "bad id '%s'", idtxt);
  else if (topic == KEFU_TOPIC_NONE)
    snprintf(why, sizeof why, "unknown topic '%s'", suffix);
  else if (!f)
    snprintf(why, sizeof why, "%s is not embedded", file);
  else if (kefu_schemas_add(s, (int32_t)id, topic, f->data, f->len, why, sizeof why) == 0)
    return 0;
  snprintf(errstr, errlen, IDS_FILE " line %d: %s", lineno, why);
  return -1;
}

static int load_ids(kefu_schemas_t *s, char *errstr, size_t errlen) {
  const kefu_embedded_t *ids = kefu_embedded_find(IDS_FILE);
  char *copy, *line, *next;
  int lineno = 0, rc = 0;

  if (!ids) {
    snprintf(errstr, errlen, IDS_FILE " is not embedded");
    return -1;
  }
  if (!(copy = strndup(ids->data, ids->len))) {
    snprintf(errstr, errlen, "out of memory");
    return -1;
  }
  for (line = copy; line && !rc; line = next) {
    if ((next = strchr(line, '\n')))
      *next++ = '\0';
    lineno++;
    if (line[0] == '#' || line[strspn(line, " \t\r")] == '\0')
      continue;
    rc = add_line(s, line, lineno, errstr, errlen);
  }
  free(copy);
  return rc;
}

kefu_schemas_t *kefu_schemas_new(char *errstr, size_t errlen) {
  kefu_schemas_t *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(errstr, errlen, "out of memory");
    return NULL;
  }
  for (int i = 0; i < KEFU_T__COUNT; i++)
    s->current[i] = -1;
  if (load_ids(s, errstr, errlen))
    goto fail;
  for (int i = 0; i < KEFU_T__COUNT; i++)
    if (kefu_topics[i].schema_file && s->current[i] < 0) {
      snprintf(errstr, errlen, IDS_FILE ": no schema for topic %s", kefu_topics[i].suffix);
      goto fail;
    }
  return s;
fail:
  kefu_schemas_destroy(s);
  return NULL;
}

void kefu_schemas_destroy(kefu_schemas_t *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    entry_free(&s->entries[i]);
  free(s->entries);
  free(s);
}

int kefu_schemas_set_current(kefu_schemas_t *s, kefu_topic_t topic, int32_t id) {
  const schema_entry_t *e = find(s, id);
  if (!e || e->topic != topic)
    return -1;
  s->current[topic] = (int)(e - s->entries);
  return 0;
}

int32_t kefu_schemas_current_id(const kefu_schemas_t *s, kefu_topic_t topic) {
  const schema_entry_t *e = current_entry(s, topic);
  return e && !e->unlisted ? e->id : -1;
}

const char *kefu_schemas_current_text(const kefu_schemas_t *s, kefu_topic_t topic) {
  const schema_entry_t *e = current_entry(s, topic);
  return e ? e->text : NULL;
}

void kefu_schemas_unlist(kefu_schemas_t *s) {
  for (size_t i = 0; i < s->n; i++)
    s->entries[i].unlisted = 1;
}

avro_schema_t kefu_schemas_by_id(const kefu_schemas_t *s, int32_t id, kefu_topic_t *topic_out) {
  const schema_entry_t *e = find(s, id);
  if (e && topic_out)
    *topic_out = e->topic;
  return e ? e->schema : NULL;
}

avro_schema_t kefu_schemas_current(const kefu_schemas_t *s, kefu_topic_t topic) {
  const schema_entry_t *e = current_entry(s, topic);
  return e ? e->schema : NULL;
}

const char *kefu_schemas_text(const kefu_schemas_t *s, int32_t id) {
  const schema_entry_t *e = find(s, id);
  return e ? e->text : NULL;
}

const json_t *kefu_schemas_field_default(const kefu_schemas_t *s, avro_schema_t record,
                                         size_t index) {
  for (size_t i = 0; i < s->n; i++)
    for (size_t j = 0; j < s->entries[i].nrecords; j++) {
      const schema_record_t *r = &s->entries[i].records[j];
      if (r->record == record)
        return index < r->nfields ? r->defaults[index] : NULL;
    }
  return NULL;
}
