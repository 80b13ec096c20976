"""The isolation fuzzer (issue 9): generated task files full of session and
transaction state changes run interleaved with other users' jobs on pools of
one and two connections. After every job: no job saw or changed another
user's rows, and every probe job started from a clean session.

    RLSWORKER_ISOFUZZ_SECONDS   time budget (default 45; 0 skips the test)
    RLSWORKER_ISOFUZZ_SEED      seed (default fixed, so runs are repeatable)

A failure prints the seed and the task files that ran before the dirty job.
See tests/isofuzz.py for the grammar and the probe.
"""
import json
import os
import random
import re
import threading
import time
from collections import Counter

import pytest

import isofuzz
from helpers import free_port

pytestmark = [pytest.mark.security, pytest.mark.slow]

SECONDS = float(os.environ.get("RLSWORKER_ISOFUZZ_SECONDS", "45"))
SEED = int(os.environ.get("RLSWORKER_ISOFUZZ_SEED", "909"))
FUZZ_PER_ROUND = 8
# (concurrency, pool size): one connection, two, and more jobs than connections
POOLS = ((1, 1), (2, 2), (3, 2))


class Stats:
    def __init__(self):
        self.jobs = 0
        self.statements = 0
        self.files = 0
        self.refused = 0
        self.fuzz_failed = 0
        self.leaks = []            # findings: dicts
        self.forged = []           # (job id, task, detail): claims set by the task itself
        self.classes_tried = Counter()


class Job:
    def __init__(self, kind, sub, task=None, index=0):
        self.kind = kind           # "fuzz" or "probe"
        self.sub = sub
        self.task = task           # isofuzz.FuzzTask for fuzz jobs
        self.index = index         # position in the round's sequence
        self.id = None


def closed_env(db):
    """Connection URLs to a closed loopback port: `run` loads the tasks
    directory first, then fails to log in. Tells loaded from refused files
    without running anything."""
    url = "postgresql://nobody:x@127.0.0.1:%d/none" % free_port()
    return db.env(DATABASE_URL=url, DATABASE_AUTHENTICATED_URL=url,
                  DATABASE_MODERATOR_URL=url, DATABASE_ADMIN_BACKEND_URL=url)


def loads(rlsworker, env, check_dir, task):
    """Writes `task` alone into check_dir and asks the worker to load it.
    Returns None when it loads, else the worker's message."""
    for f in os.listdir(check_dir):
        os.remove(os.path.join(check_dir, f))
    path = os.path.join(check_dir, task.name + ".sql")
    with open(path, "w") as f:
        f.write(task.text)
    r = rlsworker.cli("run", "--once", "--tasks", check_dir, env=env, timeout=60)
    if re.search(re.escape(task.name + ".sql") + r":\d+:", r.stderr):
        return r.stderr.strip()
    assert r.returncode != 0 and "log in" in r.stderr, \
        "the load check of %s neither refused the file nor tried to log in:\n%s\n%s" % (
            task.name, task.text, r.stderr)
    return None


def cancel_when_running(db, jobs, worker, stop):
    """Operator cancels (rlsworker.cancel_job) of the jobs meant for it, once
    they are running."""
    pending = {j.id for j in jobs if j.kind == "fuzz" and j.task.cancel}
    while pending and not stop.is_set() and worker.poll() is None:
        for jid in list(pending):
            rows = db.sql("select state from rlsworker.jobs where id = %s", (jid,))
            if not rows or rows[0][0] != "queued":
                if rows and rows[0][0] == "running":
                    time.sleep(0.3)
                    db.sql("select rlsworker.cancel_job(%s)", (jid,))
                pending.discard(jid)
        time.sleep(0.05)


def suspects_for(seq, probe, clean_before):
    """The fuzz jobs that ran before `probe` since the last clean probe that
    ran on the same connection (exact with one connection)."""
    start = clean_before.get(probe.pid_key, -1)
    return [j for j in seq[start + 1:probe.index] if j.kind == "fuzz"]


