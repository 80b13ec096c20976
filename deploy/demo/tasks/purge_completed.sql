-- task: purge_completed
-- run_as: system
-- scope: subject

-- Deletes one user's completed todos. System tasks run as the admin role,
-- which bypasses RLS, so the statement itself limits the rows: with
-- `scope: subject` every statement must use :subject (the job's subject,
-- e.g. from add_job(..., subject => 'alice') or the claims' sub).
delete from todos where user_id = :subject and is_complete;
