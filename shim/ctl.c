//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* The control plane: a SOCK_SEQPACKET Unix socket carrying one JSON object per
 * message (docs/JOYRIDE.md, "Control plane").
 *
 * JSON is hand-written here on purpose: the shim is loaded into arbitrary
 * programs, so it links nothing but libc (no JSON library to version-clash
 * with the application's own), and it needs only flat objects with a dozen
 * known fields: requests are built with snprintf, replies parsed by the small
 * scanner below (strings with escapes, numbers, booleans; anything else is
 * skipped). */
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

void jr_json_str(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(dst);
	if (n + 2 >= cap)
		return;
	dst[n++] = '"';
	for (; *s && n + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
		} else {
			dst[n++] = (char)c;
		}
	}
	dst[n++] = '"';
	dst[n] = 0;
}

struct scan {
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r'))
		s->p++;
}

/* Reads a JSON string into out (truncated to cap-1; \u escapes become '?'). */
static int read_str(struct scan *s, char *out, size_t cap)
{
	size_t n = 0;
	if (s->p >= s->end || *s->p != '"')
		return -1;
	s->p++;
	while (s->p < s->end && *s->p != '"') {
		char c = *s->p++;
		if (c == '\\') {
			if (s->p >= s->end)
				return -1;
			c = *s->p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u':
				if (s->end - s->p < 4)
					return -1;
				s->p += 4;
				c = '?';
				break;
			default: break; /* \" \\ \/ */
			}
		}
		if (out && n + 1 < cap)
			out[n++] = c;
	}
	if (s->p >= s->end)
		return -1;
	s->p++;
	if (out && cap)
		out[n] = 0;
	return 0;
}

/* Skips any value (nested objects/arrays by bracket depth). */
static int skip_value(struct scan *s)
{
	skip_ws(s);
	if (s->p >= s->end)
		return -1;
	if (*s->p == '"')
		return read_str(s, NULL, 0);
	if (*s->p == '{' || *s->p == '[') {
		int depth = 0;
		while (s->p < s->end) {
			if (*s->p == '"') {
				if (read_str(s, NULL, 0))
					return -1;
				continue;
			}
			if (*s->p == '{' || *s->p == '[')
				depth++;
			else if (*s->p == '}' || *s->p == ']') {
				if (--depth == 0) {
					s->p++;
					return 0;
				}
			}
			s->p++;
		}
		return -1;
	}
	while (s->p < s->end && *s->p != ',' && *s->p != '}')
		s->p++;
	return 0;
}

int jr_parse_reply(const char *js, size_t n, struct reply *r)
{
	struct scan s = {js, js + n};
	memset(r, 0, sizeof *r);
	skip_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return -1;
	s.p++;
	for (;;) {
		skip_ws(&s);
		if (s.p < s.end && *s.p == '}')
			return 0;
		char key[32];
		if (read_str(&s, key, sizeof key))
			return -1;
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return -1;
		s.p++;
		skip_ws(&s);
		const char *v = s.p;
		if (!strcmp(key, "error") || !strcmp(key, "local") || !strcmp(key, "remote")) {
			char *dst = !strcmp(key, "error") ? r->error : !strcmp(key, "local") ? r->local : r->remote;
			size_t cap = !strcmp(key, "error") ? sizeof r->error : sizeof r->local;
			if (*v != '"' || read_str(&s, dst, cap))
				return -1;
		} else {
			if (skip_value(&s))
				return -1;
			long num = strtol(v, NULL, 10);
			if (!strcmp(key, "ok"))
				r->ok = (s.p - v >= 4 && !strncmp(v, "true", 4));
			else if (!strcmp(key, "errno"))
				r->err_no = (int)num;
			else if (!strcmp(key, "ring_size"))
				r->ring_size = num;
			else if (!strcmp(key, "buffers"))
				r->buffers = num;
			else if (!strcmp(key, "buf_size"))
				r->buf_size = num;
			else if (!strcmp(key, "max_message"))
				r->max_message = num;
			else if (!strcmp(key, "send_window"))
				r->send_window = num;
			else if (!strcmp(key, "max_sockets"))
				r->max_sockets = num;
			else if (!strcmp(key, "sock"))
				r->sock = (uint32_t)strtoul(v, NULL, 10);
		}
		skip_ws(&s);
		if (s.p < s.end && *s.p == ',') {
			s.p++;
			continue;
		}
		if (s.p < s.end && *s.p == '}')
			return 0;
		return -1;
	}
}

static char g_rbuf[65536];

/* Receives one reply; fds (up to 3) go to fds when given, else are closed. */
static int recv_reply(int fd, struct reply *r, int *fds, int *nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = {g_rbuf, sizeof g_rbuf - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
	ssize_t n;
	do
		n = real.recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (nfds)
		*nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int got[4];
		memcpy(got, CMSG_DATA(c), sizeof(int) * (size_t)(cnt > 4 ? 4 : cnt));
		for (int i = 0; i < cnt && i < 4; i++) {
			if (fds && nfds && *nfds < 3)
				fds[(*nfds)++] = got[i];
			else
				real.close(got[i]);
		}
	}
	if (n <= 0) {
		if (n == 0)
			errno = ECONNRESET;
		return -1;
	}
	g_rbuf[n] = 0;
	if (jr_parse_reply(g_rbuf, (size_t)n, r)) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

int jr_ctl_roundtrip(int fd, const char *req, struct reply *r)
{
	ssize_t n;
	do
		n = real.send(fd, req, strlen(req), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return recv_reply(fd, r, NULL, NULL);
}

int jr_ctl_register(const char *path, int fds[3], struct reply *r, char *why, size_t whylen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t pl = strlen(path);
	if (pl == 0 || pl >= sizeof sa.sun_path) {
		snprintf(why, whylen, "bad socket path %s", path);
		errno = EINVAL;
		return -1;
	}
	memcpy(sa.sun_path, path, pl);
	socklen_t slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl);
	if (path[0] == '@')
		sa.sun_path[0] = 0; /* abstract */
	else
		slen++;
	int fd = real.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (real.connect(fd, (struct sockaddr *)&sa, slen) != 0) {
		int e = errno;
		snprintf(why, whylen, "connect %s: %s", path, strerror(e));
		real.close(fd);
		errno = e;
		return -1;
	}
	char req[512] = "{\"op\":\"register\",\"version\":1,\"name\":";
	jr_json_str(req, sizeof req, jr_prog_name);
	strcat(req, "}");
	ssize_t n = real.send(fd, req, strlen(req), MSG_NOSIGNAL);
	int nfds = 0;
	if (n < 0 || recv_reply(fd, r, fds, &nfds) != 0) {
		int e = errno;
		snprintf(why, whylen, "register at %s: %s", path, strerror(e));
		for (int i = 0; i < nfds; i++)
			real.close(fds[i]);
		real.close(fd);
		errno = e;
		return -1;
	}
	if (!r->ok || nfds < 3) {
		snprintf(why, whylen, "register at %s refused: %s", path, r->ok ? "no file descriptors" : r->error);
		for (int i = 0; i < nfds; i++)
			real.close(fds[i]);
		real.close(fd);
		errno = r->err_no ? r->err_no : ECONNREFUSED;
		return -1;
	}
	return fd;
}
