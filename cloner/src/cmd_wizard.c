/* cmd_wizard.c - `coldclone wizard`: the interactive job of the default boot entry. It
 * shows the machine, asks which disks, where to (with a connection test through the real
 * destination code), which format and name, confirms, runs the whole-machine clone
 * (machine.c) and ends with a result screen; the answers can be saved as a job file for
 * the next machine. Questions and the summary are in wizard_ask.c, the destination step in
 * wizard_dest.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clonejob.h"
#include "commands.h"
#include "config.h"
#include "machine.h"
#include "net.h"
#include "util.h"
#include "wizard.h"

/* ---- 2. disks ------------------------------------------------------------------------- */

static bool all_picked(const struct wizard *w)
{
	for (size_t i = 0; i < w->ndisks; i++)
		if (!w->pick[i])
			return false;
	return true;
}

static void picked_text(const struct wizard *w, char *out, size_t outsz)
{
	size_t len = 0;
	*out = '\0';
	if (all_picked(w)) {
		snprintf(out, outsz, "all");
		return;
	}
	for (size_t i = 0; i < w->ndisks; i++)
		if (w->pick[i] && len < outsz)
			len += (size_t)snprintf(out + len, outsz - len, "%s%zu", len ? " " : "", i + 1);
}

/* "all", "1 3", "sda sdb", "/dev/sda": 0 with pick filled, or -1 with the hint printed. */
static int parse_disks(struct wizard *w, char *answer, bool pick[MAX_DISKS])
{
	memset(pick, 0, MAX_DISKS * sizeof *pick);
	if (strcasecmp(answer, "all") == 0) {
		for (size_t i = 0; i < w->ndisks; i++)
			pick[i] = !*w->disks[i].in_use;
		return 0;
	}
	size_t n = 0;
	for (char *save = NULL, *word = strtok_r(answer, " ,\t", &save); word; word = strtok_r(NULL, " ,\t", &save)) {
		char *end;
		unsigned long k = strtoul(word, &end, 10);
		size_t i = w->ndisks;
		if (*end == '\0' && k >= 1 && k <= w->ndisks)
			i = k - 1;
		for (size_t j = 0; i == w->ndisks && j < w->ndisks; j++)
			if (strcmp(word, w->disks[j].name) == 0 || strcmp(word, w->disks[j].path) == 0)
				i = j;
		if (i == w->ndisks) {
			wizard_say("  '%s' is not a disk here: answer all, numbers from the list (1 3) or names (sda sdb)\n",
				   word);
			return -1;
		}
		if (*w->disks[i].in_use) {
			wizard_say("  %s holds %s, which is mounted: it cannot be a source; choose other disks\n",
				   w->disks[i].path, w->disks[i].in_use);
			return -1;
		}
		pick[i] = true;
		n++;
	}
	return n ? 0 : -1;
}

static int ask_disks(struct wizard *w)
{
	char suggested[256], answer[256];
	bool pick[MAX_DISKS];
	wizard_heading("2. Disks to clone");
	picked_text(w, suggested, sizeof suggested);
	for (;;) {
		if (wizard_ask("Which disks (all, or numbers like 1 3, or names like sda sdb)", suggested, answer,
			       sizeof answer) < 0)
			return -1;
		if (parse_disks(w, answer, pick) == 0)
			break;
	}
	memcpy(w->pick, pick, sizeof pick);
	return 0;
}

/* ---- 4. format, 5. name ----------------------------------------------------------------- */

static const struct {
	const char *hypervisor, *format;
} formats[] = {
	{ "vSphere / ESXi", "vmdk-stream" }, { "Hyper-V", "vhdx" }, { "KVM / OpenStack", "qcow2" },
	{ "Azure", "vhd-fixed" },           { "raw image", "raw" },
};

