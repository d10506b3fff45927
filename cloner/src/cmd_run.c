/* cmd_run.c - `coldclone run --config FILE|URL`: the unattended job. The job file
 * (config.c) is checked whole before anything starts; this machine's section is chosen
 * by its DMI serial or a NIC's MAC; then every chosen disk is cloned (machine.c) while
 * progress goes to the collector (report.c), and the result is reported last. */
#define _GNU_SOURCE
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "clonejob.h"
#include "commands.h"
#include "config.h"
#include "inventory.h"
#include "machine.h"
#include "net.h"
#include "report.h"
#include "sink.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1u << 20)

struct run_opts {
	const char *config;
	const char *serial;
	const char *macs[16];
	size_t nmacs;
	const char *report;
	bool power;                /* carry out after = poweroff/reboot */
	const char *after_file;    /* write "stay", "poweroff" or "reboot" there (for init) */
	enum progress_mode progress;
	struct dest_options fetch; /* TLS for fetching the config */
};

struct fetch_buf {
	char *data;
	size_t len;
	bool too_big;
};

static size_t fetch_body(char *data, size_t size, size_t n, void *opaque)
{
	struct fetch_buf *b = opaque;
	size_t add = size * n;
	if (b->len + add > CONFIG_MAX_BYTES) {
		b->too_big = true;
		return 0;
	}
	b->data = xrealloc(b->data, b->len + add + 1);
	memcpy(b->data + b->len, data, add);
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

/* The job file from a URL (PXE: coldclone.config=URL) or a path. */
static struct config *load_config(const struct run_opts *ro)
{
	if (strncmp(ro->config, "http://", 7) != 0 && strncmp(ro->config, "https://", 8) != 0)
		return config_parse_file(ro->config);
	CLEANUP_FREE char *shown = url_redact(ro->config);
	struct fetch_buf b = { 0 };
	char errbuf[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 160];
	CURL *c = net_curl(&ro->fetch);
	curl_easy_setopt(c, CURLOPT_URL, ro->config);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	struct config *cfg = NULL;
	if (b.too_big)
		error("job file '%s' is larger than 1 MiB: is it the right URL?", shown);
	else if (rc != CURLE_OK)
		error("fetch the job file '%s': %s", shown, net_describe(rc, code, errbuf, why, sizeof why));
	else
		cfg = config_parse_buffer(shown, b.data ? b.data : "", b.len);
	free(b.data);
	return cfg;
}

static int parse_run_opts(int argc, char **argv, struct run_opts *ro)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' }, { "serial", required_argument, NULL, 's' },
		{ "mac", required_argument, NULL, 'm' },    { "report", required_argument, NULL, 'r' },
		{ "power", no_argument, NULL, 'p' },        { "ca-file", required_argument, NULL, 'C' },
		{ "insecure", no_argument, NULL, 'k' },     { "help", no_argument, NULL, 'h' },
		{ "after-file", required_argument, NULL, 'a' }, { "progress", required_argument, NULL, 'P' },
		{ 0 },
	};
	*ro = (struct run_opts){ .fetch = { .retries = 3, .timeout = 30 }, .progress = PROGRESS_PLAIN };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:m:r:pC:kha:P:", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': ro->config = optarg; break;
		case 's': ro->serial = optarg; break;
		case 'r': ro->report = optarg; break;
		case 'p': ro->power = true; break;
		case 'C': ro->fetch.ca_file = optarg; break;
		case 'k': ro->fetch.insecure = true; break;
		case 'a': ro->after_file = optarg; break;
		case 'P':
			if (progress_parse_mode(optarg, &ro->progress) < 0)
				return error("--progress takes plain, json or none, not '%s'", optarg);
			break;
		case 'h': print_help("run"); return 1;
		case 'm':
			if (ro->nmacs == sizeof ro->macs / sizeof ro->macs[0])
				return error("too many --mac options");
			ro->macs[ro->nmacs++] = optarg;
			break;
		default:
			return error("see 'coldclone help run'");
		}
	}
	if (optind < argc)
		return error("unexpected argument '%s': see 'coldclone help run'", argv[optind]);
	if (!ro->config)
		return error("run needs --config FILE or URL (the job file): see 'coldclone help run'");
	return 0;
}

/* The clone options of the job: the same meaning as on the command line. */
static void job_to_opts(const struct config_job *job, const char *name, enum progress_mode progress,
			struct clone_opts *o)
{
	*o = (struct clone_opts){ .progress = progress, .all = true, .name = name };
	o->output = job->output;
	o->format = job->format;
	o->verify = job->verify;
	o->force = job->force;
	o->all_blocks = job->all_blocks;
	o->max_unreadable = job->max_unreadable;
	o->workers = job->workers;
	o->compress_level = job->compress_level;
	o->dest = job->dest;
	o->vm = job->vm;
	for (size_t i = 0; !job->all_disks && i < job->ndisks && i < sizeof o->disks / sizeof o->disks[0]; i++)
		o->disks[o->ndisks++] = job->disks[i];
}

