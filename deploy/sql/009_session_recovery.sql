-- 009_session_recovery: a killed worker's jobs come back in about a second.
-- When a worker process dies, the kernel closes its sockets and the server
-- ends its control session at once. Each worker records that session (the
-- backend's pid and start time) when it registers; every worker's sweep, run
-- about once a second, drops the registration of workers whose session is
-- gone, and sweep_lost (whatever its newest definition) then returns their
-- jobs. The heartbeat and lock_timeout stay for a machine that vanished
-- without closing its sockets (its session lingers on the server).
--
-- Behind a transaction pooler the control connection's server session is not
-- the worker's own: the worker passes the pid it got in the connection's
-- BackendKeyData (PQbackendPID), and the session is recorded only when that
-- is the pid of the backend running the registration. Poolers answer with a
-- key of their own, so there no session is recorded and recovery falls back
-- to the heartbeat (lock_timeout).

alter table rlsworker.workers
    add column backend_pid int,
    add column backend_start timestamptz,
    add column session_at timestamptz;

create function rlsworker.register_worker(p_id text, p_host text, p_pid int,
                                          p_backend_pid int)
returns boolean
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_pid int;
    v_start timestamptz;
begin
    if p_backend_pid = pg_backend_pid() then
        select a.pid, a.backend_start into v_pid, v_start
        from pg_stat_activity a where a.pid = pg_backend_pid();
    end if;
    insert into rlsworker.workers as w (id, host, pid, backend_pid, backend_start, session_at)
    values (p_id, p_host, p_pid, v_pid, v_start, now())
    on conflict (id) do update set heartbeat_at = now(), backend_pid = excluded.backend_pid,
        backend_start = excluded.backend_start, session_at = excluded.session_at;
    return v_pid is not null;
end $$;

-- Drops workers whose recorded session has ended; when it dropped one, or
-- when p_full, runs sweep_lost (heartbeats older than p_timeout_s; returns
-- the jobs of every worker no longer registered). Workers call it about
-- once a second with p_full only every 1/4-1/2 lock_timeout: the frequent
-- call reads only rlsworker.workers and the server's list of sessions. A registration younger than a second is left alone:
-- the server's list of sessions is read once per transaction and may predate
-- a session that just registered. A session shown without its start time
-- (another role's, without pg_read_all_stats) counts as alive.
create function rlsworker.sweep_dead_sessions(p_timeout_s int, p_full boolean) returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n int;
begin
    delete from rlsworker.workers w
    where w.backend_pid is not null
      and w.session_at < now() - interval '1 second'
      and not exists (select 1 from pg_stat_activity a
                      where a.pid = w.backend_pid
                        and (a.backend_start is null or a.backend_start = w.backend_start));
    get diagnostics n = row_count;
    if n = 0 and not p_full then
        return 0;
    end if;
    return rlsworker.sweep_lost(p_timeout_s);
end $$;

revoke execute on function rlsworker.register_worker(text, text, int, int) from public;
revoke execute on function rlsworker.sweep_dead_sessions(int, boolean) from public;
