/* cmd_config.c - `coldclone config check FILE`: validate a job file and show the job one
 * machine would run (by --serial/--mac, or --local for the machine we run on). It runs
 * nothing; `clone` reads the same file through config.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "util.h"

#define MAX_MACS 64

/* First line of a sysfs file, blanks trimmed, or NULL. */
static char *sysfs_line(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char buf[256];
	char *line = fgets(buf, sizeof buf, f);
	fclose(f);
	if (!line)
		return NULL;
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	char *s = buf + strspn(buf, " \t");
	return *s ? xstrdup(s) : NULL;
}

/* This machine's NIC MACs (not loopback, not all-zero). */
static size_t local_macs(char **macs, size_t max)
{
	DIR *d = opendir("/sys/class/net");
	size_t n = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d)) && n < max;) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "lo") == 0)
			continue;
		CLEANUP_FREE char *path = xasprintf("/sys/class/net/%s/address", e->d_name);
		char *mac = sysfs_line(path);
		char canon[18];
		if (mac && config_normalize_mac(mac, canon) == 0 && strcmp(canon, "00:00:00:00:00:00") != 0)
			macs[n++] = mac;
		else
			free(mac);
	}
	closedir(d);
	return n;
}

static int config_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "serial", required_argument, NULL, 's' }, { "mac", required_argument, NULL, 'm' },
		{ "local", no_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	char *macs[MAX_MACS];
	size_t nmacs = 0;
	CLEANUP_FREE char *serial = NULL;
	bool local = false, machine = false;
	int c, rc = EXIT_USAGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			free(serial);
			serial = xstrdup(optarg);
			machine = true;
			break;
		case 'm': {
			char canon[18];
			if (config_normalize_mac(optarg, canon) < 0) {
				error("--mac takes a MAC such as 52:54:00:12:34:56, not '%s'", optarg);
				goto out;
			}
			if (nmacs < MAX_MACS)
				macs[nmacs++] = xstrdup(optarg);
			machine = true;
			break;
		}
		case 'l': local = machine = true; break;
		case 'h': print_help("config"); rc = EXIT_OK; goto out;
		default: error("see 'coldclone help config'"); goto out;
		}
	}
	if (optind + 1 != argc) {
		error("config check needs one FILE: see 'coldclone help config'");
		goto out;
	}
	if (local) {
		if (!serial)
			serial = sysfs_line("/sys/class/dmi/id/product_serial");
		nmacs += local_macs(macs + nmacs, MAX_MACS - nmacs);
	}
	struct config *cfg = config_parse_file(argv[optind]);
	size_t nerr = config_nerrors(cfg);
	if (nerr) {
		fprintf(stderr, "coldclone: error: %s: %zu error%s:\n", argv[optind], nerr, nerr == 1 ? "" : "s");
		for (size_t i = 0; i < nerr; i++)
			fprintf(stderr, "  %zu. %s\n", i + 1, config_error(cfg, i));
	} else if (!machine) {
		config_describe(cfg, stdout);
		rc = EXIT_OK;
	} else {
		struct config_job *job = config_for_machine(cfg, serial, (const char *const *)macs, nmacs);
		if (job) {
			printf("%s: valid; the job for serial %s", argv[optind], serial ? serial : "(none)");
			for (size_t i = 0; i < nmacs; i++)
				printf("%s%s", i ? ", " : " MAC ", macs[i]);
			printf(":\n");
			config_job_print(job, stdout);
			config_job_free(job);
			rc = EXIT_OK;
		}
	}
	config_free(cfg);
out:
	for (size_t i = 0; i < nmacs; i++)
		free(macs[i]);
	return rc;
}

int cmd_config(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return config_check(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		print_help("config");
		return EXIT_OK;
	}
	error("config takes the subcommand check: coldclone config check FILE [--serial S] [--mac M]");
	return EXIT_USAGE;
}
