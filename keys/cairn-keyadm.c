/*
 * cairn-keyadm.c - the key administration tool (cairn-keyadm(8)): tenant
 * keys (create, list), rotation of a tenant key over every workspace of
 * the tenant (rewrap), data keys (rotate, reencrypt and retire), verify.
 *
 * It runs where the tenant keys are (an administrator's machine, a CI job
 * of the operator), never on an agent VM.  Tenant keys come from the same
 * providers as everywhere (file:, env:, exec:); a plain path is file:.
 * Every command is safe to interrupt and to run again.
 */
#include "config.h"

#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "err.h"
#include "fsutil.h"
#include "keys.h"
#include "log.h"
#include "reencrypt.h"
#include "rekey.h"

static const struct cmd_entry kek_create_entry, kek_list_entry, rewrap_entry, dek_rotate_entry,
	reencrypt_entry, verify_entry;

/* A provider spec as given, or "file:" + a plain path (a new string to
 * free in *owned). */
static const char *key_spec(const char *spec, char **owned)
{
	*owned = NULL;
	if (!spec || !*spec || !strncmp(spec, "file:", 5) || !strncmp(spec, "env:", 4) ||
	    !strncmp(spec, "exec:", 5) || keys_provider_remote(spec))
		return spec;
	*owned = xasprintf("file:%s", spec);
	return *owned;
}

/* A tenant key from a provider spec, or from a plain path (file:). */
static int load_kek(const char *spec, struct keys_kek **out)
{
	char *owned;
	int rc = keys_provider_load(key_spec(spec, &owned), out);

	free(owned);
	return rc;
}

/* Opens the workspace of c, with a plain path as --key taken as file:
 * (*owned, which the caller frees after its last use of c->ro.key). */
static int open_repo(const struct cmd_entry *e, struct cmd_common *c, struct repo **r,
		     char **owned)
{
	*owned = NULL;
	c->progress = !c->quiet && !c->json && isatty(STDERR_FILENO);
	if (repo_opts_resolve(&c->ro, c->config, c->name))
		return cmd_fail(e, NULL);
	c->ro.key = key_spec(c->ro.key, owned);
	if (repo_open(&c->ro, r))
		return cmd_fail(e, NULL);
	return CMD_EXIT_OK;
}

/* Parses the options every command takes; extra (may be NULL) handles the
 * command's own and returns 0, or -1 for a bad one.  Returns 0 or
 * CMD_EXIT_USAGE. */
static int parse(const struct cmd_entry *e, int argc, char **argv, const struct option *own,
		 const char *shortopts, struct cmd_common *c,
		 int (*extra)(int opt, const char *arg, void *arg_out), void *arg_out)
{
	static const struct option common[] = { CMD_COMMON_LONGOPTS };
	size_t nc = sizeof(common) / sizeof(*common), no = 0;
	struct option *all;
	int opt;

	while (own && own[no].name)
		no++;
	all = xcalloc(nc + no + 1, sizeof(*all));
	memcpy(all, common, sizeof(common));
	if (no)
		memcpy(all + nc, own, no * sizeof(*own));
	optind = 1;
	while ((opt = getopt_long(argc, argv, shortopts, all, NULL)) != -1) {
		if ((!extra || extra(opt, optarg, arg_out) != 0) && !cmd_common_opt(c, opt, optarg)) {
			free(all);
			return cmd_usage(e);
		}
	}
	free(all);
	if (optind != argc)
		return cmd_usage(e);
	return 0;
}

/* Resolves flags, CAIRN_* and cairn.conf without opening a workspace. */
static int resolve(const struct cmd_entry *e, struct cmd_common *c)
{
	c->progress = !c->quiet && !c->json && isatty(STDERR_FILENO);
	if (repo_opts_resolve(&c->ro, c->config, c->name))
		return cmd_fail(e, NULL);
	if (!c->ro.store_url || !*c->ro.store_url) {
		err_set(-EINVAL, "no store given: use --store URL (or CAIRN_STORE, or `store` in cairn.conf)");
		return cmd_fail(e, NULL);
	}
	return 0;
}

static const char *tenant_of(const struct cmd_common *c)
{
	return c->ro.tenant && *c->ro.tenant ? c->ro.tenant : "default";
}

/* ---- kek create --------------------------------------------------------- */

struct create_args {
	const char *out;
};

