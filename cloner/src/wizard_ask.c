/* wizard_ask.c - the console side of `coldclone wizard` (wizard.h): questions read line by
 * line from stdin with the suggested answer in [brackets], secrets without echo, the
 * transcript file, and the summary screen. No cursor addressing: a serial terminal works. */
#define _GNU_SOURCE
#include "wizard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "commands.h"
#include "net.h"
#include "source.h"
#include "util.h"

#define MISSING_DRIVERS "/run/coldclone-missing.txt"  /* written by rootfs/init */

enum wizard_stop wizard_stop;
static FILE *transcript;
static char *transcript_path;

void wizard_log_open(const char *path)
{
	transcript = fopen(path, "a");
	if (!transcript) {
		warning("cannot write the wizard's log '%s': %m; it is not kept", path);
		return;
	}
	transcript_path = xstrdup(path);
	log_set_file(transcript);  /* the clone's messages go there too */
}

void wizard_log_close(void)
{
	if (!transcript)
		return;
	log_set_file(NULL);
	fflush(transcript);
	fsync(fileno(transcript));
	fclose(transcript);
	transcript = NULL;
	free(transcript_path);
	transcript_path = NULL;
}

const char *wizard_log_path(void)
{
	return transcript_path;
}

void wizard_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (transcript) {
		va_list copy;
		va_copy(copy, ap);
		vfprintf(transcript, fmt, copy);
		va_end(copy);
	}
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

void wizard_heading(const char *title)
{
	char line[80];
	int n = snprintf(line, sizeof line, "--- %s ", title);
	while (n > 0 && n < 72)
		line[n++] = '-';
	line[n > 0 && n < (int)sizeof line ? n : (int)sizeof line - 1] = '\0';
	wizard_say("\n%s\n", line);
}

/* One line from stdin without its line end; -1 sets wizard_stop. */
static int read_line(char *out, size_t outsz, bool *too_long)
{
	char *line = NULL;
	size_t cap = 0;
	*too_long = false;
	if (interrupted) {
		wizard_stop = WIZARD_INTERRUPTED;
		return -1;
	}
	errno = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		/* SIGINT interrupts read() (main.c installs it without SA_RESTART). */
		wizard_stop = interrupted || errno == EINTR ? WIZARD_INTERRUPTED : WIZARD_EOF;
		clearerr(stdin);
		return -1;
	}
	line[strcspn(line, "\r\n")] = '\0';
	char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	if (len >= outsz) {
		*too_long = true;
		len = 0;
	}
	memcpy(out, s, len);
	out[len] = '\0';
	explicit_bzero(line, cap);
	free(line);
	return 0;
}

int wizard_ask(const char *question, const char *suggested, char *out, size_t outsz)
{
	bool has = suggested && *suggested;
	for (;;) {
		if (has)
			printf("%s [%s]: ", question, suggested);
		else
			printf("%s: ", question);
		fflush(stdout);
		bool too_long;
		if (read_line(out, outsz, &too_long) < 0)
			return -1;
		if (too_long) {
			wizard_say("  that is too long (at most %zu characters): try again\n", outsz - 1);
			continue;
		}
		if (!*out && has)
			snprintf(out, outsz, "%s", suggested);
		if (*out)
			break;
		wizard_say("  an answer is needed here: type it and press Enter\n");
	}
	if (transcript) {  /* a URL may carry a password: never into the log */
		CLEANUP_FREE char *shown = url_redact(out);
		fprintf(transcript, "%s: %s\n", question, shown);
	}
	return 0;
}

int wizard_yes(const char *question, bool suggested)
{
	char q[512], a[16];
	snprintf(q, sizeof q, "%s (y/n)", question);
	for (;;) {
		if (wizard_ask(q, suggested ? "Y" : "N", a, sizeof a) < 0)
			return -1;
		if (strcasecmp(a, "y") == 0 || strcasecmp(a, "yes") == 0)
			return 1;
		if (strcasecmp(a, "n") == 0 || strcasecmp(a, "no") == 0)
			return 0;
		wizard_say("  answer y or n (Enter: %s)\n", suggested ? "yes" : "no");
	}
}

