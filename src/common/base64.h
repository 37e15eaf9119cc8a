#ifndef KEFU_COMMON_BASE64_H
#define KEFU_COMMON_BASE64_H
#include <stddef.h>

/** @brief Standard base64 (with padding) of @p len bytes; a new string owned by the caller. */
char *kefu_base64(const void *data, size_t len);

#endif
