//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* The interposed libc calls. A call on a descriptor the shim does not own
 * (files, Unix sockets, AF_INET6, kernel AF_INET sockets after a fallback) goes
 * straight to libc. */
#include "core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static jsock *get(int fd)
{
	if (fd < 0 || fd >= JR_MAXFD)
		return NULL;
	return __atomic_load_n(&g_fd[fd], __ATOMIC_ACQUIRE);
}

static int fail(int e)
{
	errno = e;
	return -1;
}

static void addr_str(const struct sockaddr_in *sa, char *out, size_t n)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
	snprintf(out, n, "%s:%u", ip, ntohs(sa->sin_port));
}

static void fill_addr(const struct sockaddr_in *sa, struct sockaddr *addr, socklen_t *len)
{
	if (!addr || !len)
		return;
	socklen_t n = *len < sizeof *sa ? *len : (socklen_t)sizeof *sa;
	memcpy(addr, sa, n);
	*len = sizeof *sa;
}

static int get_in(const struct sockaddr *addr, socklen_t len, struct sockaddr_in *sa)
{
	if (!addr || len < (socklen_t)sizeof(struct sockaddr_in) || addr->sa_family != AF_INET)
		return -1;
	memcpy(sa, addr, sizeof *sa);
	return 0;
}

static int is_loopback(const struct sockaddr_in *sa) { return (ntohl(sa->sin_addr.s_addr) >> 24) == 127; }

/* Waits, with g_mu held, until k's eventfd is readable: 0 to look again,
 * -1 with errno (EINTR on a signal, EAGAIN on timeout). */
static int wait_input(int fd, jsock *k, int timeout_ms)
{
	k->writers++;
	pthread_mutex_unlock(&g_mu);
	struct pollfd pf = {fd, POLLIN, 0};
	int r = real.poll(&pf, 1, timeout_ms > 0 ? timeout_ms : -1);
	int e = errno;
	pthread_mutex_lock(&g_mu);
	if (--k->writers == 0)
		jr_wake(k);
	if (r < 0)
		return fail(e);
	if (r == 0)
		return fail(EAGAIN);
	if (pf.revents & POLLNVAL)
		return fail(EBADF);
	if (k->closed)
		return fail(EBADF);
	return 0;
}

/* Waits, with g_mu held, for a change to k (jr_wake) or ms. */
static void cond_wait_ms(jsock *k, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000;
	while (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&k->cond, &g_mu, &ts);
}

/* Replaces Joyride socket fd by a kernel socket (loopback traffic, which the
 * service cannot carry), replaying the options set so far. */
static int to_kernel(int fd, jsock *k)
{
	int s = real.socket(AF_INET, k->type | (k->nonblock ? SOCK_NONBLOCK : 0), 0);
	if (s < 0)
		return -1;
	for (int i = 0; i < k->nopts; i++)
		real.setsockopt(s, k->opts[i].level, k->opts[i].name, k->opts[i].val, k->opts[i].len);
	int cloexec = real.fcntl(fd, F_GETFD) & FD_CLOEXEC;
	pthread_mutex_lock(&g_mu);
	if (k->nfds != 1 || k->state != S_NEW) {
		pthread_mutex_unlock(&g_mu);
		real.close(s);
		return fail(EINVAL);
	}
	g_fd[fd] = NULL;
	int r = real.dup3(s, fd, cloexec ? O_CLOEXEC : 0);
	pthread_mutex_unlock(&g_mu);
	real.close(s);
	jr_free_sock(k);
	jr_debug("fd %d: loopback, moved to the kernel stack", fd);
	return r < 0 ? -1 : 0;
}

/* Makes a service socket for k: listen (TCP listener, UDP bind) or dial. */
static int create(jsock *k, const char *op, const struct sockaddr_in *sa, int timeout_ms)
{
	char a[64], req[256];
	addr_str(sa, a, sizeof a);
	int n = snprintf(req, sizeof req, "{\"op\":\"%s\",\"network\":\"%s\",\"addr\":\"%s\"", op,
			 k->type == SOCK_DGRAM ? "udp" : "tcp", a);
	if (!strcmp(op, "listen") && k->type == SOCK_STREAM)
		n += snprintf(req + n, sizeof req - (size_t)n, ",\"backlog\":%d%s", k->backlog > 0 ? k->backlog : 128,
			      k->reuseport ? ",\"reuseport\":true" : "");
	if (timeout_ms > 0)
		n += snprintf(req + n, sizeof req - (size_t)n, ",\"timeout_ms\":%d", timeout_ms);
	snprintf(req + n, sizeof req - (size_t)n, "}");
	if (jr_ensure_registered() != 0)
		return -1;
	pthread_mutex_lock(&g_mu);
	jr_creating_begin_locked();
	pthread_mutex_unlock(&g_mu);
	struct reply r;
	int rc = jr_ctl(req, &r);
	int e = errno;
	pthread_mutex_lock(&g_mu);
	if (rc == 0) {
		k->id = r.sock;
		jr_hash_add(k);
		struct sockaddr_in l;
		if (r.local[0] && parse_ipport_pub(r.local, &l) == 0)
			k->local = l;
		if (r.remote[0] && parse_ipport_pub(r.remote, &l) == 0) {
			k->remote = l;
			k->has_remote = 1;
		}
	}
	jr_creating_end_locked();
	pthread_mutex_unlock(&g_mu);
	if (rc != 0)
		return fail(e);
	return 0;
}

