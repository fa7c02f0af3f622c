/*
 * repo.c - creating and opening a workspace's repository: the layout under
 * the store URL, the config object, the wrapped keys, the local state dir.
 *
 * Invariants: init writes the keys first, then the key set, and the config
 * last (create-only), so a workspace that has a config has every key it
 * needs; the tenant's catalog entry is written after the config.  Opening
 * never writes to the store, and gives the keyring only the keys the key
 * set lists (a workspace made before key sets: every key that unwraps).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "err.h"
#include "fetch.h"
#include "fsutil.h"
#include "index.h"
#include "log.h"
#include "pack.h"
#include "repo.h"

#define CATALOG_FMT "tenants/%s/catalog/"
#define WS_PREFIX_FMT "tenants/%s/workspaces/%s/"

static int tenant_valid(const char *t)
{
	size_t n = strlen(t);

	return n > 0 && n <= REPO_TENANT_MAX &&
	       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n &&
	       t[0] != '.';
}

/* The dir that holds a state dir per workspace: --state-dir, else
 * /var/lib/cairn for root, else under the user's XDG state home. */
static char *state_base(const struct repo_opts *opts)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (opts->state_dir && *opts->state_dir)
		return xstrdup(opts->state_dir);
	if (geteuid() == 0)
		return xstrdup("/var/lib/cairn");
	if (xdg && *xdg)
		return xasprintf("%s/cairn", xdg);
	if (home && *home)
		return xasprintf("%s/.local/state/cairn", home);
	return NULL;	/* not /tmp: the cache is plaintext */
}

static int state_dir_make(struct repo *r, const struct repo_opts *opts)
{
	char *marker;
	int rc;

	if (opts->cache_dir && *opts->cache_dir) {
		r->state_dir = xstrdup(opts->cache_dir);
	} else {
		char *base = state_base(opts);

		if (!base)
			return err_set(-EINVAL, "no place for the state dir: set HOME, XDG_STATE_HOME or --state-dir");
		r->state_dir = xasprintf("%s/%s", base, r->ws_id);
		free(base);
	}
	marker = xasprintf("%s/", r->state_dir);
	rc = fsu_mkdir_parents(marker);
	free(marker);
	if (rc)
		return err_set(rc, "cannot create the state dir %s: %s", r->state_dir, strerror(-rc));
	if (chmod(r->state_dir, 0700))
		return err_set(-errno, "state dir %s: cannot make it private (chmod 700): %s", r->state_dir,
			       strerror(errno));
	return 0;
}

static struct repo *repo_new(const struct repo_opts *opts)
{
	struct repo *r = xcalloc(1, sizeof(*r));

	snprintf(r->tenant, sizeof(r->tenant), "%s",
		 opts->tenant && *opts->tenant ? opts->tenant : "default");
	r->allow_rollback = opts->allow_rollback;
	r->force = opts->force;
	if (opts->host_id && *opts->host_id)
		r->host_id = xstrdup(opts->host_id);
	if (opts->takeover_from && *opts->takeover_from)
		r->takeover_from = xstrdup(opts->takeover_from);
	if (opts->lease_ttl && *opts->lease_ttl)
		r->lease_ttl = xstrdup(opts->lease_ttl);
	/* an https:// key with no [control-plane] url: that URL is the one */
	if (opts->cp_url && *opts->cp_url)
		r->cp.url = xstrdup(opts->cp_url);
	else if (keys_provider_remote(opts->key))
		r->cp.url = xstrdup(opts->key);
	if (opts->cp_token_file && *opts->cp_token_file)
		r->cp.token_file = xstrdup(opts->cp_token_file);
	if (opts->cp_ca_file && *opts->cp_ca_file)
		r->cp.ca_file = xstrdup(opts->cp_ca_file);
	return r;
}

static int repo_attach(struct repo *r, const char *ws_id)
{
	char *prefix;
	int rc;

	snprintf(r->ws_id, sizeof(r->ws_id), "%s", ws_id);
	prefix = xasprintf(WS_PREFIX_FMT, r->tenant, r->ws_id);
	rc = store_prefix_open(r->base, prefix, &r->store);
	free(prefix);
	return rc;
}

void repo_config_encode(const struct repo *r, struct buf *out)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:I}", "format", REPO_FORMAT_VERSION,
			      "workspace", r->ws_id, "tenant", r->tenant,
			      "created", (json_int_t)(r->config_created ? r->config_created :
						      (uint64_t)time(NULL)));
	char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);

	buf_adds(out, text);
	buf_addc(out, '\n');
	free(text);
	json_decref(o);
}

