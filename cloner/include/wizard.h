/* wizard.h - what the parts of `coldclone wizard` share: line-based questions on the
 * console (src/wizard_ask.c: plain prompts, no cursor addressing, so a serial terminal
 * works; Enter takes the [suggested] answer), the machine summary screen, the answers, and
 * the destination step (src/wizard_dest.c). The flow itself is src/cmd_wizard.c. */
#ifndef COLDCLONE_WIZARD_H
#define COLDCLONE_WIZARD_H

#include <stdbool.h>
#include <stddef.h>

#include "dest.h"
#include "inventory.h"

#define STICK "/media/coldclone"        /* the COLDCLONE partition (rootfs/init) */
#define TARGET "/media/target"          /* coldclone.target=LABEL (rootfs/init) */
#define MAX_DISKS 32

/* Why the wizard has to stop: set by the first question that gets no answer. */
enum wizard_stop { WIZARD_GO = 0, WIZARD_EOF, WIZARD_INTERRUPTED };
extern enum wizard_stop wizard_stop;

/* The wizard's transcript (answers, screens, the clone's messages): NULL until opened. */
void wizard_log_open(const char *path);
void wizard_log_close(void);
const char *wizard_log_path(void);
/* printf to stdout and the transcript. */
void wizard_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ask question; suggested (may be NULL or "") is shown in [brackets] and taken on Enter.
 * The answer, trimmed, goes to out. Empty answers without a suggestion are asked again.
 * Returns 0, or -1 when wizard_stop is set (end of input, Ctrl-C). */
int wizard_ask(const char *question, const char *suggested, char *out, size_t outsz);
/* Yes/no with a default; returns 1 yes, 0 no, -1 stop. */
int wizard_yes(const char *question, bool suggested);
/* A secret, not echoed and not logged; empty allowed. Returns 0 or -1 (stop). */
int wizard_secret(const char *question, char *out, size_t outsz);
/* A heading line for each screen. */
void wizard_heading(const char *title);

/* A source disk as the summary showed it. */
struct wizard_disk {
	char path[64];           /* /dev/sda */
	char name[32];           /* sda */
	char in_use[128];        /* mount point of a filesystem on it ("" when none): left out */
	char hostname[256];      /* the first OS host name on its partitions (oshost.h), or "" */
	char os[16];             /* "windows" or "linux" with hostname */
};

/* The summary screen: this machine, its disks (as `coldclone list` computes them), NICs
 * with link and address, missing drivers. Fills disks (at most max); returns the count. */
size_t wizard_summary(const struct inventory *inv, struct wizard_disk *disks, size_t max);

/* The answers so far (cmd_wizard.c). */
struct config_job;
struct wizard {
	struct inventory inv;
	struct wizard_disk disks[MAX_DISKS];
	size_t ndisks;
	bool pick[MAX_DISKS];       /* the chosen disks */
	char output[1024];          /* folder or URL as typed; a password in it is never shown */
	char format[16];
	char name[72];
	char dmi_name[72];          /* the default name: OS host name, else DMI serial, else from the MAC */
	bool password_set;          /* COLDCLONE_PASSWORD / AWS_* set by the wizard */
	struct dest_options dest;
	char s3_endpoint[512], s3_region[64], ssh_fingerprint[128], ssh_key[512];
	struct config_job *saved;   /* the stick's job file: its answers are the suggestions */
};

/* Step 3 (wizard_dest.c): ask for the destination and what it needs, test it, ask again
 * until the test passes. 0, or -1 when wizard_stop is set. */
int wizard_ask_destination(struct wizard *w);
bool wizard_is_mountpoint(const char *dir);

#endif
