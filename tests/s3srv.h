/*
 * s3srv.h - the S3 server the tests talk to: s3rver (npm) behind cairn's
 * R2-like verifying proxy (tests/s3/server.js), one node process on
 * loopback ports of its own, started per test program and stopped by pid.
 *
 * The node process is started with PR_SET_PDEATHSIG and also exits when its
 * stdin closes, so it never outlives the test, even one that crashes.
 *
 * Control endpoints of the proxy (plain HTTP, unsigned, under /__proxy/):
 *   GET  /__proxy/stats            JSON counters (see tests/s3/README.md)
 *   POST /__proxy/reset            zero the counters, drop the fault rules
 *   POST /__proxy/outage?ms=N      refuse connections for N ms, then serve again
 *   POST /__proxy/fault?...        inject faults into the next requests
 */
#ifndef CAIRN_S3SRV_H
#define CAIRN_S3SRV_H

#include <sys/types.h>

#include "buf.h"
#include "store.h"

/* The credentials and bucket the test server accepts. */
#define S3SRV_ACCESS_KEY "CAIRNTESTACCESSKEY01"
#define S3SRV_SECRET_KEY "cairn/test/secret/key/0123456789abcdefghij"
#define S3SRV_REGION "auto"
#define S3SRV_BUCKET "cairn-test"
/* Virtual-host requests are for BUCKET.S3SRV_VHOST_SUFFIX:PORT. */
#define S3SRV_VHOST_SUFFIX "s3.cairn.test"

struct s3srv {
	pid_t pid;		/* the node process */
	int port;		/* the proxy's port on 127.0.0.1 */
	int backend_port;	/* s3rver's own port (unsigned, unverified) */
	int stdin_fd;		/* closing it makes the server exit */
	char *dir;		/* s3rver's data directory (removed on stop) */
	char endpoint[64];	/* "http://127.0.0.1:PORT" */
};

/* Starts the server; on failure bails out of the test (tap_bail). */
void s3srv_start(struct s3srv *srv);
/* Stops it by pid (SIGTERM, then SIGKILL) and removes its directory. */
void s3srv_stop(struct s3srv *srv);
/* Sends a control request ("POST", "/__proxy/outage?ms=3000"); appends the
 * answer's body to resp when not NULL.  Returns the HTTP status or -1. */
int s3srv_ctl(struct s3srv *srv, const char *method, const char *path, struct buf *resp);
/* Options that reach the server path-style with its credentials. */
void s3srv_store_opts(const struct s3srv *srv, struct store_opts *o);
/* Opens s3://BUCKET/prefix with o; bails out of the test on failure. */
struct store *s3srv_store_open(const char *prefix, const struct store_opts *o);
/* One numeric counter from /__proxy/stats, e.g. "requests", "put.bytes_in";
 * a dotted name walks into objects.  -1 when absent. */
long long s3srv_stat(struct s3srv *srv, const char *name);

#endif
