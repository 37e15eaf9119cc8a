/* State: one batch's Redis reads, rules and timers in merge order, and Redis writes.
 *
 * A shop's state comes from the owner cache (cache.c) when this instance has it, and is
 * read whole from Redis otherwise. In steady state a batch reads nothing: its Redis cost
 * is one pipeline of writes (remembered outputs, then one kefu_apply per changed shop)
 * and, after the Kafka commit, the positions (output.c). */
#include "common/enums.h"
#include "engine/processor_int.h"

#define SEEN_WINDOW_MS (7 * KEFU_DAY_MS) /* SPEC §2: a repeated event_id within 7 days */

static int32_t utc_day(int64_t ts) {
  return (int32_t)(ts >= 0 ? ts / KEFU_DAY_MS : (ts - KEFU_DAY_MS + 1) / KEFU_DAY_MS);
}

void engine_set_cause(input_t *in) {
  if (in->idle)
    snprintf(in->cause, sizeof in->cause, "%s", in->error); /* idle-<partition>-<watermark> */
  else
    snprintf(in->cause, sizeof in->cause, "%s/%d/%lld", kefu_topic_name(in->topic), in->task,
             (long long)in->offset);
}

/* The topic of each record kind (rules/effects.c names it by suffix). */
static const kefu_topic_t *kind_topics(void) {
  static kefu_topic_t topics[KEFU_REC__COUNT];
  static bool ready;
  if (!ready) {
    for (int k = 0; k < KEFU_REC__COUNT; k++)
      topics[k] = kefu_topic_by_suffix(kefu_record_kinds[k].topic_suffix);
    ready = true;
  }
  return topics;
}

static void batch_add_shop(batch_state_t *bs, shop_entry_t *e) {
  if (e->in_batch)
    return;
  e->in_batch = true;
  e->timers_touched = false;
  e->need_from = INT32_MAX;
  e->need_to = INT32_MIN;
  e->new_timers_min = INT64_MAX;
  e->load_reply = e->seen_reply = -1;
  bs->shops = realloc(bs->shops, (bs->nshops + 1) * sizeof *bs->shops);
  bs->shops[bs->nshops++] = e;
}

void engine_batch_state_clear(batch_state_t *bs) {
  for (size_t i = 0; i < bs->nshops; i++)
    bs->shops[i]->in_batch = false;
  free(bs->shops);
  kefu_map_clear(&bs->remembered, engine_outputs_free);
  for (size_t i = 0; i < bs->ninputs; i++)
    engine_outputs_free(bs->computed[i]);
  free(bs->computed);
  free(bs->kept);
  free(bs->outs);
  memset(bs, 0, sizeof *bs);
}

/* The UTC days whose event ids an event at @p ts is checked against. */
static void need_days(shop_entry_t *e, int64_t ts) {
  int32_t from = utc_day(ts - SEEN_WINDOW_MS), to = utc_day(ts + SEEN_WINDOW_MS);
  if (from < e->need_from)
    e->need_from = from;
  if (to > e->need_to)
    e->need_to = to;
}

/* Shops not in memory whose timers may fire in this batch: the task's index says their
 * earliest deadline is below the batch's highest ts (a bound on both the watermark and
 * the same-buyer rule of SPEC §1.3). They are read with the batch's other shops. */
static void add_due_shops(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
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
      shop_entry_t *e = engine_cache_get(p, shop);
      if (json_integer_value(min) >= bs->max_ts[t] || (e && e->loaded))
        continue;
      e = engine_cache_add(p, shop, t);
      batch_add_shop(bs, e);
      need_days(e, bs->max_ts[t]);
    }
  }
}

static void seen_loaded(void *arg, uint64_t h, int64_t ts) {
  engine_seen_put(arg, h, ts);
}

static void topic_fields(int task, char fields[KEFU_KEYED_INPUTS][64],
                         const char *ptrs[KEFU_KEYED_INPUTS]) {
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
    snprintf(fields[k], sizeof fields[k], "%s/%d", kefu_topics[k].suffix, task);
    ptrs[k] = fields[k];
  }
}

/* The outputs remembered for the batch's inputs: only needed when one of them may have
 * been processed before without its commit being known — the task's first batch after
 * assignment, or after a failed attempt (task_t.check_remembered). */
