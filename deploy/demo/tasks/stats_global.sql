-- task: stats_global
-- run_as: system
-- scope: global

-- Recomputes todo_stats for every user: a system task that deliberately
-- reads all rows (`scope: global`). Good for a crontab line such as
--   */15 * * * * stats_global
insert into todo_stats (user_id, open, done, updated_at)
select user_id, count(*) filter (where not is_complete), count(*) filter (where is_complete), now()
from todos group by user_id
on conflict (user_id) do update
    set open = excluded.open, done = excluded.done, updated_at = excluded.updated_at;

delete from todo_stats s where not exists (select 1 from todos t where t.user_id = s.user_id);
