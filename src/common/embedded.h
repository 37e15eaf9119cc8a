/* Files compiled into the binary (schemas/, src/store/ (*.lua)): see cmake/embed.cmake. */
#ifndef KEFU_COMMON_EMBEDDED_H
#define KEFU_COMMON_EMBEDDED_H
#include <stddef.h>

typedef struct kefu_embedded {
  const char *path; /* relative to the source root, e.g. "schemas/chat_event.avsc" */
  const char *data; /* NUL-terminated contents */
  size_t len;
} kefu_embedded_t;

extern const kefu_embedded_t kefu_embedded_files[]; /* ends with a NULL path */

/** @brief The embedded file at @p path, or NULL. */
const kefu_embedded_t *kefu_embedded_find(const char *path);

#endif
