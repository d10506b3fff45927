/* imagehash.c - see imagehash.h. Slots are used round robin: the writer fills slot
 * head % N (data appended until it is full, or a zero-run length), then hands it over; the
 * hasher takes slot tail % N in the same order, so the digest sees the bytes in order. */
#include "imagehash.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct hash_slot {
	uint8_t *buf;
	size_t len;             /* data bytes in buf */
	uint64_t zeros;         /* or: a run of this many zero bytes (len == 0) */
};

struct image_hash {
	EVP_MD_CTX *ctx;
	bool threaded;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct hash_slot slot[IMAGE_HASH_SLOTS];
	uint64_t head;          /* slots handed over by the writer (the open slot is head % N) */
	uint64_t tail;          /* slots hashed */
	bool closing;           /* no more slots: the thread ends when tail == head */
	bool discard;           /* abandoned: release slots without hashing them */
};

static const uint8_t zero_block[1 << 16];

static void hash_zeros(EVP_MD_CTX *ctx, uint64_t len)
{
	for (; len; ) {
		size_t n = (size_t)MIN(len, sizeof zero_block);
		EVP_DigestUpdate(ctx, zero_block, n);
		len -= n;
	}
}

static void hash_slot(EVP_MD_CTX *ctx, const struct hash_slot *sl)
{
	if (sl->len)
		EVP_DigestUpdate(ctx, sl->buf, sl->len);
	else
		hash_zeros(ctx, sl->zeros);
}

static void *hasher_main(void *arg)
{
	struct image_hash *h = arg;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (h->tail == h->head && !h->closing)
			pthread_cond_wait(&h->changed, &h->lock);
		if (h->tail == h->head)
			break;
		struct hash_slot *sl = &h->slot[h->tail % IMAGE_HASH_SLOTS];
		bool skip = h->discard;
		pthread_mutex_unlock(&h->lock);
		if (!skip)
			hash_slot(h->ctx, sl);
		pthread_mutex_lock(&h->lock);
		h->tail++;
		pthread_cond_broadcast(&h->changed);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct image_hash *image_hash_new(void)
{
	struct image_hash *h = xcalloc(1, sizeof *h);
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		error("initialise SHA-256: OpenSSL failed");
		EVP_MD_CTX_free(h->ctx);
		free(h);
		return NULL;
	}
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return h;  /* a second thread would only add the copy */
	for (unsigned i = 0; i < IMAGE_HASH_SLOTS; i++)
		h->slot[i].buf = xmalloc(IMAGE_HASH_SLOT);
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->changed, NULL);
	h->threaded = pthread_create(&h->thread, NULL, hasher_main, h) == 0;
	if (!h->threaded)
		warning("image hash thread could not start: hashing on the writer thread");
	return h;
}

/* The open slot, after waiting for the hasher to release it. */
static struct hash_slot *open_slot(struct image_hash *h)
{
	pthread_mutex_lock(&h->lock);
	while (h->head - h->tail >= IMAGE_HASH_SLOTS)
		pthread_cond_wait(&h->changed, &h->lock);
	pthread_mutex_unlock(&h->lock);
	return &h->slot[h->head % IMAGE_HASH_SLOTS];
}

static void hand_over(struct image_hash *h)
{
	pthread_mutex_lock(&h->lock);
	h->head++;
	pthread_cond_broadcast(&h->changed);
	pthread_mutex_unlock(&h->lock);
	struct hash_slot *next = open_slot(h);
	next->len = 0;
	next->zeros = 0;
}

/* Hand over the open slot if it holds data; a fresh open slot is always empty. */
static void flush_open(struct image_hash *h)
{
	if (h->slot[h->head % IMAGE_HASH_SLOTS].len)
		hand_over(h);
}

/* Append len bytes to the open slot(s): a copy of src, or zeros when src is NULL. */
static void append(struct image_hash *h, const uint8_t *src, uint64_t len)
{
	while (len) {
		struct hash_slot *sl = &h->slot[h->head % IMAGE_HASH_SLOTS];
		size_t n = (size_t)MIN(len, (uint64_t)(IMAGE_HASH_SLOT - sl->len));
		if (src) {
			memcpy(sl->buf + sl->len, src, n);
			src += n;
		} else {
			memset(sl->buf + sl->len, 0, n);
		}
		sl->len += n;
		len -= n;
		if (sl->len == IMAGE_HASH_SLOT)
			hand_over(h);
	}
}

void image_hash_data(struct image_hash *h, const void *buf, size_t len)
{
	if (h->threaded)
		append(h, buf, len);
	else
		EVP_DigestUpdate(h->ctx, buf, len);
}

void image_hash_zeros(struct image_hash *h, uint64_t len)
{
	if (!h->threaded) {
		hash_zeros(h->ctx, len);
		return;
	}
	if (len < IMAGE_HASH_SLOT) {
		/* A short run between data (a raw image's 64 KiB holes) goes in with the data:
		 * handing over half-empty slots would make the two threads take turns. */
		append(h, NULL, len);
		return;
	}
	flush_open(h);
	/* Long runs go in pieces so the queue never holds more than a second or two of
	 * hashing: the clone's progress stays honest and finishing does not stall. */
	while (len) {
		uint64_t n = MIN(len, (uint64_t)IMAGE_HASH_ZERO_PIECE);
		h->slot[h->head % IMAGE_HASH_SLOTS].zeros = n;
		hand_over(h);
		len -= n;
	}
}

static void stop_thread(struct image_hash *h, bool discard)
{
	pthread_mutex_lock(&h->lock);
	h->closing = true;
	h->discard = discard;
	pthread_cond_broadcast(&h->changed);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
}

void image_hash_final(struct image_hash *h, uint8_t sha256[32])
{
	unsigned int n = 0;
	if (h->threaded) {
		flush_open(h);
		stop_thread(h, false);
		h->threaded = false;
	}
	EVP_DigestFinal_ex(h->ctx, sha256, &n);
	image_hash_free(h);
}

double image_hash_rate(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t md[32];
	unsigned int n = 0;
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return 0;
	}
	double t0 = now_seconds();
	hash_zeros(ctx, 8u << 20);
	double t = now_seconds() - t0;
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	return t > 0 ? (8u << 20) / t : 0;
}

void image_hash_free(struct image_hash *h)
{
	if (!h)
		return;
	if (h->threaded) {
		/* Abandoned mid-image (a failed clone): a queued zero run may stand for many
		 * GiB, so the slots are dropped, not hashed. */
		stop_thread(h, true);
	}
	if (h->slot[0].buf) {
		pthread_cond_destroy(&h->changed);
		pthread_mutex_destroy(&h->lock);
	}
	for (unsigned i = 0; i < IMAGE_HASH_SLOTS; i++)
		free(h->slot[i].buf);
	EVP_MD_CTX_free(h->ctx);
	free(h);
}
