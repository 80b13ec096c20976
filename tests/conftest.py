"""pytest fixtures shared by every tier (integration, security, chaos, bench).

    pg           session: a fresh PostgreSQL cluster with deploy/roles.sql applied
    bare_db      per test: a database owned by neondb_owner with deploy/demo/schema.sql
    db           per test: bare_db + `rlsworker migrate`
    rlsworker    session: the binary (RLSWORKER_BIN or build/rlsworker); .cli(), .spawn()
    tasks_dir    per test: an empty directory for task files (see helpers.write_task)

See tests/helpers.py for the classes behind them.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import Database, Worker, start_cluster, write_task  # noqa: E402,F401


def pytest_configure(config):
    for name, doc in (("integration", "needs the test PostgreSQL cluster"),
                      ("security", "attacks on RLS, claims and tokens"),
                      ("chaos", "restarts PostgreSQL or kills workers"),
                      ("slow", "takes more than a few seconds")):
        config.addinivalue_line("markers", "%s: %s" % (name, doc))


@pytest.fixture(scope="session")
def pg(request):
    cluster = start_cluster()
    request.addfinalizer(cluster.destroy)
    return cluster


@pytest.fixture(scope="session")
def rlsworker(tmp_path_factory):
    path = os.environ.get("RLSWORKER_BIN") or os.path.join(helpers.REPO, "build", "rlsworker")
    worker = Worker(path, str(tmp_path_factory.mktemp("worker-logs")))
    if not worker.exists():
        pytest.fail("rlsworker binary not found at %s: build it (cmake -S . -B build && "
                    "cmake --build build) or set RLSWORKER_BIN" % path, pytrace=False)
    yield worker
    worker.reap()


@pytest.fixture(autouse=True)
def _reap_spawned(request):
    """Kills workers a test spawned and left running, after the test."""
    yield
    if "rlsworker" in request.fixturenames:
        request.getfixturevalue("rlsworker").reap()


def _new_database(pg, request):
    database = Database(pg, helpers.db_name_for(request.node.name))
    database.create(schema=True)
    return database


@pytest.fixture
def bare_db(pg, request):
    """A fresh database with the todos demo, without schema rlsworker."""
    database = _new_database(pg, request)
    yield database
    database.drop()


@pytest.fixture
def db(pg, rlsworker, request):
    """A fresh database with the todos demo and `rlsworker migrate` applied."""
    database = _new_database(pg, request)
    try:
        r = rlsworker.cli("migrate", env=database.env(), timeout=60)
        if r.returncode != 0:
            pytest.fail("rlsworker migrate failed (exit %d):\n%s%s" % (
                r.returncode, r.stdout, r.stderr), pytrace=False)
        yield database
    finally:
        rlsworker.reap()
        database.drop()


@pytest.fixture
def tasks_dir(tmp_path):
    d = tmp_path / "tasks"
    d.mkdir()
    return d
