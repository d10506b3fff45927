/* wizard_dest.c - step 3 of `coldclone wizard` (wizard.h): the destination, what it needs
 * to log in, and the connection test through the real destination code. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "machine.h"
#include "net.h"
#include "util.h"
#include "wizard.h"

#define PROBE_NAME ".coldclone-probe"   /* opened and aborted by the connection test */

bool wizard_is_mountpoint(const char *dir)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[256], mnt[256];
	bool found = false;
	while (f && !found && fscanf(f, "%255s %255s %*[^\n]", dev, mnt) == 2)
		found = strcmp(mnt, dir) == 0;
	if (f)
		fclose(f);
	return found;
}

/* ---- 3. destination ------------------------------------------------------------------- */

static int set_secret(struct wizard *w, const char *env, const char *question)
{
	char secret[512];
	if (wizard_secret(question, secret, sizeof secret) < 0)
		return -1;
	setenv(env, secret, 1);
	explicit_bzero(secret, sizeof secret);
	w->password_set = true;
	return 0;
}

/* What the destination needs besides its URL: passwords, S3 keys, SSH host key. */
static int ask_credentials(struct wizard *w)
{
	if (w->password_set) {  /* given for an earlier answer: ask again for this one */
		unsetenv("COLDCLONE_PASSWORD");
		unsetenv("AWS_ACCESS_KEY_ID");
		unsetenv("AWS_SECRET_ACCESS_KEY");
		w->password_set = false;
	}
	if (strncasecmp(w->output, "s3://", 5) == 0) {
		if (wizard_ask("S3 endpoint (Enter: AWS)", w->s3_endpoint[0] ? w->s3_endpoint : "AWS", w->s3_endpoint,
			       sizeof w->s3_endpoint) < 0 ||
		    wizard_ask("S3 region", w->s3_region[0] ? w->s3_region : "us-east-1", w->s3_region, sizeof w->s3_region) < 0)
			return -1;
		w->dest.s3_endpoint = strcasecmp(w->s3_endpoint, "AWS") == 0 ? NULL : w->s3_endpoint;
		w->dest.s3_region = w->s3_region;
		if (getenv("AWS_ACCESS_KEY_ID"))
			return 0;
		char id[256];
		if (wizard_ask("S3 access key ID", NULL, id, sizeof id) < 0)
			return -1;
		setenv("AWS_ACCESS_KEY_ID", id, 1);
		return set_secret(w, "AWS_SECRET_ACCESS_KEY", "S3 secret access key");
	}
	if (!strstr(w->output, "://"))
		return 0;
	struct url u;
	if (url_parse(w->output, &u) < 0)
		return 1;  /* the message says what is wrong */
	bool sftp = strcmp(u.scheme, "sftp") == 0;
	int r = 0;
	if (sftp) {
		if (wizard_ask("SSH host key of the server (SHA256:... as ssh-keygen -lf prints it; Enter: known_hosts)",
			       w->ssh_fingerprint[0] ? w->ssh_fingerprint : "known_hosts", w->ssh_fingerprint,
			       sizeof w->ssh_fingerprint) < 0 ||
		    wizard_ask("SSH private key file (Enter: none, log in with a password)", w->ssh_key[0] ? w->ssh_key : "none",
			       w->ssh_key, sizeof w->ssh_key) < 0)
			r = -1;
		w->dest.ssh_fingerprint = strcmp(w->ssh_fingerprint, "known_hosts") == 0 ? NULL : w->ssh_fingerprint;
		w->dest.ssh_key = strcmp(w->ssh_key, "none") == 0 ? NULL : w->ssh_key;
	}
	if (r == 0 && u.user && !u.password && !getenv("COLDCLONE_PASSWORD") && !(sftp && w->dest.ssh_key)) {
		CLEANUP_FREE char *q = xasprintf("Password for %s", u.display);
		r = set_secret(w, "COLDCLONE_PASSWORD", q);
	}
	url_free(&u);
	return r;
}

/* Open the destination with the real sink code under a probe name, then abort it: the
 * login, the folder and the right to write are checked; nothing stays but folders. */
static bool connection_test(struct wizard *w)
{
	CLEANUP_FREE char *probe = machine_dest_join(w->output, PROBE_NAME);
	struct dest_options o = w->dest;
	o.est_size = 0;
	o.retries = 0;  /* an answer now, not after the copy's reconnect budget */
	wizard_say("Testing the destination ...\n");
	int saved = log_verbosity;
	log_verbosity = 0;  /* errors still show; "destination ...: WebDAV server" would name the probe */
	struct sink *s = NULL;
	int r = sink_open(&s, probe, &o);
	log_verbosity = saved;
	sink_free(s);
	if (r == 0)
		wizard_say("Connection test: OK (logged in, the folder is writable; the test file was removed)\n");
	else
		wizard_say("Connection test: FAILED (the reason is above)\n");
	return r == 0;
}

/* A local folder that does not exist yet: offer to make it. 0 ok, 1 ask again, -1 stop. */
static int local_folder(struct wizard *w)
{
	struct stat st;
	if (w->output[0] != '/') {
		wizard_say("  give a full path starting with / (e.g. %s/), or a URL\n", TARGET);
		return 1;
	}
	if (stat(w->output, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : (wizard_say("  %s is a file, not a folder\n", w->output), 1);
	CLEANUP_FREE char *q = xasprintf("The folder %s does not exist. Create it", w->output);
	int yes = wizard_yes(q, true);
	if (yes <= 0)
		return yes < 0 ? -1 : 1;
	for (char *p = w->output + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		int e = mkdir(w->output, 0755) < 0 && errno != EEXIST ? errno : 0;
		*p = c;
		if (e) {
			errno = e;
			error("create folder '%s': %m", w->output);
			return 1;
		}
		if (!c)
			return 0;
	}
}

int wizard_ask_destination(struct wizard *w)
{
	wizard_heading("3. Destination");
	wizard_say("A local folder (a USB disk, %s/) or a URL; one image per disk goes there:\n"
		   "  http(s)://[USER@]HOST/FOLDER/    WebDAV; a vSphere datastore: add ?dcPath=&dsName=\n"
		   "  s3://BUCKET/FOLDER/              sftp://USER@HOST/FOLDER/\n"
		   "  smb://[USER@]HOST/SHARE/FOLDER/  nfs://HOST/EXPORT/FOLDER/\n",
		   TARGET);
	char suggested[sizeof w->output] = "";
	if (w->output[0])
		snprintf(suggested, sizeof suggested, "%s", w->output);
	else if (w->saved && w->saved->output)
		snprintf(suggested, sizeof suggested, "%s", w->saved->output);
	else if (wizard_is_mountpoint(TARGET))
		snprintf(suggested, sizeof suggested, "%s/", TARGET);
	for (;;) {
		/* The suggestion is shown without any password written into it. */
		CLEANUP_FREE char *shown = url_redact(suggested);
		char answer[sizeof w->output];
		if (wizard_ask("Destination folder or URL", shown, answer, sizeof answer) < 0)
			return -1;
		snprintf(w->output, sizeof w->output, "%s", strcmp(answer, shown) == 0 ? suggested : answer);
		int r = strstr(w->output, "://") ? ask_credentials(w) : local_folder(w);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;  /* not an answer to try: the hint says why */
		if (connection_test(w))
			return 0;
		snprintf(suggested, sizeof suggested, "%s", w->output);
		wizard_say("Type another destination, or press Enter to try this one again.\n");
	}
}
