//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* libjoyride-preload: LD_PRELOAD shim that moves AF_INET sockets onto Joyride.
 * See doc.go and docs/JOYRIDE.md ("The preload shim"). */
#ifndef JOYRIDE_SHIM_H
#define JOYRIDE_SHIM_H

#define _GNU_SOURCE
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Protocol constants (stacks/joyride/proto, docs/JOYRIDE.md). */
enum {
	OP_SEND = 1,
	OP_DATA = 16,
	OP_ACCEPT = 17,
	OP_EOF = 18,
	OP_ERROR = 19,
	OP_SENT = 20,
	FLAG_MORE = 1,
};
#define NO_BUF 0xFFFFFFFFu

/* ---- the real libc functions (dlsym(RTLD_NEXT)) ---- */
struct real_fns {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*close)(int);
	int (*shutdown)(int, int);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*epoll_ctl)(int, int, int, void *);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
};
extern struct real_fns real;
void jr_init_real(void);

extern char jr_prog_name[64];

/* ---- log ---- */
void jr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void jr_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- control plane (ctl.c) ---- */
/* A parsed reply: only the fields the shim uses. */
struct reply {
	int ok;
	int err_no;
	char error[256];
	long ring_size, buffers, buf_size, max_message, send_window, max_sockets;
	uint32_t sock;
	char local[64], remote[64];
};
int jr_parse_reply(const char *js, size_t n, struct reply *r);
/* jr_json_str appends s as a JSON string to dst (size cap). */
void jr_json_str(char *dst, size_t cap, const char *s);
/* Connects and registers: returns the control fd and fills fds[3]
 * (memfd, app eventfd, service eventfd); -1 with errno and why on failure. */
int jr_ctl_register(const char *path, int fds[3], struct reply *r, char *why, size_t whylen);
/* One request/reply on the control socket (caller holds ctl lock). */
int jr_ctl_roundtrip(int fd, const char *req, struct reply *r);

/* ---- data plane (ring.c) ---- */
struct ring {
	volatile uint32_t *prod, *cons;
	uint8_t *data;
	uint32_t size, mask;
	uint32_t local, cached;
};
struct region {
	uint8_t *mem;
	size_t size;
	uint32_t R, B, S;
	struct ring up, upfree, down, downfree;
	uint8_t *bufs;
	volatile uint32_t *app_wake, *svc_wake;
	int app_efd, svc_efd;
	uint32_t *free; /* stack of our free buffer indices */
	uint32_t nfree;
	size_t max_msg;
	uint32_t *cbufs, *clens; /* jr_ring_peek's chain (R entries each) */
};
int jr_region_attach(struct region *rg, int memfd, int app_efd, int svc_efd, char *why, size_t whylen);
/* 0 sent, -1 full (EAGAIN), -2 too big */
int jr_ring_send(struct region *rg, uint16_t op, uint32_t sock, uint64_t arg, const void *p, size_t n);
void jr_notify_service(struct region *rg);

/* One message from the down ring: its descriptors read once into private
 * memory, its payload still in the service's buffers (or, for a message
 * replayed after it waited for its socket, in private memory at priv). */
struct rmsg {
	uint16_t op;
	uint32_t sock;
	uint64_t arg;
	size_t len;          /* payload bytes */
	uint32_t ndesc;      /* descriptors the chain takes on the ring */
	uint32_t nb;         /* buffers holding the payload, in order */
	uint32_t *bufs;      /* their indices (service partition) */
	uint32_t *lens;      /* bytes used in each */
	const uint8_t *priv; /* instead of bufs: the payload in private memory */
	int kept;            /* a socket took the buffers over (rq.c) */
};
/* Reads the next whole message: 1 got, 0 none (or its chain is not
 * complete yet), -1 corrupt. The message stays on the ring: the dispatcher
 * (the down ring's one consumer) then calls jr_ring_consume. */
int jr_ring_peek(struct region *rg, struct rmsg *m);
void jr_ring_consume(struct region *rg, const struct rmsg *m);
/* Returns one service buffer on downFree, published by jr_ring_publish_free.
 * downFree has several would-be producers (the dispatcher, and readers that
 * copied out of a buffer a socket held): they all call these with g_mu. */
void jr_ring_give(struct region *rg, uint32_t buf);
void jr_ring_publish_free(struct region *rg);
static inline const uint8_t *jr_ring_buf(const struct region *rg, uint32_t b) { return rg->bufs + (size_t)b * rg->S; }
/* Copies the first n bytes of m's payload to dst. */
void jr_msg_copy(const struct region *rg, const struct rmsg *m, uint8_t *dst, size_t n);
int jr_ring_pending(struct region *rg);

#endif
