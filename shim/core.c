//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* The shim's state: registration with joyrided, the per-socket objects behind
 * the application's file descriptors, the dispatcher thread that drains the
 * down ring into them, and fork handling. The interposed libc calls are in
 * calls.c.
 *
 * Every Joyride socket is backed by a real kernel eventfd, created by socket()
 * or accept(), so fd numbers never collide and the application's epoll, poll
 * and select work on it unchanged. The eventfd's counter is non-zero exactly
 * while the socket has something to read (data, a connection to accept, EOF or
 * an error): the dispatcher writes 1 to it when the socket becomes readable,
 * and on every further arrival when the socket is registered with EPOLLET (a
 * new edge; see jr_signal), and a read that empties the queue reads it back to
 * 0. An eventfd is always writable; when a non-blocking send found the send
 * window closed, the OpSent that reopens it makes a fresh EPOLLOUT edge (an
 * eventfd read wakes EPOLLOUT waiters).
 *
 * Received payloads stay in the service's buffers until read() copies them
 * out, within bounds (rq.c). */
#include "shim.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

struct real_fns real;

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;      /* socket objects, tables, queues, downFree */
static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;  /* one control request at a time */
static pthread_mutex_t send_mu = PTHREAD_MUTEX_INITIALIZER; /* the up ring's one producer */

enum { REG_NONE, REG_OK, REG_OFF };
static int g_reg = REG_NONE;
static pid_t g_pid;
static int g_ctl = -1;
struct region g_rg;
static long g_sendwin = 256 << 10;
/* The service's limit on this process's sockets (0: none said) and the
 * socket objects alive (accepted connections included, as the service
 * counts them): socket() refuses with EMFILE at the limit, where a kernel
 * out of descriptors would, instead of bind/connect failing later. */
long g_max_socks;
int g_nsocks;
static int g_debug;
static int g_fail;
char jr_prog_name[64] = "?"; /* argv[0] at load: nginx rewrites its argv later */
static char g_path[256] = "/run/joyride/joyride.sock";
static int g_logged_fallback;
int g_nlisteners; /* listener objects with an fd: poll/select/epoll_ctl look */

jsock *g_fd[JR_MAXFD];
static jsock *g_ids[1024];

/* A message for a socket id not known yet (its listen or dial reply is on
 * its way): copied, so the service's buffers go back at once. Rare, so
 * malloc'd. */
struct orphan {
	struct orphan *next;
	struct rmsg m;
	uint8_t data[];
};
static struct orphan *g_orphans, **g_orphans_tail = &g_orphans;
static int g_norphans, g_creating;
static uint32_t g_close_ids[256]; /* accepted connections nobody will see */
static int g_nclose_ids;

/* ---------------------------------------------------------------- logging */

static void vlog(const char *fmt, va_list ap)
{
	char b[600];
	int n = snprintf(b, sizeof b, "joyride-preload[%d]: ", (int)getpid());
	n += vsnprintf(b + n, sizeof b - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof b - 2)
		n = (int)sizeof b - 2;
	b[n++] = '\n';
	if (real.write)
		real.write(2, b, (size_t)n);
}