def run_round(rnd, rng, ctx):
    rlsworker, db, tmp, stats = ctx["rlsworker"], ctx["db"], ctx["tmp"], ctx["stats"]
    conc, pool = POOLS[rnd % len(POOLS)]
    rdir = os.path.join(tmp, "round-%d" % rnd)
    os.mkdir(rdir)
    with open(os.path.join(rdir, "iso_probe.sql"), "w") as f:
        f.write(isofuzz.PROBE_TASK)

    seq = []
    for i in range(FUZZ_PER_ROUND):
        sub = rng.choice(isofuzz.USERS)
        task = isofuzz.gen_task(rng, "fz_%d_%d" % (rnd, i), sub)
        stats.files += 1
        stats.statements += len(task.stmts)
        if loads(rlsworker, ctx["closed_env"], ctx["check_dir"], task) is not None:
            stats.refused += 1
            continue
        stats.classes_tried.update(task.classes)
        with open(os.path.join(rdir, task.name + ".sql"), "w") as f:
            f.write(task.text)
        seq.append(Job("fuzz", sub, task))
        for _ in range(rng.randint(1, 2)):
            seq.append(Job("probe", rng.choice(isofuzz.USERS)))
    if not seq:
        return
    for i, j in enumerate(seq):
        j.index = i

    # one transaction: equal run_at, so claimed in id (= sequence) order
    with db.connect() as c:
        for j in seq:
            j.id = c.execute(
                "select rlsworker.add_job(%s, claims => jsonb_build_object('sub', %s::text),"
                " max_attempts => 1)",
                ("iso_probe" if j.kind == "probe" else j.task.name, j.sub)).fetchone()[0]
        c.commit()

    w = rlsworker.spawn("run", "--once", "--tasks", rdir, "--concurrency", conc,
                        "--pool-size", pool, "--task-timeout", 10, env=db.env())
    stop = threading.Event()
    t = threading.Thread(target=cancel_when_running, args=(db, seq, w, stop), daemon=True)
    t.start()
    try:
        w.wait(timeout=180)
    finally:
        stop.set()
        t.join()
    rc = w.stop()
    assert rc == 0, "worker of round %d (seed %d) exited %r:\n%s" % (
        rnd, ctx["seed"], rc, w.read_stderr()[-3000:])
    stats.jobs += len(seq)
    check_round(rnd, seq, ctx, conc, pool)
    db.sql("delete from rlsworker.jobs")