/* Checks the config object of the workspace r is attached to. */
static int config_check(struct repo *r)
{
	struct buf b = BUF_INIT;
	struct store_info info;
	json_t *o;
	json_error_t jerr;
	json_int_t version = -1, created = 0;
	const char *ws = NULL, *tenant = NULL;
	int rc = store_get_max(r->store, "config", REPO_CONFIG_MAX, "config", &b, &info);

	if (rc == -ENOENT)
		rc = err_set(-ENOENT, "workspace %s of tenant %s does not exist in %s: check --workspace, or run 'cairn init'",
			     r->ws_id, r->tenant, r->base->url);
	if (rc) {
		buf_free(&b);
		return rc;
	}
	o = json_loadb((const char *)b.data, b.len, 0, &jerr);
	buf_free(&b);
	if (!o || json_unpack(o, "{s:I, s:s, s:s}", "format", &version, "workspace", &ws,
			      "tenant", &tenant) < 0) {
		json_decref(o);
		return err_set(-EBADMSG, "%sconfig: not a cairn config object", r->store->url);
	}
	if (version < REPO_FORMAT_MIN || version > REPO_FORMAT_VERSION)
		rc = err_set(-ENOTSUP, "%sconfig: repository format version %lld; this cairn reads versions %d to %d: upgrade cairn",
			     r->store->url, (long long)version, REPO_FORMAT_MIN, REPO_FORMAT_VERSION);
	else if (strcmp(ws, r->ws_id) || strcmp(tenant, r->tenant))
		rc = err_set(-EBADMSG, "%sconfig: names workspace %s of tenant %s, not %s of %s",
			     r->store->url, ws, tenant, r->ws_id, r->tenant);
	if (!rc) {
		r->config_format = (int)version;
		json_unpack(o, "{s?I}", "created", &created);
		r->config_created = created > 0 ? (uint64_t)created : 0;
		snprintf(r->config_etag, sizeof(r->config_etag), "%s", info.etag);
	}
	json_decref(o);
	return rc;
}

struct catalog {
	char **ids;
	size_t n;
	size_t skip;
};

static int catalog_add(const char *key, uint64_t size, void *arg)
{
	struct catalog *c = arg;

	(void)size;
	c->ids = xrealloc(c->ids, (c->n + 1) * sizeof(*c->ids));
	c->ids[c->n++] = xstrdup(key + c->skip);
	return 0;
}

static void catalog_free(struct catalog *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->ids[i]);
	free(c->ids);
}

/* The tenant's workspace ids, from its catalog in r->base. */
static int catalog_list(struct repo *r, struct catalog *c)
{
	char *prefix = xasprintf(CATALOG_FMT, r->tenant);
	int rc;

	memset(c, 0, sizeof(*c));
	c->skip = strlen(prefix);
	rc = store_list(r->base, prefix, catalog_add, c);
	free(prefix);
	return rc;
}

/* Picks the tenant's only workspace when none was named. */
static int pick_workspace(struct repo *r, char *out, size_t size)
{
	struct catalog c;
	struct buf names = BUF_INIT;
	int rc = catalog_list(r, &c);

	if (!rc && c.n == 0)
		rc = err_set(-ENOENT, "tenant %s has no workspace in %s: run 'cairn init' first",
			     r->tenant, r->base->url);
	if (!rc && c.n > 1) {
		for (size_t i = 0; i < c.n && i < 10; i++)
			buf_printf(&names, "%s%s", i ? ", " : "", c.ids[i]);
		rc = err_set(-EINVAL, "tenant %s has %zu workspaces (%s%s): pick one with --workspace ID",
			     r->tenant, c.n, buf_str(&names), c.n > 10 ? ", ..." : "");
	}
	if (!rc)
		snprintf(out, size, "%s", c.ids[0]);
	buf_free(&names);
	catalog_free(&c);
	return rc;
}

struct key_load {
	struct repo *r;
	const struct keys_kek *kek;	/* NULL: the control plane unwraps */
	struct cplane cp;		/* ... at cp.url */
	const struct keys_set *set;	/* the key set; NULL: none (yet) */
	int pass;			/* with a set: 1 the identity key, 2 its data keys */
	int mine, others, loaded;
	char other_kek[KEYS_ID_SIZE];
	char newest[KEYS_ID_SIZE];
	uint64_t newest_created;
	int refused;			/* wraps the control plane would not open */
	char *why;			/* the last reason it gave */
};

static int ring_has(const struct keys_ring *ring, const char *key_id)
{
	for (size_t i = 0; i < keys_ring_count(ring); i++)
		if (!strcmp(keys_key_id(keys_ring_key(ring, i)), key_id))
			return 1;
	return 0;
}

