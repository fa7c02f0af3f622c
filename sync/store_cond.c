/*
 * store_cond.c - how a store honours conditional puts: the rules a probe
 * learns (store_ops.cond_probe), their words in messages, the refusal of a
 * store that honours none, and the small cache file that lets a process
 * skip the probe when this machine has run it before.
 *
 * Must stay true: only a store found to honour conditional puts is cached
 * (one that did not is probed again each time, so a fixed server is seen
 * at once); a cache file that is unreadable, of another store, or older
 * than STORE_COND_CACHE_SECONDS counts as absent; the file holds no secret.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "fsutil.h"
#include "store.h"

/* A week: a server replaced under the same endpoint is noticed by then. */
#define STORE_COND_CACHE_SECONDS (7 * 24 * 3600)

bool store_cond_honoured(const struct store_cond_rules *rules)
{
	return rules->create_only &&
	       (rules->match == STORE_MATCH_QUOTED || rules->match == STORE_MATCH_BARE ||
		rules->match == STORE_MATCH_NATIVE);
}

int store_cond_probe(struct store *s, struct store_cond_rules *rules)
{
	int rc;

	if (!s->ops->cond_probe) {
		*rules = (struct store_cond_rules){ true, STORE_MATCH_NATIVE };
		return 0;
	}
	rc = s->ops->cond_probe(s, rules);
	return rc ? err_prefix(rc, "%s", s->url) : 0;
}

void store_cond_describe(const struct store_cond_rules *rules, struct buf *out)
{
	static const char *const ignores[] = {
		[STORE_MATCH_UNKNOWN] = "its If-Match was not probed",
		[STORE_MATCH_QUOTED] = "",
		[STORE_MATCH_BARE] = "",
		[STORE_MATCH_IGNORED] = "it ignores If-Match",
		[STORE_MATCH_REFUSED] = "it refuses If-Match with the object's own ETag, quoted or bare",
		[STORE_MATCH_NATIVE] = "",
	};

	if (store_cond_honoured(rules)) {
		buf_adds(out, rules->match == STORE_MATCH_NATIVE ?
			 "create-only and compare-and-swap, done by the store itself" :
			 rules->match == STORE_MATCH_BARE ?
			 "If-None-Match: * and If-Match with the ETag without quotes" :
			 "If-None-Match: * and If-Match with the quoted ETag");
		return;
	}
	if (!rules->create_only)
		buf_adds(out, "it ignores If-None-Match: *");
	if (!rules->create_only && *ignores[rules->match])
		buf_adds(out, ", and ");
	buf_adds(out, ignores[rules->match]);
}

int store_cond_refuse(const char *where, const struct store_cond_rules *rules)
{
	struct buf why = BUF_INIT;
	int rc;

	if (store_cond_honoured(rules))
		return 0;
	store_cond_describe(rules, &why);
	rc = err_set(-ENOTSUP, "%s does not honour conditional writes (%s): cairn's lease and head "
		     "depend on them, so it refuses this store; use one that honours them (AWS S3, "
		     "Cloudflare R2, Ceph RGW), or accept that two writers can overwrite each "
		     "other's snapshots with unsafe_no_conditional_writes = yes in cairn.conf or "
		     "CAIRN_UNSAFE_NO_CONDITIONAL_WRITES=1", where, buf_str(&why));
	buf_free(&why);
	return rc;
}

/* ---- the cache file ------------------------------------------------------ */

static const char *const form_names[] = {
	[STORE_MATCH_UNKNOWN] = "unknown", [STORE_MATCH_QUOTED] = "quoted",
	[STORE_MATCH_BARE] = "bare", [STORE_MATCH_IGNORED] = "ignored",
	[STORE_MATCH_REFUSED] = "refused", [STORE_MATCH_NATIVE] = "native",
};

static enum store_match_form form_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(form_names) / sizeof(*form_names); i++)
		if (!strcmp(name, form_names[i]))
			return (enum store_match_form)i;
	return STORE_MATCH_UNKNOWN;
}

/* DIR/<16 hex of BLAKE2b(endpoint, bucket)>: the server's rules, whatever
 * the prefix under the bucket. */
static char *cache_path(const char *dir, const char *endpoint, const char *bucket)
{
	crypto_generichash_state h;
	unsigned char d[8];
	char hex[2 * sizeof(d) + 1];

	crypto_generichash_init(&h, NULL, 0, sizeof(d));
	crypto_generichash_update(&h, (const unsigned char *)endpoint, strlen(endpoint));
	crypto_generichash_update(&h, (const unsigned char *)"\n", 1);
	crypto_generichash_update(&h, (const unsigned char *)bucket, strlen(bucket));
	crypto_generichash_final(&h, d, sizeof(d));
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	return xasprintf("%s/%s", dir, hex);
}

int store_cond_cache_load(const char *dir, const char *endpoint, const char *bucket,
			  struct store_cond_rules *out)
{
	char *path = cache_path(dir, endpoint, bucket);
	FILE *f = fopen(path, "r");
	char line[512];
	int have_endpoint = 0, have_bucket = 0, have_create = 0;
	long long probed = 0;
	struct store_cond_rules r = { false, STORE_MATCH_UNKNOWN };
	time_t now = time(NULL);

	free(path);
	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ' ');

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || !v)
			continue;
		*v++ = '\0';
		if (!strcmp(line, "endpoint"))
			have_endpoint = !strcmp(v, endpoint);
		else if (!strcmp(line, "bucket"))
			have_bucket = !strcmp(v, bucket);
		else if (!strcmp(line, "create-only"))
			have_create = r.create_only = !strcmp(v, "yes");
		else if (!strcmp(line, "if-match"))
			r.match = form_by_name(v);
		else if (!strcmp(line, "probed"))
			probed = strtoll(v, NULL, 10);
	}
	fclose(f);
	if (!have_endpoint || !have_bucket || !have_create || !store_cond_honoured(&r) ||
	    probed > now + 300 || now - probed > STORE_COND_CACHE_SECONDS)
		return -ENOENT;
	*out = r;
	return 0;
}

int store_cond_cache_save(const char *dir, const char *endpoint, const char *bucket,
			  const struct store_cond_rules *rules)
{
	char *path = cache_path(dir, endpoint, bucket);
	char *tmp = xasprintf("%s.XXXXXX", path);
	struct buf text = BUF_INIT;
	int fd, rc;

	if (!store_cond_honoured(rules)) {
		unlink(path);	/* never trusted from a cache */
		free(tmp);
		free(path);
		return 0;
	}
	rc = fsu_mkdir_parents(path);
	fd = rc ? -1 : mkstemp(tmp);
	if (fd < 0) {
		rc = rc ? rc : -errno;
		goto out;
	}
	buf_printf(&text, "# how this S3 server honours conditional puts, as cairn's probe found;\n"
		   "# remove this file to probe again (cairn(1), CONDITIONAL WRITES)\n"
		   "endpoint %s\nbucket %s\ncreate-only yes\nif-match %s\nprobed %lld\n",
		   endpoint, bucket, form_names[rules->match], (long long)time(NULL));
	rc = fsu_write_all(fd, text.data, text.len);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
out:
	buf_free(&text);
	free(tmp);
	free(path);
	return rc;
}