static int create_opt(int opt, const char *arg, void *p)
{
	if (opt != 'o')
		return -1;
	((struct create_args *)p)->out = arg;
	return 0;
}

static int kek_create(int argc, char **argv)
{
	static const struct option own[] = { { "out", required_argument, NULL, 'o' }, { NULL, 0, NULL, 0 } };
	struct cmd_common c = { 0 };
	struct create_args a = { 0 };
	struct keys_kek *kek = NULL;
	int rc = parse(&kek_create_entry, argc, argv, own, CMD_COMMON_SHORTOPTS "o:", &c, create_opt, &a);

	if (rc)
		return rc;
	if (!a.out)
		return cmd_usage(&kek_create_entry);
	if (keys_kek_generate(&kek) || keys_kek_write_file(kek, a.out)) {
		keys_kek_free(kek);
		return cmd_fail(&kek_create_entry, NULL);
	}
	if (c.json)
		cmd_json_line(json_pack("{s:s, s:s, s:s}", "tenant", tenant_of(&c), "kek_id",
					keys_kek_id(kek), "file", a.out));
	else if (!c.quiet)
		printf("tenant key %s for tenant %s written to %s (mode 0600)\n", keys_kek_id(kek),
		       tenant_of(&c), a.out);
	keys_kek_free(kek);
	return CMD_EXIT_OK;
}

static const struct cmd_entry kek_create_entry = {
	"kek create", "--out FILE [--tenant T]",
	"make a new tenant key in a new file (0600)", kek_create,
};

/* ---- kek list ----------------------------------------------------------- */

struct kek_count {
	char id[KEYS_ID_SIZE];
	uint64_t keys, workspaces;
	int seen_here;	/* in the workspace being listed */
};

struct kek_list {
	struct kek_count *v;
	size_t n;
};

static int kek_list_one(const char *key_id, const char *kek_id, void *arg)
{
	struct kek_list *l = arg;
	size_t i;

	(void)key_id;
	for (i = 0; i < l->n && strcmp(l->v[i].id, kek_id); i++)
		;
	if (i == l->n) {
		l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
		memset(&l->v[l->n], 0, sizeof(*l->v));
		snprintf(l->v[l->n++].id, KEYS_ID_SIZE, "%s", kek_id);
	}
	l->v[i].keys++;
	if (!l->v[i].seen_here)
		l->v[i].workspaces++;
	l->v[i].seen_here = 1;
	return 0;
}

static void free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* The workspaces a command works on: those named, or the tenant's all. */
static int workspaces(const struct cmd_entry *e, struct cmd_common *c, char **named, size_t nnamed,
		      char ***ids, size_t *n)
{
	if (nnamed) {
		*ids = xcalloc(nnamed, sizeof(**ids));
		for (size_t i = 0; i < nnamed; i++)
			(*ids)[i] = xstrdup(named[i]);
		*n = nnamed;
		return 0;
	}
	if (c->ro.workspace && *c->ro.workspace) {
		*ids = xcalloc(1, sizeof(**ids));
		(*ids)[0] = xstrdup(c->ro.workspace);
		*n = 1;
		return 0;
	}
	if (repo_tenant_workspaces(&c->ro, ids, n))
		return cmd_fail(e, NULL);
	return 0;
}

static int kek_list(int argc, char **argv)
{
	struct cmd_common c = { 0 };
	struct kek_list l = { 0 };
	char **ids = NULL;
	size_t n = 0;
	int rc = parse(&kek_list_entry, argc, argv, NULL, CMD_COMMON_SHORTOPTS, &c, NULL, NULL);

	if (!rc)
		rc = resolve(&kek_list_entry, &c);
	if (!rc)
		rc = workspaces(&kek_list_entry, &c, NULL, 0, &ids, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		for (size_t k = 0; k < l.n; k++)
			l.v[k].seen_here = 0;
		if (rekey_list_wraps(&c.ro, ids[i], kek_list_one, &l))
			rc = cmd_fail(&kek_list_entry, ids[i]);
	}
	for (size_t k = 0; !rc && k < l.n; k++) {
		if (c.json)
			cmd_json_line(json_pack("{s:s, s:s, s:I, s:I}", "tenant", tenant_of(&c), "kek_id",
						l.v[k].id, "workspaces", (json_int_t)l.v[k].workspaces,
						"keys", (json_int_t)l.v[k].keys));
		else
			printf("%s  %llu workspace%s  %llu wrapped key%s\n", l.v[k].id,
			       (unsigned long long)l.v[k].workspaces, l.v[k].workspaces == 1 ? "" : "s",
			       (unsigned long long)l.v[k].keys, l.v[k].keys == 1 ? "" : "s");
	}
	if (!rc && !l.n && !c.json && !c.quiet)
		printf("tenant %s has no wrapped keys in %s\n", tenant_of(&c), c.ro.store_url);
	free(l.v);
	free_ids(ids, n);
	cmd_common_free(&c);
	return rc;
}

