/* The processor's options from a configuration.
 *
 * Where each key's value goes is the FIELD() column of ops/config_keys.h: this file
 * expands that same list into option_bindings[] (offset and C type of each field of
 * kefu_processor_opts_t) and kefu_config_fill() copies the values. The C type is taken
 * from the field itself with _Generic, and a static assertion per row checks that the
 * field can hold the key's values (an int key into an int field only when its range fits
 * an int), so a row whose field and type disagree does not compile.
 *
 * What the table cannot say is done by hand below: instance.id's default depends on the
 * host, processing.guarantee is an enum that becomes a bool, and kafka.* pairs have no
 * row at all (librdkafka's table checks them).
 */
#include "cli/options.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The field f (a member designator, e.g. params.threshold) of the options, unevaluated. */
#define OPT_FIELD(f) (((kefu_processor_opts_t *)0)->f)

/* The binding's C type, from the field's declared type; any other type does not compile. */
#define OPT_CTYPE(f)                                                                               \
  _Generic(OPT_FIELD(f),                                                                           \
      int: KEFU_CONFIG_C_INT,                                                                      \
      int64_t: KEFU_CONFIG_C_INT64,                                                                \
      double: KEFU_CONFIG_C_DOUBLE,                                                                \
      bool: KEFU_CONFIG_C_BOOL,                                                                    \
      const char *: KEFU_CONFIG_C_STR,                                                             \
      const char *const *: KEFU_CONFIG_C_LIST)

/* Whether field f can hold every value of a key of kind K (kstr, kint...; lo..hi is the
 * range of an int key). */
#define HOLDS_kstr(lo, hi, f) _Generic(OPT_FIELD(f), const char * : 1, default : 0)
#define HOLDS_kenum(lo, hi, f) HOLDS_kstr(lo, hi, f)
#define HOLDS_kint(lo, hi, f)                                                                      \
  _Generic(OPT_FIELD(f), int : (lo) >= INT_MIN && (hi) <= INT_MAX, int64_t : 1, default : 0)
#define HOLDS_kdbl(lo, hi, f) _Generic(OPT_FIELD(f), double : 1, default : 0)
#define HOLDS_kbool(lo, hi, f) _Generic(OPT_FIELD(f), bool : 1, default : 0)
#define HOLDS_klist(lo, hi, f) _Generic(OPT_FIELD(f), const char *const * : 1, default : 0)

/* 0, once the compiler has checked that field f holds the key's values: a static
 * assertion can stand in an expression only inside a struct. */
#define CHECKED(n, kind, lo, hi, f)                                                                \
  (0 * sizeof(struct {                                                                             \
     _Static_assert(HOLDS_##kind(lo, hi, f), "config key " n ": its field cannot hold it");        \
     char c;                                                                                       \
   }))

/* FIELD(f) or NO_FIELD, the last column but one of a row, picks BIND_ROW or SKIP_ROW. */
#define FIELD(f) BIND_ROW, f
#define NO_FIELD SKIP_ROW, ~
#define ROW(...) ROW_(__VA_ARGS__)
#define ROW_(n, kind, lo, hi, how, f) how(n, kind, lo, hi, f)
#define BIND_ROW(n, kind, lo, hi, f)                                                               \
  { n, offsetof(kefu_processor_opts_t, f) + CHECKED(n, kind, lo, hi, f), OPT_CTYPE(f) }
#define SKIP_ROW(n, kind, lo, hi, f)                                                               \
  { n, 0, KEFU_CONFIG_C_NONE }

#define KEY_STR(n, d, chk, what, dest, h) ROW(n, kstr, 0, 0, dest)
#define KEY_SECRET(n, d, dest, h) ROW(n, kstr, 0, 0, dest)
#define KEY_INT(n, d, lo, hi, dest, h) ROW(n, kint, lo, hi, dest)
#define KEY_DBL(n, d, lo, hi, dec, dest, h) ROW(n, kdbl, 0, 0, dest)
#define KEY_BOOL(n, d, dest, h) ROW(n, kbool, 0, 0, dest)
#define KEY_ENUM(n, d, syms, dest, h) ROW(n, kenum, 0, 0, dest)
#define KEY_LIST(n, d, syms, dest, h) ROW(n, klist, 0, 0, dest)

/* One binding per row of the table, in its order; rows without a field are C_NONE. */
static const kefu_config_binding_t option_bindings[] = {
#include "ops/config_keys.h"
};

const kefu_config_binding_t *kefu_cli_options_bindings(size_t *n) {
  *n = sizeof option_bindings / sizeof option_bindings[0];
  return option_bindings;
}

static void collect_kafka(const char *k, const char *v, void *arg) {
  kefu_cli_options_t *st = arg;
  size_t len = strlen(k) + strlen(v) + 2;
  st->kafka_props =
      realloc(st->kafka_props, (size_t)(st->nkafka_props + 1) * sizeof *st->kafka_props);
  st->kafka_props[st->nkafka_props] = malloc(len);
  snprintf(st->kafka_props[st->nkafka_props++], len, "%s=%s", k, v);
}

int kefu_cli_options_init(kefu_cli_options_t *st, const kefu_config_t *cfg, char *errstr,
                          size_t errlen) {
  char host[128] = "kefu";
  memset(st, 0, sizeof *st);
  if (kefu_config_fill(cfg, &st->o, option_bindings,
                       sizeof option_bindings / sizeof option_bindings[0], errstr, errlen) != 0)
    return -1;
  /* An empty instance.id means hostname-pid, known only at run time. */
  if (!*st->o.instance_id) {
    gethostname(host, sizeof host - 1);
    snprintf(st->instance, sizeof st->instance, "%s-%d", host, (int)getpid());
    st->o.instance_id = st->instance;
  }
  /* An enum of two symbols the processor sees as a bool. */
  st->o.exactly_once = strcmp(kefu_config_str(cfg, "processing.guarantee"), "exactly_once") == 0;
  kefu_config_each_kafka(cfg, collect_kafka, st);
  st->o.kafka_props = st->kafka_props;
  st->o.nkafka_props = st->nkafka_props;
  return 0;
}

void kefu_cli_options_clear(kefu_cli_options_t *st) {
  for (int i = 0; i < st->nkafka_props; i++)
    free(st->kafka_props[i]);
  free(st->kafka_props);
  memset(st, 0, sizeof *st);
}