/* Makes the service listener of a pending listener. */
static int activate(jsock *k)
{
	pthread_mutex_lock(&g_mu);
	k->used = 1;
	if (k->state != S_LPEND) {
		pthread_mutex_unlock(&g_mu);
		return 0;
	}
	k->state = S_CONNECTING;
	k->writers++;
	struct sockaddr_in sa = k->local;
	pthread_mutex_unlock(&g_mu);
	int rc = create(k, "listen", &sa, 0);
	int e = errno;
	pthread_mutex_lock(&g_mu);
	if (--k->writers == 0)
		jr_wake(k);
	if (rc == 0) {
		k->state = S_LISTEN;
		k->err = 0;
	} else {
		k->state = S_LPEND;
		jr_log("listen on %s:%u at joyrided failed: %s%s", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port), strerror(e),
		       e == EADDRINUSE ? " (a listener inherited across fork whose parent still listens is refused)" : "");
	}
	pthread_mutex_unlock(&g_mu);
	if (rc != 0)
		return fail(e);
	return 0;
}

static void note_used(int fd)
{
	jsock *k = get(fd);
	if (k && k->listener && (!k->used || k->state == S_LPEND))
		activate(k);
}

/* ------------------------------------------------------------ socket */

EXPORT int socket(int domain, int type, int protocol)
{
	jr_init_real();
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (domain != AF_INET || (base != SOCK_STREAM && base != SOCK_DGRAM) ||
	    (protocol != 0 && protocol != IPPROTO_TCP && protocol != IPPROTO_UDP))
		return real.socket(domain, type, protocol);
	if (jr_ensure_registered() != 0) {
		if (jr_fallback_fail())
			return fail(ENETDOWN);
		return real.socket(domain, type, protocol);
	}
	if (g_max_socks > 0 && __atomic_load_n(&g_nsocks, __ATOMIC_RELAXED) >= g_max_socks)
		return fail(EMFILE); /* the service's limit on this process (joyrided -max-sockets) */
	int efd = eventfd(0, EFD_NONBLOCK | ((type & SOCK_CLOEXEC) ? EFD_CLOEXEC : 0));
	if (efd < 0)
		return -1;
	if (efd >= JR_MAXFD) {
		real.close(efd);
		return real.socket(domain, type, protocol);
	}
	jsock *k = jr_new_sock(base);
	if (!k) {
		real.close(efd);
		return fail(ENOMEM);
	}
	k->nonblock = !!(type & SOCK_NONBLOCK);
	k->nfds = 1;
	k->sigfd = efd;
	pthread_mutex_lock(&g_mu);
	__atomic_store_n(&g_fd[efd], k, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_mu);
	jr_debug("socket() = %d (Joyride %s)", efd, base == SOCK_STREAM ? "tcp" : "udp");
	return efd;
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.bind(fd, addr, len);
	struct sockaddr_in sa;
	if (get_in(addr, len, &sa))
		return fail(addr && addr->sa_family != AF_INET ? EAFNOSUPPORT : EINVAL);
	if (is_loopback(&sa) && k->state == S_NEW) {
		if (to_kernel(fd, k))
			return -1;
		return real.bind(fd, addr, len);
	}
	pthread_mutex_lock(&g_mu);
	if (k->state != S_NEW || k->bound) {
		pthread_mutex_unlock(&g_mu);
		return fail(EINVAL);
	}
	k->local = sa;
	k->bound = 1;
	pthread_mutex_unlock(&g_mu);
	if (k->type == SOCK_DGRAM) {
		if (create(k, "listen", &sa, 0))
			return -1;
		pthread_mutex_lock(&g_mu);
		k->state = S_CONN;
		pthread_mutex_unlock(&g_mu);
	}
	return 0;
}

