/* kefu produce's one step that needs no broker: a JSON line in, the Kafka key, value and
 * timestamp it sends out. Apart from the sending so that it can be tested (and fuzzed)
 * alone. */
#ifndef KEFU_CLI_PRODUCE_H
#define KEFU_CLI_PRODUCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/codec.h"
#include "io/topics.h"

/* One line of `kefu produce`, ready to send. */
typedef struct kefu_produce_record {
  json_t *rec;      /* the parsed line; owned: kefu_produce_record_clear() */
  const char *key;  /* the Kafka key, in rec ("$key") or in keybuf; borrowed */
  size_t keylen;    /* bytes of key */
  char keybuf[256]; /* the key of a record, from its key field(s) (SPEC §1.1) */
  bool tombstone;   /* {"$key": "K", "$value": null}: no value */
  size_t len;       /* the frame's length in the caller's buffer; 0 for a tombstone */
  int64_t ts;       /* the Kafka timestamp: ts, else valid_from, else now */
} kefu_produce_record_t;

/** @brief Parses the JSON line @p line (NUL-terminated) for @p topic: a tombstone line,
 *  or a record that gets its key from its key field(s) and is encoded with @p codec into
 *  @p *buf (grown as kefu_codec_encode() does; the buffer stays the caller's).
 *  @returns 0, or -1 with the reason in @p errstr. Either way @p r holds what was parsed
 *  and must be released with kefu_produce_record_clear(). */
int kefu_produce_record_from_line(kefu_produce_record_t *r, kefu_codec_t *codec, kefu_topic_t topic,
                                  const char *line, char **buf, size_t *cap, char *errstr,
                                  size_t errlen);

/** @brief Drops what @p r holds. */
void kefu_produce_record_clear(kefu_produce_record_t *r);

#endif
