/*
 * cmd-cat.c - `cairn cat KIND [NAME]`: one object of the repository,
 * opened and printed, for debugging.  Records (head, lease, snapshots) are
 * printed as their JSON, the index, packs, trees and wrapped keys as JSON
 * describing them, a blob as its raw bytes.  A wrapped key shows its
 * plaintext header only, never the key.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "blob.h"
#include "check.h"
#include "cmd-common.h"
#include "err.h"
#include "fetch.h"
#include "tree.h"

/* Pretty on a terminal or for people, one line with --json. */
static void print_json(const struct cmd_common *c, json_t *o)
{
	char *text;

	if (c->json) {
		cmd_json_line(o);
		return;
	}
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(o);
}

static int write_raw(const void *data, size_t len)
{
	if (len && fwrite(data, 1, len, stdout) != len)
		return err_set(-EIO, "cannot write to standard output: %s", strerror(errno));
	if (fflush(stdout))
		return err_set(-EIO, "cannot write to standard output: %s", strerror(errno));
	return 0;
}

static const char *hex_id(const uint8_t id[KEYS_BLOB_ID_LEN], char out[BLOB_ID_HEX_SIZE],
			  int full)
{
	blob_id_hex(id, out);
	if (!full)
		out[16] = '\0';
	return out;
}

/* ---- records ------------------------------------------------------------ */

/* Prints a sealed JSON record, then checks it decodes the strict way. */
static int cat_record(const struct cmd_common *c, struct repo *r, enum keys_obj_kind kind,
		      const char *name)
{
	struct buf plain = BUF_INIT;
	json_t *o;
	int rc = repo_get_sealed(r, kind, name, &plain, NULL);

	if (rc == -ENOENT)
		rc = err_set(-ENOENT, "there is no %s object in workspace %s", name, r->ws_id);
	if (rc)
		goto out;
	o = json_loadb((const char *)plain.data, plain.len, 0, NULL);
	if (o) {
		print_json(c, o);
	} else {
		rc = write_raw(plain.data, plain.len);
		if (!rc)
			printf("\n");
	}
	if (!rc) {
		if (kind == KEYS_OBJ_HEAD) {
			struct record_head h;

			rc = record_head_decode(plain.data, plain.len, &h);
		} else if (kind == KEYS_OBJ_LEASE) {
			struct record_lease l;

			rc = record_lease_decode(plain.data, plain.len, &l);
		} else {
			struct record_snapshot s;

			rc = record_snapshot_decode(plain.data, plain.len, &s);
			record_snapshot_free(&s);
		}
		if (rc)
			err_prefix(rc, "%s opens but does not decode", name);
	}
out:
	buf_free(&plain);
	return rc;
}

static int cat_config(struct repo *r)
{
	struct buf b = BUF_INIT;
	int rc = store_get_max(r->store, "config", REPO_CONFIG_MAX, "config", &b, NULL);

	if (!rc)
		rc = write_raw(b.data, b.len);
	buf_free(&b);
	return rc;
}

static int cat_snapshot(const struct cmd_common *c, struct repo *r, const char *arg)
{
	char id[RECORD_ID_SIZE], name[16 + RECORD_ID_SIZE];
	int rc = cmd_resolve_snapshot(r, arg, id);

	if (!rc)
		rc = record_snapshot_name(id, name, sizeof(name));
	if (!rc)
		rc = cat_record(c, r, KEYS_OBJ_SNAPSHOT, name);
	return rc;
}

/* ---- index and packs ---------------------------------------------------- */

static json_t *entry_json(const struct pack_entry *e)
{
	char hex[BLOB_ID_HEX_SIZE];

	blob_id_hex(e->ref.id, hex);
	return json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:s}", "id", hex,
			 "type", keys_blob_type_name(e->ref.type),
			 "compression", e->ref.compression == BLOB_ZSTD ? "zstd" :
					e->ref.compression == BLOB_RAW ? "raw" : "unknown",
			 "offset", (json_int_t)e->offset, "length", (int)e->ref.length,
			 "raw_length", (int)e->ref.raw_length, "key", e->ref.key_id);
}

