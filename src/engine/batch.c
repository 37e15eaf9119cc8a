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
  e->load_reply = e->seen_reply = e->buyers_reply = e->due_reply = -1;
  e->needs_done = false;
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

/* The last due bucket the batch must have read for @p e: every bucket starting before
 * its task's highest ts (timers fire before the watermark, which stays below it). */
static int64_t due_upto(const shop_entry_t *e, const batch_state_t *bs) {
  int64_t t = bs->max_ts[e->task];
  return t == INT64_MIN ? INT64_MIN : kefu_due_bucket(t - 1);
}

/* @p e has due buckets (in Redis, or to be appended) that the batch must read. */
static bool due_unread(const shop_entry_t *e, const batch_state_t *bs) {
  int64_t upto = due_upto(e, bs);
  for (uint32_t i = 0; i < e->ndue; i++)
    if (e->due[i] > e->due_read && e->due_cold[i])
      return e->due[i] <= upto;
  for (uint32_t i = 0; i < e->ndue_add; i++)
    if (e->due_add_cold[i] && e->due_add[i].bucket <= upto)
      return true;
  return false;
}

/* Shops whose timers may fire in this batch, not in memory or with buyers to read: the
 * task's index says their earliest deadline is below the batch's highest ts or the
 * watermark (bounds on both the watermark and the same-buyer rule of SPEC §1.3). They
 * are read with the batch's other shops. */
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
  for (int t = 0; t < MAX_TASKS; t++) /* late events: timers fire below the watermark */
    if (bs->max_ts[t] != INT64_MIN && p->tasks[t].watermark > bs->max_ts[t])
      bs->max_ts[t] = p->tasks[t].watermark;
  for (int t = 0; t < MAX_TASKS; t++) {
    if (bs->max_ts[t] == INT64_MIN || !p->tasks[t].timer_index)
      continue;
    json_object_foreach(p->tasks[t].timer_index, shop, min) {
      shop_entry_t *e = engine_cache_get(p, shop);
      if (json_integer_value(min) >= bs->max_ts[t] || (e && e->loaded && !due_unread(e, bs)))
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

/* Asks for buyer @p id of @p e unless memory has it, Redis cannot have it, or it was
 * asked for already in this batch. */
static void need_buyer(shop_entry_t *e, const char *id, uint64_t batch_no) {
  kefu_buyer_t *b;
  if (!id)
    return;
  if ((b = kefu_shop_buyer(e->shop, id))) {
    b->cache.used = batch_no;
    return;
  }
  if (!engine_buyer_maybe_stored(e, id) || kefu_map_get(&e->asked, id))
    return;
  kefu_map_put(&e->asked, id, (void *)1);
  kefu_strv_push(&e->need_ids, id);
}

/* The buyers of @p e that this batch may meet, but memory may not have: the inputs' own
 * (an order event's is its order's first buyer), the queued ones (ROUTE-11 places them),
 * and those appended to a due bucket the batch reads since they left memory. */
static void collect_needs(const batch_t *b, batch_state_t *bs) {
  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    shop_entry_t *e = in->e;
    if (!in->valid || in->idle || !e->loaded || e->needs_done)
      continue;
    need_buyer(e, in->ev.buyer_id, bs->batch_no);
    if (in->topic == KEFU_T_ORDER && in->ev.order_id) {
      const kefu_order_t *o = kefu_shop_order(e->shop, in->ev.order_id);
      if (o)
        need_buyer(e, o->buyer_id, bs->batch_no);
    }
  }
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    if (!e->loaded || e->needs_done)
      continue;
    for (uint32_t q = 0; q < e->shop->queue.n; q++)
      need_buyer(e, e->shop->queue.v[q].buyer_id, bs->batch_no);
    int64_t upto = due_upto(e, bs);
    for (uint32_t a = 0; a < e->ndue_add; a++) {
      const kefu_buf_t *ids = &e->due_add[a].ids;
      char id[KEFU_ID_MAX + 1];
      if (e->due_add[a].bucket > upto || !e->due_add_cold[a])
        continue;
      for (size_t at = 0; at < ids->n; at += 1 + ids->p[at]) {
        memcpy(id, ids->p + at + 1, ids->p[at]);
        id[ids->p[at]] = '\0';
        need_buyer(e, id, bs->batch_no);
      }
    }
  }
}

