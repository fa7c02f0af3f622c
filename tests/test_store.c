/*
 * test_store.c - the file:// store: the shared conformance suite plus what
 * is particular to a directory (crash leftovers, processes racing, URLs).
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "store_suite.h"
#include "tap.h"

static int count_tmp_key(const char *key, uint64_t size, void *arg)
{
	(void)size;
	*(int *)arg += strstr(key, ".cairn-tmp") != NULL || strstr(key, "put-crashed") != NULL;
	return 0;
}

static void check_urls(const char *dir)
{
	struct store *s = NULL;
	char *url;

	is_int(store_open("file://relative/dir", NULL, &s), -EINVAL,
	       "a relative file:// URL is refused");
	ok(strstr(err_msg(), "absolute path") != NULL, "and the message says why: %s", err_msg());
	is_int(store_open("ftp://host/x", NULL, &s), -EINVAL, "an unknown scheme is refused");
	ok(strstr(err_msg(), "file:///DIR or s3://") != NULL, "and the message names the schemes");
	url = xasprintf("file://%s/store-file-not-dir", dir);
	close(open(url + 7, O_CREAT | O_WRONLY, 0600));
	ok(store_open(url, NULL, &s) < 0, "a file:// URL naming a plain file is refused");
	free(url);
	url = xasprintf("file://%s/fresh/", dir);
	is_int(store_open(url, NULL, &s), -ENOENT, "opening a store that does not exist is -ENOENT");
	ok(strstr(err_msg(), "does not exist") != NULL, "and says so: %s", err_msg());
	ok(access(url + 7, F_OK) < 0, "and makes nothing");
	is_int(store_open(url, &(struct store_opts){ .create = 1 }, &s), 0,
	       "opened to be made (init), it creates its directory");
	ok(access(url + 7, F_OK) == 0, "which is there");
	store_close(s);
	free(url);
	url = xasprintf("file://%s/no/such/parent", dir);
	ok(store_open(url, &(struct store_opts){ .create = 1 }, &s) < 0 && strstr(err_msg(), "/no/such/parent"),
	   "a store whose parent is missing is refused, naming the path: %s", err_msg());
	free(url);
}

static void check_crash_leftovers(struct store *s, const char *dir)
{
	char *tmp = xasprintf("%s/.cairn-tmp/put-crashed", dir);
	char *url = xasprintf("file://%s", dir);
	struct store *again = NULL;
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	int n = 0, fd;

	fd = open(tmp, O_CREAT | O_WRONLY, 0600);
	ok(fd >= 0 && write(fd, "half", 4) == 4, "a half-written temp file, as a crash leaves it");
	close(fd);
	store_list(s, "", count_tmp_key, &n);
	is_int(n, 0, "temp files never show in a listing");
	utimensat(AT_FDCWD, tmp, old, 0);
	is_int(store_open(url, NULL, &again), 0, "reopen the store");
	ok(access(tmp, F_OK) < 0, "opening the store removes stale temp files");
	store_close(again);
	free(tmp);
	free(url);
}

/* Several processes increment one counter with compare-and-swap. */
static void check_process_race(const char *url)
{
	enum { PROCS = 3, INCR = 20 };
	struct store *s;
	pid_t pids[PROCS];
	struct buf got = BUF_INIT;
	int failed = 0;

	store_open(url, NULL, &s);
	store_put(s, "race/counter", "0", 1, STORE_ALWAYS, NULL, NULL);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			struct store *child;
			int done = 0;

			if (store_open(url, NULL, &child))
				_exit(2);
			while (done < INCR) {
				struct store_info info;
				char next[32];

				buf_reset(&got);
				if (store_get(child, "race/counter", 0, STORE_TO_END, &got, &info))
					_exit(3);
				snprintf(next, sizeof(next), "%ld", strtol(buf_str(&got), NULL, 10) + 1);
				int rc = store_put(child, "race/counter", next, strlen(next),
						   STORE_IF_MATCH, info.etag, NULL);
				if (rc == 0)
					done++;
				else if (rc != -ECANCELED)
					_exit(4);
			}
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int st;

		waitpid(pids[p], &st, 0);
		failed |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	ok(!failed, "%d processes ran their compare-and-swap loops without error", PROCS);
	buf_reset(&got);
	store_get(s, "race/counter", 0, STORE_TO_END, &got, NULL);
	is_int(strtol(buf_str(&got), NULL, 10), PROCS * INCR,
	       "%d processes x %d compare-and-swap increments lose none", PROCS, INCR);
	buf_free(&got);
	store_close(s);
}

static void check_durable_layout(struct store *s, const char *dir)
{
	char *path = xasprintf("%s/keys/abc.def", dir);
	struct stat st;

	store_put(s, "keys/abc.def", "wrapped", 7, STORE_ALWAYS, NULL, NULL);
	ok(stat(path, &st) == 0 && st.st_size == 7, "an object is a plain file under the store dir");
	ok((st.st_mode & 077) == 0, "objects are not readable by others (mode %o)", st.st_mode & 0777);
	free(path);
}

int main(void)
{
	char *dir = tap_mkdtemp("store");
	char *url = xasprintf("file://%s/store", dir);
	struct store *s = NULL;
	int rc;

	rc = store_open(url, &(struct store_opts){ .create = 1 }, &s);
	is_int(rc, 0, "open %s %s", url, rc ? err_msg() : "");
	if (rc)
		tap_bail("cannot open the file store");
	store_suite_run(s, "file");
	check_durable_layout(s, strchr(url + 7, '/'));
	check_crash_leftovers(s, url + 7);
	check_process_race(url);
	check_urls(dir);
	store_close(s);
	tap_rmtree(dir);
	free(url);
	free(dir);
	return tap_done();
}
