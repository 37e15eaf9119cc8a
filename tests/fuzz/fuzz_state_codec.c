/* libFuzzer target: the state codec (src/store/state_codec.c), which reads what Redis
 * holds (an operator may have edited it).
 *
 * Byte 0 % 9 picks the record (agent, buyer, order, config, queue, rate, shop timers,
 * timer, due buckets); the rest is the value. A value that does not decode gives an error text and
 * no record. One that decodes encodes to a canonical value that decodes again, to a record with the
 * same JSON view, and encodes to the same bytes (encode . decode is a fixed point on what the
 * encoder writes). The JSON views are built for every decoded record. */
#include "fuzz.h"
#include "store/state_codec.h"

enum { R_AGENT, R_BUYER, R_ORDER, R_CONFIG, R_QUEUE, R_RATE, R_TIMERS, R_TIMER, R_DUE, R__COUNT };

typedef struct due { /* meta `due` */
  int64_t *v;
  uint32_t n;
} due_t;

typedef struct rec {
  int kind;
  void *p; /* the entity, or the heap struct a shop record decodes into */
} rec_t;

static int decode(int kind, const uint8_t *p, size_t n, rec_t *out, char *err, size_t errlen) {
  int rc;
  out->kind = kind;
  out->p = NULL;
  switch (kind) {
  case R_AGENT: return kefu_state_decode_agent(p, n, "a1", (kefu_agent_t **)&out->p, err, errlen);
  case R_BUYER: return kefu_state_decode_buyer(p, n, "b1", (kefu_buyer_t **)&out->p, err, errlen);
  case R_ORDER: return kefu_state_decode_order(p, n, "o1", (kefu_order_t **)&out->p, err, errlen);
  case R_CONFIG: {
    kefu_shop_config_t *c = calloc(1, sizeof *c);
    kefu_config_defaults(c);
    rc = kefu_state_decode_config(p, n, c, err, errlen);
    if (rc)
      free(c);
    else
      out->p = c;
    return rc;
  }
  case R_QUEUE: {
    kefu_queue_t *q = calloc(1, sizeof *q);
    rc = kefu_state_decode_queue(p, n, q, err, errlen);
    if (rc)
      free(q);
    else
      out->p = q;
    return rc;
  }
  case R_RATE: {
    kefu_rate_t *r = calloc(1, sizeof *r);
    rc = kefu_state_decode_rate(p, n, r, err, errlen);
    if (rc)
      free(r);
    else
      out->p = r;
    return rc;
  }
  case R_TIMERS: {
    kefu_timers_t *t = calloc(1, sizeof *t);
    rc = kefu_state_decode_timers(p, n, t, err, errlen);
    if (rc)
      free(t);
    else
      out->p = t;
    return rc;
  }
  case R_DUE: {
    due_t *d = calloc(1, sizeof *d);
    rc = kefu_state_decode_due(p, n, &d->v, &d->n, err, errlen);
    if (rc)
      free(d);
    else
      out->p = d;
    return rc;
  }
  default: {
    kefu_timer_t *t = calloc(1, sizeof *t);
    rc = kefu_state_decode_timer(p, n, t, err, errlen);
    if (rc)
      free(t);
    else
      out->p = t;
    return rc;
  }
  }
}

static void encode(const rec_t *r, kefu_buf_t *out) {
  switch (r->kind) {
  case R_AGENT: kefu_state_encode_agent(out, r->p); break;
  case R_BUYER: kefu_state_encode_buyer(out, r->p); break;
  case R_ORDER: kefu_state_encode_order(out, r->p); break;
  case R_CONFIG: kefu_state_encode_config(out, r->p); break;
  case R_QUEUE: kefu_state_encode_queue(out, r->p); break;
  case R_RATE: kefu_state_encode_rate(out, r->p); break;
  case R_TIMERS: kefu_state_encode_timers(out, r->p); break;
  case R_DUE: kefu_state_encode_due(out, ((due_t *)r->p)->v, ((due_t *)r->p)->n); break;
  default: kefu_state_encode_timer(out, r->p); break;
  }
}

static json_t *view(const rec_t *r) {
  switch (r->kind) {
  case R_AGENT: return kefu_state_agent_json(r->p);
  case R_BUYER: return kefu_state_buyer_json(r->p);
  case R_ORDER: return kefu_state_order_json(r->p);
  case R_CONFIG: return kefu_state_config_json(r->p);
  case R_QUEUE: return kefu_state_queue_json(r->p);
  case R_RATE: return kefu_state_rate_json(r->p);
  case R_TIMERS: return kefu_state_timers_json(r->p);
  case R_DUE: {
    json_t *a = json_array();
    for (uint32_t i = 0; i < ((due_t *)r->p)->n; i++)
      json_array_append_new(a, json_integer(((due_t *)r->p)->v[i]));
    return a;
  }
  default: return kefu_state_timer_json(r->p);
  }
}

static void release(rec_t *r) {
  switch (r->kind) {
  case R_AGENT: kefu_agent_free(r->p); return;
  case R_BUYER: kefu_buyer_free(r->p); return;
  case R_ORDER: kefu_order_free(r->p); return;
  case R_CONFIG: kefu_config_clear(r->p); break;
  case R_QUEUE: kefu_state_queue_clear(r->p); break;
  case R_RATE: kefu_state_rate_clear(r->p); break;
  case R_TIMERS: kefu_timers_clear(r->p); break;
  case R_DUE: free(((due_t *)r->p)->v); break;
  default: kefu_timer_clear(r->p); break;
  }
  free(r->p);
}

/* One buffer for the whole run, as the engine keeps its own. */
static kefu_buf_t buf1, buf2;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char errstr[512];
  rec_t a, b;
  if (size < 1)
    return 0;
  int kind = data[0] % R__COUNT;
  errstr[0] = '\0';
  if (decode(kind, data + 1, size - 1, &a, errstr, sizeof errstr)) {
    FUZZ_CHECK(a.p == NULL);
    FUZZ_CHECK(errstr[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(a.p != NULL);
  kefu_buf_reset(&buf1);
  kefu_buf_reset(&buf2);
  encode(&a, &buf1);
  FUZZ_CHECK(buf1.n >= 1 && buf1.p[0] == KEFU_STATE_VERSION);
  if (decode(kind, buf1.p, buf1.n, &b, errstr, sizeof errstr)) {
    fprintf(stderr, "re-decode: %s\n", errstr);
    FUZZ_CHECK(!"an encoded record decodes");
  }
  encode(&b, &buf2);
  FUZZ_CHECK(buf1.n == buf2.n && memcmp(buf1.p, buf2.p, buf1.n) == 0);
  json_t *ja = view(&a), *jb = view(&b);
  FUZZ_CHECK(ja != NULL && jb != NULL && json_equal(ja, jb));
  json_decref(ja);
  json_decref(jb);
  release(&a);
  release(&b);
  return 0;
}
