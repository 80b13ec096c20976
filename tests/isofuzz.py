"""The isolation fuzzer of issue 9: a seeded generator of task files made of
session and transaction state changes, and the checks that tell whether one
job's session reached the next or one user's job saw or changed another
user's rows. Used by tests/integration/test_isolation_fuzz.py.

A generated task is a list of fragments. Each fragment is one or more SQL
statements and the leak class it tries (`temp`, `search_path`, `prepared`,
`advisory`, `listen`, `cursor`, `role`, `settings`, `claims`, or `none` for
what must not leak: SET LOCAL, savepoints, errors, timeouts, the legit RLS
reads and writes). Many spellings are refused when the worker loads the file;
the fuzzer counts those and runs what loads.
"""
import random

USERS = ("alice", "bob", "carol", "dave", "erin")

# Values a fragment may give a setting. The probe compares against what a
# fresh connection has.
SETTINGS = {
    "search_path": ["pg_temp, public", "public, pg_temp", '"$user"', "pg_catalog, pg_temp"],
    "application_name": ["fz_app"],
    "TimeZone": ["Pacific/Chatham", "UTC+5"],
    "DateStyle": ["SQL, DMY", "German"],
    "work_mem": ["1234kB"],
    "iso.marker": ["leaked"],
    "lock_timeout": ["1234"],
}

# The admin role, to which the restricted role must never get.
OWNER = "neondb_owner"
RESTRICTED = "authenticated_backend"


def u_escape(ident, rng):
    """`U&"..."` spelling of an identifier with one or more letters escaped."""
    out = []
    for ch in ident:
        if ch.isalnum() or ch in "_.$":
            if rng.random() < 0.4:
                out.append("\\%04x" % ord(ch))
                continue
        if ch == '"':
            out.append('""')
        else:
            out.append(ch)
    return 'U&"%s"' % "".join(out)


def ident_spelling(name, rng):
    """One spelling of an identifier: bare (random case), quoted or U&."""
    k = rng.randrange(5)
    if k == 0 or "." in name and k == 3:
        return name
    if k == 1:
        return "".join(c.upper() if rng.random() < 0.5 else c for c in name) \
            if name.lower() == name else name
    if k == 2:
        return '"%s"' % name
    if k == 3:
        return '"%s"' % name if name.lower() == name else name
    return u_escape(name, rng)


def setting_ident(name, rng):
    """A setting name as SET accepts it: dotted custom names quote per part."""
    if "." in name:
        parts = name.split(".")
        return ".".join(ident_spelling(p, rng) if rng.random() < 0.5 else p for p in parts)
    if name.lower() != name:
        name = name.lower() if rng.random() < 0.5 else name
    return ident_spelling(name, rng)


def lit(value):
    return "'%s'" % value.replace("'", "''")


def do_block(rng, body_stmt):
    """A DO block that runs `body_stmt` (SQL text) through EXECUTE, spelled
    so that no checker reading the text can see the statement whole."""
    k = rng.randrange(4)
    tag = rng.choice(["$$", "$fz$", "$x$"])
    if k == 0:
        inner = "execute %s;" % lit(body_stmt)
    elif k == 1:
        cut = max(1, min(len(body_stmt) - 1, rng.randrange(1, 5)))
        inner = "execute %s || %s;" % (lit(body_stmt[:cut]), lit(body_stmt[cut:]))
    elif k == 2:
        inner = "execute format('%%s', %s);" % lit(body_stmt)
    else:
        inner = "execute reverse(%s);" % lit(body_stmt[::-1])
    if rng.random() < 0.3:
        return "DO %s\nBEGIN\n    %s\nEND %s" % (tag, inner, tag)
    return "do %s begin %s end %s" % (tag, inner, tag)


def maybe_do(rng, stmt, p=0.4):
    return do_block(rng, stmt) if rng.random() < p else stmt


# ---- fragments ----------------------------------------------------------
# Each returns (statements, leak class).

