/* Doctor: whether the worker will hear of new jobs and cancels through
 * LISTEN/NOTIFY, or has to poll because a connection pooler is in the way
 * (worker/pg/pooler.h; README, "Behind a connection pooler"). */
#ifndef RW_POOLERCHECK_H
#define RW_POOLERCHECK_H

#include "worker/base/config.h"
#include "worker/checks/rolecheck.h"

/* Adds check `notifications`: PASS when a NOTIFY to itself arrives on
 * DATABASE_DIRECT_URL (or DATABASE_URL without it), WARN naming the fix when
 * a pooler answers or nothing arrives, FAIL when DATABASE_DIRECT_URL cannot
 * log in. Nothing is LISTENed through a pooler. */
void rw_check_notifications(const struct rw_config *cfg, struct rw_report *rep);

#endif
