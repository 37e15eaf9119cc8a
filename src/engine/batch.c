/* State: one batch's Redis reads, rules and timers in merge order, and Redis writes. */
#include "common/enums.h"
#include "engine/processor_int.h"

/* ---------------------------------------------------------------- one batch */

void engine_cause_of(const input_t *in, char *out, size_t outlen) {
  if (in->idle)
    snprintf(out, outlen, "%s", in->error); /* idle-<partition>-<watermark> */
  else
    snprintf(out, outlen, "%s/%d/%lld", kefu_topic_name(in->topic), in->task,
             (long long)in->offset);
}

static size_t shop_slot(kefu_processor_t *p, batch_state_t *bs, const char *shop_id, int task) {
  json_t *idx = json_object_get(bs->shop_index, shop_id);
  if (idx)
    return (size_t)json_integer_value(idx);
  size_t i = bs->nshops++;
  bs->shops = realloc(bs->shops, bs->nshops * sizeof *bs->shops);
  bs->loads = realloc(bs->loads, bs->nshops * sizeof *bs->loads);
  bs->shop_task = realloc(bs->shop_task, bs->nshops * sizeof *bs->shop_task);
  bs->shop_task[i] = task;
  bs->shops[i] = kefu_shop_new(shop_id, p->config_defaults);
  kefu_shop_load_init(&bs->loads[i], bs->shops[i]);
  json_object_set_new(bs->shop_index, shop_id, json_integer((json_int_t)i));
  return i;
}

void engine_batch_state_clear(batch_state_t *bs) {
  for (size_t i = 0; i < bs->nshops; i++) {
    kefu_shop_load_clear(&bs->loads[i]);
    kefu_shop_destroy(bs->shops[i]);
  }
  free(bs->shops);
  free(bs->loads);
  free(bs->shop_task);
  for (int t = 0; t < MAX_TASKS; t++)
    kefu_timer_queue_clear(&bs->timers[t]);
  json_decref(bs->shop_index);
  json_decref(bs->remembered);
  json_decref(bs->computed);
  json_decref(bs->outputs);
  memset(bs, 0, sizeof *bs);
}

static void want(json_t *set, const char *id) {
  if (id)
    json_object_set_new(set, id, json_true());
}

/* Shops whose timers may fire in this batch: the task's index says their earliest
 * deadline is below the batch's highest ts (a bound on both the watermark and the
 * same-buyer rule of SPEC §1.3). Their due timers are read with their state. */
static void mark_due_timers(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  const char *shop;
  json_t *min;
  for (int t = 0; t < MAX_TASKS; t++)
    bs->max_ts[t] = INT64_MIN;
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    int64_t ts = in->idle ? in->sort_ts : in->valid ? in->ev.ts : INT64_MIN;
    if (ts > bs->max_ts[in->task])
      bs->max_ts[in->task] = ts;
  }
  for (int t = 0; t < MAX_TASKS; t++) {
    if (bs->max_ts[t] == INT64_MIN || !p->tasks[t].timer_index)
      continue;
    json_object_foreach(p->tasks[t].timer_index, shop, min) {
      if (json_integer_value(min) >= bs->max_ts[t])
        continue;
      size_t slot = shop_slot(p, bs, shop, t);
      bs->loads[slot].timers_before = bs->max_ts[t];
    }
  }
}

