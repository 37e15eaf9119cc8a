/* The domain model's containers: allocation, lookup and freeing (src/rules/model.h). */
#include "rules/model.h"

#include <stdlib.h>
#include <string.h>

const char *const kefu_target_names[] = {"NONE", "AGENT", "BOT", "LEAVE_MESSAGE", "QUEUE"};
const char *const kefu_after_sale_names[] = {NULL, KEFU_AFTER_SALE_REASONS(KEFU_ENUM_STR) NULL};
const char *const kefu_cause_names[] = {KEFU_CAUSES(KEFU_ENUM_STR) NULL};
const char *const kefu_timer_kind_names[] = {
    "none",      "session_idle",      "queue_timeout",     "response_wait",
    "day_close", "invitation_expiry", "conversion_window", NULL};

/* ------------------------------------------------------------------ strings */

void kefu_str_set(char **dst, const char *src) {
  if (*dst == src)
    return;
  char *copy = src ? strdup(src) : NULL;
  free(*dst);
  *dst = copy;
}

bool kefu_str_eq(const char *a, const char *b) {
  return a && b && strcmp(a, b) == 0;
}

void kefu_strv_push(kefu_strv_t *l, const char *s) {
  l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
  l->v[l->n++] = strdup(s);
}

bool kefu_strv_has(const kefu_strv_t *l, const char *s) {
  for (uint32_t i = 0; i < l->n; i++)
    if (kefu_str_eq(l->v[i], s))
      return true;
  return false;
}

