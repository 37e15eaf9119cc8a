/* The processor's options from a configuration: one mapping for `kefu run` and
 * `kefu demo`. */
#ifndef KEFU_CLI_OPTIONS_H
#define KEFU_CLI_OPTIONS_H

#include "engine/processor.h"
#include "ops/config.h"

/* The options and what they point to besides the configuration's own strings. */
typedef struct kefu_cli_options {
  kefu_processor_opts_t o;
  char instance[256]; /* instance.id, or hostname-pid */
  char **kafka_props; /* "key=value" pass-through pairs; owned */
  int nkafka_props;
  const char **couriers; /* logistics_couriers, NULL-terminated; owned (strings: cfg's) */
} kefu_cli_options_t;

/** @brief Fills @p out from @p cfg, which must outlive it. */
void kefu_cli_options_init(kefu_cli_options_t *out, const kefu_config_t *cfg);
void kefu_cli_options_clear(kefu_cli_options_t *out);

#endif
