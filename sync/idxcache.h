/*
 * idxcache.h - the local sqlite cache of the merged blob index, in the
 * workspace's state dir (STATE/index.db, WAL mode).
 *
 * It saves what an index has merged from the store (the packs live index
 * objects list, with their entries; the names of the index objects it
 * covers, live and superseded) so that the next start needs no index
 * object at all when the store's index/ listing is unchanged, and fetches
 * only the new ones when it is not.  It is a cache: delete the file and
 * the next load rebuilds it from the store; a file that is damaged, of
 * another format or of another workspace is rebuilt the same way.
 *
 * It holds no key and no file content, but it does hold every blob id and
 * size of the workspace: the state dir is root's alone (mode 0700; the file
 * is created 0600, and sqlite gives its -wal and -shm files the same mode).
 *
 * Functions return 0 or a negative errno and leave one line in err_msg().
 * Threads: a struct idxcache belongs to one thread at a time.
 */
#ifndef CAIRN_IDXCACHE_H
#define CAIRN_IDXCACHE_H

#include "index.h"
#include "keys.h"
#include "store.h"

#define IDXCACHE_FILE "index.db"
#define IDXCACHE_FORMAT 1

struct idxcache;

/* Opens (creating it if needed) STATE_DIR/index.db for workspace ws_id.
 * A file that is not a cache of this format and workspace is emptied.
 * Warns when state_dir is open to group or others.  Returns 0, -EINVAL, or
 * -EIO / -ENOSPC / -EACCES when the file cannot be opened or written. */
int idxcache_open(const char *state_dir, const char *ws_id, struct idxcache **out);
void idxcache_close(struct idxcache *c);

/* The path of the cache file. */
const char *idxcache_path(const struct idxcache *c);

/* Makes *out the merged index of the workspace: what the cache holds,
 * brought up to date with the store's index/ listing by
 * index_load_from_store (which fetches only the index objects the cache
 * does not cover and drops what they supersede), then saved back.  An
 * unreadable cache is emptied and the index rebuilt from the store (with a
 * warning); a failing save is a warning too, since the index itself is
 * good.  Returns 0 or the store's / index's error (then *out is NULL). */
int idxcache_load(struct idxcache *c, struct store *s, const struct keys_ring *ring,
		  struct index **out);

/* Saves idx: its listed packs and the index objects it knows, in one
 * transaction (only what changed since the last save is written; packs
 * added since the last delta are not saved, as no index object in the
 * store lists them yet).  Returns 0 or an sqlite error as -EIO / -ENOSPC /
 * -EBADMSG. */
int idxcache_save(struct idxcache *c, const struct index *idx);

/* Empties the cache (deletes and recreates the file). */
int idxcache_reset(struct idxcache *c);

#endif
