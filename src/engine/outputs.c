/* A batch's output records, encoded once, when the rules emit them: Avro with its schema
 * id, the bytes that go to Kafka. The outputs of a cause are remembered in Redis
 * (ns:{task-N}:out) as the same bytes, so a re-emitted record is a copy, never a new
 * encoding. A remembered value (docs/STATE.md):
 *
 *   0x02, then per record: topic number (1 byte), ts (8 bytes little-endian), key length
 *   (4 bytes little-endian), key, value length (4), value
 *
 * A value written by kefu before this format (JSON [[topic, record]...]) is encoded on
 * reading, as it was then. */
#include "engine/processor_int.h"

#define OUTPUTS_FORMAT 2

static void put_le(kefu_buf_t *b, uint64_t v, int bytes) {
  uint8_t x[8];
  for (int i = 0; i < bytes; i++)
    x[i] = (uint8_t)(v >> (8 * i));
  kefu_buf_append(b, x, (size_t)bytes);
}

static uint64_t get_le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* Appends one encoded record (the codec's frame in p->enc_buf, @p len bytes). */
static void append_frame(kefu_processor_t *p, kefu_buf_t *blob, kefu_topic_t t, int64_t ts,
                         const char *shop, size_t len) {
  size_t klen = strlen(shop);
  put_le(blob, (uint64_t)t, 1);
  put_le(blob, (uint64_t)ts, 8);
  put_le(blob, klen, 4);
  kefu_buf_append(blob, shop, klen);
  put_le(blob, len, 4);
  kefu_buf_append(blob, p->enc_buf, len);
}

/* A record the codec rejects (a rule built a record its schema does not take: a bug,
 * logged and counted). */
static int encode_failed(kefu_processor_t *p, kefu_topic_t t, const char *cause, const char *err) {
  KEFU_ERROR("engine", "cannot encode a %s record caused by %s: %s", kefu_topics[t].suffix, cause,
             err);
  kefu_metric_add(p->m.encode_errors, 1);
  return -1;
}

/* Appends one record the rules emitted, of topic @p t, to @p blob; 0, or -1. */
static int append_record(kefu_processor_t *p, kefu_buf_t *blob, kefu_topic_t t,
                         const kefu_record_t *rec, const char *cause) {
  const char *shop = kefu_record_get_str(rec, "shop_id");
  const kefu_field_t *ts = kefu_record_get(rec, "ts");
  size_t len = 0;
  char err[256];
  if (kefu_codec_encode_record(p->codec, t, rec, &p->enc_buf, &p->enc_cap, &len, err, sizeof err) ||
      !shop)
    return encode_failed(p, t, cause, shop ? err : "no shop_id");
  append_frame(p, blob, t, ts && ts->kind == KEFU_FIELD_INT ? ts->v.i : 0, shop, len);
  return 0;
}

/* Appends one JSON record (a remembered value of the old format) to @p blob. */
static int append_json_record(kefu_processor_t *p, kefu_buf_t *blob, kefu_topic_t t,
                              const json_t *rec, const char *cause) {
  const char *shop = json_string_value(json_object_get(rec, "shop_id"));
  size_t len = 0;
  char err[256];
  if (kefu_codec_encode(p->codec, t, rec, &p->enc_buf, &p->enc_cap, &len, err, sizeof err) || !shop)
    return encode_failed(p, t, cause, shop ? err : "no shop_id");
  append_frame(p, blob, t, (int64_t)json_integer_value(json_object_get(rec, "ts")), shop, len);
  return 0;
}

static kefu_buf_t *blob_new(void) {
  kefu_buf_t *blob = calloc(1, sizeof *blob);
  put_le(blob, OUTPUTS_FORMAT, 1);
  return blob;
}

kefu_buf_t *engine_outputs_encode(kefu_processor_t *p, const kefu_emitter_t *em,
                                  const kefu_topic_t *topic_of_kind, const char *cause) {
  kefu_buf_t *blob = blob_new();
  for (size_t i = 0; i < em->n; i++)
    append_record(p, blob, topic_of_kind[em->records[i].kind], &em->records[i].rec, cause);
  return blob;
}

/* The old format: JSON [[topic, record]...]. */
static kefu_buf_t *from_json(kefu_processor_t *p, const char *s, size_t n, const char *cause) {
  json_t *records = json_loadb(s, n, 0, NULL), *r;
  size_t i;
  if (!json_is_array(records)) {
    json_decref(records);
    return NULL;
  }
  kefu_buf_t *blob = blob_new();
  json_array_foreach(records, i, r) {
    json_int_t t = json_integer_value(json_array_get(r, 0));
    if (t >= 0 && t < KEFU_T__COUNT && !kefu_topics[t].input)
      append_json_record(p, blob, (kefu_topic_t)t, json_array_get(r, 1), cause);
  }
  json_decref(records);
  return blob;
}

kefu_buf_t *engine_outputs_read(kefu_processor_t *p, const char *s, size_t n, const char *cause) {
  if (n > 0 && s[0] == '[')
    return from_json(p, s, n, cause);
  if (engine_outputs_each((const uint8_t *)s, n, NULL, NULL) < 0) {
    KEFU_WARN("engine", "remembered outputs of %s: not a value kefu wrote; ignored", cause);
    return NULL;
  }
  kefu_buf_t *blob = calloc(1, sizeof *blob);
  kefu_buf_append(blob, s, n);
  return blob;
}

int engine_outputs_each(const uint8_t *p, size_t n, int (*fn)(void *, const out_rec_t *),
                        void *arg) {
  const uint8_t *end = p + n;
  int count = 0;
  if (n < 1 || p[0] != OUTPUTS_FORMAT)
    return -1;
  for (p++; p < end; count++) {
    out_rec_t r = {0};
    if (end - p < 13)
      return -1;
    r.topic = p[0];
    r.ts = (int64_t)get_le(p + 1, 8);
    r.key_len = (uint32_t)get_le(p + 9, 4);
    p += 13;
    if ((size_t)(end - p) < (size_t)r.key_len + 4)
      return -1;
    r.key = p;
    p += r.key_len;
    r.val_len = (uint32_t)get_le(p, 4);
    p += 4;
    if ((size_t)(end - p) < r.val_len || r.topic >= KEFU_T__COUNT || kefu_topics[r.topic].input)
      return -1;
    r.val = p;
    p += r.val_len;
    if (fn && fn(arg, &r))
      return -1;
  }
  return count;
}

typedef struct add_ctx {
  batch_state_t *bs;
  size_t input;
} add_ctx_t;

static int add_one(void *arg, const out_rec_t *r) {
  add_ctx_t *x = arg;
  batch_state_t *bs = x->bs;
  if (bs->nouts == bs->outs_cap) {
    bs->outs_cap = bs->outs_cap ? bs->outs_cap * 2 : 256;
    bs->outs = realloc(bs->outs, bs->outs_cap * sizeof *bs->outs);
  }
  bs->outs[bs->nouts] = *r;
  bs->outs[bs->nouts++].input = x->input;
  return 0;
}

void engine_outputs_add(batch_state_t *bs, const kefu_buf_t *blob, size_t input) {
  add_ctx_t x = {bs, input};
  engine_outputs_each(blob->p, blob->n, add_one, &x);
}

void engine_outputs_free(void *blob) {
  if (!blob)
    return;
  kefu_buf_free(blob);
  free(blob);
}

void engine_pending_idle_free(task_t *task) {
  if (!task->pending_idle)
    return;
  kefu_map_clear(task->pending_idle, engine_outputs_free);
  free(task->pending_idle);
  task->pending_idle = NULL;
}
