/* libFuzzer target: a record as kefu run reads it from an input topic (SPEC §1.2, §6).
 *
 * Byte 0 picks the topic: byte % 5 is one of the four keyed inputs (chat, order, agent,
 * shop config) or the courier status; the rest is the Kafka value. The value goes
 * through what engine/intake.c does with it: frame validation and Avro decode
 * (kefu_codec_decode), then the field checks of kefu_event_from_json (with the record's
 * own shop_id as the Kafka key, so the checks past the key are reached) or
 * kefu_courier_status_validate, and the JSON printer of kefu consume. A record that
 * decodes must encode again and decode to the same JSON. */
#include <jansson.h>
#include <string.h>

#include "engine/event.h"
#include "fuzz.h"

static kefu_codec_t *codec;
static int32_t fast_id[KEFU_KEYED_INPUTS]; /* the schema id each keyed topic takes fast */
static char *frame, *text;                 /* reused buffers, as the processor reuses its own */
static size_t frame_cap, text_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  codec = fuzz_codec();
  char errstr[256];
  static kefu_schemas_t *schemas; /* kept for the whole run, as the codec's */
  schemas = kefu_schemas_new(errstr, sizeof errstr);
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    fast_id[t] = kefu_event_fast_id(schemas, (kefu_topic_t)t);
  return 0;
}

/* 0 when the record is a valid event (its shop_id as the key), -1 otherwise. */
static int validate(kefu_topic_t t, json_t *rec) {
  char errstr[512];
  kefu_event_t ev;
  if (t == KEFU_T_COURIER_STATUS)
    return kefu_courier_status_validate(rec, errstr, sizeof errstr);
  const char *shop = json_string_value(json_object_get(rec, "shop_id"));
  int rc = kefu_event_from_json(&ev, t, rec, shop, shop ? strlen(shop) : 0, FUZZ_NOW_MS, errstr,
                                sizeof errstr);
  if (rc == 0)
    FUZZ_CHECK(ev.event_id && ev.shop_id && strcmp(ev.shop_id, shop) == 0);
  else
    FUZZ_CHECK(errstr[0] != '\0');
  kefu_event_clear(&ev);
  return rc;
}

/* The binary fast path (engine/event_decode.c) decides as the codec path does. */
static void fast_path(kefu_topic_t t, const uint8_t *data, size_t size, int slow_rc,
                      const json_t *rec) {
  char errstr[512];
  kefu_event_t ev;
  const char *shop = rec ? json_string_value(json_object_get(rec, "shop_id")) : NULL;
  if (t == KEFU_T_COURIER_STATUS)
    return;
  int rc = kefu_event_decode(&ev, t, fast_id[t], data, size, shop, shop ? strlen(shop) : 0,
                             FUZZ_NOW_MS, errstr, sizeof errstr);
  if (rc != 1)
    FUZZ_CHECK(rc == slow_rc);
  if (rc != 1)
    kefu_event_clear(&ev);
}

/* What was decoded encodes with the current schema and decodes to the same record. */
static void round_trip(kefu_topic_t t, const json_t *rec) {
  char errstr[512];
  size_t len = 0;
  json_t *again = NULL;
  FUZZ_CHECK(kefu_codec_encode(codec, t, rec, &frame, &frame_cap, &len, errstr, sizeof errstr) ==
             0);
  FUZZ_CHECK(kefu_codec_decode(codec, t, frame, len, &again, errstr, sizeof errstr) == 0);
  FUZZ_CHECK(json_equal(rec, again));
  json_decref(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char errstr[512];
  json_t *rec = NULL;
  if (size < 1)
    return 0;
  kefu_topic_t t = (kefu_topic_t)(data[0] % (KEFU_KEYED_INPUTS + 1));
  if (kefu_codec_decode(codec, t, data + 1, size - 1, &rec, errstr, sizeof errstr) != 0) {
    FUZZ_CHECK(rec == NULL && errstr[0] != '\0');
    fast_path(t, data + 1, size - 1, -1, NULL);
    return 0;
  }
  FUZZ_CHECK(json_is_object(rec));
  FUZZ_CHECK(kefu_json_dumpb_record(rec, &text, &text_cap) > 0);
  fast_path(t, data + 1, size - 1, validate(t, rec), rec);
  round_trip(t, rec);
  json_decref(rec);
  return 0;
}