int wizard_secret(const char *question, char *out, size_t outsz)
{
	struct termios old, quiet;
	bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
	}
	printf("%s (not shown as you type): ", question);
	fflush(stdout);
	bool too_long;
	int r;
	while ((r = read_line(out, outsz, &too_long)) == 0 && too_long) {
		printf("  that is too long: try again: ");
		fflush(stdout);
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
	else
		printf("\n");
	if (transcript)
		fprintf(transcript, "%s: (given, not logged)\n", question);
	return r;
}

/* ---- the summary screen -------------------------------------------------------------- */

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_get_string(v) ? json_object_get_string(v) : "";
}

static uint64_t jsize(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

/* The mount point of a filesystem on disk name (the disk itself or a partition), or "". */
static void mounted_on(const char *name, char *out, size_t outsz)
{
	*out = '\0';
	FILE *f = fopen("/proc/self/mounts", "r");
	if (!f)
		return;
	char dev[256], mnt[256];
	while (fscanf(f, "%255s %255s %*[^\n]", dev, mnt) == 2) {
		if (strncmp(dev, "/dev/", 5) != 0)
			continue;
		const char *base = strrchr(dev, '/') + 1;
		CLEANUP_FREE char *part = xasprintf("/sys/block/%s/%s", name, base);
		struct stat st;
		if (strcmp(base, name) == 0 || stat(part, &st) == 0) {
			size_t n = strnlen(mnt, outsz - 1);
			memcpy(out, mnt, n);
			out[n] = '\0';
			break;
		}
	}
	fclose(f);
}

static void show_disk(size_t i, json_object *d, struct wizard_disk *w)
{
	char size[32], copy[32], psize[32], used[32];
	const char *model = jstr(d, "model"), *serial = jstr(d, "serial");
	wizard_say("  %zu  %-12s %s%s%s  %s  table %s  to copy %s%s%s%s\n", i + 1, w->path, *model ? model : "(no model)",
		   *serial ? "  serial " : "", serial, fmt_size(jsize(d, "size"), size, sizeof size),
		   jstr(d, "partition_table"), fmt_size(jsize(d, "bytes_to_copy"), copy, sizeof copy),
		   *w->in_use ? "  IN USE (" : "", w->in_use, *w->in_use ? " is on it): left out" : "");
	json_object *parts;
	if (!json_object_object_get_ex(d, "partitions", &parts))
		return;
	for (size_t k = 0; k < json_object_array_length(parts); k++) {
		json_object *p = json_object_array_get_idx(parts, k);
		json_object *cont;
		if (json_object_object_get_ex(p, "container", &cont) && json_object_get_boolean(cont))
			continue;
		const char *fs = jstr(p, "filesystem"), *label = jstr(p, "label"), *state = jstr(p, "state");
		wizard_say("       part %-3s %-10s %-8s %s%s%s%s used %s%s%s\n", jstr(p, "number"),
			   fmt_size(jsize(p, "size"), psize, sizeof psize), *fs ? fs : "-", *label ? "\"" : "", label,
			   *label ? "\"" : "", *label ? " " : "", fmt_size(jsize(p, "used_bytes"), used, sizeof used),
			   strcmp(state, "clean") && strcmp(state, "unknown") ? "  state " : "",
			   strcmp(state, "clean") && strcmp(state, "unknown") ? state : "");
		const char *host = jstr(p, "hostname");
		if (*host) {
			wizard_say("                hostname %s (%s)\n", host, jstr(p, "os"));
			if (!*w->hostname)
				snprintf(w->hostname, sizeof w->hostname, "%s", host), snprintf(w->os, sizeof w->os, "%s", jstr(p, "os"));
		}
	}
}

static void show_nics(const struct inventory *inv)
{
	struct ifaddrs *ifs = NULL;
	if (getifaddrs(&ifs) < 0)
		ifs = NULL;
	if (inv->nnics == 0)
		wizard_say("  no network interface (no driver for the NIC? see below)\n");
	for (size_t i = 0; i < inv->nnics; i++) {
		const struct inventory_nic *n = &inv->nics[i];
		char addrs[256] = "";
		size_t len = 0;
		for (struct ifaddrs *a = ifs; a; a = a->ifa_next) {
			if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || strcmp(a->ifa_name, n->name) != 0)
				continue;
			char ip[INET_ADDRSTRLEN] = "";
			inet_ntop(AF_INET, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, ip, sizeof ip);
			int prefix = 0;
			if (a->ifa_netmask)
				prefix = __builtin_popcount(((struct sockaddr_in *)a->ifa_netmask)->sin_addr.s_addr);
			int w = snprintf(addrs + len, sizeof addrs - len, "%s%s/%d", len ? " " : "", ip, prefix);
			if (w > 0 && (size_t)w < sizeof addrs - len)
				len += (size_t)w;
		}
		wizard_say("  %-10s %-17s link %-4s %-18s driver %s\n", n->name, n->mac ? n->mac : "-",
			   n->carrier == 1 ? "up" : n->carrier == 0 ? "down" : "?", len ? addrs : "no address",
			   n->driver ? n->driver : "NONE");
	}
	if (ifs)
		freeifaddrs(ifs);
}