/* Phase 1 and 2 reads for every shop of the batch, plus the remembered outputs. */
int engine_load_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen) {
  redisReply **r;
  char cause[300], key[128];
  int next = 0, task_reply[MAX_TASKS];
  json_t *causes_by_task[MAX_TASKS] = {0};

  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    int task = in->task;
    if (!causes_by_task[task])
      causes_by_task[task] = json_array();
    engine_cause_of(in, cause, sizeof cause);
    json_array_append_new(causes_by_task[task], json_string(cause));
    if (!in->valid || in->idle)
      continue;
    size_t slot = shop_slot(p, bs, in->ev.shop_id, task); /* may move bs->loads */
    kefu_shop_load_t *l = &bs->loads[slot];
    want(l->buyers, in->ev.buyer_id);
    want(l->orders, in->ev.order_id);
    want(l->event_ids, in->ev.event_id);
    if (in->topic == KEFU_T_CHAT && in->ev.type == KEFU_CHAT_DELIVERABILITY_QUERY &&
        json_is_true(json_object_get(in->ev.rec, "list_undeliverable"))) {
      int64_t since = in->ev.ts - 30 * KEFU_DAY_MS; /* DELIV-4 reads the shop's index */
      if (l->shipped_since == INT64_MIN || since < l->shipped_since)
        l->shipped_since = since;
    }
  }
  mark_due_timers(p, b, bs);
  for (size_t i = 0; i < bs->nshops; i++)
    kefu_store_load_append(p->redis, p->o->redis_namespace, &bs->loads[i], &next);
  for (int t = 0; t < MAX_TASKS; t++) {
    if (!causes_by_task[t])
      continue;
    kefu_cmd_t c;
    size_t j;
    json_t *v;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HMGET");
    engine_task_out_key(p, t, key, sizeof key);
    kefu_cmd_str(&c, key);
    json_array_foreach(causes_by_task[t], j, v) kefu_cmd_str(&c, json_string_value(v));
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    task_reply[t] = next++;
  }
  int rc = -1;
  if (engine_redis_flush(p, &r, errstr, errlen) != next)
    goto done;
  for (size_t i = 0; i < bs->nshops; i++)
    if (kefu_store_load_parse(&bs->loads[i], r, errstr, errlen))
      goto done;
  for (int t = 0; t < MAX_TASKS; t++) {
    size_t j;
    json_t *v;
    if (!causes_by_task[t])
      continue;
    const redisReply *rep = r[task_reply[t]];
    json_array_foreach(causes_by_task[t], j, v) {
      if (rep->type == REDIS_REPLY_ARRAY && j < rep->elements &&
          rep->element[j]->type == REDIS_REPLY_STRING)
        json_object_set_new(bs->remembered, json_string_value(v),
                            json_loadb(rep->element[j]->str, rep->element[j]->len, 0, NULL));
    }
  }
  /* What phase 1 pointed at: buyers of due timers, orders of loaded buyers. */
  for (int round = 0; round < 3; round++) {
    next = 0;
    for (size_t i = 0; i < bs->nshops; i++)
      kefu_store_more_append(p->redis, p->o->redis_namespace, &bs->loads[i], &next);
    if (next == 0)
      break;
    if (engine_redis_flush(p, &r, errstr, errlen) != next)
      goto done;
    for (size_t i = 0; i < bs->nshops; i++)
      if (kefu_store_more_parse(&bs->loads[i], r, errstr, errlen))
        goto done;
  }
  for (size_t i = 0; i < bs->nshops; i++) { /* the task's queue takes the loaded timers */
    kefu_timer_queue_t *q = &bs->loads[i].timers;
    for (size_t k = 0; k < q->n; k++)
      kefu_timer_queue_add(&bs->timers[bs->shop_task[i]], q->items[k]);
    q->n = 0;
  }
  rc = 0;
done:
  for (int t = 0; t < MAX_TASKS; t++)
    json_decref(causes_by_task[t]);
  return rc;
}

/* Applies one valid input to its shop, unless its state is already applied (a
 * re-processed input) or its event id was seen in the last 7 days (a duplicate). */
