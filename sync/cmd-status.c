/*
 * cmd-status.c - `cairn status [--mount MOUNTPOINT] [--json | --prometheus |
 * --textfile FILE]`: what a mounted workspace is doing, from its cairnfs's
 * control socket: the last snapshot and its age, local changes not in a
 * snapshot yet, how much is local (hydration), the cache, and the store's
 * errors and retries.  Without --mount: every cairnfs mount of this
 * machine.  --prometheus prints the same as metrics in Prometheus's text
 * format; --textfile writes them atomically for node_exporter's textfile
 * collector.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd-common.h"
#include "ctlclient.h"
#include "err.h"

enum { OPT_MOUNT = OPT_COMMON_LAST, OPT_PROMETHEUS, OPT_TEXTFILE };

static json_int_t geti(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_integer_value(v);
}

static void age(json_int_t t, char out[32])
{
	long long s = (long long)time(NULL) - (long long)t;

	if (!t)
		snprintf(out, 32, "never");
	else if (s < 120)
		snprintf(out, 32, "%lld s ago", s);
	else if (s < 7200)
		snprintf(out, 32, "%lld min ago", s / 60);
	else
		snprintf(out, 32, "%lld h ago", s / 3600);
}

static void print_lease(json_t *l)
{
	const char *state = json_string_value(json_object_get(l, "state"));
	json_int_t retakes = json_integer_value(json_object_get(l, "retakes"));
	char a[32];

	if (!state)
		return;
	if (!strcmp(state, "lost")) {
		age(json_integer_value(json_object_get(l, "lost_at")), a);
		printf("  lease:     LOST (%s, %s): changes stay in the cache and are not saved until"
		       " it is taken back\n", json_is_string(json_object_get(l, "why")) ?
		       json_string_value(json_object_get(l, "why")) : "not renewed", a);
	} else if (!strcmp(state, "held")) {
		printf("  lease:     held as host %s%s\n", json_string_value(json_object_get(l, "host")),
		       retakes ? " (taken back after a loss)" : "");
	}
}

static void print_text(json_t *r)
{
	char b1[32], b2[32], b3[32], a[32];
	json_int_t total = geti(r, "files", "bytes"), local = geti(r, "files", "local_bytes");
	json_t *snap = json_object_get(r, "snapshot");

	age(geti(r, "snapshot_time", NULL), a);
	printf("%s: workspace %s (cairnfs pid %lld, cache %s, %s)\n",
	       json_string_value(json_object_get(r, "mountpoint")),
	       json_string_value(json_object_get(r, "workspace")), (long long)geti(r, "pid", NULL),
	       json_string_value(json_object_get(r, "cache_dir")),
	       json_is_string(json_object_get(r, "atime")) ?
	       json_string_value(json_object_get(r, "atime")) : "relatime");
	if (json_is_string(snap))
		printf("  snapshot:  %.8s, generation %lld, %s%s\n", json_string_value(snap),
		       (long long)geti(r, "generation", NULL), a,
		       json_is_true(json_object_get(r, "snapshot_running")) ? " (one is running)" : "");
	else
		printf("  snapshot:  none yet%s\n",
		       json_is_true(json_object_get(r, "snapshot_running")) ? " (one is running)" : "");
	printf("  changes:   %lld dirty files, %s%s\n", (long long)geti(r, "dirty", "files"),
	       cmd_bytes((uint64_t)geti(r, "dirty", "bytes"), b1),
	       json_is_true(json_object_get(r, "changed")) ? "" : " (none since the snapshot)");
	printf("  local:     %lld of %lld files, %s of %s (%.0f%%), prefetch %s\n",
	       (long long)geti(r, "files", "local"), (long long)geti(r, "files", "total"),
	       cmd_bytes((uint64_t)local, b1), cmd_bytes((uint64_t)total, b2),
	       total ? 100.0 * (double)local / (double)total : 100.0,
	       json_string_value(json_object_get(r, "prefetch")));
	printf("  cache:     %s used, limit %s, %s fetched",
	       cmd_bytes((uint64_t)geti(r, "cache", "used_bytes"), b1),
	       geti(r, "cache", "limit_bytes") ? cmd_bytes((uint64_t)geti(r, "cache", "limit_bytes"), b2)
					       : "the disk",
	       cmd_bytes((uint64_t)geti(r, "cache", "fetched_bytes"), b3));
	if (json_is_integer(json_object_get(json_object_get(r, "cache"), "disk_free_bytes")))
		printf(", %s free on its disk", cmd_bytes((uint64_t)geti(r, "cache", "disk_free_bytes"), b1));
	putchar('\n');
	if (json_is_true(json_object_get(json_object_get(r, "cache"), "disk_full"))) {
		age(geti(r, "cache", "full_since"), a);
		printf("  disk:      FULL (%s): what needs space gets ENOSPC (%lld refused), deletes and"
		       " truncates go on; free space on the cache disk\n", a,
		       (long long)geti(r, "cache", "enospc"));
	}
	printf("  store:     %lld requests, %lld errors, %lld retries, %lld failed reads;"
	       " %s in, %s out\n", (long long)geti(r, "store", "requests"),
	       (long long)geti(r, "store", "errors"), (long long)geti(r, "store", "retries"),
	       (long long)geti(r, "fetch_errors", NULL),
	       cmd_bytes((uint64_t)geti(r, "store", "bytes_in"), b1),
	       cmd_bytes((uint64_t)geti(r, "store", "bytes_out"), b2));
	printf("  snapshots: %lld taken, %lld failed since the mount\n",
	       (long long)geti(r, "snapshots", "taken"), (long long)geti(r, "snapshots", "failed"));
	print_lease(json_object_get(r, "lease"));
}

/* ---- metrics ----------------------------------------------------------- */