static void append_remembered(kefu_processor_t *p, const batch_t *b, json_t *causes[MAX_TASKS],
                              int reply[MAX_TASKS], int *next) {
  char key[128];
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    if (!p->tasks[in->task].check_remembered)
      continue;
    if (!causes[in->task])
      causes[in->task] = json_array();
    json_array_append_new(causes[in->task], json_string(in->cause));
  }
  for (int t = 0; t < MAX_TASKS; t++) {
    size_t j;
    json_t *v;
    if (!causes[t])
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HMGET");
    engine_task_out_key(p, t, key, sizeof key);
    kefu_cmd_str(&c, key);
    json_array_foreach(causes[t], j, v) kefu_cmd_str(&c, json_string_value(v));
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    reply[t] = (*next)++;
  }
}

static void parse_remembered(kefu_processor_t *p, batch_state_t *bs, json_t *causes[MAX_TASKS],
                             const int reply[MAX_TASKS], redisReply **r) {
  for (int t = 0; t < MAX_TASKS; t++) {
    size_t j;
    json_t *v;
    if (!causes[t])
      continue;
    const redisReply *rep = r[reply[t]];
    json_array_foreach(causes[t], j, v) {
      kefu_buf_t *blob;
      if (rep->type == REDIS_REPLY_ARRAY && j < rep->elements &&
          rep->element[j]->type == REDIS_REPLY_STRING &&
          (blob = engine_outputs_read(p, rep->element[j]->str, rep->element[j]->len,
                                      json_string_value(v))))
        engine_outputs_free(kefu_map_put(&bs->remembered, json_string_value(v), blob));
    }
  }
}

/* Every shop of the batch in memory: from the cache, or read whole (one pipeline for all
 * of them, with the remembered outputs when needed); no round trip when the cache has
 * everything. */
int engine_load_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen) {
  redisReply **r;
  int next = 0, reply[MAX_TASKS];
  json_t *causes[MAX_TASKS] = {0};
  const char *ns = p->o->redis_namespace;
  int rc = -1;

  bs->batch_no = ++p->batch_no;
  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    if (!in->valid || in->idle)
      continue;
    shop_entry_t *e = engine_cache_add(p, in->ev.shop_id, in->task);
    in->e = e; /* for the rules, in this batch */
    batch_add_shop(bs, e);
    need_days(e, in->ev.ts);
  }
  add_due_shops(p, b, bs);
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    e->used = bs->batch_no;
    if (!e->loaded) {
      e->seen_req_from = e->need_from;
      e->seen_req_to = e->need_to;
      e->load_reply = next;
      next += kefu_store_load_append(p->redis, ns, e->shop->id, e->need_from, e->need_to);
    } else if (e->need_from < e->seen_from || e->need_to > e->seen_to) {
      /* Days of event ids not read yet: later days as event time moves on, earlier ones
       * for a late event. The whole range is read again (its days are few). */
      e->seen_req_from = e->need_from < e->seen_from ? e->need_from : e->seen_from;
      e->seen_req_to = e->need_to > e->seen_to ? e->need_to : e->seen_to;
      e->seen_reply = next;
      next += kefu_store_seen_append(p->redis, ns, e->shop->id, e->seen_req_from, e->seen_req_to);
    }
  }
  append_remembered(p, b, causes, reply, &next);
  if (next == 0)
    return 0;
  if (engine_redis_flush(p, &r, errstr, errlen) != next)
    goto done;
  parse_remembered(p, bs, causes, reply, r);
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    char fields[KEFU_KEYED_INPUTS][64];
    const char *ptrs[KEFU_KEYED_INPUTS];
    if (e->load_reply >= 0) {
      topic_fields(e->task, fields, ptrs);
      if (kefu_store_load_parse(r + e->load_reply, e->shop, ptrs, e->stored, seen_loaded, &e->seen,
                                errstr, errlen))
        goto done;
      memcpy(e->applied, e->stored, sizeof e->applied);
      e->seen_from = e->seen_req_from;
      e->seen_to = e->seen_req_to;
      e->loaded = true;
      engine_heap_add_shop(&p->tasks[e->task].heap, e);
    } else if (e->seen_reply >= 0) {
      if (kefu_store_seen_parse(r[e->seen_reply], seen_loaded, &e->seen, errstr, errlen))
        goto done;
      e->seen_from = e->seen_req_from;
      e->seen_to = e->seen_req_to;
    }
  }
  rc = 0;
