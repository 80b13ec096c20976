#include "worker/checks/poolercheck.h"

#include <stdio.h>

#include "worker/pg/pgconn.h"
#include "worker/pg/pooler.h"

void rw_check_notifications(const struct rw_config *cfg, struct rw_report *rep)
{
    const char *url = cfg->direct_url ? cfg->direct_url : cfg->database_url;
    const char *source = cfg->direct_url ? "DATABASE_DIRECT_URL" : "DATABASE_URL";
    char err[700];
    PGconn *c;
    int first = rep->n;

    if (!url)
        return;     /* admin.login already says DATABASE_URL is missing */
    if (!(c = rw_pg_connect_blocking(url, source, err, sizeof err))) {
        if (cfg->direct_url)
            rw_report_add(rep, "notifications", RW_CHECK_FAIL, NULL,
                          "%s; fix: set DATABASE_DIRECT_URL to the admin role's direct "
                          "connection string, or unset it", err);
        goto out;   /* DATABASE_URL: admin.login reports it */
    }
    switch (rw_pg_probe_notify(c, url, cfg->notify_probe_timeout_ms, err, sizeof err)) {
    case RW_NOTIFY_OK:
        rw_report_add(rep, "notifications", RW_CHECK_PASS, NULL,
                      "a NOTIFY to itself arrives on %s: run hears of new jobs and cancels "
                      "at once", source);
        break;
    case RW_NOTIFY_POOLED:
        rw_report_add(rep, "notifications", RW_CHECK_WARN, NULL,
                      "%s goes through a connection pooler (a NOTIFY from another "
                      "connection did not reach an idle LISTEN), where LISTEN does not work: "
                      "run polls for new jobs and cancels every %d ms instead; fix: %s",
                      source, cfg->poll_interval_pooled_ms, RW_NOTIFY_FIX);
        break;
    case RW_NOTIFY_SILENT:
        rw_report_add(rep, "notifications", RW_CHECK_WARN, NULL,
                      "a NOTIFY to itself did not arrive on %s within %d ms: run polls for "
                      "new jobs and cancels every %d ms instead; fix: %s",
                      source, cfg->notify_probe_timeout_ms, cfg->poll_interval_pooled_ms,
                      RW_NOTIFY_FIX);
        break;
    case RW_NOTIFY_ERROR:
        rw_report_add(rep, "notifications", RW_CHECK_WARN, NULL,
                      "could not check whether notifications arrive on %s: %s", source, err);
        break;
    }
    PQfinish(c);
out:
    rw_report_label(rep, first, source);
}