static void apply_input(kefu_processor_t *p, batch_state_t *bs, input_t *in, kefu_emitter_t *em) {
  size_t slot = shop_slot(p, bs, in->ev.shop_id, in->task); /* may move */
  kefu_shop_t *shop = bs->shops[slot];
  char field[300], offset[32];
  snprintf(field, sizeof field, "%s/%d", kefu_topics[in->topic].suffix, in->task);
  const char *applied = json_string_value(json_object_get(shop->applied, field));
  if (applied && strtoll(applied, NULL, 10) >= in->offset)
    return;
  snprintf(offset, sizeof offset, "%lld", (long long)in->offset);
  json_object_set_new(shop->applied, field, json_string(offset));
  if (json_object_get(shop->dedup, in->ev.event_id) ||
      json_object_get(shop->dedup_new, in->ev.event_id)) {
    kefu_metric_add(p->m.duplicates, 1);
    return;
  }
  json_object_set_new(shop->dedup_new, in->ev.event_id, json_integer(in->ev.ts));
  kefu_rules_apply(&p->env, shop, &in->ev, em);
}

static void add_outputs(batch_state_t *bs, json_t *records, const char *cause, size_t index) {
  size_t i;
  json_t *r;
  json_array_foreach(records, i, r)
      json_array_append_new(bs->outputs, json_pack("[O, O, s, I]", json_array_get(r, 0),
                                                   json_array_get(r, 1), cause, (json_int_t)index));
}

static void fire_one(kefu_processor_t *p, batch_state_t *bs, kefu_timer_t *t, int task,
                     kefu_emitter_t *em) {
  kefu_shop_t *shop = bs->shops[shop_slot(p, bs, t->shop_id, task)];
  char *member = kefu_timer_member(t);
  /* A timer made in this batch was never written: it is simply not written. */
  if (json_object_get(shop->timers_added, member))
    json_object_del(shop->timers_added, member);
  else
    json_array_append_new(shop->timers_removed, json_string(member));
  free(member);
  kefu_rules_fire(&p->env, shop, t, em);
  kefu_timer_free(t);
}

/* SPEC §1.3: before an event is applied, the timers it makes due fire, in (deadline,
 * creation) order; a chat event first fires its own buyer's timers earlier than its ts. */
static void fire_due(kefu_processor_t *p, batch_state_t *bs, const input_t *in,
                     kefu_emitter_t *em) {
  int id = in->task;
  task_t *task = &p->tasks[id];
  kefu_timer_queue_t *q = &bs->timers[id];
  kefu_timer_t *t;
  int64_t wm = in->ev.ts - p->o->lateness_ms;
  if (in->ev.ts < task->watermark) /* SPEC §1.3: applied, but it cannot reopen a closed day */
    kefu_metric_add(p->m.late, 1);
  if (wm > task->watermark)
    task->watermark = wm;
  while ((t = kefu_timer_queue_pop_due(q, task->watermark, NULL, NULL)))
    fire_one(p, bs, t, id, em);
  if (in->topic == KEFU_T_CHAT && in->ev.buyer_id)
    while ((t = kefu_timer_queue_pop_due(q, in->ev.ts, in->ev.shop_id, in->ev.buyer_id)))
      fire_one(p, bs, t, id, em);
}

static void keep_outputs(batch_state_t *bs, kefu_emitter_t *em, const char *cause, size_t i) {
  json_t *remembered = json_object_get(bs->remembered, cause);
  if (remembered) {
    add_outputs(bs, remembered, cause, i);
  } else if (json_array_size(em->records)) {
    add_outputs(bs, em->records, cause, i);
    json_object_set(bs->computed, cause, em->records);
  }
}

/* SPEC §1.3 idle advance: the task's watermark moves to the tick's, and every timer it
 * makes due fires with the tick as cause. */
static void run_idle_tick(kefu_processor_t *p, batch_state_t *bs, const input_t *in,
                          const char *cause, size_t i) {
  task_t *task = &p->tasks[in->task];
  kefu_timer_queue_t *q = &bs->timers[in->task];
  kefu_timer_t *t;
  kefu_emitter_t em;
  kefu_emitter_init(&em, in->error);
  em.cause_ts = in->sort_ts;
  em.cause_rank = 9; /* after every topic of that ts */
  em.cause_offset = 0;
  em.timers = q;
  if (in->sort_ts > task->watermark)
    task->watermark = in->sort_ts;
  while ((t = kefu_timer_queue_pop_due(q, task->watermark, NULL, NULL)))
    fire_one(p, bs, t, in->task, &em);
  keep_outputs(bs, &em, cause, i);
  kefu_emitter_clear(&em);
}

