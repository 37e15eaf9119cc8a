/* The processor's options from a configuration: one mapping for `kefu run` and
 * `kefu demo`, driven by the FIELD() column of ops/config_keys.h. */
#ifndef KEFU_CLI_OPTIONS_H
#define KEFU_CLI_OPTIONS_H

#include "engine/processor.h"
#include "ops/config.h"

/* The options and what they point to besides the configuration's own strings. */
typedef struct kefu_cli_options {
  kefu_processor_opts_t o;
  char instance[256]; /* hostname-pid when instance.id is empty */
  char **kafka_props; /* "key=value" pass-through pairs; owned */
  int nkafka_props;
} kefu_cli_options_t;

/** @brief Fills @p out from @p cfg, which must outlive it.
 *  @returns 0, or -1 with @p errstr when a binding disagrees with the table (a bug). */
int kefu_cli_options_init(kefu_cli_options_t *out, const kefu_config_t *cfg, char *errstr,
                          size_t errlen);
void kefu_cli_options_clear(kefu_cli_options_t *out);

/** @brief The bindings of every row of the table, in its order: where each key's value
 *  lands in kefu_processor_opts_t (KEFU_CONFIG_C_NONE for keys that have no field).
 *  Sets *@p n to their count. */
const kefu_config_binding_t *kefu_cli_options_bindings(size_t *n);

#endif
