/* test-report.c - the reporter: refuses unusable URLs, never blocks the caller when the
 * collector is away, and closes within its bounded wait. With arguments it is the driver
 * tests/integration/test-collect.sh uses to report like a clone would, through progress.c's
 * sink:  test-report URL MACHINE UPDATES [ok|fail] [burst N] */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "progress.h"
#include "report.h"
#include "test.h"
#include "util.h"

static json_object *result_event(bool ok)
{
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string("result"));
	json_object_object_add(ev, "ok", json_object_new_boolean(ok));
	json_object_object_add(ev, "rc", json_object_new_int(ok ? 0 : 4));
	if (!ok)
		json_object_object_add(ev, "reason", json_object_new_string("destination full"));
	return ev;
}

/* Report like a clone: start, stages through progress.c, progress updates, result. */
static int drive(const char *url, const char *machine, unsigned updates, bool ok, unsigned burst)
{
	struct reporter *r = report_open(url, NULL);
	if (!r)
		return 2;
	report_set_machine(r, machine);
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string("start"));
	report_event(r, ev);
	json_object_put(ev);
	/* Many raw progress events at once, as a long outage would pile up. */
	for (unsigned i = 0; i < burst; i++) {
		ev = json_object_new_object();
		json_object_object_add(ev, "event", json_object_new_string("progress"));
		json_object_object_add(ev, "percent", json_object_new_double(0));
		json_object_object_add(ev, "final", json_object_new_boolean(false));
		report_event(r, ev);
		json_object_put(ev);
	}
	progress_set_sink(report_progress_hook, r);
	struct progress p;
	progress_init(&p, PROGRESS_NONE, "/dev/fake");
	progress_stage(&p, "prepare", "reading partition table");
	progress_stage(&p, "copy", "/dev/fake -> nowhere");
	struct pipeline_stats st = { .bytes_total = 100ull << 20 };
	for (unsigned i = 1; i <= updates; i++) {
		st.bytes_read = st.bytes_total * i / updates;
		progress_update(&st, &p, i == updates);
		usleep(50 * 1000);
	}
	progress_stage(&p, "finish", "writing manifest");
	progress_set_sink(NULL, NULL);
	ev = result_event(ok);
	report_event(r, ev);
	json_object_put(ev);
	return report_close(r) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 4) {
		unsigned burst = argc >= 7 && strcmp(argv[5], "burst") == 0 ? (unsigned)atoi(argv[6]) : 0;
		return drive(argv[1], argv[2], (unsigned)atoi(argv[3]), argc < 5 || strcmp(argv[4], "fail") != 0, burst);
	}

	/* Unusable URLs are refused at once, with a message. */
	CHECK(report_open("ftp://collector/", NULL) == NULL);
	CHECK(report_open("not a url", NULL) == NULL);
	CHECK(report_close(NULL) == 0);
	report_event(NULL, NULL);  /* no-op */

	/* Nobody listens on port 1: queueing stays instant and bounded, and close returns
	 * within its bounded wait, saying the result was not delivered. */
	struct reporter *r = report_open("http://127.0.0.1:1/", NULL);
	CHECK(r != NULL);
	if (r) {
		double t0 = now_seconds();
		for (int i = 0; i < 5000; i++) {
			json_object *ev = json_object_new_object();
			json_object_object_add(ev, "event", json_object_new_string("progress"));
			json_object_object_add(ev, "percent", json_object_new_double(i / 50.0));
			report_event(r, ev);
			json_object_put(ev);
		}
		json_object *res = result_event(true);
		report_event(r, res);
		/* ev is borrowed: still ours, unchanged */
		CHECK(json_object_object_get(res, "seq") == NULL);
		json_object_put(res);
		double queued = now_seconds() - t0;
		CHECK(queued < 2.0);
		t0 = now_seconds();
		CHECK(report_close(r) == -1);
		double closed = now_seconds() - t0;
		CHECK(closed < REPORT_CLOSE_SECONDS + 3);
		printf("queued 5001 events in %.3f s, close took %.1f s\n", queued, closed);
	}
	return test_summary();
}