void jr_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void jr_debug(const char *fmt, ...)
{
	if (!g_debug)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------- init, fork */

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

#define R(name) real.name = dlsym(RTLD_NEXT, #name)
void jr_init_real(void)
{
	static int done;
	if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		return;
	R(socket); R(bind); R(listen); R(accept); R(accept4); R(connect);
	R(read); R(write); R(readv); R(writev); R(send); R(sendto); R(sendmsg);
	R(recv); R(recvfrom); R(recvmsg); R(close); R(shutdown); R(getsockname);
	R(getpeername); R(setsockopt); R(getsockopt); R(fcntl); R(fcntl64); R(ioctl);
	R(dup); R(dup2); R(dup3); R(poll); R(select); R(epoll_ctl); R(sendfile);
	if (!real.fcntl64)
		real.fcntl64 = real.fcntl;
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void jr_ctor(void)
{
	jr_init_real();
	/* Read the environment once, here: programs may rewrite environ later
	 * (nginx's workers keep only TZ) and still use Joyride after fork. */
	const char *d = getenv("JOYRIDE_DEBUG");
	g_debug = d && *d && strcmp(d, "0");
	snprintf(jr_prog_name, sizeof jr_prog_name, "%s", program_invocation_short_name);
	const char *p = getenv("JOYRIDE_SOCKET");
	if (p && *p)
		snprintf(g_path, sizeof g_path, "%s", p);
	const char *f = getenv("JOYRIDE_FALLBACK");
	g_fail = f && !strcmp(f, "fail");
	if (f && *f && strcmp(f, "fail") && strcmp(f, "kernel"))
		jr_log("JOYRIDE_FALLBACK=%s is neither kernel nor fail; using kernel", f);
	g_pid = getpid();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

const char *jr_socket_path(void) { return g_path; }

int jr_fallback_fail(void) { return g_fail; }

int jr_is_internal_fd(int fd)
{
	return g_reg == REG_OK && fd >= 0 && (fd == g_ctl || fd == g_rg.app_efd || fd == g_rg.svc_efd);
}

/* Moves the shim's own fd away from fd (the app wants that number). */
void jr_move_internal(int fd)
{
	pthread_mutex_lock(&ctl_mu);
	pthread_mutex_lock(&send_mu);
	if (jr_is_internal_fd(fd)) {
		int nfd = real.fcntl(fd, F_DUPFD_CLOEXEC, 100);
		if (nfd >= 0) {
			if (fd == g_ctl)
				g_ctl = nfd;
			else if (fd == g_rg.app_efd)
				g_rg.app_efd = nfd;
			else
				g_rg.svc_efd = nfd;
			/* The dispatcher may be polling the old number: it re-reads
			 * the globals every round, and the old fd closes below only
			 * after the new one is in place. */
			real.close(fd);
		}
	}
	pthread_mutex_unlock(&send_mu);
	pthread_mutex_unlock(&ctl_mu);
}

/* --------------------------------------------------------------- objects */

static int idh(uint32_t id) { return (int)(id & 1023); }

jsock *jr_find_id(uint32_t id)
{
	for (jsock *k = g_ids[idh(id)]; k; k = k->next_id)
		if (k->id == id)
			return k;
	return NULL;
}

void jr_hash_add(jsock *k)
{
	k->next_id = g_ids[idh(k->id)];
	g_ids[idh(k->id)] = k;
}

void jr_hash_del(jsock *k)
{
	for (jsock **p = &g_ids[idh(k->id)]; *p; p = &(*p)->next_id)
		if (*p == k) {
			*p = k->next_id;
			k->next_id = NULL;
			return;
		}
}

jsock *jr_new_sock(int type)
{
	jsock *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	pthread_cond_init(&k->cond, NULL);
	__atomic_add_fetch(&g_nsocks, 1, __ATOMIC_RELAXED);
	k->type = type;
	k->sigfd = -1;
	k->window = g_sendwin;
	k->local.sin_family = AF_INET;
	k->remote.sin_family = AF_INET;
	return k;
}

/* Frees a socket object whose queue is already empty (jr_rq_free). */
void jr_free_sock(jsock *k)
{
	pthread_cond_destroy(&k->cond);
	__atomic_sub_fetch(&g_nsocks, 1, __ATOMIC_RELAXED);
	free(k);
}

int jr_has_input(jsock *k)
{
	return k->nseg || k->ahead || k->eof || k->err || k->rdshut || k->state == S_DEAD;
}

static void efd_add(int fd)
{
	uint64_t one = 1;
	if (fd >= 0)
		real.write(fd, &one, 8);
}

static void efd_drain(int fd)
{
	uint64_t v;
	if (fd >= 0)
		real.read(fd, &v, 8);
}

/* Something arrived for k. Poll, select, level-triggered epoll and the
 * shim's own blocking reads wait for the counter to be non-zero, so once it
 * is (k->readable) a further write tells them nothing, and is skipped: one
 * system call (and a wake-up of every epoll that watches the fd) saved per
 * message on a socket that already had data. Edge-triggered epoll is the
 * exception: the kernel makes a new edge on every write to an eventfd, as on
 * every arrival on a kernel socket, and a program may read part of what is
 * queued and then wait for the next edge (legal with EPOLLET); skipping the
 * write would leave it waiting with data queued. So a socket that was ever
 * registered with EPOLLET (k->et, set by epoll_ctl before the kernel sees the
 * registration) gets a write on every arrival. Nothing waits on k->cond for
 * input, so arrivals do not broadcast it (jr_wake is for window and state
 * changes). */
void jr_signal(jsock *k)
{
	if (k->sigfd < 0 || (k->readable && !k->et))
		return;
	efd_add(k->sigfd);
	k->readable = 1;
}

/* Wakes the threads waiting on k's condition variable: a send waiting for
 * the window, close and shutdown waiting for k's calls in progress. */
void jr_wake(jsock *k) { pthread_cond_broadcast(&k->cond); }

void jr_clear_if_empty(jsock *k)
{
	if (k->readable && !jr_has_input(k)) {
		efd_drain(k->sigfd);
		k->readable = 0;
	}
}

/* Makes a fresh EPOLLOUT edge, keeping the readable state. */
static void kick_write(jsock *k)
{
	if (k->sigfd < 0)
		return;
	if (k->readable) {
		efd_drain(k->sigfd);
		efd_add(k->sigfd);
	} else {
		efd_add(k->sigfd);
		efd_drain(k->sigfd);
	}
	k->want_write = 0;
}

/* ---------------------------------------------------------- dispatcher */

static void route_locked(struct rmsg *m);

static void queue_close_id(uint32_t id)
{
	if (g_nclose_ids < (int)(sizeof g_close_ids / sizeof g_close_ids[0]))
		g_close_ids[g_nclose_ids++] = id;
}

static void fail_all_locked(int e)
{
	for (int i = 0; i < 1024; i++)
		for (jsock *k = g_ids[i]; k; k = k->next_id) {
			if (!k->err)
				k->err = e;
			jr_signal(k);
			jr_wake(k);
		}
}

static void *dispatch(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	struct rmsg m;
	for (;;) {
		int got = 0, r;
		while ((r = jr_ring_peek(&g_rg, &m)) == 1) {
			pthread_mutex_lock(&g_mu);
			route_locked(&m);
			pthread_mutex_unlock(&g_mu);
			jr_ring_consume(&g_rg, &m);
			got++;
		}
		if (r < 0) {
			jr_log("the shared region is corrupt: every Joyride socket fails with EIO");
			pthread_mutex_lock(&g_mu);
			/* What sockets hold was delivered before the corruption: it
			 * stays readable, in private memory. */
			jr_rq_unhold_all(0);
			fail_all_locked(EIO);
			pthread_mutex_unlock(&g_mu);
			return NULL;
		}
		if (got)
			jr_notify_service(&g_rg);
		pthread_mutex_lock(&g_mu);
		int nc = g_nclose_ids;
		uint32_t ids[256];
		memcpy(ids, g_close_ids, sizeof(uint32_t) * (size_t)nc);
		g_nclose_ids = 0;
		pthread_mutex_unlock(&g_mu);
		for (int i = 0; i < nc; i++)
			jr_ctl_simple("close", ids[i], NULL, 0);
		__atomic_store_n(g_rg.app_wake, 1, __ATOMIC_SEQ_CST);
		if (jr_ring_pending(&g_rg)) {
			__atomic_store_n(g_rg.app_wake, 0, __ATOMIC_SEQ_CST);
			continue;
		}
		struct pollfd pf[2] = {{g_rg.app_efd, POLLIN, 0}, {g_ctl, POLLRDHUP, 0}};
		real.poll(pf, 2, 100);
		__atomic_store_n(g_rg.app_wake, 0, __ATOMIC_SEQ_CST);
		efd_drain(g_rg.app_efd);
		if (pf[1].revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) {
			while ((r = jr_ring_peek(&g_rg, &m)) == 1) {
				pthread_mutex_lock(&g_mu);
				route_locked(&m);
				pthread_mutex_unlock(&g_mu);
				jr_ring_consume(&g_rg, &m);
			}
			jr_log("joyrided closed the control connection: Joyride sockets fail with ECONNRESET");
			pthread_mutex_lock(&g_mu);
			/* A later registration brings a new region: nothing may
			 * point into this one then. The data stays readable. */
			jr_rq_unhold_all(0);
			fail_all_locked(ECONNRESET);
			g_reg = REG_NONE; /* a later socket() registers again (or falls back) */
			pthread_mutex_unlock(&g_mu);
			return NULL;
		}
	}
}

static int parse_ipport(const char *s, struct sockaddr_in *sa)
{
	char ip[64];
	const char *c = strrchr(s, ':');
	if (!c || (size_t)(c - s) >= sizeof ip)
		return -1;
	memcpy(ip, s, (size_t)(c - s));
	ip[c - s] = 0;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return -1;
	sa->sin_port = htons((uint16_t)atoi(c + 1));
	return 0;
}

static uint64_t pack_addr(const struct sockaddr_in *sa)
{
	return (uint64_t)ntohl(sa->sin_addr.s_addr) << 16 | ntohs(sa->sin_port);
}

static void unpack_addr(uint64_t v, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl((uint32_t)(v >> 16));
	sa->sin_port = htons((uint16_t)v);
}

uint64_t jr_pack(const struct sockaddr_in *sa) { return pack_addr(sa); }
void jr_unpack(uint64_t v, struct sockaddr_in *sa) { unpack_addr(v, sa); }

static void apply_locked(jsock *k, struct rmsg *m)
{
	switch (m->op) {
	case OP_DATA:
		if (k->listener || k->closed)
			return;
		if (jr_rq_push(k, m) > 0)
			jr_signal(k);
		break;
	case OP_ACCEPT: {
		uint32_t id = (uint32_t)m->arg;
		jsock *c;
		if (!k->listener || k->closed || jr_find_id(id) || !(c = jr_new_sock(SOCK_STREAM))) {
			queue_close_id(id);
			return;
		}
		struct acc *a = calloc(1, sizeof *a);
		if (!a) {
			jr_free_sock(c);
			queue_close_id(id);
			return;
		}
		char rs[64];
		size_t n = m->len < sizeof rs - 1 ? m->len : sizeof rs - 1;
		jr_msg_copy(&g_rg, m, (uint8_t *)rs, n);
		rs[n] = 0;
		c->id = id;
		c->state = S_CONN;
		c->local = k->local;
		parse_ipport(rs, &c->remote);
		jr_hash_add(c);
		a->k = c;
		if (k->atail)
			k->atail->next = a;
		else
			k->ahead = a;
		k->atail = a;
		jr_signal(k);
		break;
	}
	case OP_EOF:
		k->eof = 1;
		jr_signal(k);
		break;
	case OP_ERROR:
		if (!k->err)
			k->err = m->arg ? (int)m->arg : EIO;
		jr_signal(k);
		jr_wake(k); /* a send waiting for the window fails now */
		break;
	case OP_SENT:
		k->window += (long)m->arg;
		if (k->window > g_sendwin)
			k->window = g_sendwin;
		jr_wake(k);
		if (k->want_write)
			kick_write(k);
		break;
	}
}

/* Hands m to its socket, or keeps it for a socket being created; then gives
 * back the buffers no socket kept. */
static void route_locked(struct rmsg *m)
{
	jsock *k = jr_find_id(m->sock);
	if (k) {
		apply_locked(k, m);
	} else if (g_creating > 0 && g_norphans < 4096) {
		struct orphan *o = malloc(sizeof *o + m->len);
		if (o) {
			o->next = NULL;
			o->m = *m;
			jr_msg_copy(&g_rg, m, o->data, m->len);
			o->m.priv = o->data;
			o->m.nb = 0;
			o->m.bufs = o->m.lens = NULL;
			*g_orphans_tail = o;
			g_orphans_tail = &o->next;
			g_norphans++;
		} else if (m->op == OP_ACCEPT) {
			queue_close_id((uint32_t)m->arg);
		}
	} else if (m->op == OP_ACCEPT) {
		queue_close_id((uint32_t)m->arg);
	}
	if (!m->kept && m->nb) {
		for (uint32_t i = 0; i < m->nb; i++)
			jr_ring_give(&g_rg, m->bufs[i]);
		jr_ring_publish_free(&g_rg);
	}
}

void jr_creating_begin_locked(void) { g_creating++; }

/* Ends a create: replays the messages that waited for k's id. */
void jr_creating_end_locked(void)
{
	struct orphan **pp = &g_orphans;
	while (*pp) {
		struct orphan *o = *pp;
		jsock *k = jr_find_id(o->m.sock);
		if (k || g_creating == 1) {
			*pp = o->next;
			g_norphans--;
			if (k)
				apply_locked(k, &o->m);
			else if (o->m.op == OP_ACCEPT)
				queue_close_id((uint32_t)o->m.arg);
			free(o);
		} else {
			pp = &o->next;
		}
	}
	g_orphans_tail = pp;
	g_creating--;
}

/* ------------------------------------------------------------ register */

/* Registers this process with joyrided once (again in a forked child).
 * 0: Joyride is usable; -1: not (errno set, one log line printed). */
int jr_ensure_registered(void)
{
	if (__atomic_load_n(&g_reg, __ATOMIC_ACQUIRE) == REG_OK)
		return 0;
	pthread_mutex_lock(&ctl_mu);
	if (g_reg == REG_OK) {
		pthread_mutex_unlock(&ctl_mu);
		return 0;
	}
	if (g_reg == REG_OFF) {
		pthread_mutex_unlock(&ctl_mu);
		errno = ENETDOWN;
		return -1;
	}
	const char *path = jr_socket_path();
	char why[400] = "";
	int fds[3];
	struct reply r;
	int fd = jr_ctl_register(path, fds, &r, why, sizeof why);
	if (fd >= 0) {
		if (jr_region_attach(&g_rg, fds[0], fds[1], fds[2], why, sizeof why) != 0) {
			real.close(fds[0]);
			real.close(fds[1]);
			real.close(fds[2]);
			real.close(fd);
			fd = -1;
		} else {
			real.close(fds[0]); /* the mapping stays */
		}
	}
	if (fd < 0) {
		g_reg = REG_OFF;
		if (!g_logged_fallback) {
			g_logged_fallback = 1;
			jr_log("joyrided not usable (%s); %s", why,
			       jr_fallback_fail() ? "AF_INET socket() fails with ENETDOWN (JOYRIDE_FALLBACK=fail)"
						  : "using the kernel's network stack (JOYRIDE_FALLBACK=kernel)");
		}
		pthread_mutex_unlock(&ctl_mu);
		errno = ENETDOWN;
		return -1;
	}
	g_ctl = fd;
	if (r.send_window > 0)
		g_sendwin = r.send_window;
	g_max_socks = r.max_sockets;
	if (r.max_message > 0 && (size_t)r.max_message < g_rg.max_msg)
		g_rg.max_msg = (size_t)r.max_message;
	jr_rq_set_caps();
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 << 10);
	__atomic_store_n(&g_reg, REG_OK, __ATOMIC_RELEASE);
	if (pthread_create(&t, &at, dispatch, NULL) != 0) {
		jr_log("cannot start the dispatcher thread; using the kernel's network stack");
		g_reg = REG_OFF;
		pthread_mutex_unlock(&ctl_mu);
		errno = ENETDOWN;
		return -1;
	}
	pthread_attr_destroy(&at);
	jr_debug("attached to %s (send window %ld, max message %zu)", path, g_sendwin, g_rg.max_msg);
	pthread_mutex_unlock(&ctl_mu);
	return 0;
}

/* One control request; returns 0 and the reply, or -1 with errno (the
 * service's errno when it refused). */
int jr_ctl(const char *req, struct reply *r)
{
	pthread_mutex_lock(&ctl_mu);
	if (g_reg != REG_OK) {
		pthread_mutex_unlock(&ctl_mu);
		errno = ECONNRESET;
		return -1;
	}
	int rc = jr_ctl_roundtrip(g_ctl, req, r);
	pthread_mutex_unlock(&ctl_mu);
	if (rc != 0)
		return -1;
	if (!r->ok) {
		jr_debug("request %s refused: %s", req, r->error);
		errno = r->err_no ? r->err_no : EINVAL;
		return -1;
	}
	return 0;
}

int jr_ctl_simple(const char *op, uint32_t sock, const char *extra, int value)
{
	char req[256];
	struct reply r;
	if (!strcmp(op, "shutdown"))
		snprintf(req, sizeof req, "{\"op\":\"shutdown\",\"sock\":%u,\"how\":\"%s\"}", sock, extra);
	else if (!strcmp(op, "setsockopt"))
		snprintf(req, sizeof req, "{\"op\":\"setsockopt\",\"sock\":%u,\"opt\":\"%s\",\"value\":%d}", sock, extra, value);
	else
		snprintf(req, sizeof req, "{\"op\":\"%s\",\"sock\":%u}", op, sock);
	return jr_ctl(req, &r);
}

/* Puts one message on the up ring, waiting (with a growing pause) while the
 * ring or the buffers are full. 0, or an errno. */
int jr_send_msg(uint16_t op, uint32_t sock, uint64_t arg, const void *p, size_t n)
{
	long pause_ns = 10000;
	for (;;) {
		if (g_reg != REG_OK)
			return EPIPE;
		pthread_mutex_lock(&send_mu);
		int r = jr_ring_send(&g_rg, op, sock, arg, p, n);
		jr_notify_service(&g_rg);
		pthread_mutex_unlock(&send_mu);
		if (r == 0)
			return 0;
		if (r == -2)
			return EMSGSIZE;
		struct timespec ts = {0, pause_ns};
		nanosleep(&ts, NULL);
		if (pause_ns < 1000000)
			pause_ns *= 2;
	}
}

size_t jr_max_msg(void) { return g_rg.max_msg; }

/* ---------------------------------------------------------------- fork */

/* Before fork: a listener that this process never waited on (no accept,
 * poll, select or epoll_ctl on it: nginx's master) goes back to "pending" at
 * the service, so the children that will accept on it each listen with
 * SO_REUSEPORT semantics and none of the connections land in a listener
 * nobody accepts on. Then every lock is taken, so the child gets them in a
 * consistent state, and every byte a socket holds in the service's buffers is
 * copied into the socket's private memory and the buffers given back: the
 * child inherits the queues but not the region (and must not read buffers the
 * parent gives back to the service and the service then reuses). */
static void fork_prepare(void)
{
	if (g_reg == REG_OK && g_pid == getpid()) {
		for (;;) {
			uint32_t id = 0;
			pthread_mutex_lock(&g_mu);
			for (int fd = 0; fd < JR_MAXFD && !id; fd++) {
				jsock *k = g_fd[fd];
				if (k && k->listener && k->state == S_LISTEN && !k->used) {
					id = k->id;
					jr_hash_del(k);
					k->id = 0;
					k->state = S_LPEND;
					k->reuseport = 1;
					for (struct acc *a = k->ahead; a;) {
						struct acc *n = a->next;
						jr_hash_del(a->k);
						queue_close_id(a->k->id);
						jr_rq_free(a->k, 1);
						jr_free_sock(a->k);
						free(a);
						a = n;
					}
					k->ahead = k->atail = NULL;
					jr_clear_if_empty(k);
				}
			}
			pthread_mutex_unlock(&g_mu);
			if (!id)
				break;
			jr_debug("fork: listener %u returned to pending (children listen with reuseport)", id);
			jr_ctl_simple("close", id, NULL, 0);
		}
	}
	pthread_mutex_lock(&ctl_mu);
	pthread_mutex_lock(&send_mu);
	pthread_mutex_lock(&g_mu);
	if (g_reg == REG_OK && g_pid == getpid())
		jr_rq_unhold_all(1);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&g_mu);
	pthread_mutex_unlock(&send_mu);
	pthread_mutex_unlock(&ctl_mu);
}

/* In the child: the registration (control connection, region, dispatcher)
 * is the parent's; drop this process's copies and register again on first
 * use. Each inherited socket gets its own new eventfd (dup3 onto the same fd
 * numbers), so parent and child never see each other's readiness. Listeners
 * become pending with reuseport; connections belong to the parent and fail
 * here with EIO. */
static void fork_child(void)
{
	pthread_mutex_unlock(&g_mu);
	pthread_mutex_unlock(&send_mu);
	pthread_mutex_unlock(&ctl_mu);
	g_pid = getpid();
	if (g_reg == REG_OK) {
		real.close(g_ctl);
		real.close(g_rg.app_efd);
		real.close(g_rg.svc_efd);
		munmap(g_rg.mem, g_rg.size);
		free(g_rg.free);
		free(g_rg.cbufs);
		free(g_rg.clens);
		memset(&g_rg, 0, sizeof g_rg);
		g_rg.app_efd = g_rg.svc_efd = -1;
		g_ctl = -1;
	}
	if (g_reg != REG_OFF)
		g_reg = REG_NONE;
	memset(g_ids, 0, sizeof g_ids);
	g_orphans = NULL;
	g_orphans_tail = &g_orphans;
	g_norphans = g_creating = g_nclose_ids = 0;
	for (int fd = 0; fd < JR_MAXFD; fd++) {
		jsock *k = g_fd[fd];
		if (!k || k->forkgen == g_pid)
			continue;
		k->forkgen = g_pid;
		int ne = eventfd(0, EFD_NONBLOCK);
		for (int f = fd; f < JR_MAXFD && ne >= 0; f++) {
			if (g_fd[f] != k)
				continue;
			int cloexec = real.fcntl(f, F_GETFD) & FD_CLOEXEC;
			real.dup3(ne, f, cloexec ? O_CLOEXEC : 0);
		}
		if (ne >= 0)
			real.close(ne);
		k->readable = 0;
		k->id = 0;
		k->writers = 0;
		/* The parent's threads may have been waiting on it. */
		pthread_cond_init(&k->cond, NULL);
		/* Held only if fork_prepare ran out of memory copying: those
		 * buffers are the parent's (and the region is gone). */
		if (k->nheld)
			jr_rq_free(k, 0);
		for (struct acc *a = k->ahead; a;) {
			struct acc *n = a->next;
			jr_rq_free(a->k, 0);
			free(a->k); /* not jr_free_sock: its cond is the parent's */
			__atomic_sub_fetch(&g_nsocks, 1, __ATOMIC_RELAXED);
			free(a);
			a = n;
		}
		k->ahead = k->atail = NULL;
		if (k->listener) {
			k->state = S_LPEND;
			k->reuseport = 1;
			k->used = 0;
		} else if (k->state == S_CONN || k->state == S_CONNECTING) {
			k->state = S_DEAD;
			k->err = EIO;
		}
		if (jr_has_input(k))
			jr_signal(k);
	}
	jr_rq_forget_holds();
}

int parse_ipport_pub(const char *s, struct sockaddr_in *sa) { return parse_ipport(s, sa); }
long g_sendwin_pub(void) { return g_sendwin; }
