/*
 * idxcache.c - the merged index cached in STATE/index.db (sqlite, WAL).
 *
 * What must stay true: the file reflects one consistent state of an index
 * (every save is one transaction); it only holds packs that a live index
 * object in the store lists (a pack that is merely pending could vanish
 * with a crash, and a cache that remembered it would make dedup skip
 * blobs nobody can find); anything odd in it means "rebuild from the
 * store", never "trust it".
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "idxcache.h"
#include "log.h"

struct idxcache {
	sqlite3 *db;
	char *path;
	char *ws_id;
};

static const char schema_sql[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS packs(name TEXT PRIMARY KEY, entries BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS objects(name TEXT PRIMARY KEY, state INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS object_packs(object TEXT NOT NULL, pack TEXT NOT NULL,"
	" PRIMARY KEY(object, pack)) WITHOUT ROWID;"
	"CREATE TEMP TABLE IF NOT EXISTS cur_packs(name TEXT PRIMARY KEY);"
	"CREATE TEMP TABLE IF NOT EXISTS cur_objs(name TEXT PRIMARY KEY);";

static int sql_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_MISMATCH:
	case SQLITE_CONSTRAINT:
	case SQLITE_SCHEMA:
		return -EBADMSG;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int sql_err(struct idxcache *c, int rc, const char *what)
{
	return err_set(sql_code(rc), "index cache %s: %s: %s", c->path, what,
		       c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

static int sql_exec(struct idxcache *c, const char *sql, const char *what)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_err(c, rc, what);
}

static int sql_prepare(struct idxcache *c, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : sql_err(c, rc, "prepare");
}

/* Steps a statement that returns no row; resets it for the next use. */
static int sql_done(struct idxcache *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : sql_err(c, rc, what);
}

static void close_db(struct idxcache *c)
{
	if (c->db)
		sqlite3_close_v2(c->db);
	c->db = NULL;
}

static void unlink_files(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char *p = xasprintf("%s%s", path, suffix[i]);

		unlink(p);
		free(p);
	}
}

/* Reads meta value key into *out (NULL when absent). */
static int meta_get(struct idxcache *c, const char *key, char **out)
{
	sqlite3_stmt *st;
	int rc = sql_prepare(c, "SELECT value FROM meta WHERE key = ?", &st);

	*out = NULL;
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = xstrdup((const char *)sqlite3_column_text(st, 0));
	rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : sql_err(c, rc, "read meta");
	sqlite3_finalize(st);
	return rc;
}

static int meta_set(struct idxcache *c, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc = sql_prepare(c, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st);

	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sql_done(c, st, "write meta");
	sqlite3_finalize(st);
	return rc;
}

/* Opens the file (made 0600 first, so sqlite's -wal/-shm get 0600 too),
 * creates the schema, and empties it when it belongs to another format or
 * workspace. */
static int open_db(struct idxcache *c)
{
	char fmt[16], *have_fmt = NULL, *have_ws = NULL;
	int fd, rc;

	fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;

		return err_set(-e, "index cache %s: cannot create it: %s", c->path, strerror(e));
	}
	close(fd);
	rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		rc = sql_err(c, rc, "open");
		close_db(c);
		return rc;
	}
	sqlite3_busy_timeout(c->db, 5000);
	rc = sql_exec(c, schema_sql, "create tables");
	if (!rc)
		rc = meta_get(c, "format", &have_fmt);
	if (!rc)
		rc = meta_get(c, "workspace", &have_ws);
	snprintf(fmt, sizeof(fmt), "%d", IDXCACHE_FORMAT);
	if (!rc && (!have_fmt || strcmp(have_fmt, fmt) != 0 ||
		    !have_ws || strcmp(have_ws, c->ws_id) != 0)) {
		if (have_fmt)
			log_warn("index cache %s (format %s, workspace %s) is not a format %s cache of workspace %s: starting afresh",
				 c->path, have_fmt, have_ws ? have_ws : "?", fmt, c->ws_id);
		rc = sql_exec(c, "BEGIN IMMEDIATE;"
			      "DELETE FROM packs; DELETE FROM objects; DELETE FROM object_packs;"
			      "DELETE FROM meta;", "empty");
		if (!rc)
			rc = meta_set(c, "format", fmt);
		if (!rc)
			rc = meta_set(c, "workspace", c->ws_id);
		if (!rc)
			rc = sql_exec(c, "COMMIT", "commit");
		if (rc)
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	free(have_fmt);
	free(have_ws);
	if (rc)
		close_db(c);
	return rc;
}