struct metric {
	const char *name, *type, *help;
	const char *a, *b;	/* where in the status reply */
};

static const struct metric metrics[] = {
	{ "cairn_up", "gauge", "1 while the mount answers its control socket", NULL, NULL },
	{ "cairn_snapshot_age_seconds", "gauge", "seconds since the mount's last snapshot (absent: none yet)", "snapshot_time", NULL },
	{ "cairn_snapshot_generation", "gauge", "head generation of the last snapshot", "generation", NULL },
	{ "cairn_dirty_files", "gauge", "files changed since the last snapshot", "dirty", "files" },
	{ "cairn_dirty_bytes", "gauge", "bytes of the files changed since the last snapshot", "dirty", "bytes" },
	{ "cairn_files", "gauge", "regular files in the workspace", "files", "total" },
	{ "cairn_files_local", "gauge", "regular files whose data is local (hydration)", "files", "local" },
	{ "cairn_bytes", "gauge", "bytes of regular files in the workspace", "files", "bytes" },
	{ "cairn_bytes_local", "gauge", "bytes of file data that are local (hydration)", "files", "local_bytes" },
	{ "cairn_cache_used_bytes", "gauge", "bytes the cache uses on disk", "cache", "used_bytes" },
	{ "cairn_cache_limit_bytes", "gauge", "the cache limit (0: the disk)", "cache", "limit_bytes" },
	{ "cairn_cache_disk_full", "gauge", "1 while the cache disk is full: what needs space gets ENOSPC", "cache", "disk_full" },
	{ "cairn_cache_disk_free_bytes", "gauge", "bytes free for files on the cache disk", "cache", "disk_free_bytes" },
	{ "cairn_cache_enospc_total", "counter", "operations refused with ENOSPC because the cache disk was full", "cache", "enospc" },
	{ "cairn_store_requests_total", "counter", "requests to the store", "store", "requests" },
	{ "cairn_store_errors_total", "counter", "store requests that failed", "store", "errors" },
	{ "cairn_store_retries_total", "counter", "store requests tried again", "store", "retries" },
	{ "cairn_store_download_bytes_total", "counter", "bytes read from the store", "store", "bytes_in" },
	{ "cairn_store_upload_bytes_total", "counter", "bytes written to the store", "store", "bytes_out" },
	{ "cairn_fetch_errors_total", "counter", "reads that could not fetch their data (EIO)", "fetch_errors", NULL },
	{ "cairn_snapshots_total", "counter", "snapshots taken by this mount", "snapshots", "taken" },
	{ "cairn_snapshot_failures_total", "counter", "snapshots that failed", "snapshots", "failed" },
	{ "cairn_lease_lost", "gauge", "1 while the mount has lost its lease: its changes are not saved", "lease_lost", NULL },
	{ "cairn_lease_retakes_total", "counter", "times the mount took its lost lease back", "lease", "retakes" },
};

/* A label value with \, " and newline escaped. */
static void label(struct buf *out, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_addc(out, '\\');
		if (*v == '\n')
			buf_adds(out, "\\n");
		else
			buf_addc(out, *v);
	}
}

