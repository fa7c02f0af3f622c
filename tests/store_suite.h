/*
 * store_suite.h - the conformance checks every store implementation passes,
 * run by test_store (file://) and test_store_s3 (s3:// through the proxy).
 */
#ifndef CAIRN_STORE_SUITE_H
#define CAIRN_STORE_SUITE_H

#include "store.h"

/* Runs every check on s, naming them with label ("file", "s3").  Leaves the
 * store holding only keys under "suite/"; removes what it can at the end. */
void store_suite_run(struct store *s, const char *label);

/* Counts CAS increments: n_threads threads each add n_incr to a counter
 * object with If-Match retry loops; returns the final counter value. */
long store_suite_cas_race(struct store *s, const char *key, int n_threads, int n_incr);

#endif
