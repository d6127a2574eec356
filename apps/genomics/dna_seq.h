/* Sequence sources for mamba-dna: FASTA (plain, gzip, bgzip), BAM, CRAM and
 * SAM read through htslib, as records of tokens (dna_tok.h); sets of them
 * with one global record index; train / validation splits; random training
 * windows; and chunked iteration for scoring.
 *
 * Errors: every call that can fail returns NULL or -1 and writes one line
 * "FILE: what" into (err, errlen) (err may be NULL). Nothing aborts on bad
 * input. htslib prints its own "[E::...]" lines on stderr as well; a tool
 * that wants only ours calls hts_set_log_level(HTS_LOG_OFF) once.
 *
 * Threads: a source or set is not safe to use from two threads at a time
 * (faidx keeps one file position and a block cache): give each loader
 * thread its own dna_set. */
#ifndef DNA_SEQ_H
#define DNA_SEQ_H

#include <stddef.h>
#include <stdint.h>

/* ---- one input file ------------------------------------------------------ */

/* How FASTA indexes (.fai, and .gzi for bgzip) are used. */
typedef enum {
    /* use the index when its files are next to the FASTA; otherwise stream
     * the whole file into memory (fine for bacterial genomes: one byte a
     * base) */
    DNA_INDEX_AUTO = 0,
    /* always stream into memory, even when an index exists */
    DNA_INDEX_NEVER = 1,
    /* build missing index files next to the FASTA (writes beside the user's
     * input: only when asked); plain gzip cannot be indexed and is streamed */
    DNA_INDEX_BUILD = 2
} dna_index_mode;

typedef struct {
    /* CRAM: the reference FASTA (htslib indexes it, writing REF.fai beside
     * it, if it has no .fai yet). NULL: htslib's own search, which uses the
     * header's UR tag, then REF_PATH / REF_CACHE and may go to the network */
    const char *reference;
    dna_index_mode index_mode;
    /* BAM/CRAM/SAM keep reverse-strand reads (flag 0x10) reverse-complemented
     * (the reference's strand); 1 turns them back into the orientation the
     * sequencer read them in. Either is fine for training with RC
     * augmentation. */
    int reads_as_sequenced;
} dna_src_opts;

void dna_src_opts_default(dna_src_opts *o);

typedef enum {
    DNA_SRC_FASTA_INDEXED = 0, /* faidx: windows are read from disk on demand */
    DNA_SRC_FASTA_MEMORY = 1,  /* FASTA streamed into memory at open */
    DNA_SRC_READS = 2          /* BAM / CRAM / SAM / FASTQ reads, in memory */
} dna_src_kind;

typedef struct dna_src dna_src;

/* Opens a file, telling the format from its content (not its name).
 * FASTA: one record per '>' entry, named by the header's first word.
 * Reads: one record per primary read (secondary 0x100 and supplementary
 * 0x800 alignments are skipped, and so are reads stored without a
 * sequence), mapped or not, named by the read name. o may be NULL
 * (defaults). Fails on a missing or unreadable file, an unknown format, a
 * FASTA without header, a truncated gzip stream, a corrupt BAM, or a file
 * without any record. */
dna_src *dna_src_open(const char *path, const dna_src_opts *o, char *err, size_t errlen);
void dna_src_close(dna_src *s);

const char *dna_src_path(const dna_src *s);
dna_src_kind dna_src_get_kind(const dna_src *s);
/* htslib's description of the format, e.g. "FASTA BGZF-compressed
 * sequence data", for messages. */
const char *dna_src_format(const dna_src *s);
int64_t dna_src_nrec(const dna_src *s);
const char *dna_src_name(const dna_src *s, int64_t rec);
int64_t dna_src_len(const dna_src *s, int64_t rec);
/* Alignment records that were not turned into records (secondary,
 * supplementary, no sequence). */
int64_t dna_src_skipped(const dna_src *s);

/* Tokens of rec[start, start + len) into out[0..len). The range must lie
 * inside the record. Indexed FASTA reads from disk (only that range). */
int dna_src_fetch(dna_src *s, int64_t rec, int64_t start, int64_t len, int32_t *out,
                  char *err, size_t errlen);

/* ---- several files as one ------------------------------------------------ */

typedef struct dna_set dna_set;

/* Opens every path (in order; records are numbered across them in that
 * order). Fails on the first file that fails, with that file's message. */
dna_set *dna_set_open(const char *const *paths, int npaths, const dna_src_opts *o, char *err,
                      size_t errlen);
void dna_set_close(dna_set *set);

int dna_set_nsrc(const dna_set *set);
dna_src *dna_set_src(const dna_set *set, int i);
int64_t dna_set_nrec(const dna_set *set);
const char *dna_set_name(const dna_set *set, int64_t rec);
int64_t dna_set_len(const dna_set *set, int64_t rec);
/* Which file (index into the paths given to dna_set_open) a record comes
 * from: one FASTA per class makes this the label. */
