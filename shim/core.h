//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* Shared between core.c and calls.c. */
#ifndef JOYRIDE_CORE_H
#define JOYRIDE_CORE_H

#include "shim.h"
#include <sys/types.h>

/* File descriptors at or above this number are left to the kernel. */
#define JR_MAXFD 65536

enum sstate {
	S_NEW,        /* socket() done; not bound at the service */
	S_LPEND,      /* listen() recorded; the service listener is made on first use */
	S_LISTEN,     /* a listener at the service */
	S_CONNECTING, /* a dial in flight */
	S_CONN,       /* a connection (or a bound UDP socket) at the service */
	S_DEAD,       /* unusable in this process (err says why) */
};

/* One piece of a socket's receive queue (rq.c): bytes still in a service
 * buffer the socket holds, or bytes copied into the socket's private ring. */
struct rseg {
	uint32_t buf;        /* the service buffer, or NO_BUF: next in the private ring */
	uint32_t off;        /* held: where the unread bytes start in the buffer */
	uint32_t len;        /* unread bytes */
	uint32_t dlen;       /* UDP, a datagram's first segment: its length */
	uint64_t arg;        /* UDP, a datagram's first segment: its packed source */
	uint8_t first, last; /* UDP: the segment begins, ends a datagram */
};

struct acc {
	struct acc *next;
	struct jsock *k;
};

struct sopt {
	int level, name;
	socklen_t len;
	char val[24];
};

typedef struct jsock {
	struct jsock *next_id;
	uint32_t id; /* the service's socket id; 0 none */
	int type;    /* SOCK_STREAM or SOCK_DGRAM */
	int state;
	int listener;
	int nfds;     /* application fds that refer to it */
	int sigfd;    /* one of them: where readiness is written */
	int readable; /* the eventfd counter is non-zero */
	int nonblock; /* O_NONBLOCK (a file status flag: shared by dups) */
	/* Receive queue (rq.c): a ring of segments and a private byte ring,
	 * both allocated on first use and grown by doubling. */
	struct rseg *seg;
	uint32_t segcap, seghead, nseg;
	uint8_t *pb;
	size_t pbcap, pbhead, pbused;
	size_t qbytes;   /* unread bytes */
	uint32_t nheld;  /* service buffers held by segments */
	uint32_t ndgram; /* UDP: queued datagrams */
	int et;          /* registered with EPOLLET: every arrival must be an eventfd write */
	pthread_cond_t cond; /* window, writers, state changes of this socket */
	struct acc *ahead, *atail;
	int eof, err, rdshut, wrshut, closed;
	int so_error; /* SO_ERROR of a non-blocking connect */
	long window;
	int writers;
	int want_write;
	int used; /* a listener this process waited on */
	int reuseport;
	int bound;
	int backlog;
	int rcvtimeo_ms, sndtimeo_ms;
	pid_t forkgen;
	struct sockaddr_in local, remote;
	int has_remote;
	struct sopt opts[16];
	int nopts;
} jsock;

extern pthread_mutex_t g_mu;
extern struct region g_rg;
extern jsock *g_fd[JR_MAXFD];
extern int g_nlisteners;
extern long g_max_socks;
extern int g_nsocks;

const char *jr_socket_path(void);
int jr_fallback_fail(void);
int jr_is_internal_fd(int fd);
void jr_move_internal(int fd);
jsock *jr_find_id(uint32_t id);
void jr_hash_add(jsock *k);
void jr_hash_del(jsock *k);
jsock *jr_new_sock(int type);
void jr_free_sock(jsock *k);
int jr_has_input(jsock *k);
void jr_signal(jsock *k);
void jr_wake(jsock *k);
void jr_clear_if_empty(jsock *k);
void jr_creating_begin_locked(void);
void jr_creating_end_locked(void);
int jr_ensure_registered(void);
int jr_ctl(const char *req, struct reply *r);
int jr_ctl_simple(const char *op, uint32_t sock, const char *extra, int value);
int jr_send_msg(uint16_t op, uint32_t sock, uint64_t arg, const void *p, size_t n);
size_t jr_max_msg(void);
uint64_t jr_pack(const struct sockaddr_in *sa);
void jr_unpack(uint64_t v, struct sockaddr_in *sa);
int parse_ipport_pub(const char *s, struct sockaddr_in *sa);
long g_sendwin_pub(void);

/* ---- receive queues (rq.c); every call with g_mu held ---- */
/* Queues m's payload (OP_DATA) on k: 1 queued, 0 nothing to queue (an empty
 * stream message), -1 dropped (a limit, or no memory). Sets m->kept when k
 * took m's buffers over; otherwise the caller gives them back. */
int jr_rq_push(jsock *k, struct rmsg *m);
/* Copies queued bytes into iov: a stream's next bytes, or the next datagram
 * (its length in *full, its packed source in *src). Returns the bytes
 * copied; with peek the queue stays as it was. */
size_t jr_rq_read(jsock *k, const struct iovec *iov, int iovcnt, int peek, uint64_t *src, size_t *full);
/* Length of the next datagram (FIONREAD). */
size_t jr_rq_next_len(jsock *k);
/* Empties k's queue, giving held buffers back to the service if give. */
void jr_rq_free(jsock *k, int give);
/* Copies every held byte of every socket into private memory (giving the
 * buffers back if give): before a fork, and when the region goes away. */
void jr_rq_unhold_all(int give);
/* The hold budget, from the region's geometry: at registration. */
void jr_rq_set_caps(void);
/* In a forked child: no held buffer is ours. */
void jr_rq_forget_holds(void);

#endif
