// Compiled against the output of `rlsworker tasks typegen` (written next to
// this file as rlsworker-tasks.ts by tests/integration/test_typegen.py) and
// run against the demo database: enqueues a user job and a system job.
import { Client } from "pg";
import { addJob, taskNames, taskRunAs } from "./rlsworker-tasks";

async function main(): Promise<void> {
  const db = new Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  try {
    const user = await addJob(db, "add_todo", { title: "from typescript" },
                              { claims: { sub: "alice" }, queue: "ts", maxAttempts: 4 });
    const system = await addJob(db, "purge_completed", {}, { subject: "alice",
                                runAt: new Date(Date.now() + 3600e3), jobKey: "ts:purge" });
    const names: readonly string[] = taskNames;
    console.log(JSON.stringify({ user: user.toString(), system: system.toString(),
                                 names, addTodo: taskRunAs.add_todo }));
  } finally {
    await db.end();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
