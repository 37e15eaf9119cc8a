/* What every libFuzzer target of tests/fuzz shares. A target checks more than "no crash":
 * FUZZ_CHECK states a property the code promises (what was encoded decodes again, what
 * was accepted is usable), and breaking it aborts, which libFuzzer reports as a crash
 * with the input that did it. */
#ifndef KEFU_TESTS_FUZZ_H
#define KEFU_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/codec.h"
#include "io/schemas.h"
#include "ops/log.h"

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* Event time "now" for validation: fixed, so that an input does the same on every run
 * (2026-12-01T00:00:00Z). */
#define FUZZ_NOW_MS INT64_C(1796083200000)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* avro-c keeps a 4-byte reference count in front of every generic value, so the
 * pointers inside one sit at addresses that are 4 mod 8, which LeakSanitizer skips by
 * default: without use_unaligned it reports everything a live codec's cached values
 * own as leaked. (One definition per target: each target is one file.) */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) {
  return "use_unaligned=1";
}

/* Logs would flood the fuzzer's output: WARN lines for ignored variables and the like. */
static inline void fuzz_quiet_logs(void) {
  kefu_log_min_level = (kefu_log_level_t)(KEFU_LOG_ERROR + 1);
}

/* The schema table and a codec over it, made once and kept for the whole run (as the
 * processor keeps its own), for the codec targets. */
static inline kefu_codec_t *fuzz_codec(void) {
  char errstr[256];
  kefu_schemas_t *schemas = kefu_schemas_new(errstr, sizeof errstr);
  FUZZ_CHECK(schemas != NULL);
  kefu_codec_t *codec = kefu_codec_new(schemas);
  FUZZ_CHECK(codec != NULL);
  return codec;
}

/* The input as a NUL-terminated string (a text input stops at its first NUL byte, as a C
 * string read by the code under test would). free() it. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  FUZZ_CHECK(s != NULL);
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

#endif
