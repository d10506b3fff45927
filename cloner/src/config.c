/* config.c - see config.h. A line-by-line parser over untrusted text: every line is checked
 * against one key table, every error is collected with its line number, sizes are capped.
 * Running the job (disks, destinations, after-actions) is the caller's business. */
#define _GNU_SOURCE
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "format.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1u << 20)  /* a job file is a few hundred lines */
#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_ERRORS 100
#define CONFIG_MAX_SECTIONS 100000   /* fleets of thousands of machines are fine */

enum key_type {
	K_OUTPUT, K_FORMAT, K_DISKS, K_NAME, K_AFTER, K_URL, K_BOOL, K_UINT, K_PATH, K_WORD,
	K_FINGERPRINT, K_CHOICE,
};

enum key_id {
	KEY_OUTPUT, KEY_FORMAT, KEY_DISKS, KEY_NAME, KEY_AFTER, KEY_REPORT, KEY_VERIFY, KEY_FORCE,
	KEY_ALL_BLOCKS, KEY_MAX_UNREADABLE, KEY_WORKERS, KEY_COMPRESS_LEVEL, KEY_CA_FILE,
	KEY_INSECURE, KEY_RETRIES, KEY_TIMEOUT, KEY_PASSWORD_FILE, KEY_S3_ENDPOINT, KEY_S3_REGION,
	KEY_SSH_FINGERPRINT, KEY_KNOWN_HOSTS, KEY_SSH_KEY, KEY_VM_CPUS, KEY_VM_MEMORY, KEY_VM_FIRMWARE,
	KEY_VM_BUS, KEY_VM_NICS, NKEYS
};

static const struct key {
	const char *name;
	enum key_type type;
	uint64_t min, max;  /* K_UINT */
	const char *hint;   /* what a good value looks like, for messages */
	const char *const *choices;  /* K_CHOICE: the accepted words, NULL-terminated */
} keys[NKEYS] = {
	[KEY_OUTPUT] = { "output", K_OUTPUT, .hint = "an absolute folder path or a URL (https://, s3://, sftp://, smb://, nfs://)" },
	[KEY_FORMAT] = { "format", K_FORMAT, .hint = "raw, qcow2, vmdk-stream, vmdk, vhdx, vhd or vhd-fixed" },
	[KEY_DISKS] = { "disks", K_DISKS, .hint = "all, or disk names (sda /dev/nvme0n1) and serial:SERIAL words" },
	[KEY_NAME] = { "name", K_NAME, .hint = "letters, digits, '.', '_', '-' and {serial} or {mac}" },
	[KEY_AFTER] = { "after", K_AFTER, .hint = "poweroff, reboot or stay" },
	[KEY_REPORT] = { "report", K_URL, .hint = "a collector URL: http://HOST:PORT/" },
	[KEY_VERIFY] = { "verify", K_BOOL, .hint = "yes or no" },
	[KEY_FORCE] = { "force", K_BOOL, .hint = "yes or no" },
	[KEY_ALL_BLOCKS] = { "all-blocks", K_BOOL, .hint = "yes or no" },
	[KEY_MAX_UNREADABLE] = { "max-unreadable", K_UINT, 0, UINT64_MAX, "a number of sectors" },
	[KEY_WORKERS] = { "workers", K_UINT, 1, 64, "a number from 1 to 64" },
	[KEY_COMPRESS_LEVEL] = { "compress-level", K_UINT, 1, 12, "1 (fastest) to 12 (smallest)" },
	[KEY_CA_FILE] = { "ca-file", K_PATH, .hint = "a PEM file of CA certificates" },
	[KEY_INSECURE] = { "insecure", K_BOOL, .hint = "yes or no" },
	[KEY_RETRIES] = { "retries", K_UINT, 0, 100, "a number from 0 to 100" },
	[KEY_TIMEOUT] = { "timeout", K_UINT, 5, 3600, "seconds from 5 to 3600" },
	[KEY_PASSWORD_FILE] = { "password-file", K_PATH, .hint = "a file whose first line is the password" },
	[KEY_S3_ENDPOINT] = { "s3-endpoint", K_URL, .hint = "a URL: https://s3.example:9000" },
	[KEY_S3_REGION] = { "s3-region", K_WORD, .hint = "a region name such as us-east-1" },
	[KEY_SSH_FINGERPRINT] = { "ssh-fingerprint", K_FINGERPRINT, .hint = "SHA256:base64, as ssh-keygen -lf prints it" },
	[KEY_KNOWN_HOSTS] = { "known-hosts", K_PATH, .hint = "an OpenSSH known_hosts file" },
	[KEY_SSH_KEY] = { "ssh-key", K_PATH, .hint = "an OpenSSH private key file" },
	[KEY_VM_CPUS] = { "vm-cpus", K_UINT, 1, 256, "a number of virtual CPUs from 1 to 256" },
	[KEY_VM_MEMORY] = { "vm-memory", K_UINT, 128, 4194304, "MiB of memory from 128 to 4194304" },
	[KEY_VM_FIRMWARE] = { "vm-firmware", K_CHOICE, .hint = "bios or uefi",
			      .choices = (const char *const[]){ "bios", "uefi", NULL } },
	[KEY_VM_BUS] = { "vm-bus", K_CHOICE, .hint = "sata, scsi, ide or virtio",
			 .choices = (const char *const[]){ "sata", "scsi", "ide", "virtio", NULL } },
	[KEY_VM_NICS] = { "vm-nics", K_UINT, 1, 8, "a number of network adapters from 1 to 8" },
};
_Static_assert(NKEYS <= ARRAY_SIZE(((struct config_job *)0)->values), "config_job.values too small");

