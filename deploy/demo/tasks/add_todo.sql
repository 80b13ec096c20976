-- task: add_todo
-- run_as: user
-- enqueue: user
-- max_attempts: 5

-- Adds a todo for the job's user. Runs as authenticated_backend with the
-- job's claims, so user_id defaults to auth.user_id() and the insert policy
-- refuses any other user_id. Payload: {"title": "..."}.
insert into todos (task) values (:title);
