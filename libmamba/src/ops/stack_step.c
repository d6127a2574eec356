/* A stack of block steps layer by layer (the reference of the GPU's
 * cluster kernel, ops/stack_step.cu, and what any device runs where that
 * kernel does not): mb_block_step after mb_block_step, each output the
 * next input, in two buffers taken in turn so that the last layer writes
 * `out`. */
#include "ops/ops.h"

size_t mb_stack_step_workspace(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
    size_t most = 0;
    for (int l = 0; l < n_layer; l++) {
        const size_t w = mb_block_step_workspace(ctx, &layer[l]);
        if (w > most) most = w;
    }
    return most + (size_t)layer[0].batch * layer[0].d_model * sizeof(float) + 64;
}

void mb_stack_step_layers(MB_OPS_STACK_STEP_ARGS)
{
    const size_t mark = ws->used;
    float *tmp = mb_arena_floats(ws, (size_t)layer[0].batch * layer[0].d_model);
    if (!tmp) {
        mb_ctx_fail(ctx, "%s", mb_error_last()); /* a sizing bug: the arena said why */
        return;
    }
    const float *src = h;
    for (int l = 0; l < n_layer; l++) {
        /* the layers after this one alternate, the last writing out */
        float *dst = (n_layer - 1 - l) % 2 == 0 ? out : tmp;
        mb_block_step(ctx, &layer[l], src, dst, ws);
        src = dst;
    }
    ws->used = mark;
}
