/*
 * lease.c - one writer per workspace: the lease object and its renewal.
 *
 * The holder is (host id, boot id, pid, nonce).  The lease is taken with a
 * conditional put (If-None-Match when absent, If-Match on the ETag read
 * otherwise) and renewed every TTL/3 by a thread of its own with If-Match
 * on the ETag of its last write, so two writers can never both believe they
 * hold it.  It may be taken when it was released (expires == acquired),
 * when it expired more than LEASE_MARGIN ago (the margin covers clock
 * skew between machines), when its holder is a dead process of this host,
 * when its host is the one named by takeover_from (a machine the platform
 * knows is gone), or with --force.  Otherwise repo_lease_acquire refuses
 * with the holder named, and repo_lease_acquire_wait waits, reading the
 * lease every LEASE_POLL seconds, until one of those holds: a lost
 * machine's lease is waited out, a stopping one's release is seen at once.
 *
 * Losing the lease (an If-Match that fails, or renewals that fail past the
 * expiry) makes it lost: repo_lease_check reports it and the head write
 * that would follow is refused.  A lost lease is taken back by the renewer
 * when it may be taken again (above) and the holder's may_retake says the
 * workspace has not moved meanwhile; it stays lost otherwise.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "record.h"
#include "repo.h"
#include "stop.h"

#define NS 1000000000ull
#define LEASE_TTL_DEFAULT 30		/* seconds; see docs/operations.md for the trade */
#define LEASE_MARGIN (5 * NS)		/* past an expiry: clock skew between machines */
#define LEASE_POLL (2 * NS)		/* a waiting mount reads the lease this often */

/* Leases this process holds or is taking (atomic): a stop signal with
 * none can end the process at once. */
static int leases_held;

struct repo_lease {
	struct repo *r;
	struct record_lease me;
	char etag[STORE_ETAG_MAX];	/* of our last write; under lock */
	uint64_t ttl_ns;
	pthread_t renewer;
	pthread_mutex_t lock;		/* guards etag, me.expires_ns, stop, lost,
					 * lost_ns, why, retakes */
	pthread_mutex_t write_lock;	/* one lease write at a time (renewer,
					 * confirm, retake), taken before lock */
	pthread_cond_t wake;
	int stop;
	int lost;
	uint64_t lost_ns;		/* unix ns when it was lost */
	char why[256];			/* why it was lost */
	unsigned retakes;
	int (*may_retake)(struct repo *r, void *arg);
	void *retake_arg;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* Reads the first line of a file into out, trimmed. */
static void read_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");

	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)size, f))
			out[strcspn(out, "\r\n")] = '\0';
		fclose(f);
	}
}

static void holder_identity(const struct repo *r, struct record_lease *l, const char *program)
{
	memset(l, 0, sizeof(*l));
	if (r->host_id && *r->host_id)
		snprintf(l->host, sizeof(l->host), "%s", r->host_id);
	else
		read_line("/etc/machine-id", l->host, sizeof(l->host));
	if (!l->host[0])
		gethostname(l->host, sizeof(l->host) - 1);
	read_line("/proc/sys/kernel/random/boot_id", l->boot, sizeof(l->boot));
	if (!l->boot[0])
		snprintf(l->boot, sizeof(l->boot), "unknown");
	l->pid = (uint32_t)getpid();
	record_id_new(l->nonce);
	snprintf(l->program, sizeof(l->program), "%s", program);
}

/* The lease's time to live: lease_ttl (cairn.conf) or CAIRN_LEASE_TTL, in
 * seconds (2 .. 1 day), or the default.  0, or -EINVAL for a value that is
 * not such a number. */
static int lease_ttl(const struct repo *r, uint64_t *ns)
{
	const char *v = r->lease_ttl && *r->lease_ttl ? r->lease_ttl : getenv("CAIRN_LEASE_TTL");
	long s = LEASE_TTL_DEFAULT;

	if (v && *v && (conf_parse_duration(v, &s) || s < 2 || s > 86400))
		return err_set(-EINVAL, "lease TTL '%s' (lease_ttl, CAIRN_LEASE_TTL) is not a duration from 2s to 1d", v);
	*ns = (uint64_t)s * NS;
	return 0;
}