void engine_run_rules(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  char cause[300];
  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    engine_cause_of(in, cause, sizeof cause);
    if (in->idle) {
      run_idle_tick(p, bs, in, cause, i);
      continue;
    }
    if (!in->valid) {
      kefu_metric_add(p->m.dlq, 1);
      continue;
    }
    kefu_emitter_t em;
    kefu_emitter_init(&em, in->ev.event_id);
    em.cause_ts = in->ev.ts;
    em.cause_rank = kefu_topics[in->topic].rank;
    em.cause_offset = in->offset;
    em.timers = &bs->timers[in->task];
    fire_due(p, bs, in, &em);
    apply_input(p, bs, in, &em);
    keep_outputs(bs, &em, cause, i);
    kefu_emitter_clear(&em);
  }
}

/* Before a shop's new timers are written, its entry in the task's timer index is
 * lowered to their earliest deadline (ZADD LT), so the index never misses a timer even
 * if we die between the two; the exact value is written after the apply. */
static int index_new_timers(kefu_processor_t *p, batch_state_t *bs) {
  char key[128], num[32];
  const char *member;
  json_t *deadline;
  int n = 0;
  for (size_t i = 0; i < bs->nshops; i++) {
    int64_t min = INT64_MAX;
    json_object_foreach(bs->shops[i]->timers_added, member, deadline) {
      if (json_integer_value(deadline) < min)
        min = json_integer_value(deadline);
    }
    if (min == INT64_MAX)
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "ZADD");
    engine_timer_index_key(p, bs->shop_task[i], key, sizeof key);
    kefu_cmd_str(&c, key);
    kefu_cmd_str(&c, "LT");
    snprintf(num, sizeof num, "%lld", (long long)min);
    kefu_cmd_str(&c, num);
    kefu_cmd_str(&c, bs->shops[i]->id);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  return n;
}

/* The outputs of this batch's causes, one variadic HSET per task (not one per event). */
static int remember_outputs(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  task_out_cmds_t tc = {.verb = "HSET"};
  char cause[300];
  for (size_t i = 0; i < b->n; i++) {
    engine_cause_of(b->items[i], cause, sizeof cause);
    json_t *records = json_object_get(bs->computed, cause);
    if (!records)
      continue;
    kefu_cmd_t *c = engine_task_out_cmd(p, &tc, b->items[i]->task);
    char *text = json_dumps(records, JSON_COMPACT);
    kefu_cmd_str(c, cause);
    kefu_cmd_str(c, text);
    free(text);
  }
  return engine_task_out_send(p, &tc);
}

/* Remembered outputs first, then one atomic kefu_apply per shop (see the top comment). */
int engine_store_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, int64_t max_ts,
                       char *errstr, size_t errlen) {
  redisReply **r;
  int n = index_new_timers(p, bs), first_apply;

  n += remember_outputs(p, b, bs);
  first_apply = n;
  for (size_t i = 0; i < bs->nshops; i++) {
    kefu_store_apply_append(p->redis, p->o->redis_namespace, bs->shops[i],
                            max_ts - 7 * KEFU_DAY_MS);
    n++;
  }
  if (n == 0)
    return 0;
  if (engine_redis_flush(p, &r, errstr, errlen) != n)
    return -1;
  for (int i = 0; i < n; i++) {
    if (i >= first_apply &&
        kefu_store_apply_check(r[i], bs->shops[i - first_apply], errstr, errlen))
      return -1;
    if (i < first_apply && r[i]->type == REDIS_REPLY_ERROR) {
      snprintf(errstr, errlen, "redis: %s", r[i]->str);
      return -1;
    }
  }
  return 0;
}