static const char *suggest_format(const struct wizard *w, const char **why)
{
	CLEANUP_FREE char *lower = xstrdup(w->output);
	for (char *p = lower; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (strstr(lower, "dsname=") || strstr(lower, "dcpath="))
		return *why = "for a vSphere datastore URL", "vmdk-stream";
	if (strncmp(lower, "s3://", 5) == 0 || strstr(lower, "openstack"))
		return *why = "for an S3 or OpenStack destination", "qcow2";
	if (strncmp(lower, "smb://", 6) == 0 || strncmp(lower, "cifs://", 7) == 0 || strstr(lower, "hyper"))
		return *why = "for a Windows (SMB) share", "vhdx";
	if (strstr(lower, "azure"))
		return *why = "for an Azure destination", "vhd-fixed";
	if (w->format[0])
		return *why = "your earlier answer", w->format;
	if (w->saved && w->saved->format)
		return *why = "from the saved job file", w->saved->format;
	return *why = "the default", "vmdk-stream";
}

static int ask_format(struct wizard *w)
{
	const char *why, *fmt = suggest_format(w, &why);
	char suggested[8] = "", answer[32];
	wizard_heading("4. Image format");
	for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
		wizard_say("  %zu  %-16s %s\n", i + 1, formats[i].hypervisor, formats[i].format);
		if (strcmp(formats[i].format, fmt) == 0)
			snprintf(suggested, sizeof suggested, "%zu", i + 1);
	}
	wizard_say("Suggested: %s (%s)\n", fmt, why);
	for (;;) {
		if (wizard_ask("Format (a number or a name)", *suggested ? suggested : fmt, answer, sizeof answer) < 0)
			return -1;
		char *end;
		unsigned long k = strtoul(answer, &end, 10);
		const struct fmt_ops *f = *end == '\0' && k >= 1 && k <= ARRAY_SIZE(formats)
						  ? fmt_by_name(formats[k - 1].format) : fmt_by_name(answer);
		if (f) {
			snprintf(w->format, sizeof w->format, "%s", f->name);
			return 0;
		}
		wizard_say("  answer 1 to %zu, or a format name (raw, qcow2, vmdk-stream, vmdk, vhdx, vhd, vhd-fixed)\n",
			   ARRAY_SIZE(formats));
	}
}

static int ask_name(struct wizard *w)
{
	char answer[sizeof w->name];
	wizard_heading("5. Machine name");
	wizard_say("Images are called NAME-DISK.%s and NAME.machine.json lists them.\n", machine_image_ext(w->format));
	const char *suggested = w->name[0] ? w->name : w->dmi_name;
	if (!w->name[0] && w->inv.os_hostname)
		wizard_say("Suggested: the host name %s gave itself (%s on its disks).\n",
			   strcmp(w->inv.os, "windows") == 0 ? "Windows" : "Linux", w->inv.os_hostname);
	for (;;) {
		if (wizard_ask("Machine name", suggested, answer, sizeof answer) < 0)
			return -1;
		CLEANUP_FREE char *safe = inventory_machine_name(&w->inv, answer);
		if (strcmp(safe, answer) == 0) {
			snprintf(w->name, sizeof w->name, "%s", answer);
			return 0;
		}
		wizard_say("  use letters, digits, '.', '_' and '-' only (at most 64, not starting with '.' or '-'): "
			   "e.g. %s\n", safe);
	}
}

/* ---- 6. confirm, 7. run, 8. result ------------------------------------------------------ */

static int confirm(struct wizard *w)
{
	CLEANUP_FREE char *shown = url_redact(w->output);
	wizard_heading("6. Ready to clone");
	wizard_say("  destination  %s\n  format       %s\n  machine name %s\n  disks:\n", shown, w->format, w->name);
	for (size_t i = 0; i < w->ndisks; i++) {
		if (!w->pick[i])
			continue;
		CLEANUP_FREE char *file = machine_image_file(w->name, w->disks[i].name, w->format);
		wizard_say("    %-12s -> %s\n", w->disks[i].path, file);
	}
	wizard_say("  and %s.machine.json when every disk is done. The source disks are only read.\n", w->name);
	return wizard_yes("Start", true);
}