int idxcache_reset(struct idxcache *c)
{
	close_db(c);
	unlink_files(c->path);
	return open_db(c);
}

int idxcache_open(const char *state_dir, const char *ws_id, struct idxcache **out)
{
	struct idxcache *c;
	struct stat st;
	int rc;

	*out = NULL;
	if (!state_dir || !*state_dir)
		return err_set(-EINVAL, "index cache: no state dir");
	if (!ws_id || !keys_ws_id_valid(ws_id))
		return err_set(-EINVAL, "index cache: bad workspace id");
	if (stat(state_dir, &st) != 0) {
		int e = errno;

		return err_set(-e, "index cache: state dir %s: %s", state_dir, strerror(e));
	}
	if (!S_ISDIR(st.st_mode))
		return err_set(-ENOTDIR, "index cache: state dir %s is not a directory", state_dir);
	if (st.st_mode & 077)
		log_warn("state dir %s is mode %04o: it holds every blob id and size of the workspace; chmod 700 %s",
			 state_dir, (unsigned)(st.st_mode & 07777), state_dir);
	c = xcalloc(1, sizeof(*c));
	c->path = xasprintf("%s/%s", state_dir, IDXCACHE_FILE);
	c->ws_id = xstrdup(ws_id);
	rc = open_db(c);
	if (rc == -EBADMSG) {	/* not a database, or a damaged one: rebuild */
		log_warn("%s; starting it afresh", err_msg());
		rc = idxcache_reset(c);
	}
	if (rc) {
		idxcache_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void idxcache_close(struct idxcache *c)
{
	if (!c)
		return;
	close_db(c);
	free(c->path);
	free(c->ws_id);
	free(c);
}

const char *idxcache_path(const struct idxcache *c)
{
	return c->path;
}

/* ---- reading ------------------------------------------------------------ */

static int read_packs(struct idxcache *c, struct index *idx)
{
	sqlite3_stmt *st;
	struct pack_entry *e = NULL;
	size_t cap = 0;
	int step = SQLITE_DONE, rc = sql_prepare(c, "SELECT name, entries FROM packs", &st);

	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const uint8_t *raw = sqlite3_column_blob(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1), n = len / PACK_ENTRY_SIZE;

		if (!name || !raw || len % PACK_ENTRY_SIZE) {
			rc = err_set(-EBADMSG, "index cache %s: malformed pack row", c->path);
			break;
		}
		if (n > cap) {
			cap = n;
			e = xrealloc(e, cap * sizeof(*e));
		}
		for (size_t i = 0; i < n; i++)
			pack_entry_decode(raw + i * PACK_ENTRY_SIZE, &e[i]);
		if (index_restore_pack(idx, name, e, n))
			rc = err_prefix(-EBADMSG, "index cache %s", c->path);
	}
	if (!rc && step != SQLITE_DONE)
		rc = sql_err(c, step, "read packs");
	sqlite3_finalize(st);
	free(e);
	return rc;
}

static int read_objects(struct idxcache *c, struct index *idx)
{
	sqlite3_stmt *st;
	char *cur = NULL;
	int cur_state = 0;
	const char **packs = NULL;
	size_t n = 0, cap = 0;
	int rc = sql_prepare(c, "SELECT o.name, o.state, p.pack FROM objects o"
			     " LEFT JOIN object_packs p ON p.object = o.name ORDER BY o.name", &st);

	for (;;) {
		const char *name = NULL, *pack = NULL;
		int state = 0, step = SQLITE_DONE;

		if (!rc) {
			step = sqlite3_step(st);
			if (step == SQLITE_ROW) {
				name = (const char *)sqlite3_column_text(st, 0);
				state = sqlite3_column_int(st, 1);
				pack = (const char *)sqlite3_column_text(st, 2);
				if (!name)
					rc = err_set(-EBADMSG, "index cache %s: object without a name", c->path);
			} else if (step != SQLITE_DONE) {
				rc = sql_err(c, step, "read objects");
			}
		}
		/* a new object (or the end): put back the one collected so far */
		if (!rc && cur && (!name || strcmp(name, cur) != 0)) {
			rc = index_restore_object(idx, cur, (enum index_obj_state)cur_state, packs, n);
			if (rc)
				rc = err_prefix(-EBADMSG, "index cache %s", c->path);
			for (size_t i = 0; i < n; i++)
				free((char *)packs[i]);
			n = 0;
			free(cur);
			cur = NULL;
		}
		if (rc || !name)
			break;
		if (!cur) {
			cur = xstrdup(name);
			cur_state = state;
		}
		if (pack) {
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				packs = xrealloc(packs, cap * sizeof(*packs));
			}
			packs[n++] = xstrdup(pack);
		}
	}
	for (size_t i = 0; i < n; i++)
		free((char *)packs[i]);
	free(packs);
	free(cur);
	sqlite3_finalize(st);
	return rc;
}

