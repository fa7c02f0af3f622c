/*
 * stop.h - a stop asked for by SIGTERM, SIGINT or SIGHUP, taken by a thread
 * of its own instead of a signal handler.
 *
 * stop_init blocks the three signals in the calling thread before any
 * other thread exists, so that every thread started later inherits the
 * block: no signal can interrupt a system call, run a default action in
 * the middle of a teardown, or be lost to a thread that does not look.
 * The stop thread takes them one by one with sigwaitinfo and calls the
 * program's function for each; the program decides what a stop means
 * (cairnfs: write back, unmount, last snapshot, release the lease).  Long
 * waits in the libraries (a lease held by another machine) poll
 * stop_requested() and give up with -EINTR.  Only SIGKILL cuts a process
 * short.
 */
#ifndef CAIRN_STOP_H
#define CAIRN_STOP_H

/* Called from the stop thread for every stop signal, in order; it may
 * block (later signals wait for it). */
typedef void (*stop_fn)(int sig, void *arg);

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it before
 * any other thread starts) and starts the thread that takes them: fn, if
 * not NULL, is called for each.  0, or a negative code with the error set. */
int stop_init(stop_fn fn, void *arg);

/* The number of the first stop signal taken (or given to stop_request),
 * 0 while none.  Async-signal-safe and lock-free. */
int stop_requested(void);

/* Records a stop as if signal sig had come (it does not call the stop
 * function). */
void stop_request(int sig);

/* Whether a stop cancels the work under way (cairn's commands: they stop
 * at the next safe point, commit nothing more and release the lease) or
 * only ends the waiting for more (cairnfs: its stop finishes what it
 * does, the final snapshot included).  Off by default. */
void stop_set_cancels(int on);
/* The stop signal when a stop came and cancels work, else 0. */
int stop_cancelled(void);

/* Unblocks the stop signals: for a child between fork and exec (and
 * before an exec), which must not inherit the block. */
void stop_unblock(void);

/* "SIGTERM", "SIGINT", "SIGHUP" or "signal N", for messages. */
const char *stop_signal_name(int sig);

#endif