EXPORT int listen(int fd, int backlog)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.listen(fd, backlog);
	if (k->type != SOCK_STREAM)
		return fail(EOPNOTSUPP);
	pthread_mutex_lock(&g_mu);
	if (k->listener) {
		k->backlog = backlog;
		pthread_mutex_unlock(&g_mu);
		return 0;
	}
	if (k->state != S_NEW) {
		pthread_mutex_unlock(&g_mu);
		return fail(EINVAL);
	}
	k->listener = 1;
	k->backlog = backlog;
	k->state = S_LPEND;
	g_nlisteners++;
	pthread_mutex_unlock(&g_mu);
	/* Listen at the service now (a bind error shows here), but count the
	 * listener as unused until the process waits on it: see fork_prepare. */
	int r = activate(k);
	pthread_mutex_lock(&g_mu);
	k->used = 0;
	if (r != 0) {
		int e = errno;
		k->listener = 0;
		k->state = S_NEW;
		g_nlisteners--;
		pthread_mutex_unlock(&g_mu);
		return fail(e);
	}
	pthread_mutex_unlock(&g_mu);
	return 0;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	jsock *k = get(fd);
	if (!k->listener)
		return fail(EINVAL);
	if ((!k->used || k->state == S_LPEND) && activate(k) != 0)
		return -1;
	pthread_mutex_lock(&g_mu);
	for (;;) {
		if (k->closed) {
			pthread_mutex_unlock(&g_mu);
			return fail(EBADF);
		}
		if (k->ahead) {
			int efd = eventfd(0, EFD_NONBLOCK | ((flags & SOCK_CLOEXEC) ? EFD_CLOEXEC : 0));
			if (efd < 0 || efd >= JR_MAXFD) {
				int e = efd < 0 ? errno : EMFILE;
				if (efd >= 0)
					real.close(efd);
				pthread_mutex_unlock(&g_mu);
				return fail(e);
			}
			struct acc *a = k->ahead;
			k->ahead = a->next;
			if (!k->ahead)
				k->atail = NULL;
			jsock *c = a->k;
			free(a);
			c->nfds = 1;
			c->sigfd = efd;
			c->nonblock = !!(flags & SOCK_NONBLOCK);
			c->has_remote = 1;
			__atomic_store_n(&g_fd[efd], c, __ATOMIC_RELEASE);
			if (jr_has_input(c))
				jr_signal(c);
			jr_clear_if_empty(k);
			struct sockaddr_in ra = c->remote;
			pthread_mutex_unlock(&g_mu);
			fill_addr(&ra, addr, len);
			return efd;
		}
		if (k->err) {
			int e = k->err;
			pthread_mutex_unlock(&g_mu);
			return fail(e);
		}
		if (k->nonblock) {
			pthread_mutex_unlock(&g_mu);
			return fail(EAGAIN);
		}
		if (wait_input(fd, k, k->rcvtimeo_ms) != 0) {
			int e = errno;
			pthread_mutex_unlock(&g_mu);
			return fail(e);
		}
	}
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	jr_init_real();
	if (!get(fd))
		return real.accept4(fd, addr, len, flags);
	return do_accept(fd, addr, len, flags);
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	jr_init_real();
	if (!get(fd))
		return real.accept(fd, addr, len);
	return do_accept(fd, addr, len, 0);
}