enum section_kind { SEC_DEFAULTS, SEC_MACHINE, SEC_MAC };

struct section {
	enum section_kind kind;
	char *arg;               /* serial as written, or canonical MAC; NULL for defaults */
	unsigned line;           /* header line, 0 for implicit defaults */
	char *values[NKEYS];     /* as written (unquoted), NULL when absent */
	unsigned lines[NKEYS];
};

struct error_entry {
	unsigned line;
	char *text;
};

struct config {
	char *name;              /* for messages */
	char *dir;               /* folder of the file, for relative paths; NULL for buffers */
	struct section *secs;    /* secs[0] is [defaults] */
	size_t nsecs, cap;
	struct error_entry *errs;
	size_t nerrs;
	bool too_many;
	bool bad_header;         /* keys went nowhere: "missing output" would be noise */
};

static void add_error(struct config *cfg, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add_error(struct config *cfg, unsigned line, const char *fmt, ...)
{
	if (cfg->nerrs >= CONFIG_MAX_ERRORS) {
		cfg->too_many = true;
		return;
	}
	va_list ap;
	char *msg;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg) {
		error("out of memory");
		exit(1);
	}
	cfg->errs = xrealloc(cfg->errs, (cfg->nerrs + 1) * sizeof *cfg->errs);
	cfg->errs[cfg->nerrs++] = (struct error_entry){
		.line = line, .text = line ? xasprintf("%s:%u: %s", cfg->name, line, msg) : xasprintf("%s: %s", cfg->name, msg),
	};
	free(msg);
}

/* A value shown inside a message: control characters and overlong text defused. */
static char *shown(const char *s)
{
	size_t n = strlen(s), max = 80;
	char *out = xmalloc(MIN(n, max) * 4 + 8), *o = out;
	for (size_t i = 0; i < n && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			o += sprintf(o, "\\x%02x", ch);
		else
			*o++ = (char)ch;
	}
	if (n > max)
		o = stpcpy(o, "...");
	*o = '\0';
	return out;
}

int config_normalize_mac(const char *text, char out[18])
{
	size_t n = 0;
	char sep = 0;
	for (const char *p = text;; p += 3) {
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -1;
		out[n * 3] = (char)tolower((unsigned char)p[0]);
		out[n * 3 + 1] = (char)tolower((unsigned char)p[1]);
		n++;
		if (n == 6) {
			if (p[2] != '\0')
				return -1;
			break;
		}
		if (p[2] != ':' && p[2] != '-')
			return -1;
		if (sep && p[2] != sep)
			return -1;
		sep = p[2];
		out[n * 3 - 1] = ':';
	}
	out[17] = '\0';
	return 0;
}

static unsigned edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32)
		return 99;
	unsigned d[33][33];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
			d[i][j] = MIN(MIN(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				d[i][j] = MIN(d[i][j], d[i - 2][j - 2] + 1);  /* transposition */
		}
	return d[la][lb];
}

static int key_lookup(const char *name)
{
	for (int i = 0; i < NKEYS; i++)
		if (strcasecmp(keys[i].name, name) == 0)
			return i;
	return -1;
}

static const char *key_suggest(const char *name)
{
	char norm[64];
	snprintf(norm, sizeof norm, "%s", name);
	for (char *p = norm; *p; p++)
		*p = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
	const char *best = NULL;
	unsigned best_d = 3;
	for (int i = 0; i < NKEYS; i++) {
		unsigned dist = edit_distance(norm, keys[i].name);
		if (dist < best_d) {
			best_d = dist;
			best = keys[i].name;
		}
	}
	return best;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, true;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, true;
	}
	return false;
}

static bool parse_after(const char *v, enum config_after *out)
{
	if (strcasecmp(v, "poweroff") == 0)
		*out = CONFIG_AFTER_POWEROFF;
	else if (strcasecmp(v, "reboot") == 0)
		*out = CONFIG_AFTER_REBOOT;
	else if (strcasecmp(v, "stay") == 0)
		*out = CONFIG_AFTER_STAY;
	else
		return false;
	return true;
}

static bool name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == '-';
}

