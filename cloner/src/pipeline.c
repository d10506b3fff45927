/* pipeline.c - see pipeline.h. One mutex guards the slot states; each slot holds one
 * chunk (1 MiB of data plus the format's output buffer), and the sequence number of a
 * chunk picks its slot, so the writer gets chunks back in order without sorting. */
#define _GNU_SOURCE
#include "pipeline.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "chunk.h"
#include "util.h"

enum slot_state { SLOT_FREE, SLOT_READ, SLOT_BUSY, SLOT_DONE };

struct slot {
	struct chunk c;
	enum slot_state state;
};

struct pipe {
	const struct pipeline_params *pp;
	struct pipeline_stats *st;
	struct slot *slots;
	unsigned nslots;
	pthread_mutex_t lock;
	pthread_cond_t changed;   /* any slot changed state, or a flag below */
	uint64_t next_encode;     /* next seq a worker takes */
	uint64_t nchunks;         /* total chunks, known once the reader finishes */
	bool reader_done;
	bool failed;              /* an error or an interrupt: everyone stops */
	uint64_t bytes_read;      /* under lock */
};

/* Next chunk offset touching the map at or after *pos; false when none. */
static bool next_chunk(const struct extmap *m, uint64_t vsize, size_t *ext, uint64_t pos, uint64_t *off)
{
	while (*ext < m->n && m->v[*ext].start + m->v[*ext].len <= pos)
		(*ext)++;
	if (*ext == m->n)
		return false;
	uint64_t start = MAX(pos, m->v[*ext].start / CHUNK_SIZE * CHUNK_SIZE);
	if (start >= vsize)
		return false;
	*off = start;
	return true;
}