static void apply_opts(jsock *k)
{
	for (int i = 0; i < k->nopts; i++) {
		struct sopt *o = &k->opts[i];
		int v;
		memcpy(&v, o->val, sizeof v);
		if (o->level == IPPROTO_TCP && o->name == TCP_NODELAY)
			jr_ctl_simple("setsockopt", k->id, "nodelay", v != 0);
		else if (o->level == SOL_SOCKET && o->name == SO_SNDBUF)
			jr_ctl_simple("setsockopt", k->id, "sndbuf", v);
		else if (o->level == SOL_SOCKET && o->name == SO_RCVBUF)
			jr_ctl_simple("setsockopt", k->id, "rcvbuf", v);
	}
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.connect(fd, addr, len);
	struct sockaddr_in sa;
	if (addr && addr->sa_family == AF_UNSPEC && k->type == SOCK_DGRAM) {
		k->has_remote = 0;
		return 0;
	}
	if (get_in(addr, len, &sa))
		return fail(addr && addr->sa_family != AF_INET ? EAFNOSUPPORT : EINVAL);
	if (is_loopback(&sa) && k->state == S_NEW) {
		if (to_kernel(fd, k))
			return -1;
		return real.connect(fd, addr, len);
	}
	pthread_mutex_lock(&g_mu);
	if (k->listener) {
		pthread_mutex_unlock(&g_mu);
		return fail(EINVAL);
	}
	if (k->type == SOCK_DGRAM && k->state == S_CONN) {
		/* a bound UDP socket: the peer becomes the default destination */
		k->remote = sa;
		k->has_remote = 1;
		pthread_mutex_unlock(&g_mu);
		return 0;
	}
	if (k->state == S_CONNECTING) {
		pthread_mutex_unlock(&g_mu);
		return fail(EALREADY);
	}
	if (k->state != S_NEW) {
		int e = k->state == S_CONN ? EISCONN : (k->so_error ? k->so_error : EINVAL);
		pthread_mutex_unlock(&g_mu);
		return fail(e);
	}
	k->state = S_CONNECTING;
	k->writers++;
	int nb = k->nonblock;
	int tmo = k->sndtimeo_ms;
	pthread_mutex_unlock(&g_mu);
	/* The dial runs to its end here, also for a non-blocking socket (the
	 * service answers within one handshake; a silent peer costs up to the
	 * service's timeout). A non-blocking connect then says EINPROGRESS and
	 * leaves the result in SO_ERROR, as the kernel's does. */
	int rc = create(k, "dial", &sa, tmo);
	int e = errno;
	pthread_mutex_lock(&g_mu);
	if (--k->writers == 0)
		jr_wake(k);
	if (rc == 0) {
		k->state = S_CONN;
		k->so_error = 0;
		if (!k->has_remote) {
			k->remote = sa;
			k->has_remote = 1;
		}
	} else if (nb) {
		k->state = S_DEAD;
		k->so_error = e;
		k->err = e;
		jr_signal(k);
	} else {
		k->state = S_NEW;
	}
	pthread_mutex_unlock(&g_mu);
	if (rc == 0 && k->nopts)
		apply_opts(k);
	if (nb)
		return fail(EINPROGRESS);
	return rc == 0 ? 0 : fail(e);
}

/* ------------------------------------------------------------- receive */

static ssize_t do_recv(int fd, jsock *k, const struct iovec *iov, int iovcnt, int flags, struct sockaddr *from,
		       socklen_t *fromlen, int *msgflags)
{
	size_t want = 0;
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	pthread_mutex_lock(&g_mu);
	for (;;) {
		if (k->closed) {
			pthread_mutex_unlock(&g_mu);
			return fail(EBADF);
		}
		if (k->nseg && !k->rdshut) {
			/* Straight from the queue (the service's buffers, mostly)
			 * into the caller's. */
			struct sockaddr_in src = k->remote;
			uint64_t arg = 0;
			size_t full = 0;
			size_t n = jr_rq_read(k, iov, iovcnt, flags & MSG_PEEK, &arg, &full);
			int dgram = k->type == SOCK_DGRAM;
			jr_clear_if_empty(k);
			pthread_mutex_unlock(&g_mu);
			if (dgram) {
				jr_unpack(arg, &src);
				if (msgflags && full > n)
					*msgflags |= MSG_TRUNC;
				fill_addr(&src, from, fromlen);
				return (flags & MSG_TRUNC) ? (ssize_t)full : (ssize_t)n;
			}
			fill_addr(&src, from, fromlen);
			return (ssize_t)n;
		}
		if (want == 0 && k->type == SOCK_STREAM) {
			pthread_mutex_unlock(&g_mu);
			return 0;
		}
		if (k->err) {
			int e = k->err;
			pthread_mutex_unlock(&g_mu);
			return fail(e);
		}
		if (k->eof || k->rdshut) {
			pthread_mutex_unlock(&g_mu);
			return 0;
		}
		if (k->listener || (k->state != S_CONN && k->state != S_CONNECTING)) {
			pthread_mutex_unlock(&g_mu);
			return fail(k->type == SOCK_STREAM ? ENOTCONN : EAGAIN);
		}
		if (k->nonblock || (flags & MSG_DONTWAIT)) {
			pthread_mutex_unlock(&g_mu);
			return fail(EAGAIN);
		}
		if (wait_input(fd, k, k->rcvtimeo_ms) != 0) {
			int e = errno;
			pthread_mutex_unlock(&g_mu);
			return fail(e);
		}
	}
}

/* --------------------------------------------------------------- send */

