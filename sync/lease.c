/*
 * lease.c - one writer per workspace: the lease object and its renewal.
 *
 * The holder is (host id, boot id, pid, nonce).  The lease is taken with a
 * conditional put (If-None-Match when absent, If-Match on the ETag read
 * otherwise) and renewed every TTL/3 by a thread of its own with If-Match
 * on the ETag of its last write, so two writers can never both believe they
 * hold it.  A lease of this host whose pid is dead (or of an earlier boot)
 * is taken over at once; another host's unexpired lease is refused with the
 * holder named, unless --force.  Losing the lease (an If-Match that fails,
 * or renewals that fail past the expiry) is sticky: repo_lease_check
 * reports it and the head write that would follow is refused.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "repo.h"

#define LEASE_TTL_DEFAULT 60

struct repo_lease {
	struct repo *r;
	struct record_lease me;
	char etag[STORE_ETAG_MAX];	/* of our last write; under lock */
	uint64_t ttl_ns;
	pthread_t renewer;
	pthread_mutex_t lock;		/* guards etag, me.expires_ns, stop, lost */
	pthread_cond_t wake;
	int stop;
	int lost;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

static void holder_identity(struct record_lease *l, const char *program)
{
	const char *host = getenv("CAIRN_HOST_ID");

	memset(l, 0, sizeof(*l));
	if (host && *host)
		snprintf(l->host, sizeof(l->host), "%s", host);
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

/* The lease's time to live: CAIRN_LEASE_TTL seconds (1 .. 1 day), or the
 * default.  0, or -EINVAL for a value that is not such a number. */
static int lease_ttl(uint64_t *ns)
{
	const char *v = getenv("CAIRN_LEASE_TTL");
	char *end = NULL;
	long s = v && *v ? strtol(v, &end, 10) : LEASE_TTL_DEFAULT;

	if (v && *v && (*end || s < 1 || s > 86400))
		return err_set(-EINVAL, "CAIRN_LEASE_TTL='%s' is not a number of seconds from 1 to 86400", v);
	*ns = (uint64_t)s * 1000000000ull;
	return 0;
}

static uint64_t lease_ttl_ns(void)
{
	uint64_t ns = (uint64_t)LEASE_TTL_DEFAULT * 1000000000ull;

	lease_ttl(&ns);		/* checked when the lease was taken */
	err_clear();
	return ns;
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

/* Why the lease cur may not be taken, or 0 when it may. */
static int lease_refusal(const struct repo *r, const struct record_lease *cur,
			 const struct record_lease *me)
{
	uint64_t now = now_ns();
	time_t until = (time_t)(cur->expires_ns / 1000000000ull);
	char when[64];

	if (cur->expires_ns <= now)
		return 0;	/* expired or released */
	if (!strcmp(cur->host, me->host) && !strcmp(cur->boot, me->boot)) {
		if (!pid_alive(cur->pid) || cur->pid == me->pid)
			return 0;	/* a dead process of this host */
		if (r->force)
			return 0;
		return err_set(-EBUSY, "workspace %s is in use on this host by pid %" PRIu32 " (%s): stop it first, or use --force",
			       r->ws_id, cur->pid, cur->program[0] ? cur->program : "cairn");
	}
	if (r->force)
		return 0;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&until));
	return err_set(-EBUSY, "workspace %s is in use by host %s (pid %" PRIu32 ", %s) until %s unless it renews: wait, or use --force if that machine is gone",
		       r->ws_id, cur->host, cur->pid, cur->program[0] ? cur->program : "cairn", when);
}

static void *lease_renewer(void *arg)
{
	struct repo_lease *l = arg;
	struct timespec deadline;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		uint64_t at = now_ns() + l->ttl_ns / 3;
		struct record_lease next = l->me;
		char etag[STORE_ETAG_MAX];
		int rc;

		deadline.tv_sec = (time_t)(at / 1000000000ull);
		deadline.tv_nsec = (long)(at % 1000000000ull);
		while (!l->stop && pthread_cond_timedwait(&l->wake, &l->lock, &deadline) == 0)
			;
		if (l->stop || l->lost)
			break;
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
			log_error("lost the lease of workspace %s: %s", l->r->ws_id, err_msg());
		} else {
			log_warn("cannot renew the lease of workspace %s (will retry): %s",
				 l->r->ws_id, err_msg());
		}
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static int lease_take(struct repo *r, struct record_lease *me, char *etag)
{
	for (int tries = 0; tries < 5; tries++) {
		struct buf plain = BUF_INIT;
		struct store_info info;
		struct record_lease cur;
		int rc = repo_get_sealed(r, KEYS_OBJ_LEASE, "lease", &plain, &info);

		me->acquired_ns = now_ns();
		me->expires_ns = me->acquired_ns + lease_ttl_ns();
		if (rc == -ENOENT) {
			buf_free(&plain);
			rc = lease_write(r, me, STORE_IF_NONE_MATCH, NULL, etag);
			if (rc != -EEXIST)
				return rc;
			continue;	/* someone was quicker: look again */
		}
		if (!rc)
			rc = record_lease_decode(plain.data, plain.len, &cur);
		buf_free(&plain);
		if (!rc)
			rc = lease_refusal(r, &cur, me);
		if (rc)
			return rc;
		rc = lease_write(r, me, STORE_IF_MATCH, info.etag, etag);
		if (rc != -ECANCELED)
			return rc;
	}
	return err_set(-EBUSY, "workspace %s: the lease keeps changing hands; try again", r->ws_id);
}

int repo_lease_acquire_as(struct repo *r, const char *program)
{
	struct repo_lease *l;
	int rc;

	if (r->lease)
		return 0;
	rc = lease_ttl(&(uint64_t){ 0 });
	if (rc)
		return err_prefix(rc, "cannot take the lease");
	l = xcalloc(1, sizeof(*l));
	l->r = r;
	l->ttl_ns = lease_ttl_ns();
	holder_identity(&l->me, program);
	rc = lease_take(r, &l->me, l->etag);
	if (rc) {
		free(l);
		return err_prefix(rc, "cannot take the lease");
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);
	pthread_create(&l->renewer, NULL, lease_renewer, l);
	r->lease = l;
	return 0;
}

int repo_lease_acquire(struct repo *r)
{
	return repo_lease_acquire_as(r, "cairn");
}

int repo_lease_check(struct repo *r)
{
	struct repo_lease *l = r->lease;
	int lost;

	if (!l)
		return err_set(-ECANCELED, "workspace %s: this process does not hold the lease", r->ws_id);
	pthread_mutex_lock(&l->lock);
	lost = l->lost || now_ns() >= l->me.expires_ns;
	pthread_mutex_unlock(&l->lock);
	return lost ? err_set(-ECANCELED, "workspace %s: the lease was lost (another writer took over, or the store was unreachable past its expiry)",
			      r->ws_id) : 0;
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
	}
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->wake);
	free(l);
	r->lease = NULL;
}
