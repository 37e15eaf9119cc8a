#include "common/murmur2.h"

int32_t kefu_murmur2(const void *data, size_t len) {
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  const uint8_t *p = data;
  uint32_t h = 0x9747b28c ^ (uint32_t)len;
  size_t n4 = len / 4;

  for (size_t i = 0; i < n4; i++) {
    uint32_t k = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 | (uint32_t)p[i * 4 + 2] << 16 |
                 (uint32_t)p[i * 4 + 3] << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (len % 4) {
  case 3: h ^= (uint32_t)p[(len & ~3u) + 2] << 16; /* fall through */
  case 2: h ^= (uint32_t)p[(len & ~3u) + 1] << 8;  /* fall through */
  case 1: h ^= p[len & ~3u]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int32_t)h;
}

int kefu_murmur2_partition(const void *key, size_t len, int partitions) {
  return (int)(((uint32_t)kefu_murmur2(key, len) & 0x7fffffffu) % (uint32_t)partitions);
}
