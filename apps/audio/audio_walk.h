/* The files under a folder, recursively, in a fixed order (internal to
 * audio_set.c; its own file because it is the only POSIX-directory code). */
#ifndef AUDIO_WALK_H
#define AUDIO_WALK_H

#include <stdint.h>

#include "audio_set.h"

typedef struct {
    char *path;   /* as it can be opened: root + "/" + rel */
    char *rel;    /* relative to the root ("a/b.wav"); the basename for a file root */
    int64_t size; /* bytes, for the progress of reading them all */
} audio_walk_entry;

typedef struct {
    audio_walk_entry *v;
    int64_t n, cap;
} audio_walk_list;

/* Every non-hidden regular file under root (or root itself when it is a
 * file), depth first, each folder's entries in strcmp order, symbolic
 * links followed. Each folder and file (by device and inode) is taken at
 * its first path only: a link to a folder that holds it (a loop) and a
 * second path to a folder or file (a link, a hard link) are reported
 * through warn and skipped. Folders that cannot be listed are reported
 * and counted in *skipped.
 * -1 when root cannot be opened or memory runs out. */
int audio_walk(const char *root, audio_walk_list *out, audio_warn_fn warn, void *ud,
               int64_t *skipped, char *err, size_t errlen);
void audio_walk_free(audio_walk_list *l);

#endif