static int lease_write(struct repo *r, const struct record_lease *l, enum store_cond cond,
		       const char *etag, char *etag_out)
{
	struct buf plain = BUF_INIT;
	struct store_info info;
	int rc = record_lease_encode(l, &plain);

	if (!rc)
		rc = repo_put_sealed(r, KEYS_OBJ_LEASE, "lease", plain.data, plain.len, cond, etag, &info);
	if (!rc)
		snprintf(etag_out, STORE_ETAG_MAX, "%s", info.etag);
	buf_free(&plain);
	return rc;
}

/* Reads the lease: 0 with *cur and its etag, -ENOENT when there is none. */
static int lease_read(struct repo *r, struct record_lease *cur, char *etag)
{
	struct buf plain = BUF_INIT;
	struct store_info info;
	int rc = repo_get_sealed(r, KEYS_OBJ_LEASE, "lease", &plain, &info);

	if (!rc)
		rc = record_lease_decode(plain.data, plain.len, cur);
	if (!rc)
		snprintf(etag, STORE_ETAG_MAX, "%s", info.etag);
	buf_free(&plain);
	return rc;
}

/* A zombie is dead: a killed daemon whose parent has not reaped it yet
 * must not keep its lease. */
static int pid_alive(uint32_t pid)
{
	char path[32], stat[256];
	const char *p;
	int fd;
	ssize_t n;

	if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	stat[n] = '\0';
	p = strrchr(stat, ')');		/* "pid (comm) S ...", comm may hold ')' */
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static const char *holder_program(const struct record_lease *l)
{
	return l->program[0] ? l->program : "cairn";
}

/* Why the lease cur may not be taken, or 0 when it may: -EBUSY with the
 * error set.  *elsewhere: the holder is another machine, which a wait may
 * outlast (a live process of this host it does not). */
static int lease_refusal(const struct repo *r, const struct record_lease *cur,
			 const struct record_lease *me, int *elsewhere)
{
	uint64_t now = now_ns();
	time_t until = (time_t)((cur->expires_ns + LEASE_MARGIN) / NS);
	char when[64];

	*elsewhere = 0;
	if (cur->expires_ns == cur->acquired_ns || cur->expires_ns + LEASE_MARGIN <= now)
		return 0;	/* released, or expired */
	if (!strcmp(cur->host, me->host)) {
		if (strcmp(cur->boot, me->boot) || !pid_alive(cur->pid) || cur->pid == me->pid)
			return 0;	/* a dead process of this host, or an earlier boot */
		if (r->force)
			return 0;
		return err_set(-EBUSY, "workspace %s is in use on this host by pid %" PRIu32 " (%s): stop it first, or use --force",
			       r->ws_id, cur->pid, holder_program(cur));
	}
	if (r->force)
		return 0;
	if (r->takeover_from && !strcmp(r->takeover_from, cur->host)) {
		log_warn("taking over the lease of workspace %s from host %s (pid %" PRIu32 ", %s): takeover_from names it as gone",
			 r->ws_id, cur->host, cur->pid, holder_program(cur));
		return 0;
	}
	*elsewhere = 1;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&until));
	return err_set(-EBUSY, "workspace %s is in use by host %s (pid %" PRIu32 ", %s) until %s unless it renews: wait, or if that machine is gone, set takeover_from = %s (or use --force)",
		       r->ws_id, cur->host, cur->pid, holder_program(cur), when, cur->host);
}

/* Takes a lost lease back when it may be taken again and the holder's
 * may_retake agrees; or finds it is ours after all (a renewal that landed
 * although its answer was lost).  Called without the lock. */
