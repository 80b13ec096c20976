// Must NOT compile: a mistyped payload key, an unknown task, a payload for a
// task that binds nothing (tests/integration/test_typegen.py).
import { Client } from "pg";
import { addJob } from "./rlsworker-tasks";

export async function wrong(db: Client): Promise<void> {
  await addJob(db, "add_todo", { titel: "x" });
  await addJob(db, "no_such_task", {});
  await addJob(db, "purge_completed", { subject: "alice" });
}
