/* The console's JSON API under /ui/api/ (behind the console's
 * authentication; POSTs also behind its CSRF and Origin checks):
 *
 *   GET  session     the user and the CSRF token for POSTs
 *   GET  overview    jobs per task and queue; finished runs per minute
 *   GET  jobs        live jobs: ?state= &task= &queue= &subject= &before=<id> &limit=
 *   GET  history     finished runs: ?outcome= &task= &queue= &subject= &before=<cursor>
 *   GET  cron        this worker's crontab with each line's last and next fire
 *   GET  workers     registered workers and their last heartbeat
 *   POST action      {"action": "retry"|"cancel"|"delete", "id": N}
 *   POST enqueue     {"task", "payload", "subject", "claims", "run_at", "queue",
 *                     "key", "priority"}: exactly rlsworker.add_job
 *
 * Every statement returns one JSON text that is passed through. Claims are
 * never read: jobs show only whether they have claims, and their subject.
 * Pages are keyset-paged; nothing reads every job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler/cron/cron.h"
#include "scheduler/cron/cron_runner.h"
#include "worker/http/console_int.h"
#include "worker/base/log.h"

static const char OVERVIEW_SQL[] =
    "select json_build_object("
    " 'queues', (select coalesce(json_agg(o order by o.task, o.queue nulls first), '[]') from ("
    "   select task, queue,"
    "    count(*) filter (where state = 'queued') as queued,"
    "    count(*) filter (where state = 'queued' and run_at <= now()) as ready,"
    "    count(*) filter (where state = 'running') as running,"
    "    count(*) filter (where state = 'dead') as dead,"
    "    count(*) filter (where state = 'cancelled') as cancelled,"
    "    round(extract(epoch from now() - min(run_at)"
    "      filter (where state = 'queued' and run_at <= now()))::numeric, 1) as oldest_ready_s"
    "   from rlsworker.jobs group by task, queue order by task, queue limit 200) o),"
    " 'throughput', (select coalesce(json_agg(t order by t.minute), '[]') from ("
    "   select to_char(date_trunc('minute', finished_at) at time zone 'UTC', 'HH24:MI') as minute,"
    "    count(*) filter (where outcome = 'succeeded') as succeeded,"
    "    count(*) filter (where outcome = 'failed') as failed,"
    "    count(*) filter (where outcome = 'dead') as dead,"
    "    count(*) filter (where outcome = 'cancelled') as cancelled"
    "   from rlsworker.job_runs where finished_at > now() - interval '15 minutes'"
    "   group by 1) t))::text";

static const char JOBS_SQL[] =
    "select json_build_object('rows', coalesce(json_agg(j order by j.id desc), '[]'),"
    " 'next', case when count(*) = $6::int then min(j.id) end)::text from ("
    " select id, task, queue, left(payload::text, 2000) as payload,"
    "  claims is not null as has_claims, subject, run_as, priority, run_at, attempts,"
    "  max_attempts, state, left(last_error, 2000) as last_error, job_key, locked_by,"
    "  locked_at, cancel_requested, created_at"
    " from rlsworker.jobs"
    " where ($1::text is null or state = $1) and ($2::text is null or task = $2)"
    "  and ($3::text is null or queue = $3) and ($4::text is null or subject = $4)"
    "  and ($5::bigint is null or id < $5)"
    " order by id desc limit $6::int) j";

static const char HISTORY_SQL[] =
    "select json_build_object('rows', coalesce(json_agg(h order by h.finished_at desc, h.hid desc), '[]'),"
    " 'next', case when count(*) = $7::int then"
    "   (array_agg(to_char(h.finished_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    "    || '/' || h.hid order by h.finished_at, h.hid))[1] end)::text from ("
    " select id as hid, job_id as id, task, queue, subject, attempts, outcome, worker_id,"
    "  error, created_at, started_at, finished_at,"
    "  round(extract(epoch from duration) * 1000, 1) as duration_ms"
    " from rlsworker.job_runs_page($1::text, $2::text, $3::text, $4::text, $5::timestamptz,"
    "  $6::bigint, $7::int)) h";

static const char CRON_SQL[] =
    "select coalesce(json_agg(json_build_object('id', e.id, 'task', e.task, 'tz', e.tz,"
    " 'queue', e.queue, 'next', e.next, 'last', s.last_tick, 'last_job', s.job_id)"
    " order by e.n), '[]')::text"
    " from json_to_recordset($1::json) as e(n int, id text, task text, tz text, queue text,"
    "  next timestamptz)"
    " left join rlsworker.cron_state s on s.id = e.id";

static const char WORKERS_SQL[] =
    "select coalesce(json_agg(w order by w.started_at), '[]')::text from ("
    " select w.id, w.host, w.pid, w.started_at, w.heartbeat_at,"
    "  round(extract(epoch from now() - w.heartbeat_at)::numeric, 1) as heartbeat_age_s,"
    "  (select count(*) from rlsworker.jobs j where j.state = 'running'"
    "   and j.locked_by = w.id) as running"
    " from rlsworker.workers w order by w.started_at limit 200) w";

static const char ENQUEUE_SQL[] =
    "select rlsworker.add_job(task => $1, payload => $2::jsonb, run_at => $3::timestamptz,"
    " queue => $4, job_key => $5, priority => coalesce($6::int, 0), claims => $7::jsonb,"
    " subject => $8)";

/* ---- reads ----------------------------------------------------------------- */

