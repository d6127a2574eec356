#define _POSIX_C_SOURCE 200809L
/* Model checkpoints and optimizer state as safetensors files.
 *
 * A model file holds every tensor of the parameter table under its
 * mamba_ssm name (a classification head, ours, as classifier.weight and
 * classifier.bias), in table order, and the config as JSON in
 * __metadata__["config"]. Optimizer state goes to a second file: "m.NAME"
 * and "v.NAME" per parameter plus the step. Loading reads and checks
 * everything into host memory before anything the caller sees changes. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/optim.h"
#include "train/hf.h"
#include "train/model_src.h"
#include "train/safetensors.h"

/* ---- host staging ---------------------------------------------------------
 * On the CPU the device buffer is host memory and is used in place; on a GPU
 * the whole buffer is staged through one host copy. */

static const float *mb_host_view(mb_ctx *ctx, const float *dev, size_t n, float **owned,
                                 const char *path)
{
    *owned = NULL;
    if (mb_dev_host_memory(ctx)) return dev;
    float *h = mb_malloc(n * sizeof(float), "checkpoint staging");
    if (!h) return NULL;
    if (mb_dev_download(ctx, h, dev, n * sizeof(float))) {
        free(h);
        mb_error_set("%s: cannot copy tensors from the device", path);
        return NULL;
    }
    *owned = h;
    return h;
}

/* Prefix the current error with the path, unless it already starts with it. */
static int mb_error_prefix(const char *path)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mb_error_last());
    if (strncmp(msg, path, strlen(path)) == 0) return -1;
    return mb_error_set("%s: %s", path, msg);
}

static void mb_fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

static int mb_ckpt_same_shape(const mb_st_tensor *t, const mb_param *p)
{
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (same) return 1;
    char got[160], want[160];
    mb_fmt_shape(got, sizeof got, t->ndim, t->shape);
    mb_fmt_shape(want, sizeof want, p->ndim, p->shape);
    mb_error_set("tensor %s has shape %s, expected %s", t->name, got, want);
    return 0;
}

/* Find NAME in the file and check its shape against the table entry. */
static const mb_st_tensor *mb_ckpt_tensor(mb_st_file *f, const char *name, const mb_param *p)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) {
        mb_error_set("%s: missing tensor %s", mb_st_path(f), name);
        return NULL;
    }
    if (!mb_ckpt_same_shape(t, p)) {
        mb_error_set("%s: %s", mb_st_path(f), mb_error_last());
        return NULL;
    }
    return t;
}

/* Read "PREFIXNAME" for every parameter into dst laid out as the table
 * (optimizer state: one file of ours). */
static int mb_ckpt_read_all(mb_st_file *f, const mb_params *ps, const char *prefix, float *dst)
{
    char name[MB_PARAM_NAME_MAX + 16];
    for (int i = 0; i < ps->n; i++) {
        const mb_param *p = &ps->items[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const mb_st_tensor *t = mb_ckpt_tensor(f, name, p);
        if (!t || mb_st_read_f32(f, t, dst + p->offset, p->numel)) return -1;
    }
    return 0;
}

/* A model parameter from the source, its shape checked; NULL with the
 * reason. */
static const mb_st_tensor *mb_src_tensor(mb_model_src *s, const mb_param *p, mb_st_file **f)
{
    const mb_st_tensor *t = mb_model_src_find(s, p->name, f);
    if (t && !mb_ckpt_same_shape(t, p)) {
        mb_error_set("%s: %s", s->path, mb_error_last());
        return NULL;
    }
    return t;
}

static void mb_ckpt_entry(mb_st_entry *e, const char *name, const mb_param *p, const float *base)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    e->ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++) e->shape[d] = p->shape[d];
    e->data = base + p->offset;
}

/* ---- model ---------------------------------------------------------------- */

/* CRC-32 of the model's weights, tensor by tensor in table order (the
 * bytes a checkpoint stores, without the alignment padding): what the
 * optimizer's state records, to be matched on resume. */
static uint32_t mb_weights_crc(const mb_params *ps, const float *host)
{
    uint32_t crc = 0;
    for (int i = 0; i < ps->n; i++)
        crc = mb_crc32(crc, host + ps->items[i].offset, ps->items[i].numel * sizeof(float));
    return crc;
}

