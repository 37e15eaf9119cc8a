/* A seeded xorshift64* for the unit tests' random inputs: the same sequence on every
 * run, so a failure reproduces. Include it once per test program. */
#ifndef KEFU_TESTS_UNIT_RNG_H
#define KEFU_TESTS_UNIT_RNG_H
#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

#endif
