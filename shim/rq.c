//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* A socket's receive queue: what the dispatcher took off the down ring for
 * it and the application has not read yet.
 *
 * The payload stays where the service put it when it can: the socket holds
 * the service's buffers, and read() copies straight from them into the
 * caller's buffer and gives them back (one copy per byte, no malloc). Holding
 * is bounded (hold_cap for the process, hold_sock_cap per socket) so that a
 * socket nobody reads cannot take the buffers every other socket needs;
 * past the bounds, and for payloads that are not in the region (a message
 * replayed after it waited for its socket), the bytes are copied into the
 * socket's private byte ring and the buffers go back at once (two copies).
 * Both are rings allocated on first use and doubled when full, so the steady
 * state allocates nothing.
 *
 * The queue is one ring of segments in arrival order. A held segment names a
 * buffer and the unread range in it; a private segment says how many of the
 * private ring's next bytes are its own (consecutive private stream segments
 * merge). A datagram is one private segment, or one held segment per buffer
 * with first/last marking its ends; the first carries its length and source.
 *
 * Everything here runs with g_mu held. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* Today's limits: a UDP socket queues at most 4 MiB of payload (further
 * datagrams are dropped, as by a full kernel receive buffer) and, so that
 * empty datagrams cannot grow the queue without bound, 65536 datagrams. A
 * stream's queue is bounded by what the service delivers. */
#define DGRAM_BYTES (4u << 20)
#define DGRAM_COUNT 65536u
#define PB_MIN 4096u
#define PB_KEEP (256u << 10) /* a private ring larger than this is freed when it empties */
#define SEG_MIN 16u

static uint32_t g_held, hold_cap, hold_sock_cap;

/* Keep the service able to deliver: holding at most half of its buffers
 * minus two largest messages leaves it enough for a whole message on top of
 * everything in flight in the down ring. That is why a reader that gives held
 * buffers back does not need to wake the service: it is never short of
 * buffers because of what sockets hold, and the buffers in flight come back
 * from the dispatcher, which does wake it after each batch. */
void jr_rq_set_caps(void)
{
	uint32_t per = (uint32_t)((g_rg.max_msg + g_rg.S - 1) / g_rg.S);
	hold_cap = g_rg.B / 2 > 2 * per ? g_rg.B / 2 - 2 * per : 0;
	hold_sock_cap = hold_cap / 4;
}

void jr_rq_forget_holds(void) { g_held = 0; }

/* The power-of-two capacity, at least min, doubled from cap until used + n
 * fit. */
static size_t grown(size_t cap, size_t min, size_t used, size_t n)
{
	size_t nc = cap ? cap : min;
	while (nc - used < n)
		nc *= 2;
	return nc;
}

static struct rseg *seg_at(jsock *k, uint32_t i) { return &k->seg[(k->seghead + i) & (k->segcap - 1)]; }

static int seg_reserve(jsock *k, uint32_t n)
{
	if (k->segcap - k->nseg >= n)
		return 0;
	uint32_t nc = (uint32_t)grown(k->segcap, SEG_MIN, k->nseg, n);
	struct rseg *ns = malloc(sizeof *ns * nc);
	if (!ns)
		return -1;
	for (uint32_t i = 0; i < k->nseg; i++)
		ns[i] = *seg_at(k, i);
	free(k->seg);
	k->seg = ns;
	k->segcap = nc;
	k->seghead = 0;
	return 0;
}

static struct rseg *seg_push(jsock *k)
{
	struct rseg *s = seg_at(k, k->nseg++);
	memset(s, 0, sizeof *s);
	return s;
}

static void seg_pop(jsock *k)
{
	k->seghead = (k->seghead + 1) & (k->segcap - 1);
	k->nseg--;
}

/* The private ring: pbused bytes from pbhead, wrapping at pbcap (a power of
 * two). */
static int pb_reserve(jsock *k, size_t n)
{
	if (k->pbcap - k->pbused >= n)
		return 0;
	size_t nc = grown(k->pbcap, PB_MIN, k->pbused, n);
	uint8_t *nb = malloc(nc);
	if (!nb)
		return -1;
	size_t first = k->pbcap - k->pbhead < k->pbused ? k->pbcap - k->pbhead : k->pbused;
	if (k->pbused) {
		memcpy(nb, k->pb + k->pbhead, first);
		memcpy(nb + first, k->pb, k->pbused - first);
	}
	free(k->pb);
	k->pb = nb;
	k->pbcap = nc;
	k->pbhead = 0;
	return 0;
}

static void pb_put(jsock *k, const uint8_t *src, size_t n)
{
	if (n == 0)
		return;
	size_t at = (k->pbhead + k->pbused) & (k->pbcap - 1);
	size_t c = k->pbcap - at < n ? k->pbcap - at : n;
	memcpy(k->pb + at, src, c);
	memcpy(k->pb, src + c, n - c);
	k->pbused += n;
}

