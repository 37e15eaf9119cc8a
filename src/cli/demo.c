#include <stdio.h>

#include "cli/cli.h"

int kefu_cmd_demo(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "kefu demo: under construction\n");
  return KEFU_EXIT_FAIL;
}
