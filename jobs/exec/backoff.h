/* Retry delay after a failed attempt: exponential with jitter.
 * attempt 1 waits about base, attempt 2 about 2*base, ... capped at max.
 * "Equal jitter": half the delay fixed, half random, so delays still grow. */
#ifndef RW_BACKOFF_H
#define RW_BACKOFF_H

#include <stdint.h>

long long rw_backoff_ms(int attempt, long long base_ms, long long max_ms, uint32_t random);

#endif
