/* config.h - the job file for unattended and fleet mode (src/config.c): an INI-style file
 * with [defaults] and per-machine sections chosen by DMI serial or NIC MAC. Parsing checks
 * every line and collects every error with its line number before anything runs; resolving
 * picks this machine's section and merges it over [defaults]. It does not run the job.
 *
 * Format (README "Unattended and fleet mode"):
 *   # comment          ; comment         key = value   # trailing comment after a blank
 *   [defaults]                    keys for every machine (keys before any section go here too)
 *   [machine SERIAL]              one machine, by DMI serial (case-insensitive)
 *   [mac 52:54:00:12:34:56]       one machine, by the MAC of any of its NICs (':' or '-')
 *   A value may be "double quoted" (\" and \\ inside) to keep a '#', ';' or edge blanks.
 * Section choice: a [machine] section matching the serial, else the first [mac] section (in
 * file order) matching any MAC, else [defaults] alone. Keys of the chosen section override
 * [defaults] one by one. */
#ifndef COLDCLONE_CONFIG_H
#define COLDCLONE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dest.h"
#include "vmdesc.h"

/* A parsed file: its sections and every error found. Opaque. */
struct config;

enum config_after { CONFIG_AFTER_STAY, CONFIG_AFTER_POWEROFF, CONFIG_AFTER_REBOOT };

/* One machine's job: [defaults] merged with its section, placeholders expanded, relative
 * file names made relative to the config file's folder. Strings are owned by the job;
 * NULL means "not set" (the caller's default applies). */
struct config_job {
	char *section;          /* "defaults", "machine SRV01" or "mac 52:54:00:12:34:56" */
	unsigned section_line;  /* line of that section header, 0 for implicit defaults */
	char *output;           /* folder path or URL, {name} {serial} {mac} expanded */
	char *format;           /* a fmt_by_name() name, or NULL: from the file extension */
	bool all_disks;         /* disks = all (also when disks is not set) */
	char **disks;           /* else: "sda", "/dev/nvme0n1" or "serial:XYZ" words */
	size_t ndisks;
	char *name;             /* machine name with {serial} {mac} expanded, or NULL */
	enum config_after after;/* default: stay */
	char *report;           /* collector URL (http/https), or NULL */
	bool verify;            /* read the image back after writing (default no) */
	bool force;             /* replace existing images (default no) */
	bool all_blocks;        /* copy every sector (default no) */
	uint64_t max_unreadable;/* sectors; UINT64_MAX when not set */
	unsigned workers;       /* 0 when not set */
	int compress_level;     /* 0 when not set */
	struct vm_overrides vm;   /* vm-cpus, vm-memory, vm-firmware, vm-bus, vm-nics */
	struct dest_options dest; /* ca-file, insecure, retries, timeout, password-file, s3-*, ssh-*;
				   * strings point into this job; retries 8 and timeout 60 when unset */
	char *values[32];       /* internal: resolved value text per key, for config_job_print */
	unsigned lines[32];     /* internal: line each value came from */
};

/* Parse a file. Never NULL: an unreadable file is one error in the result. */
struct config *config_parse_file(const char *path);
/* Parse len bytes of text; name is used in error messages and relative paths resolve
 * against its folder (NULL name: "<config>", paths kept as written). Never NULL. */
struct config *config_parse_buffer(const char *name, const char *buf, size_t len);
void config_free(struct config *cfg);  /* accepts NULL */

/* Errors found, in line order: each "FILE:LINE: what is wrong; what to do". The file is
 * valid when there are none. Strings are owned by cfg. */
size_t config_nerrors(const struct config *cfg);
const char *config_error(const struct config *cfg, size_t i);

/* The job for a machine with this DMI serial (NULL if none) and these NIC MACs (any
 * case, ':' or '-'). cfg must be valid. Returns NULL after printing why when the chosen
 * section has no output, or a placeholder has nothing to expand to (e.g. {serial} on a
 * machine without one). Free with config_job_free. */
struct config_job *config_for_machine(const struct config *cfg, const char *serial,
				      const char *const *macs, size_t nmacs);
void config_job_free(struct config_job *job);  /* accepts NULL */
/* A valid file's [defaults] keys and the list of machine sections. */
void config_describe(const struct config *cfg, FILE *f);
/* "key = value    (line N)" for every key that is set, after a "[section]" line. */
void config_job_print(const struct config_job *job, FILE *f);

/* Canonical lower-case "52:54:00:12:34:56" from any-case text with ':' or '-'
 * separators into out[18]; -1 when text is not a MAC. */
int config_normalize_mac(const char *text, char out[18]);

#endif
