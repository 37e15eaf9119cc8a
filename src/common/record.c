#include "common/record.h"

#include <stdlib.h>
#include <string.h>

void kefu_record_init(kefu_record_t *r) {
  r->n = 0;
  r->overflow = false;
  r->text = NULL;
  r->text_len = r->text_cap = 0;
}

void kefu_record_clear(kefu_record_t *r) {
  for (uint32_t i = 0; i < r->n; i++)
    if (r->fields[i].kind == KEFU_FIELD_JSON)
      json_decref(r->fields[i].v.json);
  free(r->text);
  kefu_record_init(r);
}

/* A new slot for @p name; NULL when the record is full. A name set again gets another
 * slot: the last one is its value (kefu_record_get, the codec and kefu_record_to_json
 * read it so), which saves looking for the old one at every set. */
static kefu_field_t *slot(kefu_record_t *r, const char *name) {
  if (r->n == KEFU_RECORD_MAX_FIELDS) {
    r->overflow = true;
    return NULL;
  }
  kefu_field_t *f = &r->fields[r->n++];
  f->name = name;
  return f;
}

void kefu_record_str(kefu_record_t *r, const char *name, const char *s) {
  if (!s) {
    kefu_record_null(r, name);
    return;
  }
  size_t n = strlen(s);
  if (r->text_cap - r->text_len < n + 1) {
    size_t cap = r->text_cap ? r->text_cap : 256;
    while (cap - r->text_len < n + 1)
      cap *= 2;
    char *grown = realloc(r->text, cap);
    if (!grown) {
      r->overflow = true; /* out of memory: the record does not encode */
      return;
    }
    r->text = grown;
    r->text_cap = cap;
  }
  kefu_field_t *f = slot(r, name);
  if (!f)
    return;
  memcpy(r->text + r->text_len, s, n + 1);
  f->kind = KEFU_FIELD_STR;
  f->len = (uint32_t)n;
  f->v.off = r->text_len;
  r->text_len += n + 1;
}

void kefu_record_int(kefu_record_t *r, const char *name, int64_t i) {
  kefu_field_t *f = slot(r, name);
  if (f) {
    f->kind = KEFU_FIELD_INT;
    f->v.i = i;
  }
}

void kefu_record_bool(kefu_record_t *r, const char *name, bool b) {
  kefu_field_t *f = slot(r, name);
  if (f) {
    f->kind = KEFU_FIELD_BOOL;
    f->v.i = b;
  }
}

void kefu_record_real(kefu_record_t *r, const char *name, double d) {
  kefu_field_t *f = slot(r, name);
  if (f) {
    f->kind = KEFU_FIELD_REAL;
    f->v.d = d;
  }
}

void kefu_record_null(kefu_record_t *r, const char *name) {
  kefu_field_t *f = slot(r, name);
  if (f)
    f->kind = KEFU_FIELD_NULL;
}

void kefu_record_json(kefu_record_t *r, const char *name, json_t *j) {
  if (!j) {
    kefu_record_null(r, name);
    return;
  }
  kefu_field_t *f = slot(r, name);
  if (!f) {
    json_decref(j);
    return;
  }
  f->kind = KEFU_FIELD_JSON;
  f->v.json = j;
}

const kefu_field_t *kefu_record_get(const kefu_record_t *r, const char *name) {
  for (uint32_t i = r->n; i-- > 0;)
    if (strcmp(r->fields[i].name, name) == 0)
      return &r->fields[i];
  return NULL;
}

const char *kefu_record_text(const kefu_record_t *r, const kefu_field_t *f) {
  return r->text + f->v.off;
}

const char *kefu_record_get_str(const kefu_record_t *r, const char *name) {
  const kefu_field_t *f = kefu_record_get(r, name);
  return f && f->kind == KEFU_FIELD_STR ? kefu_record_text(r, f) : NULL;
}

static json_t *field_json(const kefu_record_t *r, const kefu_field_t *f) {
  switch (f->kind) {
  case KEFU_FIELD_BOOL: return json_boolean(f->v.i);
  case KEFU_FIELD_INT: return json_integer((json_int_t)f->v.i);
  case KEFU_FIELD_REAL: return json_real(f->v.d);
  case KEFU_FIELD_STR: return json_stringn(kefu_record_text(r, f), f->len);
  case KEFU_FIELD_JSON: return json_incref(f->v.json);
  default: return json_null();
  }
}

json_t *kefu_record_to_json(const kefu_record_t *r) {
  json_t *o = json_object();
  for (uint32_t i = 0; i < r->n; i++) /* a name set again keeps its first place */
    json_object_set_new(o, r->fields[i].name, field_json(r, &r->fields[i]));
  return o;
}
