/*
 * cmd-mount.c - `cairn mount MOUNTPOINT`: starts cairnfs for the workspace
 * that the usual options name.  It only builds cairnfs's command line and
 * execs it (found beside this cairn, else on PATH), so `cairn mount`,
 * `cairnfs SOURCE MOUNTPOINT -o ...`, `mount -t fuse.cairnfs` and an fstab
 * line all run the same daemon with the same options.  No key material
 * goes into argv: a key option names a provider (file:, env:), not a key.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cmd-common.h"
#include "err.h"
#include "stop.h"

enum { OPT_CACHE = OPT_COMMON_LAST, OPT_FOREGROUND, OPT_SNAPSHOT, OPT_CACHE_SIZE, OPT_DISCARD,
       OPT_KEEP, OPT_NO_PREFETCH };

static const struct option longopts[] = {
	CMD_COMMON_LONGOPTS,
	{ "cache", required_argument, NULL, OPT_CACHE },
	{ "foreground", no_argument, NULL, OPT_FOREGROUND },
	{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
	{ "cache-size", required_argument, NULL, OPT_CACHE_SIZE },
	{ "discard-local", no_argument, NULL, OPT_DISCARD },
	{ "keep-local-as-snapshot", no_argument, NULL, OPT_KEEP },
	{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
	{ "options", required_argument, NULL, 'o' },
	{ NULL, 0, NULL, 0 }
};

/* Appends ",name=value" to opts; a value with a comma cannot be passed. */
static int add_opt(struct buf *opts, const char *name, const char *value)
{
	if (!value)
		return 0;
	if (strchr(value, ',')) {
		err_set(-EINVAL, "--%s %s: a comma cannot be passed to cairnfs", name, value);
		return -EINVAL;
	}
	if (opts->len)
		buf_addc(opts, ',');
	buf_printf(opts, "%s=%s", name, value);
	return 0;
}

/* cairnfs beside the running cairn (a build dir, or the same bindir). */
static char *find_cairnfs(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash, *path;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			path = xasprintf("%s/cairnfs", self);
			if (access(path, X_OK) == 0)
				return path;
			free(path);
		}
	}
	return xstrdup("cairnfs");	/* execvp searches PATH */
}

static int mount_exec(int argc, char **argv)
{
	struct cmd_common c = { 0 };
	struct buf opts = BUF_INIT;
	const char *user_opts = NULL, *cache = NULL, *source, *snap = NULL, *cache_size = NULL;
	const char *args[10];
	int discard = 0, keep = 0, no_prefetch = 0;
	char *cairnfs;
	struct stat st;
	int opt, fg = 0, n = 0, rc = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS "o:", longopts, NULL)) != -1) {
		if (cmd_common_opt(&c, opt, optarg))
			continue;
		if (opt == OPT_CACHE)
			cache = optarg;
		else if (opt == OPT_FOREGROUND)
			fg = 1;
		else if (opt == OPT_SNAPSHOT)
			snap = optarg;
		else if (opt == OPT_CACHE_SIZE)
			cache_size = optarg;
		else if (opt == OPT_DISCARD)
			discard = 1;
		else if (opt == OPT_KEEP)
			keep = 1;
		else if (opt == OPT_NO_PREFETCH)
			no_prefetch = 1;
		else if (opt == 'o')
			user_opts = optarg;
		else
			return cmd_usage(&cmd_mount_entry);
	}
	if (optind + 1 != argc)
		return cmd_usage(&cmd_mount_entry);
	if (discard && keep) {
		fprintf(stderr, "cairn mount: --discard-local and --keep-local-as-snapshot exclude each"
			" other: pick one\n");
		return CMD_EXIT_USAGE;
	}
	if (stat(argv[optind], &st)) {
		fprintf(stderr, "cairn mount: mountpoint %s: %s\n", argv[optind], strerror(errno));
		return CMD_EXIT_ERROR;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cairn mount: mountpoint %s is not a directory\n", argv[optind]);
		return CMD_EXIT_ERROR;
	}
	/* the source: the store, or the config section that names it */
	source = c.ro.store_url;
	if (!source && !c.name) {
		struct repo_opts ro = { 0 };

		rc = repo_opts_resolve(&ro, c.config, NULL);
		source = rc || !ro.store_url ? NULL : xstrdup(ro.store_url);
		repo_opts_free(&ro);
		if (!source)
			return cmd_fail(&cmd_mount_entry, NULL);
	}
	rc = add_opt(&opts, "key", c.ro.key);
	if (!rc)
		rc = add_opt(&opts, "workspace", c.ro.workspace);
	if (!rc)
		rc = add_opt(&opts, "tenant", c.ro.tenant);
	if (!rc)
		rc = add_opt(&opts, "state_dir", c.ro.state_dir);
	if (!rc)
		rc = add_opt(&opts, "cache", cache);
	if (!rc)
		rc = add_opt(&opts, "conf", c.config);
	if (!rc && source && c.name)
		rc = add_opt(&opts, "name", c.name);
	if (!rc)
		rc = add_opt(&opts, "snapshot", snap);
	if (!rc)
		rc = add_opt(&opts, "cache_size", cache_size);
	if (rc) {
		buf_free(&opts);
		return cmd_fail(&cmd_mount_entry, NULL);
	}
	if (c.ro.force)
		buf_adds(&opts, opts.len ? ",force" : "force");
	if (c.ro.allow_rollback)
		buf_adds(&opts, opts.len ? ",allow_rollback" : "allow_rollback");
	if (discard)
		buf_adds(&opts, opts.len ? ",discard_local" : "discard_local");
	if (keep)
		buf_adds(&opts, opts.len ? ",keep_local_as_snapshot" : "keep_local_as_snapshot");
	if (no_prefetch)
		buf_adds(&opts, opts.len ? ",noprefetch" : "noprefetch");
	if (user_opts) {
		if (opts.len)
			buf_addc(&opts, ',');
		buf_adds(&opts, user_opts);
	}
	cairnfs = find_cairnfs();
	args[n++] = "cairnfs";
	args[n++] = source ? source : c.name;
	args[n++] = argv[optind];
	if (fg)
		args[n++] = "-f";
	if (opts.len) {
		args[n++] = "-o";
		args[n++] = buf_str(&opts);
	}
	args[n] = NULL;
	fflush(NULL);
	stop_unblock();		/* cairnfs takes its stop signals itself */
	execvp(cairnfs, (char *const *)args);
	fprintf(stderr, "cairn mount: cannot run %s: %s (is cairn installed whole?)\n", cairnfs,
		strerror(errno));
	free(cairnfs);
	buf_free(&opts);
	return CMD_EXIT_ERROR;
}

const struct cmd_entry cmd_mount_entry = {
	.name = "mount",
	.usage = "MOUNTPOINT [--cache DIR] [--snapshot ID] [--cache-size SIZE] [--no-prefetch]"
		 " [--discard-local | --keep-local-as-snapshot] [--foreground] [-o FUSEOPTS] [--force] [--allow-rollback] "
		 CMD_COMMON_USAGE,
	.summary = "mount the workspace with cairnfs (daemonizes once mounted)",
	.exec = mount_exec,
};