static ssize_t send_buf(jsock *k, const char *p, size_t len, int flags, const struct sockaddr_in *dst)
{
	size_t maxm = jr_max_msg();
	pthread_mutex_lock(&g_mu);
	if (k->type == SOCK_DGRAM) {
		if (k->state == S_NEW && !k->closed) {
			struct sockaddr_in any = {.sin_family = AF_INET};
			pthread_mutex_unlock(&g_mu);
			if (create(k, "listen", &any, 0))
				return -1;
			pthread_mutex_lock(&g_mu);
			k->state = S_CONN;
			k->bound = 1;
		}
		uint64_t arg = 0;
		if (dst)
			arg = jr_pack(dst);
		else if (!k->has_remote) {
			pthread_mutex_unlock(&g_mu);
			return fail(EDESTADDRREQ);
		} else if (!k->bound) /* dialled: the service knows the peer */
			arg = 0;
		else
			arg = jr_pack(&k->remote);
		if (k->err || k->closed || k->state != S_CONN) {
			int e = k->err ? k->err : EBADF;
			pthread_mutex_unlock(&g_mu);
			return fail(e);
		}
		if (len > maxm) {
			pthread_mutex_unlock(&g_mu);
			return fail(EMSGSIZE);
		}
		k->writers++;
		uint32_t id = k->id;
		pthread_mutex_unlock(&g_mu);
		int e = jr_send_msg(OP_SEND, id, arg, p, len);
		pthread_mutex_lock(&g_mu);
		if (--k->writers == 0)
			jr_wake(k);
		pthread_mutex_unlock(&g_mu);
		return e ? fail(e) : (ssize_t)len;
	}
	size_t sent = 0;
	for (;;) {
		int e = 0;
		if (k->closed)
			e = EBADF;
		else if (k->err)
			e = k->err;
		else if (k->wrshut)
			e = EPIPE;
		else if (k->state != S_CONN)
			e = k->state == S_CONNECTING ? EAGAIN : ENOTCONN;
		if (e || sent == len) {
			pthread_mutex_unlock(&g_mu);
			if (sent > 0)
				return (ssize_t)sent;
			if (e == EPIPE && !(flags & MSG_NOSIGNAL))
				pthread_kill(pthread_self(), SIGPIPE);
			return e ? fail(e) : 0;
		}
		if (k->window <= 0) {
			if (k->nonblock || (flags & MSG_DONTWAIT)) {
				k->want_write = 1;
				pthread_mutex_unlock(&g_mu);
				if (sent > 0)
					return (ssize_t)sent;
				return fail(EAGAIN);
			}
			/* Counted as a call in progress, so close waits for it
			 * to see k->closed before it frees k (and its cond). */
			k->writers++;
			cond_wait_ms(k, 50);
			if (--k->writers == 0)
				jr_wake(k);
			continue;
		}
		size_t m = len - sent;
		if (m > (size_t)k->window)
			m = (size_t)k->window;
		if (m > maxm)
			m = maxm;
		k->window -= (long)m;
		k->writers++;
		uint32_t id = k->id;
		pthread_mutex_unlock(&g_mu);
		e = jr_send_msg(OP_SEND, id, 0, p + sent, m);
		pthread_mutex_lock(&g_mu);
		if (--k->writers == 0)
			jr_wake(k);
		if (e) {
			k->window += (long)m;
			pthread_mutex_unlock(&g_mu);
			return sent ? (ssize_t)sent : fail(e);
		}
		sent += m;
	}
}

static ssize_t send_iov(jsock *k, const struct iovec *iov, int iovcnt, int flags, const struct sockaddr_in *dst)
{
	if (iovcnt == 1)
		return send_buf(k, iov[0].iov_base, iov[0].iov_len, flags, dst);
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total == 0)
		return send_buf(k, "", 0, flags, dst);
	char stackbuf[16384];
	char *b = total <= sizeof stackbuf ? stackbuf : malloc(total);
	if (!b)
		return fail(ENOMEM);
	size_t o = 0;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(b + o, iov[i].iov_base, iov[i].iov_len);
		o += iov[i].iov_len;
	}
	ssize_t r = send_buf(k, b, total, flags, dst);
	int e = errno;
	if (b != stackbuf)
		free(b);
	errno = e;
	return r;
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.read(fd, buf, n);
	struct iovec v = {buf, n};
	return do_recv(fd, k, &v, 1, 0, NULL, NULL, NULL);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		abort();
	return read(fd, buf, n);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.readv(fd, iov, iovcnt);
	return do_recv(fd, k, iov, iovcnt, 0, NULL, NULL, NULL);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.recv(fd, buf, n, flags);
	struct iovec v = {buf, n};
	return do_recv(fd, k, &v, 1, flags, NULL, NULL, NULL);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		abort();
	return recv(fd, buf, n, flags);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from, socklen_t *fromlen)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.recvfrom(fd, buf, n, flags, from, fromlen);
	struct iovec v = {buf, n};
	return do_recv(fd, k, &v, 1, flags, from, fromlen, NULL);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *from,
			      socklen_t *fromlen)
{
	if (n > buflen)
		abort();
	return recvfrom(fd, buf, n, flags, from, fromlen);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.recvmsg(fd, msg, flags);
	msg->msg_flags = 0;
	socklen_t fl = msg->msg_namelen;
	ssize_t r = do_recv(fd, k, msg->msg_iov, (int)msg->msg_iovlen, flags, msg->msg_name, msg->msg_name ? &fl : NULL,
			    &msg->msg_flags);
	if (r >= 0 && msg->msg_name)
		msg->msg_namelen = fl;
	msg->msg_controllen = 0;
	return r;
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.write(fd, buf, n);
	return send_buf(k, buf, n, 0, NULL);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.writev(fd, iov, iovcnt);
	return send_iov(k, iov, iovcnt, 0, NULL);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.send(fd, buf, n, flags);
	return send_buf(k, buf, n, flags, NULL);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t tolen)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.sendto(fd, buf, n, flags, to, tolen);
	struct sockaddr_in sa;
	if (to && k->type == SOCK_DGRAM) {
		if (get_in(to, tolen, &sa))
			return fail(EAFNOSUPPORT);
		return send_buf(k, buf, n, flags, &sa);
	}
	return send_buf(k, buf, n, flags, NULL);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.sendmsg(fd, msg, flags);
	struct sockaddr_in sa;
	if (msg->msg_name && k->type == SOCK_DGRAM) {
		if (get_in(msg->msg_name, msg->msg_namelen, &sa))
			return fail(EAFNOSUPPORT);
		return send_iov(k, msg->msg_iov, (int)msg->msg_iovlen, flags, &sa);
	}
	return send_iov(k, msg->msg_iov, (int)msg->msg_iovlen, flags, NULL);
}