/* Placeholders in output and name: 0 when all are known, else the message. */
static char *check_placeholders(const char *v, bool allow_name)
{
	for (const char *p = strchr(v, '{'); p; p = strchr(p + 1, '{')) {
		const char *end = strchr(p, '}');
		if (!end)
			return xstrdup("'{' without a closing '}'; placeholders are {name}, {serial} and {mac}");
		size_t n = (size_t)(end - p + 1);
		if ((n == 8 && strncmp(p, "{serial}", 8) == 0) || (n == 5 && strncmp(p, "{mac}", 5) == 0) ||
		    (allow_name && n == 6 && strncmp(p, "{name}", 6) == 0))
			continue;
		char *ph = xstrndup(p, MIN(n, (size_t)40));
		char *msg = xasprintf("unknown placeholder '%s'; use %s{serial} or {mac}", ph,
				      allow_name ? "{name}, " : "");
		free(ph);
		return msg;
	}
	return NULL;
}

/* scheme://host...: true for the given schemes, with a non-empty host. */
static bool url_with_scheme(const char *v, const char *const *schemes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(schemes[i]);
		if (strncasecmp(v, schemes[i], l) == 0 && strncmp(v + l, "://", 3) == 0)
			return v[l + 3] != '\0' && v[l + 3] != '/';
	}
	return false;
}

static bool url_has_password(const char *v)
{
	const char *a = strstr(v, "://");
	if (!a)
		return false;
	a += 3;
	const char *end = a + strcspn(a, "/?#");
	const char *at = memrchr(a, '@', (size_t)(end - a));
	return at && memchr(a, ':', (size_t)(at - a));
}

