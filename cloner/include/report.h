/* report.h - events POSTed as JSON to a collector (`coldclone collect`, coldclone.report=URL)
 * so one screen can follow many machines. Never in the clone's way: report_event only
 * queues, a background thread sends; when the collector is away the queue keeps the
 * newest events (dropping the oldest progress first, never a result) and retries.
 *
 * Protocol: one POST per event, Content-Type: application/json, body one JSON object.
 * The reporter adds to each: "machine" (name), "seq" (1, 2, 3 ... per reporter, so the
 * collector can ignore a resend) and "time" (UTC, ISO 8601). Events, by "event":
 *   "start"    {"disks":[...], ...}                       the job begins (caller's fields)
 *   "stage"    {"stage","source","detail"}                 from progress.c
 *   "progress" {"stage":"copy","source","done","total","stored","percent","mb_per_s",
 *               "eta_seconds","final"}                     from progress.c, thinned out
 *   "result"   {"ok":true|false,"rc":N,"reason":"...","manifest":{...}}  the end of the
 *              job; the collector treats it as the machine's final word
 * Any 2xx reply is success; other 4xx drop the event (resending would not help); no reply,
 * 408, 429 and 5xx are retried with backoff (1, 2, 4 ... 30 s). */
#ifndef COLDCLONE_REPORT_H
#define COLDCLONE_REPORT_H

#include "dest.h"

struct json_object;
struct reporter;

/* Start reporting to url (http:// or https://; user:password@ gives Basic login). o gives
 * the TLS settings (ca_file, insecure) and may be NULL. Returns NULL after printing why
 * when the URL is unusable or the thread cannot start; connection problems are not errors
 * here (they are retried in the background). The machine name is the host name until
 * report_set_machine. */
struct reporter *report_open(const char *url, const struct dest_options *o);
/* The "machine" of every later event (e.g. the DMI serial or the job's name). */
void report_set_machine(struct reporter *r, const char *name);
/* Queue ev (a JSON object with at least "event"); ev is borrowed: serialized at once, the
 * caller still owns it. Never blocks on the network; thread-safe. r may be NULL (no-op). */
void report_event(struct reporter *r, struct json_object *ev);
/* A progress_sink_fn (progress.h): progress_set_sink(report_progress_hook, r) sends every
 * stage event and a progress event at most every REPORT_PROGRESS_SECONDS (and the final one). */
#define REPORT_PROGRESS_SECONDS 5
void report_progress_hook(struct json_object *ev, void *reporter);
/* Send what is queued, waiting at most REPORT_CLOSE_SECONDS, then stop the thread and free r.
 * Returns 0 when every event but dropped progress was delivered, else -1 with a warning
 * saying how many were not.
 * Accepts NULL. Call progress_set_sink(NULL, NULL) first if r was registered there. */
#define REPORT_CLOSE_SECONDS 10
int report_close(struct reporter *r);

#endif
