/* What a program bound at run time (Python's ctypes, any FFI) cannot read
 * from mamba.h: the version of the library it loaded, and the sizes of the
 * structures it mirrors, so a binding written for another mamba.h refuses
 * to start instead of passing a struct of the wrong layout. */
#include <string.h>

#include "mamba.h"

const char *mb_version(void) { return MB_VERSION; }

size_t mb_struct_size(const char *name)
{
    static const struct {
        const char *name;
        size_t size;
    } sizes[] = {
        {"mb_config", sizeof(mb_config)},       {"mb_optim_config", sizeof(mb_optim_config)},
        {"mb_loss_stats", sizeof(mb_loss_stats)}, {"mb_sampler", sizeof(mb_sampler)},
        {"mb_chunk_out", sizeof(mb_chunk_out)},
    };
    for (size_t i = 0; name && i < sizeof sizes / sizeof sizes[0]; i++)
        if (!strcmp(name, sizes[i].name)) return sizes[i].size;
    return 0;
}
