/* report.c - see report.h. A bounded queue of serialized events and one sender thread
 * with its own libcurl handle. The clone never waits on it, except for the bounded flush
 * in report_close; memory is capped by REPORT_QUEUE_MAX events of at most REPORT_EVENT_MAX
 * bytes each. */
#define _GNU_SOURCE
#include "report.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "net.h"
#include "util.h"

#define REPORT_QUEUE_MAX 256           /* events held while the collector is away */
#define REPORT_EVENT_MAX (256 * 1024)  /* the collector takes 1 MiB; a manifest fits easily */
#define REPORT_POST_SECONDS 10         /* one POST, connect included */

enum ev_kind { EV_PROGRESS, EV_OTHER, EV_RESULT };  /* in the order they may be dropped */

struct queued {
	char *body;
	uint64_t seq;
	enum ev_kind kind;
};

struct reporter {
	struct url url;
	char *curl_url;           /* without credentials */
	struct dest_options opts;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;      /* to the thread: new event, closing, aborting */
	pthread_cond_t idle;      /* to report_close: queue empty or thread done */
	/* under lock: */
	struct queued *q;         /* oldest first */
	size_t n, cap;
	uint64_t seq;
	char *machine;
	bool closing;
	bool done;                /* thread has exited */
	unsigned dropped;         /* progress events dropped from a full queue */
	unsigned lost;            /* other events dropped, or refused by the collector */
	double last_progress;     /* report_progress_hook thinning */
	int abort;                /* atomic: stop the current transfer now */
};

static void timespec_after(struct timespec *ts, double seconds)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	time_t whole = (time_t)seconds;
	ts->tv_sec += whole;
	ts->tv_nsec += (long)((seconds - (double)whole) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static size_t discard_body(char *data, size_t size, size_t n, void *opaque)
{
	(void)data;
	(void)opaque;
	return size * n;
}

static int xfer_check(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct reporter *r = opaque;
	return __atomic_load_n(&r->abort, __ATOMIC_RELAXED) ? 1 : 0;
}

/* POST one body: 1 delivered, 0 refused for good (4xx), -1 worth a retry. */
static int post(struct reporter *r, CURL *c, const char *body, char *why, size_t whylen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	if (rc == CURLE_OK && code >= 200 && code < 300)
		return 1;
	net_describe(rc, code, errbuf, why, whylen);
	if (rc == CURLE_OK && code >= 400 && code < 500 && code != 408 && code != 429) {
		(void)r;
		return 0;
	}
	return -1;
}

static void remove_seq(struct reporter *r, uint64_t seq)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->q[i].seq == seq) {
			free(r->q[i].body);
			memmove(&r->q[i], &r->q[i + 1], (r->n - i - 1) * sizeof *r->q);
			r->n--;
			return;
		}
}

static void *sender(void *opaque)
{
	struct reporter *r = opaque;
	CURL *c = net_curl(&r->opts);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");  /* no 100-continue round trip */
	curl_easy_setopt(c, CURLOPT_URL, r->curl_url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)REPORT_POST_SECONDS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_check);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
	if (r->url.user) {
		curl_easy_setopt(c, CURLOPT_USERNAME, r->url.user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, r->url.password ? r->url.password : "");
	}
	unsigned failures = 0;
	char why[512];
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (r->n == 0 && !r->closing)
			pthread_cond_wait(&r->wake, &r->lock);
		if (r->n == 0 || __atomic_load_n(&r->abort, __ATOMIC_RELAXED))
			break;
		CLEANUP_FREE char *body = xstrdup(r->q[0].body);
		uint64_t seq = r->q[0].seq;
		pthread_mutex_unlock(&r->lock);
		int sent = post(r, c, body, why, sizeof why);
		pthread_mutex_lock(&r->lock);
		if (sent >= 0) {
			remove_seq(r, seq);
			if (sent == 0) {
				r->lost++;
				debug("report to '%s': event %llu refused: %s", r->url.display, (unsigned long long)seq, why);
			}
			if (failures)
				info("report to '%s': reachable again", r->url.display);
			failures = 0;
			if (r->n == 0)
				pthread_cond_broadcast(&r->idle);
			continue;
		}
		if (__atomic_load_n(&r->abort, __ATOMIC_RELAXED))
			break;
		if (failures++ == 0)
			warning("report to '%s': %s; the clone goes on, events are kept and sent when it answers",
				r->url.display, why);
		unsigned wait = failures >= 6 ? 30 : 1u << (failures - 1);
		if (r->closing)
			wait = 1;
		struct timespec ts;
		timespec_after(&ts, wait);
		while (!__atomic_load_n(&r->abort, __ATOMIC_RELAXED) &&
		       pthread_cond_timedwait(&r->wake, &r->lock, &ts) != ETIMEDOUT)
			if (r->closing && wait > 1)  /* closing: retry soon, within the flush window */
				break;
	}
	r->done = true;
	pthread_cond_broadcast(&r->idle);
	pthread_mutex_unlock(&r->lock);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return NULL;
}

