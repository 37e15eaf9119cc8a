#include "rules/couriers.h"

#include <stdio.h>
#include <string.h>

void kefu_courier_table_init(kefu_courier_table_t *t) {
  t->entries = json_object();
}

void kefu_courier_table_clear(kefu_courier_table_t *t) {
  json_decref(t->entries);
  t->entries = NULL;
}

void kefu_courier_table_put(kefu_courier_table_t *t, const json_t *rec) {
  char key[160];
  snprintf(key, sizeof key, "%s|%s", json_string_value(json_object_get(rec, "courier")),
           json_string_value(json_object_get(rec, "region_code")));
  json_object_set_new(t->entries, key, json_deep_copy(rec));
}

void kefu_courier_table_delete(kefu_courier_table_t *t, const char *key) {
  json_object_del(t->entries, key);
}

static bool active_at(const json_t *rec, int64_t ts) {
  json_t *until = json_object_get(rec, "valid_until");
  return json_integer_value(json_object_get(rec, "valid_from")) <= ts &&
         (!json_is_integer(until) || ts < json_integer_value(until));
}

bool kefu_courier_deliverable(const kefu_courier_table_t *t, const char *courier,
                              const char *region, int64_t ts, const char **reason) {
  static const size_t prefix_lengths[] = {6, 4, 2};
  size_t region_len = strlen(region);
  char key[160];

  *reason = NULL;
  for (int i = 0; i < 3; i++) {
    size_t n = prefix_lengths[i];
    if (n > region_len)
      continue;
    snprintf(key, sizeof key, "%s|%.*s", courier, (int)n, region);
    json_t *rec = json_object_get(t->entries, key);
    if (!rec || !active_at(rec, ts))
      continue;
    if (json_is_true(json_object_get(rec, "deliverable")))
      return true;
    *reason = json_string_value(json_object_get(rec, "reason"));
    return false;
  }
  return true;
}