struct index_dump {
	const struct cmd_common *c;
	const struct index *idx;
	json_t *packs;
	size_t entries;
	int rc;
};

static int dump_pack(const char *pack, size_t n_entries, int listed, void *arg)
{
	struct index_dump *d = arg;
	struct pack_entry *ents = NULL;
	size_t n = 0;

	(void)listed;
	d->entries += n_entries;
	json_array_append_new(d->packs, json_pack("{s:s, s:I}", "pack", pack,
						  "entries", (json_int_t)n_entries));
	if (!d->c->json)
		return 0;
	d->rc = index_pack_entries(d->idx, pack, &ents, &n);
	for (size_t i = 0; !d->rc && i < n; i++) {
		json_t *o = entry_json(&ents[i]);

		json_object_set_new(o, "pack", json_string(pack));
		cmd_json_line(o);
	}
	free(ents);
	return d->rc;
}

static int cat_index(const struct cmd_common *c, struct repo *r, const char *arg)
{
	char *name = strncmp(arg, INDEX_PREFIX, strlen(INDEX_PREFIX)) ?
		     xasprintf(INDEX_PREFIX "%s", arg) : xstrdup(arg);
	struct index *idx = NULL;
	struct index_dump d = { c, NULL, json_array(), 0, 0 };
	int rc = check_load_index_object(r, name, &idx);

	d.idx = idx;
	if (!rc)
		rc = index_foreach_pack(idx, dump_pack, &d);
	if (!rc)
		print_json(c, json_pack("{s:s, s:I, s:I, s:O}", "index", name,
					"packs", (json_int_t)json_array_size(d.packs),
					"entries", (json_int_t)d.entries, "pack_list", d.packs));
	json_decref(d.packs);
	index_free(idx);
	free(name);
	return rc;
}

/* A pack name, or a bare pack id looked up under data/ and tree/. */
static int pack_name_resolve(struct repo *r, const char *arg, char name[PACK_NAME_SIZE])
{
	static const enum keys_blob_type types[] = { KEYS_BLOB_DATA, KEYS_BLOB_TREE };

	if (!pack_name_parse(arg, NULL)) {
		memcpy(name, arg, PACK_NAME_SIZE);
		return 0;
	}
	for (size_t i = 0; i < 2; i++) {
		if (pack_name_make(types[i], arg, name))
			break;
		if (!store_head(r->store, name, NULL))
			return 0;
	}
	return err_set(-ENOENT, "no pack '%s' in workspace %s: give data/<xx>/<id>, tree/<xx>/<id> or the id",
		       arg, r->ws_id);
}

static int cat_pack(const struct cmd_common *c, struct repo *r, const char *arg)
{
	char name[PACK_NAME_SIZE], b[32];
	struct pack_header h = { 0 };
	int rc = pack_name_resolve(r, arg, name);

	if (!rc)
		rc = pack_load_header(r->store, r->ring, r->ws_id, name, 0, &h);
	if (rc)
		return rc;
	if (c->json) {
		for (size_t i = 0; i < h.count; i++)
			cmd_json_line(entry_json(&h.entries[i]));
		cmd_json_line(json_pack("{s:s, s:s, s:I, s:I}", "pack", name,
					"type", keys_blob_type_name(h.type),
					"blobs", (json_int_t)h.count,
					"blobs_end", (json_int_t)h.blobs_end));
	} else {
		printf("pack %s: %zu %s blobs, %s of blobs before the header\n", name, h.count,
		       keys_blob_type_name(h.type), cmd_bytes(h.blobs_end, b));
		printf("%10s %9s %9s %-4s %-16s %s\n", "offset", "length", "raw", "comp", "key",
		       "blob id");
		for (size_t i = 0; i < h.count; i++) {
			const struct pack_entry *e = &h.entries[i];
			char hex[BLOB_ID_HEX_SIZE];

			blob_id_hex(e->ref.id, hex);
			printf("%10llu %9u %9u %-4s %-16s %s\n", (unsigned long long)e->offset,
			       e->ref.length, e->ref.raw_length,
			       e->ref.compression == BLOB_ZSTD ? "zstd" : "raw", e->ref.key_id, hex);
		}
	}
	pack_header_free(&h);
	return 0;
}

