"""Every ```sql and ```sh example in README.md and docs/*.md runs against the
demo database (deploy/demo/schema.sql with `rlsworker migrate` applied), so
the docs cannot drift from the code (issue 15).

- A SQL block that is a task file (it has `-- key: value` header lines or
  `:name` binds) is loaded by the worker's own parser (`rlsworker cron check
  --tasks DIR` loads the registry) and each statement is PREPAREd as the
  admin role, so a column or table the demo does not have fails.
- Any other SQL block runs as the admin role in a transaction rolled back.
- A sh block runs with bash -e in a scratch directory holding the demo's
  tasks as ./tasks and a crontab.txt, `rlsworker` on PATH and the demo's URLs.

Opt out on the line before the fence, with a reason:
  <!-- docs-test: skip (why) -->        not run at all
  <!-- docs-test: parse-only (why) -->  a task file loaded, not PREPAREd
"""
import glob
import os
import re
import shutil
import subprocess

import psycopg
import pytest

from helpers import REPO

pytestmark = pytest.mark.integration

DOCS = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
FENCE = re.compile(r"^```(sql|sh|bash)\s*$")
MARK = re.compile(r"^<!-- docs-test: (skip|parse-only) \(.+\) -->$")
HEADER = re.compile(r"^--\s*[a-z_]+:\s*\S", re.M)
BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def blocks():
    out = []
    for path in DOCS:
        lines = open(path).read().split("\n")
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            mark = MARK.match(lines[i - 1]) if i else None
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append(pytest.param(m.group(1), "\n".join(lines[i + 1:j]) + "\n",
                                    mark.group(1) if mark else None,
                                    id="%s:%d" % (os.path.relpath(path, REPO), i + 1)))
            i = j + 1
    return out


def is_task_file(text):
    return bool(HEADER.search(text)) or bool(BIND.search(text))


def statements(text):
    """A task file's statements (split at a ';' ending a line), binds as $n."""
    body = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("--"))
    for stmt in re.split(r";\s*\n", body):
        if not stmt.strip():
            continue
        names = []

        def bind(m):
            if m.group(1) not in names:
                names.append(m.group(1))
            return "$%d" % (names.index(m.group(1)) + 1)
        yield BIND.sub(bind, stmt)


@pytest.mark.parametrize("lang,text,mark", blocks())
def test_docs_example(lang, text, mark, db, rlsworker, tmp_path):
    if mark == "skip":
        pytest.skip("marked docs-test: skip")
    if lang == "sql" and is_task_file(text):
        tasks = tmp_path / "tasks"
        tasks.mkdir()
        (tasks / "example.sql").write_text(text)
        crontab = tmp_path / "empty.crontab"
        crontab.write_text("")
        r = rlsworker.cli("cron", "check", str(crontab), "--tasks", str(tasks))
        assert r.returncode == 0, "the task file does not load:\n" + r.stderr
        if mark == "parse-only":
            return
        with psycopg.connect(db.admin_url) as conn:
            for i, stmt in enumerate(statements(text)):
                try:
                    conn.execute("prepare docs_example_%d as %s" % (i, stmt))
                except psycopg.Error as e:
                    pytest.fail("statement %d does not fit the demo schema: %s\n%s"
                                % (i + 1, e, stmt), pytrace=False)
        return
    assert mark is None, "parse-only is for task files"
    if lang == "sql":
        with psycopg.connect(db.admin_url) as conn:
            with conn.transaction(force_rollback=True):
                conn.execute(text)
        return
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(os.path.join(REPO, "deploy", "demo", "tasks"), work / "tasks")
    (work / "crontab.txt").write_text("*/15 * * * * purge_completed ?subject=alice\n"
                                      "@daily add_todo ?id=daily&subject=bob {\"title\": \"x\"}\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(rlsworker.path, bindir / "rlsworker")
    env = db.env(PATH="%s:%s" % (bindir, os.environ["PATH"]))
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=work, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, "the example failed (exit %d):\n%s%s" % (
        r.returncode, r.stdout, r.stderr)


def test_http_docs_show_the_current_schema_version():
    latest = max(int(os.path.basename(p)[:3])
                 for p in glob.glob(os.path.join(REPO, "deploy", "sql", "[0-9]*.sql")))
    text = open(os.path.join(REPO, "docs", "http.md")).read()
    shown = [int(v) for v in re.findall(r'"schema_version": (\d+)', text)]
    assert shown and all(v == latest for v in shown), (shown, latest)
