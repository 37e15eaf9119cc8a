#include "engine/shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kefu_shop_t *kefu_shop_new(const char *id, const json_t *defaults) {
  kefu_shop_t *s = calloc(1, sizeof *s);
  snprintf(s->id, sizeof s->id, "%s", id);
  s->config = json_deep_copy(defaults);
  s->config_is_default = true;
  for (int k = 0; k < KEFU_ENT__COUNT; k++) {
    s->entities[k] = json_object();
    s->dirty[k] = json_object();
  }
  s->applied = json_object();
  s->applied_loaded = json_object();
  s->dedup = json_object();
  s->dedup_new = json_object();
  s->timers_added = json_object();
  s->timers_removed = json_array();
  s->shipped = json_object();
  s->shipped_changed = json_object();
  return s;
}

void kefu_shop_destroy(kefu_shop_t *s) {
  if (!s)
    return;
  json_decref(s->config);
  for (int k = 0; k < KEFU_ENT__COUNT; k++) {
    json_decref(s->entities[k]);
    json_decref(s->dirty[k]);
  }
  json_decref(s->applied);
  json_decref(s->applied_loaded);
  json_decref(s->dedup);
  json_decref(s->dedup_new);
  json_decref(s->timers_added);
  json_decref(s->timers_removed);
  json_decref(s->shipped);
  json_decref(s->shipped_changed);
  free(s);
}

json_t *kefu_shop_get(kefu_shop_t *s, kefu_entity_kind_t kind, const char *id) {
  json_t *v = id ? json_object_get(s->entities[kind], id) : NULL;
  return json_is_object(v) ? v : NULL;
}

void kefu_shop_put(kefu_shop_t *s, kefu_entity_kind_t kind, const char *id, json_t *value) {
  json_object_set_new(s->entities[kind], id, value);
  json_object_set_new(s->dirty[kind], id, json_true());
}

void kefu_shop_touch(kefu_shop_t *s, kefu_entity_kind_t kind, const char *id) {
  json_object_set_new(s->dirty[kind], id, json_true());
}

void kefu_shop_set_config(kefu_shop_t *s, json_t *config, bool is_default) {
  json_decref(s->config);
  s->config = config;
  s->config_dirty = true;
  s->config_is_default = is_default;
}

json_t *kefu_cfg_get(const kefu_shop_t *s, const char *field) {
  return json_object_get(s->config, field);
}

bool kefu_cfg_bool(const kefu_shop_t *s, const char *field) {
  return json_is_true(kefu_cfg_get(s, field));
}

int64_t kefu_cfg_int(const kefu_shop_t *s, const char *field) {
  return kefu_json_int(s->config, field, 0);
}

const char *kefu_cfg_str(const kefu_shop_t *s, const char *field) {
  return kefu_json_str(s->config, field);
}

int64_t kefu_json_int(const json_t *o, const char *field, int64_t dflt) {
  json_t *v = json_object_get(o, field);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

const char *kefu_json_str(const json_t *o, const char *field) {
  return json_string_value(json_object_get(o, field));
}

void kefu_shop_set_shipped(kefu_shop_t *s, const char *order_id, int64_t shipped_ts) {
  if (shipped_ts)
    json_object_set_new(s->shipped, order_id, json_integer(shipped_ts));
  else
    json_object_del(s->shipped, order_id);
  json_object_set_new(s->shipped_changed, order_id, json_true());
}

bool kefu_str_eq(const char *a, const char *b) {
  return a && b && strcmp(a, b) == 0;
}

bool kefu_json_str_eq(const json_t *o, const char *field, const char *value) {
  return kefu_str_eq(kefu_json_str(o, field), value);
}

const char *kefu_json_str_or(const json_t *o, const char *field) {
  const char *v = kefu_json_str(o, field);
  return v ? v : "-";
}
