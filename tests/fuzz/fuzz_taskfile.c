/* libFuzzer target: rw_task_parse on arbitrary bytes, then rw_task_bind of
 * every statement against a small fixed payload. Neither may crash, read
 * out of bounds or leak, whatever the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/task/taskfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *payload;
    struct rw_task *task = NULL;
    char err[512];
    char *text;

    if (size > RW_TASK_MAX_BYTES + 1)
        return 0;
    if (!payload)
        payload = json_pack("{s:s, s:i, s:f, s:b, s:n, s:[i]}", "a", "x", "id", 7, "r", 0.5,
                            "t", 1, "n", "arr", 1);
    if (!(text = malloc(size + 1)))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (rw_task_parse("fuzz/t.sql", text, &task, err, sizeof err) == 0) {
        for (int i = 0; i < task->nstmts; i++) {
            struct rw_bind b;

            if (rw_task_bind(&task->stmts[i], payload, "sub", 1, 1, &b, err, sizeof err) == 0)
                rw_task_bind_free(&b);
        }
        rw_task_free(&task);
    }
    free(text);
    return 0;
}
