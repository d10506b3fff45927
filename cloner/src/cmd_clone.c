/* cmd_clone.c - `coldclone clone`: the command line, then one disk (clonejob.c) or, with
 * --all, every disk of the machine (machine.c). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "clonejob.h"
#include "commands.h"
#include "machine.h"
#include "util.h"

/* Keep a private copy of a destination URL and blank any password in the original
 * argument, so `ps` and /proc/PID/cmdline stop showing it. (COLDCLONE_PASSWORD or
 * --password-file never expose it at all.) */
static const char *take_secret_url(char *arg)
{
	static char *copies[4];
	static size_t ncopies;
	char *copy = xstrdup(arg);
	if (ncopies < sizeof copies / sizeof copies[0])
		copies[ncopies++] = copy;  /* lives until exit, like argv */
	const char *sep = strstr(arg, "://");
	if (sep) {
		char *auth = (char *)sep + 3;
		char *end = auth + strcspn(auth, "/?#");
		char *at = NULL;
		for (char *p = auth; p < end; p++)
			if (*p == '@')
				at = p;
		char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		for (char *p = colon ? colon + 1 : at; colon && p < at; p++)
			*p = '*';
	}
	return copy;
}

/* --vm-cpus N, --vm-memory MiB, --vm-firmware bios|uefi, --vm-bus NAME, --vm-nics N. */
static int parse_vm_option(int c, const char *arg, struct vm_overrides *vm)
{
	uint64_t v;
	enum vm_bus bus;
	switch (c) {
	case 1001:
		if (parse_u64(arg, &v) < 0 || v < 1 || v > 256)
			return error("--vm-cpus takes 1 to 256, not '%s'", arg);
		vm->cpus = (unsigned)v;
		return 0;
	case 1002:
		if (parse_u64(arg, &v) < 0 || v < 128 || v > 4194304)
			return error("--vm-memory takes MiB from 128 to 4194304, not '%s'", arg);
		vm->memory_mib = v;
		return 0;
	case 1003:
		if (strcmp(arg, "bios") != 0 && strcmp(arg, "uefi") != 0)
			return error("--vm-firmware takes bios or uefi, not '%s'", arg);
		vm->firmware = arg;
		return 0;
	case 1004:
		if (vmdesc_bus_by_name(arg, &bus) < 0)
			return -1;
		vm->bus = arg;
		return 0;
	default:
		if (parse_u64(arg, &v) < 0 || v < 1 || v > 8)
			return error("--vm-nics takes 1 to 8, not '%s'", arg);
		vm->nics = (unsigned)v;
		return 0;
	}
}