done:
  for (int t = 0; t < MAX_TASKS; t++)
    json_decref(causes[t]);
  return rc;
}

/* ------------------------------------------------------------------ rules and timers */

/* The rules' hook for a new timer: it joins its task's queue, so it can fire in this
 * batch already, and lowers the shop's entry in the task's index before it is written. */
static void on_timer(void *arg, kefu_shop_t *shop, const char *buyer_id, const kefu_timer_t *t) {
  kefu_processor_t *p = arg;
  shop_entry_t *e = engine_cache_get(p, shop->id);
  if (!e)
    return;
  kefu_buyer_t *b = buyer_id ? kefu_shop_buyer(shop, buyer_id) : NULL;
  engine_heap_push(&p->tasks[e->task].heap, &(timer_ref_t){t->deadline, t->order, e, b});
  if (t->deadline < e->new_timers_min)
    e->new_timers_min = t->deadline;
  e->timers_touched = true;
}

static void emitter_for(kefu_processor_t *p, kefu_emitter_t *em, const char *cause_id, int64_t ts,
                        int rank, int64_t offset) {
  kefu_emitter_init(em, cause_id);
  em->cause_ts = ts;
  em->cause_rank = rank;
  em->cause_offset = offset;
  em->on_timer = on_timer;
  em->on_timer_arg = p;
}

/* Fires @p ref's timer if it is still pending: it leaves its owner (written with the
 * shop's state, so it fires once), then its rule runs. A timer already fired by the
 * same-buyer rule is no longer there. */
static void fire_ref(kefu_processor_t *p, batch_state_t *bs, const timer_ref_t *ref,
                     kefu_emitter_t *em) {
  kefu_shop_t *shop = ref->e->shop;
  kefu_timers_t *owner = ref->buyer ? ref->buyer->timers : &shop->timers;
  kefu_timer_t t;
  if (!kefu_timers_take(owner, ref->deadline, &ref->order, &t))
    return; /* fired already (the same-buyer rule) */
  if (ref->buyer)
    kefu_buyer_touch(ref->buyer);
  else
    shop->timers_changed = true;
  batch_add_shop(bs, ref->e); /* a held shop without input in this batch: written too */
  ref->e->used = bs->batch_no;
  ref->e->timers_touched = true;
  kefu_rules_fire(&p->env, shop, ref->buyer ? ref->buyer->id : NULL, &t, em);
  kefu_timer_clear(&t);
}

/* Every timer of @p task due before @p watermark, in (deadline, creation) order. */
static void fire_heap(kefu_processor_t *p, batch_state_t *bs, task_t *task, int64_t watermark,
                      kefu_emitter_t *em) {
  timer_heap_t *h = &task->heap;
  while (h->n && h->v[0].deadline < watermark) {
    timer_ref_t ref = h->v[0];
    engine_heap_pop(h);
    fire_ref(p, bs, &ref, em);
  }
}

/* SPEC §1.3: a chat event first fires its own buyer's timers earlier than its ts. */
static void fire_buyer(kefu_processor_t *p, batch_state_t *bs, shop_entry_t *e,
                       const char *buyer_id, int64_t ts, kefu_emitter_t *em) {
  kefu_buyer_t *b = kefu_shop_buyer(e->shop, buyer_id);
  while (b && b->timers) {
    kefu_timer_t *first = NULL;
    for (uint32_t i = 0; i < b->timers->n; i++)
      if (b->timers->v[i].deadline < ts && (!first || kefu_timer_cmp(&b->timers->v[i], first) < 0))
        first = &b->timers->v[i];
    if (!first)
      return;
    timer_ref_t ref = {first->deadline, first->order, e, b};
    fire_ref(p, bs, &ref, em);
  }
}