static ssize_t do_sendfile(int out, int in, off_t *off, size_t count)
{
	jsock *k = get(out);
	char buf[65536];
	size_t n = count < sizeof buf ? count : sizeof buf;
	ssize_t r = off ? pread(in, buf, n, *off) : real.read(in, buf, n);
	if (r <= 0)
		return r;
	ssize_t w = send_buf(k, buf, (size_t)r, 0, NULL);
	if (w <= 0)
		return w;
	if (off)
		*off += w;
	else if (w < r)
		lseek(in, w - r, SEEK_CUR);
	return w;
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
	jr_init_real();
	if (!get(out))
		return real.sendfile(out, in, off, count);
	return do_sendfile(out, in, off, count);
}

EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
	return sendfile(out, in, off, count);
}

/* --------------------------------------------------------------- close */

static int jr_close(int fd)
{
	pthread_mutex_lock(&g_mu);
	jsock *k = g_fd[fd];
	if (!k) {
		pthread_mutex_unlock(&g_mu);
		return real.close(fd);
	}
	__atomic_store_n(&g_fd[fd], NULL, __ATOMIC_RELEASE);
	k->nfds--;
	if (k->nfds > 0) {
		if (k->sigfd == fd) {
			k->sigfd = -1;
			for (int f = 0; f < JR_MAXFD; f++)
				if (g_fd[f] == k) {
					k->sigfd = f;
					break;
				}
		}
		int r = real.close(fd);
		pthread_mutex_unlock(&g_mu);
		return r;
	}
	k->closed = 1;
	jr_signal(k); /* wake threads blocked on it */
	jr_wake(k);
	while (k->writers > 0)
		cond_wait_ms(k, 50);
	k->sigfd = -1;
	int r = real.close(fd);
	uint32_t id = k->state == S_DEAD ? 0 : k->id;
	if (k->id)
		jr_hash_del(k);
	if (k->listener)
		g_nlisteners--;
	uint32_t pend[64];
	int np = 0;
	for (struct acc *a = k->ahead; a;) {
		struct acc *n = a->next;
		jr_hash_del(a->k);
		if (np < 64)
			pend[np++] = a->k->id;
		jr_rq_free(a->k, 1);
		jr_free_sock(a->k);
		free(a);
		a = n;
	}
	jr_rq_free(k, 1);
	pthread_mutex_unlock(&g_mu);
	if (id)
		jr_ctl_simple("close", id, NULL, 0);
	for (int i = 0; i < np; i++)
		jr_ctl_simple("close", pend[i], NULL, 0);
	jr_free_sock(k);
	return r;
}

EXPORT int close(int fd)
{
	jr_init_real();
	if (get(fd))
		return jr_close(fd);
	if (jr_is_internal_fd(fd)) {
		jr_debug("close(%d): the shim's own descriptor, left open", fd);
		return 0;
	}
	return real.close(fd);
}

