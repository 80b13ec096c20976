-- task: complete_todos
-- run_as: user
-- enqueue: user

-- Marks every open todo complete. There is no user_id condition on purpose:
-- RLS limits the update to the job's user's rows. Payload: {}.
update todos set is_complete = true where is_complete = false;
