/* placeholder: replaced by the real implementation */
#include <stdio.h>
#include "worker/commands.h"

int rw_cmd_doctor(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "rlsworker doctor: not implemented yet\n");
    return RW_EXIT_FAIL;
}