static int parse_opts(int argc, char **argv, struct clone_opts *o)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' }, { "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' }, { "all-blocks", no_argument, NULL, 'a' },
		{ "progress", required_argument, NULL, 'p' }, { "force", no_argument, NULL, 'F' },
		{ "max-unreadable", required_argument, NULL, 'm' }, { "sector-size", required_argument, NULL, 'S' },
		{ "workers", required_argument, NULL, 'w' }, { "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ "compress-level", required_argument, NULL, 'c' }, { "verify", no_argument, NULL, 'V' },
		{ "ca-file", required_argument, NULL, 'C' }, { "insecure", no_argument, NULL, 'k' },
		{ "s3-endpoint", required_argument, NULL, 'E' }, { "s3-region", required_argument, NULL, 'R' },
		{ "ssh-fingerprint", required_argument, NULL, 'P' }, { "known-hosts", required_argument, NULL, 'K' },
		{ "ssh-key", required_argument, NULL, 'i' }, { "password-file", required_argument, NULL, 'W' },
		{ "retries", required_argument, NULL, 'r' }, { "timeout", required_argument, NULL, 't' },
		{ "all", no_argument, NULL, 'A' }, { "disk", required_argument, NULL, 'D' },
		{ "name", required_argument, NULL, 'N' },
		{ "vm-cpus", required_argument, NULL, 1001 }, { "vm-memory", required_argument, NULL, 1002 },
		{ "vm-firmware", required_argument, NULL, 1003 }, { "vm-bus", required_argument, NULL, 1004 },
		{ "vm-nics", required_argument, NULL, 1005 },
		{ 0 },
	};
	uint64_t v;
	int c;
	*o = (struct clone_opts){ .progress = PROGRESS_PLAIN, .max_unreadable = UINT64_MAX,
				  .dest = { .retries = 8, .timeout = 60 } };
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:o:f:ap:Fm:S:w:qvhc:i:k", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->source = optarg; break;
		case 'o': o->output = take_secret_url(optarg); break;
		case 'A': o->all = true; break;
		case 1001: case 1002: case 1003: case 1004: case 1005:
			if (parse_vm_option(c, optarg, &o->vm) < 0)
				return -1;
			break;
		case 'N': o->name = optarg; break;
		case 'D':
			if (o->ndisks == sizeof o->disks / sizeof o->disks[0])
				return error("too many --disk options (at most %zu)", sizeof o->disks / sizeof o->disks[0]);
			o->disks[o->ndisks++] = optarg;
			break;
		case 'V': o->verify = true; break;
		case 'C': o->dest.ca_file = optarg; break;
		case 'k': o->dest.insecure = true; break;
		case 'E': o->dest.s3_endpoint = optarg; break;
		case 'R': o->dest.s3_region = optarg; break;
		case 'P': o->dest.ssh_fingerprint = optarg; break;
		case 'K': o->dest.known_hosts = optarg; break;
		case 'i': o->dest.ssh_key = optarg; break;
		case 'W': o->dest.password_file = optarg; break;
		case 'r':
			if (parse_u64(optarg, &v) < 0 || v > 100)
				return error("--retries takes a number from 0 to 100, not '%s'", optarg);
			o->dest.retries = (unsigned)v;
			break;
		case 't':
			if (parse_u64(optarg, &v) < 0 || v < 5 || v > 3600)
				return error("--timeout takes seconds from 5 to 3600, not '%s'", optarg);
			o->dest.timeout = (unsigned)v;
			break;
		case 'f': o->format = optarg; break;
		case 'a': o->all_blocks = true; break;
		case 'F': o->force = true; break;
		case 'q': log_verbosity = 0; break;
		case 'v': log_verbosity = 2; break;
		case 'h': print_help("clone"); return 1;
		case 'p':
			if (progress_parse_mode(optarg, &o->progress) < 0)
				return error("--progress takes plain, json or none, not '%s'", optarg);
			break;
		case 'm':
			if (parse_u64(optarg, &o->max_unreadable) < 0)
				return error("--max-unreadable takes a number of sectors, not '%s'", optarg);
			break;
		case 'S':
			if (parse_u64(optarg, &v) < 0 || (v != 512 && v != 4096))
				return error("--sector-size takes 512 or 4096, not '%s'", optarg);
			o->sector_size = (uint32_t)v;
			break;
		case 'c':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 12)
				return error("--compress-level takes 1 (fastest) to 12 (smallest), not '%s'", optarg);
			o->compress_level = (int)v;
			break;
		case 'w':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 64)
				return error("--workers takes a number from 1 to 64, not '%s'", optarg);
			o->workers = (unsigned)v;
			break;
		default:
			return error("see 'coldclone help clone'");
		}
	}
	if (optind < argc)
		return error("unexpected argument '%s': see 'coldclone help clone'", argv[optind]);
	if (o->all && o->source)
		return error("--all clones every disk: use it without --source (pick disks with --disk)");
	if (!o->all && (o->ndisks || o->name))
		return error("--disk and --name go with --all");
	if ((!o->source && !o->all) || !o->output)
		return error("clone needs --source DISK (or --all) and --output FILE: see 'coldclone help clone'");
	return 0;
}

int cmd_clone(int argc, char **argv)
{
	struct clone_opts o;
	int pr = parse_opts(argc, argv, &o);
	if (pr)
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	if (o.all)
		return machine_clone(&o, NULL);
	struct clone_job j;
	clonejob_init(&j, &o, o.source, o.output, false);
	int r = clonejob_prepare(&j);
	if (r == EXIT_OK)
		r = clonejob_copy(&j);
	if (r == EXIT_OK)
		r = clonejob_finish(&j);
	if (r != EXIT_OK && r != EXIT_UNREADABLE && interrupted)
		r = EXIT_INTERRUPTED;
	clonejob_release(&j);
	return r;
}