def baseline(ctx, rdir):
    """One probe on a fresh connection: what the worker itself leaves in a
    session (settings with source "session") is the clean state; the rest
    must be as isofuzz.CLEAN says."""
    rlsworker, db = ctx["rlsworker"], ctx["db"]
    os.mkdir(rdir)
    with open(os.path.join(rdir, "iso_probe.sql"), "w") as f:
        f.write(isofuzz.PROBE_TASK)
    jid = db.val("select rlsworker.add_job('iso_probe', claims => '{\"sub\": \"alice\"}')")
    r = rlsworker.cli("run", "--once", "--tasks", rdir, "--concurrency", 1, "--pool-size", 1,
                      env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    cols = list(isofuzz.CLEAN)
    row = db.one("select %s from public.iso_audit where job_id = %%s" % ", ".join(cols), (jid,))
    fresh = dict(zip(cols, row))
    ctx["clean"] = dict(isofuzz.CLEAN, settings=fresh["settings"])
    assert fresh == ctx["clean"], "a fresh connection of the worker is not clean: %r" % fresh
    db.sql("delete from public.iso_audit")


def finding(ctx, rnd, conc, pool, job, cls, detail, suspects):
    ctx["stats"].leaks.append({
        "round": rnd, "pool": "concurrency %d, pool %d" % (conc, pool), "job": job.id,
        "kind": job.kind, "task": job.task.name if job.task else "iso_probe", "sub": job.sub,
        "class": cls, "detail": detail, "suspects": suspects})


def in_job_or_leak(ctx, rnd, conc, pool, j, cls, detail):
    """A fuzz job that set request.jwt.claims itself (a `claims` fragment:
    SQL built at run time in a DO block, which no check of the file's text
    can see) reaches the rows of the user it named. That is the task's own
    code, within its own transaction, not one job reaching another: it is
    counted apart. Any other job that reached another user's rows is a leak."""
    if j.kind == "fuzz" and "claims" in j.task.classes:
        ctx["stats"].forged.append((j.id, j.task, detail))
    else:
        finding(ctx, rnd, conc, pool, j, cls, detail, [j.task] if j.task else [])


def check_round(rnd, seq, ctx, conc, pool):
    db, stats = ctx["db"], ctx["stats"]
    by_id = {j.id: j for j in seq}
    ids = list(by_id)
    left = dict(((r[0], (r[1], r[2])) for r in db.sql(
        "select id, state, last_error from rlsworker.jobs where id = any(%s)", (ids,))))
    audit = {r[0]: r for r in db.sql(
        "select job_id, pid, claims, cur_user, sess_user, search_path, prepared, advisory,"
        " temp_objs, listening, cursors, settings, marker, todos_rel, seen, own_seen"
        " from public.iso_audit where job_id = any(%s)", (ids,))}
    cols = ("job_id", "pid", "claims", "cur_user", "sess_user", "search_path", "prepared",
            "advisory", "temp_objs", "listening", "cursors", "settings", "marker",
            "todos_rel", "seen", "own_seen")
    probe_rows = {int(t.split("|")[1]): u for u, t in db.sql(
        "select user_id, task from public.todos where task like 'probe|%%'")}

    clean_before = {}         # pid -> index of the last clean probe on it
    for j in seq:
        if j.kind == "fuzz":
            if j.id in left:
                stats.fuzz_failed += 1
            continue
        row = audit.get(j.id)
        j.pid_key = row[1] if row else None
        sus = [s.task for s in suspects_for(seq, j, clean_before)]
        if j.id in left:
            finding(ctx, rnd, conc, pool, j, "broken",
                    "probe job failed: %s" % (left[j.id][1],), sus)
            continue
        if row is None:
            finding(ctx, rnd, conc, pool, j, "broken", "probe completed but its audit "
                    "row is not in public.iso_audit (written elsewhere?)", sus)
            continue
        a = dict(zip(cols, row))
        dirty = []
        for col, want in ctx["clean"].items():
            if a[col] != want:
                dirty.append((isofuzz.COLUMN_CLASS[col], "%s is %r, expected %r" % (
                    col, a[col], want)))
        if json.loads(a["claims"] or "null") != {"sub": j.sub}:
            dirty.append(("claims", "claims are %r, expected sub %r" % (a["claims"], j.sub)))
        foreign = [u for u in (a["seen"] or []) if u != j.sub]
        if foreign:
            dirty.append(("rows_seen", "read rows of %s through todos" % foreign))
        if a["own_seen"] != 1:
            dirty.append(("rows_changed", "saw its own insert %r times" % a["own_seen"]))
        if probe_rows.get(j.id) != j.sub:
            dirty.append(("rows_changed", "its insert into todos is in public.todos as "
                          "user %r, expected %r" % (probe_rows.get(j.id), j.sub)))
        for cls, detail in dirty:
            finding(ctx, rnd, conc, pool, j, cls, detail, sus)
        if not dirty:
            clean_before[j.pid_key] = j.index

    # what fuzz jobs read: only their own user's rows
    for job_id, seen, rel in db.sql(
            "select job_id, seen, rel from public.iso_seen where job_id = any(%s)", (ids,)):
        j = by_id[job_id]
        # NULL: rows the job put in a temporary table of its own (a leaked
        # one is the probes' business)
        foreign = [u for u in (seen or []) if u is not None and u != j.sub]
        if foreign:
            in_job_or_leak(ctx, rnd, conc, pool, j, "rows_seen",
                           "read rows of %s through %s" % (foreign, rel))
    # what any job changed in public.todos: only its own user's rows
    for job_id, op, old_user, new_user, subject in db.sql(
            "select d.job_id, c.op, c.old_user, c.new_user, d.subject"
            " from public.iso_changes c join public.iso_done d using (xid)"
            " where d.job_id = any(%s)", (ids,)):
        j = by_id[job_id]
        bad = [u for u in (old_user, new_user) if u is not None and u != j.sub]
        if bad:
            in_job_or_leak(ctx, rnd, conc, pool, j, "rows_changed",
                           "%s of a row of %s" % (op, bad))


def report(ctx):
    stats = ctx["stats"]
    lines = ["isolation fuzzer found %d leaks (seed %d; rerun with RLSWORKER_ISOFUZZ_SEED=%d)"
             % (len(stats.leaks), ctx["seed"], ctx["seed"])]
    lines.append("by class: %s" % dict(Counter(f["class"] for f in stats.leaks)))
    shown = set()
    for f in stats.leaks[:12]:
        lines.append("- round %(round)d (%(pool)s): %(kind)s job %(job)s (%(task)s, sub "
                     "%(sub)s): %(class)s: %(detail)s" % f)
        for t in f["suspects"][-3:]:
            lines.append("    after %s" % t.name)
            if t.name not in shown and len(shown) < 6:
                shown.add(t.name)
                lines.append("      " + t.text.rstrip().replace("\n", "\n      "))
    return "\n".join(lines)


@pytest.mark.skipif(SECONDS <= 0, reason="RLSWORKER_ISOFUZZ_SECONDS=0")
def test_isolation_fuzz(rlsworker, db, tmp_path, capsys):
    db.sql(isofuzz.SETUP_SQL)
    db.sql("insert into todos (user_id, task) select u, 'seed|' || u || '|' || i"
           " from unnest(%s::text[]) u, generate_series(1, 3) i", (list(isofuzz.USERS),))
    check_dir = tmp_path / "check"
    check_dir.mkdir()
    ctx = {"rlsworker": rlsworker, "db": db, "tmp": str(tmp_path), "stats": Stats(),
           "seed": SEED, "closed_env": closed_env(db), "check_dir": str(check_dir)}
    baseline(ctx, str(tmp_path / "baseline"))
    rng = random.Random(SEED)
    deadline = time.monotonic() + SECONDS
    rnd = 0
    while time.monotonic() < deadline or rnd < len(POOLS):
        run_round(rnd, rng, ctx)
        rnd += 1
    stats = ctx["stats"]
    summary = ("isolation fuzzer: %d jobs, %d statements tried, %d task files refused at "
               "load, %d leaks found" % (stats.jobs, stats.statements, stats.refused,
                                         len(stats.leaks)))
    with capsys.disabled():
        print("\n" + summary)
        print("  seed %d, %d rounds, %d task files generated, %d fuzz jobs failed "
              "(errors, timeouts, cancels), classes run: %s" % (
                  SEED, rnd, stats.files, stats.fuzz_failed, dict(stats.classes_tried)))
        print("  %d fuzz jobs reached other users' rows with claims their own SQL set "
              "(task code, not a leak between jobs; see docs/security.md)" % len(
                  {job_id for job_id, _, _ in stats.forged}))
    if stats.leaks:
        pytest.fail(summary + "\n" + report(ctx), pytrace=False)
    # the fuzzer must have run what it is about
    assert stats.jobs > 0 and stats.refused < stats.files
