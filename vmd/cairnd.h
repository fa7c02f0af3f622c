/*
 * cairnd.h - the VM daemon's state, shared by its files: cairnd.c (the
 * event loop, signals, systemd), ws.c (workspaces: their cairnfs, the
 * agent-config restore, snapshots, idle), agent.c (supervised agents),
 * vctl.c (the control socket), hook.c (the idle report).
 *
 * cairnd is single-threaded: everything below belongs to the loop.  Long
 * work (a snapshot, a restore, a report to the control plane) runs in a
 * child process whose end arrives as SIGCHLD.
 */
#ifndef CAIRN_CAIRND_H
#define CAIRN_CAIRND_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "buf.h"
#include "vconf.h"

struct vmd;
struct vmd_ws;

enum agent_state {
	AG_WAITING,	/* its workspace is not mounted yet */
	AG_RUNNING,
	AG_STOPPING,	/* SIGTERM sent; SIGKILL at kill_at */
	AG_BACKOFF,	/* exited; starts again at next_start */
	AG_EXITED,	/* exited and not restarted (policy, or stopped) */
};

struct vmd_agent {
	struct vconf_agent *c;		/* in vmd->conf */
	struct vmd_ws *ws;
	pid_t pid;
	enum agent_state state;
	int log_pipe;			/* read end of its stdout+stderr; -1 */
	int log_fd;			/* its log file; -1 */
	char *log_path;
	uint64_t log_size;
	unsigned restarts;		/* starts after the first */
	unsigned quick_exits;		/* in a row: the backoff exponent */
	double started, next_start, kill_at;
	double *recent;			/* the last crash_loop_restarts restarts */
	size_t nrecent;
	int crash_loop;
	int last_status;		/* wait status of its last exit; -1 */
	int restart_after_stop;		/* `restart` asked, or its mount came back */
	int remove_after_stop;		/* gone from the config (SIGHUP) */
	uint64_t ticks;			/* CPU of its tree at the last sample */
	double cpu;			/* percent of one CPU over the last sample */
};

enum ws_state {
	WS_MOUNTING,	/* cairnfs started; waiting for the mount */
	WS_RESTORING,	/* putting the agent config in place */
	WS_UP,
	WS_DOWN,	/* cairnfs died: remount at fs_next_start */
	WS_UNMOUNTING,	/* shutting down: unmounted, cairnfs exiting */
	WS_OFF,
};

struct vmd_ws {
	struct vmd *d;
	const struct conf_workspace *c;	/* in vmd->conf */
	size_t index;			/* of c in vmd->conf.ws and of acfg */
	enum ws_state state;
	char *ws_id;
	char **acfg_paths, **acfg_exclude;	/* NULL: no agent config */
	pid_t fs_pid;
	unsigned fs_restarts;
	double fs_started, fs_next_start, mount_deadline;
	pid_t restore_pid;
	char *restore_tmp;
	/* the snapshot under way: `cairn snapshot --mount`, a child */
	pid_t snap_pid;
	int snap_pipe;
	struct buf snap_out;
	const char *snap_reason;	/* "idle", "interval", "shutdown", "asked" */
	int snap_again;			/* asked again while one ran */
	double snap_started;
	int *waiters;			/* control connections waiting for it */
	size_t nwaiters;
	/* the last one */
	char *last_snapshot;
	long long generation;
	double last_snapshot_wall, last_snapshot_at;
	char *last_error;
	unsigned snapshots, snapshot_failures;
	/* activity */
	uint64_t change_seq;
	int changed;			/* local changes since the last snapshot */
	double last_active, last_active_wall;
	double acfg_newest;		/* newest ctime of the agent config seen */
	int idle_snapped, reported;	/* this idle period */
	int final_asked;		/* shutdown: ws_shutdown was called */
	pid_t hook_pid;
	/* the lease: what cairnfs waits for (its cairnfs.waiting line), and
	 * whether the mount lost it (its status) */
	char *lease_wait;
	int lease_lost;
	int shutdown_snap_failed;	/* cairnd's shutdown snapshot failed */
};

