/* progress.c - see progress.h. Rates are over the whole copy so far (disks are steady;
 * a moving window would only make the ETA jump). */
#define _GNU_SOURCE
#include "progress.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int progress_parse_mode(const char *s, enum progress_mode *mode)
{
	if (strcmp(s, "plain") == 0)
		*mode = PROGRESS_PLAIN;
	else if (strcmp(s, "json") == 0)
		*mode = PROGRESS_JSON;
	else if (strcmp(s, "none") == 0)
		*mode = PROGRESS_NONE;
	else
		return -1;
	return 0;
}

static progress_sink_fn sink_fn;
static void *sink_opaque;

void progress_set_sink(progress_sink_fn fn, void *opaque)
{
	sink_fn = fn;
	sink_opaque = opaque;
}

/* Hand an event to the sink, if any. */
static void sink_stage(const struct progress *p, const char *stage, const char *detail)
{
	if (!sink_fn)
		return;
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string("stage"));
	json_object_object_add(ev, "stage", json_object_new_string(stage));
	json_object_object_add(ev, "source", json_object_new_string(p->source ? p->source : ""));
	json_object_object_add(ev, "detail", json_object_new_string(detail));
	sink_fn(ev, sink_opaque);
	json_object_put(ev);
}

/* 45.2, serialized as written rather than as 45.200000000000003 */
static json_object *one_decimal(double v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%.1f", v);
	return json_object_new_double_s(v, buf);
}

static void sink_progress(const struct progress *p, const struct pipeline_stats *st, double pct, double rate,
			  double eta, int final)
{
	if (!sink_fn)
		return;
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string("progress"));
	json_object_object_add(ev, "stage", json_object_new_string("copy"));
	json_object_object_add(ev, "source", json_object_new_string(p->source ? p->source : ""));
	json_object_object_add(ev, "done", json_object_new_uint64(st->bytes_read));
	json_object_object_add(ev, "total", json_object_new_uint64(st->bytes_total));
	json_object_object_add(ev, "stored", json_object_new_uint64(st->bytes_stored));
	json_object_object_add(ev, "percent", one_decimal(pct));
	json_object_object_add(ev, "mb_per_s", one_decimal(rate / 1e6));
	json_object_object_add(ev, "eta_seconds", json_object_new_int64((int64_t)(eta + 0.5)));
	json_object_object_add(ev, "final", json_object_new_boolean(final != 0));
	sink_fn(ev, sink_opaque);
	json_object_put(ev);
}

void progress_init(struct progress *p, enum progress_mode mode, const char *source)
{
	*p = (struct progress){ .mode = mode, .source = source, .started = now_seconds(),
				.tty = isatty(STDERR_FILENO) };
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void progress_stage(struct progress *p, const char *stage, const char *detail)
{
	sink_stage(p, stage, detail);
	if (p->mode == PROGRESS_JSON) {
		fprintf(stderr, "{\"event\":\"stage\",\"stage\":\"%s\",\"source\":", stage);
		json_string(stderr, p->source);
		fprintf(stderr, ",\"detail\":");
		json_string(stderr, detail);
		fprintf(stderr, "}\n");
	} else if (p->mode == PROGRESS_PLAIN) {
		fprintf(stderr, "%s: %s\n", stage, detail);
	}
	if (strcmp(stage, "copy") == 0)
		p->started = now_seconds();
}

void progress_update(const struct pipeline_stats *st, void *opaque, int final)
{
	struct progress *p = opaque;
	double t = now_seconds() - p->started;
	double pct = st->bytes_total ? 100.0 * (double)st->bytes_read / (double)st->bytes_total : 100.0;
	double rate = t > 0 ? (double)st->bytes_read / t : 0;
	double eta = rate > 0 ? (double)(st->bytes_total - st->bytes_read) / rate : 0;
	char done[32], total[32], etas[32];
	sink_progress(p, st, pct, rate, eta, final);
	if (p->mode == PROGRESS_JSON) {
		fprintf(stderr, "{\"event\":\"progress\",\"stage\":\"copy\",\"done\":%llu,\"total\":%llu,\"stored\":%llu,"
			"\"percent\":%.1f,\"mb_per_s\":%.1f,\"eta_seconds\":%.0f,\"final\":%s}\n",
			(unsigned long long)st->bytes_read, (unsigned long long)st->bytes_total,
			(unsigned long long)st->bytes_stored, pct, rate / 1e6, eta, final ? "true" : "false");
		return;
	}
	if (p->mode != PROGRESS_PLAIN)
		return;
	if (!p->tty && !final && now_seconds() - p->last_line < 5)
		return;
	p->last_line = now_seconds();
	fprintf(stderr, "%s%5.1f%%  %s of %s  %.1f MB/s  ETA %s%s", p->tty ? "\r" : "", pct,
		fmt_size(st->bytes_read, done, sizeof done), fmt_size(st->bytes_total, total, sizeof total),
		rate / 1e6, fmt_duration(eta, etas, sizeof etas), p->tty && !final ? "  " : "\n");
}
