/* A program built against an installed libmamba (tests/consumer/check_install.sh
 * builds it with pkg-config and with find_package, shared and static): it
 * creates a tiny model, scores a fixed sequence and prints one line, which
 * must be the same for every way of building it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mamba.h>

#define L 24

int main(void)
{
    if (strcmp(mb_version(), MB_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", MB_VERSION, mb_version());
        return 1;
    }
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 16, cfg.n_layer = 2, cfg.vocab_size = 12, cfg.pad_vocab_size_multiple = 16;
    mb_model *m = ctx ? mb_model_create(ctx, &cfg, 5) : NULL;
    mb_state *s = m ? mb_state_create(m, 1) : NULL;
    if (!s) {
        fprintf(stderr, "%s\n", mb_error_last());
        return 1;
    }
    int32_t tok[L], tgt[L];
    double lp[L];
    for (int t = 0; t < L; t++) tok[t] = (7 + 3 * t) % 12;
    for (int t = 0; t < L; t++) tgt[t] = t + 1 < L ? tok[t + 1] : MB_IGNORE_INDEX;
    mb_chunk_out out = {.targets = tgt, .logprob = lp};
    if (mb_model_forward_chunk_ex(m, s, tok, L, &out)) {
        fprintf(stderr, "%s\n", mb_error_last());
        return 1;
    }
    double ll = 0;
    for (int t = 0; t < L; t++) ll += lp[t];
    /* a fresh model is close to uniform over its 16 padded classes */
    printf("libmamba %s params %zu log_likelihood %.9f uniform %.9f\n", mb_version(), mb_model_num_params(m), ll,
           -(L - 1) * log(16.0));
    mb_state_free(s);
    mb_model_free(m);
    mb_ctx_free(ctx);
    return 0;
}