EXPORT int shutdown(int fd, int how)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.shutdown(fd, how);
	pthread_mutex_lock(&g_mu);
	if (k->state != S_CONN && !k->listener) {
		pthread_mutex_unlock(&g_mu);
		return fail(ENOTCONN);
	}
	if (how == SHUT_RD || how == SHUT_RDWR) {
		k->rdshut = 1;
		jr_signal(k);
	}
	int wr = (how == SHUT_WR || how == SHUT_RDWR) && !k->wrshut && k->type == SOCK_STREAM && !k->listener;
	if (wr) {
		k->wrshut = 1;
		jr_wake(k); /* a send waiting for the window gives up */
		while (k->writers > 0)
			cond_wait_ms(k, 50);
	}
	uint32_t id = k->id;
	pthread_mutex_unlock(&g_mu);
	if (wr && jr_ctl_simple("shutdown", id, "write", 0) != 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ addresses */

EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.getsockname(fd, addr, len);
	if (k->listener && k->state == S_LPEND && k->local.sin_port == 0)
		activate(k);
	pthread_mutex_lock(&g_mu);
	struct sockaddr_in sa = k->local;
	pthread_mutex_unlock(&g_mu);
	fill_addr(&sa, addr, len);
	return 0;
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.getpeername(fd, addr, len);
	pthread_mutex_lock(&g_mu);
	struct sockaddr_in sa = k->remote;
	int ok = k->has_remote && (k->state == S_CONN);
	pthread_mutex_unlock(&g_mu);
	if (!ok)
		return fail(ENOTCONN);
	fill_addr(&sa, addr, len);
	return 0;
}

/* ------------------------------------------------------------- options */

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.setsockopt(fd, level, name, val, len);
	if (level != SOL_SOCKET && level != IPPROTO_TCP && level != IPPROTO_IP && level != IPPROTO_UDP)
		return fail(ENOPROTOOPT);
	if (!val && len)
		return fail(EFAULT);
	int v = 0;
	if (len >= sizeof(int))
		memcpy(&v, val, sizeof v);
	pthread_mutex_lock(&g_mu);
	struct sopt *o = NULL;
	for (int i = 0; i < k->nopts; i++)
		if (k->opts[i].level == level && k->opts[i].name == name)
			o = &k->opts[i];
	if (!o && k->nopts < 16)
		o = &k->opts[k->nopts++];
	if (o) {
		o->level = level;
		o->name = name;
		o->len = len < sizeof o->val ? len : (socklen_t)sizeof o->val;
		memcpy(o->val, val, o->len);
	}
	if (level == SOL_SOCKET && name == SO_REUSEPORT)
		k->reuseport = v != 0;
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) && len >= sizeof(struct timeval)) {
		struct timeval tv;
		memcpy(&tv, val, sizeof tv);
		int ms = (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
		if (name == SO_RCVTIMEO)
			k->rcvtimeo_ms = ms;
		else
			k->sndtimeo_ms = ms;
	}
	int conn = k->state == S_CONN && k->type == SOCK_STREAM;
	uint32_t id = k->id;
	pthread_mutex_unlock(&g_mu);
	if (conn) {
		if (level == IPPROTO_TCP && name == TCP_NODELAY)
			jr_ctl_simple("setsockopt", id, "nodelay", v != 0);
		else if (level == SOL_SOCKET && name == SO_SNDBUF)
			jr_ctl_simple("setsockopt", id, "sndbuf", v);
		else if (level == SOL_SOCKET && name == SO_RCVBUF)
			jr_ctl_simple("setsockopt", id, "rcvbuf", v);
	}
	return 0;
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.getsockopt(fd, level, name, val, len);
	if (!val || !len)
		return fail(EFAULT);
	int v = 0;
	pthread_mutex_lock(&g_mu);
	if (level == SOL_SOCKET && name == SO_ERROR) {
		v = k->so_error;
		k->so_error = 0;
	} else if (level == SOL_SOCKET && name == SO_TYPE) {
		v = k->type;
	} else if (level == SOL_SOCKET && name == SO_DOMAIN) {
		v = AF_INET;
	} else if (level == SOL_SOCKET && name == SO_PROTOCOL) {
		v = k->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
	} else if (level == SOL_SOCKET && name == SO_ACCEPTCONN) {
		v = k->listener;
	} else {
		for (int i = 0; i < k->nopts; i++)
			if (k->opts[i].level == level && k->opts[i].name == name) {
				socklen_t n = *len < k->opts[i].len ? *len : k->opts[i].len;
				memcpy(val, k->opts[i].val, n);
				*len = n;
				pthread_mutex_unlock(&g_mu);
				return 0;
			}
		if (level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_RCVBUF))
			v = (int)g_sendwin_pub();
		else if (level == IPPROTO_TCP && name == TCP_MAXSEG)
			v = 1460;
		else if (*len > sizeof(int)) { /* TCP_INFO and friends: zeros */
			memset(val, 0, *len);
			pthread_mutex_unlock(&g_mu);
			return 0;
		}
	}
	pthread_mutex_unlock(&g_mu);
	socklen_t n = *len < sizeof v ? *len : (socklen_t)sizeof v;
	memcpy(val, &v, n);
	*len = n;
	return 0;
}