int mb_model_save(const mb_model *m, const char *path)
{
    const mb_params *ps = &m->params;
    /* a diverged model never replaces a checkpoint: the last good one stays */
    const size_t bad = mb_count_nonfinite(m->ctx, ps->total, ps->data);
    if (mb_ctx_check(m->ctx)) return mb_error_prefix(path);
    if (bad)
        return mb_error_set("%s: not written: the model has %zu non-finite weights (a diverged run?)", path, bad);
    float *owned = NULL;
    const float *host = mb_host_view(m->ctx, ps->data, ps->total, &owned, path);
    char *config = mb_config_to_json(&m->cfg);
    mb_st_entry *entries = mb_calloc((size_t)ps->n, sizeof *entries, "checkpoint entries");
    int rc = -1;
    if (host && config && entries) {
        for (int i = 0; i < ps->n; i++) mb_ckpt_entry(&entries[i], ps->items[i].name, &ps->items[i], host);
        char run[32];
        snprintf(run, sizeof run, "%016llx", (unsigned long long)m->run_id);
        const char *meta[] = {"config", config, "run_id", run, "libmamba_version", MB_VERSION, NULL};
        rc = mb_st_write(path, entries, ps->n, meta);
    } else {
        mb_error_prefix(path);
    }
    free(entries);
    free(config);
    free(owned);
    return rc;
}

/* "run_id" of our files: 16 hex digits; absent (0) in others' */
static int mb_ckpt_read_run_id(mb_st_file *f, uint64_t *id)
{
    const char *s = mb_st_metadata(f, "run_id");
    *id = 0;
    if (!s) return 0;
    char *end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 16);
    if (strlen(s) != 16 || *end || errno) return mb_error_set("%s: bad run_id '%s' in __metadata__", mb_st_path(f), s);
    *id = v;
    return 0;
}

/* ---- transformers' folder ---------------------------------------------------- */

int mb_model_save_hf(const mb_model *m, const char *dir)
{
    const mb_config *c = &m->cfg;
    if (c->arch != MB_ARCH_LM)
        return mb_error_set("%s: transformers' Mamba is the residual LM, not a %s model", dir, m->arch->name);
    if (c->init == MB_INIT_S4D_LIN) return mb_error_set("%s: transformers' Mamba has no complex A", dir);
    if (!c->rms_norm) return mb_error_set("%s: transformers' Mamba has RMSNorm only, not LayerNorm", dir);
    if (m->has_cls)
        return mb_error_set("%s: a classification head has no place in transformers' MambaForCausalLM", dir);
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return mb_error_set("%s: exists and is not a folder", dir);
    } else if (mkdir(dir, 0777) != 0) {
        return mb_error_set("%s: cannot create the folder (%s)", dir, strerror(errno));
    }
    const mb_params *ps = &m->params;
    const size_t bad = mb_count_nonfinite(m->ctx, ps->total, ps->data);
    if (mb_ctx_check(m->ctx)) return mb_error_prefix(dir);
    if (bad) return mb_error_set("%s: not written: the model has %zu non-finite weights", dir, bad);
    const size_t nd = strlen(dir) + 32;
    char *wpath = mb_malloc(nd, "path"), *cpath = mb_malloc(nd, "path");
    float *owned = NULL;
    const float *host = wpath && cpath ? mb_host_view(m->ctx, ps->data, ps->total, &owned, dir) : NULL;
    mb_st_entry *e = mb_calloc((size_t)ps->n, sizeof *e, "checkpoint entries");
    char (*names)[MB_PARAM_NAME_MAX + 16] = mb_calloc((size_t)ps->n, sizeof *names, "names");
    char *json = mb_hf_config_write(c, m->vocab_padded);
    int rc = -1;
    if (host && e && names && json) {
        snprintf(wpath, nd, "%s/model.safetensors", dir);
        snprintf(cpath, nd, "%s/config.json", dir);
        for (int i = 0; i < ps->n; i++) {
            const char *hn = mb_hf_name(ps->items[i].name, names[i], sizeof names[i]);
            if (hn != names[i]) snprintf(names[i], sizeof names[i], "%s", hn);
            mb_ckpt_entry(&e[i], names[i], &ps->items[i], host);
        }
        const char *meta[] = {"libmamba_version", MB_VERSION, NULL};
        /* the weights first: a folder with a config but no weights does
         * not load, where new weights beside an old config would */
        rc = mb_st_write(wpath, e, ps->n, meta);
        mb_outfile *o = rc ? NULL : mb_outfile_open(cpath);
        if (!rc && !o) rc = -1;
        if (o) {
            if (fputs(json, mb_outfile_fp(o)) < 0 || fputc('\n', mb_outfile_fp(o)) < 0) {
                rc = mb_error_set("%s: write error (%s)", cpath, strerror(errno ? errno : EIO));
                mb_outfile_discard(o);
            } else {
                rc = mb_outfile_commit(o);
            }
        }
    } else {
        mb_error_prefix(dir);
    }
    free(json), free(names), free(e), free(owned), free(wpath), free(cpath);
    return rc;
}

