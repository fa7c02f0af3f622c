/*
 * ctlclient.c - the client side of cairnfs's control socket (ctlclient.h).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctlclient.h"
#include "err.h"
#include "fs.h"
#include "fsutil.h"

#define REPLY_MAX (1u << 20)

char *fs_ctl_path(const char *ws_id)
{
	const char *dir = getenv("CAIRN_RUN_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");

	if (dir && *dir)
		return xasprintf("%s/%s.sock", dir, ws_id);
	if (geteuid() == 0)
		return xasprintf("/run/cairn/%s.sock", ws_id);
	/* a user's own cairnfs: where that user's runtime files go */
	if (xdg && *xdg)
		return xasprintf("%s/cairn/%s.sock", xdg, ws_id);
	return xasprintf("/tmp/cairn-%u/%s.sock", (unsigned)geteuid(), ws_id);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

int ctl_foreach_mount(ctl_mount_fn fn, void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		char mnt[PATH_MAX], type[64], source[256];
		const char *sep = strstr(line, " - ");

		/* "36 35 0:40 / /mnt rw,... - fuse.cairnfs cairnfs:<id> rw,..." */
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s", type, source) != 2)
			continue;
		if (strcmp(type, "fuse.cairnfs") || strncmp(source, "cairnfs:", 8))
			continue;
		unescape(mnt);
		fn(mnt, source + 8, arg);
	}
	free(line);
	fclose(f);
	return 0;
}

struct find {
	const char *want;
	char *ws;
};

static void find_one(const char *mnt, const char *ws, void *arg)
{
	struct find *f = arg;

	if (!strcmp(mnt, f->want)) {
		free(f->ws);
		f->ws = xstrdup(ws);	/* the last one: the mount on top */
	}
}

int ctl_mount_workspace(const char *mountpoint, char **ws_id)
{
	char *abs = realpath(mountpoint, NULL);
	struct find f = { abs ? abs : mountpoint, NULL };

	ctl_foreach_mount(find_one, &f);
	free(abs);
	if (!f.ws)
		return err_set(-ENOENT, "no cairnfs is mounted on %s (see 'cairn mount')", mountpoint);
	*ws_id = f.ws;
	return 0;
}

int ctl_call_path(const char *path, const char *who, json_t *req, json_t **reply, int timeout)
{
	char *text = json_dumps(req, JSON_COMPACT);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct buf in = BUF_INIT;
	json_error_t je;
	time_t deadline = timeout ? time(NULL) + timeout : 0;
	int fd = -1, rc = 0;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		rc = err_set(-ENAMETOOLONG, "control socket path %s is too long", path);
		goto out;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = err_set(-errno, "cannot reach %s at %s: %s%s", who, path,
			     strerror(errno), errno == EACCES ? " (it is root's: run as root)" : "");
		goto out;
	}
	rc = fsu_send_all(fd, text, strlen(text));
	if (!rc)
		rc = fsu_send_all(fd, "\n", 1);
	if (rc) {
		rc = err_set(rc, "control socket %s: %s", path, strerror(-rc));
		goto out;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int wait = deadline ? (int)(deadline - time(NULL)) * 1000 : -1;
		ssize_t n;

		if (deadline && wait <= 0) {
			rc = err_set(-ETIMEDOUT, "%s did not answer within %d s",
				     who, timeout);
			goto out;
		}
		if (poll(&p, 1, wait) < 0 && errno != EINTR) {
			rc = err_set(-errno, "control socket %s: %s", path, strerror(errno));
			goto out;
		}
		buf_grow(&in, 4096);
		n = recv(fd, in.data + in.len, 4096, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0 || in.len + (size_t)n > REPLY_MAX)
			break;
		buf_setlen(&in, in.len + (size_t)n);
		if (memchr(in.data, '\n', in.len))
			break;
	}
	*reply = in.len ? json_loadb((const char *)in.data, in.len, JSON_DISABLE_EOF_CHECK, &je) : NULL;
	if (!*reply || !json_is_object(*reply)) {
		json_decref(*reply);
		*reply = NULL;
		rc = err_set(-EBADMSG, "%s gave no valid reply on %s (did it stop?)",
			     who, path);
	}
out:
	if (fd >= 0)
		close(fd);
	free(text);
	buf_free(&in);
	return rc;
}

int ctl_call(const char *ws_id, json_t *req, json_t **reply, int timeout)
{
	char *path = fs_ctl_path(ws_id), *who = xasprintf("cairnfs of workspace %s", ws_id);
	int rc = ctl_call_path(path, who, req, reply, timeout);

	free(path);
	free(who);
	return rc;
}
