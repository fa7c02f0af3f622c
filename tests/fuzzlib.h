/*
 * fuzzlib.h - what the replay drivers of the fuzz targets share (make
 * check): deterministic mutations and the committed corpus.
 */
#ifndef CAIRN_FUZZLIB_H
#define CAIRN_FUZZLIB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A check: 0 refused cleanly, 1 accepted with its property, -1 broken. */
typedef int (*fuzz_check_fn)(const uint8_t *data, size_t size);

/* One deterministic mutation of src into dst: bit flips, interesting
 * bytes, cuts, deleted, inserted and duplicated ranges. */
void fuzz_mutate(const struct buf *src, struct buf *dst);

/* Runs check over every file of the corpus directory tests/fuzz/NAME under
 * $CAIRN_SRCDIR, in name order.  Returns the number of files (-1 when the
 * directory does not exist); adds to *accepted and *failed. */
long fuzz_replay_corpus(const char *name, fuzz_check_fn check, size_t *accepted,
			size_t *failed);

#endif