/* Every tensor the model needs is in the source with its shape, before
 * any memory is given to the model: a small file whose config claims a
 * large model is refused for its tensors, not after allocating that model.
 * skip: the classification head's, when it is added, not read. */
static int mb_ckpt_check_shapes(mb_model_src *s, const mb_params *ps, const int *skip, int n_skip)
{
    for (int i = 0; i < ps->n; i++) {
        int skipped = 0;
        for (int k = 0; k < n_skip; k++) skipped |= skip[k] == i;
        mb_st_file *f;
        if (!skipped && !mb_src_tensor(s, &ps->items[i], &f)) return -1;
    }
    return 0;
}

/* With new_head, the classification head is not in the file (it was added
 * to a headless checkpoint): it is initialized from seed instead. Strict:
 * a tensor of the source the model does not take is refused. */
static int mb_model_read_params(mb_model_src *s, mb_model *m, int new_head, uint64_t seed)
{
    mb_params *ps = &m->params;
    float *host = ps->data, *owned = NULL;
    if (!mb_dev_host_memory(m->ctx)) {
        /* calloc: the alignment padding between tensors stays zero on the device */
        host = owned = mb_calloc(ps->total, sizeof(float), "checkpoint staging");
        if (!owned) return mb_error_prefix(s->path);
    }
    int rc = 0;
    for (int i = 0; i < ps->n && !rc; i++) {
        if (new_head && (i == m->cls.p_w || i == m->cls.p_b)) continue;
        mb_st_file *f;
        const mb_st_tensor *t = mb_src_tensor(s, &ps->items[i], &f);
        rc = !t || mb_st_read_f32(f, t, host + ps->items[i].offset, ps->items[i].numel) ? -1 : 0;
    }
    if (!rc) rc = mb_model_src_check_all_used(s, ps, host);
    if (!rc && new_head) mb_cls_head_init_weights(&m->cls, ps, host, seed);
    if (!rc && owned && mb_dev_upload(m->ctx, ps->data, host, ps->total * sizeof(float)))
        rc = mb_error_prefix(s->path);
    free(owned);
    return rc;
}

/* n_classes < 0: the plain load (the file's config as it is); else as
 * mb_model_load_classifier. */
static mb_model *mb_model_load_as(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed)
{
    mb_model_src s;
    if (mb_model_src_open(&s, path)) return NULL;
    mb_config cfg = s.cfg;
    mb_model *m = NULL;
    int new_head = 0, ok = 1;
    if (n_classes > 0 && cfg.n_classes == 0) {
        cfg.n_classes = n_classes;
        new_head = 1;
    } else if (n_classes > 0 && cfg.n_classes != n_classes) {
        mb_error_set("%s: the checkpoint's classification head has %d classes, not the %d "
                     "asked for", path, cfg.n_classes, n_classes);
        ok = 0;
    }
    if (ok) {
        m = mb_model_build(ctx, &cfg);
        if (!m) mb_error_prefix(path);
    }
    if (m) {
        const int skip[2] = {m->cls.p_w, m->cls.p_b};
        int rc = mb_ckpt_check_shapes(&s, &m->params, skip, new_head ? 2 : 0);
        if (!rc && mb_model_alloc_params(m)) rc = mb_error_prefix(path);
        if (!rc) rc = mb_model_read_params(&s, m, new_head, seed);
        if (rc) {
            mb_model_free(m);
            m = NULL;
        }
    }
    /* the file's run goes on (a fresh id for files without one, and for a
     * classifier given a new head: a new run) */
    if (m && s.run_id && !new_head) m->run_id = s.run_id;
    mb_model_src_close(&s);
    return m;
}