/* Check one value; on a bad value record the error and return false. */
static bool check_value(struct config *cfg, unsigned line, int k, const char *v)
{
	const struct key *key = &keys[k];
	CLEANUP_FREE char *sv = shown(v);
	CLEANUP_FREE char *msg = NULL;
	bool b;
	enum config_after a;
	uint64_t u;
	switch (key->type) {
	case K_OUTPUT: {
		static const char *const schemes[] = { "http", "https", "s3", "sftp", "smb", "nfs" };
		if (strstr(v, "://")) {
			if (!url_with_scheme(v, schemes, ARRAY_SIZE(schemes))) {
				add_error(cfg, line, "output '%s' is not a URL coldclone can write to; use https://, http://, s3://, sftp://, smb:// or nfs:// with a host", sv);
				return false;
			}
			if (url_has_password(v)) {
				add_error(cfg, line, "output holds a password; keep passwords out of the config: put it in a file and set password-file = FILE");
				return false;
			}
		} else if (v[0] != '/') {
			add_error(cfg, line, "output '%s' is a relative path; use an absolute folder (/media/target/images) or a URL", sv);
			return false;
		}
		if ((msg = check_placeholders(v, true))) {
			add_error(cfg, line, "output: %s", msg);
			return false;
		}
		return true;
	}
	case K_FORMAT:
		if (fmt_by_name(v))
			return true;
		add_error(cfg, line, "unknown format '%s'; use %s", sv, key->hint);
		return false;
	case K_DISKS: {
		CLEANUP_FREE char *copy = xstrdup(v);
		size_t words = 0;
		bool all = false;
		for (char *save = NULL, *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
			words++;
			if (strcasecmp(w, "all") == 0) {
				all = true;
				continue;
			}
			const char *d = strncmp(w, "/dev/", 5) == 0 ? w + 5 : w;
			bool ok;
			if (strncasecmp(w, "serial:", 7) == 0) {
				ok = w[7] != '\0';
			} else {
				ok = *d != '\0' && strlen(d) < 64;
				for (const char *p = d; *p && ok; p++)
					ok = isalnum((unsigned char)*p) || *p == '!' || *p == '_' || *p == '-' || *p == '.';
			}
			if (!ok) {
				CLEANUP_FREE char *sw = shown(w);
				add_error(cfg, line, "disks: '%s' is not a disk; use %s", sw, key->hint);
				return false;
			}
		}
		if (all && words > 1) {
			add_error(cfg, line, "disks: 'all' cannot be combined with other disks; write 'all' alone or list the disks");
			return false;
		}
		return true;
	}
	case K_NAME:
		if ((msg = check_placeholders(v, false))) {
			add_error(cfg, line, "name: %s", msg);
			return false;
		}
		if (strlen(v) > 64) {
			add_error(cfg, line, "name is %zu characters long; keep it to 64", strlen(v));
			return false;
		}
		for (const char *p = v; *p; p++) {
			if (*p == '{') {
				p = strchr(p, '}');
				continue;
			}
			if (!name_char(*p)) {
				add_error(cfg, line, "name '%s' has a '%c' that cannot go in file names and URLs; use letters, digits, '.', '_', '-', {serial} or {mac}",
					  sv, isprint((unsigned char)*p) ? *p : '?');
				return false;
			}
		}
		return true;
	case K_AFTER:
		if (parse_after(v, &a))
			return true;
		add_error(cfg, line, "after takes poweroff, reboot or stay, not '%s'", sv);
		return false;
	case K_URL: {
		static const char *const schemes[] = { "http", "https" };
		if (url_with_scheme(v, schemes, ARRAY_SIZE(schemes)))
			return true;
		add_error(cfg, line, "%s '%s' is not an http:// or https:// URL; use %s", key->name, sv, key->hint);
		return false;
	}
	case K_BOOL:
		if (parse_bool(v, &b))
			return true;
		add_error(cfg, line, "%s takes yes or no, not '%s'", key->name, sv);
		return false;
	case K_UINT:
		if (parse_u64(v, &u) == 0 && u >= key->min && u <= key->max && isdigit((unsigned char)v[strlen(v) - 1]))
			return true;
		add_error(cfg, line, "%s takes %s, not '%s'", key->name, key->hint, sv);
		return false;
	case K_PATH:
		if (strlen(v) < 4096)
			return true;
		add_error(cfg, line, "%s is longer than a path can be", key->name);
		return false;
	case K_CHOICE:
		for (const char *const *c = key->choices; *c; c++)
			if (strcmp(v, *c) == 0)
				return true;
		add_error(cfg, line, "%s takes %s, not '%s'", key->name, key->hint, sv);
		return false;
	case K_WORD:
		for (const char *p = v; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
				add_error(cfg, line, "%s '%s' is not %s", key->name, sv, key->hint);
				return false;
			}
		return true;
	case K_FINGERPRINT:
		if (strncmp(v, "SHA256:", 7) == 0 && v[7]) {
			bool ok = true;
			for (const char *p = v + 7; *p && ok; p++)
				ok = isalnum((unsigned char)*p) || *p == '+' || *p == '/' || *p == '=';
			if (ok)
				return true;
		}
		add_error(cfg, line, "ssh-fingerprint '%s' is not %s", sv, key->hint);
		return false;
	}
	return false;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* Cut a trailing "  # comment" or "  ; comment" (a '#' or ';' after a blank). */
static void cut_comment(char *s)
{
	for (char *p = s; *p; p++)
		if ((*p == '#' || *p == ';') && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
}

static const char *section_label(const struct section *s, char *buf, size_t n)
{
	if (s->kind == SEC_DEFAULTS)
		snprintf(buf, n, "defaults");
	else
		snprintf(buf, n, "%s %s", s->kind == SEC_MACHINE ? "machine" : "mac", s->arg);
	return buf;
}

static struct section *new_section(struct config *cfg, enum section_kind kind, const char *arg, unsigned line)
{
	if (cfg->nsecs == cfg->cap) {
		cfg->cap = cfg->cap ? cfg->cap * 2 : 8;
		cfg->secs = xrealloc(cfg->secs, cfg->cap * sizeof *cfg->secs);
	}
	struct section *s = &cfg->secs[cfg->nsecs++];
	*s = (struct section){ .kind = kind, .arg = arg ? xstrdup(arg) : NULL, .line = line };
	return s;
}

/* "[...]" header; returns the section keys now go to, or NULL (keys then only checked). */
static struct section *parse_header(struct config *cfg, unsigned line, char *text, bool *defaults_seen)
{
	char *close = strchr(text, ']');
	if (!close) {
		add_error(cfg, line, "section header without a closing ']'; write [defaults], [machine SERIAL] or [mac MAC]");
		return NULL;
	}
	char *rest = close + 1;
	cut_comment(rest);
	if (*trim(rest)) {
		add_error(cfg, line, "text after the section header's ']'; put keys on their own lines");
		return NULL;
	}
	*close = '\0';
	char *inner = trim(text + 1);
	char *arg = inner + strcspn(inner, " \t");
	if (*arg)
		*arg++ = '\0';
	arg = trim(arg);
	size_t alen = strlen(arg);
	if (alen >= 2 && arg[0] == '"' && arg[alen - 1] == '"') {
		arg[alen - 1] = '\0';
		arg++;
	}
	CLEANUP_FREE char *skind = shown(inner);
	CLEANUP_FREE char *sarg = shown(arg);
	char label[128];
	if (strcasecmp(inner, "defaults") == 0) {
		if (*arg) {
			add_error(cfg, line, "[defaults] takes nothing after its name; remove '%s'", sarg);
			return NULL;
		}
		if (*defaults_seen) {
			add_error(cfg, line, "duplicate section [defaults] (first on line %u); merge them into one", cfg->secs[0].line);
			return NULL;
		}
		*defaults_seen = true;
		cfg->secs[0].line = line;
		return &cfg->secs[0];
	}
	enum section_kind kind;
	char mac[18];
	if (strcasecmp(inner, "machine") == 0) {
		kind = SEC_MACHINE;
		if (!*arg) {
			add_error(cfg, line, "[machine] needs the machine's DMI serial: [machine SERIAL] (coldclone list shows it)");
			return NULL;
		}
		if (strlen(arg) > 128) {
			add_error(cfg, line, "serial in [machine ...] is longer than any DMI serial (128 characters)");
			return NULL;
		}
	} else if (strcasecmp(inner, "mac") == 0) {
		kind = SEC_MAC;
		if (config_normalize_mac(arg, mac) < 0) {
			add_error(cfg, line, "bad MAC '%s' in [mac ...]; write six hex pairs such as 52:54:00:12:34:56", sarg);
			return NULL;
		}
		arg = mac;
	} else {
		add_error(cfg, line, "unknown section [%s%s%s]; use [defaults], [machine SERIAL] or [mac MAC]", skind,
			  *arg ? " " : "", sarg);
		return NULL;
	}
	for (size_t i = 1; i < cfg->nsecs; i++)
		if (cfg->secs[i].kind == kind && strcasecmp(cfg->secs[i].arg, arg) == 0) {
			add_error(cfg, line, "duplicate section [%s] (first on line %u); merge them into one",
				  section_label(&cfg->secs[i], label, sizeof label), cfg->secs[i].line);
			return NULL;
		}
	if (cfg->nsecs >= CONFIG_MAX_SECTIONS) {
		add_error(cfg, line, "more than %u sections; split the file", CONFIG_MAX_SECTIONS);
		return NULL;
	}
	return new_section(cfg, kind, arg, line);
}

/* Unquote "..." in place; the rest of the line may only be a comment. */
static bool parse_value(struct config *cfg, unsigned line, char *v, char **out)
{
	v += strspn(v, " \t");
	if (*v != '"') {
		cut_comment(v);
		*out = trim(v);
		return true;
	}
	char *w = v;
	for (char *p = v + 1; *p; p++) {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
			*w++ = *++p;
		} else if (*p == '"') {
			char *rest = p + 1;
			*w = '\0';
			rest = trim(rest);
			if (*rest && *rest != '#' && *rest != ';') {
				add_error(cfg, line, "text after the closing quote; put a comment after '#' or remove it");
				return false;
			}
			*out = v;
			return true;
		} else {
			*w++ = *p;
		}
	}
	add_error(cfg, line, "value starts with '\"' but has no closing quote; close it");
	return false;
}

static void parse_line(struct config *cfg, unsigned line, char *text, struct section **cur, bool *defaults_seen)
{
	char *s = trim(text);
	if (!*s || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		*cur = parse_header(cfg, line, s, defaults_seen);
		cfg->bad_header |= !*cur;
		return;
	}
	char *eq = strchr(s, '=');
	if (!eq) {
		CLEANUP_FREE char *ss = shown(s);
		add_error(cfg, line, "'%s' is not 'key = value' or a [section]; add the '=' or comment it out with '#'", ss);
		return;
	}
	*eq = '\0';
	char *name = trim(s);
	CLEANUP_FREE char *sname = shown(name);
	if (!*name) {
		add_error(cfg, line, "'=' without a key name before it; write key = value");
		return;
	}
	int k = key_lookup(name);
	if (k < 0) {
		if (strcasecmp(name, "password") == 0 || strcasecmp(name, "pass") == 0) {
			add_error(cfg, line, "unknown key '%s': passwords do not go in the config file; put it in a file and set password-file = FILE", sname);
			return;
		}
		const char *hint = key_suggest(name);
		if (hint)
			add_error(cfg, line, "unknown key '%s'; did you mean '%s'?", sname, hint);
		else
			add_error(cfg, line, "unknown key '%s'; keys are output, format, disks, name, after, report, verify, force, all-blocks, "
				  "max-unreadable, workers, compress-level, vm-cpus, vm-memory, vm-firmware, vm-bus, vm-nics, ca-file, insecure, retries, timeout, password-file, s3-endpoint, "
				  "s3-region, ssh-fingerprint, known-hosts, ssh-key", sname);
		return;
	}
	char *v;
	if (!parse_value(cfg, line, eq + 1, &v))
		return;
	if (!*v) {
		add_error(cfg, line, "%s has no value; give %s, or remove the line", keys[k].name, keys[k].hint);
		return;
	}
	struct section *sec = *cur;
	if (sec && sec->lines[k]) {
		add_error(cfg, line, "duplicate key '%s' (first set on line %u); keep one", keys[k].name, sec->lines[k]);
		return;
	}
	if (sec)
		sec->lines[k] = line;  /* present, even if its value is bad: no "missing" error too */
	if (!check_value(cfg, line, k, v) || !sec)
		return;
	sec->values[k] = xstrdup(v);
	sec->lines[k] = line;
}

static int cmp_error(const void *a, const void *b)
{
	const struct error_entry *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x < y ? -1 : x > y;
}

static struct config *config_new(const char *name)
{
	struct config *cfg = xcalloc(1, sizeof *cfg);
	cfg->name = xstrdup(name ? name : "<config>");
	if (name) {
		const char *slash = strrchr(name, '/');
		CLEANUP_FREE char *dir = slash ? xstrndup(name, slash == name ? 1 : (size_t)(slash - name)) : xstrdup(".");
		char *abs = realpath(dir, NULL);  /* the job may run from another folder */
		cfg->dir = abs ? abs : xstrdup(dir);
	}
	new_section(cfg, SEC_DEFAULTS, NULL, 0);
	return cfg;
}

static void parse_text(struct config *cfg, const char *buf, size_t len)
{
	if (len > CONFIG_MAX_BYTES) {
		add_error(cfg, 0, "larger than %u KiB; a job file is a few hundred lines: is this the right file?", CONFIG_MAX_BYTES / 1024);
		return;
	}
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {  /* UTF-8 BOM from Windows editors */
		buf += 3;
		len -= 3;
	}
	struct section *cur = &cfg->secs[0];
	bool defaults_seen = false;
	unsigned line = 0;
	char text[CONFIG_MAX_LINE + 1];
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		line++;
		const char *start = buf + pos;
		pos += n + (nl ? 1 : 0);
		if (n && start[n - 1] == '\r')
			n--;
		if (memchr(start, '\0', n)) {
			add_error(cfg, line, "NUL byte in the line; the file is not text: check it was saved as plain text");
			continue;
		}
		if (n > CONFIG_MAX_LINE) {
			add_error(cfg, line, "line longer than %u characters; shorten it", CONFIG_MAX_LINE);
			continue;
		}
		memcpy(text, start, n);
		text[n] = '\0';
		parse_line(cfg, line, text, &cur, &defaults_seen);
	}
	/* Every machine needs somewhere to write. */
	const struct section *d = &cfg->secs[0];
	if (!d->lines[KEY_OUTPUT] && !cfg->bad_header) {
		if (cfg->nsecs == 1)
			add_error(cfg, d->line ? d->line : 1, "missing required key 'output'; add output = FOLDER or URL to [defaults]");
		char label[160];
		for (size_t i = 1; i < cfg->nsecs; i++)
			if (!cfg->secs[i].lines[KEY_OUTPUT])
				add_error(cfg, cfg->secs[i].line, "missing required key 'output' in [%s] and none in [defaults]; "
					  "add output = FOLDER or URL to one of them", section_label(&cfg->secs[i], label, sizeof label));
	}
	if (cfg->nerrs)
		qsort(cfg->errs, cfg->nerrs, sizeof *cfg->errs, cmp_error);
	if (cfg->too_many) {
		cfg->errs = xrealloc(cfg->errs, (cfg->nerrs + 1) * sizeof *cfg->errs);
		cfg->errs[cfg->nerrs++] = (struct error_entry){
			.line = UINT32_MAX, .text = xasprintf("%s: more than %u errors; fix these first", cfg->name, CONFIG_MAX_ERRORS) };
	}
}

