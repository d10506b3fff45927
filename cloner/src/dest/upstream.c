/* upstream.c - a long upload fed from the pipeline through a bounded ring (upstream.h).
 *
 * Positions are absolute byte offsets in the image: base <= sent <= end. [base, sent) was
 * handed to libcurl and is kept for a resume; [sent, end) waits to be sent. The pusher
 * never lets the unsent part exceed half the ring, so at least half of it always holds
 * already-sent bytes: enough to cover what sat in socket buffers when a connection died. */
#define _GNU_SOURCE
#include "upstream.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "util.h"

struct upstream {
	const struct upstream_proto *proto;
	void *ctx;
	const struct dest_options *opts;
	char *display;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t changed;  /* any position or state changed */
	uint8_t *ring;
	size_t cap;
	uint64_t base, sent, end;
	bool eof;                /* upstream_finish: no more bytes */
	bool cancel;             /* upstream_free before the end */
	bool done;               /* the thread has ended */
	int result;              /* 0 success, -1 failure; valid when done */
	unsigned resumes;
	bool restartable;        /* failed for want of a resume point, not by refusal */
};

static size_t ring_read(char *dst, size_t size, size_t nitems, void *opaque)
{
	struct upstream *u = opaque;
	size_t want = size * nitems;
	pthread_mutex_lock(&u->lock);
	while (u->sent == u->end && !u->eof && !u->cancel)
		pthread_cond_wait(&u->changed, &u->lock);
	if (u->cancel) {
		pthread_mutex_unlock(&u->lock);
		return CURL_READFUNC_ABORT;
	}
	size_t at = (size_t)(u->sent % u->cap);
	size_t n = (size_t)MIN(MIN((uint64_t)want, u->end - u->sent), (uint64_t)(u->cap - at));
	memcpy(dst, u->ring + at, n);
	u->sent += n;
	pthread_cond_broadcast(&u->changed);
	pthread_mutex_unlock(&u->lock);
	return n;
}

/* libcurl rewinds the body when it must resend it (auth negotiation, redirects) or, with
 * a resume offset, seeks to it: both land inside the ring or fail. */