/* Every metric of every reply (a JSON array), grouped by metric. */
static void prometheus(json_t *replies, struct buf *out)
{
	size_t i;
	json_t *r;

	for (size_t m = 0; m < sizeof(metrics) / sizeof(*metrics); m++) {
		const struct metric *x = &metrics[m];

		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, x->type);
		json_array_foreach(replies, i, r) {
			json_t *v = x->a ? json_object_get(r, x->a) : NULL;
			long long val;

			if (x->b)
				v = json_object_get(v, x->b);
			if (x->a && !json_is_integer(v) && !json_is_boolean(v))
				continue;	/* e.g. no snapshot yet */
			val = !x->a ? !json_is_true(json_object_get(r, "down")) :
			      json_is_boolean(v) ? json_is_true(v) : (long long)json_integer_value(v);
			if (!strcmp(x->name, "cairn_snapshot_age_seconds"))
				val = (long long)time(NULL) - val;
			buf_printf(out, "%s{workspace=\"", x->name);
			label(out, json_string_value(json_object_get(r, "workspace")));
			buf_adds(out, "\",mountpoint=\"");
			label(out, json_string_value(json_object_get(r, "mountpoint")));
			buf_printf(out, "\"} %lld\n", val);
		}
	}
}

/* Writes text to path through path.tmp and a rename, so that a collector
 * never reads half a file. */
static int write_textfile(const char *path, const struct buf *text)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	int rc = 0;

	if (!f || fwrite(text->data, 1, text->len, f) != text->len || fflush(f) || fsync(fileno(f)))
		rc = err_set(-errno, "cannot write %s: %s", tmp, strerror(errno));
	if (f && fclose(f) && !rc)
		rc = err_set(-errno, "cannot write %s: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path))
		rc = err_set(-errno, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

struct all {
	int json, failed, count;
	json_t *collect;	/* --prometheus, --textfile: the replies */
};

static int show(const char *mnt, const char *ws, int json, json_t *collect)
{
	json_t *req = json_pack("{s:s}", "op", "status"), *r = NULL;
	int rc = ctl_call(ws, req, &r, 30);

	json_decref(req);
	if (rc) {
		fprintf(stderr, "cairn status: %s: %s\n", mnt, err_msg());
		if (collect)	/* cairn_up 0 for it */
			json_array_append_new(collect, json_pack("{s:s, s:s, s:b}", "workspace", ws,
								 "mountpoint", mnt, "down", 1));
		return rc;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "cairn status: %s: %s\n", mnt,
			json_string_value(json_object_get(r, "error")));
		json_decref(r);
		return -1;
	}
	json_object_del(r, "ok");
	if (collect)
		json_array_append_new(collect, r);
	else if (json)
		cmd_json_line(r);
	else {
		print_text(r);
		json_decref(r);
	}
	return 0;
}

static void show_each(const char *mnt, const char *ws, void *arg)
{
	struct all *a = arg;

	a->count++;
	if (show(mnt, ws, a->json, a->collect))
		a->failed = 1;
}

static int status_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mount", required_argument, NULL, OPT_MOUNT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
		{ "textfile", required_argument, NULL, OPT_TEXTFILE },
		{ NULL, 0, NULL, 0 },
	};
	const char *mount = NULL, *textfile = NULL;
	struct all a = { 0 };
	int opt, prom = 0, rc = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == OPT_MOUNT)
			mount = optarg;
		else if (opt == OPT_JSON)
			a.json = 1;
		else if (opt == OPT_PROMETHEUS)
			prom = 1;
		else if (opt == OPT_TEXTFILE)
			textfile = optarg;
		else
			return cmd_usage(&cmd_status_entry);
	}
	if (optind != argc || a.json + prom + !!textfile > 1)
		return cmd_usage(&cmd_status_entry);
	if (textfile && (strlen(textfile) < 6 || strcmp(textfile + strlen(textfile) - 5, ".prom"))) {
		fprintf(stderr, "cairn status: --textfile %s: node_exporter reads only files named *.prom\n", textfile);
		return CMD_EXIT_USAGE;
	}
	if (prom || textfile)
		a.collect = json_array();
	if (mount) {
		char *ws = NULL;

		rc = ctl_mount_workspace(mount, &ws);
		if (rc) {
			json_decref(a.collect);
			return cmd_fail(&cmd_status_entry, NULL);
		}
		a.failed = show(mount, ws, a.json, a.collect) != 0;
		a.count = 1;
		free(ws);
	} else {
		ctl_foreach_mount(show_each, &a);
		if (!a.count && !a.json && !a.collect)
			printf("no cairnfs is mounted on this machine\n");
	}
	if (a.collect) {
		struct buf text = BUF_INIT;

		prometheus(a.collect, &text);
		if (textfile)
			rc = write_textfile(textfile, &text);
		else
			fwrite(text.data, 1, text.len, stdout);
		buf_free(&text);
		json_decref(a.collect);
		if (rc)
			return cmd_fail(&cmd_status_entry, NULL);
	}
	return a.failed ? CMD_EXIT_ERROR : CMD_EXIT_OK;
}

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.usage = "[--mount MOUNTPOINT] [--json | --prometheus | --textfile FILE.prom]",
	.summary = "show a mounted workspace: last snapshot, changes, hydration, cache, store errors",
	.exec = status_exec,
};