static void show_missing(const struct inventory *inv)
{
	FILE *f = fopen(MISSING_DRIVERS, "r");
	unsigned n = 0;
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			if (*line)
				wizard_say("  %s\n", line), n++;
		}
		fclose(f);
	} else {
		/* Not the live image: the storage controllers the inventory saw without a driver. */
		for (size_t i = 0; i < inv->ncontrollers; i++)
			if (!inv->controllers[i].driver)
				wizard_say("  no driver for %s (class %06x) [pci %s]\n", inv->controllers[i].pci_id,
					   inv->controllers[i].class, inv->controllers[i].slot), n++;
	}
	if (n == 0)
		wizard_say("  none: every storage and network controller has a driver\n");
}

size_t wizard_summary(const struct inventory *inv, struct wizard_disk *disks, size_t max)
{
	char mem[32];
	wizard_heading("1. This machine");
	wizard_say("  %s%s%s  serial %s  %u CPU%s  %s RAM  %s\n", inv->vendor ? inv->vendor : "", inv->vendor ? " " : "",
		   inv->product ? inv->product : "(unknown model)", inv->serial && *inv->serial ? inv->serial : "(none)",
		   inv->cpus, inv->cpus == 1 ? "" : "s", fmt_size(inv->memory_bytes, mem, sizeof mem),
		   inv->uefi ? "UEFI" : "BIOS");
	wizard_say("Disks:\n");
	char **found = NULL;
	size_t n = 0;
	if (source_discover(&found) == 0) {
		for (size_t i = 0; found[i] && n < max; i++) {
			json_object *arr = json_object_new_array();
			struct wizard_disk *w = &disks[n];
			snprintf(w->path, sizeof w->path, "%s", found[i]);
			snprintf(w->name, sizeof w->name, "%s", strrchr(found[i], '/') ? strrchr(found[i], '/') + 1 : found[i]);
			mounted_on(w->name, w->in_use, sizeof w->in_use);
			if (list_disk(found[i], 0, arr) == EXIT_OK && json_object_array_length(arr) == 1)
				show_disk(n, json_object_array_get_idx(arr, 0), w);
			else
				wizard_say("  %zu  %-12s cannot be read (see the message above)\n", n + 1, w->path);
			json_object_put(arr);
			n++;
		}
	}
	source_discover_free(found);
	if (n == 0)
		wizard_say("  none found: is the storage controller's driver loaded? (see missing drivers below)\n");
	wizard_say("Network:\n");
	show_nics(inv);
	wizard_say("Missing drivers:\n");
	show_missing(inv);
	return n;
}
