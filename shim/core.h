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

struct qmsg {
	struct qmsg *next;
	size_t len, off;
	uint64_t arg; /* UDP: packed source */
	uint8_t data[];
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
	struct qmsg *qhead, *qtail;
	size_t qbytes;
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
extern pthread_cond_t g_cond;
extern jsock *g_fd[JR_MAXFD];
extern int g_nlisteners;

const char *jr_socket_path(void);
int jr_fallback_fail(void);
int jr_is_internal_fd(int fd);
void jr_move_internal(int fd);
jsock *jr_find_id(uint32_t id);
void jr_hash_add(jsock *k);
void jr_hash_del(jsock *k);
jsock *jr_new_sock(int type);
int jr_has_input(jsock *k);
void jr_signal(jsock *k);
void jr_clear_if_empty(jsock *k);
void jr_free_queue(jsock *k);
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

#endif
