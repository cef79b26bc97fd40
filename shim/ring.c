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
	if (!rg->free) {
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

void jr_notify_service(struct region *rg)
{
	if (__atomic_load_n(rg->svc_wake, __ATOMIC_SEQ_CST) == 0)
		return;
	if (__atomic_exchange_n(rg->svc_wake, 0, __ATOMIC_SEQ_CST) == 0)
		return;
	uint64_t one = 1;
	while (real.write(rg->svc_efd, &one, 8) < 0 && errno == EINTR)
		;
}

int jr_ring_pending(struct region *rg)
{
	return ld_acq(rg->down.prod) != rg->down.local;
}

int jr_ring_recv(struct region *rg, struct rdesc *out, uint8_t **buf, size_t *cap)
{
	struct ring *rx = &rg->down, *fo = &rg->downfree;
	uint32_t p = ld_acq(rx->prod);
	uint32_t avail = p - rx->local;
	if (avail == 0)
		return 0;
	if (avail > rx->size)
		return -1;
	size_t total = 0;
	uint32_t nf = 0;
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
			out->op = op;
			out->sock = sock;
			out->arg = arg;
		}
		if (b != NO_BUF) {
			if (b < rg->B || b >= 2 * rg->B || len > rg->S || total + len > rg->max_msg)
				return -1;
			if (total + len > *cap) {
				size_t nc = *cap ? *cap : 4096;
				while (nc < total + len)
					nc *= 2;
				uint8_t *nb = realloc(*buf, nc);
				if (!nb)
					return -1;
				*buf = nb;
				*cap = nc;
			}
			memcpy(*buf + total, rg->bufs + (size_t)b * rg->S, len);
			memcpy(fo->data + ((fo->local + nf) & fo->mask) * 4, &b, 4);
			nf++;
			total += len;
		}
		if (!(flags & FLAG_MORE)) {
			fo->local += nf;
			if (nf)
				st_rel(fo->prod, fo->local);
			rx->local += k + 1;
			st_rel(rx->cons, rx->local);
			out->len = total;
			return 1;
		}
		if (k + 1 >= rx->size)
			return -1;
	}
}