def frag_set_session(rng, sub, others):
    name = rng.choice(list(SETTINGS))
    value = rng.choice(SETTINGS[name])
    if name == "search_path" and rng.random() < 0.5:
        val_sql = value          # search_path takes an identifier list
    else:
        val_sql = lit(value)
    k = rng.randrange(9)
    ident = setting_ident(name, rng)
    if k == 0:
        s = "set %s = %s" % (ident, val_sql)
    elif k == 1:
        s = "SET SESSION %s TO %s" % (ident, val_sql)
    elif k == 2:
        fn = rng.choice(["set_config", '"set_config"', "pg_catalog.set_config",
                         u_escape("set_config", rng), "SET_CONFIG"])
        s = "select %s(%s, %s, false)" % (fn, lit(name), lit(value))
    elif k == 3:
        s = "update pg_settings set setting = %s where name = %s" % (lit(value), lit(name))
    elif k == 4:
        s = "do $$ begin execute 'select set_con' || 'fig($1, $2, false)' using %s, %s; end $$" % (
            lit(name), lit(value))
    else:
        s = do_block(rng, "set %s = %s" % (name, val_sql))
    return [s], "settings" if name != "search_path" else "search_path"


def frag_set_local(rng, sub, others):
    name = rng.choice(list(SETTINGS))
    value = rng.choice(SETTINGS[name])
    k = rng.randrange(3)
    ident = setting_ident(name, rng)
    if k == 0:
        s = "set local %s = %s" % (ident, lit(value))
    elif k == 1:
        s = "SET LOCAL %s TO %s" % (ident, lit(value))
    else:
        fn = rng.choice(["set_config", u_escape("set_config", rng)])
        s = "select %s(%s, %s, true)" % (fn, lit(name), lit(value))
    return [s], "none"


def frag_claims(rng, sub, others):
    """Forged claims: another user's sub, set locally or for the session."""
    other = rng.choice(others)
    claims = '{"sub":"%s"}' % other
    ident = setting_ident("request.jwt.claims", rng)
    k = rng.randrange(6)
    if k == 0:
        s = "set local %s = %s" % (ident, lit(claims))
    elif k == 1:
        s = "set %s = %s" % (ident, lit(claims))
    elif k == 2:
        fn = rng.choice(['"set_config"', u_escape("set_config", rng), "set_config"])
        s = "select %s('request.jwt.claims', %s, %s)" % (fn, lit(claims),
                                                         rng.choice(["true", "false"]))
    elif k == 3:
        s = do_block(rng, "set local request.jwt.claims = %s" % lit(claims))
    elif k == 4:
        s = "update pg_settings set setting = %s where name = 'request.jwt.claims'" % lit(claims)
    else:
        s = do_block(rng, "set request.jwt.claims = %s" % lit(claims))
    return [s] + legit_ops(rng), "claims"


def frag_temp(rng, sub, others):
    name = "todos" if rng.random() < 0.6 else "fz_tmp%d" % rng.randrange(3)
    kw = rng.choice(["temp", "temporary", "TEMP", "local temp", "LOCAL TEMPORARY", "global temp"])
    on_commit = rng.choice(["", "", "", " on commit drop", " on commit preserve rows",
                            " on commit delete rows"])
    k = rng.randrange(7)
    if k == 0:
        s = "create %s table %s (like public.todos including defaults)%s" % (kw, name, on_commit)
    elif k == 1:
        s = "create table pg_temp.%s (like public.todos including defaults)" % name
    elif k == 2:
        s = 'create table "pg_temp".%s as select * from public.todos' % name
    elif k == 3:
        s = "select * into %s %s from public.todos" % (
            rng.choice(["temp", "temporary table", "TEMP TABLE"]), name)
    elif k == 4:
        s = "create %s table %s%s as select * from public.todos" % (kw, name, on_commit)
    elif k == 5:
        s = "create %s view %s as select * from public.todos" % (
            rng.choice(["temp", "temporary"]), name)
    else:
        s = "create %s sequence fz_seq" % rng.choice(["temp", "temporary"])
    s = maybe_do(rng, s, 0.5)
    out = [s]
    if name == "todos" and k != 5 and k != 6:
        # fill the shadow with this user's own rows and a marker
        out.append("insert into todos (user_id, task) values (auth.user_id(), 'shadow|' || :job_id)")
    return out, "temp"