struct config *config_parse_buffer(const char *name, const char *buf, size_t len)
{
	struct config *cfg = config_new(name);
	if (!name) {
		free(cfg->dir);
		cfg->dir = NULL;
	}
	parse_text(cfg, buf, len);
	return cfg;
}

struct config *config_parse_file(const char *path)
{
	struct config *cfg = config_new(path);
	CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		add_error(cfg, 0, "cannot open: %s; check the path", strerror(errno));
		return cfg;
	}
	if (!S_ISREG(st.st_mode)) {
		add_error(cfg, 0, "not a regular file; give the path of the config file");
		return cfg;
	}
	size_t cap = CONFIG_MAX_BYTES + 1, len = 0;
	CLEANUP_FREE char *buf = xmalloc(cap);
	for (;;) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			add_error(cfg, 0, "cannot read: %s", strerror(errno));
			return cfg;
		}
		if (r == 0 || (len += (size_t)r) == cap)
			break;
	}
	parse_text(cfg, buf, len);
	return cfg;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nsecs; i++) {
		free(cfg->secs[i].arg);
		for (int k = 0; k < NKEYS; k++)
			free(cfg->secs[i].values[k]);
	}
	for (size_t i = 0; i < cfg->nerrs; i++)
		free(cfg->errs[i].text);
	free(cfg->errs);
	free(cfg->secs);
	free(cfg->name);
	free(cfg->dir);
	free(cfg);
}

