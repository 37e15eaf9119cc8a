/* libFuzzer target: one JSON line of `kefu produce` (SPEC §1.2, §7).
 *
 * Byte 0 picks the topic (byte % 11: any topic with a schema, as kefu produce takes);
 * the rest is the line. It goes through kefu_produce_record_from_line(), the whole of
 * kefu produce but the sending: JSON parse, tombstone form, Kafka key, JSON -> Avro
 * encode. A frame it makes must decode, and the decoded record must encode to the same
 * bytes (equal records give equal bytes: replays compare bytes). */
#include <jansson.h>

#include "cli/produce.h"
#include "fuzz.h"

static kefu_codec_t *codec;
static char *frame, *again; /* reused buffers, as kefu produce reuses its own */
static size_t frame_cap, again_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  codec = fuzz_codec();
  return 0;
}

static void check_frame(kefu_topic_t t, const kefu_produce_record_t *r) {
  char errstr[512];
  json_t *rec = NULL;
  size_t len = 0;
  FUZZ_CHECK(r->len >= KEFU_CODEC_HEADER_LEN && frame[0] == 0);
  FUZZ_CHECK(r->key && r->keylen == strlen(r->key));
  FUZZ_CHECK(kefu_codec_decode(codec, t, frame, r->len, &rec, errstr, sizeof errstr) == 0);
  FUZZ_CHECK(kefu_codec_encode(codec, t, rec, &again, &again_cap, &len, errstr, sizeof errstr) ==
             0);
  FUZZ_CHECK(len == r->len && memcmp(frame, again, len) == 0);
  json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char errstr[512];
  kefu_produce_record_t r;
  if (size < 1)
    return 0;
  kefu_topic_t t = (kefu_topic_t)(data[0] % KEFU_T_DLQ);
  char *line = fuzz_strndup(data + 1, size - 1);
  if (kefu_produce_record_from_line(&r, codec, t, line, &frame, &frame_cap, errstr,
                                    sizeof errstr) == 0) {
    if (r.tombstone)
      FUZZ_CHECK(r.key && r.len == 0);
    else
      check_frame(t, &r);
  } else {
    FUZZ_CHECK(errstr[0] != '\0');
  }
  kefu_produce_record_clear(&r);
  free(line);
  return 0;
}
