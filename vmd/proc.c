/*
 * proc.c - starting processes and measuring them from /proc (proc.h).
 *
 * vmd_spawn runs in a single-threaded cairnd, so the child may do what it
 * likes between fork and exec.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "proc.h"

static void child_fail(const char *what, const char *arg)
{
	dprintf(2, "cairnd: cannot start %s: %s: %s\n", arg, what, strerror(errno));
	_exit(127);
}

pid_t vmd_spawn(const struct vmd_spawn *s)
{
	pid_t pid = fork();

	if (pid < 0)
		return err_set(-errno, "cannot fork: %s", strerror(errno));
	if (pid > 0)
		return pid;

	/* the child */
	{
		sigset_t none;
		int devnull = open("/dev/null", O_RDWR);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		if (s->new_session)
			setsid();
		dup2(s->in_fd > 0 ? s->in_fd : devnull, 0);
		if (s->out_fd > 0) {
			dup2(s->out_fd, 1);
			dup2(s->out_fd, 2);
		}
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		if (s->user) {
			struct passwd *pw = getpwnam(s->user);

			if (!pw)
				child_fail("no such user", s->user);
			if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) ||
			    setuid(pw->pw_uid))
				child_fail("cannot become the user", s->user);
		}
		if (chdir(s->cwd ? s->cwd : "/"))
			child_fail("cannot enter the directory", s->cwd ? s->cwd : "/");
		if (s->envp)
			execve(s->argv[0], (char *const *)s->argv, s->envp);
		else
			execv(s->argv[0], (char *const *)s->argv);
		child_fail("exec failed", s->argv[0]);
	}
	return -1;	/* not reached */
}

/* Reads /proc/PID/stat: the fields after the command, which may hold
 * spaces and parentheses, so they are found from the last ')'. */
static int read_stat(pid_t pid, struct proc_info *pi)
{
	char path[64], text[1024], *p;
	unsigned long long ut, st;
	long long cut, cst;
	int ppid, sid, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	p = strrchr(text, ')');
	if (!p)
		return -1;
	/* ") S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 *  utime stime cutime cstime" */
	if (sscanf(p + 2, "%*c %d %*d %d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
		   &ppid, &sid, &ut, &st, &cut, &cst) != 6)
		return -1;
	pi->pid = pid;
	pi->ppid = ppid;
	pi->sid = sid;
	pi->ticks = ut + st;
	pi->cticks = (uint64_t)(cut > 0 ? cut : 0) + (uint64_t)(cst > 0 ? cst : 0);
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	const struct proc_info *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int proc_scan(struct proc_info **out, size_t *n)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return err_set(-errno, "cannot read /proc: %s", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		if (read_stat((pid_t)pid, &(*out)[*n]) == 0)
			(*n)++;
	}
	closedir(d);
	qsort(*out, *n, sizeof(**out), cmp_pid);
	return 0;
}

static const struct proc_info *find(const struct proc_info *p, size_t n, pid_t pid)
{
	struct proc_info key = { .pid = pid };

	return bsearch(&key, p, n, sizeof(*p), cmp_pid);
}

static int below(const struct proc_info *p, size_t n, const struct proc_info *pi, pid_t root)
{
	for (int depth = 0; pi && depth < 64; depth++) {
		if (pi->ppid == root)
			return 1;
		if (pi->ppid <= 1)
			return 0;
		pi = find(p, n, pi->ppid);
	}
	return 0;
}

uint64_t proc_tree_ticks(const struct proc_info *p, size_t n, pid_t root)
{
	const struct proc_info *r = find(p, n, root);
	uint64_t sum = r ? r->ticks + r->cticks : 0;

	for (size_t i = 0; i < n; i++)
		if (p[i].pid != root && (p[i].sid == root || below(p, n, &p[i], root)))
			sum += p[i].ticks;
	return sum;
}

double proc_tty_last_input(void)
{
	DIR *d = opendir("/dev/pts");
	struct dirent *de;
	double last = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		double t;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0))
			continue;
		t = (double)st.st_atim.tv_sec + st.st_atim.tv_nsec / 1e9;
		if (t > last)
			last = t;
	}
	closedir(d);
	return last;
}