/* The due buckets of @p e to read now: pending ones above due_read, up to due_upto. */
static uint32_t due_to_read(const shop_entry_t *e, const batch_state_t *bs, int64_t **out) {
  int64_t upto = due_upto(e, bs);
  uint32_t n = 0;
  *out = NULL;
  for (uint32_t i = 0; i < e->ndue; i++)
    if (e->due[i] > e->due_read && e->due[i] <= upto && e->due_cold[i]) {
      *out = realloc(*out, (n + 1) * sizeof **out);
      (*out)[n++] = e->due[i];
    }
  return n;
}

/* Queues the buyer reads of every loaded shop of the batch that has not had them. */
static int append_needs(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  const char *ns = p->o->redis_namespace;
  int next = 0;
  collect_needs(b, bs);
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    int64_t *buckets;
    if (!e->loaded || e->needs_done)
      continue;
    e->needs_done = true;
    e->buyers_reply = e->due_reply = -1;
    if (e->need_ids.n) {
      kefu_store_buyers_append(p->redis, ns, e->shop->id, (const char *const *)e->need_ids.v,
                               e->need_ids.n);
      e->buyers_reply = next++;
    }
    uint32_t nb = due_to_read(e, bs, &buckets);
    if (nb) {
      kefu_store_due_read_append(p->redis, ns, e->shop->id, buckets, nb);
      e->due_reply = next++;
    }
    free(buckets);
    e->due_req_to = due_upto(e, bs);
  }
  return next;
}

typedef struct loaded_ctx {
  kefu_processor_t *p;
  shop_entry_t *e;
  uint64_t batch_no;
  bool from_due;
} loaded_ctx_t;

static void buyer_read(void *arg, const char *id, kefu_buyer_t *b) {
  loaded_ctx_t *x = arg;
  (void)id;
  if (!b)
    return; /* Redis has none: a new buyer, or a due entry left by a buyer since gone */
  kefu_buyer_t *held = engine_buyer_loaded(x->p, x->e, b);
  held->cache.used = x->batch_no;
  if (x->from_due && held->cache.due_listed)
    held->cache.due_exact = false; /* listed in a bucket just read: not known which */
}

static int parse_needs(kefu_processor_t *p, batch_state_t *bs, redisReply **r, char *errstr,
                       size_t errlen) {
  for (size_t i = 0; i < bs->nshops; i++) {
    shop_entry_t *e = bs->shops[i];
    loaded_ctx_t x = {p, e, bs->batch_no, false};
    if (e->buyers_reply >= 0 &&
        kefu_store_buyers_parse(r[e->buyers_reply], (const char *const *)e->need_ids.v,
                                e->need_ids.n, buyer_read, &x, errstr, errlen))
      return -1;
    x.from_due = true;
    if (e->due_reply >= 0 &&
        kefu_store_buyers_parse(r[e->due_reply], NULL, 0, buyer_read, &x, errstr, errlen))
      return -1;
    if (e->needs_done && e->due_req_to > e->due_read)
      e->due_read = e->due_req_to;
    e->buyers_reply = e->due_reply = -1;
    kefu_strv_clear(&e->need_ids);
  }
  return 0;
}

/* A shop read from Redis: what its load said besides its records. */
static void shop_read(kefu_processor_t *p, shop_entry_t *e, kefu_store_loaded_t *l) {
  memcpy(e->applied, e->stored, sizeof e->applied);
  e->seen_from = e->seen_req_from;
  e->seen_to = e->seen_req_to;
  e->loaded = true;
  e->complete = l->buyers == 0;
  free(e->due);
  free(e->due_cold);
  e->due = l->due;
  e->ndue = e->due_cap = l->ndue;
  e->due_cold = malloc((e->ndue ? e->ndue : 1) * sizeof *e->due_cold);
  for (uint32_t i = 0; i < e->ndue; i++)
    e->due_cold[i] = true; /* what they list is not known */
  e->due_read = INT64_MIN;
  engine_heap_add_shop(&p->tasks[e->task].heap, e); /* its own timers: no buyer yet */
}