mb_model *mb_model_load(mb_ctx *ctx, const char *path) { return mb_model_load_as(ctx, path, -1, 0); }

mb_model *mb_model_load_classifier(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed)
{
    if (n_classes < 0) {
        mb_error_set("%s: n_classes must not be negative (got %d)", path, n_classes);
        return NULL;
    }
    return mb_model_load_as(ctx, path, n_classes, seed);
}

/* ---- optimizer state ------------------------------------------------------ */

static char *mb_optim_config_json(const mb_optim_config *oc)
{
    char lr[48], min_lr[48], b1[48], b2[48], eps[48], wd[48], clip[48];
    mb_fmt_float(lr, sizeof lr, oc->lr);
    mb_fmt_float(min_lr, sizeof min_lr, oc->min_lr);
    mb_fmt_float(b1, sizeof b1, oc->beta1);
    mb_fmt_float(b2, sizeof b2, oc->beta2);
    mb_fmt_float(eps, sizeof eps, oc->eps);
    mb_fmt_float(wd, sizeof wd, oc->weight_decay);
    mb_fmt_float(clip, sizeof clip, oc->grad_clip);
    const char *fmt = "{\"lr\":%s,\"min_lr\":%s,\"beta1\":%s,\"beta2\":%s,\"eps\":%s,"
                      "\"weight_decay\":%s,\"grad_clip\":%s,\"warmup_steps\":%lld,"
                      "\"total_steps\":%lld}";
    char *s = mb_malloc(512, "optimizer config");
    if (s)
        snprintf(s, 512, fmt, lr, min_lr, b1, b2, eps, wd, clip, (long long)oc->warmup_steps,
                 (long long)oc->total_steps);
    return s;
}

/* Entries "m.NAME" then "v.NAME"; the names live in one block `names`. */
static int mb_optim_entries(const mb_params *ps, const float *m, const float *v,
                            mb_st_entry *entries, char *names)
{
    const size_t stride = MB_PARAM_NAME_MAX + 4;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ps->n; i++) {
            char *name = names + ((size_t)k * (size_t)ps->n + (size_t)i) * stride;
            snprintf(name, stride, "%c.%s", k ? 'v' : 'm', ps->items[i].name);
            mb_ckpt_entry(&entries[k * ps->n + i], name, &ps->items[i], k ? v : m);
        }
    return 2 * ps->n;
}

int mb_optim_save(const mb_optim *o, const char *path)
{
    const mb_params *ps = &o->model->params;
    mb_ctx *ctx = o->model->ctx;
    float *own_m = NULL, *own_v = NULL;
    const float *m = mb_host_view(ctx, o->m, ps->total, &own_m, path);
    const float *v = m ? mb_host_view(ctx, o->v, ps->total, &own_v, path) : NULL;
    mb_st_entry *entries = mb_calloc(2 * (size_t)ps->n, sizeof *entries, "optimizer entries");
    char *names = mb_malloc(2 * (size_t)ps->n * (MB_PARAM_NAME_MAX + 4), "optimizer names");
    char *oc = mb_optim_config_json(&o->cfg);
    int rc = -1;
    /* what ties this state to the model's checkpoint: the run, and the
     * weights the moments were computed for */
    float *own_w = NULL;
    const float *w = m && v ? mb_host_view(ctx, ps->data, ps->total, &own_w, path) : NULL;
    if (m && v && w && entries && names && oc) {
        char step[32], total[32], run[32], wcrc[16];
        snprintf(step, sizeof step, "%lld", (long long)o->step);
        snprintf(total, sizeof total, "%zu", ps->total);
        snprintf(run, sizeof run, "%016llx", (unsigned long long)o->model->run_id);
        snprintf(wcrc, sizeof wcrc, "%08x", (unsigned)mb_weights_crc(ps, w));
        /* the precision: a fact of the training, not of the weights (fp32 on disk) */
        const char *meta[] = {"step", step, "param_total", total, "optim_config", oc, "run_id", run,
                              "weights_crc32", wcrc, "precision", mb_ctx_precision_name(ctx),
                              "libmamba_version", MB_VERSION, NULL};
        rc = mb_st_write(path, entries, mb_optim_entries(ps, m, v, entries, names), meta);
    } else {
        mb_error_prefix(path);
    }
    free(oc);
    free(names);
    free(entries);
    free(own_m);
    free(own_v);
    free(own_w);
    return rc;
}