/* JSON text of v (steals the reference), or NULL. */
static char *dump(json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;

    json_decref(v);
    return s;
}

static void on_json(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;

    r->db_wait = false;
    if (!res->ok) {
        rw_console_db_error(r, res);
        return;
    }
    rw_req_answer(r, 200, strdup(PQgetvalue(res->results[0], 0, 0)));
}

static void query(struct rw_console *c, struct rw_req *r, const char *sql, int n,
                  const char *const *params)
{
    if (!rw_console_query(c, r, sql, n, params, on_json))
        rw_req_error(r, 503, "database_unavailable", "the console's database connection "
                     "is not ready; retry shortly");
}

static bool is_one_of(const char *v, const char *const *set)
{
    for (; v && *set; set++)
        if (strcmp(v, *set) == 0)
            return true;
    return v == NULL;
}

static bool whole(const char *v)
{
    if (!v)
        return true;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return strlen(v) < 19;
}

/* ?limit=N, bounded; writes the text form to buf. */
static const char *page_limit(struct rw_req *r, char *buf, size_t n)
{
    const char *v = rw_console_arg(r, "limit");
    int limit = v && whole(v) ? atoi(v) : RW_CONSOLE_PAGE_DEFAULT;

    if (limit < 1 || limit > RW_CONSOLE_PAGE_MAX)
        limit = RW_CONSOLE_PAGE_DEFAULT;
    snprintf(buf, n, "%d", limit);
    return buf;
}

static void get_jobs(struct rw_console *c, struct rw_req *r)
{
    static const char *const states[] = {"queued", "running", "dead", "cancelled", NULL};
    char lim[16];
    const char *p[6] = {rw_console_arg(r, "state"), rw_console_arg(r, "task"),
                        rw_console_arg(r, "queue"), rw_console_arg(r, "subject"),
                        rw_console_arg(r, "before"), page_limit(r, lim, sizeof lim)};

    if (!is_one_of(p[0], states) || !whole(p[4])) {
        rw_req_error(r, 400, "bad_request", "state is queued, running, dead or cancelled; before is a job id");
        return;
    }
    query(c, r, JOBS_SQL, 6, p);
}

static void get_history(struct rw_console *c, struct rw_req *r)
{
    static const char *const outcomes[] = {"succeeded", "failed", "dead", "cancelled", NULL};
    const char *before = rw_console_arg(r, "before");
    char lim[16], t[64] = "", *slash;
    const char *p[7] = {rw_console_arg(r, "outcome"), rw_console_arg(r, "task"),
                        rw_console_arg(r, "queue"), rw_console_arg(r, "subject"),
                        NULL, NULL, page_limit(r, lim, sizeof lim)};

    if (before && strlen(before) < sizeof t) {
        snprintf(t, sizeof t, "%s", before);
        if ((slash = strchr(t, '/')) && whole(slash + 1) && slash[1]) {
            *slash = '\0';
            p[4] = t;
            p[5] = slash + 1;
        }
    }
    if (!is_one_of(p[0], outcomes) || (before && !p[4])) {
        rw_req_error(r, 400, "bad_request", "outcome is succeeded, failed, dead or cancelled; "
                     "before is the cursor a page returned");
        return;
    }
    query(c, r, HISTORY_SQL, 7, p);
}