def frag_prepare(rng, sub, others):
    n = rng.randrange(3)
    k = rng.randrange(4)
    if k == 0:
        s = "prepare fz_p%d as select count(*) from todos" % n
    elif k == 1:
        s = 'PREPARE "fz_P%d"(int) AS select $1' % n
    else:
        s = do_block(rng, "prepare fz_p%d as select 1" % n)
    if rng.random() < 0.15:
        return [s, rng.choice(["deallocate all", "DEALLOCATE fz_p%d" % n])], "none"
    return [s], "prepared"


def frag_cursor(rng, sub, others):
    hold = rng.random() < 0.7
    c = "fz_c%d" % rng.randrange(3)
    s = "declare %s %scursor %s for select * from todos" % (
        c, rng.choice(["", "no scroll ", "binary "]), "with hold" if hold else "without hold")
    if rng.random() < 0.2:
        s = s.upper().replace("TODOS", "todos")
    s = maybe_do(rng, s, 0.5)
    return [s], "cursor" if hold else "none"


def frag_advisory(rng, sub, others):
    key = rng.randrange(1, 4)
    k = rng.randrange(7)
    if k == 0:
        s, cls = "select pg_advisory_lock(%d)" % key, "advisory"
    elif k == 1:
        s, cls = "select pg_try_advisory_lock(%d)" % key, "advisory"
    elif k == 2:
        s, cls = "select pg_catalog.pg_advisory_lock_shared(%d, %d)" % (key, key), "advisory"
    elif k == 3:
        s, cls = "do $$ begin perform pg_advisory_lock(%d); end $$" % key, "advisory"
    elif k == 4:
        s, cls = "select pg_advisory_xact_lock(%d)" % (100 + key), "none"
    elif k == 5:
        s, cls = "select pg_try_advisory_xact_lock_shared(%d)" % (100 + key), "none"
    else:
        s, cls = "select pg_advisory_unlock_all()", "none"
    return [s], cls


def frag_listen(rng, sub, others):
    ch = rng.choice(["fz_chan", '"Fz Chan"', "rlsworker_jobs", "rlsworker_cancel"])
    k = rng.randrange(5)
    if k == 0:
        return ["listen %s" % ch], "listen"
    if k == 1:
        return [do_block(rng, "LISTEN %s" % ch)], "listen"
    if k == 2:
        return ["notify %s, 'fz'" % ch], "none"
    if k == 3:
        return ["select pg_notify('fz_chan', 'x')"], "none"
    return [rng.choice(["unlisten *", do_block(rng, "unlisten *")])], "none"


def frag_role(rng, sub, others):
    k = rng.randrange(9)
    if k == 0:
        s = "set role %s" % rng.choice(["none", RESTRICTED, '"%s"' % RESTRICTED, OWNER])
    elif k == 1:
        s = "set local role %s" % rng.choice(["none", OWNER, u_escape(OWNER, rng)])
    elif k == 2:
        s = "set session authorization %s" % rng.choice(["default", RESTRICTED, "'%s'" % RESTRICTED])
    elif k == 3:
        s = "set local %s = %s" % (ident_spelling("role", rng), lit(rng.choice([OWNER, RESTRICTED])))
    elif k == 4:
        s = "set %s = %s" % (ident_spelling("role", rng), lit(rng.choice([OWNER, RESTRICTED, "none"])))
    elif k == 5:
        s = do_block(rng, "set role %s" % rng.choice([RESTRICTED, "none", OWNER]))
    elif k == 6:
        s = do_block(rng, "set session authorization %s" % RESTRICTED)
    elif k == 7:
        s = rng.choice(["reset role", "RESET SESSION AUTHORIZATION"])
    else:
        s = "select %s('role', %s, %s)" % (u_escape("set_config", rng), lit(OWNER),
                                          rng.choice(["true", "false"]))
    return [s], "role"


