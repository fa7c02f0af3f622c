/*
 * store_prefix.c - a store layer that puts a fixed prefix in front of every
 * key: the repository code names its objects relative to its workspace
 * ("head", "data/ab/..."), and this layer maps them to
 * "tenants/<tenant>/workspaces/<id>/head" in the store underneath.
 *
 * The layer owns nothing but the prefix; the base store outlives it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store.h"

struct prefix_store {
	struct store *base;
	char *prefix;		/* ends with '/' */
	size_t len;
};

static char *full_key(struct store *s, const char *key)
{
	struct prefix_store *p = s->priv;

	return xasprintf("%s%s", p->prefix, key);
}

static struct store *base_of(struct store *s)
{
	return ((struct prefix_store *)s->priv)->base;
}

static int px_put(struct store *s, const char *key, const void *data, size_t len,
		  enum store_cond cond, const char *etag, struct store_info *info)
{
	char *k = full_key(s, key);
	int rc = base_of(s)->ops->put(base_of(s), k, data, len, cond, etag, info);

	free(k);
	return rc;
}

static int px_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, struct store_info *info)
{
	char *k = full_key(s, key);
	int rc = base_of(s)->ops->get(base_of(s), k, off, len, out, info);

	free(k);
	return rc;
}

static int px_get_max(struct store *s, const char *key, uint64_t max, struct buf *out,
		      struct store_info *info)
{
	char *k = full_key(s, key);
	int rc = store_get_max_op(base_of(s), k, max, out, info);

	free(k);
	return rc;
}

static int px_head(struct store *s, const char *key, struct store_info *info)
{
	char *k = full_key(s, key);
	int rc = base_of(s)->ops->head(base_of(s), k, info);

	free(k);
	return rc;
}

struct px_list {
	size_t skip;
	store_list_fn fn;
	void *arg;
};

static int px_list_one(const char *key, uint64_t size, void *arg)
{
	struct px_list *l = arg;

	return l->fn(key + l->skip, size, l->arg);
}

static int px_list(struct store *s, const char *prefix, store_list_fn fn, void *arg)
{
	struct prefix_store *p = s->priv;
	struct px_list l = { p->len, fn, arg };
	char *k = full_key(s, prefix);
	int rc = p->base->ops->list(p->base, k, px_list_one, &l);

	free(k);
	return rc;
}

static int px_del(struct store *s, const char *key)
{
	char *k = full_key(s, key);
	int rc = base_of(s)->ops->del(base_of(s), k);

	free(k);
	return rc;
}

static int px_del_many(struct store *s, const char *const *keys, size_t n)
{
	char **full = xmalloc(n * sizeof(*full));
	int rc;

	for (size_t i = 0; i < n; i++)
		full[i] = full_key(s, keys[i]);
	rc = base_of(s)->ops->del_many(base_of(s), (const char *const *)full, n);
	for (size_t i = 0; i < n; i++)
		free(full[i]);
	free(full);
	return rc;
}

/* The server's rules are the base store's; its probe writes under its own
 * base, not under the prefix. */
static int px_cond_probe(struct store *s, struct store_cond_rules *rules)
{
	struct store *base = base_of(s);

	if (!base->ops->cond_probe) {
		*rules = (struct store_cond_rules){ true, STORE_MATCH_NATIVE };
		return 0;
	}
	return base->ops->cond_probe(base, rules);
}

static void px_close(struct store *s)
{
	struct prefix_store *p = s->priv;

	free(p->prefix);
	free(p);
	free(s->url);
	free(s);
}

static const struct store_ops prefix_store_ops = {
	.put = px_put,
	.get = px_get,
	.get_max = px_get_max,
	.head = px_head,
	.list = px_list,
	.del = px_del,
	.del_many = px_del_many,
	.cond_probe = px_cond_probe,
	.close = px_close,
};

int store_prefix_open(struct store *base, const char *prefix, struct store **out)
{
	struct prefix_store *p;
	struct store *s;
	size_t n = strlen(prefix);

	char *bare = xstrndup(prefix, n ? n - 1 : 0);
	int valid = n > 0 && prefix[n - 1] == '/' && store_key_valid(bare);

	free(bare);
	if (!valid)
		return err_set(-EINVAL, "bad store prefix '%s'", prefix);
	p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->prefix = xstrdup(prefix);
	p->len = n;
	s = xcalloc(1, sizeof(*s));
	s->ops = &prefix_store_ops;
	s->url = xasprintf("%s%s%s", base->url,
			   base->url[strlen(base->url) - 1] == '/' ? "" : "/", prefix);
	s->priv = p;
	*out = s;
	return 0;
}
