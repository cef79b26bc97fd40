//go:build ignore

// (The constraint above keeps the go tool from treating this C file as cgo
// source of package shim; make builds it into bin/libjoyride-preload.so.)

/* The application's end of a Joyride region (docs/JOYRIDE.md, "Data plane"):
 * the same layout and rules as stacks/joyride/channel. */
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CL 64
#define HDR 256
#define PAGE 4096
#define DESC 24
#define MAGIC 0x3145444952594f4aULL

static size_t align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static uint32_t ld_acq(volatile uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st_rel(volatile uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static void place(struct region *rg, struct ring *r, size_t *off, uint32_t entries, size_t esz)
{
	r->prod = (volatile uint32_t *)(rg->mem + *off);
	r->cons = (volatile uint32_t *)(rg->mem + *off + CL);
	r->data = rg->mem + *off + 2 * CL;
	r->size = entries;
	r->mask = entries - 1;
	*off = align_up(*off + 2 * CL + (size_t)entries * esz, CL);
}

int jr_region_attach(struct region *rg, int memfd, int app_efd, int svc_efd, char *why, size_t whylen)
{
	struct stat st;
	memset(rg, 0, sizeof *rg);
	if (fstat(memfd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < HDR) {
		snprintf(why, whylen, "the region fd is not a memfd");
		return -1;
	}
	rg->size = (size_t)st.st_size;
	rg->mem = mmap(NULL, rg->size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (rg->mem == MAP_FAILED) {
		snprintf(why, whylen, "mmap region: %s", strerror(errno));
		rg->mem = NULL;
		return -1;
	}
	uint64_t magic, total;
	uint32_t ver;
	memcpy(&magic, rg->mem, 8);
	memcpy(&ver, rg->mem + 8, 4);
	memcpy(&rg->R, rg->mem + 12, 4);
	memcpy(&rg->B, rg->mem + 16, 4);
	memcpy(&rg->S, rg->mem + 20, 4);
	memcpy(&total, rg->mem + 24, 8);
	if (magic != MAGIC || ver != 1 || rg->R == 0 || (rg->R & (rg->R - 1)) || rg->B == 0 || rg->B > 65536 ||
	    rg->S < 256 || rg->S > 65536) {
		snprintf(why, whylen, "bad region header (magic %#llx version %u)", (unsigned long long)magic, ver);
		munmap(rg->mem, rg->size);
		rg->mem = NULL;
		return -1;
	}
	uint32_t F = 1;
	while (F < rg->B)
		F <<= 1;
	size_t off = HDR;
	place(rg, &rg->up, &off, rg->R, DESC);
	place(rg, &rg->upfree, &off, F, 4);
	place(rg, &rg->down, &off, rg->R, DESC);
	place(rg, &rg->downfree, &off, F, 4);
	size_t bufs = align_up(off, PAGE);
	size_t need = align_up(bufs + 2 * (size_t)rg->B * rg->S, PAGE);
	if (need != rg->size || total != need) {
		snprintf(why, whylen, "region size %zu, layout needs %zu", rg->size, need);
		munmap(rg->mem, rg->size);
		rg->mem = NULL;
		return -1;
	}
	rg->bufs = rg->mem + bufs;
	rg->app_wake = (volatile uint32_t *)(rg->mem + 1 * CL);
	rg->svc_wake = (volatile uint32_t *)(rg->mem + 2 * CL);
	/* Counters start where the service left them (0 unless tests moved them). */
	struct ring *rs[4] = {&rg->up, &rg->upfree, &rg->down, &rg->downfree};
	for (int i = 0; i < 4; i++) {
		rs[i]->local = (rs[i] == &rg->up || rs[i] == &rg->downfree) ? ld_acq(rs[i]->prod) : ld_acq(rs[i]->cons);
		rs[i]->cached = rs[i]->local;
	}
	rg->free = malloc(sizeof(uint32_t) * rg->B);
	rg->cbufs = malloc(sizeof(uint32_t) * rg->R);
	rg->clens = malloc(sizeof(uint32_t) * rg->R);
	if (!rg->free || !rg->cbufs || !rg->clens) {
		free(rg->free);
		free(rg->cbufs);
		free(rg->clens);
		snprintf(why, whylen, "out of memory");
		munmap(rg->mem, rg->size);
		rg->mem = NULL;
		return -1;
	}
	for (uint32_t i = 0; i < rg->B; i++)
		rg->free[i] = rg->B - 1 - i;
	rg->nfree = rg->B;
	rg->max_msg = (size_t)(rg->R < rg->B ? rg->R : rg->B) * rg->S;
	rg->app_efd = app_efd;
	rg->svc_efd = svc_efd;
	return 0;
}

/* Takes back our buffers from upFree. */
static void reclaim(struct region *rg)
{
	struct ring *fi = &rg->upfree;
	uint32_t p = ld_acq(fi->prod);
	while (fi->local != p) {
		uint32_t idx;
		memcpy(&idx, fi->data + (fi->local & fi->mask) * 4, 4);
		fi->local++;
		if (idx < rg->B && rg->nfree < rg->B)
			rg->free[rg->nfree++] = idx;
	}
	st_rel(fi->cons, fi->local);
}

int jr_ring_send(struct region *rg, uint16_t op, uint32_t sock, uint64_t arg, const void *p, size_t n)
{
	if (n > rg->max_msg)
		return -2;
	uint32_t nb = (uint32_t)((n + rg->S - 1) / rg->S);
	uint32_t nd = nb ? nb : 1;
	if (rg->nfree < nb) {
		reclaim(rg);
		if (rg->nfree < nb)
			return -1;
	}
	struct ring *tx = &rg->up;
	if (tx->size - (tx->local - tx->cached) < nd) {
		tx->cached = ld_acq(tx->cons);
		if (tx->size - (tx->local - tx->cached) < nd)
			return -1;
	}
	const uint8_t *src = p;
	for (uint32_t i = 0; i < nd; i++) {
		uint8_t d[DESC];
		uint16_t flags = i < nd - 1 ? FLAG_MORE : 0;
		uint32_t buf = NO_BUF, len = 0;
		if (nb) {
			buf = rg->free[--rg->nfree];
			size_t o = (size_t)i * rg->S;
			len = (uint32_t)((n - o) < rg->S ? (n - o) : rg->S);
			memcpy(rg->bufs + (size_t)buf * rg->S, src + o, len);
		}
		memcpy(d + 0, &op, 2);
		memcpy(d + 2, &flags, 2);
		memcpy(d + 4, &sock, 4);
		memcpy(d + 8, &buf, 4);
		memcpy(d + 12, &len, 4);
		memcpy(d + 16, &arg, 8);
		memcpy(tx->data + ((tx->local + i) & tx->mask) * DESC, d, DESC);
	}
	tx->local += nd;
	st_rel(tx->prod, tx->local);
	return 0;
}

/* Wakes the service if it sleeps. The callers have just published a counter
 * (up's producer after a send, downFree's and down's consumer after the
 * dispatcher's batch) with a release store; the service, going to sleep,
 * stores its flag and then loads those counters. A store followed by a load
 * of another location is the one reordering x86 does (the store waits in the
 * store buffer while the load runs), and C11 allows it for release/acquire
 * pairs on any CPU: without the full fence each side could miss the other's
 * store, and the service would sleep until its ppoll timeout with a message
 * waiting. The fence (an mfence here) is the shim's half of the Dekker pair;
 * the service's half is Go's sequentially consistent atomics. */
void jr_notify_service(struct region *rg)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(rg->svc_wake, __ATOMIC_SEQ_CST) == 0)
		return;
	if (__atomic_exchange_n(rg->svc_wake, 0, __ATOMIC_SEQ_CST) == 0)
		return;
	uint64_t one = 1;
	while (real.write(rg->svc_efd, &one, 8) < 0 && errno == EINTR)
		;
}

/* The dispatcher's re-check after it stored its need-wakeup flag (seq_cst):
 * the mirror image of jr_notify_service, so this load must be seq_cst too
 * (an acquire load may be done before a seq_cst store to another location,
 * e.g. with ARMv8.3's LDAPR). On x86 both are plain moves after the store's
 * xchg. */
int jr_ring_pending(struct region *rg)
{
	return __atomic_load_n(rg->down.prod, __ATOMIC_SEQ_CST) != rg->down.local;
}

int jr_ring_peek(struct region *rg, struct rmsg *m)
{
	struct ring *rx = &rg->down;
	uint32_t p = ld_acq(rx->prod);
	uint32_t avail = p - rx->local;
	if (avail == 0)
		return 0;
	if (avail > rx->size)
		return -1;
	size_t total = 0;
	uint32_t nb = 0;
	for (uint32_t k = 0;; k++) {
		if (k == avail)
			return 0; /* torn chain: wait for the rest */
		uint8_t d[DESC];
		memcpy(d, rx->data + ((rx->local + k) & rx->mask) * DESC, DESC);
		uint16_t op, flags;
		uint32_t sock, b, len;
		uint64_t arg;
		memcpy(&op, d, 2);
		memcpy(&flags, d + 2, 2);
		memcpy(&sock, d + 4, 4);
		memcpy(&b, d + 8, 4);
		memcpy(&len, d + 12, 4);
		memcpy(&arg, d + 16, 8);
		if (k == 0) {
			m->op = op;
			m->sock = sock;
			m->arg = arg;
		}
		if (b != NO_BUF) {
			if (b < rg->B || b >= 2 * rg->B || len > rg->S || total + len > rg->max_msg)
				return -1;
			rg->cbufs[nb] = b;
			rg->clens[nb] = len;
			nb++;
			total += len;
		}
		if (!(flags & FLAG_MORE)) {
			m->len = total;
			m->ndesc = k + 1;
			m->nb = nb;
			m->bufs = rg->cbufs;
			m->lens = rg->clens;
			m->priv = NULL;
			m->kept = 0;
			return 1;
		}
		if (k + 1 >= rx->size)
			return -1;
	}
}

void jr_ring_consume(struct region *rg, const struct rmsg *m)
{
	struct ring *rx = &rg->down;
	rx->local += m->ndesc;
	st_rel(rx->cons, rx->local);
}

void jr_ring_give(struct region *rg, uint32_t buf)
{
	struct ring *fo = &rg->downfree;
	/* No room check: at most B service buffers are ever lent to us and
	 * the ring has F >= B slots. */
	memcpy(fo->data + (fo->local & fo->mask) * 4, &buf, 4);
	fo->local++;
}

void jr_ring_publish_free(struct region *rg)
{
	st_rel(rg->downfree.prod, rg->downfree.local);
}

void jr_msg_copy(const struct region *rg, const struct rmsg *m, uint8_t *dst, size_t n)
{
	if (m->priv) {
		memcpy(dst, m->priv, n < m->len ? n : m->len);
		return;
	}
	for (uint32_t i = 0; i < m->nb && n > 0; i++) {
		size_t c = m->lens[i] < n ? m->lens[i] : n;
		memcpy(dst, jr_ring_buf(rg, m->bufs[i]), c);
		dst += c;
		n -= c;
	}
}