static void pb_get(const jsock *k, size_t pos, uint8_t *dst, size_t n)
{
	if (n == 0)
		return;
	size_t at = (k->pbhead + pos) & (k->pbcap - 1);
	size_t c = k->pbcap - at < n ? k->pbcap - at : n;
	memcpy(dst, k->pb + at, c);
	memcpy(dst + c, k->pb, n - c);
}

static void pb_drop(jsock *k, size_t n)
{
	k->pbused -= n;
	k->pbhead = k->pbused ? (k->pbhead + n) & (k->pbcap - 1) : 0;
	if (!k->pbused && k->pbcap > PB_KEEP) {
		free(k->pb);
		k->pb = NULL;
		k->pbcap = 0;
	}
}

static void give(jsock *k, uint32_t buf)
{
	jr_ring_give(&g_rg, buf);
	k->nheld--;
	g_held--;
}

int jr_rq_push(jsock *k, struct rmsg *m)
{
	int dgram = k->type == SOCK_DGRAM;
	if (!dgram && m->len == 0)
		return 0;
	if (dgram && (k->qbytes + m->len > DGRAM_BYTES || k->ndgram >= DGRAM_COUNT))
		return -1;
	int hold = !m->priv && m->nb > 0 && k->nheld + m->nb <= hold_sock_cap && g_held + m->nb <= hold_cap;
	for (uint32_t i = 0; hold && i < m->nb; i++)
		hold = m->lens[i] > 0;
	if (hold && seg_reserve(k, m->nb) == 0) {
		for (uint32_t i = 0; i < m->nb; i++) {
			struct rseg *s = seg_push(k);
			s->buf = m->bufs[i];
			s->len = m->lens[i];
			s->first = i == 0;
			s->last = i == m->nb - 1;
		}
		struct rseg *s0 = seg_at(k, k->nseg - m->nb);
		s0->dlen = (uint32_t)m->len;
		s0->arg = m->arg;
		k->nheld += m->nb;
		g_held += m->nb;
		m->kept = 1;
	} else {
		struct rseg *tail = k->nseg ? seg_at(k, k->nseg - 1) : NULL;
		int merge = !dgram && tail && tail->buf == NO_BUF;
		if ((!merge && seg_reserve(k, 1) != 0) || pb_reserve(k, m->len) != 0)
			return -1;
		if (m->priv) {
			pb_put(k, m->priv, m->len);
		} else {
			for (uint32_t i = 0; i < m->nb; i++)
				pb_put(k, jr_ring_buf(&g_rg, m->bufs[i]), m->lens[i]);
		}
		if (merge) {
			tail->len += (uint32_t)m->len;
		} else {
			struct rseg *s = seg_push(k);
			s->buf = NO_BUF;
			s->len = (uint32_t)m->len;
			s->dlen = (uint32_t)m->len;
			s->arg = m->arg;
			s->first = s->last = 1;
		}
	}
	k->qbytes += m->len;
	if (dgram)
		k->ndgram++;
	return 1;
}

/* Scatters n bytes from src into iov from (*vi, *vo); returns how many fit. */
static size_t iov_put(const struct iovec *iov, int iovcnt, int *vi, size_t *vo, const uint8_t *src, size_t n)
{
	size_t done = 0;
	while (done < n && *vi < iovcnt) {
		size_t room = iov[*vi].iov_len - *vo;
		if (room == 0) {
			(*vi)++;
			*vo = 0;
			continue;
		}
		size_t c = n - done < room ? n - done : room;
		memcpy((uint8_t *)iov[*vi].iov_base + *vo, src + done, c);
		*vo += c;
		done += c;
	}
	return done;
}

/* Copies segment s's unread bytes into iov, as many as fit. ppos is where
 * they start in the private ring, for a private segment. */
static size_t seg_copy(jsock *k, const struct rseg *s, size_t ppos, const struct iovec *iov, int iovcnt, int *vi,
		       size_t *vo)
{
	size_t n = s->len;
	if (s->buf != NO_BUF)
		return iov_put(iov, iovcnt, vi, vo, jr_ring_buf(&g_rg, s->buf) + s->off, n);
	if (n == 0)
		return 0;
	/* The private ring wraps: at most two pieces. */
	size_t at = (k->pbhead + ppos) & (k->pbcap - 1);
	size_t c = k->pbcap - at < n ? k->pbcap - at : n;
	size_t got = iov_put(iov, iovcnt, vi, vo, k->pb + at, c);
	if (got == c && n > c)
		got += iov_put(iov, iovcnt, vi, vo, k->pb, n - c);
	return got;
}