/* ---- blobs and trees ---------------------------------------------------- */

struct blob_match {
	const char *prefix;
	size_t len;
	int type;		/* 0: any */
	uint8_t id[KEYS_BLOB_ID_LEN];
	int found_type;
	size_t found;		/* distinct ids matching */
};

static int match_blob(const struct index_entry *ent, void *arg)
{
	struct blob_match *m = arg;
	char hex[BLOB_ID_HEX_SIZE];

	if (m->type && ent->e.ref.type != m->type)
		return 0;
	blob_id_hex(ent->e.ref.id, hex);
	if (strncmp(hex, m->prefix, m->len))
		return 0;
	if (m->found && !memcmp(m->id, ent->e.ref.id, KEYS_BLOB_ID_LEN))
		return 0;	/* the same blob in another pack */
	memcpy(m->id, ent->e.ref.id, KEYS_BLOB_ID_LEN);
	m->found_type = ent->e.ref.type;
	return ++m->found > 1;	/* stop at the second distinct match */
}

/* A blob id from 64 hex digits or a unique prefix of 8 or more. */
static int blob_resolve(const struct index *idx, const char *arg, int type,
			uint8_t id[KEYS_BLOB_ID_LEN], int *type_out)
{
	struct blob_match m = { arg, strlen(arg), type, { 0 }, 0, 0 };
	const char *what = type == KEYS_BLOB_TREE ? "tree blob" : type ? "data blob" : "blob";

	if (m.len < 8 || m.len > 64 || strspn(arg, "0123456789abcdef") != m.len)
		return err_set(-EINVAL, "'%s' is not a blob id: give 8 to 64 lowercase hex digits", arg);
	index_foreach(idx, match_blob, &m);
	if (m.found == 0)
		return err_set(-ENOENT, "no %s %s in the index", what, arg);
	if (m.found > 1)
		return err_set(-EINVAL, "%s id %s is ambiguous: give more digits", what, arg);
	memcpy(id, m.id, KEYS_BLOB_ID_LEN);
	*type_out = m.found_type;
	return 0;
}

static json_t *tree_entry_json(const struct tree_entry *e, int full)
{
	char hex[BLOB_ID_HEX_SIZE], mode[8];
	json_t *o, *x;

	snprintf(mode, sizeof(mode), "%04o", e->mode);
	o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:i, s:I, s:i}", "name", e->name,
		      "type", tree_type_name(e->type), "mode", mode, "uid", (int)e->uid,
		      "gid", (int)e->gid, "size", (json_int_t)e->size,
		      "mtime", (json_int_t)e->mtime.sec, "mtime_nsec", (int)e->mtime.nsec,
		      "ctime", (json_int_t)e->ctime.sec, "ctime_nsec", (int)e->ctime.nsec);
	json_object_set_new(o, "nlink", json_integer(e->nlink));
	if (e->link_group)
		json_object_set_new(o, "link_group", json_integer((json_int_t)e->link_group));
	if (full) {
		json_object_set_new(o, "ino", json_integer((json_int_t)e->ino));
		json_object_set_new(o, "dev", json_integer((json_int_t)e->dev));
	}
	if (e->type == TREE_REG) {
		x = json_array();
		for (size_t i = 0; i < e->nblobs; i++)
			json_array_append_new(x, json_string(hex_id(e->blobs[i], hex, full)));
		json_object_set_new(o, "blobs", x);
	} else if (e->type == TREE_DIR) {
		json_object_set_new(o, "subtree", json_string(hex_id(e->subtree, hex, full)));
	} else if (e->type == TREE_SYMLINK) {
		json_object_set_new(o, "target", json_string(e->target));
	} else if (e->type == TREE_CHR || e->type == TREE_BLK) {
		json_object_set_new(o, "rdev", json_pack("[i, i]", (int)e->rdev_major,
							 (int)e->rdev_minor));
	}
	if (e->nxattrs) {
		x = json_array();
		for (size_t i = 0; i < e->nxattrs; i++)
			json_array_append_new(x, json_string(e->xattrs[i].name));
		json_object_set_new(o, "xattrs", x);
	}
	return o;
}