static int read_cache(struct idxcache *c, struct index **out)
{
	struct index *idx;
	int rc;

	index_new(&idx);
	rc = sql_exec(c, "BEGIN", "begin");
	if (!rc)
		rc = read_packs(c, idx);
	if (!rc)
		rc = read_objects(c, idx);
	sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	if (rc) {
		index_free(idx);
		return rc;
	}
	*out = idx;
	return 0;
}

int idxcache_load(struct idxcache *c, struct store *s, const struct keys_ring *ring,
		  struct index **out)
{
	struct index *idx = NULL;
	int rc;

	*out = NULL;
	if (!c->db) {
		rc = open_db(c);
		if (rc)
			return rc;
	}
	rc = read_cache(c, &idx);
	if (rc) {
		log_warn("%s; rebuilding it from the store", err_msg());
		rc = idxcache_reset(c);
		if (rc)
			return rc;
		index_new(&idx);
	}
	rc = index_load_from_store(idx, s, ring, c->ws_id);
	if (rc) {
		index_free(idx);
		return rc;
	}
	if (idxcache_save(c, idx))
		log_warn("%s (the index is fine; the next start fetches more)", err_msg());
	*out = idx;
	return 0;
}

/* ---- saving ------------------------------------------------------------- */

struct save_ctx {
	struct idxcache *c;
	const struct index *idx;
	sqlite3_stmt *ins_cur, *get_state, *del_obj_packs, *ins_obj, *ins_obj_pack;
};

static int add_cur_pack(const char *pack, size_t n_entries, int listed, void *arg)
{
	struct save_ctx *x = arg;

	(void)n_entries;
	if (!listed)
		return 0;
	sqlite3_bind_text(x->ins_cur, 1, pack, -1, SQLITE_STATIC);
	return sql_done(x->c, x->ins_cur, "save pack names");
}

static int save_object(const char *obj, enum index_obj_state state,
		       const char *const *packs, size_t n_packs, void *arg)
{
	struct save_ctx *x = arg;
	int rc, step, have = -1;

	sqlite3_bind_text(x->ins_cur, 1, obj, -1, SQLITE_STATIC);
	rc = sql_done(x->c, x->ins_cur, "save object names");
	if (rc)
		return rc;
	sqlite3_bind_text(x->get_state, 1, obj, -1, SQLITE_STATIC);
	step = sqlite3_step(x->get_state);
	if (step == SQLITE_ROW)
		have = sqlite3_column_int(x->get_state, 0);
	sqlite3_reset(x->get_state);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return sql_err(x->c, step, "read object");
	if (have == (int)state)
		return 0;	/* objects are immutable: only their state moves */
	sqlite3_bind_text(x->del_obj_packs, 1, obj, -1, SQLITE_STATIC);
	rc = sql_done(x->c, x->del_obj_packs, "save object");
	if (rc)
		return rc;
	sqlite3_bind_text(x->ins_obj, 1, obj, -1, SQLITE_STATIC);
	sqlite3_bind_int(x->ins_obj, 2, (int)state);
	rc = sql_done(x->c, x->ins_obj, "save object");
	for (size_t i = 0; i < n_packs && !rc; i++) {
		sqlite3_bind_text(x->ins_obj_pack, 1, obj, -1, SQLITE_STATIC);
		sqlite3_bind_text(x->ins_obj_pack, 2, packs[i], -1, SQLITE_STATIC);
		rc = sql_done(x->c, x->ins_obj_pack, "save object packs");
	}
	return rc;
}

