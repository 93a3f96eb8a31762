#include "ts_version.h"

int ts_engine_version(void)
{
    return TS_ENGINE_VERSION;
}