static void lease_retake(struct repo_lease *l)
{
	struct repo *r = l->r;
	struct record_lease cur, next;
	char etag[STORE_ETAG_MAX];
	int rc = lease_read(r, &cur, etag);

	pthread_mutex_lock(&l->lock);
	next = l->me;
	pthread_mutex_unlock(&l->lock);
	next.expires_ns = now_ns() + l->ttl_ns;
	if (rc == 0 && record_lease_same_holder(&cur, &next)) {
		rc = lease_write(r, &next, STORE_IF_MATCH, etag, etag);
	} else if (rc == 0 || rc == -ENOENT) {
		int elsewhere, refused = rc == 0 ? lease_refusal(r, &cur, &next, &elsewhere) : 0;

		if (refused || !l->may_retake || !l->may_retake(r, l->retake_arg)) {
			err_clear();
			return;
		}
		rc = rc == 0 ? lease_write(r, &next, STORE_IF_MATCH, etag, etag) :
			       lease_write(r, &next, STORE_IF_NONE_MATCH, NULL, etag);
	}
	if (rc) {
		err_clear();
		return;
	}
	pthread_mutex_lock(&l->lock);
	memcpy(l->etag, etag, sizeof(etag));
	l->me.expires_ns = next.expires_ns;
	l->lost = 0;
	l->retakes++;
	pthread_mutex_unlock(&l->lock);
	log_warn("took the lease of workspace %s back: its work is saved again", r->ws_id);
}

/* One renewal written now, with If-Match on our last write (one lease
 * write at a time), its outcome applied: 0; -ECANCELED, or any failure
 * past the expiry, makes the lease lost; another code leaves it as it
 * was (the caller may try again). */
static int lease_renew(struct repo_lease *l)
{
	struct record_lease next;
	char etag[STORE_ETAG_MAX];
	int rc;

	pthread_mutex_lock(&l->write_lock);
	pthread_mutex_lock(&l->lock);
	next = l->me;
	next.expires_ns = now_ns() + l->ttl_ns;
	memcpy(etag, l->etag, sizeof(etag));
	pthread_mutex_unlock(&l->lock);
	rc = lease_write(l->r, &next, STORE_IF_MATCH, etag, etag);
	pthread_mutex_lock(&l->lock);
	if (rc == 0) {
		memcpy(l->etag, etag, sizeof(etag));
		l->me.expires_ns = next.expires_ns;
	} else if (rc == -ECANCELED || now_ns() >= l->me.expires_ns) {
		l->lost = 1;
		l->lost_ns = now_ns();
		snprintf(l->why, sizeof(l->why), "%s", err_msg());
		log_error("lost the lease of workspace %s: %s; until it is taken back, its changes stay in the local cache and no snapshot can be committed",
			  l->r->ws_id, l->why);
	}
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_unlock(&l->write_lock);
	return rc;
}