/* SPEC §1.3: before an event is applied, the timers it makes due fire. */
static void fire_due(kefu_processor_t *p, batch_state_t *bs, shop_entry_t *e, const input_t *in,
                     kefu_emitter_t *em) {
  task_t *task = &p->tasks[in->task];
  int64_t wm = in->ev.ts - p->o->lateness_ms;
  if (in->ev.ts < task->watermark) /* SPEC §1.3: applied, but it cannot reopen a closed day */
    kefu_metric_add(p->m.late, 1);
  if (wm > task->watermark)
    task->watermark = wm;
  fire_heap(p, bs, task, task->watermark, em);
  if (in->topic == KEFU_T_CHAT && in->ev.buyer_id)
    fire_buyer(p, bs, e, in->ev.buyer_id, in->ev.ts, em);
}

/* Applies one valid input to its shop, unless its state is already applied (a
 * re-processed input) or its event id was seen within 7 days (a duplicate). */
static void apply_input(kefu_processor_t *p, shop_entry_t *e, input_t *in, kefu_emitter_t *em) {
  int k = in->topic; /* the keyed topics are the first four */
  int64_t seen_ts;
  if (e->applied[k] >= in->offset) {
    /* Processed before without a known commit (a crash, a failed attempt): its outputs
     * come from what it remembered, and so may the next batch's (check_remembered). */
    p->tasks[in->task].saw_applied = true;
    return;
  }
  e->applied[k] = in->offset;
  uint64_t h = engine_event_hash(in->ev.event_id);
  if (engine_seen_get(&e->seen, h, &seen_ts) && llabs(in->ev.ts - seen_ts) <= SEEN_WINDOW_MS) {
    kefu_metric_add(p->m.duplicates, 1);
    return;
  }
  engine_seen_put(&e->seen, h, in->ev.ts);
  engine_seen_note(e, h, in->ev.ts);
  kefu_rules_apply(&p->env, e->shop, &in->ev, em);
}

/* The outputs of input @p i: what it remembered, if it was processed before (the same
 * bytes again), else what the rules emitted now, encoded once, to be remembered. */
static void keep_outputs(kefu_processor_t *p, batch_state_t *bs, kefu_emitter_t *em,
                         const char *cause, size_t i) {
  const kefu_buf_t *remembered = kefu_map_get(&bs->remembered, cause);
  if (remembered) {
    engine_outputs_add(bs, remembered, i);
    bs->kept[i] = true;
  } else if (em->n) {
    kefu_buf_t *blob = engine_outputs_encode(p, em, kind_topics(), cause);
    engine_outputs_add(bs, blob, i);
    bs->computed[i] = blob;
    bs->kept[i] = true;
  }
}

/* SPEC §1.3 idle advance: the task's watermark moves to the tick's, and every timer it
 * makes due fires with the tick as cause. */
static void run_idle_tick(kefu_processor_t *p, batch_state_t *bs, const input_t *in,
                          const char *cause, size_t i) {
  task_t *task = &p->tasks[in->task];
  kefu_emitter_t em;
  emitter_for(p, &em, in->error, in->sort_ts, 9 /* after every topic of that ts */, 0);
  if (in->sort_ts > task->watermark)
    task->watermark = in->sort_ts;
  fire_heap(p, bs, task, task->watermark, &em);
  keep_outputs(p, bs, &em, cause, i);
  kefu_emitter_clear(&em);
}

void engine_run_rules(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  bs->ninputs = b->n;
  bs->computed = calloc(b->n + 1, sizeof *bs->computed);
  bs->kept = calloc(b->n + 1, sizeof *bs->kept);
  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    const char *cause = in->cause;
    if (in->idle) {
      run_idle_tick(p, bs, in, cause, i);
      continue;
    }
    if (!in->valid) {
      kefu_metric_add(p->m.dlq, 1);
      continue;
    }
    shop_entry_t *e = in->e;
    kefu_emitter_t em;
    emitter_for(p, &em, in->ev.event_id, in->ev.ts, kefu_topics[in->topic].rank, in->offset);
    fire_due(p, bs, e, in, &em);
    apply_input(p, e, in, &em);
    keep_outputs(p, bs, &em, cause, i);
    kefu_emitter_clear(&em);
  }
}

/* ------------------------------------------------------------------ writing */

