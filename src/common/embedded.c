#include "common/embedded.h"

#include <string.h>

const kefu_embedded_t *kefu_embedded_find(const char *path) {
  for (const kefu_embedded_t *e = kefu_embedded_files; e->path; e++)
    if (strcmp(e->path, path) == 0)
      return e;
  return NULL;
}
