/* placeholder until the real implementation lands */
#include "worker/pgconn.h"