def frag_reset(rng, sub, others):
    s = rng.choice(["reset all", "RESET search_path", "reset application_name",
                    do_block(rng, "reset all"), "discard all", "discard temp",
                    "DISCARD PLANS", do_block(rng, "discard sequences")])
    return [s], "none"


def frag_savepoint(rng, sub, others):
    k = rng.randrange(4)
    if k == 0:
        return ["savepoint fz_s", "release savepoint fz_s"], "none"
    if k == 1:
        return ["SAVEPOINT fz_s", "rollback to savepoint fz_s"], "none"
    if k == 2:
        # a subtransaction that takes state and fails
        stmt = rng.choice(["create temp table fz_sub (a int)", "prepare fz_sub as select 1",
                           "listen fz_sub", "set search_path = pg_temp"])
        return ["do $$ begin execute %s; perform 1 / 0; "
                "exception when division_by_zero then null; end $$" % lit(stmt)], "none"
    return ["savepoint fz_s"], "none"


def frag_error(rng, sub, others):
    s = rng.choice(["select 1 / 0", "do $$ begin raise exception 'fz boom'; end $$",
                    "select * from fz_no_such_table", "select 'x'::int",
                    "do $$ begin raise 'fz %', 42 using errcode = '23505'; end $$"])
    return [s], "error"


def frag_legit(rng, sub, others):
    return legit_ops(rng), "none"


def legit_ops(rng):
    """What a real task does: RLS-checked writes and reads of todos. The read
    records what the job saw, with its job id (bound by the worker)."""
    ops = []
    if rng.random() < 0.7:
        ops.append("insert into todos (task) values ('fz|' || :job_id)")
    if rng.random() < 0.3:
        ops.append("update todos set is_complete = not is_complete where task like 'seed|%'")
    ops.append("insert into public.iso_seen (job_id, seen, rel) "
               "select :job_id::bigint, coalesce(array_agg(distinct user_id), '{}'), "
               "to_regclass('todos')::text from todos")
    return ops


FRAGMENTS = [
    (frag_set_session, 5), (frag_set_local, 2), (frag_claims, 3), (frag_temp, 5),
    (frag_prepare, 3), (frag_cursor, 2), (frag_advisory, 3), (frag_listen, 3),
    (frag_role, 3), (frag_reset, 1), (frag_savepoint, 2), (frag_error, 2), (frag_legit, 3),
]


class FuzzTask:
    """One generated task file."""

    def __init__(self, name, header, stmts, classes, cancel=False):
        self.name = name
        self.header = header
        self.stmts = stmts
        self.classes = classes
        self.cancel = cancel      # the test cancels it while it sleeps

    @property
    def text(self):
        return "".join("-- %s: %s\n" % kv for kv in self.header) + \
            "".join("%s;\n" % s for s in self.stmts)


def gen_task(rng, name, sub):
    """A random task for user `sub`."""
    others = [u for u in USERS if u != sub]
    header = [("task", name), ("max_attempts", "1")]
    stmts, classes = [], set()
    weights = [w for _, w in FRAGMENTS]
    for _ in range(rng.randint(1, 5)):
        frag = rng.choices([f for f, _ in FRAGMENTS], weights)[0]
        s, cls = frag(rng, sub, others)
        stmts += s
        classes.add(cls)
    cancel = False
    t = rng.random()
    if t < 0.05:
        # statement_timeout (the task's timeout, set locally by the worker)
        header.append(("timeout", "1s"))
        stmts.insert(rng.randrange(len(stmts) + 1), "select pg_sleep(1.5)")
        classes.add("timeout")
    elif t < 0.08:
        # the task switches statement_timeout off: the worker's own timer cancels
        header.append(("timeout", "1s"))
        stmts.insert(rng.randrange(len(stmts) + 1), "select pg_sleep(4)")
        stmts.insert(0, "set local statement_timeout = 0")
        classes.add("timeout")
    elif t < 0.11:
        header.append(("timeout", "20s"))
        stmts.append("select pg_sleep(6)")
        classes.add("cancel")
        cancel = True
    if rng.random() < 0.5:
        stmts += legit_ops(rng)
    return FuzzTask(name, header, stmts, classes, cancel)


