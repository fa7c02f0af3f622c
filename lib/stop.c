/*
 * stop.c - the stop thread: SIGTERM, SIGINT and SIGHUP taken by sigwaitinfo
 * in a thread of their own (see stop.h for why not a handler).
 *
 * Must stay true: the signals are blocked in the thread that called
 * stop_init before any other thread exists, and never unblocked again,
 * so the default action (death in the middle of a teardown) cannot come
 * back; the first signal is recorded before fn runs.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "stop.h"

static int first_signal;	/* atomic */
static int cancels;		/* atomic */
static stop_fn stop_cb;
static void *stop_arg;

static void stop_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

static void *stop_main(void *unused)
{
	sigset_t set;

	(void)unused;
	stop_set(&set);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);

		if (sig < 0)
			continue;	/* EINTR: a signal outside the set */
		stop_request(sig);
		if (stop_cb)
			stop_cb(sig, stop_arg);
	}
	return NULL;
}

int stop_init(stop_fn fn, void *arg)
{
	sigset_t set;
	pthread_t t;
	int rc;

	stop_cb = fn;
	stop_arg = arg;
	stop_set(&set);
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!rc)
		rc = pthread_create(&t, NULL, stop_main, NULL);
	if (rc)
		return err_set(-rc, "cannot start the thread that takes SIGTERM: %s", strerror(rc));
	pthread_detach(t);
	return 0;
}

int stop_requested(void)
{
	return __atomic_load_n(&first_signal, __ATOMIC_ACQUIRE);
}

void stop_request(int sig)
{
	int none = 0;

	__atomic_compare_exchange_n(&first_signal, &none, sig, 0, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
}

void stop_set_cancels(int on)
{
	__atomic_store_n(&cancels, on, __ATOMIC_RELEASE);
}

int stop_cancelled(void)
{
	return __atomic_load_n(&cancels, __ATOMIC_ACQUIRE) ? stop_requested() : 0;
}

void stop_unblock(void)
{
	sigset_t set;

	stop_set(&set);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

const char *stop_signal_name(int sig)
{
	static __thread char other[24];

	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	}
	snprintf(other, sizeof(other), "signal %d", sig);
	return other;
}
