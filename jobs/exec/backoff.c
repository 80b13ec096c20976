#include "jobs/exec/backoff.h"

long long rw_backoff_ms(int attempt, long long base_ms, long long max_ms, uint32_t random)
{
    long long delay = base_ms > 0 ? base_ms : 1;
    long long half;

    if (max_ms < 1)
        max_ms = 1;
    for (int i = 1; i < attempt && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    half = delay / 2;
    return delay - half + (long long)(random % (uint64_t)(half + 1));
}
