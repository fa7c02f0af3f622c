/*
 * ctlclient.h - talking to a cairnfs through its control socket: one JSON
 * request line, one JSON reply line (docs/design.md, "The control
 * socket").  `cairn status|snapshot --mount|hydrate` and cairnd use it.
 */
#ifndef CAIRN_CTLCLIENT_H
#define CAIRN_CTLCLIENT_H

#include <jansson.h>

/* The workspace id of the cairnfs mounted at mountpoint, from
 * /proc/self/mountinfo (its source is "cairnfs:<id>").  Returns 0 and a
 * malloc'd id, or -ENOENT ("no cairnfs is mounted on ...") with the error
 * set. */
int ctl_mount_workspace(const char *mountpoint, char **ws_id);

/* Calls fn for every cairnfs mount of this machine.  Returns 0. */
typedef void (*ctl_mount_fn)(const char *mountpoint, const char *ws_id, void *arg);
int ctl_foreach_mount(ctl_mount_fn fn, void *arg);

/* Sends req to the cairnfs of workspace ws_id and waits up to timeout
 * seconds (0: no limit) for its reply.  Returns 0 and the reply (which the
 * caller decrefs; {"ok": false, "error": ...} is a reply too), or a
 * negative code with the error set. */
int ctl_call(const char *ws_id, json_t *req, json_t **reply, int timeout);
/* The same with the socket at path, whose server who names ("cairnd"). */
int ctl_call_path(const char *path, const char *who, json_t *req, json_t **reply, int timeout);

#endif