static int mb_optim_read_step(mb_st_file *f, int64_t *step)
{
    const char *s = mb_st_metadata(f, "step");
    if (!s) return mb_error_set("%s: no \"step\" in __metadata__ (not optimizer state?)",
                                mb_st_path(f));
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < 0)
        return mb_error_set("%s: bad step '%s' in __metadata__", mb_st_path(f), s);
    *step = v;
    return 0;
}

/* A file for a larger model could carry every tensor this one needs: count
 * the moment tensors too, so that is refused rather than half-applied. */
static int mb_optim_check_count(mb_st_file *f, const mb_params *ps)
{
    int n_m = 0;
    for (int i = 0; i < mb_st_count(f); i++) n_m += strncmp(mb_st_get(f, i)->name, "m.", 2) == 0;
    if (n_m != ps->n)
        return mb_error_set("%s: optimizer state has %d moment tensors, the model has %d "
                            "parameters", mb_st_path(f), n_m, ps->n);
    return 0;
}

/* The state must be this model's: the same run, computed for the weights
 * the model has now. A save cut between the model file and this one, a
 * failed write of this one, or another run's file of the same shapes would
 * otherwise resume silently into a different run. Files without the keys
 * (written before they existed) are taken as they are. */
static int mb_optim_check_tie(mb_st_file *f, const mb_model *model)
{
    uint64_t run = 0;
    if (mb_ckpt_read_run_id(f, &run)) return -1;
    if (run && model->run_id && run != model->run_id)
        return mb_error_set("%s: optimizer state of another run (run %016llx, the model's is %016llx)",
                            mb_st_path(f), (unsigned long long)run, (unsigned long long)model->run_id);
    const char *s = mb_st_metadata(f, "weights_crc32");
    if (!s) return 0;
    char *end = NULL;
    const unsigned long want = strtoul(s, &end, 16);
    if (strlen(s) != 8 || *end) return mb_error_set("%s: bad weights_crc32 '%s' in __metadata__", mb_st_path(f), s);
    const mb_params *ps = &model->params;
    float *owned = NULL;
    const float *w = mb_host_view(model->ctx, ps->data, ps->total, &owned, mb_st_path(f));
    if (!w) return -1;
    const uint32_t got = mb_weights_crc(ps, w);
    free(owned);
    if (got != (uint32_t)want)
        return mb_error_set("%s: optimizer state saved with other weights than the model's (the two files "
                            "of a checkpoint are from different saves)", mb_st_path(f));
    return 0;
}

int mb_optim_load(mb_optim *o, const char *path)
{
    const mb_params *ps = &o->model->params;
    mb_ctx *ctx = o->model->ctx;
    mb_st_file *f = mb_st_open(path);
    if (!f) return -1;
    int64_t step = 0;
    float *m = mb_calloc(ps->total, sizeof(float), "optimizer staging");
    float *v = m ? mb_calloc(ps->total, sizeof(float), "optimizer staging") : NULL;
    int rc = !m || !v ? mb_error_prefix(path) : 0;
    if (!rc && (mb_optim_read_step(f, &step) || mb_optim_check_count(f, ps) ||
                mb_ckpt_read_all(f, ps, "m.", m) || mb_ckpt_read_all(f, ps, "v.", v) ||
                mb_optim_check_tie(f, o->model)))
        rc = -1;
    if (!rc && (mb_dev_upload(ctx, o->m, m, ps->total * sizeof(float)) ||
                mb_dev_upload(ctx, o->v, v, ps->total * sizeof(float))))
        rc = mb_error_prefix(path);
    if (!rc) o->step = step;
    free(m);
    free(v);
    mb_st_close(f);
    return rc;
}