static const struct cmd_entry kek_list_entry = {
	"kek list", "[--tenant T] [--workspace W] [--store URL]",
	"the tenant keys that wrap the tenant's workspace keys", kek_list,
};

/* ---- rewrap, verify ----------------------------------------------------- */

struct rekey_args {
	const char *from, *to;
	char **ws;
	size_t nws;
};

static int rekey_opt(int opt, const char *arg, void *p)
{
	struct rekey_args *a = p;

	if (opt == 'F')
		a->from = arg;
	else if (opt == 'T')
		a->to = arg;
	else if (opt == OPT_WORKSPACE) {
		a->ws = xrealloc(a->ws, (a->nws + 1) * sizeof(*a->ws));
		a->ws[a->nws++] = (char *)arg;
	} else
		return -1;
	return 0;
}

static int report(const struct cmd_common *c, const char *what, size_t nws,
		  const struct rekey_stats *st)
{
	if (c->json)
		cmd_json_line(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "operation", what,
					"workspaces", (json_int_t)nws, "keys", (json_int_t)st->keys,
					!strcmp(what, "verify") ? "ok" : "rewrapped", (json_int_t)st->done,
					"skipped", (json_int_t)st->skipped, "failed", (json_int_t)st->failed));
	else if (!c->quiet)
		printf("%s: %zu workspace%s, %llu keys: %llu %s, %llu skipped, %llu failed\n", what, nws,
		       nws == 1 ? "" : "s", (unsigned long long)st->keys, (unsigned long long)st->done,
		       !strcmp(what, "verify") ? "open" : "rewrapped", (unsigned long long)st->skipped,
		       (unsigned long long)st->failed);
	return st->failed ? CMD_EXIT_ERROR : CMD_EXIT_OK;
}

