#include "common/ids.h"

bool kefu_id_valid(const char *s, size_t max) {
  size_t n = 0;
  if (!s)
    return false;
  for (; s[n]; n++) {
    char c = s[n];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok || n >= max)
      return false;
  }
  return n > 0;
}