static int cat_tree(const struct cmd_common *c, struct repo *r, const char *arg)
{
	struct index *idx = NULL;
	uint8_t id[KEYS_BLOB_ID_LEN];
	struct tree t = TREE_INIT;
	char hex[BLOB_ID_HEX_SIZE];
	int type, rc = fetch_index(r, &idx);

	if (!rc)
		rc = blob_resolve(idx, arg, KEYS_BLOB_TREE, id, &type);
	if (!rc)
		rc = fetch_tree(r, idx, id, &t);
	for (size_t i = 0; !rc && i < t.count; i++) {
		json_t *o = tree_entry_json(&t.entries[i], c->json);

		if (c->json) {
			cmd_json_line(o);
		} else {
			char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

			if (text)
				printf("%s\n", text);
			free(text);
			json_decref(o);
		}
	}
	if (!rc && c->json) {
		blob_id_hex(id, hex);
		cmd_json_line(json_pack("{s:s, s:I}", "tree", hex, "entries", (json_int_t)t.count));
	}
	tree_free(&t);
	index_free(idx);
	return rc;
}

static int cat_blob(struct repo *r, const char *arg)
{
	struct index *idx = NULL;
	uint8_t id[KEYS_BLOB_ID_LEN];
	struct buf plain = BUF_INIT;
	int type, rc = fetch_index(r, &idx);

	if (!rc)
		rc = blob_resolve(idx, arg, 0, id, &type);
	if (!rc)
		rc = fetch_blob(r, idx, type, id, &plain);
	if (!rc)
		rc = write_raw(plain.data, plain.len);
	buf_free(&plain);
	index_free(idx);
	return rc;
}

/* ---- wrapped keys ------------------------------------------------------- */

struct key_match {
	const char *arg;
	size_t len;
	char name[KEYS_WRAPPED_NAME_SIZE];
	size_t found;
};

static int match_key(const char *key, uint64_t size, void *arg)
{
	struct key_match *m = arg;

	(void)size;
	if (strlen(key) != KEYS_WRAPPED_NAME_LEN || strncmp(key + 5, m->arg, m->len))
		return 0;
	if (!m->found++)
		memcpy(m->name, key, KEYS_WRAPPED_NAME_SIZE);
	return 0;
}

static int cat_key(const struct cmd_common *c, struct repo *r, const char *arg)
{
	struct key_match m = { strncmp(arg, "keys/", 5) ? arg : arg + 5, 0, "", 0 };
	char key_id[KEYS_ID_SIZE], kek_id[KEYS_ID_SIZE];
	struct keys_wrap_info info;
	struct buf obj = BUF_INIT;
	int rc;

	m.len = strlen(m.arg);
	if (!m.len || m.len > KEYS_WRAPPED_NAME_LEN - 5)
		return err_set(-EINVAL, "'%s' is not a key name: give keys/<key id>.<kek id> or a key id",
			       arg);
	rc = store_list(r->store, "keys/", match_key, &m);
	if (!rc && m.found == 0)
		rc = err_set(-ENOENT, "no key %s in workspace %s", arg, r->ws_id);
	if (!rc && m.found > 1)
		rc = err_set(-EINVAL, "key %s is ambiguous (%zu wrapped keys match): give keys/<key id>.<kek id>",
			     arg, m.found);
	if (!rc)
		rc = store_get_max(r->store, m.name, KEYS_WRAPPED_MAX, "wrapped key", &obj, NULL);
	if (!rc)
		rc = keys_wrap_peek(obj.data, obj.len, &info);
	if (!rc) {
		json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:I}", "name", m.name,
				      "version", (int)info.version,
				      "kind", keys_key_kind_name(info.kind), "workspace", info.ws_id,
				      "key_id", info.key_id, "kek_id", info.kek_id,
				      "created", (json_int_t)info.created,
				      "bytes", (json_int_t)obj.len);

		if (keys_wrapped_name_parse(m.name, key_id, kek_id) ||
		    strcmp(key_id, info.key_id) || strcmp(kek_id, info.kek_id) ||
		    strcmp(info.ws_id, r->ws_id))
			json_object_set_new(o, "warning",
					    json_string("the header does not match the object's name or workspace"));
		print_json(c, o);
	}
	buf_free(&obj);
	return rc;
}

