/*
 * vctl.c - cairnd's control socket (cairnd(8)): a unix stream socket,
 * mode 0600 in a 0700 directory, root's only.  Each connection sends one
 * JSON request line and gets one JSON reply line:
 *   {"op":"status"}                      the workspaces and the agents
 *   {"op":"agents"}                      the agents
 *   {"op":"snapshot"[, "workspace":N]}   a snapshot now; replies when done
 *   {"op":"restart", "agent":NAME}       stops and starts an agent
 * A reply is {"ok":true, ...} or {"ok":false, "error":"one line"}.
 * Connections are served by the loop, never blocking it: a snapshot's
 * reply is sent when its child ends.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cairnd.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"

#define MAX_REQUEST 65536

int vctl_listen(struct vmd *d)
{
	const char *path = d->conf.control_socket;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *dir = xstrdup(path);
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		free(dir);
		return err_set(-ENAMETOOLONG, "control socket path %s is too long (%zu bytes at most)",
			       path, sizeof(sa.sun_path) - 1);
	}
	*strrchr(dir, '/') = '\0';
	if (*dir && mkdir(dir, 0700) && errno != EEXIST) {
		int rc = err_set(-errno, "cannot make %s: %s", dir, strerror(errno));

		free(dir);
		return rc;
	}
	free(dir);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return err_set(-errno, "cannot make a socket: %s", strerror(errno));
	unlink(path);		/* a previous cairnd's, which is gone: it held no lock */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) || listen(fd, 16)) {
		int rc = err_set(-errno, "control socket %s: %s", path, strerror(errno));

		close(fd);
		return rc;
	}
	d->ctl_fd = fd;
	return 0;
}

static void drop_client(struct vmd *d, size_t i)
{
	buf_free(&d->client_in[i]);
	d->nclients--;
	d->clients[i] = d->clients[d->nclients];
	d->client_in[i] = d->client_in[d->nclients];
}

void vctl_accept(struct vmd *d)
{
	int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != 0) {
		static const char no[] = "{\"ok\":false,\"error\":\"cairnd's control socket is root's only\"}\n";

		send(fd, no, sizeof(no) - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	d->clients = xrealloc(d->clients, (d->nclients + 1) * sizeof(*d->clients));
	d->client_in = xrealloc(d->client_in, (d->nclients + 1) * sizeof(*d->client_in));
	d->clients[d->nclients] = fd;
	buf_init(&d->client_in[d->nclients]);
	d->nclients++;
}

void vctl_reply(struct vmd *d, int fd, json_t *reply)
{
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

	(void)d;
	if (text) {
		int flags = fcntl(fd, F_GETFL);

		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);	/* a reply is small */
		send(fd, text, strlen(text), MSG_NOSIGNAL);
		send(fd, "\n", 1, MSG_NOSIGNAL);
		free(text);
	}
	json_decref(reply);
	close(fd);
}

static json_t *fail(const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *agents_json(struct vmd *d)
{
	json_t *a = json_array();

	for (size_t i = 0; i < d->nagents; i++)
		json_array_append_new(a, agent_json(d->agents[i]));
	return a;
}

/* Handles one request.  Returns the reply, or NULL when the connection
 * now waits (a snapshot). */
static json_t *handle(struct vmd *d, int fd, json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));

	if (!op)
		return fail("bad request%s: one JSON object with \"op\" per line", "");
	if (!strcmp(op, "status")) {
		json_t *ws = json_array();

		for (size_t i = 0; i < d->nws; i++)
			json_array_append_new(ws, ws_json(&d->ws[i]));
		return json_pack("{s:b, s:I, s:s, s:o, s:o}", "ok", 1, "pid", (json_int_t)getpid(),
				 "state", d->stopping ? "stopping" : d->ready_sent ? "running" : "starting",
				 "workspaces", ws, "agents", agents_json(d));
	}
	if (!strcmp(op, "agents"))
		return json_pack("{s:b, s:o}", "ok", 1, "agents", agents_json(d));
	if (!strcmp(op, "snapshot")) {
		const char *name = json_string_value(json_object_get(req, "workspace"));
		struct vmd_ws *w = NULL;
		int rc;

		for (size_t i = 0; i < d->nws; i++)
			if (!name || !strcmp(d->ws[i].c->name, name))
				w = w ? w : &d->ws[i];
		if (!w)
			return fail("no workspace %s", name ? name : "");
		if (d->stopping)
			return fail("cairnd is stopping%s: its last snapshot is under way", "");
		rc = ws_snapshot(w, "asked");
		if (rc && rc != -EBUSY)
			return fail("workspace %s is not mounted", w->c->name);
		w->waiters = xrealloc(w->waiters, (w->nwaiters + 1) * sizeof(*w->waiters));
		w->waiters[w->nwaiters++] = fd;
		return NULL;
	}
	if (!strcmp(op, "restart")) {
		const char *name = json_string_value(json_object_get(req, "agent"));

		for (size_t i = 0; name && i < d->nagents; i++) {
			struct vmd_agent *a = d->agents[i];

			if (strcmp(a->c->name, name))
				continue;
			if (d->stopping)
				return fail("cairnd is stopping%s", "");
			a->crash_loop = 0;
			a->nrecent = 0;
			a->quick_exits = 0;
			if (agent_live(a)) {
				a->restart_after_stop = 1;
				agent_stop(a);
			} else if (a->ws->state == WS_UP) {
				agent_start(a);
			} else {
				a->state = AG_WAITING;
			}
			return json_pack("{s:b, s:s}", "ok", 1, "agent", name);
		}
		return fail("no agent %s", name ? name : "(\"agent\" is missing)");
	}
	return fail("unknown op %s: status, agents, snapshot and restart are known", op);
}

void vctl_input(struct vmd *d, size_t i)
{
	char data[4096], *nl;
	struct buf *in = &d->client_in[i];
	int fd = d->clients[i];
	ssize_t n = recv(fd, data, sizeof(data), 0);
	json_error_t je;
	json_t *req, *reply;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(fd);
		drop_client(d, i);
		return;
	}
	buf_add(in, data, (size_t)n);
	nl = memchr(in->data, '\n', in->len);
	if (!nl) {
		if (in->len > MAX_REQUEST) {
			vctl_reply(d, fd, fail("request longer than %s bytes", "65536"));
			drop_client(d, i);
		}
		return;
	}
	req = json_loadb((const char *)in->data, (size_t)(nl - (char *)in->data), 0, &je);
	drop_client(d, i);	/* one request per connection: the fd moves on */
	reply = req ? handle(d, fd, req) : fail("bad request: %s", je.text);
	json_decref(req);
	if (reply)
		vctl_reply(d, fd, reply);
}

void vctl_close_all(struct vmd *d)
{
	for (size_t i = 0; i < d->nclients; i++) {
		close(d->clients[i]);
		buf_free(&d->client_in[i]);
	}
	d->nclients = 0;
	for (size_t i = 0; i < d->nws; i++) {
		for (size_t k = 0; k < d->ws[i].nwaiters; k++)
			vctl_reply(d, d->ws[i].waiters[k],
				   json_pack("{s:b, s:s}", "ok", 0, "error", "cairnd stopped"));
		d->ws[i].nwaiters = 0;
	}
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		unlink(d->conf.control_socket);
		d->ctl_fd = -1;
	}
}
