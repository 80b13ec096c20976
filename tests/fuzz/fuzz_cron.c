/* libFuzzer target for the crontab parser: any bytes must either parse into
 * entries whose next fire times can be computed, or be refused with at least
 * one error; never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "scheduler/cron/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rw_crontab *tab = NULL;
    struct rw_cron_diag d;
    if (rw_crontab_parse((const char *)data, size, &tab, &d) < 0) {
        if (d.nerr < 1 || tab)
            abort();
        return 0;
    }
    for (int i = 0; i < tab->n && i < 8; i++) {
        int64_t t = 1700000000;
        for (int k = 0; k < 3; k++) {
            int64_t next;
            if (rw_cron_next(&tab->entries[i].sched, tab->entries[i].tz, t, &next) < 0)
                break;
            if (next <= t)
                abort();                   /* next must move forward */
            t = next;
        }
    }
    rw_crontab_free(&tab);
    return 0;
}