size_t config_nerrors(const struct config *cfg) { return cfg->nerrs; }

const char *config_error(const struct config *cfg, size_t i) { return i < cfg->nerrs ? cfg->errs[i].text : NULL; }

/* Serial or MAC as it goes into names and paths: [A-Za-z0-9._-], others become '_'. */
static char *safe_word(const char *s)
{
	char *out = xstrndup(s, 64);
	for (char *p = out; *p; p++)
		if (!name_char(*p))
			*p = *p == ':' ? '-' : '_';
	return out;
}

static char *expand(const char *tmpl, const char *name, const char *serial, const char *mac, const char *key, bool *ok)
{
	size_t cap = strlen(tmpl) + 1, n = 0;
	char *out = xmalloc(cap);
	for (const char *p = tmpl; *p;) {
		const char *val = NULL, *ph = NULL;
		size_t skip = 1;
		if (strncmp(p, "{name}", 6) == 0)
			ph = "{name}", val = name, skip = 6;
		else if (strncmp(p, "{serial}", 8) == 0)
			ph = "{serial}", val = serial, skip = 8;
		else if (strncmp(p, "{mac}", 5) == 0)
			ph = "{mac}", val = mac, skip = 5;
		if (!ph) {
			out[n++] = *p++;
			continue;
		}
		if (!val) {
			error("%s uses %s but this machine has no %s; set %s in this machine's section",
			      key, ph, strcmp(ph, "{mac}") == 0 ? "network card" : strcmp(ph, "{name}") == 0 ? "name" : "DMI serial",
			      strcmp(key, "name") == 0 ? "a fixed name" : "name");
			*ok = false;
			free(out);
			return NULL;
		}
		size_t l = strlen(val);
		cap += l;
		out = xrealloc(out, cap);
		memcpy(out + n, val, l);
		n += l;
		p += skip;
	}
	out[n] = '\0';
	return out;
}