/* Asks the control plane to unwrap obj and adds the key.  A wrap it will
 * not open (another tenant key, say, during a rotation) is skipped: 0. */
static int key_unwrap_remote(struct key_load *k, const struct buf *obj, const char *key_id,
			     const char *kek_id, enum keys_key_kind kind)
{
	uint8_t *key = sodium_malloc(KEYS_KEY_LEN);
	int rc = key ? 0 : -ENOMEM;

	if (!rc)
		rc = cplane_unwrap(&k->cp, k->r->tenant, k->r->ws_id, key_id, kek_id, obj->data,
				   obj->len, key);
	if (rc == -EACCES || rc == -ENOENT) {
		free(k->why);
		k->why = xstrdup(err_msg());
		k->refused++;
		rc = 1;
	} else if (!rc) {
		rc = keys_ring_add(k->r->ring, kind, key_id, key);
	}
	sodium_free(key);
	return rc;
}

/* Whether this pass of k takes key key_id: with a key set, the identity
 * key it names (pass 1), then the data keys it lists (pass 2); wraps of
 * any other key are never fetched, unwrapped or sent anywhere. */
static int key_wanted(const struct key_load *k, const char *key_id)
{
	if (!k->set)
		return 1;
	if (k->pass == 1)
		return !strcmp(key_id, k->set->identity);
	return keys_set_has(k->set, key_id);
}

static int key_load_one(const char *name, uint64_t size, void *arg)
{
	struct key_load *k = arg;
	char key_id[KEYS_ID_SIZE], kek_id[KEYS_ID_SIZE];
	struct keys_wrap_info info;
	struct buf obj = BUF_INIT;
	int rc;

	(void)size;
	if (keys_wrapped_name_parse(name, key_id, kek_id) || !key_wanted(k, key_id))
		return 0;	/* not a key object, or one not to use: ignore */
	if (k->kek && strcmp(kek_id, keys_kek_id(k->kek)) != 0) {
		k->others++;
		memcpy(k->other_kek, kek_id, sizeof(kek_id));
		return 0;
	}
	if (!k->kek && ring_has(k->r->ring, key_id))
		return 0;	/* opened through another wrap */
	k->mine++;
	rc = store_get_max(k->r->store, name, KEYS_WRAPPED_MAX, "wrapped key", &obj, NULL);
	if (!rc && (rc = keys_wrap_peek(obj.data, obj.len, &info)) != 0)
		err_prefix(rc, "%s", name);
	/* the control plane may only decrypt: the ids are checked here */
	if (!rc && !k->kek && (rc = keys_wrap_check_ids(&info, k->r->ws_id, key_id, kek_id)) != 0)
		err_prefix(rc, "%s", name);
	/* a key set says what kind each of its keys is */
	if (!rc && k->set && info.kind != (k->pass == 1 ? KEYS_KEY_IDENTITY : KEYS_KEY_DATA))
		rc = err_set(-EBADMSG, "%s holds %s key %s, which the key set names as a%s key",
			     name, keys_key_kind_name(info.kind), key_id,
			     k->pass == 1 ? "n identity" : " data");
	if (!rc && k->kek)
		rc = keys_ring_add_wrapped(k->r->ring, k->kek, obj.data, obj.len, key_id, kek_id);
	else if (!rc)
		rc = key_unwrap_remote(k, &obj, key_id, kek_id, info.kind);
	if (!rc && info.kind == KEYS_KEY_DATA &&
	    (!k->newest[0] || info.created > k->newest_created ||
	     (info.created == k->newest_created && strcmp(key_id, k->newest) > 0))) {
		memcpy(k->newest, key_id, sizeof(key_id));
		k->newest_created = info.created;
	}
	buf_free(&obj);
	k->loaded += rc == 0;
	return rc > 0 ? 0 : rc;
}

/* key_load_one for each wrap name, as one pass of k. */
static int load_pass(struct key_load *k, const struct store_names *wraps, int pass)
{
	int rc = 0;

	k->pass = pass;
	for (size_t i = 0; !rc && i < wraps->n; i++)
		rc = key_load_one(wraps->v[i], 0, k);
	return rc;
}

/* The errors of a keyring that lacks its identity key or (need_data) any
 * data key: a wrong tenant key, a rewrap half done, a control plane that
 * would not unwrap, or a damaged repository. */