/* The key set as the workspace was opened with it (verified then): its
 * serial, time, identity key, current key and live data keys. */
static int cat_keyset(const struct cmd_common *c, struct repo *r)
{
	json_t *o, *live;

	if (!r->keyset)
		return err_set(-ENOENT, "workspace %s has no key set yet (made before key sets): cairn-keyadm dek rotate or reencrypt --retire writes its first",
			       r->ws_id);
	live = json_array();
	for (size_t i = 0; i < r->keyset->n; i++)
		json_array_append_new(live, json_string(r->keyset->live[i]));
	o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:o}", "name", REPO_KEYSET_NAME,
		      "serial", (json_int_t)r->keyset->serial, "created", (json_int_t)r->keyset->created,
		      "identity", r->keyset->identity, "current", r->keyset->current, "live", live);
	print_json(c, o);
	return 0;
}

/* ---- the command -------------------------------------------------------- */

static int cmd_cat_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	static const char *const with_arg[] = { "snapshot", "index", "pack", "tree", "blob", "key" };
	static const char *const without[] = { "config", "head", "lease", "keyset" };
	struct cmd_common c = { 0 };
	struct repo *r = NULL;
	const char *kind, *arg;
	int opt, rc, need = -1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, longopts, NULL)) != -1)
		if (!cmd_common_opt(&c, opt, optarg))
			return cmd_usage(&cmd_cat_entry);
	if (optind >= argc)
		return cmd_usage(&cmd_cat_entry);
	kind = argv[optind];
	for (size_t i = 0; i < sizeof(with_arg) / sizeof(*with_arg); i++)
		if (!strcmp(kind, with_arg[i]))
			need = 1;
	for (size_t i = 0; i < sizeof(without) / sizeof(*without); i++)
		if (!strcmp(kind, without[i]))
			need = 0;
	if (need < 0 || argc - optind != need + 1)
		return cmd_usage(&cmd_cat_entry);
	arg = need ? argv[optind + 1] : NULL;
	rc = cmd_open_repo(&cmd_cat_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	if (!strcmp(kind, "config"))
		rc = cat_config(r);
	else if (!strcmp(kind, "head"))
		rc = cat_record(&c, r, KEYS_OBJ_HEAD, "head");
	else if (!strcmp(kind, "lease"))
		rc = cat_record(&c, r, KEYS_OBJ_LEASE, "lease");
	else if (!strcmp(kind, "keyset"))
		rc = cat_keyset(&c, r);
	else if (!strcmp(kind, "snapshot"))
		rc = cat_snapshot(&c, r, arg);
	else if (!strcmp(kind, "index"))
		rc = cat_index(&c, r, arg);
	else if (!strcmp(kind, "pack"))
		rc = cat_pack(&c, r, arg);
	else if (!strcmp(kind, "tree"))
		rc = cat_tree(&c, r, arg);
	else if (!strcmp(kind, "blob"))
		rc = cat_blob(r, arg);
	else
		rc = cat_key(&c, r, arg);
	if (rc)
		rc = cmd_fail(&cmd_cat_entry, NULL);
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_cat_entry = {
	.name = "cat",
	.usage = "config|head|lease|keyset|snapshot ID|index NAME|pack NAME|tree ID|blob ID|key NAME " CMD_COMMON_USAGE,
	.summary = "print one object of the repository, decrypted, for debugging",
	.exec = cmd_cat_exec,
};
