/* The two ways records get into memory: streaming a FASTA, reading the
 * reads of a BAM/CRAM/SAM/FASTQ. Internal to mb_dna (dna_seq.c calls them
 * on a file it has opened and identified). */
#ifndef DNA_LOAD_H
#define DNA_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include <htslib/hts.h>

#include "dna_seq.h"
#include "dna_store.h"

/* Reads every record of a FASTA (plain or gzip/bgzip: htslib inflates)
 * into st. Needs at least one '>' record; sequence before the first
 * header, a read error or a truncated gzip stream are errors. */
int dna_fasta_stream(htsFile *fp, const char *path, dna_store *st, char *err, size_t errlen);

/* Reads every primary read with a sequence into st; *skipped counts the
 * alignment records left out. */
int dna_reads_load(htsFile *fp, const char *path, const dna_src_opts *o, dna_store *st,
                   int64_t *skipped, char *err, size_t errlen);

#endif