/* Before a shop's new timers are written, its entry in the task's timer index is
 * lowered to their earliest deadline (ZADD LT), so the index never misses a timer even
 * if we die between the two; the exact value is written after the apply. */
static int index_new_timers(kefu_processor_t *p, batch_state_t *bs) {
  char key[128];
  int n = 0;
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    if (e->new_timers_min == INT64_MAX)
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "ZADD");
    engine_timer_index_key(p, e->task, key, sizeof key);
    kefu_cmd_str(&c, key);
    kefu_cmd_str(&c, "LT");
    kefu_cmd_fmt(&c, "%lld", (long long)e->new_timers_min);
    kefu_cmd_str(&c, e->shop->id);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  return n;
}

int engine_append_index(kefu_processor_t *p) {
  char key[128];
  for (size_t i = 0; i < p->nindex_next && !p->redis; i++) /* they stay lower bounds */
    free(p->index_next[i].shop);
  if (!p->redis) {
    p->nindex_next = 0;
    return 0;
  }
  for (size_t i = 0; i < p->nindex_next; i++) {
    const struct index_entry *x = &p->index_next[i];
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    engine_timer_index_key(p, x->task, key, sizeof key);
    if (x->min == INT64_MAX) {
      kefu_cmd_str(&c, "ZREM");
      kefu_cmd_str(&c, key);
    } else {
      kefu_cmd_str(&c, "ZADD");
      kefu_cmd_str(&c, key);
      kefu_cmd_fmt(&c, "%lld", (long long)x->min);
    }
    kefu_cmd_str(&c, x->shop);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    free(x->shop);
  }
  int n = (int)p->nindex_next;
  p->nindex_next = 0;
  return n;
}

/* After a write: the exact earliest deadline of each shop whose timers changed, in the
 * task's index in memory now (this instance's view of what it owns) and in Redis with
 * the next write (an unwritten one leaves the lower bound of index_new_timers: a shop
 * looked at early, never a timer missed). */
static void index_written(kefu_processor_t *p, batch_state_t *bs) {
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    task_t *task = &p->tasks[e->task];
    if (!e->timers_touched)
      continue;
    if (!task->timer_index)
      task->timer_index = json_object();
    if (e->timers_min == INT64_MAX)
      json_object_del(task->timer_index, e->shop->id);
    else
      json_object_set_new(task->timer_index, e->shop->id, json_integer(e->timers_min));
    p->index_next = realloc(p->index_next, (p->nindex_next + 1) * sizeof *p->index_next);
    p->index_next[p->nindex_next++] =
        (struct index_entry){e->task, strdup(e->shop->id), e->timers_min};
  }
}

/* The outputs of this batch's causes, one variadic HSET per task (not one per event). */
static int remember_outputs(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  task_out_cmds_t tc = {.verb = "HSET"};
  for (size_t i = 0; i < b->n; i++) {
    const char *cause = b->items[i]->cause;
    const kefu_buf_t *blob = bs->computed[i];
    if (!blob)
      continue;
    kefu_cmd_t *c = engine_task_out_cmd(p, &tc, b->items[i]->task);
    kefu_cmd_str(c, cause);
    kefu_cmd_arg(c, (const char *)blob->p, blob->n);
  }
  return engine_task_out_send(p->redis, &tc);
}

/* What kefu_apply writes of @p e besides its entities: the applied offsets with their
 * CAS, the event ids seen, and the days of event ids now older than the window. */
static void write_of(shop_entry_t *e, int64_t max_ts, kefu_store_write_t *w) {
  char fields[KEFU_KEYED_INPUTS][64];
  const char *ptrs[KEFU_KEYED_INPUTS];
  topic_fields(e->task, fields, ptrs);
  memset(w, 0, sizeof *w);
  w->shop = e->shop;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
    if (e->applied[k] < 0)
      continue;
    kefu_store_cas_t *c = &w->cas[w->ncas++];
    snprintf(c->field, sizeof c->field, "%s", ptrs[k]);
    if (e->stored[k] >= 0)
      snprintf(c->expected, sizeof c->expected, "%lld", (long long)e->stored[k]);
    snprintf(c->value, sizeof c->value, "%lld", (long long)e->applied[k]);
    w->offsets_changed |= e->applied[k] != e->stored[k];
  }
  w->seen = e->seen_new;
  w->nseen = e->nseen_new;
  /* Days wholly before the window of the batch's newest event go (SPEC §5: bounded). */
  int32_t keep_from = utc_day(max_ts - SEEN_WINDOW_MS) - 1;
  if (e->seen_from <= e->seen_to && e->seen_from < keep_from) {
    w->seen_del_from = e->seen_from;
    w->seen_del_to = keep_from - 1;
  } else {
    w->seen_del_from = 1;
    w->seen_del_to = 0;
  }
  w->shipped_keep_from = max_ts - 30 * KEFU_DAY_MS; /* DELIV-4: 30 days */
}

