/* mamba-dna score: the log-likelihood of every record of a FASTA / BAM /
 * CRAM under a mamba-dna language model, exactly and in constant memory
 * (chunks with the recurrent state carried); or, with --vcf, the
 * log-likelihood ratio of a window around each variant with the alternate
 * allele against the reference one, written as a VCF (or a TSV). For a
 * bidirectional (masked) model the ratio is the masked marginal: the
 * variant's bases masked in the reference window, log p(alt) - log p(ref)
 * there. The per-token log-likelihoods come from the device
 * (mb_model_forward_chunk_ex); no logits are downloaded. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <htslib/hts.h>
#include <htslib/vcf.h>

#include "dna_cmd.h"
#include "dna_vcf.h"

#define SC_CHUNK_DEFAULT 65536
#define SC_WINDOW_DEFAULT 1024
#define SC_BATCH_DEFAULT 16

typedef struct {
    dna_infer_opts in;
    const char *vcf;
    int64_t window, batch;
    int tsv, set_vcf_flag; /* set_vcf_flag: a flag that needs --vcf was given */
} sc_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " score --model M --fasta F [options]\n"
            "\n"
            "Log-likelihood of every record of F under the mamba-dna language model M, as a\n"
            "TSV on stdout with one row per record, in file order:\n"
            "  name  length  log_likelihood  bits_per_base  perplexity\n"
            "log_likelihood is the natural-log sum over positions t >= 2 of\n"
            "log p(x_t | x_1..x_{t-1}): every token of the record but the first (N and\n"
            "other letters count like bases), no special token added, p being the softmax\n"
            "over all of the model's (padded) vocabulary, as in training.\n"
            "bits_per_base = -log_likelihood / ln 2 / (length - 1) and perplexity =\n"
            "exp(-log_likelihood / (length - 1)); a record shorter than 2 bases gives\n"
            "0, nan, nan. Records of any length are scored exactly in constant memory:\n"
            "chunks of --chunk bases with the recurrent state carried across. A model\n"
            "whose numbers overflow (a log-likelihood not finite) is an error, not a row.\n"
            "\n"
            "With --vcf V, variants instead: for each record of V, a window of --window\n"
            "bases around it is read from F (starting window/2 bases before POS, widened\n"
            "to hold all of REF, clipped to the contig), scored as it is and with ALT in\n"
            "place of REF, and LLR = ll(alt) - ll(ref) is written: V's records on stdout as\n"
            "a VCF with INFO/MAMBA_LLR added (or a TSV with --tsv). REF must match F.\n"
            "Only the first ALT of a record is scored. Records with a symbolic ALT (<DEL>,\n"
            "breakends, *) or none are passed through without MAMBA_LLR and counted on\n"
            "stderr. An indel changes the window's length: its LLR compares log-likelihoods\n"
            "of windows of different lengths (a sum over one more or fewer bases).\n"
            "A bidirectional model (pretrain --objective mlm) scores variants only, by the\n"
            "masked marginal: REF's bases are masked ([MASK]) in the reference window and\n"
            "LLR = sum over them of log p(ALT base) - log p(REF base) (Meier et al. 2021);\n"
            "ll_ref and ll_alt are those sums. Variants whose ALT and REF differ in length\n"
            "are passed through without MAMBA_LLR and counted on stderr. Windows clipped\n"
            "by a contig end are scored in batches of their own length (no padding).\n"
            "\n"
            "input:\n"
            "  --model M          mamba-dna checkpoint (required)\n"
            "  --fasta F          FASTA (plain, gzip, bgzip + .fai), BAM or CRAM (required;\n"
            "                     repeatable: the records of every file, in order)\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --chunk N          tokens per forward pass (--vcf: over all the batch's\n"
            "                     windows); 64k, 1M accepted [%d]\n"
            "variants:\n"
            "  --vcf V            score the variants of V (VCF or BCF, plain or bgzip) on F;\n"
            "                     a file, not stdin: every record is checked against F\n"
            "                     before anything is scored or written\n"
            "  --window W         bases per window around a variant [%d]\n"
            "  --batch N          variants per forward pass (two windows each) [%d]\n"
            "  --tsv              a TSV instead of the VCF, one row per scored variant:\n"
            "                     contig pos id ref alt ll_ref ll_alt llr (pos 1-based)\n"
            "device:\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n"
            MB_CLI_PRECISION_HELP
            "\n"
            "Progress goes to stderr when the work takes long (a line every 5 s: bases or\n"
            "variants done of the total, ETA); stdout gets only the output. Ctrl-C or\n"
            "SIGTERM stops it at the next chunk: exit 130, the rows written are complete.\n"
            "Examples:\n"
            "  " DNA_PROG " score --model m.safetensors --fasta genome.fa.gz > scores.tsv\n"
            "  " DNA_PROG " score --model m.safetensors --fasta ref.fa --vcf calls.vcf.gz > llr.vcf\n",
            SC_CHUNK_DEFAULT, SC_WINDOW_DEFAULT, SC_BATCH_DEFAULT);
}