struct config_job *config_for_machine(const struct config *cfg, const char *serial,
				      const char *const *macs, size_t nmacs)
{
	const struct section *chosen = &cfg->secs[0];
	const char *matched_mac = NULL;
	char mac[18];
	if (serial && *serial)
		for (size_t i = 1; i < cfg->nsecs && chosen->kind == SEC_DEFAULTS; i++)
			if (cfg->secs[i].kind == SEC_MACHINE && strcasecmp(cfg->secs[i].arg, serial) == 0)
				chosen = &cfg->secs[i];
	for (size_t i = 1; i < cfg->nsecs && chosen->kind == SEC_DEFAULTS; i++) {
		if (cfg->secs[i].kind != SEC_MAC)
			continue;
		for (size_t m = 0; m < nmacs; m++)
			if (macs[m] && config_normalize_mac(macs[m], mac) == 0 && strcmp(mac, cfg->secs[i].arg) == 0) {
				chosen = &cfg->secs[i];
				matched_mac = cfg->secs[i].arg;
				break;
			}
	}
	if (!matched_mac)
		for (size_t m = 0; m < nmacs && !matched_mac; m++)
			if (macs[m] && config_normalize_mac(macs[m], mac) == 0)
				matched_mac = mac;

	struct config_job *job = xcalloc(1, sizeof *job);
	char label[160];
	job->section = xstrdup(section_label(chosen, label, sizeof label));
	job->section_line = chosen->line;
	for (int k = 0; k < NKEYS; k++) {
		const struct section *from = chosen->values[k] ? chosen : &cfg->secs[0];
		if (!from->values[k])
			continue;
		job->lines[k] = from->lines[k];
		const char *v = from->values[k];
		if (keys[k].type == K_PATH && v[0] != '/' && cfg->dir)
			job->values[k] = xasprintf("%s/%s", cfg->dir, v);
		else
			job->values[k] = xstrdup(v);
	}
	if (!job->values[KEY_OUTPUT]) {
		error("no section of %s is for this machine (serial %s%s%s) and [defaults] has no output; "
		      "add output = FOLDER or URL to [defaults] or a section for this machine",
		      cfg->name, serial && *serial ? serial : "unknown", matched_mac ? ", MAC " : "", matched_mac ? matched_mac : "");
		config_job_free(job);
		return NULL;
	}
	CLEANUP_FREE char *sserial = serial && *serial ? safe_word(serial) : NULL;
	CLEANUP_FREE char *smac = matched_mac ? safe_word(matched_mac) : NULL;
	bool ok = true;
	if (job->values[KEY_NAME]) {
		char *n = expand(job->values[KEY_NAME], NULL, sserial, smac, "name", &ok);
		free(job->values[KEY_NAME]);
		job->values[KEY_NAME] = n;
	} else if (sserial || smac) {
		/* Unnamed machines are named after their serial, else their first MAC. */
		job->values[KEY_NAME] = sserial ? xstrdup(sserial) : xasprintf("mac-%s", smac);
	}
	if (ok) {
		char *o = expand(job->values[KEY_OUTPUT], job->values[KEY_NAME], sserial, smac, "output", &ok);
		free(job->values[KEY_OUTPUT]);
		job->values[KEY_OUTPUT] = o;
	}
	if (!ok) {
		config_job_free(job);
		return NULL;
	}

	char **vals = job->values;
	bool b;
	uint64_t u;
	job->output = vals[KEY_OUTPUT];
	job->format = vals[KEY_FORMAT];
	job->name = vals[KEY_NAME];
	job->report = vals[KEY_REPORT];
	job->all_disks = true;
	if (vals[KEY_DISKS] && strcasecmp(vals[KEY_DISKS], "all") != 0) {
		job->all_disks = false;
		CLEANUP_FREE char *copy = xstrdup(vals[KEY_DISKS]);
		for (char *save = NULL, *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
			job->disks = xrealloc(job->disks, (job->ndisks + 1) * sizeof *job->disks);
			job->disks[job->ndisks++] = xstrdup(w);
		}
	}
	if (vals[KEY_AFTER])
		parse_after(vals[KEY_AFTER], &job->after);
	job->verify = vals[KEY_VERIFY] && parse_bool(vals[KEY_VERIFY], &b) && b;
	job->force = vals[KEY_FORCE] && parse_bool(vals[KEY_FORCE], &b) && b;
	job->all_blocks = vals[KEY_ALL_BLOCKS] && parse_bool(vals[KEY_ALL_BLOCKS], &b) && b;
	job->max_unreadable = vals[KEY_MAX_UNREADABLE] && parse_u64(vals[KEY_MAX_UNREADABLE], &u) == 0 ? u : UINT64_MAX;
	job->workers = vals[KEY_WORKERS] && parse_u64(vals[KEY_WORKERS], &u) == 0 ? (unsigned)u : 0;
	job->compress_level = vals[KEY_COMPRESS_LEVEL] && parse_u64(vals[KEY_COMPRESS_LEVEL], &u) == 0 ? (int)u : 0;
	job->vm.cpus = vals[KEY_VM_CPUS] && parse_u64(vals[KEY_VM_CPUS], &u) == 0 ? (unsigned)u : 0;
	job->vm.memory_mib = vals[KEY_VM_MEMORY] && parse_u64(vals[KEY_VM_MEMORY], &u) == 0 ? u : 0;
	job->vm.nics = vals[KEY_VM_NICS] && parse_u64(vals[KEY_VM_NICS], &u) == 0 ? (unsigned)u : 0;
	job->vm.firmware = vals[KEY_VM_FIRMWARE];
	job->vm.bus = vals[KEY_VM_BUS];
	job->dest = (struct dest_options){
		.force = job->force,
		.ca_file = vals[KEY_CA_FILE],
		.insecure = vals[KEY_INSECURE] && parse_bool(vals[KEY_INSECURE], &b) && b,
		.s3_endpoint = vals[KEY_S3_ENDPOINT],
		.s3_region = vals[KEY_S3_REGION],
		.ssh_fingerprint = vals[KEY_SSH_FINGERPRINT],
		.known_hosts = vals[KEY_KNOWN_HOSTS],
		.ssh_key = vals[KEY_SSH_KEY],
		.password_file = vals[KEY_PASSWORD_FILE],
		.retries = vals[KEY_RETRIES] && parse_u64(vals[KEY_RETRIES], &u) == 0 ? (unsigned)u : 8,
		.timeout = vals[KEY_TIMEOUT] && parse_u64(vals[KEY_TIMEOUT], &u) == 0 ? (unsigned)u : 60,
	};
	return job;
}