static int run_clone(struct wizard *w, struct machine_outcome *out)
{
	struct clone_opts o = { .progress = PROGRESS_PLAIN, .max_unreadable = UINT64_MAX, .all = true,
				.output = w->output, .format = w->format, .name = w->name, .dest = w->dest };
	for (size_t i = 0; i < w->ndisks && !all_picked(w); i++)
		if (w->pick[i])
			o.disks[o.ndisks++] = w->disks[i].path;
	wizard_heading("7. Cloning");
	wizard_say("Ctrl-C stops the copy; unfinished images are removed.\n");
	return machine_clone(&o, out);
}

/* One line per disk that was copied: which images are whole even when another failed. */
static void disk_lines(const struct machine_outcome *out)
{
	for (size_t i = 0; i < out->ndisks; i++) {
		const struct clone_summary *d = &out->disks[i];
		const char *base = strrchr(d->source, '/') ? strrchr(d->source, '/') + 1 : d->source;
		bool done = d->result == EXIT_OK || d->result == EXIT_UNREADABLE;
		if (done)
			wizard_say("  %-8s  %-8s  %s (+ .manifest.json)\n", base,
				   d->result == EXIT_OK ? "OK" : "WARNINGS", d->image);
		else
			wizard_say("  %-8s  FAILED    exit %d: %s\n", base, d->result, exit_code_meaning(d->result));
	}
}

static void result_screen(const struct wizard *w, int rc, const struct machine_outcome *out)
{
	bool ok = rc == EXIT_OK || rc == EXIT_UNREADABLE;
	wizard_heading("8. Result");
	wizard_say("  RESULT: %s - %s (exit %d)\n", rc == EXIT_OK ? "OK" : ok ? "OK WITH WARNINGS" : "FAILED",
		   exit_code_meaning(rc), rc);
	disk_lines(out);
	if (ok) {
		CLEANUP_FREE char *file = xasprintf("%s.machine.json", w->name);
		CLEANUP_FREE char *dest = machine_dest_join(w->output, file);
		CLEANUP_FREE char *shown = url_redact(dest);
		wizard_say("  machine   %s (with the VM descriptors beside it)\n", shown);
	} else {
		wizard_say("  No machine manifest was stored: an image without its manifest is not a finished clone.\n"
			   "  %sThe messages above say what went wrong.\n",
			   out->ndisks ? "Disks marked OK are complete images; " : "");
	}
	wizard_say("  log       %s\n", wizard_log_path() ? wizard_log_path() : "(not kept)");
}

/* ---- 9. the answers as a job file ---------------------------------------------------- */

static void put_value(FILE *f, const char *key, const char *v)
{
	size_t n = strlen(v);
	if (!strpbrk(v, "#;\"\\") && n && v[0] != ' ' && v[n - 1] != ' ') {
		fprintf(f, "%s = %s\n", key, v);
		return;
	}
	fprintf(f, "%s = \"", key);
	for (; *v; v++)
		fprintf(f, *v == '"' || *v == '\\' ? "\\%c" : "%c", *v);
	fprintf(f, "\"\n");
}

static bool safe_word(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return false;
	return true;
}