/* ---- helpers ------------------------------------------------------------- */

/* One error line for a failed write to stdout; -1. */
static int sc_write_error(void) { return mb_cli_write_error(DNA_PROG, NULL); }

/* Progress on stderr when the work takes long (mb_cli_progress.h). */
typedef struct {
    mb_cli_progress pg;
    int64_t items, bases;
} sc_progress;

/* Records: bases done of all the bases (so one long record shows where it
 * is), the record being scored, the rate, the ETA. */
static void sc_progress_bases(sc_progress *p, const dna_set *set, int64_t rec, int64_t total)
{
    if (!mb_cli_progress_due(&p->pg)) return;
    char eta[48];
    mb_cli_progress_eta(&p->pg, (double)p->bases, (double)total, eta, sizeof eta);
    const double t = mb_cli_progress_elapsed(&p->pg);
    fprintf(stderr, DNA_PROG " score: %lld/%lld bases (%.0f%%), record %lld/%lld %s, %.0f bases/s, %s\n",
            (long long)p->bases, (long long)total, total ? 100.0 * (double)p->bases / (double)total : 100.0,
            (long long)rec + 1, (long long)dna_set_nrec(set), dna_set_name(set, rec),
            t > 0 ? (double)p->bases / t : 0.0, eta);
}

/* Variants: variants done of the total, the rate, the ETA. */
static void sc_progress_variants(sc_progress *p, int64_t total)
{
    if (!mb_cli_progress_due(&p->pg)) return;
    char eta[48];
    mb_cli_progress_eta(&p->pg, (double)p->items, (double)total, eta, sizeof eta);
    const double t = mb_cli_progress_elapsed(&p->pg);
    fprintf(stderr, DNA_PROG " score: %lld/%lld variants (%.0f%%), %lld bases, %.0f bases/s, %s\n",
            (long long)p->items, (long long)total, total ? 100.0 * (double)p->items / (double)total : 100.0,
            (long long)p->bases, t > 0 ? (double)p->bases / t : 0.0, eta);
}

/* A model, a state of B rows and the buffers of one forward pass of B rows
 * by up to `cols` columns: the tokens, their next-token targets, and the
 * log-likelihoods of the targets, computed on the device. */
typedef struct {
    mb_model *m;
    mb_state *st;
    int B;
    int64_t cols;
    int32_t *tok, *tgt; /* (B, cols) */
    double *lp;         /* (B, cols) */
} sc_runner;

static void sc_runner_free(sc_runner *r)
{
    mb_state_free(r->st);
    free(r->tok);
    free(r->tgt);
    free(r->lp);
    memset(r, 0, sizeof *r);
}

static int sc_runner_init(sc_runner *r, mb_model *m, int B, int64_t cols)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->B = B;
    r->cols = cols;
    const size_t n = (size_t)B * (size_t)cols;
    r->tok = malloc(n * sizeof *r->tok);
    r->tgt = malloc(n * sizeof *r->tgt);
    r->lp = malloc(n * sizeof *r->lp);
    if (!r->tok || !r->tgt || !r->lp) {
        sc_runner_free(r);
        mb_cli_error(DNA_PROG, "out of memory for %d x %lld tokens a forward pass", B, (long long)cols);
        return -1;
    }
    if (!(r->st = mb_state_create(m, B))) {
        mb_cli_error(DNA_PROG, "recurrent state: %s", mb_error_last());
        sc_runner_free(r);
        return -1;
    }
    return 0;
}

/* Runs the n columns of r->tok with their targets r->tgt (rows of n, laid
 * out (B, n)) from the current state, and adds to ll[b] of the first nrows
 * rows the log-likelihood of their counted targets (MB_IGNORE_INDEX ones
 * count 0). mb_error_last() says why on -1. */