/* The crontab in use, as JSON rows with each line's next fire from now. */
static char *cron_rows(const struct rw_intake_env *env)
{
    const struct rw_crontab *tab = env->crontab ? env->crontab(env->arg) : NULL;
    json_t *arr = json_array();
    int64_t now = (int64_t)time(NULL), next;
    char when[32];

    for (int i = 0; tab && i < tab->n; i++) {
        const struct rw_cron_entry *e = &tab->entries[i];
        json_t *row = json_pack("{si ss ss ss}", "n", i, "id", e->id, "task", e->task,
                                "tz", e->tz);
        if (!row)
            continue;
        if (e->queue)
            json_object_set_new(row, "queue", json_string(e->queue));
        if (rw_cron_next(&e->sched, e->tz, now, &next) == 0) {
            rw_cron_fmt_time(next, when, sizeof when);
            json_object_set_new(row, "next", json_string(when));
        }
        json_array_append_new(arr, row);
    }
    return dump(arr);
}

static void get_cron(struct rw_console *c, struct rw_req *r)
{
    char *rows = cron_rows(c->env);
    const char *p[1] = {rows};

    if (!rows) {
        rw_req_error(r, 503, "out_of_memory", "out of memory");
        return;
    }
    query(c, r, CRON_SQL, 1, p);
    free(rows);
}

static void get_session(struct rw_console *c, struct rw_req *r)
{
    rw_req_answer(r, 200, dump(json_pack("{ss ss ss ss}", "user", c->user, "csrf", c->csrf,
                                         "worker", c->env->worker_id ? c->env->worker_id : "", "version", RW_VERSION)));
}

/* ---- actions ---------------------------------------------------------------- */

static void on_action(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;
    const char *out;

    r->db_wait = false;
    if (!res->ok) {
        rw_console_db_error(r, res);
        return;
    }
    out = PQgetvalue(res->results[0], 0, 0);
    rw_info("console: user %s: %s job %s: %s", r->in->console->user, r->note,
            PQgetvalue(res->results[0], 0, 1), out);
    rw_req_answer(r, 200, dump(json_pack("{ss}", "result", out)));
}

static void post_action(struct rw_console *c, struct rw_req *r, json_t *body)
{
    const char *action = json_string_value(json_object_get(body, "action"));
    json_t *jid = json_object_get(body, "id");
    const char *sql;
    char id[24];
    const char *p[1] = {id};

    if (!action || !json_is_integer(jid) || json_integer_value(jid) <= 0) {
        rw_req_error(r, 400, "bad_request", "send {\"action\": \"retry\"|\"cancel\"|\"delete\", "
                     "\"id\": <job id>}");
        return;
    }
    if (!strcmp(action, "retry"))
        sql = "select rlsworker.retry_job($1::bigint), $1";
    else if (!strcmp(action, "cancel"))
        sql = "select rlsworker.cancel_job($1::bigint), $1";
    else if (!strcmp(action, "delete"))
        sql = "select rlsworker.delete_job($1::bigint), $1";
    else {
        rw_req_error(r, 400, "bad_request", "action is retry, cancel or delete");
        return;
    }
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(jid));
    snprintf(r->note, sizeof r->note, "%s", action);   /* for the log line */
    if (!rw_console_query(c, r, sql, 1, p, on_action))
        rw_req_error(r, 503, "database_unavailable", "the console's database connection "
                     "is not ready; nothing was changed");
}

static void on_enqueued(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;

    r->db_wait = false;
    if (!res->ok) {
        rw_console_db_error(r, res);
        return;
    }
    r->job_id = atoll(PQgetvalue(res->results[0], 0, 0));
    rw_info("console: user %s enqueued task %s as job %lld", r->in->console->user,
            r->note, r->job_id);
    rw_req_answer(r, 200, NULL);
}

