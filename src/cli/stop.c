/* The flag SIGINT and SIGTERM raise for commands that stop cleanly (see cli.h). */
#include <signal.h>

#include "cli/cli.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

volatile sig_atomic_t *kefu_cli_stop_on_signals(void) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  return &stop_requested;
}
