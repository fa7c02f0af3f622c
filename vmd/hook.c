/*
 * hook.c - the idle report (docs/control-plane.md): a JSON object handed
 * to the idle hook command on its stdin and POSTed to the control plane's
 * /v1/idle with the bearer token of [control-plane] token_file, over TLS
 * verified against ca_file (or the system's CAs).
 *
 * Both run in a child of cairnd, which may wait on the network for as
 * long as it likes; cairnd learns the outcome from its exit status.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cairnd.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "proc.h"

#define POST_SECONDS 30L

static char *iso_time(double t)
{
	time_t s = (time_t)t;
	struct tm tm;
	char out[32];

	gmtime_r(&s, &tm);
	strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(out);
}

/* The bearer token: the first line of the file, which must not be
 * readable by others.  NULL with the error set. */
static char *read_token(const char *path)
{
	char data[4096];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		err_set(-errno, "control-plane token file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		close(fd);
		err_set(-EPERM, "control-plane token file %s is readable by others: chmod 600 it", path);
		return NULL;
	}
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n <= 0) {
		err_set(-EINVAL, "control-plane token file %s is empty", path);
		return NULL;
	}
	data[n] = '\0';
	data[strcspn(data, "\r\n")] = '\0';
	return xstrdup(data);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* POSTs body to URL/v1/idle.  0, or 1 with the reason on stderr. */
static int post(const struct vconf *c, const char *body)
{
	char *token = read_token(c->cp_token_file), *url, *auth;
	struct curl_slist *h = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	long status = 0;
	size_t ul;
	CURLcode cc;
	CURL *curl;

	if (!token) {
		fprintf(stderr, "cairnd: idle report: %s\n", err_msg());
		return 1;
	}
	ul = strlen(c->cp_url);
	url = xasprintf("%.*s/v1/idle", (int)(ul && c->cp_url[ul - 1] == '/' ? ul - 1 : ul), c->cp_url);
	auth = xasprintf("Authorization: Bearer %s", token);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	curl = curl_easy_init();
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, POST_SECONDS);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (c->cp_ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->cp_ca_file);
	cc = curl_easy_perform(curl);
	if (cc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	curl_slist_free_all(h);
	memset(auth, 0, strlen(auth));
	memset(token, 0, strlen(token));
	free(auth);
	free(token);
	if (cc != CURLE_OK) {
		fprintf(stderr, "cairnd: idle report to %s: %s\n", url, cerr[0] ? cerr : curl_easy_strerror(cc));
		free(url);
		return 1;
	}
	if (status < 200 || status > 299) {
		fprintf(stderr, "cairnd: idle report to %s: HTTP %ld\n", url, status);
		free(url);
		return 1;
	}
	free(url);
	return 0;
}

/* Runs the hook command with body on its stdin.  0 or 1. */
static int run_hook(const char *cmd, const char *body, const char *ws_name)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct vmd_spawn s = { .argv = argv };
	int p[2], st;
	pid_t pid;

	setenv("CAIRN_WORKSPACE_NAME", ws_name, 1);
	if (pipe(p))
		return 1;
	s.in_fd = p[0];
	pid = vmd_spawn(&s);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	if (pid > 0)
		fsu_write_all(p[1], body, strlen(body));
	close(p[1]);
	if (pid < 0)
		return 1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "cairnd: idle hook `%s` failed (status %d)\n", cmd,
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return 1;
	}
	return 0;
}

pid_t hook_report(struct vmd_ws *w, double idle_since_wall)
{
	struct vmd *d = w->d;
	char *since = iso_time(idle_since_wall), *body;
	json_t *j = json_pack("{s:s, s:s, s:s, s:f}", "event", "idle", "workspace", w->c->name,
			      "idle_since", since, "idle_seconds", vmd_wall() - idle_since_wall);
	pid_t pid;

	free(since);
	json_object_set_new(j, "workspace_id", w->ws_id ? json_string(w->ws_id) : json_null());
	json_object_set_new(j, "snapshot", w->last_snapshot ? json_string(w->last_snapshot) : json_null());
	json_object_set_new(j, "generation", w->generation >= 0 ? json_integer(w->generation) : json_null());
	body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	log_info("workspace %s: idle since %.0f s: reporting", w->c->name, vmd_wall() - idle_since_wall);
	pid = fork();
	if (pid < 0) {
		free(body);
		return err_set(-errno, "cannot fork: %s", strerror(errno));
	}
	if (pid == 0) {
		sigset_t none;
		int rc = 0;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		if (d->conf.idle_hook)
			rc |= run_hook(d->conf.idle_hook, body, w->c->name);
		if (d->conf.cp_url)
			rc |= post(&d->conf, body);
		_exit(rc);
	}
	free(body);
	return pid;
}