/* ------------------------------------------------------- fcntl, ioctl, dup */

static int map_dup(jsock *k, int nfd)
{
	if (nfd < 0)
		return nfd;
	if (nfd >= JR_MAXFD) {
		real.close(nfd);
		return fail(EMFILE);
	}
	k->nfds++;
	__atomic_store_n(&g_fd[nfd], k, __ATOMIC_RELEASE);
	return nfd;
}

static int do_fcntl(int (*f)(int, int, ...), int fd, int cmd, void *arg)
{
	jsock *k = get(fd);
	if (!k)
		return f(fd, cmd, arg);
	switch (cmd) {
	case F_GETFL:
		return O_RDWR | (k->nonblock ? O_NONBLOCK : 0);
	case F_SETFL:
		k->nonblock = !!((long)arg & O_NONBLOCK);
		return 0;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC: {
		pthread_mutex_lock(&g_mu);
		int r = map_dup(k, f(fd, cmd, arg));
		pthread_mutex_unlock(&g_mu);
		return r;
	}
	}
	return f(fd, cmd, arg);
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	jr_init_real();
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(real.fcntl, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	jr_init_real();
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(real.fcntl64, fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	jr_init_real();
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	jsock *k = get(fd);
	if (!k)
		return real.ioctl(fd, req, arg);
	if (req == FIONBIO) {
		if (!arg)
			return fail(EFAULT);
		k->nonblock = *(int *)arg != 0;
		return 0;
	}
	if (req == FIONREAD) {
		if (!arg)
			return fail(EFAULT);
		pthread_mutex_lock(&g_mu);
		int n = 0;
		if (k->type == SOCK_DGRAM)
			n = (int)jr_rq_next_len(k);
		else
			n = (int)k->qbytes;
		pthread_mutex_unlock(&g_mu);
		*(int *)arg = n;
		return 0;
	}
	return real.ioctl(fd, req, arg);
}

EXPORT int dup(int fd)
{
	jr_init_real();
	jsock *k = get(fd);
	if (!k)
		return real.dup(fd);
	pthread_mutex_lock(&g_mu);
	int r = map_dup(k, real.dup(fd));
	pthread_mutex_unlock(&g_mu);
	return r;
}

static int do_dup3(int old, int nfd, int flags, int is3)
{
	if (old == nfd) {
		if (is3)
			return fail(EINVAL);
		return real.fcntl(old, F_GETFD) < 0 ? -1 : nfd;
	}
	if (jr_is_internal_fd(nfd))
		jr_move_internal(nfd);
	if (get(nfd))
		jr_close(nfd);
	jsock *k = get(old);
	pthread_mutex_lock(&g_mu);
	int r = is3 ? real.dup3(old, nfd, flags) : real.dup2(old, nfd);
	if (k && r >= 0)
		r = map_dup(k, r);
	pthread_mutex_unlock(&g_mu);
	return r;
}

EXPORT int dup2(int old, int nfd)
{
	jr_init_real();
	return do_dup3(old, nfd, 0, 0);
}

EXPORT int dup3(int old, int nfd, int flags)
{
	jr_init_real();
	return do_dup3(old, nfd, flags, 1);
}

/* ----------------------------------------------- poll, select, epoll_ctl */

/* The kernel waits on the eventfds as they are; the shim only looks for
 * listeners to make at the service first (see listen and fork_prepare). */

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	jr_init_real();
	if (__atomic_load_n(&g_nlisteners, __ATOMIC_RELAXED) > 0)
		for (nfds_t i = 0; i < n; i++)
			note_used(fds[i].fd);
	return real.poll(fds, n, timeout);
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return poll(fds, n, timeout);
}

EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	jr_init_real();
	if (__atomic_load_n(&g_nlisteners, __ATOMIC_RELAXED) > 0 && r)
		for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
			if (FD_ISSET(fd, r))
				note_used(fd);
	return real.select(nfds, r, w, e, tv);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	jr_init_real();
	/* Before the kernel has the registration: from then on every arrival
	 * must be an eventfd write (see jr_signal). Never cleared: the fd may
	 * be in other epoll sets, and a spare write is harmless. */
	jsock *k;
	if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev && (ev->events & EPOLLET) && (k = get(fd))) {
		pthread_mutex_lock(&g_mu);
		k->et = 1;
		pthread_mutex_unlock(&g_mu);
	}
	if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && __atomic_load_n(&g_nlisteners, __ATOMIC_RELAXED) > 0)
		note_used(fd);
	return real.epoll_ctl(epfd, op, fd, ev);
}