static int sc_runner_run(sc_runner *r, int64_t n, int nrows, double *ll)
{
    mb_chunk_out out = {.targets = r->tgt, .logprob = r->lp};
    if (mb_model_forward_chunk_ex(r->m, r->st, r->tok, (int)n, &out)) return -1;
    for (int b = 0; b < nrows; b++) {
        const double *lp = r->lp + (size_t)b * n;
        double s = 0;
        for (int64_t t = 0; t < n; t++) s += lp[t];
        ll[b] += s;
    }
    return 0;
}

/* ---- per-record scores ---------------------------------------------------- */

static int sc_row(const char *model, const char *name, int64_t len, double ll)
{
    int n;
    /* a model whose numbers overflow: an error, not a row of nan */
    if (len >= 2 && !isfinite(ll)) {
        mb_cli_error(DNA_PROG, "%s: record '%s': the log-likelihood is not finite (%s): the model's numbers "
                               "overflow",
                     model, name, mb_cli_nonfinite(ll));
        return -1;
    }
    if (len < 2) n = printf("%s\t%lld\t0\tnan\tnan\n", name, (long long)len);
    else
        n = printf("%s\t%lld\t%.6f\t%.6f\t%.6f\n", name, (long long)len, ll,
                   -ll / MB_CLI_LN2 / (double)(len - 1), exp(-ll / (double)(len - 1)));
    return n < 0 || ferror(stdout) ? sc_write_error() : 0;
}

/* Every record in chunks of --chunk tokens. The chunk after the current one
 * is read first: its first token is the target of the current one's last
 * position, so the chunks are those of a forward over the whole record. */
static int sc_records(const sc_opts *o, mb_model *m, dna_set *set)
{
    sc_runner r;
    if (sc_runner_init(&r, m, 1, o->in.chunk)) return 1;
    int rc = 1;
    char err[512];
    int32_t *ahead = malloc(sizeof(int32_t) * (size_t)o->in.chunk);
    if (!ahead) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    if (printf("name\tlength\tlog_likelihood\tbits_per_base\tperplexity\n") < 0 || ferror(stdout)) {
        sc_write_error();
        goto done;
    }
    const int64_t total = dna_set_bases(set);
    sc_progress pg = {.items = 0};
    mb_cli_progress_start(&pg.pg);
    dna_iter it;
    dna_iter_init(&it, set, NULL, o->in.chunk);
    dna_chunk c, next;
    double ll = 0;
    int k = dna_iter_next(&it, r.tok, &c, err, sizeof err);
    while (k == 1) {
        if (mb_cli_interrupted()) {
            /* stdout holds the rows of the records before this one, each whole */
            mb_cli_error(DNA_PROG, "interrupted in record %lld of %lld ('%s', %lld of %lld bases scored); the rows "
                                   "above are complete",
                         (long long)c.rec + 1, (long long)dna_set_nrec(set), dna_set_name(set, c.rec),
                         (long long)c.start, (long long)dna_set_len(set, c.rec));
            fflush(stdout);
            rc = MB_CLI_EXIT_INTERRUPTED;
            goto done;
        }
        const int kn = dna_iter_next(&it, ahead, &next, err, sizeof err);
        if (c.first) {
            mb_state_reset(r.st);
            ll = 0;
        }
        if (c.len > 0) {
            for (int64_t t = 0; t + 1 < c.len; t++) r.tgt[t] = r.tok[t + 1];
            r.tgt[c.len - 1] = kn == 1 && !c.last && next.len > 0 ? ahead[0] : MB_IGNORE_INDEX;
            if (sc_runner_run(&r, c.len, 1, &ll)) {
                mb_cli_error(DNA_PROG, "%s: record '%s': %s", o->in.model, dna_set_name(set, c.rec),
                             mb_error_last());
                goto done;
            }
        }
        pg.bases += c.len;
        if (c.last) {
            if (sc_row(o->in.model, dna_set_name(set, c.rec), dna_set_len(set, c.rec), ll)) goto done;
            pg.items++;
        }
        sc_progress_bases(&pg, set, c.rec, total);
        int32_t *tok = r.tok;
        r.tok = ahead, ahead = tok;
        c = next;
        k = kn;
    }
    if (k < 0) {
        mb_cli_error(DNA_PROG, "%s", err);
        goto done;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        sc_write_error();
        goto done;
    }
    rc = 0;
done:
    free(ahead);
    sc_runner_free(&r);
    return rc;
}