/* Every shop of the batch in memory with the buyers it may meet: from the cache, or read
 * from Redis. A shop is read without its buyers, which are read by id and by due bucket
 * (ARCHITECTURE "The owner cache"): one round trip when the cache has the shops (none
 * when it has the buyers too), a second one for shops read in this batch. */
int engine_load_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen) {
  redisReply **r;
  int reply[MAX_TASKS];
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
  for (int stage = 0; stage < 2; stage++) {
    int next = 0;
    for (size_t i = 0; i < bs->nshops && stage == 0; i++) {
      shop_entry_t *e = bs->shops[i];
      e->used = bs->batch_no;
      if (!e->loaded) {
        e->seen_req_from = e->need_from;
        e->seen_req_to = e->need_to;
        e->load_reply = next;
        next += kefu_store_load_append(p->redis, ns, e->shop->id, e->need_from, e->need_to);
      } else if (e->need_from < e->seen_from || e->need_to > e->seen_to) {
        /* Days of event ids not read yet: later days as event time moves on, earlier
         * ones for a late event. The whole range is read again (its days are few). */
        e->seen_req_from = e->need_from < e->seen_from ? e->need_from : e->seen_from;
        e->seen_req_to = e->need_to > e->seen_to ? e->need_to : e->seen_to;
        e->seen_reply = next;
        next += kefu_store_seen_append(p->redis, ns, e->shop->id, e->seen_req_from, e->seen_req_to);
      }
    }
    int needs_at = next;
    next += append_needs(p, b, bs);
    for (size_t i = 0; i < bs->nshops; i++) { /* their replies follow the loads' */
      shop_entry_t *e = bs->shops[i];
      if (e->buyers_reply >= 0)
        e->buyers_reply += needs_at;
      if (e->due_reply >= 0)
        e->due_reply += needs_at;
    }
    if (stage == 0)
      append_remembered(p, b, causes, reply, &next);
    if (next == 0)
      continue;
    if (engine_redis_flush(p, &r, errstr, errlen) != next)
      goto done;
    if (stage == 0)
      parse_remembered(p, bs, causes, reply, r);
    if (parse_needs(p, bs, r, errstr, errlen))
      goto done;
    for (size_t i = 0; i < bs->nshops; i++) {
      shop_entry_t *e = bs->shops[i];
      char fields[KEFU_KEYED_INPUTS][64];
      const char *ptrs[KEFU_KEYED_INPUTS];
      kefu_store_loaded_t l;
      if (e->load_reply >= 0) {
        topic_fields(e->task, fields, ptrs);
        int bad = kefu_store_load_parse(r + e->load_reply, e->shop, ptrs, e->stored, &l,
                                        seen_loaded, &e->seen, errstr, errlen);
        e->load_reply = -1;
        if (bad) {
          free(l.due);
          goto done;
        }
        shop_read(p, e, &l);
        if ((bad = engine_acked_check(p, e, errstr, errlen))) {
          rc = bad;
          goto done;
        }
      } else if (e->seen_reply >= 0) {
        int bad = kefu_store_seen_parse(r[e->seen_reply], seen_loaded, &e->seen, errstr, errlen);
        e->seen_reply = -1;
        if (bad)
          goto done;
        e->seen_from = e->seen_req_from;
        e->seen_to = e->seen_req_to;
      }
    }
  }
  rc = 0;
done:
  for (int t = 0; t < MAX_TASKS; t++)
    json_decref(causes[t]);
  for (size_t i = 0; i < bs->nshops; i++) {
    kefu_map_clear(&bs->shops[i]->asked, NULL);
    kefu_strv_clear(&bs->shops[i]->need_ids);
  }
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
    kefu_buyer_touch(shop, ref->buyer);
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
    if (!p->tasks[in->task].check_remembered)
      p->tasks[in->task].missed_remembered = true;
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

/* The outputs of this batch's causes, one variadic HSET per task (not one per event). A
 * replay remembers nothing: it is never resumed, a failed one is run again. */
static int remember_outputs(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  task_out_cmds_t tc = {.verb = "HSET"};
  if (p->o->replay)
    return 0;
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

/* Lists @p b in its earliest timer's due bucket with this write, unless Redis has it in
 * one at or below that already. */
static void due_list(shop_entry_t *e, kefu_buyer_t *b) {
  int64_t m = kefu_timers_min(b->timers);
  if (m == INT64_MAX)
    return; /* an entry it may have stays: read, it names a buyer with nothing due */
  int64_t k = kefu_due_bucket(m);
  if (b->cache.due_listed && b->cache.due_at <= k)
    return;
  engine_due_add(e, k, b->id, false);
  b->cache.due_listed = b->cache.due_exact = true;
  b->cache.due_at = k;
}

/* The due buckets of @p e's write (docs/STATE.md): buckets read whose timers all fired
 * (the task's watermark passed their end) go, and every buyer they may list that still
 * has a timer is listed again; each changed buyer is listed in its earliest timer's
 * bucket unless Redis has it at or below that; the ids queued by evictions join. */
static void due_of(kefu_processor_t *p, shop_entry_t *e, kefu_store_write_t *w) {
  int64_t wm = p->tasks[e->task].watermark, gone = INT64_MIN;
  const char *id;
  void *v;
  e->ndue_del = 0;
  for (uint32_t i = 0; i < e->ndue; i++)
    if (e->due[i] <= e->due_read && wm != INT64_MIN && e->due[i] < kefu_due_bucket(wm)) {
      e->due_del = realloc(e->due_del, (e->ndue_del + 1) * sizeof *e->due_del);
      e->due_del[e->ndue_del++] = e->due[i];
      gone = e->due[i];
    }
  if (e->ndue_del) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < e->ndue; i++)
      if (e->due[i] > gone || e->due[i] > e->due_read) {
        e->due_cold[k] = e->due_cold[i];
        e->due[k++] = e->due[i];
      }
    e->ndue = k;
    e->due_changed = true;
    kefu_map_foreach(&e->shop->buyers, it, id, v) {
      kefu_buyer_t *b = v;
      if (b->cache.due_listed && (!b->cache.due_exact || b->cache.due_at <= gone))
        b->cache.due_listed = false;
      due_list(e, b);
    }
  } else {
    for (uint32_t i = 0; i < e->shop->dirty.n; i++)
      due_list(e, e->shop->dirty.v[i]);
  }
  for (uint32_t i = 0; i < e->ndue_add; i++)
    engine_due_insert(e, e->due_add[i].bucket, e->due_add_cold[i]);
  w->due_add = e->due_add;
  w->ndue_add = e->ndue_add;
  w->due_del = e->due_del;
  w->ndue_del = e->ndue_del;
  w->due = e->due;
  w->ndue = e->ndue;
  w->due_changed = e->due_changed;
}