static int ring_lacks(struct repo *r, const struct key_load *k, const struct keys_kek *kek,
		      int need_data)
{
	const struct keys_key *id;
	int lacks = keys_ring_identity(r->ring, &id) != 0 || (need_data && !k->newest[0]);

	err_clear();
	if (k->mine == 0 && k->others > 0)
		return err_set(-EACCES, "no key of workspace %s is wrapped by tenant key %s (found tenant key %s): wrong tenant key?",
			       r->ws_id, keys_kek_id(kek), k->other_kek);
	if (!lacks)
		return 0;
	if (k->refused)
		return err_set(-EACCES, "the control plane unwrapped no usable key of workspace %s: %s",
			       r->ws_id, k->why);
	if (k->others)
		return err_set(-EACCES, "workspace %s: tenant key %s wraps only some of its keys, the others are wrapped by tenant key %s: a rewrap (cairn-keyadm rewrap) is under way or was interrupted; run it again",
			       r->ws_id, keys_kek_id(kek), k->other_kek);
	return err_set(-EBADMSG, "workspace %s: keys/ lacks its identity or data key: the repository is damaged",
		       r->ws_id);
}

/* With a key set: the current key it names must have been unwrapped (new
 * writes must not go on under another key, nor fall back to one
 * silently); a listed key without a wrap is said once. */
static int set_keys_present(struct repo *r, const struct key_load *k, const struct keys_kek *kek)
{
	const struct keys_set *set = k->set;

	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->live[i], set->current) && !ring_has(r->ring, set->live[i]) &&
		    !k->others && !k->refused)
			log_warn("workspace %s: data key %s of its key set has no wrap in keys/: what it sealed cannot be read",
				 r->ws_id, set->live[i]);
	if (ring_has(r->ring, set->current))
		return 0;
	if (k->refused)
		return err_set(-EACCES, "the control plane did not unwrap data key %s, the current key of workspace %s: %s",
			       set->current, r->ws_id, k->why);
	if (k->others)
		return err_set(-EACCES, "workspace %s: tenant key %s does not wrap its current data key %s, tenant key %s wraps some of its keys: a rewrap (cairn-keyadm rewrap) is under way or was interrupted; run it again",
			       r->ws_id, kek ? keys_kek_id(kek) : "(control plane)", set->current, k->other_kek);
	return err_set(-EBADMSG, "workspace %s: its key set (serial %llu) names data key %s as current, but keys/ holds no wrap of it: the wrap was deleted; restore keys/%s.* from a copy of the store (writes must not go on under an older data key)",
		       r->ws_id, (unsigned long long)set->serial, set->current, set->current);
}

/* Unwraps the keys of the workspace that kek wraps (or, kek NULL, that the
 * control plane at url unwraps).  With a key set (REPO_KEYSET_NAME): its
 * identity key, then, once the set verifies with it, only the data keys it
 * lists, and its current one becomes current.  Without one (a workspace
 * made before key sets): every key, the newest data key (by its
 * authenticated creation time) current. */
static int load_keys(struct repo *r, const struct keys_kek *kek, const char *url)
{
	struct key_load k = { .r = r, .kek = kek, .cp = { url, r->cp.token_file, r->cp.ca_file } };
	struct keys_set *set = xcalloc(1, sizeof(*set));
	struct store_names wraps = { 0 };
	struct buf obj = BUF_INIT;
	struct store_info info;
	int rc = keys_ring_empty(r->ws_id, &r->ring);

	if (!rc) {
		rc = repo_keyset_fetch(r, &obj, set, &info);
		if (!rc)
			k.set = set;
		else if (rc == -ENOENT && r->config_format >= REPO_FORMAT_VERSION)
			rc = err_set(-EBADMSG, "workspace %s: its config says format %d, but the store has no key set (%s" REPO_KEYSET_NAME "): it was deleted; restore it from a copy of the store",
				     r->ws_id, r->config_format, r->store->url);
		else if (rc == -ENOENT)
			rc = 0;	/* made before key sets: every key counts */
	}
	if (!rc)
		rc = store_list_names(r->store, "keys/", &wraps);
	if (!rc)
		rc = load_pass(&k, &wraps, 1);
	if (!rc && k.set) {
		if (!ring_has(r->ring, set->identity) && !k.others && !k.refused)
			rc = err_set(-EBADMSG, "workspace %s: its key set names identity key %s, but keys/ holds no wrap of it: the key set was altered or keys/ damaged; restore them from a copy of the store",
				     r->ws_id, set->identity);
		if (!rc)
			rc = ring_lacks(r, &k, kek, 0);
		if (!rc && (rc = keys_set_verify(r->ring, obj.data, obj.len)) != 0)
			err_prefix(rc, "%s" REPO_KEYSET_NAME, r->store->url);
		if (!rc)
			rc = load_pass(&k, &wraps, 2);
		if (!rc)
			rc = set_keys_present(r, &k, kek);
		if (!rc)
			rc = keys_ring_set_current(r->ring, set->current);
		if (!rc) {
			r->current_created = k.newest_created;
			r->keyset = set;
			set = NULL;
			snprintf(r->keyset_etag, sizeof(r->keyset_etag), "%s", info.etag);
		}
	} else if (!rc) {
		rc = ring_lacks(r, &k, kek, 1);
		if (!rc) {
			r->current_created = k.newest_created;
			rc = keys_ring_set_current(r->ring, k.newest);
		}
	}
	if (set)
		keys_set_free(set);
	free(set);
	store_names_free(&wraps);
	buf_free(&obj);
	free(k.why);
	return rc;
}

