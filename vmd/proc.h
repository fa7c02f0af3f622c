/*
 * proc.h - processes for cairnd: starting one (as a user, in its own
 * session, with its output on a pipe) and measuring process trees from
 * /proc, which works without systemd and on cgroups v1 alike.
 */
#ifndef CAIRN_VMD_PROC_H
#define CAIRN_VMD_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vmd_spawn {
	const char *const *argv;	/* argv[0] is the program path */
	char *const *envp;		/* NULL: cairnd's own environment */
	const char *user;		/* NULL: stay root */
	const char *cwd;		/* NULL: / */
	int out_fd;			/* stdout and stderr; 0: cairnd's */
	int in_fd;			/* stdin; 0: /dev/null */
	int new_session;		/* setsid(): its own session and group */
};

/* Forks and execs.  The child gets default signal dispositions, an empty
 * signal mask and no other descriptor of cairnd's.  Returns the pid, or a
 * negative code with the error set (the fork failed).  A failure in the
 * child (no such user, directory or program) is written to out_fd and
 * the child exits 127. */
pid_t vmd_spawn(const struct vmd_spawn *s);

/* One process of /proc. */
struct proc_info {
	pid_t pid, ppid, sid;
	uint64_t ticks;		/* utime + stime */
	uint64_t cticks;	/* cutime + cstime: its reaped descendants */
};

/* Reads every process of /proc, sorted by pid.  Returns 0 (a process that
 * vanishes meanwhile is left out). */
int proc_scan(struct proc_info **out, size_t *n);

/* The CPU ticks of the process tree of root: root with its reaped
 * descendants, and every live process below it or in its session.
 * Processes adopted by cairnd (the subreaper) after their parent died are
 * found through their session. */
uint64_t proc_tree_ticks(const struct proc_info *p, size_t n, pid_t root);

/* The latest access time of the terminals of /dev/pts: the moment someone
 * last typed in an interactive session (what w(1) shows as IDLE).  0 when
 * there is none. */
double proc_tty_last_input(void);

#endif