/* ---- variants ------------------------------------------------------------ */

/* The reference window of a variant and the same with ALT in place of REF
 * (dna_vcf_locate has checked that REF lies inside the record). */
static void sc_window_span(dna_set *set, int64_t rec, const dna_variant *v, int64_t W, int64_t *s0, int64_t *e0)
{
    const int64_t len = dna_set_len(set, rec), nref = (int64_t)strlen(v->ref);
    int64_t s = v->pos - W / 2, e = s + W;
    if (e < v->pos + nref) e = v->pos + nref;
    if (s < 0) s = 0;
    if (e > len) e = len;
    *s0 = s, *e0 = e;
}

static int sc_windows(dna_set *set, int64_t rec, const dna_variant *v, int64_t W, int32_t *ref_w,
                      int64_t *ref_n, int32_t *alt_w, int64_t *alt_n, char *err, size_t errlen)
{
    const int64_t nref = (int64_t)strlen(v->ref), nalt = (int64_t)strlen(v->alt);
    int64_t s, e;
    sc_window_span(set, rec, v, W, &s, &e);
    if (dna_set_fetch(set, rec, s, e - s, ref_w, err, errlen)) return -1;
    const int64_t left = v->pos - s, right = e - v->pos - nref;
    memcpy(alt_w, ref_w, sizeof(int32_t) * (size_t)left);
    dna_tok_encode(v->alt, (size_t)nalt, alt_w + left);
    memcpy(alt_w + left + nalt, ref_w + left + nref, sizeof(int32_t) * (size_t)right);
    *ref_n = e - s;
    *alt_n = left + nalt + right;
    return 0;
}

/* The VCF being rewritten: a reader of its own over the same file, walked
 * in step with dna_vcf's record numbers, and the output on stdout. */
typedef struct {
    htsFile *in, *out;
    bcf_hdr_t *hdr;
    bcf1_t *rec;
    int64_t nread;
    int had_llr; /* the input already had MAMBA_LLR: stale values are removed */
    const char *path;
} sc_vcfout;

static void sc_vcfout_close(sc_vcfout *w)
{
    if (w->rec) bcf_destroy(w->rec);
    if (w->hdr) bcf_hdr_destroy(w->hdr);
    if (w->in) hts_close(w->in);
    if (w->out) hts_close(w->out);
    memset(w, 0, sizeof *w);
}

static int sc_vcfout_open(sc_vcfout *w, const char *path, int64_t W)
{
    memset(w, 0, sizeof *w);
    w->path = path;
    if (!(w->in = bcf_open(path, "r")) || !(w->hdr = bcf_hdr_read(w->in)) || !(w->rec = bcf_init())) {
        mb_cli_error(DNA_PROG, "%s: cannot reopen the VCF to copy its records", path);
        return -1;
    }
    const int id = bcf_hdr_id2int(w->hdr, BCF_DT_ID, "MAMBA_LLR");
    if (id >= 0 && bcf_hdr_idinfo_exists(w->hdr, BCF_HL_INFO, id)) {
        if (bcf_hdr_id2type(w->hdr, BCF_HL_INFO, id) != BCF_HT_REAL) {
            mb_cli_error(DNA_PROG, "%s: has an INFO/MAMBA_LLR that is not a Float", path);
            return -1;
        }
        w->had_llr = 1;
    } else {
        char line[512];
        snprintf(line, sizeof line,
                 "##INFO=<ID=MAMBA_LLR,Number=1,Type=Float,Description=\"mamba-dna score: "
                 "log-likelihood ratio ll(alt) - ll(ref), natural log, of a %lld-base window "
                 "around the variant (first ALT allele)\">",
                 (long long)W);
        if (bcf_hdr_append(w->hdr, line) || bcf_hdr_sync(w->hdr)) {
            mb_cli_error(DNA_PROG, "%s: cannot add INFO/MAMBA_LLR to the header", path);
            return -1;
        }
    }
    if (!(w->out = hts_open("-", "w"))) {
        mb_cli_error(DNA_PROG, "stdout: cannot open for writing (%s)", strerror(errno ? errno : EIO));
        return -1;
    }
    if (bcf_hdr_write(w->out, w->hdr) < 0) return sc_write_error();
    return 0;
}

/* Copies records up to record number `index` (1-based; INT64_MAX: to the
 * end), that one with MAMBA_LLR = llr when has_llr. */
