/*
 * restore.h - writing a snapshot's tree back to a directory.
 */
#ifndef CAIRN_RESTORE_H
#define CAIRN_RESTORE_H

#include <stdint.h>

#include "index.h"
#include "record.h"
#include "repo.h"

struct restore_progress {
	uint64_t files, dirs, bytes;		/* written so far */
	uint64_t total_files, total_bytes;	/* known after the tree walk */
	uint64_t stripped;			/* privileges left out (above) */
};

struct restore_opts {
	const char *root;	/* named root; NULL: "workspace" */
	const char *include;	/* restore only this path of the snapshot */
	int owners;		/* restore uid/gid (default: when root) */
	/* restore what gives privilege as recorded: setuid and setgid bits
	 * of files, device nodes, and security.* and trusted.* xattrs (file
	 * capabilities).  Off: they are left out and counted, so that a
	 * snapshot of a compromised tree (an agent's config) cannot hand a
	 * new machine root again. */
	int privileged;
	int workers;		/* parallel pack fetches; 0: 4 */
	void (*progress)(const struct restore_progress *p, void *arg);
	void *progress_arg;
};

/* Restores root o->root of snapshot rec into target (created if missing).
 * Every file is written to a temp file beside it and renamed into place, so
 * a file is either its old self or its restored self; modes, owners (as
 * root), times, xattrs, hard links, symlinks, fifos and devices (as root,
 * with o->privileged) are restored.  An entry whose name could escape target is refused.
 * Returns 0 or a negative code; files already renamed into place stay. */
int restore_snapshot(struct repo *r, struct index *idx, const struct record_snapshot *rec,
		     const char *target, const struct restore_opts *o);

#endif