void config_job_free(struct config_job *job)
{
	if (!job)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(job->values); i++)
		free(job->values[i]);
	for (size_t i = 0; i < job->ndisks; i++)
		free(job->disks[i]);
	free(job->disks);
	free(job->section);
	free(job);
}

void config_describe(const struct config *cfg, FILE *f)
{
	const struct section *d = &cfg->secs[0];
	char label[160];
	fprintf(f, "%s: valid, %zu machine section%s\n", cfg->name, cfg->nsecs - 1, cfg->nsecs == 2 ? "" : "s");
	fprintf(f, "[defaults]%s", d->line ? "" : "\n");
	if (d->line)
		fprintf(f, "    (line %u)\n", d->line);
	for (int k = 0; k < NKEYS; k++)
		if (d->values[k])
			fprintf(f, "%-15s = %s    (line %u)\n", keys[k].name, d->values[k], d->lines[k]);
	for (size_t i = 1; i < cfg->nsecs; i++) {
		unsigned n = 0;
		for (int k = 0; k < NKEYS; k++)
			n += cfg->secs[i].values[k] != NULL;
		fprintf(f, "[%s]    (line %u, %u key%s)\n", section_label(&cfg->secs[i], label, sizeof label),
			cfg->secs[i].line, n, n == 1 ? "" : "s");
	}
}

void config_job_print(const struct config_job *job, FILE *f)
{
	if (job->section_line)
		fprintf(f, "[%s]    (line %u)\n", job->section, job->section_line);
	else
		fprintf(f, "[%s]\n", job->section);
	for (int k = 0; k < NKEYS; k++) {
		if (!job->values[k])
			continue;
		if (job->lines[k])
			fprintf(f, "%-15s = %s    (line %u)\n", keys[k].name, job->values[k], job->lines[k]);
		else
			fprintf(f, "%-15s = %s\n", keys[k].name, job->values[k]);
	}
}