static int fill_chunk(struct pipe *p, struct chunk *c)
{
	const struct extmap *m = p->pp->map;
	uint64_t end = c->off + c->len, got = 0;
	memset(c->data, 0, CHUNK_SIZE);
	for (size_t i = extmap_find(m, c->off); i < m->n && m->v[i].start < end; i++) {
		uint64_t s = MAX(m->v[i].start, c->off);
		uint64_t e = MIN(m->v[i].start + m->v[i].len, end);
		if (source_read(p->pp->src, c->data + (s - c->off), s, (size_t)(e - s)) < 0)
			return -1;
		got += e - s;
	}
	pthread_mutex_lock(&p->lock);
	p->bytes_read += got;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static bool should_stop(struct pipe *p)
{
	return p->failed || (p->pp->stop && *p->pp->stop);
}

static void fail(struct pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->failed = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

static void *reader_main(void *arg)
{
	struct pipe *p = arg;
	const struct pipeline_params *pp = p->pp;
	uint64_t seq = 0, pos = 0, off;
	size_t ext = 0;
	while (next_chunk(pp->map, pp->src->size, &ext, pos, &off)) {
		struct slot *sl = &p->slots[seq % p->nslots];
		pthread_mutex_lock(&p->lock);
		while (sl->state != SLOT_FREE && !should_stop(p))
			pthread_cond_wait(&p->changed, &p->lock);
		pthread_mutex_unlock(&p->lock);
		if (should_stop(p))
			break;
		struct chunk *c = &sl->c;
		c->seq = seq;
		c->off = off;
		c->len = (uint32_t)MIN((uint64_t)CHUNK_SIZE, pp->src->size - off);
		c->mapped = fmt_chunk_mapped_mask(pp->map, off, c->len);
		c->out_len = 0;
		if (fill_chunk(p, c) < 0) {
			p->st->source_failed = true;
			fail(p);
			break;
		}
		pthread_mutex_lock(&p->lock);
		sl->state = SLOT_READ;
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
		seq++;
		pos = off + CHUNK_SIZE;
	}
	pthread_mutex_lock(&p->lock);
	p->nchunks = seq;
	p->reader_done = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void *worker_main(void *arg)
{
	struct pipe *p = arg;
	const struct fmt_writer *w = p->pp->writer;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		struct slot *sl;
		for (;;) {
			sl = &p->slots[p->next_encode % p->nslots];
			if (should_stop(p) || (p->reader_done && p->next_encode >= p->nchunks)) {
				pthread_mutex_unlock(&p->lock);
				return NULL;
			}
			if (sl->state == SLOT_READ && sl->c.seq == p->next_encode)
				break;
			pthread_cond_wait(&p->changed, &p->lock);
		}
		sl->state = SLOT_BUSY;
		p->next_encode++;
		pthread_mutex_unlock(&p->lock);

		chunk_analyze(&sl->c);
		if (w->ops->encode && sl->c.nonzero)
			w->ops->encode(w, &sl->c);

		pthread_mutex_lock(&p->lock);
		sl->state = SLOT_DONE;
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
	}
}

static void report(struct pipe *p, int final)
{
	if (!p->pp->progress)
		return;
	pthread_mutex_lock(&p->lock);
	p->st->bytes_read = p->bytes_read;
	pthread_mutex_unlock(&p->lock);
	p->pp->progress(p->st, p->pp->progress_opaque, final);
}

/* The calling thread: hand finished chunks to the format in order. */
static int writer_loop(struct pipe *p)
{
	struct fmt_writer *w = p->pp->writer;
	double last = now_seconds();
	for (uint64_t seq = 0;; seq++) {
		struct slot *sl = &p->slots[seq % p->nslots];
		pthread_mutex_lock(&p->lock);
		while (!should_stop(p) && !(sl->state == SLOT_DONE && sl->c.seq == seq) &&
		       !(p->reader_done && seq >= p->nchunks))
			pthread_cond_wait(&p->changed, &p->lock);
		bool end = p->reader_done && seq >= p->nchunks;
		pthread_mutex_unlock(&p->lock);
		if (should_stop(p))
			return -1;
		if (end)
			return 0;
		struct chunk *c = &sl->c;
		if (c->nonzero)
			content_digest_add(p->pp->digest, c->off, c->len, c->hash);
		for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++)
			if (c->nonzero & (1u << i))
				p->st->bytes_stored += chunk_block_len(c, i);
		if (w->ops->write(w, c) < 0) {
			fail(p);
			return -1;
		}
		p->st->chunks_written++;
		pthread_mutex_lock(&p->lock);
		sl->state = SLOT_FREE;
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
		if (now_seconds() - last >= p->pp->progress_interval) {
			report(p, 0);
			last = now_seconds();
		}
	}
}

static unsigned worker_count(unsigned requested)
{
	if (requested)
		return requested;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

static void free_slots(struct pipe *p)
{
	for (unsigned i = 0; i < p->nslots; i++) {
		free(p->slots[i].c.data);
		free(p->slots[i].c.out);
	}
	free(p->slots);
}

int pipeline_run(const struct pipeline_params *pp, struct pipeline_stats *st)
{
	struct pipe p = { .pp = pp, .st = st };
	unsigned nworkers = worker_count(pp->workers);
	size_t out_cap = pp->writer->ops->out_capacity ? pp->writer->ops->out_capacity() : 0;
	pthread_t reader, workers[64];
	*st = (struct pipeline_stats){ .bytes_total = extmap_bytes(pp->map) };
	/* Two slots per worker keep every stage busy; more only costs memory. */
	p.nslots = 2 * nworkers + 2;
	p.slots = xcalloc(p.nslots, sizeof *p.slots);
	for (unsigned i = 0; i < p.nslots; i++) {
		p.slots[i].c.data = xaligned_alloc(4096, CHUNK_SIZE);
		p.slots[i].c.out = out_cap ? xmalloc(out_cap) : NULL;
		p.slots[i].c.out_cap = out_cap;
	}
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.changed, NULL);
	unsigned started = 0;
	int r = -1;
	if (pthread_create(&reader, NULL, reader_main, &p) != 0) {
		error("start reader thread: out of resources");
		goto out;
	}
	for (; started < nworkers; started++)
		if (pthread_create(&workers[started], NULL, worker_main, &p) != 0)
			break;
	if (started == 0) {
		fail(&p);
		error("start worker threads: out of resources");
	} else {
		r = writer_loop(&p);
	}
	if (r < 0)
		fail(&p);
	pthread_join(reader, NULL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	report(&p, 1);
	if (r < 0 && pp->stop && *pp->stop)
		r = -2;
out:
	pthread_cond_destroy(&p.changed);
	pthread_mutex_destroy(&p.lock);
	free_slots(&p);
	return r;
}
