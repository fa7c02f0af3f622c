/*
 * s3srv.c - starts and stops the node S3 test server (see s3srv.h).
 *
 * The child gets PR_SET_PDEATHSIG and a pipe on its stdin: whichever way
 * the test ends, the server goes with it.  Stopping is by pid, never by name.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "err.h"
#include "s3srv.h"
#include "tap.h"

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

void s3srv_start(struct s3srv *srv)
{
	int in[2], outp[2];
	char *script = xasprintf("%s/tests/s3/server.js", env_or("CAIRN_SRCDIR", "."));
	const char *node = env_or("NODE", "node");
	char line[256];
	FILE *f;
	pid_t pid;

	memset(srv, 0, sizeof(*srv));
	srv->dir = tap_mkdtemp("s3rver");
	if (pipe(in) < 0 || pipe(outp) < 0)
		tap_bail("pipe: %m");
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %m");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(in[0], 0);
		dup2(outp[1], 1);
		close(in[0]);
		close(in[1]);
		close(outp[0]);
		close(outp[1]);
		execlp(node, node, script, "--dir", srv->dir, (char *)NULL);
		fprintf(stderr, "cannot run %s: %m\n", node);
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	srv->pid = pid;
	srv->stdin_fd = in[1];
	f = fdopen(outp[0], "r");
	if (!f || !fgets(line, sizeof(line), f) ||
	    sscanf(line, "READY %d %d", &srv->port, &srv->backend_port) != 2) {
		s3srv_stop(srv);
		tap_bail("the S3 test server (%s %s) did not start; run `npm ci` in tests/ "
			 "(make check does it) and check node", node, script);
	}
	fclose(f);	/* the server prints nothing more on stdout */
	snprintf(srv->endpoint, sizeof(srv->endpoint), "http://127.0.0.1:%d", srv->port);
	free(script);
}

void s3srv_stop(struct s3srv *srv)
{
	if (srv->pid > 0) {
		int status;

		kill(srv->pid, SIGTERM);
		for (int i = 0; i < 50; i++) {
			if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
				srv->pid = 0;
				break;
			}
			usleep(100 * 1000);
		}
		if (srv->pid > 0) {
			kill(srv->pid, SIGKILL);
			waitpid(srv->pid, &status, 0);
			srv->pid = 0;
		}
	}
	if (srv->stdin_fd > 0) {
		close(srv->stdin_fd);
		srv->stdin_fd = -1;
	}
	if (srv->dir) {
		tap_rmtree(srv->dir);
		free(srv->dir);
		srv->dir = NULL;
	}
}

void s3srv_store_opts(const struct s3srv *srv, struct store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->endpoint = srv->endpoint;
	o->region = S3SRV_REGION;
	o->access_key = S3SRV_ACCESS_KEY;
	o->secret_key = S3SRV_SECRET_KEY;
	o->addressing = STORE_PATH_STYLE;
}

struct store *s3srv_store_open(const char *prefix, const struct store_opts *o)
{
	struct store *s = NULL;
	char *url = xasprintf("s3://%s/%s", S3SRV_BUCKET, prefix);

	if (store_open(url, o, &s))
		tap_bail("cannot open %s: %s", url, err_msg());
	free(url);
	return s;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
	buf_add(arg, ptr, size * nmemb);
	return size * nmemb;
}

int s3srv_ctl(struct s3srv *srv, const char *method, const char *path, struct buf *resp)
{
	CURL *c = curl_easy_init();
	struct buf sink = BUF_INIT;
	char *url = xasprintf("%s%s", srv->endpoint, path);
	long status = -1;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp ? resp : &sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	buf_free(&sink);
	free(url);
	return (int)status;
}

long long s3srv_stat(struct s3srv *srv, const char *name)
{
	struct buf body = BUF_INIT;
	json_t *root, *node;
	char *path, *part, *save = NULL;
	long long v = -1;

	if (s3srv_ctl(srv, "GET", "/__proxy/stats", &body) != 200) {
		buf_free(&body);
		return -1;
	}
	root = json_loads(buf_str(&body), 0, NULL);
	buf_free(&body);
	node = root;
	path = xstrdup(name);
	for (part = strtok_r(path, ".", &save); node && part; part = strtok_r(NULL, ".", &save))
		node = json_object_get(node, part);
	if (node && json_is_integer(node))
		v = json_integer_value(node);
	free(path);
	json_decref(root);
	return v;
}