struct vmd {
	struct vconf conf;
	char *conf_path;
	struct vmd_ws *ws;
	size_t nws;
	struct vmd_agent **agents;
	size_t nagents;
	int sfd;			/* signalfd */
	int ctl_fd;			/* listening control socket */
	int *clients;			/* open control connections */
	struct buf *client_in;
	size_t nclients;
	int stopping;			/* SIGTERM: the shutdown under way */
	double stop_deadline;
	int deadline_missed;
	int ready_sent;
	uint64_t watchdog_usec;
	double last_watchdog, last_tick;
	double tty_input;		/* last seen /dev/pts input */
	char *self_dir;			/* where cairnd's binary is */
	struct vconf **old_confs;	/* loaded by SIGHUP; freed at exit */
	size_t nold;
};

/* cairnd.c */
double vmd_now(void);			/* monotonic seconds */
double vmd_wall(void);			/* seconds since the epoch */
void vmd_status(struct vmd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *vmd_program(struct vmd *d, const char *name);	/* cairn, cairnfs */
/* The environment of a cairn or cairnfs run for workspace name: cairnd's
 * own, with CAIRN_CONFIG and CAIRN_WORKSPACE_NAME naming its section and
 * no CAIRN_STORE, CAIRN_KEY, CAIRN_TENANT or CAIRN_WORKSPACE to override
 * it.  NULL-terminated, each string and the array malloc'd. */
char **vmd_child_env(struct vmd *d, const char *name);

/* ws.c */
void ws_init(struct vmd *d, struct vmd_ws *w, size_t index);
void ws_start(struct vmd_ws *w);
void ws_tick(struct vmd_ws *w, double now);
int ws_child_exited(struct vmd *d, pid_t pid, int status);	/* 1: it was one of ws's */
int ws_snapshot(struct vmd_ws *w, const char *reason);	/* 0, or -EBUSY (queued) */
void ws_snap_output(struct vmd_ws *w);	/* snap_pipe is readable */
void ws_shutdown(struct vmd_ws *w);	/* after the agents: last snapshot, unmount */
void ws_kill(struct vmd_ws *w);		/* the deadline passed */
json_t *ws_json(struct vmd_ws *w);
void ws_free(struct vmd_ws *w);

/* agent.c */
struct vmd_agent *agent_new(struct vmd *d, struct vconf_agent *c, struct vmd_ws *w);
void agent_start(struct vmd_agent *a);
void agent_stop(struct vmd_agent *a);		/* SIGTERM now, SIGKILL after the grace */
void agent_tick(struct vmd_agent *a, double now);
int agent_exited(struct vmd *d, pid_t pid, int status);	/* 1: it was an agent */
void agent_log_input(struct vmd_agent *a);	/* log_pipe is readable */
void agent_sample_cpu(struct vmd *d, double dt);
int agent_live(const struct vmd_agent *a);	/* has a process */
json_t *agent_json(const struct vmd_agent *a);
void agent_free(struct vmd_agent *a);
void agent_save_pids(struct vmd *d);		/* after every start and exit */
void agent_kill_leftovers(struct vmd *d);	/* at start: an earlier cairnd's */

/* vctl.c */
int vctl_listen(struct vmd *d);
void vctl_accept(struct vmd *d);
void vctl_input(struct vmd *d, size_t i);
void vctl_reply(struct vmd *d, int fd, json_t *reply);	/* and closes fd */
void vctl_close_all(struct vmd *d);

/* hook.c: the idle report to the hook command and the control plane */
pid_t hook_report(struct vmd_ws *w, double idle_since_wall);
/* Tells the control plane (if any) the workspace's last generation, with
 * "reporter": "cairnd", and waits for the answer.  0 (also with no
 * control plane or no snapshot yet), or a negative code with the error. */
int hook_report_generation(struct vmd_ws *w);
/* Tells the control plane (if any) what became of the lease: event
 * "waiting", "taken", "lost" or "held" (taken back), with a line. */
void hook_lease_report(struct vmd_ws *w, const char *event, const char *detail);

#endif