size_t jr_rq_read(jsock *k, const struct iovec *iov, int iovcnt, int peek, uint64_t *src, size_t *full)
{
	int vi = 0;
	size_t vo = 0, n = 0, ppos = 0;
	int gave = 0;
	if (k->nseg == 0)
		return 0;
	if (k->type == SOCK_DGRAM) {
		/* The whole datagram goes, whatever part of it fits. */
		struct rseg *s0 = seg_at(k, 0);
		*full = s0->dlen;
		*src = s0->arg;
		uint32_t i = 0;
		for (;; i++) {
			struct rseg *s = seg_at(k, i);
			n += seg_copy(k, s, ppos, iov, iovcnt, &vi, &vo);
			if (s->buf == NO_BUF)
				ppos += s->len;
			if (s->last)
				break;
		}
		if (!peek) {
			for (uint32_t j = 0; j <= i; j++) {
				struct rseg *s = seg_at(k, 0);
				if (s->buf != NO_BUF) {
					give(k, s->buf);
					gave = 1;
				} else {
					pb_drop(k, s->len);
				}
				seg_pop(k);
			}
			k->qbytes -= *full;
			k->ndgram--;
		}
	} else {
		uint32_t i = 0;
		while (i < k->nseg) {
			struct rseg *s = seg_at(k, i);
			size_t c = seg_copy(k, s, ppos, iov, iovcnt, &vi, &vo);
			n += c;
			if (peek) {
				if (c < s->len)
					break;
				if (s->buf == NO_BUF)
					ppos += s->len;
				i++;
				continue;
			}
			s->len -= (uint32_t)c;
			if (s->buf != NO_BUF)
				s->off += (uint32_t)c;
			else
				pb_drop(k, c);
			if (s->len > 0)
				break; /* the caller's buffer is full */
			if (s->buf != NO_BUF) {
				give(k, s->buf);
				gave = 1;
			}
			seg_pop(k);
		}
		if (!peek)
			k->qbytes -= n;
	}
	if (gave)
		jr_ring_publish_free(&g_rg);
	return n;
}

size_t jr_rq_next_len(jsock *k) { return k->nseg ? seg_at(k, 0)->dlen : 0; }

void jr_rq_free(jsock *k, int give_back)
{
	int gave = 0;
	for (uint32_t i = 0; i < k->nseg; i++) {
		struct rseg *s = seg_at(k, i);
		if (s->buf != NO_BUF) {
			if (give_back)
				jr_ring_give(&g_rg, s->buf);
			gave = 1;
		}
	}
	if (gave && give_back)
		jr_ring_publish_free(&g_rg);
	g_held -= k->nheld;
	free(k->seg);
	free(k->pb);
	k->seg = NULL;
	k->pb = NULL;
	k->segcap = k->seghead = k->nseg = 0;
	k->pbcap = k->pbhead = k->pbused = 0;
	k->qbytes = 0;
	k->nheld = 0;
	k->ndgram = 0;
}

/* Rebuilds k's queue with every byte private: a new byte ring in order and
 * one segment per datagram (one in all for a stream). On no memory the queue
 * is left as it was and -1 returned. */
static int unhold(jsock *k, int give_back)
{
	if (k->nheld == 0)
		return 0;
	size_t cap = PB_MIN;
	while (cap < k->qbytes)
		cap *= 2;
	uint32_t scap = k->segcap;
	uint8_t *nb = malloc(cap);
	struct rseg *ns = malloc(sizeof *ns * scap);
	if (!nb || !ns) {
		free(nb);
		free(ns);
		return -1;
	}
	size_t at = 0, ppos = 0;
	uint32_t nn = 0;
	for (uint32_t i = 0; i < k->nseg; i++) {
		struct rseg *s = seg_at(k, i);
		if (s->buf != NO_BUF) {
			memcpy(nb + at, jr_ring_buf(&g_rg, s->buf) + s->off, s->len);
			if (give_back)
				jr_ring_give(&g_rg, s->buf);
		} else {
			pb_get(k, ppos, nb + at, s->len);
			ppos += s->len;
		}
		at += s->len;
		if (k->type == SOCK_DGRAM && s->first) {
			ns[nn] = *s;
			ns[nn].buf = NO_BUF;
			ns[nn].off = 0;
			ns[nn].len = 0;
			nn++;
		} else if (k->type != SOCK_DGRAM && nn == 0) {
			memset(&ns[0], 0, sizeof ns[0]);
			ns[0].buf = NO_BUF;
			nn = 1;
		}
		ns[nn - 1].len += s->len;
		if (k->type == SOCK_DGRAM)
			ns[nn - 1].last = s->last;
	}
	if (give_back)
		jr_ring_publish_free(&g_rg);
	g_held -= k->nheld;
	k->nheld = 0;
	free(k->pb);
	free(k->seg);
	k->pb = nb;
	k->pbcap = cap;
	k->pbhead = 0;
	k->pbused = at;
	k->seg = ns;
	k->seghead = 0;
	k->nseg = nn;
	return 0;
}

void jr_rq_unhold_all(int give_back)
{
	for (int fd = 0; fd < JR_MAXFD; fd++) {
		jsock *k = g_fd[fd];
		if (k && k->nheld && unhold(k, give_back) != 0 && !give_back)
			jr_rq_free(k, 0);
		if (k && k->listener)
			for (struct acc *a = k->ahead; a; a = a->next)
				if (a->k->nheld && unhold(a->k, give_back) != 0 && !give_back)
					jr_rq_free(a->k, 0);
	}
}