# ---- the probe ----------------------------------------------------------

PROBE_TASK = """\
-- task: iso_probe
-- max_attempts: 1
-- timeout: 30s
insert into public.iso_audit (job_id, pid, claims, cur_user, sess_user, search_path,
                              prepared, advisory, temp_objs, listening, cursors,
                              settings, marker, todos_rel)
select :job_id::bigint, pg_backend_pid(), current_setting('request.jwt.claims', true),
       current_user::text, session_user::text, current_setting('search_path'),
       (select count(*) from pg_prepared_statements),
       (select count(*) from pg_locks where locktype = 'advisory'
                                        and pid = pg_backend_pid() and granted),
       (select count(*) from pg_class where relnamespace = pg_my_temp_schema()),
       (select coalesce(array_agg(c order by c), '{}') from pg_listening_channels() c),
       (select coalesce(string_agg(name || ' (' || statement || ')', ', ' order by name), '')
          from pg_cursors where name <> ''),
       (select coalesce(string_agg(name || '=' || setting, ',' order by name), '')
          from pg_settings where source = 'session' and name <> 'statement_timeout'),
       nullif(current_setting('iso.marker', true), ''),
       to_regclass('todos')::text;
insert into todos (task) values ('probe|' || :job_id);
update public.iso_audit
set seen = (select coalesce(array_agg(distinct user_id), '{}') from todos),
    own_seen = (select count(*) from todos where task = 'probe|' || :job_id)
where job_id = :job_id::bigint;
"""

# What a probe must see on a clean session.
CLEAN = {
    "cur_user": RESTRICTED, "sess_user": RESTRICTED, "search_path": '"$user", public',
    "prepared": 0, "advisory": 0, "temp_objs": 0, "listening": [], "cursors": "",
    "settings": "", "marker": None, "todos_rel": "todos",
}
# The leak class each probe column reveals.
COLUMN_CLASS = {
    "cur_user": "role", "sess_user": "role", "search_path": "search_path",
    "prepared": "prepared", "advisory": "advisory", "temp_objs": "temp",
    "listening": "listen", "cursors": "cursor", "settings": "settings",
    "marker": "settings", "todos_rel": "temp",
}

SETUP_SQL = """
create table public.iso_audit (
    job_id bigint primary key, pid int, claims text, cur_user text, sess_user text,
    search_path text, prepared bigint, advisory bigint, temp_objs bigint,
    listening text[], cursors text, settings text, marker text, todos_rel text,
    seen text[], own_seen bigint);
alter table public.iso_audit enable row level security;
create policy iso_audit_all on public.iso_audit for all using (true) with check (true);
grant insert, select, update on public.iso_audit to authenticated_backend;

create table public.iso_seen (id serial primary key, job_id bigint, seen text[], rel text);
alter table public.iso_seen enable row level security;
create policy iso_seen_insert on public.iso_seen for insert with check (true);
grant insert on public.iso_seen to authenticated_backend;
grant usage on sequence public.iso_seen_id_seq to authenticated_backend;

-- Every committed change of public.todos, with the transaction that made it;
-- iso_done maps a transaction to the job completed in it (and its subject).
create table public.iso_changes (id serial primary key, xid bigint, op text,
                                 old_user text, new_user text, actor text);
create table public.iso_done (xid bigint, job_id bigint, subject text);
create function public.iso_track() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $$
begin
    insert into public.iso_changes (xid, op, old_user, new_user, actor)
    values (txid_current(), tg_op,
            case when tg_op <> 'INSERT' then old.user_id end,
            case when tg_op <> 'DELETE' then new.user_id end, current_user);
    return null;
end $$;
create trigger iso_track after insert or update or delete on public.todos
    for each row execute function public.iso_track();
create function public.iso_job_done() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $$
begin
    insert into public.iso_done values (txid_current(), old.id, old.subject);
    return null;
end $$;
create trigger iso_job_done after delete on rlsworker.jobs
    for each row execute function public.iso_job_done();
"""
