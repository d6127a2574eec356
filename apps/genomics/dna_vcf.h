/* Variants from VCF / BCF (plain, bgzip; through htslib's vcf.h) for
 * variant-effect scoring: contig, 0-based position, ID, REF and the first
 * ALT allele of each record.
 *
 * Records whose first ALT is not a plain base string (symbolic alleles like
 * <DEL>, breakends, the '*' spanning deletion) or that have no ALT ('.')
 * are skipped and counted: a window with the alternate allele spliced in
 * needs the bases. Errors as in dna_seq.h: NULL / -1 and one line
 * "FILE: what" in err. */
#ifndef DNA_VCF_H
#define DNA_VCF_H

#include <stddef.h>
#include <stdint.h>

#include "dna_seq.h"

typedef struct {
    const char *contig; /* these strings stay valid until the next dna_vcf_next */
    int64_t pos;        /* 0-based (VCF's POS - 1) */
    const char *id;     /* "." when the record has none */
    const char *ref;
    const char *alt;    /* the first ALT allele */
    int n_alt;          /* ALT alleles in the record (only the first is used) */
    int64_t index;      /* 1-based record number in the file, for messages */
} dna_variant;

typedef struct {
    int64_t records;  /* read from the file */
    int64_t returned; /* given out by dna_vcf_next */
    int64_t symbolic; /* skipped: first ALT not made of A C G T N */
    int64_t no_alt;   /* skipped: ALT '.' */
} dna_vcf_counts;

typedef struct dna_vcf dna_vcf;

dna_vcf *dna_vcf_open(const char *path, char *err, size_t errlen);
void dna_vcf_close(dna_vcf *v);
const char *dna_vcf_path(const dna_vcf *v);
const dna_vcf_counts *dna_vcf_get_counts(const dna_vcf *v);

/* 1: *out holds the next usable record; 0: end of file; -1: error
 * (truncated or malformed file). */
int dna_vcf_next(dna_vcf *v, dna_variant *out, char *err, size_t errlen);

/* The set's record for the variant's contig, checked: the contig must be in
 * the set ("v.vcf: contig 'chrX' not in the FASTA"), REF must lie inside
 * the record, and with check_ref each REF base must match the sequence
 * (A C G T against A C G T; N and other letters on either side match
 * anything). Returns the global record index or -1. */
int64_t dna_vcf_locate(const dna_vcf *v, dna_set *set, const dna_variant *var, int check_ref,
                       char *err, size_t errlen);

#endif