static int sc_vcfout_upto(sc_vcfout *w, int64_t index, int has_llr, float llr)
{
    while (w->nread < index) {
        const int r = bcf_read(w->in, w->hdr, w->rec);
        if (r == -1 && index == INT64_MAX) return 0;
        if (r < 0) {
            mb_cli_error(DNA_PROG, "%s: record %lld: truncated or malformed", w->path, (long long)w->nread + 1);
            return -1;
        }
        w->nread++;
        int u = 0;
        if (w->nread == index && has_llr) u = bcf_update_info_float(w->hdr, w->rec, "MAMBA_LLR", &llr, 1);
        else if (w->had_llr) u = bcf_update_info_float(w->hdr, w->rec, "MAMBA_LLR", NULL, 0);
        if (u < 0) {
            mb_cli_error(DNA_PROG, "%s: record %lld: cannot set INFO/MAMBA_LLR", w->path, (long long)w->nread);
            return -1;
        }
        if (bcf_write(w->out, w->hdr, w->rec) < 0) return sc_write_error();
    }
    return 0;
}

/* A batch of variants: two windows each (reference, alternate). */
typedef struct {
    int64_t index, pos;
    int64_t left, nref; /* bidir: REF's first base in the windows, its length */
    char *contig, *id, *ref, *alt; /* --tsv only */
} sc_var;

typedef struct {
    const sc_opts *o;
    sc_runner r;
    int nb;          /* variants a batch holds */
    int64_t wcap;    /* tokens a window can hold */
    int32_t *win;    /* 2 * nb windows of wcap */
    const int32_t **rows;
    int64_t *wlen;
    double *ll;
    sc_var *v;
    int n;           /* variants in the batch */
    int64_t bases;   /* in the windows of every variant added */
    sc_vcfout out;   /* VCF output (not --tsv) */
    int64_t scored;
    int bidir;       /* masked marginals (a bidirectional model) */
    int64_t skipped_len; /* bidir: ALT and REF of different lengths */
} sc_vbatch;

static void sc_var_clear(sc_var *v)
{
    free(v->contig);
    free(v->id);
    free(v->ref);
    free(v->alt);
    memset(v, 0, sizeof *v);
}

/* Scores the batch's windows (right-padded to the longest: the model is
 * causal, so padding after a window changes nothing in it; a bidirectional
 * model's batches hold windows of one length) and writes the variants
 * out. */
static int sc_vbatch_flush(sc_vbatch *vb)
{
    if (!vb->n) return 0;
    sc_runner *r = &vb->r;
    const int nw = 2 * vb->n;
    int64_t L = 0;
    for (int i = 0; i < nw; i++) {
        vb->ll[i] = 0;
        L = vb->wlen[i] > L ? vb->wlen[i] : L;
    }
    mb_state_reset(r->st);
    for (int64_t c0 = 0; c0 < L; c0 += r->cols) {
        const int64_t n = L - c0 < r->cols ? L - c0 : r->cols;
        for (int b = 0; b < r->B; b++) {
            const int64_t len = b < nw ? vb->wlen[b] : 0;
            if (vb->bidir && b < nw) {
                /* the reference window with REF masked, both rows; the
                 * targets there are REF's bases (row 2i), ALT's (2i + 1) */
                const sc_var *v = &vb->v[b / 2];
                for (int64_t t = 0, pos = c0; t < n; t++, pos++) {
                    const int in = pos >= v->left && pos < v->left + v->nref;
                    r->tok[(size_t)b * n + t] = in ? DNA_TOK_MASK : vb->rows[b & ~1][pos];
                    r->tgt[(size_t)b * n + t] = in ? vb->rows[b][pos] : MB_IGNORE_INDEX;
                }
                continue;
            }
            for (int64_t t = 0, pos = c0; t < n; t++, pos++) {
                r->tok[(size_t)b * n + t] = pos < len ? vb->rows[b][pos] : DNA_TOK_N;
                r->tgt[(size_t)b * n + t] = pos + 1 < len ? vb->rows[b][pos + 1] : MB_IGNORE_INDEX;
            }
        }
        if (sc_runner_run(r, n, nw, vb->ll)) {
            mb_cli_error(DNA_PROG, "%s: %s", vb->o->in.model, mb_error_last());
            return -1;
        }
    }
    for (int i = 0; i < vb->n; i++) {
        const double lr = vb->ll[2 * i], la = vb->ll[2 * i + 1];
        /* a model whose numbers overflow: an error, not an LLR of nan */
        if (!isfinite(lr) || !isfinite(la)) {
            mb_cli_error(DNA_PROG, "%s: %s record %lld: the log-likelihoods are not finite (ref %g, alt %g): the "
                                   "model's numbers overflow",
                         vb->o->in.model, vb->o->vcf, (long long)vb->v[i].index, isnan(lr) ? NAN : lr,
                         isnan(la) ? NAN : la);
            return -1;
        }
        if (vb->o->tsv) {
            const sc_var *v = &vb->v[i];
            if (printf("%s\t%lld\t%s\t%s\t%s\t%.6f\t%.6f\t%.6f\n", v->contig, (long long)v->pos + 1, v->id,
                       v->ref, v->alt, lr, la, la - lr) < 0 ||
                ferror(stdout))
                return sc_write_error();
        } else if (sc_vcfout_upto(&vb->out, vb->v[i].index, 1, (float)(la - lr))) {
            return -1;
        }
        sc_var_clear(&vb->v[i]);
    }
    vb->scored += vb->n;
    vb->n = 0;
    return 0;
}