/* Inserts the entries of every listed pack the file does not hold yet. */
static int save_new_packs(struct save_ctx *x)
{
	struct idxcache *c = x->c;
	sqlite3_stmt *sel = NULL, *ins = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct buf raw = BUF_INIT;
	int rc, step;

	rc = sql_prepare(c, "SELECT name FROM temp.cur_packs"
			 " WHERE name NOT IN (SELECT name FROM main.packs)", &sel);
	while (!rc && (step = sqlite3_step(sel)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup((const char *)sqlite3_column_text(sel, 0));
	}
	if (!rc && step != SQLITE_DONE)
		rc = sql_err(c, step, "list new packs");
	if (!rc)
		rc = sql_prepare(c, "INSERT INTO main.packs(name, entries) VALUES(?, ?)", &ins);
	for (size_t i = 0; i < n && !rc; i++) {
		struct pack_entry *e;
		size_t ne;

		rc = index_pack_entries(x->idx, names[i], &e, &ne);
		if (rc)
			break;
		buf_reset(&raw);
		buf_grow(&raw, ne * PACK_ENTRY_SIZE);
		for (size_t j = 0; j < ne; j++)
			pack_entry_encode(&e[j], raw.data + j * PACK_ENTRY_SIZE);
		buf_setlen(&raw, ne * PACK_ENTRY_SIZE);
		free(e);
		sqlite3_bind_text(ins, 1, names[i], -1, SQLITE_STATIC);
		sqlite3_bind_blob(ins, 2, raw.data, (int)raw.len, SQLITE_STATIC);
		rc = sql_done(c, ins, "save pack");
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	buf_free(&raw);
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	return rc;
}

int idxcache_save(struct idxcache *c, const struct index *idx)
{
	struct save_ctx x = { c, idx, NULL, NULL, NULL, NULL, NULL };
	int rc;

	if (!c->db) {
		rc = open_db(c);
		if (rc)
			return rc;
	}
	rc = sql_exec(c, "BEGIN IMMEDIATE; DELETE FROM temp.cur_packs; DELETE FROM temp.cur_objs;",
		      "begin");
	if (rc)
		return rc;
	/* packs: delete what is gone, insert what is new */
	rc = sql_prepare(c, "INSERT INTO temp.cur_packs(name) VALUES(?)", &x.ins_cur);
	if (!rc)
		rc = index_foreach_pack(idx, add_cur_pack, &x);
	if (!rc)
		rc = sql_exec(c, "DELETE FROM main.packs WHERE name NOT IN (SELECT name FROM temp.cur_packs)",
			      "drop packs");
	if (!rc)
		rc = save_new_packs(&x);
	sqlite3_finalize(x.ins_cur);
	x.ins_cur = NULL;
	/* objects: their state changes, new ones come, gone ones go */
	if (!rc)
		rc = sql_prepare(c, "INSERT INTO temp.cur_objs(name) VALUES(?)", &x.ins_cur);
	if (!rc)
		rc = sql_prepare(c, "SELECT state FROM main.objects WHERE name = ?", &x.get_state);
	if (!rc)
		rc = sql_prepare(c, "DELETE FROM main.object_packs WHERE object = ?", &x.del_obj_packs);
	if (!rc)
		rc = sql_prepare(c, "INSERT OR REPLACE INTO main.objects(name, state) VALUES(?, ?)",
				 &x.ins_obj);
	if (!rc)
		rc = sql_prepare(c, "INSERT OR IGNORE INTO main.object_packs(object, pack) VALUES(?, ?)",
				 &x.ins_obj_pack);
	if (!rc)
		rc = index_foreach_object(idx, save_object, &x);
	if (!rc)
		rc = sql_exec(c, "DELETE FROM main.object_packs WHERE object NOT IN (SELECT name FROM temp.cur_objs);"
			      "DELETE FROM main.objects WHERE name NOT IN (SELECT name FROM temp.cur_objs);",
			      "drop objects");
	sqlite3_finalize(x.ins_cur);
	sqlite3_finalize(x.get_state);
	sqlite3_finalize(x.del_obj_packs);
	sqlite3_finalize(x.ins_obj);
	sqlite3_finalize(x.ins_obj_pack);
	if (!rc)
		rc = sql_exec(c, "COMMIT", "commit");
	if (rc)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