static int rewrap(int argc, char **argv)
{
	static const struct option own[] = {
		{ "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct rekey_args a = { 0 };
	struct rekey_stats st = { 0 };
	struct keys_kek *from = NULL, *to = NULL;
	char **ids = NULL;
	size_t n = 0;
	int rc = parse(&rewrap_entry, argc, argv, own, CMD_COMMON_SHORTOPTS, &c, rekey_opt, &a);

	if (!rc && (!a.from || !a.to))
		rc = cmd_usage(&rewrap_entry);
	if (!rc)
		rc = resolve(&rewrap_entry, &c);
	if (!rc && (load_kek(a.from, &from) || load_kek(a.to, &to)))
		rc = cmd_fail(&rewrap_entry, NULL);
	if (!rc && !strcmp(keys_kek_id(from), keys_kek_id(to))) {
		err_set(-EINVAL, "--from and --to are the same tenant key (%s)", keys_kek_id(from));
		rc = cmd_fail(&rewrap_entry, NULL);
	}
	if (!rc)
		rc = workspaces(&rewrap_entry, &c, a.ws, a.nws, &ids, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		cmd_progress_line(&c, "rewrap: workspace %zu of %zu (%s)", i + 1, n, ids[i]);
		if (rekey_rewrap(&c.ro, ids[i], from, to, &st)) {
			log_warn("workspace %s: %s", ids[i], err_msg());
			st.failed++;
		}
	}
	cmd_progress_done(&c);
	if (!rc)
		rc = report(&c, "rewrap", n, &st);
	keys_kek_free(from);
	keys_kek_free(to);
	free_ids(ids, n);
	free(a.ws);
	cmd_common_free(&c);
	return rc;
}

static const struct cmd_entry rewrap_entry = {
	"rewrap", "--from OLD-KEY --to NEW-KEY [--tenant T] [--workspace W]... [--store URL]",
	"rotate a tenant key: rewrap every workspace key of the tenant", rewrap,
};

static int verify(int argc, char **argv)
{
	struct cmd_common c = { 0 };
	struct rekey_args a = { 0 };
	struct rekey_stats st = { 0 };
	struct keys_kek *kek = NULL;
	char **ids = NULL;
	size_t n = 0, bad = 0;
	int rc = parse(&verify_entry, argc, argv, NULL, CMD_COMMON_SHORTOPTS, &c, rekey_opt, &a);

	if (!rc)
		rc = resolve(&verify_entry, &c);
	if (!rc && (!c.ro.key || !*c.ro.key)) {
		err_set(-EINVAL, "no key given: use --key file:PATH (or CAIRN_KEY)");
		rc = cmd_fail(&verify_entry, NULL);
	}
	if (!rc && load_kek(c.ro.key, &kek))
		rc = cmd_fail(&verify_entry, NULL);
	if (!rc)
		rc = workspaces(&verify_entry, &c, a.ws, a.nws, &ids, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		uint64_t failed = st.failed;

		if (rekey_verify(&c.ro, ids[i], kek, &st)) {
			log_warn("workspace %s: %s", ids[i], err_msg());
			st.failed++;
		}
		if (st.failed != failed) {
			bad++;
			if (!c.json && !c.quiet)
				printf("workspace %s: NOT opened by tenant key %s\n", ids[i], keys_kek_id(kek));
		}
	}
	if (!rc)
		rc = report(&c, "verify", n, &st);
	(void)bad;
	keys_kek_free(kek);
	free_ids(ids, n);
	free(a.ws);
	cmd_common_free(&c);
	return rc;
}

static const struct cmd_entry verify_entry = {
	"verify", "--key KEY [--tenant T] [--workspace W]... [--store URL]",
	"check that a tenant key opens every workspace key of the tenant", verify,
};

/* ---- dek rotate, reencrypt ---------------------------------------------- */

static int dek_rotate(int argc, char **argv)
{
	struct cmd_common c = { 0 };
	struct keys_kek *kek = NULL;
	struct repo *r = NULL;
	char key_id[KEYS_ID_SIZE], *owned = NULL;
	int rc = parse(&dek_rotate_entry, argc, argv, NULL, CMD_COMMON_SHORTOPTS, &c, NULL, NULL);

	if (rc)
		return rc;
	rc = open_repo(&dek_rotate_entry, &c, &r, &owned);
	if (!rc && load_kek(c.ro.key, &kek))
		rc = cmd_fail(&dek_rotate_entry, NULL);
	if (!rc && repo_rotate_data_key(r, kek, key_id))
		rc = cmd_fail(&dek_rotate_entry, NULL);
	if (!rc && c.json)
		cmd_json_line(json_pack("{s:s, s:s, s:s}", "workspace", r->ws_id, "data_key", key_id,
					"kek_id", keys_kek_id(kek)));
	else if (!rc && !c.quiet)
		printf("workspace %s: new data key %s (wrapped by tenant key %s); new writes use it once a mount or command starts anew\n",
		       r->ws_id, key_id, keys_kek_id(kek));
	keys_kek_free(kek);
	repo_close(r);
	cmd_common_free(&c);
	free(owned);
	return rc;
}

static const struct cmd_entry dek_rotate_entry = {
	"dek rotate", "--key KEY [--workspace W] [--tenant T] [--store URL]",
	"make a new data key that new writes use", dek_rotate,
};

struct reencrypt_args {
	int retire;
};

static int reencrypt_opt(int opt, const char *arg, void *p)
{
	(void)arg;
	if (opt != 'R')
		return -1;
	((struct reencrypt_args *)p)->retire = 1;
	return 0;
}

static void reencrypt_progress(const char *phase, uint64_t done, uint64_t total, void *arg)
{
	cmd_progress_line(arg, "reencrypt: %s %llu of %llu", phase, (unsigned long long)done,
			  (unsigned long long)total);
}

static int reencrypt(int argc, char **argv)
{
	static const struct option own[] = { { "retire", no_argument, NULL, 'R' }, { NULL, 0, NULL, 0 } };
	struct cmd_common c = { 0 };
	struct reencrypt_args a = { 0 };
	struct reencrypt_stats st;
	struct repo *r = NULL;
	int rc = parse(&reencrypt_entry, argc, argv, own, CMD_COMMON_SHORTOPTS, &c, reencrypt_opt, &a);
	char b[32], *owned = NULL;

	if (rc)
		return rc;
	rc = open_repo(&reencrypt_entry, &c, &r, &owned);
	if (!rc && repo_lease_acquire_as(r, "cairn-keyadm reencrypt"))
		rc = cmd_fail(&reencrypt_entry, NULL);
	if (!rc) {
		struct reencrypt_opts o = { a.retire, reencrypt_progress, &c };

		if (reencrypt_repo(r, &o, &st))
			rc = cmd_fail(&reencrypt_entry, NULL);
		cmd_progress_done(&c);
	}
	if (!rc && c.json)
		cmd_json_line(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I}", "workspace", r->ws_id,
					"packs", (json_int_t)st.packs,
					"packs_rewritten", (json_int_t)st.packs_rewritten,
					"blobs_rewritten", (json_int_t)st.blobs_rewritten,
					"snapshots", (json_int_t)st.snapshots,
					"snapshots_rewritten", (json_int_t)st.snapshots_rewritten,
					"head_rewritten", st.head_rewritten,
					"keys_retired", (json_int_t)st.keys_retired));
	else if (!rc && !c.quiet)
		printf("reencrypt: workspace %s: %llu of %llu packs rewritten (%llu blobs, %s), %llu of %llu snapshot records, head %s; %llu old wrapped keys retired\n",
		       r->ws_id, (unsigned long long)st.packs_rewritten, (unsigned long long)st.packs,
		       (unsigned long long)st.blobs_rewritten, cmd_bytes(st.bytes_rewritten, b),
		       (unsigned long long)st.snapshots_rewritten, (unsigned long long)st.snapshots,
		       st.head_rewritten ? "rewritten" : "already current",
		       (unsigned long long)st.keys_retired);
	repo_close(r);
	cmd_common_free(&c);
	free(owned);
	return rc;
}