static int ring_seek(void *opaque, curl_off_t offset, int origin)
{
	struct upstream *u = opaque;
	if (origin != SEEK_SET || offset < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	pthread_mutex_lock(&u->lock);
	bool ok = (uint64_t)offset >= u->base && (uint64_t)offset <= u->end;
	if (ok)
		u->sent = (uint64_t)offset;
	pthread_mutex_unlock(&u->lock);
	return ok ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
}

/* The reply body (an HTML error page, a WebDAV status) is not ours to print. */
static size_t discard_body(char *data, size_t size, size_t n, void *opaque)
{
	(void)data, (void)opaque;
	return size * n;
}

/* Lets upstream_free stop a transfer that waits on the network, not on us. */
static int stop_on_cancel(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct upstream *u = opaque;
	return __atomic_load_n(&u->cancel, __ATOMIC_RELAXED) ? 1 : 0;
}

static int attempt_transfer(struct upstream *u, uint64_t from, CURLcode *rc, long *code)
{
	/* A fresh handle per attempt: nothing of a broken connection carries over. */
	curl_easy_cleanup(u->curl);
	u->curl = net_curl(u->opts);
	u->errbuf[0] = '\0';
	curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, u->errbuf);
	curl_easy_setopt(u->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(u->curl, CURLOPT_READFUNCTION, ring_read);
	curl_easy_setopt(u->curl, CURLOPT_READDATA, u);
	curl_easy_setopt(u->curl, CURLOPT_SEEKFUNCTION, ring_seek);
	curl_easy_setopt(u->curl, CURLOPT_SEEKDATA, u);
	curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(u->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(u->curl, CURLOPT_XFERINFOFUNCTION, stop_on_cancel);
	curl_easy_setopt(u->curl, CURLOPT_XFERINFODATA, u);
	if (u->proto->setup(u->ctx, u->curl, from) < 0)
		return -1;
	*rc = curl_easy_perform(u->curl);
	*code = 0;
	curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, code);
	return 0;
}

/* After a failed attempt: where to continue, or -1 to give up (error printed). */
static int64_t resume_point(struct upstream *u, CURLcode rc, long code, unsigned attempt)
{
	char why[CURL_ERROR_SIZE + 160];
	net_describe(rc, code, u->errbuf, why, sizeof why);
	if (!net_retryable(rc, code)) {
		error("upload to '%s' failed: %s", u->display, why);
		return -1;
	}
	if (net_backoff(u->opts, attempt, u->display, why) < 0)
		return -1;
	pthread_mutex_lock(&u->lock);
	uint64_t base = u->base, sent = u->sent;
	pthread_mutex_unlock(&u->lock);
	/* Without a way to ask the server, starting over works while the ring still holds
	 * everything from byte 0. */
	int64_t held = u->proto->confirmed ? u->proto->confirmed(u->ctx) : base == 0 ? 0 : -1;
	if (held < 0 || (uint64_t)held < base || (uint64_t)held > sent) {
		char at[32];
		u->restartable = true;
		error("upload to '%s' cannot resume at %s: %s", u->display,
		      fmt_size(sent, at, sizeof at),
		      held < 0 ? "the server cannot continue a partial upload"
			       : "the server holds less than the bytes still buffered here");
		return -1;
	}
	return held;
}

static void *transfer_thread(void *opaque)
{
	struct upstream *u = opaque;
	uint64_t from = 0;
	int result = -1;
	for (unsigned attempt = 1;; attempt++) {
		CURLcode rc = CURLE_OK;
		long code = 0;
		if (attempt_transfer(u, from, &rc, &code) < 0)
			break;
		if (u->cancel)
			break;
		if (rc == CURLE_OK && code < 300) {
			result = u->proto->check(u->ctx, u->curl);
			break;
		}
		int64_t held = resume_point(u, rc, code, attempt);
		if (held < 0)
			break;
		pthread_mutex_lock(&u->lock);
		u->sent = (uint64_t)held;
		u->resumes++;
		pthread_mutex_unlock(&u->lock);
		char at[32];
		if (held == 0)
			info("upload to '%s' starts again from the beginning", u->display);
		else
			info("upload to '%s' resumes at %s", u->display, fmt_size((uint64_t)held, at, sizeof at));
		from = (uint64_t)held;
	}
	pthread_mutex_lock(&u->lock);
	u->result = result;
	u->done = true;
	pthread_cond_broadcast(&u->changed);
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

struct upstream *upstream_start(const struct upstream_proto *p, void *ctx, const struct dest_options *o,
				const char *display, size_t ring_size)
{
	struct upstream *u = xcalloc(1, sizeof *u);
	u->proto = p;
	u->ctx = ctx;
	u->opts = o;
	u->display = xstrdup(display);
	u->cap = MAX(ring_size, (size_t)1 << 20);
	u->ring = xmalloc(u->cap);
	u->curl = net_curl(o);
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->changed, NULL);
	if (pthread_create(&u->thread, NULL, transfer_thread, u) != 0) {
		error("start the upload to '%s': cannot create a thread", display);
		upstream_free(u);
		return NULL;
	}
	u->thread_started = true;
	return u;
}

int upstream_push(struct upstream *u, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t half = u->cap / 2;
	pthread_mutex_lock(&u->lock);
	while (len) {
		while (!u->done && u->end - u->sent >= half)
			pthread_cond_wait(&u->changed, &u->lock);
		if (u->done)
			break;
		size_t n = (size_t)MIN((uint64_t)len, half - (u->end - u->sent));
		size_t at = (size_t)(u->end % u->cap);
		n = MIN(n, u->cap - at);
		if (u->end + n - u->base > u->cap)
			u->base = u->end + n - u->cap;  /* forget the oldest sent bytes */
		memcpy(u->ring + at, p, n);
		u->end += n;
		p += n;
		len -= n;
		pthread_cond_broadcast(&u->changed);
	}
	bool failed = u->done;  /* the thread never ends early on success */
	pthread_mutex_unlock(&u->lock);
	return failed ? -1 : 0;
}

int upstream_finish(struct upstream *u)
{
	pthread_mutex_lock(&u->lock);
	u->eof = true;
	pthread_cond_broadcast(&u->changed);
	while (!u->done)
		pthread_cond_wait(&u->changed, &u->lock);
	int r = u->result;
	pthread_mutex_unlock(&u->lock);
	return r;
}

bool upstream_restartable(const struct upstream *u)
{
	return u->restartable;
}

unsigned upstream_resumes(const struct upstream *u)
{
	return u->resumes;
}

void upstream_free(struct upstream *u)
{
	if (!u)
		return;
	if (u->thread_started) {
		pthread_mutex_lock(&u->lock);
		__atomic_store_n(&u->cancel, true, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&u->changed);
		pthread_mutex_unlock(&u->lock);
		pthread_join(u->thread, NULL);
	}
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->changed);
	if (u->curl)
		curl_easy_cleanup(u->curl);
	free(u->ring);
	free(u->display);
	free(u);
}