static void *lease_renewer(void *arg)
{
	struct repo_lease *l = arg;
	struct timespec deadline;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		uint64_t at = now_ns() + (l->lost ? LEASE_POLL : l->ttl_ns / 3);
		int lost, rc;

		deadline.tv_sec = (time_t)(at / NS);
		deadline.tv_nsec = (long)(at % NS);
		while (!l->stop && pthread_cond_timedwait(&l->wake, &l->lock, &deadline) == 0)
			;
		if (l->stop)
			break;
		lost = l->lost;
		pthread_mutex_unlock(&l->lock);
		rc = 0;
		if (lost) {
			pthread_mutex_lock(&l->write_lock);
			lease_retake(l);
			pthread_mutex_unlock(&l->write_lock);
		} else {
			rc = lease_renew(l);
		}
		pthread_mutex_lock(&l->lock);
		if (rc && !l->lost)
			log_warn("cannot renew the lease of workspace %s (will retry): %s",
				 l->r->ws_id, err_msg());
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* Sleeps up to ns, in steps, until a stop is asked for; 1 when it was. */
static int sleep_unless_stopped(uint64_t ns)
{
	uint64_t end = mono_now_ns() + ns;

	while (!stop_requested()) {
		uint64_t now = mono_now_ns(), step = 100000000ull;

		if (now >= end)
			return 0;
		if (end - now < step)
			step = end - now;
		nanosleep(&(struct timespec){ .tv_sec = 0, .tv_nsec = (long)step }, NULL);
	}
	return 1;
}

static int lease_take(struct repo *r, struct record_lease *me, char *etag,
		      const struct repo_lease_wait *w, uint64_t ttl_ns)
{
	uint64_t start = mono_now_ns();
	char seen[RECORD_ID_SIZE] = "";
	int races = 0, rc;

	for (;;) {
		struct record_lease cur;
		char cur_etag[STORE_ETAG_MAX];
		int elsewhere = 0;

		rc = lease_read(r, &cur, cur_etag);

		me->acquired_ns = now_ns();
		me->expires_ns = me->acquired_ns + ttl_ns;
		if (rc == -ENOENT) {
			rc = lease_write(r, me, STORE_IF_NONE_MATCH, NULL, etag);
			if (rc != -EEXIST)
				break;
		} else if (rc) {
			break;
		} else if ((rc = lease_refusal(r, &cur, me, &elsewhere)) == 0) {
			rc = lease_write(r, me, STORE_IF_MATCH, cur_etag, etag);
			if (rc != -ECANCELED)
				break;
		} else if (elsewhere && w && w->seconds != 0) {
			double waited = (double)(mono_now_ns() - start) / NS;

			if (w->seconds > 0 && waited >= w->seconds)
				return err_prefix(rc, "waited %.0f s", waited);
			if (strcmp(seen, cur.nonce)) {
				time_t until = (time_t)((cur.expires_ns + LEASE_MARGIN) / NS);
				char when[64], *line;

				strftime(when, sizeof(when), "%H:%M:%S UTC", gmtime(&until));
				line = xasprintf("workspace %s is held by host %s (pid %" PRIu32 ", %s): waiting for it to be released, or to expire at %s if that machine is gone",
						 r->ws_id, cur.host, cur.pid, holder_program(&cur), when);
				log_warn("%s", line);
				if (w->waiting)
					w->waiting(line, w->waiting_arg);
				free(line);
				memcpy(seen, cur.nonce, sizeof(seen));
			}
			err_clear();
			if (sleep_unless_stopped(LEASE_POLL))
				return err_set(-EINTR, "stopped by %s while waiting for the lease of workspace %s",
					       stop_signal_name(stop_requested()), r->ws_id);
			continue;
		} else {
			break;
		}
		/* someone was quicker: look again, after a short pause */
		if (++races > 20)
			return err_set(-EBUSY, "workspace %s: the lease keeps changing hands; try again", r->ws_id);
		if (sleep_unless_stopped((uint64_t)(50 + randombytes_uniform(200)) * 1000000ull))
			return err_set(-EINTR, "stopped by %s while taking the lease of workspace %s",
				       stop_signal_name(stop_requested()), r->ws_id);
	}
	if (w && w->waiting && seen[0])
		w->waiting(NULL, w->waiting_arg);
	return rc;
}

int repo_lease_wait_parse(const char *s, double *seconds)
{
	long secs;

	if (!strcmp(s, "forever")) {
		*seconds = -1;
		return 0;
	}
	if (conf_parse_duration(s, &secs))
		return err_set(-EINVAL, "lease wait '%s' (lease_wait, CAIRN_LEASE_WAIT) is not a duration or 'forever' (e.g. 5m)", s);
	*seconds = (double)secs;
	return 0;
}

int repo_lease_acquire_wait(struct repo *r, const char *program, const struct repo_lease_wait *w)
{
	struct repo_lease *l;
	uint64_t ttl_ns = 0;
	int rc;

	if (r->lease)
		return 0;
	rc = lease_ttl(r, &ttl_ns);
	if (rc)
		return err_prefix(rc, "cannot take the lease");
	l = xcalloc(1, sizeof(*l));
	l->r = r;
	l->ttl_ns = ttl_ns;
	holder_identity(r, &l->me, program);
	__atomic_add_fetch(&leases_held, 1, __ATOMIC_ACQ_REL);
	rc = lease_take(r, &l->me, l->etag, w, ttl_ns);
	if (rc) {
		__atomic_sub_fetch(&leases_held, 1, __ATOMIC_ACQ_REL);
		free(l);
		return err_prefix(rc, "cannot take the lease");
	}
	if (w) {
		l->may_retake = w->may_retake;
		l->retake_arg = w->retake_arg;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->write_lock, NULL);
	pthread_cond_init(&l->wake, NULL);
	pthread_create(&l->renewer, NULL, lease_renewer, l);
	r->lease = l;
	return 0;
}

int repo_lease_acquire_as(struct repo *r, const char *program)
{
	return repo_lease_acquire_wait(r, program, NULL);
}

int repo_lease_acquire(struct repo *r)
{
	return repo_lease_acquire_as(r, "cairn");
}

int repo_leases_held(void)
{
	return __atomic_load_n(&leases_held, __ATOMIC_ACQUIRE);
}

int repo_stop_check(struct repo *r)
{
	int sig = stop_cancelled();

	return sig ? err_set(-EINTR, "workspace %s: interrupted by %s: nothing more is committed, and the lease is released",
			     r->ws_id, stop_signal_name(sig)) : 0;
}

int repo_lease_check(struct repo *r)
{
	struct repo_lease *l = r->lease;
	int lost;

	if (repo_stop_check(r))
		return -EINTR;
	if (!l)
		return err_set(-ECANCELED, "workspace %s: this process does not hold the lease", r->ws_id);
	pthread_mutex_lock(&l->lock);
	lost = l->lost || now_ns() >= l->me.expires_ns;
	pthread_mutex_unlock(&l->lock);
	return lost ? err_set(-ECANCELED, "workspace %s: the lease was lost (another writer took over, or the store was unreachable past its expiry)",
			      r->ws_id) : 0;
}

int repo_lease_confirm(struct repo *r)
{
	int rc = repo_lease_check(r);

	if (rc)
		return rc;
	/* the store says whether we still hold it, not our clock */
	rc = lease_renew(r->lease);
	if (rc == -ECANCELED)
		return err_set(-ECANCELED, "workspace %s: the lease was taken over by another writer: nothing is deleted",
			       r->ws_id);
	return rc ? err_prefix(rc, "workspace %s: cannot confirm the lease before deleting", r->ws_id) : 0;
}

int repo_lease_status(struct repo *r, struct repo_lease_status *st)
{
	struct repo_lease *l = r->lease;

	memset(st, 0, sizeof(*st));
	if (!l)
		return -ENOENT;
	pthread_mutex_lock(&l->lock);
	st->lost = l->lost || now_ns() >= l->me.expires_ns;
	st->expires_ns = l->me.expires_ns;
	st->lost_ns = l->lost ? l->lost_ns : 0;
	st->retakes = l->retakes;
	snprintf(st->why, sizeof(st->why), "%s",
		 l->lost ? l->why : st->lost ? "not renewed before its expiry (the store is unreachable)" : "");
	snprintf(st->host, sizeof(st->host), "%s", l->me.host);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

void repo_lease_release(struct repo *r)
{
	struct repo_lease *l = r->lease;
	char etag[STORE_ETAG_MAX];

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = 1;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->renewer, NULL);
	if (!l->lost) {
		/* released = expired now; the next writer takes it at once */
		l->me.expires_ns = l->me.acquired_ns;
		if (lease_write(r, &l->me, STORE_IF_MATCH, l->etag, etag))
			log_warn("cannot release the lease of workspace %s: %s", r->ws_id, err_msg());
		else
			log_info("released the lease of workspace %s", r->ws_id);
	}
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->write_lock);
	pthread_cond_destroy(&l->wake);
	free(l);
	r->lease = NULL;
	__atomic_sub_fetch(&leases_held, 1, __ATOMIC_ACQ_REL);
}