/* A JSON member given as an object or as JSON text; "" or absent is NULL. */
static int json_member_text(json_t *body, const char *key, char **out)
{
    json_t *v = json_object_get(body, key);
    const char *s = json_string_value(v);

    *out = NULL;
    if (!v || json_is_null(v) || (s && !s[0]))
        return 0;
    if (json_is_object(v)) {
        *out = json_dumps(v, JSON_COMPACT);
        return *out ? 0 : -1;
    }
    if (!s)
        return -1;
    /* text: passed as is; PostgreSQL's jsonb input and add_job judge it */
    *out = strdup(s);
    return *out ? 0 : -1;
}

static const char *str_member(json_t *body, const char *key)
{
    const char *s = json_string_value(json_object_get(body, key));

    return s && s[0] ? s : NULL;
}

static void post_enqueue(struct rw_console *c, struct rw_req *r, json_t *body)
{
    char *payload = NULL, *claims = NULL, prio[24];
    json_t *jp = json_object_get(body, "priority");
    const char *p[8];

    if (!str_member(body, "task")) {
        rw_req_error(r, 400, "bad_request", "task is required");
        return;
    }
    if (json_member_text(body, "payload", &payload) < 0 ||
        json_member_text(body, "claims", &claims) < 0) {
        rw_req_error(r, 400, "bad_request", "payload and claims are JSON objects (or text)");
        goto out;
    }
    if (jp && !json_is_null(jp) && !json_is_integer(jp) &&
        !(json_is_string(jp) && (!json_string_value(jp)[0] || whole(json_string_value(jp)) ||
                                 (json_string_value(jp)[0] == '-' &&
                                  whole(json_string_value(jp) + 1))))) {
        rw_req_error(r, 400, "bad_request", "priority is a whole number");
        goto out;
    }
    if (json_is_integer(jp))
        snprintf(prio, sizeof prio, "%lld", (long long)json_integer_value(jp));
    else
        snprintf(prio, sizeof prio, "%s", json_is_string(jp) ? json_string_value(jp) : "");
    p[0] = str_member(body, "task");
    p[1] = payload ? payload : "{}";
    p[2] = str_member(body, "run_at");
    p[3] = str_member(body, "queue");
    p[4] = str_member(body, "key");
    p[5] = prio[0] ? prio : NULL;
    p[6] = claims;
    p[7] = str_member(body, "subject");
    snprintf(r->note, sizeof r->note, "%s", p[0]);
    if (!rw_console_query(c, r, ENQUEUE_SQL, 8, p, on_enqueued))
        rw_req_error(r, 503, "database_unavailable", "the console's database connection "
                     "is not ready; nothing was stored");
out:
    free(payload);
    free(claims);
}

/* ---- routing ----------------------------------------------------------------- */

static void post(struct rw_console *c, struct rw_req *r, const char *path)
{
    json_t *body = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, NULL);

    if (!json_is_object(body))
        rw_req_error(r, 400, "bad_request", "send a JSON object");
    else if (!strcmp(path, "action"))
        post_action(c, r, body);
    else if (!strcmp(path, "enqueue"))
        post_enqueue(c, r, body);
    else
        rw_req_error(r, 404, "not_found", "no such console API call");
    json_decref(body);
}

void rw_console_api(struct rw_console *c, struct rw_req *r, const char *path, bool is_post)
{
    if (is_post) {
        post(c, r, path);
        return;
    }
    if (!strcmp(path, "session"))
        get_session(c, r);
    else if (!strcmp(path, "overview"))
        query(c, r, OVERVIEW_SQL, 0, NULL);
    else if (!strcmp(path, "jobs"))
        get_jobs(c, r);
    else if (!strcmp(path, "history"))
        get_history(c, r);
    else if (!strcmp(path, "cron"))
        get_cron(c, r);
    else if (!strcmp(path, "workers"))
        query(c, r, WORKERS_SQL, 0, NULL);
    else
        rw_req_error(r, 404, "not_found", "no such console API call");
}