static int write_job(const struct wizard *w, const char *path)
{
	char stamp[32], disks[512] = "";
	utc_timestamp(stamp, sizeof stamp);
	for (size_t i = 0, len = 0; i < w->ndisks && !all_picked(w); i++)
		if (w->pick[i] && len < sizeof disks)
			len += (size_t)snprintf(disks + len, sizeof disks - len, "%s%s", len ? " " : "", w->disks[i].name);
	CLEANUP_FREE char *output = url_redact(w->output);
	FILE *f = fopen(path, "w");
	if (!f)
		return error("create '%s': %m", path);
	fprintf(f, "# coldclone job file, saved by 'coldclone wizard' at %s on machine %s.\n"
		   "# The wizard suggests these answers on the next machine; the unattended boot entry runs\n"
		   "# them as they are. Check it with: coldclone config check coldclone.conf\n"
		   "# No password is kept here: set COLDCLONE_PASSWORD, or add password-file = FILE.\n[defaults]\n",
		stamp, w->name);
	put_value(f, "output", output);
	put_value(f, "format", w->format);
	put_value(f, "disks", *disks ? disks : "all");
	fprintf(f, "after = stay\n");
	if (w->dest.s3_endpoint)
		put_value(f, "s3-endpoint", w->dest.s3_endpoint);
	if (w->dest.s3_region)
		put_value(f, "s3-region", w->dest.s3_region);
	if (w->dest.ssh_fingerprint)
		put_value(f, "ssh-fingerprint", w->dest.ssh_fingerprint);
	if (w->dest.ssh_key)
		put_value(f, "ssh-key", w->dest.ssh_key);
	if (strcmp(w->name, w->dmi_name) == 0 && !w->inv.os_hostname)
		fprintf(f, "# name: each machine's DMI serial (the default)\n");
	else if (safe_word(w->inv.serial))
		fprintf(f, "\n[machine %s]\nname = %s\n", w->inv.serial, w->name);
	else
		fprintf(f, "# name = %s   (this machine has no DMI serial to give it its own section)\n", w->name);
	int r = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : error("write '%s': %m", path);
	return fclose(f) == 0 ? r : error("write '%s': %m", path);
}

static int save_answers(const struct wizard *w, int rc)
{
	bool stick = wizard_is_mountpoint(STICK);
	char path[512];
	snprintf(path, sizeof path, "%s", stick ? STICK "/coldclone.conf" : "/run/coldclone.conf");
	struct stat st;
	bool exists = stat(path, &st) == 0;
	wizard_heading("9. Save the answers");
	if (!stick)
		wizard_say("No COLDCLONE partition is mounted: a job file would stay in RAM unless you copy it.\n");
	CLEANUP_FREE char *q = xasprintf("Save these answers as %s for the next machine%s", path,
					 exists ? " (replaces the one there)" : "");
	int yes = wizard_yes(q, !exists && (rc == EXIT_OK || rc == EXIT_UNREADABLE));
	if (yes <= 0)
		return yes;
	CLEANUP_FREE char *tmp = xasprintf("%s.new", path);
	if (write_job(w, tmp) < 0)
		return 0;
	/* Read back with the parser unattended mode uses: never leave a file it would reject. */
	struct config *cfg = config_parse_file(tmp);
	size_t nerr = config_nerrors(cfg);
	for (size_t i = 0; i < nerr; i++)
		wizard_say("  %s\n", config_error(cfg, i));
	config_free(cfg);
	if (nerr || rename(tmp, path) < 0) {
		if (!nerr)
			error("rename '%s' to '%s': %m", tmp, path);
		unlink(tmp);
		wizard_say("The job file was NOT saved.\n");
		return 0;
	}
	sync();
	wizard_say("Saved and checked: %s\n", path);
	return 0;
}

/* ---- the flow ------------------------------------------------------------------------- */

/* The stick's job file, if any: its answers for this machine become the suggestions. */
static void load_saved(struct wizard *w)
{
	const char *path = STICK "/coldclone.conf";
	struct stat st;
	if (stat(path, &st) < 0)
		return;
	struct config *cfg = config_parse_file(path);
	if (config_nerrors(cfg) == 0) {
		const char *macs[16];
		size_t n = 0;
		for (size_t i = 0; i < w->inv.nnics && n < ARRAY_SIZE(macs); i++)
			if (w->inv.nics[i].mac)
				macs[n++] = w->inv.nics[i].mac;
		w->saved = config_for_machine(cfg, w->inv.serial, macs, n);
	}
	wizard_say("%s %s\n", w->saved ? "Suggestions come from the job file" : "Not used (it has errors):", path);
	config_free(cfg);
	if (!w->saved)
		return;
	if (w->saved->name)
		snprintf(w->name, sizeof w->name, "%s", w->saved->name);
	if (!w->saved->all_disks) {
		char words[512] = "";
		for (size_t i = 0, len = 0; i < w->saved->ndisks && len < sizeof words; i++)
			len += (size_t)snprintf(words + len, sizeof words - len, "%s ", w->saved->disks[i]);
		bool pick[MAX_DISKS];
		if (parse_disks(w, words, pick) == 0)
			memcpy(w->pick, pick, sizeof pick);
	}
}

