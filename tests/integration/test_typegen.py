"""`rlsworker tasks typegen` (issue 15): its TypeScript compiles with tsc
(tests/ts, npm) against the demo's tasks, the typed addJob enqueues through
node-postgres into the demo database, and wrong task names or payload keys
do not compile."""
import json
import os
import shutil
import subprocess

import pytest

from helpers import REPO

pytestmark = pytest.mark.integration

TS = os.path.join(REPO, "tests", "ts")
TSC = os.path.join(TS, "node_modules", ".bin", "tsc")


def ts_project(tmp_path, rlsworker, files):
    if not os.path.exists(TSC):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=600)
        assert r.returncode == 0, "npm ci in tests/ts failed:\n" + r.stdout
    d = tmp_path / "ts"
    d.mkdir()
    for f in files:
        shutil.copy(os.path.join(TS, f), d / f)
    os.symlink(os.path.join(TS, "node_modules"), d / "node_modules")
    r = rlsworker.cli("tasks", "typegen", "--tasks", os.path.join(REPO, "deploy/demo/tasks"))
    assert r.returncode == 0, r.stderr
    (d / "rlsworker-tasks.ts").write_text(r.stdout)
    return d


def tsc(d, *files):
    return subprocess.run([TSC, "-p", "tsconfig.json", *files], cwd=d,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)


def test_typegen_compiles_and_enqueues(tmp_path, rlsworker, db):
    d = ts_project(tmp_path, rlsworker, ["tsconfig.json", "main.ts"])
    r = tsc(d)
    assert r.returncode == 0, r.stdout
    r = subprocess.run(["node", "out/main.js"], cwd=d, env=db.env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "add_todo" in out["names"] and "noop" in out["names"]
    assert out["addTodo"] == "user"
    assert db.one("select task, payload, claims, queue, max_attempts from rlsworker.jobs"
                  " where id = %s", (int(out["user"]),)) == \
        ("add_todo", {"title": "from typescript"}, {"sub": "alice"}, "ts", 4)
    assert db.one("select task, subject, job_key, run_at > now() from rlsworker.jobs"
                  " where id = %s", (int(out["system"]),)) == \
        ("purge_completed", "alice", "ts:purge", True)


def test_typegen_types_refuse_wrong_tasks_and_keys(tmp_path, rlsworker):
    d = ts_project(tmp_path, rlsworker, ["tsconfig.json", "bad.ts"])
    (d / "tsconfig.json").write_text((d / "tsconfig.json").read_text()
                                     .replace('"main.ts"', '"bad.ts"'))
    r = tsc(d)
    assert r.returncode != 0
    assert "bad.ts(7," in r.stdout and "titel" in r.stdout, r.stdout
    assert "bad.ts(8," in r.stdout and "no_such_task" in r.stdout, r.stdout
    assert "bad.ts(9," in r.stdout, r.stdout