/* After a successful write: what Redis now holds. */
static void written(shop_entry_t *e, const kefu_store_write_t *w) {
  memcpy(e->stored, e->applied, sizeof e->stored);
  for (uint32_t i = 0; i < e->nseen_new; i++)
    kefu_buf_free(&e->seen_new[i].add);
  free(e->seen_new);
  e->seen_new = NULL;
  e->nseen_new = 0;
  if (w->seen_del_from <= w->seen_del_to) {
    e->seen_from = w->seen_del_to + 1;
    engine_seen_trim(&e->seen, (int64_t)e->seen_from * KEFU_DAY_MS);
  }
}

/* Remembered outputs first, then one atomic kefu_apply per changed shop. */
int engine_store_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, int64_t max_ts,
                       char *errstr, size_t errlen) {
  redisReply **r;
  int n = engine_append_index(p), first_apply;
  n += index_new_timers(p, bs);
  kefu_store_write_t *writes = calloc(bs->nshops + 1, sizeof *writes);
  int *reply_of = calloc(bs->nshops + 1, sizeof *reply_of);
  int rc = -1;

  n += remember_outputs(p, b, bs);
  first_apply = n;
  for (size_t i = 0; i < bs->nshops; i++) {
    write_of(bs->shops[i], max_ts, &writes[i]);
    reply_of[i] = kefu_store_apply_append(p->redis, p->o->redis_namespace, &writes[i], &p->scratch)
                      ? n++
                      : -1;
  }
  if (n == 0) {
    rc = 0;
    goto done;
  }
  if (engine_redis_flush(p, &r, errstr, errlen) != n)
    goto done;
  for (int i = 0; i < first_apply; i++)
    if (r[i]->type == REDIS_REPLY_ERROR) {
      snprintf(errstr, errlen, "redis: %s", r[i]->str);
      goto done;
    }
  for (size_t i = 0; i < bs->nshops; i++)
    if (reply_of[i] >= 0 && kefu_store_apply_check(r[reply_of[i]], errstr, errlen))
      goto done;
  for (size_t i = 0; i < bs->nshops; i++) {
    written(bs->shops[i], &writes[i]);
    if (bs->shops[i]->timers_touched) /* a walk over the shop's buyers: only when needed */
      bs->shops[i]->timers_min = kefu_store_timers_min(bs->shops[i]->shop);
  }
  index_written(p, bs);
  rc = 0;
done:
  (void)first_apply;
  free(writes);
  free(reply_of);
  return rc;
}

/* Remembers an event id seen now, to be appended to its day's key with the shop's write. */
void engine_seen_note(shop_entry_t *e, uint64_t h, int64_t ts) {
  int32_t day = utc_day(ts);
  uint8_t entry[16];
  seen_day_t *d = NULL;
  for (uint32_t i = 0; i < e->nseen_new && !d; i++)
    if (e->seen_new[i].day == day)
      d = &e->seen_new[i];
  if (!d) {
    e->seen_new = realloc(e->seen_new, (e->nseen_new + 1) * sizeof *e->seen_new);
    d = &e->seen_new[e->nseen_new++];
    memset(d, 0, sizeof *d);
    d->day = day;
  }
  for (int i = 0; i < 8; i++) {
    entry[i] = (uint8_t)(h >> (8 * i));
    entry[8 + i] = (uint8_t)((uint64_t)ts >> (8 * i));
  }
  kefu_buf_append(&d->add, entry, sizeof entry);
}