static void open_log(void)
{
	char stamp[32];
	time_t t = time(NULL);
	strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&t));
	CLEANUP_FREE char *dir = xstrdup(wizard_is_mountpoint(STICK) ? STICK "/reports" : access("/run", W_OK) == 0 ? "/run" : "/tmp");
	mkdir(dir, 0755);
	CLEANUP_FREE char *path = xasprintf("%s/wizard-%s.txt", dir, stamp);
	wizard_log_open(path);
}

static int wizard_run(struct wizard *w)
{
	wizard_say("============================================================\n"
		   " coldclone wizard: copy this machine's disks into VM images\n"
		   " Enter takes the answer in [brackets]. Ctrl-C stops.\n"
		   "============================================================\n");
	if (inventory_read(&w->inv, "") < 0)
		warning("no hardware inventory: /sys is not readable");
	w->ndisks = wizard_summary(&w->inv, w->disks, MAX_DISKS);
	size_t usable = 0;
	for (size_t i = 0; i < w->ndisks; i++) {
		usable += (w->pick[i] = !*w->disks[i].in_use);
		/* The default name: the host name on the first source disk that has one. */
		if (w->pick[i] && *w->disks[i].hostname && !w->inv.os_hostname)
			inventory_set_os_host(&w->inv, w->disks[i].hostname, w->disks[i].os);
	}
	CLEANUP_FREE char *dmi = inventory_machine_name(&w->inv, NULL);
	snprintf(w->dmi_name, sizeof w->dmi_name, "%s", dmi);
	if (usable == 0) {
		error("no disk to clone: check the missing drivers above, then run 'coldclone wizard' again");
		return EXIT_SOURCE;
	}
	load_saved(w);
	for (;;) {
		if (ask_disks(w) < 0 || wizard_ask_destination(w) < 0 || ask_format(w) < 0 || ask_name(w) < 0)
			return -1;
		int go = confirm(w);
		if (go < 0)
			return -1;
		if (go)
			break;
		wizard_say("Then once more from the disks: Enter keeps each answer.\n");
	}
	struct machine_outcome out = { 0 };
	int rc = run_clone(w, &out);
	result_screen(w, rc, &out);
	machine_outcome_free(&out);
	if (rc != EXIT_INTERRUPTED && !interrupted)
		save_answers(w, rc);
	return rc;
}

int cmd_wizard(int argc, char **argv)
{
	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
			return print_help("wizard"), EXIT_OK;
		error("wizard takes no arguments: see 'coldclone help wizard'");
		return EXIT_USAGE;
	}
	struct wizard *w = xcalloc(1, sizeof *w);
	w->dest = (struct dest_options){ .retries = 8, .timeout = 60 };
	open_log();
	int rc = wizard_run(w);
	if (rc < 0) {
		rc = wizard_stop == WIZARD_INTERRUPTED ? EXIT_INTERRUPTED : EXIT_USAGE;
		wizard_say("\n%s: the wizard stops; nothing was copied. Run 'coldclone wizard' to start again.\n",
			   rc == EXIT_INTERRUPTED ? "Interrupted" : "No more input (end of file)");
	} else if (wizard_stop != WIZARD_GO) {
		wizard_say("\nNo more input: the wizard stops.\n");
	}
	if (wizard_log_path())
		wizard_say("The wizard's log: %s\n", wizard_log_path());
	wizard_log_close();
	config_job_free(w->saved);
	inventory_release(&w->inv);
	if (w->password_set) {
		unsetenv("COLDCLONE_PASSWORD");
		unsetenv("AWS_SECRET_ACCESS_KEY");
	}
	free(w);
	return rc;
}