static char *sc_strdup(const char *s)
{
    const size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The first pass: every record checked (contig, REF against the FASTA), so
 * that a bad one stops the run before anything is written or computed; the
 * longest REF and ALT, and the counts. */
static int sc_vcf_check(const char *path, dna_set *set, int64_t *maxref, int64_t *maxalt, dna_vcf_counts *counts)
{
    char err[512];
    dna_vcf *v = dna_vcf_open(path, err, sizeof err);
    if (!v) {
        mb_cli_error(DNA_PROG, "%s", err);
        return -1;
    }
    dna_variant var;
    int k;
    *maxref = *maxalt = 1;
    while ((k = dna_vcf_next(v, &var, err, sizeof err)) == 1) {
        if (mb_cli_interrupted()) {
            mb_cli_error(DNA_PROG, "%s: interrupted while checking its records; nothing scored", path);
            dna_vcf_close(v);
            return MB_CLI_EXIT_INTERRUPTED;
        }
        if (dna_vcf_locate(v, set, &var, 1, err, sizeof err) < 0) break;
        const int64_t nr = (int64_t)strlen(var.ref), na = (int64_t)strlen(var.alt);
        *maxref = nr > *maxref ? nr : *maxref;
        *maxalt = na > *maxalt ? na : *maxalt;
    }
    if (k != 0) mb_cli_error(DNA_PROG, "%s", err);
    else *counts = *dna_vcf_get_counts(v);
    dna_vcf_close(v);
    return k != 0 ? -1 : 0;
}

static void sc_vbatch_free(sc_vbatch *vb)
{
    for (int i = 0; vb->v && i < vb->nb; i++) sc_var_clear(&vb->v[i]);
    sc_vcfout_close(&vb->out);
    sc_runner_free(&vb->r);
    free(vb->win);
    free(vb->rows);
    free(vb->wlen);
    free(vb->ll);
    free(vb->v);
}

/* Batches of up to --batch variants (n of them in all) whose windows hold
 * up to --window + maxref + maxalt bases, and the output's header. */
static int sc_vbatch_init(sc_vbatch *vb, const sc_opts *o, mb_model *m, int64_t n, int64_t maxref, int64_t maxalt)
{
    memset(vb, 0, sizeof *vb);
    vb->o = o;
    vb->nb = (int)(o->batch < n ? o->batch : (n > 0 ? n : 1));
    vb->wcap = o->window + maxref + maxalt;
    vb->bidir = mb_model_config(m)->arch == MB_ARCH_BIDIR;
    const int nw = 2 * vb->nb;
    /* a bidirectional model reads a window whole: one chunk */
    const int64_t cols = vb->bidir ? vb->wcap : o->in.chunk / nw > 0 ? o->in.chunk / nw : 1;
    vb->win = malloc(sizeof(int32_t) * (size_t)nw * (size_t)vb->wcap);
    vb->rows = calloc((size_t)nw, sizeof *vb->rows);
    vb->wlen = calloc((size_t)nw, sizeof *vb->wlen);
    vb->ll = calloc((size_t)nw, sizeof *vb->ll);
    vb->v = calloc((size_t)vb->nb, sizeof *vb->v);
    if (!vb->win || !vb->rows || !vb->wlen || !vb->ll || !vb->v) {
        mb_cli_error(DNA_PROG, "out of memory for %d windows of %lld bases", nw, (long long)vb->wcap);
        return -1;
    }
    for (int i = 0; i < nw; i++) vb->rows[i] = vb->win + (size_t)i * vb->wcap;
    if (sc_runner_init(&vb->r, m, nw, cols)) return -1;
    if (!o->tsv) return sc_vcfout_open(&vb->out, o->vcf, o->window);
    if (printf("contig\tpos\tid\tref\talt\tll_ref\tll_alt\tllr\n") < 0 || ferror(stdout)) return sc_write_error();
    return 0;
}

/* A variant's two windows (and, for --tsv, its fields) into the batch;
 * scored when the batch is full. */
static int sc_vbatch_add(sc_vbatch *vb, dna_set *set, int64_t rec, const dna_variant *var)
{
    char err[512];
    const int64_t nref = (int64_t)strlen(var->ref);
    int64_t s = 0, e = 0;
    if (vb->bidir) {
        /* a masked marginal compares bases at the same positions */
        if ((int64_t)strlen(var->alt) != nref) {
            vb->skipped_len++;
            return 0;
        }
        sc_window_span(set, rec, var, vb->o->window, &s, &e);
        if (vb->n > 0 && e - s != vb->wlen[0] && sc_vbatch_flush(vb)) return -1;
    }
    const int i = vb->n;
    int32_t *ref = vb->win + (size_t)(2 * i) * vb->wcap, *alt = ref + vb->wcap;
    if (sc_windows(set, rec, var, vb->o->window, ref, &vb->wlen[2 * i], alt, &vb->wlen[2 * i + 1], err, sizeof err)) {
        mb_cli_error(DNA_PROG, "%s", err);
        return -1;
    }
    vb->bases += vb->wlen[2 * i] + vb->wlen[2 * i + 1];
    sc_var *sv = &vb->v[i];
    sv->index = var->index;
    sv->pos = var->pos;
    if (vb->bidir) sv->left = var->pos - s, sv->nref = nref;
    if (vb->o->tsv && (!(sv->contig = sc_strdup(var->contig)) || !(sv->id = sc_strdup(var->id)) ||
                       !(sv->ref = sc_strdup(var->ref)) || !(sv->alt = sc_strdup(var->alt)))) {
        sc_var_clear(sv);
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    return ++vb->n == vb->nb ? sc_vbatch_flush(vb) : 0;
}

/* The last batch, the rest of the VCF's records, stdout flushed. */
static int sc_vbatch_finish(sc_vbatch *vb)
{
    if (sc_vbatch_flush(vb)) return -1;
    if (vb->o->tsv) return fflush(stdout) != 0 || ferror(stdout) ? sc_write_error() : 0;
    if (sc_vcfout_upto(&vb->out, INT64_MAX, 0, 0.f)) return -1;
    htsFile *out = vb->out.out;
    vb->out.out = NULL;
    return hts_close(out) != 0 ? sc_write_error() : 0;
}

static int sc_variants(const sc_opts *o, mb_model *m, dna_set *set)
{
    char err[512];
    int64_t maxref, maxalt;
    dna_vcf_counts counts;
    const int checked = sc_vcf_check(o->vcf, set, &maxref, &maxalt, &counts);
    if (checked) return checked < 0 ? 1 : checked;
    dna_vcf *v = dna_vcf_open(o->vcf, err, sizeof err);
    if (!v) {
        mb_cli_error(DNA_PROG, "%s", err);
        return 1;
    }
    int rc = 1, k;
    sc_vbatch vb;
    if (sc_vbatch_init(&vb, o, m, counts.returned, maxref, maxalt)) goto done;
    sc_progress pg = {.items = 0};
    mb_cli_progress_start(&pg.pg);
    dna_variant var;
    while ((k = dna_vcf_next(v, &var, err, sizeof err)) == 1) {
        if (vb.n == 0 && mb_cli_interrupted()) {
            /* between batches: every variant written so far is whole */
            mb_cli_error(DNA_PROG, "interrupted after %lld of %lld variants; the records above are complete",
                         (long long)vb.scored, (long long)counts.returned);
            fflush(stdout);
            rc = MB_CLI_EXIT_INTERRUPTED;
            goto done;
        }
        const int64_t rec = dna_vcf_locate(v, set, &var, 1, err, sizeof err);
        if (rec < 0) break;
        if (sc_vbatch_add(&vb, set, rec, &var)) goto done;
        pg.items++;
        pg.bases = vb.bases;
        if (vb.n == 0) sc_progress_variants(&pg, counts.returned); /* a batch was scored */
    }
    if (k != 0) {
        mb_cli_error(DNA_PROG, "%s", err);
        goto done;
    }
    if (sc_vbatch_finish(&vb)) goto done;
    fprintf(stderr, DNA_PROG " score: %lld of %lld VCF records scored", (long long)vb.scored,
            (long long)counts.records);
    if (counts.symbolic) fprintf(stderr, "; %lld skipped (symbolic ALT)", (long long)counts.symbolic);
    if (counts.no_alt) fprintf(stderr, "; %lld skipped (no ALT)", (long long)counts.no_alt);
    if (vb.skipped_len)
        fprintf(stderr, "; %lld skipped (ALT and REF of different lengths: no masked marginal)",
                (long long)vb.skipped_len);
    fprintf(stderr, "\n");
    rc = 0;
done:
    sc_vbatch_free(&vb);
    dna_vcf_close(v);
    return rc;
}

/* ---- the command ---------------------------------------------------------- */

int dna_cmd_score(int argc, char **argv)
{
    sc_opts o = {0};
    if (dna_infer_init(&o.in, argc, SC_CHUNK_DEFAULT)) return 1;
    o.window = SC_WINDOW_DEFAULT;
    o.batch = SC_BATCH_DEFAULT;
    enum { O_VCF = 256, O_WINDOW, O_BATCH, O_TSV };
    static const struct option opts[] = {
        DNA_INFER_OPTIONS, {"vcf", 1, 0, O_VCF}, {"window", 1, 0, O_WINDOW}, {"batch", 1, 0, O_BATCH},
        {"tsv", 0, 0, O_TSV}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(DNA_PROG, "score", argc, argv, opts)) != -1) {
        const int r = dna_infer_option(&o.in, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_VCF: o.vcf = optarg; break;
        case O_WINDOW:
            bad = mb_cli_parse_int(DNA_PROG, "--window", optarg, 1, INT64_C(1) << 24, &o.window);
            o.set_vcf_flag = 1;
            break;
        case O_BATCH:
            bad = mb_cli_parse_int(DNA_PROG, "--batch", optarg, 1, 4096, &o.batch);
            o.set_vcf_flag = 1;
            break;
        case O_TSV: o.tsv = o.set_vcf_flag = 1; break;
        case 'h':
            usage(stdout);
            dna_infer_free(&o.in);
            return 0;
        case MB_CLI_OPT_VERSION: dna_infer_free(&o.in); return 0;
        default: bad = 1;
        }
    }
    if (!bad && dna_infer_check(&o.in, "score", argc, argv)) bad = 1;
    if (!bad && o.set_vcf_flag && !o.vcf) {
        mb_cli_error(DNA_PROG, "--window, --batch and --tsv go with --vcf");
        bad = 1;
    }
    if (!bad && o.vcf && strcmp(o.vcf, "-") == 0) {
        mb_cli_error(DNA_PROG, "--vcf needs a file (it is read twice), not stdin");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "Try '" DNA_PROG " score --help'.\n");
        dna_infer_free(&o.in);
        return 2;
    }

    int rc = 1;
    dna_set *set = NULL;
    mb_model *m = NULL;
    mb_ctx *ctx = mb_cli_ctx(DNA_PROG, &o.in.t);
    if (!ctx || !(m = dna_cmd_load_model(ctx, o.in.model, 0, 0)) || dna_cmd_require_lm(m, o.in.model, "score"))
        goto done;
    if (!o.vcf && mb_model_config(m)->arch == MB_ARCH_BIDIR) {
        mb_cli_error(DNA_PROG, "%s: a bidirectional (masked) model has no likelihood of a whole record: it scores "
                               "variants (--vcf, by masked marginals)", o.in.model);
        goto done;
    }
    if (!(set = dna_cmd_open_set(o.in.fasta, o.in.n_fasta, o.in.reference))) goto done;
    rc = o.vcf ? sc_variants(&o, m, set) : sc_records(&o, m, set);
done:
    dna_set_close(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
    dna_infer_free(&o.in);
    return rc;
}