void kefu_strv_clear(kefu_strv_t *l) {
  for (uint32_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

void kefu_strv_copy(kefu_strv_t *dst, const kefu_strv_t *src) {
  kefu_strv_t c = {0};
  for (uint32_t i = 0; i < src->n; i++)
    kefu_strv_push(&c, src->v[i]);
  kefu_strv_clear(dst);
  *dst = c;
}

kefu_after_sale_t kefu_after_sale_parse(const char *reason) {
  for (int i = 1; i < KEFU_AFTER_SALE__COUNT; i++)
    if (kefu_str_eq(reason, kefu_after_sale_names[i]))
      return (kefu_after_sale_t)i;
  return KEFU_AFTER_SALE_OTHER;
}

/* ------------------------------------------------------------------ config */

void kefu_config_defaults(kefu_shop_config_t *c) {
  memset(c, 0, sizeof *c);
  c->leave_message_target = 0; /* MAIN_ACCOUNT */
  c->queue_max_wait_ms = 600000;
  c->logistics_enabled = true;
  c->merchant_invite_enabled = true;
  c->transfer_entry_exposure_pct = 100;
  c->response_rate_assessed = true;
  c->utc_offset_minutes = 480;
}

static void group_clear(kefu_group_t *g) {
  free(g->group_id);
  kefu_strv_clear(&g->crowd_tags);
  kefu_strv_clear(&g->item_ids);
  kefu_strv_clear(&g->intents);
  memset(g, 0, sizeof *g);
}

void kefu_config_clear(kefu_shop_config_t *c) {
  kefu_strv_clear(&c->couriers);
  for (uint32_t i = 0; i < c->ngroups; i++)
    group_clear(&c->groups[i]);
  free(c->groups);
  memset(c, 0, sizeof *c);
}

void kefu_config_copy(kefu_shop_config_t *dst, const kefu_shop_config_t *src) {
  kefu_shop_config_t c = *src;
  c.couriers = (kefu_strv_t){0};
  kefu_strv_copy(&c.couriers, &src->couriers);
  c.groups = src->ngroups ? calloc(src->ngroups, sizeof *c.groups) : NULL;
  for (uint32_t i = 0; i < src->ngroups; i++) {
    const kefu_group_t *g = &src->groups[i];
    kefu_group_t *d = &c.groups[i];
    *d = (kefu_group_t){
        .bot_enabled = g->bot_enabled, .strategy = g->strategy, .order_states = g->order_states};
    kefu_str_set(&d->group_id, g->group_id);
    kefu_strv_copy(&d->crowd_tags, &g->crowd_tags);
    kefu_strv_copy(&d->item_ids, &g->item_ids);
    kefu_strv_copy(&d->intents, &g->intents);
  }
  if (dst != src)
    kefu_config_clear(dst);
  *dst = c;
}

/* ------------------------------------------------------------------ entities */

void kefu_agent_free(kefu_agent_t *a) {
  if (!a)
    return;
  free(a->id);
  kefu_strv_clear(&a->groups);
  free(a->outcomes);
  free(a);
}

void kefu_invitation_clear(kefu_invitation_t *i) {
  free(i->id);
  free(i->order_id);
  free(i->courier);
  free(i->tracking_no);
  free(i->agent_id);
  memset(i, 0, sizeof *i);
}

void kefu_session_clear(kefu_session_t *s) {
  free(s->agent_id);
  kefu_invitation_clear(&s->invitation);
  memset(s, 0, sizeof *s);
}

void kefu_buyer_free(kefu_buyer_t *b) {
  if (!b)
    return;
  free(b->id);
  kefu_strv_clear(&b->orders);
  free(b->last_order);
  free(b->exclusive_agent);
  kefu_strv_clear(&b->attrs.crowd_tags);
  free(b->attrs.item_id);
  free(b->attrs.intent);
  free(b->attrs.order_id);
  for (uint32_t i = 0; i < b->ncontacts; i++)
    free(b->contacts[i].agent_id);
  free(b->contacts);
  kefu_session_clear(&b->session);
  for (uint32_t i = 0; i < b->nwaits; i++)
    free(b->waits[i].id);
  free(b->waits);
  for (uint32_t i = 0; i < b->nconsultations; i++)
    free(b->consultations[i].id);
  free(b->consultations);
  for (uint32_t i = 0; i < b->npairs; i++)
    free(b->pairs[i].agent_id);
  free(b->pairs);
  if (b->timers) {
    kefu_timers_clear(b->timers);
    free(b->timers);
  }
  free(b);
}

void kefu_order_free(kefu_order_t *o) {
  if (!o)
    return;
  free(o->id);
  free(o->buyer_id);
  for (uint32_t i = 0; i < o->npackages; i++) {
    free(o->packages[i].tracking_no);
    free(o->packages[i].courier);
  }
  free(o->packages);
  free(o->region_code);
  kefu_strv_clear(&o->item_ids);
  free(o);
}

static void free_agent(void *p) {
  kefu_agent_free(p);
}
static void free_buyer(void *p) {
  kefu_buyer_free(p);
}
static void free_order(void *p) {
  kefu_order_free(p);
}

kefu_shop_t *kefu_shop_new(const char *id) {
  kefu_shop_t *s = calloc(1, sizeof *s);
  size_t n = strlen(id);
  memcpy(s->id, id, n > KEFU_ID_MAX ? KEFU_ID_MAX : n);
  kefu_config_defaults(&s->config);
  s->config_is_default = true;
  s->config_gen = 1;
  return s;
}

void kefu_shop_destroy(kefu_shop_t *s) {
  if (!s)
    return;
  kefu_config_clear(&s->config);
  free(s->online.v);
  kefu_map_clear(&s->agents, free_agent);
  kefu_map_clear(&s->buyers, free_buyer);
  free(s->dirty.v);
  kefu_map_clear(&s->orders, free_order);
  for (uint32_t i = 0; i < s->queue.n; i++)
    free(s->queue.v[i].buyer_id);
  free(s->queue.v);
  free(s->rate.days);
  kefu_map_clear(&s->shipped.by_order, NULL);
  kefu_strv_clear(&s->shipped.added);
  kefu_strv_clear(&s->shipped.removed);
  kefu_timers_clear(&s->timers);
  free(s);
}

kefu_agent_t *kefu_shop_agent(const kefu_shop_t *s, const char *id) {
  return kefu_map_get(&s->agents, id);
}
kefu_buyer_t *kefu_shop_buyer(const kefu_shop_t *s, const char *id) {
  return kefu_map_get(&s->buyers, id);
}
kefu_order_t *kefu_shop_order(const kefu_shop_t *s, const char *id) {
  return kefu_map_get(&s->orders, id);
}

kefu_agent_t *kefu_shop_agent_add(kefu_shop_t *s, const char *id) {
  kefu_agent_t *a = kefu_shop_agent(s, id);
  if (a)
    return a;
  a = calloc(1, sizeof *a);
  a->id = strdup(id);
  a->presence = KEFU_PRESENCE_OFFLINE;
  a->level = 1;
  a->capacity = 20;
  a->account_kind = 0; /* SUB */
  kefu_map_put(&s->agents, id, a);
  return a;
}

kefu_buyer_t *kefu_shop_buyer_add(kefu_shop_t *s, const char *id) {
  kefu_buyer_t *b = kefu_shop_buyer(s, id);
  if (b)
    return b;
  b = calloc(1, sizeof *b);
  b->id = strdup(id);
  kefu_map_put(&s->buyers, id, b);
  return b;
}

kefu_order_t *kefu_shop_order_add(kefu_shop_t *s, const char *id, const char *buyer_id) {
  kefu_order_t *o = kefu_shop_order(s, id);
  if (o)
    return o;
  o = calloc(1, sizeof *o);
  o->id = strdup(id);
  kefu_str_set(&o->buyer_id, buyer_id);
  o->status = KEFU_STATUS_NONE;
  kefu_map_put(&s->orders, id, o);
  return o;
}

/* ------------------------------------------------------------------ the ONLINE index */

/* The position of @p id in the index, or where it would go; *@p found says which. */
static uint32_t online_find(const kefu_online_t *l, const char *id, bool *found) {
  uint32_t lo = 0, hi = l->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = strcmp(l->v[mid]->id, id);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

/* Puts @p a in the index (replacing an agent of the same id) or takes that id out. */
static void online_set(kefu_online_t *l, kefu_agent_t *a, bool online) {
  bool found;
  uint32_t i = online_find(l, a->id, &found);
  if (found && online) {
    l->v[i] = a;
  } else if (found) {
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
  } else if (online) {
    if (l->n == l->cap) {
      l->cap = l->cap ? 2 * l->cap : 16;
      l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof *l->v);
    l->v[i] = a;
    l->n++;
  }
}

void kefu_agent_set_presence(kefu_shop_t *s, kefu_agent_t *a, kefu_presence_t presence) {
  bool was = a->presence == KEFU_PRESENCE_ONLINE, is = presence == KEFU_PRESENCE_ONLINE;
  a->presence = presence;
  if (was != is)
    online_set(&s->online, a, is);
}

void kefu_shop_put_agent(kefu_shop_t *s, kefu_agent_t *a) {
  kefu_agent_t *old = kefu_map_put(&s->agents, a->id, a);
  if (a->presence == KEFU_PRESENCE_ONLINE || (old && old->presence == KEFU_PRESENCE_ONLINE))
    online_set(&s->online, a, a->presence == KEFU_PRESENCE_ONLINE);
  kefu_agent_free(old);
}
void kefu_buyer_touch(kefu_shop_t *s, kefu_buyer_t *b) {
  if (b->changed)
    return;
  b->changed = true;
  if (s->dirty.n == s->dirty.cap) {
    s->dirty.cap = s->dirty.cap ? 2 * s->dirty.cap : 16;
    s->dirty.v = realloc(s->dirty.v, s->dirty.cap * sizeof *s->dirty.v);
  }
  s->dirty.v[s->dirty.n++] = b;
}

void kefu_shop_put_buyer(kefu_shop_t *s, kefu_buyer_t *b) {
  kefu_buyer_t *old = kefu_map_put(&s->buyers, b->id, b);
  for (uint32_t i = 0; old && old->changed && i < s->dirty.n; i++)
    if (s->dirty.v[i] == old)
      s->dirty.v[i] = s->dirty.v[--s->dirty.n];
  kefu_buyer_free(old);
  if (b->changed) {
    b->changed = false;
    kefu_buyer_touch(s, b);
  }
}
void kefu_shop_put_order(kefu_shop_t *s, kefu_order_t *o) {
  kefu_order_free(kefu_map_put(&s->orders, o->id, o));
}

void kefu_shop_set_shipped(kefu_shop_t *s, const char *order_id, int64_t shipped_ts) {
  if (shipped_ts) {
    kefu_map_put(&s->shipped.by_order, order_id, (void *)(intptr_t)shipped_ts);
    kefu_strv_push(&s->shipped.added, order_id);
  } else if (!kefu_map_get(&s->shipped.by_order, order_id)) {
    return;
  } else {
    kefu_map_del(&s->shipped.by_order, order_id);
    kefu_strv_push(&s->shipped.removed, order_id);
  }
  s->shipped.changed = true;
}

void kefu_shop_config_replaced(kefu_shop_t *s) {
  if (++s->config_gen == 0)
    s->config_gen = 1;
}

void kefu_shop_set_config(kefu_shop_t *s, const kefu_shop_config_t *c, bool is_default) {
  kefu_config_copy(&s->config, c);
  s->config_is_default = is_default;
  s->config_changed = true;
  kefu_shop_config_replaced(s);
}

/* ------------------------------------------------------------------ timers */

int kefu_timer_cmp(const kefu_timer_t *x, const kefu_timer_t *y) {
#define CMP(f)                                                                                     \
  if (x->f != y->f)                                                                                \
    return x->f < y->f ? -1 : 1;
  CMP(deadline)
  CMP(order.ts)
  CMP(order.rank)
  CMP(order.offset)
  CMP(order.n)
#undef CMP
  return 0;
}

void kefu_timer_clear(kefu_timer_t *t) {
  free(t->ref);
  memset(t, 0, sizeof *t);
}

void kefu_timer_copy(kefu_timer_t *dst, const kefu_timer_t *src) {
  *dst = *src;
  dst->ref = src->ref ? strdup(src->ref) : NULL;
}

kefu_timers_t *kefu_shop_timers_of(kefu_shop_t *s, const char *buyer_id) {
  if (!buyer_id)
    return &s->timers;
  kefu_buyer_t *b = kefu_shop_buyer_add(s, buyer_id);
  if (!b->timers)
    b->timers = calloc(1, sizeof *b->timers);
  return b->timers;
}

void kefu_timers_add(kefu_timers_t *l, const kefu_timer_t *t) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 4;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
  }
  kefu_timer_copy(&l->v[l->n++], t);
}

static bool same_order(const kefu_timer_order_t *a, const kefu_timer_order_t *b) {
  return a->ts == b->ts && a->rank == b->rank && a->offset == b->offset && a->n == b->n;
}

bool kefu_timers_take(kefu_timers_t *l, int64_t deadline, const kefu_timer_order_t *order,
                      kefu_timer_t *out) {
  for (uint32_t i = 0; l && i < l->n; i++) {
    if (l->v[i].deadline != deadline || !same_order(&l->v[i].order, order))
      continue;
    *out = l->v[i]; /* with its ref */
    l->v[i] = l->v[--l->n];
    return true;
  }
  return false;
}

bool kefu_timers_remove(kefu_timers_t *l, const kefu_timer_t *t) {
  kefu_timer_t gone;
  if (!kefu_timers_take(l, t->deadline, &t->order, &gone))
    return false;
  kefu_timer_clear(&gone);
  return true;
}

void kefu_timers_clear(kefu_timers_t *l) {
  for (uint32_t i = 0; i < l->n; i++)
    kefu_timer_clear(&l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

int64_t kefu_timers_min(const kefu_timers_t *l) {
  int64_t m = INT64_MAX;
  for (uint32_t i = 0; l && i < l->n; i++)
    if (l->v[i].deadline < m)
      m = l->v[i].deadline;
  return m;
}

/* ------------------------------------------------------------------ events */

void kefu_event_clear(kefu_event_t *ev) {
  free(ev->event_id);
  free(ev->shop_id);
  free(ev->buyer_id);
  free(ev->agent_id);
  free(ev->order_id);
  free(ev->chat.item_id);
  free(ev->chat.intent);
  free(ev->chat.invitation_id);
  free(ev->chat.region_code);
  kefu_strv_clear(&ev->chat.crowd_tags);
  kefu_strv_clear(&ev->chat.couriers);
  for (uint32_t i = 0; i < ev->order.npackages; i++) {
    free(ev->order.packages[i].tracking_no);
    free(ev->order.packages[i].courier);
  }
  free(ev->order.packages);
  free(ev->order.region_code);
  kefu_strv_clear(&ev->order.item_ids);
  free(ev->order.after_sale_reason);
  kefu_strv_clear(&ev->agent.groups);
  kefu_config_clear(&ev->config);
  memset(ev, 0, sizeof *ev);
}