/* After a successful write: what Redis now holds. */
static void written(shop_entry_t *e, const kefu_store_write_t *w) {
  memcpy(e->stored, e->applied, sizeof e->stored);
  engine_due_add_clear(e); /* written */
  e->ndue_del = 0;
  e->due_changed = false;
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

/* Remembered outputs first, then one atomic kefu_apply per changed shop (docs/DECISIONS.md
 * 55 on the order). */
int engine_store_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, int64_t max_ts,
                       char *errstr, size_t errlen) {
  redisReply **r;
  int n = engine_append_index(p), first_apply;
  n += index_new_timers(p, bs);
  kefu_store_write_t *writes = calloc(bs->nshops + 1, sizeof *writes);
  int *reply_of = calloc(bs->nshops + 1, sizeof *reply_of);
  int rc = -1;

  n += remember_outputs(p, b, bs);
  /* On a cluster the outputs and the index live on the tasks' nodes, the state on the
   * shops': they are written (and acknowledged) first, as one connection orders them. */
  kefu_redis_barrier(p->redis);
  first_apply = n;
  for (size_t i = 0; i < bs->nshops; i++) {
    write_of(bs->shops[i], max_ts, &writes[i]);
    due_of(p, bs->shops[i], &writes[i]);
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
    if (reply_of[i] >= 0 &&
        (rc = kefu_store_apply_check(r[reply_of[i]], &writes[i], errstr, errlen)) != 0)
      goto done;
  for (size_t i = 0; i < bs->nshops; i++) {
    written(bs->shops[i], &writes[i]);
    if (bs->shops[i]->timers_touched) /* a walk over the shop's buyers: only when needed */
      bs->shops[i]->timers_min = engine_due_min(bs->shops[i]);
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