/* create: make a file:// store's directory when it is missing (init
 * only: every other command finds the store or says it is not there). */
static int open_base(struct repo *r, const struct repo_opts *opts, int create)
{
	struct store_opts so = { 0 };
	char *base, *probe_dir;
	int rc;

	if (!opts->store_url || !*opts->store_url)
		return err_set(-EINVAL, "no store given: use --store URL (or CAIRN_STORE, or `store` in cairn.conf)");
	if (!tenant_valid(r->tenant) || (opts->tenant && strlen(opts->tenant) > REPO_TENANT_MAX))
		return err_set(-EINVAL, "bad tenant name '%.*s%s': use 1 to %d letters, digits, '.', '_' and '-'",
			       REPO_TENANT_MAX, opts->tenant && *opts->tenant ? opts->tenant : r->tenant,
			       opts->tenant && strlen(opts->tenant) > REPO_TENANT_MAX ? "..." : "",
			       REPO_TENANT_MAX);
	if (opts->workspace && *opts->workspace && !keys_ws_id_valid(opts->workspace))
		return err_set(-EINVAL, "bad workspace id '%s'", opts->workspace);
	/* what the store's probe learns is kept for the machine, beside the
	 * workspaces' state dirs (store_cond.c) */
	base = state_base(opts);
	so.probe_dir = probe_dir = base ? xasprintf("%s/" REPO_PROBE_DIR, base) : NULL;
	so.unsafe_no_cond = opts->unsafe_no_cond;
	so.create = create;
	rc = store_open(opts->store_url, &so, &r->base);
	free(probe_dir);
	free(base);
	return rc;
}

