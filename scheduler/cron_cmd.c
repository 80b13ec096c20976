/* placeholder: replaced by the real implementation */
#include <stdio.h>
#include "worker/commands.h"

int rw_cmd_cron(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "rlsworker cron: not implemented yet\n");
    return RW_EXIT_FAIL;
}