static void report_simple(struct reporter *r, const char *event, int rc, const struct config_job *job)
{
	json_object *ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string(event));
	if (strcmp(event, "result") == 0) {
		json_object_object_add(ev, "ok", json_object_new_boolean(rc == EXIT_OK || rc == EXIT_UNREADABLE));
		json_object_object_add(ev, "rc", json_object_new_int(rc));
		json_object_object_add(ev, "reason", json_object_new_string(exit_code_meaning(rc)));
	} else {
		CLEANUP_FREE char *shown = url_redact(job->output);
		json_object_object_add(ev, "output", json_object_new_string(shown));
		json_object_object_add(ev, "section", json_object_new_string(job->section));
	}
	report_event(r, ev);
	json_object_put(ev);
}

static void do_after(enum config_after after, const struct run_opts *ro)
{
	static const char *const names[] = { [CONFIG_AFTER_STAY] = "stay", [CONFIG_AFTER_POWEROFF] = "poweroff",
					     [CONFIG_AFTER_REBOOT] = "reboot" };
	if (ro->after_file) {
		FILE *f = fopen(ro->after_file, "w");
		if (f) {
			fprintf(f, "%s\n", names[after]);
			fclose(f);
		}
	}
	if (after == CONFIG_AFTER_STAY || ro->after_file)
		return;
	bool power = ro->power;
	const char *what = after == CONFIG_AFTER_POWEROFF ? "power off" : "reboot";
	if (!power) {
		info("the job says %s afterwards: not done here (only with --power, as the live image runs it)", what);
		return;
	}
	info("%s in 5 s", what);
	sync();
	sleep(5);
	reboot(after == CONFIG_AFTER_POWEROFF ? RB_POWER_OFF : RB_AUTOBOOT);
}

/* The job's messages beside the images as NAME.log, so whoever receives the images sees
 * what happened on the machine without the boot stick. Replaces the log of an earlier run. */
static void store_job_log(const struct clone_opts *o, const char *name, const char *text, size_t len)
{
	CLEANUP_FREE char *file = xasprintf("%s.log", name);
	CLEANUP_FREE char *dest = machine_dest_join(o->output, file);
	struct dest_options d = o->dest;
	d.force = true;
	if (sink_store_file(dest, text, len, &d) == 0)
		info("job log stored beside the images as %s", file);
	else
		warning("the job log could not be stored beside the images: it is on the console above");
}

/* Start copying every message into a memory log; NULL when that is not possible. */
static FILE *start_job_log(char **text, size_t *len, const char *name, const struct config_job *job)
{
	FILE *log = open_memstream(text, len);
	if (!log)
		return NULL;
	char when[32];
	utc_timestamp(when, sizeof when);
	fprintf(log, "coldclone %s: job [%s] for machine '%s', started %s\n", COLDCLONE_VERSION, job->section,
		name, when);
	config_job_print(job, log);
	log_set_file(log);
	return log;
}

static int run_job(const struct run_opts *ro, const struct config_job *job, struct inventory *inv)
{
	struct clone_opts o;
	job_to_opts(job, NULL, ro->progress, &o);
	/* Without a name in the job, the machine is called by the host name on its disks. */
	if (!job->name)
		machine_find_os_host(&o, inv);
	CLEANUP_FREE char *name = inventory_machine_name(inv, job->name);
	o.name = name;
	const char *report_url = ro->report ? ro->report : job->report;
	struct reporter *r = report_url ? report_open(report_url, &job->dest) : NULL;
	if (r) {
		report_set_machine(r, name);
		progress_set_sink(report_progress_hook, r);
		report_simple(r, "start", 0, job);
	}
	char *log_text = NULL;
	size_t log_len = 0;
	FILE *log = start_job_log(&log_text, &log_len, name, job);
	info("job for machine '%s' from [%s]", name, job->section);
	int rc = machine_clone(&o, NULL);
	if (r) {
		report_simple(r, "result", rc, job);
		progress_set_sink(NULL, NULL);
		report_close(r);
	}
	info("result: %s (exit %d)", exit_code_meaning(rc), rc);
	if (log) {
		log_set_file(NULL);
		char when[32];
		utc_timestamp(when, sizeof when);
		fprintf(log, "finished %s\n", when);
		if (fclose(log) == 0 && log_text)
			store_job_log(&o, name, log_text, log_len);
		free(log_text);
	}
	return rc;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts ro;
	int pr = parse_run_opts(argc, argv, &ro);
	if (pr)
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	struct config *cfg = load_config(&ro);
	if (!cfg)
		return EXIT_USAGE;
	if (config_nerrors(cfg)) {
		for (size_t i = 0; i < config_nerrors(cfg); i++)
			fprintf(stderr, "%s\n", config_error(cfg, i));
		error("the job file has %zu error%s: nothing was copied", config_nerrors(cfg),
		      config_nerrors(cfg) == 1 ? "" : "s");
		config_free(cfg);
		return EXIT_USAGE;
	}
	struct inventory inv = { 0 };
	inventory_read(&inv, "");
	const char *macs[16];
	size_t nmacs = ro.nmacs;
	memcpy(macs, ro.macs, sizeof macs);
	for (size_t i = 0; !ro.nmacs && i < inv.nnics && nmacs < 16; i++)
		if (inv.nics[i].mac)
			macs[nmacs++] = inv.nics[i].mac;
	struct config_job *job = config_for_machine(cfg, ro.serial ? ro.serial : inv.serial, macs, nmacs);
	int rc = EXIT_USAGE;
	if (job) {
		config_job_print(job, stderr);
		rc = run_job(&ro, job, &inv);
		do_after(job->after, &ro);
	}
	config_job_free(job);
	config_free(cfg);
	inventory_release(&inv);
	return rc;
}
