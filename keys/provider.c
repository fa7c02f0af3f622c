/*
 * provider.c - key providers: where a tenant key comes from.
 *
 *   file:PATH      a tenant key file (0600 enforced by keys_kek_load_file)
 *   env:VAR        the tenant key's text form in an environment variable
 *   exec:COMMAND   the text form printed by COMMAND (run by /bin/sh -c), for
 *                  a KMS or a secret manager; its stderr goes to ours
 *
 * Every provider answers the same question, "the tenant key for this
 * workspace", so callers never care which one is configured.  The spec
 * itself is not secret and may appear in messages; what it yields is not:
 * the output of an exec: command lives in locked memory and is wiped.
 * https:// (the control plane unwraps, the VM never holds a tenant key) is
 * not a tenant key at all; sync/cplane.c serves it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "keys.h"

#define EXEC_OUT_MAX 4096	/* more than this is not a tenant key */

extern char **environ;

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Reads the child's stdout into out (EXEC_OUT_MAX + 1 bytes) until EOF or
 * the deadline.  Returns the length, or -ETIMEDOUT / -errno. */
static ssize_t read_output(int fd, char *out, const struct timespec *t0)
{
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = KEYS_EXEC_TIMEOUT_MS - ms_since(t0);
		ssize_t n;
		int pr;

		if (left <= 0)
			return -ETIMEDOUT;
		pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		n = read(fd, out + len, EXEC_OUT_MAX + 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 || (len += (size_t)n) > EXEC_OUT_MAX)
			return (ssize_t)len;
	}
}

/* The environment an exec: command gets: the caller's variables that say
 * where and as whom it runs, and nothing else -- not the store's
 * credentials, a control-plane token or any other secret of the caller's.
 * A command that needs more reads it from files of its own. */
static const char *const exec_env_keep[] = {
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
	"CAIRN_TENANT", "CAIRN_WORKSPACE", NULL,
};

static char **exec_env(void)
{
	size_t n = 0;
	char **env = xcalloc(sizeof(exec_env_keep) / sizeof(*exec_env_keep) + 1, sizeof(*env));

	for (size_t i = 0; exec_env_keep[i]; i++) {
		const char *v = getenv(exec_env_keep[i]);

		if (v)
			env[n++] = xasprintf("%s=%s", exec_env_keep[i], v);
		else if (!strcmp(exec_env_keep[i], "PATH"))
			env[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	}
	for (char **e = environ; *e; e++)
		if (!strncmp(*e, "LC_", 3)) {
			env = xrealloc(env, (n + 2) * sizeof(*env));
			env[n++] = xstrdup(*e);
		}
	env[n] = NULL;
	return env;
}

static int load_exec(const char *spec, struct keys_kek **out)
{
	const char *cmd = spec + 5;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t none, all;
	struct timespec t0;
	char *text = NULL;
	ssize_t len;
	int p[2], st, rc;
	char **env;
	pid_t pid;

	if (!*cmd)
		return err_set(-EINVAL, "key provider 'exec:' needs a command, as in exec:/usr/local/bin/get-tenant-key");
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(-errno, "key provider %s: cannot make a pipe: %s", spec, strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	/* the command starts with no signal blocked or ignored, whatever
	 * this process does with its own */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&sa);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &all);
	/* a process group of its own, so that a timeout kills all of it */
	posix_spawnattr_setpgroup(&sa, 0);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
				 POSIX_SPAWN_SETPGROUP);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	env = exec_env();
	rc = posix_spawn(&pid, "/bin/sh", &fa, &sa, argv, env);
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc) {
		close(p[0]);
		return err_set(-rc, "key provider %s: cannot run /bin/sh: %s", spec, strerror(rc));
	}
	text = sodium_malloc(EXEC_OUT_MAX + 1);
	len = text ? read_output(p[0], text, &t0) : -ENOMEM;
	close(p[0]);
	if (len == -ETIMEDOUT)
		kill(-pid, SIGKILL);	/* the shell and whatever it started */
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (len == -ETIMEDOUT)
		rc = err_set(-ETIMEDOUT, "key provider %s: no key after %d s: the command was killed",
			     spec, KEYS_EXEC_TIMEOUT_MS / 1000);
	else if (len < 0)
		rc = err_set((int)len, "key provider %s: cannot read its output: %s", spec,
			     strerror((int)-len));
	else if (WIFSIGNALED(st))
		rc = err_set(-EIO, "key provider %s: the command was killed by signal %d", spec,
			     WTERMSIG(st));
	else if (WEXITSTATUS(st) != 0)
		rc = err_set(-EIO, "key provider %s: the command exited with status %d", spec,
			     WEXITSTATUS(st));
	else if (len > EXEC_OUT_MAX)
		rc = err_set(-EINVAL, "key provider %s: the command printed more than %d bytes, not a tenant key",
			     spec, EXEC_OUT_MAX);
	else if (keys_kek_parse(text, (size_t)len, out))
		rc = err_prefix(-EINVAL, "key provider %s: its output is not a tenant key", spec);
	else
		rc = 0;
	sodium_free(text);
	return rc;
}

int keys_provider_load(const char *spec, struct keys_kek **out)
{
	*out = NULL;
	if (keys_init())
		return -EIO;
	if (!spec || !*spec)
		return err_set(-EINVAL, "no key given: use --key file:PATH (or CAIRN_KEY, or `key` in cairn.conf)");
	if (!strncmp(spec, "file:", 5)) {
		if (!spec[5])
			return err_set(-EINVAL, "key provider 'file:' needs a path, as in file:/etc/cairn/tenant.key");
		return keys_kek_load_file(spec + 5, out);
	}
	if (!strncmp(spec, "env:", 4)) {
		const char *text = getenv(spec + 4);

		if (!spec[4])
			return err_set(-EINVAL, "key provider 'env:' needs a variable name, as in env:CAIRN_TENANT_KEY");
		if (!text || !*text)
			return err_set(-ENOENT, "key provider %s: the variable is not set", spec);
		if (keys_kek_parse(text, strlen(text), out))
			return err_prefix(-EINVAL, "key provider %s", spec);
		return 0;
	}
	if (!strncmp(spec, "exec:", 5))
		return load_exec(spec, out);
	if (keys_provider_remote(spec))
		return err_set(-EINVAL, "key provider %s unwraps keys on the control plane and yields no tenant key: this needs file:, env: or exec:",
			       spec);
	return err_set(-EINVAL, "unknown key provider '%.*s': use file:PATH, env:VAR, exec:COMMAND or https://CONTROL-PLANE",
		       (int)strcspn(spec, ":"), spec);
}

int keys_provider_remote(const char *spec)
{
	return spec && !strncmp(spec, "https://", 8) && spec[8];
}

const char *keys_provider_file(const char *spec)
{
	return spec && !strncmp(spec, "file:", 5) && spec[5] ? spec + 5 : NULL;
}