int repo_open(const struct repo_opts *opts, struct repo **out)
{
	struct repo *r = repo_new(opts);
	struct keys_kek *kek = NULL;
	char ws[KEYS_WS_ID_MAX + 1];
	int rc;

	*out = NULL;
	rc = open_base(r, opts, 0);
	if (!rc && opts->workspace && *opts->workspace)
		snprintf(ws, sizeof(ws), "%s", opts->workspace);
	else if (!rc)
		rc = pick_workspace(r, ws, sizeof(ws));
	if (!rc)
		rc = repo_attach(r, ws);
	if (!rc)
		rc = config_check(r);
	if (!rc && keys_provider_remote(opts->key))
		rc = load_keys(r, NULL, opts->key);
	else if (!rc && !(rc = keys_provider_load(opts->key, &kek)))
		rc = load_keys(r, kek, NULL);
	if (!rc)
		rc = state_dir_make(r, opts);
	if (!rc)
		rc = repo_keyset_check(r);
	keys_kek_free(kek);
	if (rc) {
		repo_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

int repo_tenant_workspaces(const struct repo_opts *opts, char ***ids, size_t *n)
{
	struct repo *r = repo_new(opts);
	struct catalog c = { 0 };
	int rc = open_base(r, opts, 0);

	if (!rc)
		rc = catalog_list(r, &c);
	repo_close(r);
	if (rc) {
		catalog_free(&c);
		c.ids = NULL;
		c.n = 0;
	}
	*ids = c.ids;
	*n = c.n;
	return rc;
}

int repo_open_bare(const struct repo_opts *opts, const char *ws_id, struct repo **out)
{
	struct repo *r = repo_new(opts);
	int rc = open_base(r, opts, 0);

	*out = NULL;
	if (!rc && !keys_ws_id_valid(ws_id))
		rc = err_set(-EINVAL, "bad workspace id '%s'", ws_id);
	if (!rc)
		rc = repo_attach(r, ws_id);
	if (!rc)
		rc = config_check(r);
	if (rc) {
		repo_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* The data keys of r's ring, in *live (n of them, to free). */
static void ring_data_keys(const struct repo *r, char (**live)[KEYS_ID_SIZE], size_t *n)
{
	*live = xcalloc(keys_ring_count(r->ring) + 1, sizeof(**live));
	*n = 0;
	for (size_t i = 0; i < keys_ring_count(r->ring); i++) {
		const struct keys_key *key = keys_ring_key(r->ring, i);

		if (keys_key_kind(key) == KEYS_KEY_DATA)
			snprintf((*live)[(*n)++], KEYS_ID_SIZE, "%s", keys_key_id(key));
	}
}

int repo_add_data_key(struct repo *r, const struct keys_kek *kek, char key_id[KEYS_ID_SIZE])
{
	char name[KEYS_WRAPPED_NAME_SIZE];
	const struct keys_key *k;
	struct buf b = BUF_INIT;
	uint64_t now = (uint64_t)time(NULL);
	int rc = keys_ring_rotate(r->ring, &k);

	/* the newest by creation time is the current one: be newer than it
	 * even within the same second */
	if (now <= r->current_created)
		now = r->current_created + 1;
	if (!rc)
		rc = keys_ring_wrap_at(r->ring, kek, keys_key_id(k), now, &b);
	if (!rc)
		rc = keys_wrapped_name(keys_key_id(k), keys_kek_id(kek), name, sizeof(name));
	if (!rc)
		rc = store_put(r->store, name, b.data, b.len, STORE_IF_NONE_MATCH, NULL, NULL);
	if (!rc) {
		snprintf(key_id, KEYS_ID_SIZE, "%s", keys_key_id(k));
		r->current_created = now;
	}
	sodium_memzero(b.data, b.len);
	buf_free(&b);
	return rc;
}

int repo_rotate_data_key(struct repo *r, const struct keys_kek *kek, char key_id[KEYS_ID_SIZE])
{
	char (*live)[KEYS_ID_SIZE], name[KEYS_WRAPPED_NAME_SIZE];
	size_t n = 0;
	int rc = repo_add_data_key(r, kek, key_id);

	if (rc)
		return rc;
	/* the new set: what the old one listed (or, before key sets, every
	 * data key the ring holds), and the new key, current */
	if (r->keyset) {
		live = xcalloc(r->keyset->n + 1, sizeof(*live));
		memcpy(live, r->keyset->live, r->keyset->n * sizeof(*live));
		n = r->keyset->n;
		snprintf(live[n++], KEYS_ID_SIZE, "%s", key_id);
	} else {
		ring_data_keys(r, &live, &n);
	}
	rc = repo_keyset_write(r, key_id, (const char (*)[KEYS_ID_SIZE])live, n);
	free(live);
	if (rc && !keys_wrapped_name(key_id, keys_kek_id(kek), name, sizeof(name))) {
		/* no key set lists it: its wrap would only be in the way */
		char *why = xstrdup(err_msg());

		store_del(r->store, name);
		rc = err_set(rc, "%s", why);
		free(why);
	}
	return rc;
}

/* Loads the tenant key, or makes it when asked and the file is missing. */
static int init_kek(const struct repo_opts *opts, int create_key, struct keys_kek **kek,
		    int *created)
{
	const char *path = keys_provider_file(opts->key);
	int rc;

	*created = 0;
	if (create_key && !path)
		return err_set(-EINVAL, "--create-key needs a file: key provider (--key file:PATH)");
	if (create_key && access(path, F_OK) < 0) {
		rc = keys_kek_generate(kek);
		if (!rc)
			rc = keys_kek_write_file(*kek, path);
		*created = rc == 0;
		return rc;
	}
	return keys_provider_load(opts->key, kek);
}

/* The keys of a new workspace, wrapped and stored.  init writes its config
 * last, so keys without a config are what an interrupted init left (of a
 * workspace id given with --workspace), or what another machine making
 * the same workspace has written so far: they are taken up, and only what
 * is missing is made, since a second identity key would leave the
 * workspace unopenable.  The identity key's id comes from the workspace id,
 * so of two machines that both found no keys, one fails to create it
 * (-EEXIST) and takes up the other's.  Keys that kek does not wrap are
 * refused. */
static int init_keys(struct repo *r, const struct keys_kek *kek, int again)
{
	struct key_load k = { .r = r, .kek = kek };
	const struct keys_key *id;
	struct buf b = BUF_INIT;
	char key_id[KEYS_ID_SIZE];
	int rc;

	keys_ring_free(r->ring);
	rc = keys_ring_empty(r->ws_id, &r->ring);
	if (!rc)
		rc = store_list(r->store, "keys/", key_load_one, &k);
	if (!rc && k.others)
		return err_set(-EACCES, "workspace %s has no config but keys wrapped by tenant key %s, not %s: an init under that tenant key was interrupted; run it again with that key, or use another workspace id",
			       r->ws_id, k.other_kek, keys_kek_id(kek));
	if (!rc && k.loaded && keys_ring_identity(r->ring, &id) != 0)
		return err_set(-EBADMSG, "workspace %s has no config and keys without an identity key: use another workspace id",
			       r->ws_id);
	if (!rc && k.loaded) {
		if (!k.newest[0])
			return repo_add_data_key(r, kek, key_id);
		r->current_created = k.newest_created;
		return keys_ring_set_current(r->ring, k.newest);
	}
	if (rc)
		return rc;
	keys_ring_free(r->ring);
	rc = keys_ring_new(r->ws_id, &r->ring);
	for (size_t i = 0; !rc && i < keys_ring_count(r->ring); i++) {
		const char *kid = keys_key_id(keys_ring_key(r->ring, i));
		char name[KEYS_WRAPPED_NAME_SIZE];

		buf_reset(&b);
		rc = keys_ring_wrap(r->ring, kek, kid, &b);
		if (!rc)
			rc = keys_wrapped_name(kid, keys_kek_id(kek), name, sizeof(name));
		if (!rc)
			rc = store_put(r->store, name, b.data, b.len, STORE_IF_NONE_MATCH, NULL, NULL);
		if (rc == -EEXIST && i == 0 && !again) {
			err_clear();	/* made meanwhile: take it up */
			sodium_memzero(b.data, b.len);
			buf_free(&b);
			return init_keys(r, kek, 1);
		}
	}
	sodium_memzero(b.data, b.len);
	buf_free(&b);
	return rc;
}

/* The key set of a new workspace (serial 1: its data keys, the current
 * one current), written after its keys and before its config.  One that
 * is there already (an interrupted init, or another machine making the
 * same workspace) is taken up once it verifies. */
static int init_keyset(struct repo *r, int again)
{
	struct keys_set *set = xcalloc(1, sizeof(*set));
	struct buf obj = BUF_INIT;
	struct store_info info;
	const struct keys_key *cur;
	char (*live)[KEYS_ID_SIZE];
	size_t n;
	int rc = repo_keyset_fetch(r, &obj, set, &info);

	if (rc == -ENOENT) {
		err_clear();
		ring_data_keys(r, &live, &n);
		rc = keys_ring_current(r->ring, &cur);
		if (!rc)
			rc = repo_keyset_write(r, keys_key_id(cur), (const char (*)[KEYS_ID_SIZE])live, n);
		free(live);
		if (rc == -ECANCELED && !again) {
			err_clear();	/* made meanwhile: take it up */
			rc = init_keyset(r, 1);
		}
	} else if (!rc) {
		rc = keys_set_verify(r->ring, obj.data, obj.len);
		if (rc)
			err_prefix(rc, "%s" REPO_KEYSET_NAME, r->store->url);
		else
			rc = keys_ring_set_current(r->ring, set->current);
		if (!rc) {
			r->keyset = set;
			set = NULL;
			snprintf(r->keyset_etag, sizeof(r->keyset_etag), "%s", info.etag);
		}
	}
	if (set)
		keys_set_free(set);
	free(set);
	buf_free(&obj);
	return rc;
}

int repo_init(const struct repo_opts *opts, int create_key, struct repo **out)
{
	struct repo *r = repo_new(opts);
	struct keys_kek *kek = NULL;
	struct buf b = BUF_INIT;
	char id[KEYS_ID_SIZE], *catalog = NULL;
	int rc, created = 0;

	*out = NULL;
	rc = open_base(r, opts, 1);
	if (!rc)	/* learn the store's rules afresh: the next put is conditional */
		rc = store_cond_probe(r->base, &(struct store_cond_rules){ 0 });
	if (!rc)
		rc = init_kek(opts, create_key, &kek, &created);
	if (!rc && opts->workspace && *opts->workspace) {
		rc = repo_attach(r, opts->workspace);
	} else if (!rc) {
		keys_random_id(id);
		rc = repo_attach(r, id);
	}
	if (!rc && store_head(r->store, "config", NULL) == 0) {
		/* an init stopped after its config: the catalog entry may be missing */
		catalog = xasprintf(CATALOG_FMT "%s", r->tenant, r->ws_id);
		store_put(r->base, catalog, "", 0, STORE_ALWAYS, NULL, NULL);
		rc = err_set(-EEXIST, "workspace %s of tenant %s already exists in %s",
			     r->ws_id, r->tenant, r->base->url);
	}
	if (!rc)
		rc = init_keys(r, kek, 0);
	r->config_format = REPO_FORMAT_VERSION;	/* written next */
	if (!rc)
		rc = init_keyset(r, 0);
	if (!rc) {
		buf_reset(&b);
		repo_config_encode(r, &b);
		rc = store_put(r->store, "config", b.data, b.len, STORE_IF_NONE_MATCH, NULL, NULL);
		if (rc == -EEXIST)
			rc = err_set(-EEXIST, "workspace %s was created by someone else meanwhile",
				     r->ws_id);
	}
	if (!rc) {
		catalog = xasprintf(CATALOG_FMT "%s", r->tenant, r->ws_id);
		rc = store_put(r->base, catalog, "", 0, STORE_ALWAYS, NULL, NULL);
	}
	if (!rc)
		rc = state_dir_make(r, opts);
	if (!rc)
		rc = repo_keyset_note(r);
	if (rc && created)
		unlink(keys_provider_file(opts->key));
	keys_kek_free(kek);
	buf_free(&b);
	free(catalog);
	if (rc) {
		repo_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

int repo_init_if_missing(const struct repo_opts *opts, int *created)
{
	struct repo *r = repo_new(opts);
	int rc;

	*created = 0;
	if (!opts->workspace || !*opts->workspace)
		rc = err_set(-EINVAL, "init = yes needs the workspace id pinned (workspace = ID in cairn.conf): without one, every start would make a new workspace");
	else
		rc = open_base(r, opts, 0);
	if (!rc)
		rc = repo_attach(r, opts->workspace);
	if (!rc)
		rc = store_head(r->store, "config", NULL);
	repo_close(r);
	if (rc != -ENOENT)
		return rc;
	err_clear();
	rc = repo_init(opts, 0, &r);
	if (rc == -EEXIST) {	/* made meanwhile by another machine */
		err_clear();
		return 0;
	}
	if (!rc)
		repo_close(r);
	*created = rc == 0;
	return rc;
}

void repo_close(struct repo *r)
{
	if (!r)
		return;
	if (r->lease)
		repo_lease_release(r);
	fetch_cache_free(r->tree_packs);
	store_close(r->store);
	store_close(r->base);
	keys_ring_free(r->ring);
	if (r->keyset)
		keys_set_free(r->keyset);
	free(r->keyset);
	free(r->state_dir);
	free(r->host_id);
	free(r->takeover_from);
	free(r->lease_ttl);
	free((char *)r->cp.url);
	free((char *)r->cp.token_file);
	free((char *)r->cp.ca_file);
	free(r);
}

int repo_put_sealed(struct repo *r, enum keys_obj_kind kind, const char *name,
		    const void *plain, size_t len, enum store_cond cond,
		    const char *etag, struct store_info *info)
{
	const struct keys_key *dk;
	struct buf sealed = BUF_INIT;
	int rc = keys_ring_current(r->ring, &dk);

	if (!rc)
		rc = keys_seal_object(dk, kind, name, r->ws_id, plain, len, &sealed);
	if (!rc)
		rc = store_put(r->store, name, sealed.data, sealed.len, cond, etag, info);
	buf_free(&sealed);
	return rc;
}

uint64_t repo_object_max(enum keys_obj_kind kind, const char **what)
{
	const char *w = keys_obj_kind_name(kind);
	uint64_t max;

	switch (kind) {
	case KEYS_OBJ_INDEX: max = INDEX_OBJECT_MAX; w = "index object"; break;
	case KEYS_OBJ_SNAPSHOT: max = REPO_SNAPSHOT_MAX; w = "snapshot record"; break;
	case KEYS_OBJ_HEAD: max = REPO_HEAD_MAX; break;
	case KEYS_OBJ_LEASE: max = REPO_LEASE_MAX; break;
	default: max = PACK_HEADER_SEALED_MAX; break;
	}
	if (what)
		*what = w;
	return max;
}

int repo_get_sealed(struct repo *r, enum keys_obj_kind kind, const char *name,
		    struct buf *plain, struct store_info *info)
{
	struct buf sealed = BUF_INIT;
	const char *what;
	uint64_t max = repo_object_max(kind, &what);
	int rc = store_get_max(r->store, name, max, what, &sealed, info);

	if (!rc)
		rc = keys_ring_open_object(r->ring, kind, name, r->ws_id, sealed.data, sealed.len, plain);
	if (rc && rc != -ENOENT)
		err_prefix(rc, "%s%s", r->store->url, name);
	buf_free(&sealed);
	return rc;
}