struct reporter *report_open(const char *url, const struct dest_options *o)
{
	struct reporter *r = xcalloc(1, sizeof *r);
	if (url_parse(url, &r->url) < 0) {
		free(r);
		return NULL;
	}
	if (strcmp(r->url.scheme, "http") != 0 && strcmp(r->url.scheme, "https") != 0) {
		error("report URL '%s': use http:// or https:// (a coldclone collect address)", r->url.display);
		url_free(&r->url);
		free(r);
		return NULL;
	}
	r->curl_url = url_for_curl(&r->url, NULL);
	if (o)
		r->opts = *o;
	r->opts.timeout = REPORT_POST_SECONDS;
	char host[256] = "";
	if (gethostname(host, sizeof host - 1) < 0 || !host[0])
		snprintf(host, sizeof host, "unknown");
	r->machine = xstrdup(host);
	r->last_progress = -1e9;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->wake, &ca);
	pthread_cond_init(&r->idle, &ca);
	pthread_condattr_destroy(&ca);
	net_global_init();
	/* Signals (Ctrl-C) stay with the main thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&r->thread, NULL, sender, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		error("report to '%s': cannot start the sender thread: %m", r->url.display);
		pthread_cond_destroy(&r->wake);
		pthread_cond_destroy(&r->idle);
		pthread_mutex_destroy(&r->lock);
		free(r->machine);
		free(r->curl_url);
		url_free(&r->url);
		free(r);
		return NULL;
	}
	return r;
}

void report_set_machine(struct reporter *r, const char *name)
{
	if (!r || !name || !*name)
		return;
	pthread_mutex_lock(&r->lock);
	free(r->machine);
	r->machine = xstrdup(name);
	pthread_mutex_unlock(&r->lock);
}

/* Make room for one more: drop the oldest progress event, else the oldest non-result. */
static void make_room(struct reporter *r)
{
	for (enum ev_kind k = EV_PROGRESS; k < EV_RESULT && r->n >= REPORT_QUEUE_MAX; k++)
		for (size_t i = 0; i < r->n; i++)
			if (r->q[i].kind == k) {
				if (k == EV_PROGRESS)
					r->dropped++;
				else
					r->lost++;
				remove_seq(r, r->q[i].seq);
				break;
			}
}

void report_event(struct reporter *r, struct json_object *ev)
{
	if (!r || !ev || !json_object_is_type(ev, json_type_object))
		return;
	const char *type = json_object_get_string(json_object_object_get(ev, "event"));
	json_object *fin = json_object_object_get(ev, "final");
	enum ev_kind kind = type && strcmp(type, "result") == 0 ? EV_RESULT
		: type && strcmp(type, "progress") == 0 && !json_object_get_boolean(fin) ? EV_PROGRESS : EV_OTHER;
	const char *text = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t tlen = strlen(text);
	if (tlen < 2 || tlen > REPORT_EVENT_MAX) {
		warning("report: event '%s' of %zu bytes not sent: larger than %u KiB", type ? type : "?", tlen,
			REPORT_EVENT_MAX / 1024);
		return;
	}
	char stamp[32];
	utc_timestamp(stamp, sizeof stamp);
	pthread_mutex_lock(&r->lock);
	json_object *m = json_object_new_string(r->machine);
	uint64_t seq = ++r->seq;
	/* Splice our fields in front of the caller's: no copy or change of ev. */
	char *body = xasprintf("{\"machine\":%s,\"seq\":%llu,\"time\":\"%s\"%s%s",
			       json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN), (unsigned long long)seq, stamp,
			       strcmp(text, "{}") == 0 ? "" : ",", strcmp(text, "{}") == 0 ? "}" : text + 1);
	json_object_put(m);
	if (r->n >= REPORT_QUEUE_MAX)
		make_room(r);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 32;
		r->q = xrealloc(r->q, r->cap * sizeof *r->q);
	}
	r->q[r->n++] = (struct queued){ .body = body, .seq = seq, .kind = kind };
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

void report_progress_hook(struct json_object *ev, void *reporter)
{
	struct reporter *r = reporter;
	if (!r)
		return;
	const char *type = json_object_get_string(json_object_object_get(ev, "event"));
	if (type && strcmp(type, "progress") == 0 && !json_object_get_boolean(json_object_object_get(ev, "final"))) {
		double t = now_seconds();
		pthread_mutex_lock(&r->lock);
		bool due = t - r->last_progress >= REPORT_PROGRESS_SECONDS;
		if (due)
			r->last_progress = t;
		pthread_mutex_unlock(&r->lock);
		if (!due)
			return;
	}
	report_event(r, ev);
}

int report_close(struct reporter *r)
{
	if (!r)
		return 0;
	struct timespec deadline;
	timespec_after(&deadline, REPORT_CLOSE_SECONDS);
	pthread_mutex_lock(&r->lock);
	r->closing = true;
	pthread_cond_signal(&r->wake);
	while (r->n > 0 && !r->done)
		if (pthread_cond_timedwait(&r->idle, &r->lock, &deadline) == ETIMEDOUT)
			break;
	__atomic_store_n(&r->abort, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	size_t left = r->n;
	for (size_t i = 0; i < r->n; i++)
		free(r->q[i].body);
	int rc = 0;
	if (left || r->lost) {
		rc = -1;
		warning("report to '%s': %zu event%s not delivered within %d s, %u more lost on the way",
			r->url.display, left, left == 1 ? "" : "s", REPORT_CLOSE_SECONDS, r->lost);
	}
	if (r->dropped)
		debug("report to '%s': %u progress event%s dropped while it did not answer", r->url.display,
		      r->dropped, r->dropped == 1 ? "" : "s");
	free(r->q);
	free(r->machine);
	free(r->curl_url);
	url_free(&r->url);
	pthread_cond_destroy(&r->wake);
	pthread_cond_destroy(&r->idle);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return rc;
}