int dna_set_file_of(const dna_set *set, int64_t rec);
/* Sum of all record lengths. */
int64_t dna_set_bases(const dna_set *set);
/* Global record index of a name; -1 when absent, -2 when several records
 * (in one file or across files) have that name. */
int64_t dna_set_find(const dna_set *set, const char *name);
int dna_set_fetch(dna_set *set, int64_t rec, int64_t start, int64_t len, int32_t *out,
                  char *err, size_t errlen);

/* ---- intervals and the train / validation split -------------------------- */

typedef struct {
    int64_t rec;        /* global record index in the set */
    int64_t start, end; /* 0-based, half open */
} dna_ival;

typedef struct {
    dna_ival *v; /* sorted by (rec, start), disjoint */
    int64_t n;
    int64_t bases; /* sum of end - start */
} dna_ivals;

typedef struct {
    dna_ivals train, val;
} dna_split;

/* Default held-out part: the last 5% of every record. */
#define DNA_VAL_FRAC_DEFAULT 0.05

/* Validation = the last floor(frac * length) bases of each record, train =
 * the rest. frac in [0, 1]. Deterministic: depends only on the lengths. */
int dna_split_fraction(const dna_set *set, double frac, dna_split *out, char *err,
                       size_t errlen);
/* Validation = the intervals of a BED file (chrom, start, end: 0-based,
 * half open; extra columns, '#' comments, 'track' and 'browser' lines are
 * ignored; overlapping intervals are merged), train = the rest of every
 * record. A chrom not in the set, an end past the record, start > end or
 * a malformed line is an error naming the line ("val.bed:3: ..."). */
int dna_split_bed(const dna_set *set, const char *bed_path, dna_split *out, char *err,
                  size_t errlen);
void dna_split_free(dna_split *sp);

/* Longest interval (its index in *idx when idx is not NULL; -1 if none). */
int64_t dna_ivals_longest(const dna_ivals *iv, int64_t *idx);

/* ---- random windows ------------------------------------------------------ */

typedef struct {
    int64_t rec, start, len;
    int rc; /* 1 when the tokens were reverse-complemented */
} dna_window;

/* Give up after this many draws in a row that were mostly N. */
#define DNA_SAMPLE_MAX_TRIES 100

typedef struct dna_sampler dna_sampler;

/* Windows of exactly len tokens lying inside one interval of iv, their
 * start uniform over all such positions (so each base of the split is
 * equally likely to be seen, up to the edges). Fails when no interval is
 * len long, with the longest one in the message. The set and iv must
 * outlive the sampler. */
dna_sampler *dna_sampler_create(dna_set *set, const dna_ivals *iv, int64_t len, char *err,
                                size_t errlen);
void dna_sampler_free(dna_sampler *sm);
/* Draws one window into tokens[0..len): re-draws while more than half of
 * it is N or [UNK] (fails after DNA_SAMPLE_MAX_TRIES), then, when rc_aug
 * is set, reverse-complements it with probability 1/2. w may be NULL. */
int dna_sampler_draw(dna_sampler *sm, uint64_t *rng, int rc_aug, int32_t *tokens, dna_window *w,
                     char *err, size_t errlen);

/* One draw without keeping a sampler (builds and frees one: O(intervals)
 * per call; use a sampler in a training loop). */
int dna_sample_window(dna_set *set, const dna_ivals *iv, int64_t len, uint64_t *rng, int rc_aug,
                      int32_t *tokens, dna_window *w, char *err, size_t errlen);

/* ---- chunked iteration (scoring, validation) ----------------------------- */

typedef struct {
    int64_t rec, start, len;
    int first; /* this chunk starts its interval: reset the recurrent state */
    int last;  /* this chunk ends its interval: emit the record's result */
} dna_chunk;

typedef struct {
    dna_set *set;
    const dna_ivals *iv; /* NULL: every record whole */
    int64_t chunk;
    int64_t i;   /* current interval or record */
    int64_t pos; /* next start inside it */
} dna_iter;

/* Walks the intervals of iv (or every record from 0 to its end) in order,
 * in chunks of at most `chunk` tokens, reading only the chunk's range from
 * an indexed FASTA: a record of any length is visited in constant memory.
 * An empty record gives one chunk of length 0 (first and last set). */
void dna_iter_init(dna_iter *it, dna_set *set, const dna_ivals *iv, int64_t chunk);
/* 1: a chunk is in tokens[0..c->len) and *c; 0: done; -1: error. */
int dna_iter_next(dna_iter *it, int32_t *tokens, dna_chunk *c, char *err, size_t errlen);

#endif