static const struct cmd_entry reencrypt_entry = {
	"reencrypt", "--key KEY [--workspace W] [--retire] [--tenant T] [--store URL]",
	"rewrite old packs under the current data key; --retire retires the old keys", reencrypt,
};

/* ---- main --------------------------------------------------------------- */

static const struct cmd_entry *const table[] = {
	&kek_create_entry, &kek_list_entry, &rewrap_entry, &dek_rotate_entry, &reencrypt_entry,
	&verify_entry, NULL,
};

static void help(FILE *f)
{
	fprintf(f, "usage: cairn-keyadm COMMAND [OPTIONS]\n\n");
	for (const struct cmd_entry *const *e = table; *e; e++)
		fprintf(f, "  %-12s %s\n      %s\n", (*e)->name, (*e)->summary, (*e)->usage);
	fprintf(f, "\nKEY is a tenant key: file:PATH, env:VAR, exec:COMMAND, or a plain path.\n"
		"See cairn-keyadm(8).\n");
}

int main(int argc, char **argv)
{
	char name[32];

	cmd_program = "cairn-keyadm";
	log_setup("cairn-keyadm", LOG_LVL_WARN);
	if (fsu_no_core_dumps())
		log_warn("cannot turn core dumps off: %s", strerror(errno));
	if (cmd_stop_init())
		return CMD_EXIT_ERROR;
	if (keys_init()) {
		fprintf(stderr, "cairn-keyadm: %s\n", err_msg());
		return CMD_EXIT_ERROR;
	}
	if (argc < 2) {
		help(stderr);
		return CMD_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		help(stdout);
		return CMD_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("cairn-keyadm %s\n", PACKAGE_VERSION);
		return CMD_EXIT_OK;
	}
	/* "kek create" and "dek rotate" are two words */
	snprintf(name, sizeof(name), "%s%s%s", argv[1], argc > 2 && (!strcmp(argv[1], "kek") ||
		 !strcmp(argv[1], "dek")) ? " " : "", argc > 2 && (!strcmp(argv[1], "kek") ||
		 !strcmp(argv[1], "dek")) ? argv[2] : "");
	for (const struct cmd_entry *const *e = table; *e; e++) {
		if (strcmp((*e)->name, name))
			continue;
		if (strchr(name, ' '))
			return (*e)->exec(argc - 2, argv + 2);
		return (*e)->exec(argc - 1, argv + 1);
	}
	fprintf(stderr, "cairn-keyadm: unknown command '%s'; run 'cairn-keyadm help' for the list\n", name);
	return CMD_EXIT_USAGE;
}
