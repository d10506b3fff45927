/* sftp.c - sftp://USER@HOST[:PORT]/PATH through libcurl's libssh2 backend.
 *
 * The server's host key must be known: --ssh-fingerprint SHA256:..., or a known_hosts file
 * (--known-hosts, default ~/.ssh/known_hosts). An unknown key is refused and its
 * fingerprint printed, so the technician can compare it with the server's and pass it.
 * The image goes to NAME.partial; after a dropped connection the upload continues from the
 * size the server reports (SFTP writes at offsets), then it is renamed and the manifest
 * written beside it. */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dest.h"
#include "net.h"
#include "upstream.h"
#include "util.h"

#define SFTP_RING_SIZE (32u << 20)

struct sftp_dest {
	struct url url;
	const struct dest_options *opts;
	char *known_hosts;      /* file used when no fingerprint was given */
	char *fingerprint;      /* base64 SHA-256 without the "SHA256:" prefix */
	char *final_url, *upload_url;
	char *final_path, *upload_path;  /* server paths, for rename/rm */
	char seen_key[128];     /* fingerprint of a rejected host key, for the message */
	struct upstream *up;
	bool uploaded, moved;
};

/* SHA256:base64 as `ssh-keygen -l` prints it, of a raw host key blob. */
static void key_fingerprint(const void *blob, size_t len, char *out, size_t outlen)
{
	uint8_t md[32];
	unsigned int n = 0;
	unsigned char b64[64];
	EVP_Digest(blob, len, md, &n, EVP_sha256(), NULL);
	int m = EVP_EncodeBlock(b64, md, 32);
	while (m > 0 && b64[m - 1] == '=')
		b64[--m] = '\0';
	snprintf(out, outlen, "SHA256:%s", b64);
}

static int check_host_key(CURL *c, const struct curl_khkey *known, const struct curl_khkey *found,
			  enum curl_khmatch match, void *opaque)
{
	(void)c, (void)known;
	struct sftp_dest *d = opaque;
	if (match == CURLKHMATCH_OK)
		return CURLKHSTAT_FINE;
	if (found && found->len)
		key_fingerprint(found->key, found->len, d->seen_key, sizeof d->seen_key);
	return CURLKHSTAT_REJECT;
}

static void apply_session(struct sftp_dest *d, CURL *c)
{
	curl_easy_setopt(c, CURLOPT_USERNAME, d->url.user);
	if (d->url.password)
		curl_easy_setopt(c, CURLOPT_PASSWORD, d->url.password);
	curl_easy_setopt(c, CURLOPT_SSH_AUTH_TYPES, (long)(CURLSSH_AUTH_PUBLICKEY | CURLSSH_AUTH_PASSWORD |
							   CURLSSH_AUTH_KEYBOARD));
	if (d->opts->ssh_key) {
		curl_easy_setopt(c, CURLOPT_SSH_PRIVATE_KEYFILE, d->opts->ssh_key);
		if (d->url.password)
			curl_easy_setopt(c, CURLOPT_KEYPASSWD, d->url.password);
	}
	if (d->fingerprint) {
		curl_easy_setopt(c, CURLOPT_SSH_HOST_PUBLIC_KEY_SHA256, d->fingerprint);
	} else {
		curl_easy_setopt(c, CURLOPT_SSH_KNOWNHOSTS, d->known_hosts);
		curl_easy_setopt(c, CURLOPT_SSH_KEYFUNCTION, check_host_key);
		curl_easy_setopt(c, CURLOPT_SSH_KEYDATA, d);
	}
}

static const char *sftp_why(struct sftp_dest *d, CURLcode rc, const char *errbuf, char *buf, size_t len)
{
	if (rc == CURLE_PEER_FAILED_VERIFICATION) {
		if (d->fingerprint)
			snprintf(buf, len, "the server's host key does not match --ssh-fingerprint SHA256:%s: this may "
				 "not be the server you think; check the key with the server's owner", d->fingerprint);
		else
			snprintf(buf, len, "the server's host key %s is not in '%s': if that is the server's key, pass "
				 "--ssh-fingerprint %s (or add it to the known_hosts file)",
				 d->seen_key[0] ? d->seen_key : "(unknown)", d->known_hosts,
				 d->seen_key[0] ? d->seen_key : "SHA256:...");
		return buf;
	}
	return net_describe(rc, 0, errbuf, buf, len);
}

/* One SFTP operation (quote commands, a stat, a small upload) with retries. */
static int run(struct sftp_dest *d, CURL *c, const char *what)
{
	char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 400];
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	apply_session(d, c);
	for (unsigned attempt = 1;; attempt++) {
		errbuf[0] = '\0';
		CURLcode rc = curl_easy_perform(c);
		if (rc == CURLE_OK)
			return 0;
		sftp_why(d, rc, errbuf, why, sizeof why);
		if (!net_retryable(rc, 0) || rc == CURLE_REMOTE_FILE_NOT_FOUND)
			return error("%s '%s': %s", what, d->url.display, why);
		if (net_backoff(d->opts, attempt, d->url.display, why) < 0)
			return -1;
	}
}

/* Size of a remote file, -1 when it does not exist, -2 on another error (printed). */
static int64_t remote_size(struct sftp_dest *d, const char *url, bool quiet)
{
	CURL *c = net_curl(d->opts);
	char errbuf[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 400];
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	apply_session(d, c);
	CURLcode rc = curl_easy_perform(c);
	curl_off_t size = -1;
	curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size);
	curl_easy_cleanup(c);
	if (rc == CURLE_REMOTE_FILE_NOT_FOUND)
		return -1;
	if (rc != CURLE_OK) {
		if (!quiet)
			error("connect to '%s': %s", d->url.display, sftp_why(d, rc, errbuf, why, sizeof why));
		return -2;
	}
	return size < 0 ? 0 : size;
}

static int quote(struct sftp_dest *d, const char *what, const char *cmd1, const char *cmd2)
{
	CURL *c = net_curl(d->opts);
	CLEANUP_FREE char *dir = xstrdup(d->final_url);
	*(strrchr(dir, '/') + 1) = '\0';
	struct curl_slist *q = curl_slist_append(NULL, cmd1);
	if (cmd2)
		q = curl_slist_append(q, cmd2);
	curl_easy_setopt(c, CURLOPT_URL, dir);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_QUOTE, q);
	int r = run(d, c, what);
	curl_slist_free_all(q);
	curl_easy_cleanup(c);
	return r;
}

/* An empty upload to NAME.partial: host key, login, folders and write permission. */
static int probe_write(struct sftp_dest *d)
{
	CURL *c = net_curl(d->opts);
	curl_easy_setopt(c, CURLOPT_URL, d->upload_url);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
	curl_easy_setopt(c, CURLOPT_FTP_CREATE_MISSING_DIRS, (long)CURLFTP_CREATE_DIR);
	int r = run(d, c, "write to");
	curl_easy_cleanup(c);
	d->uploaded = r == 0;
	return r;
}

/* ---- upload ---------------------------------------------------------------------------- */

static int upload_setup(void *ctx, CURL *c, uint64_t from)
{
	struct sftp_dest *d = ctx;
	curl_easy_setopt(c, CURLOPT_URL, d->upload_url);
	curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)from);
	apply_session(d, c);
	return 0;
}

static int64_t upload_confirmed(void *ctx)
{
	struct sftp_dest *d = ctx;
	int64_t size = remote_size(d, d->upload_url, true);
	return size < 0 ? -1 : size;
}

static int upload_check(void *ctx, CURL *c)
{
	(void)ctx, (void)c;
	return 0;
}

static const struct upstream_proto sftp_upload = {
	.setup = upload_setup,
	.confirmed = upload_confirmed,
	.check = upload_check,
};

static int sftp_write(struct sink *s, const void *buf, size_t len)
{
	struct sftp_dest *d = s->priv;
	if (!d->up) {
		d->up = upstream_start(&sftp_upload, d, d->opts, d->url.display, SFTP_RING_SIZE);
		if (!d->up)
			return -1;
	}
	return upstream_push(d->up, buf, len);
}

static int sftp_finish(struct sink *s)
{
	struct sftp_dest *d = s->priv;
	if (!d->up && sftp_write(s, "", 0) < 0)
		return -1;
	if (upstream_finish(d->up) < 0)
		return -1;
	s->resumes = upstream_resumes(d->up);
	int64_t size = remote_size(d, d->upload_url, false);
	if (size < 0)
		return size == -1 ? error("'%s': the uploaded image vanished from the server", d->url.display) : -1;
	if ((uint64_t)size != s->pos)
		return error("'%s' holds %lld bytes after the upload but %llu were sent: run the clone again",
			     d->url.display, (long long)size, (unsigned long long)s->pos);
	return 0;
}

static int sftp_publish(struct sink *s, const char *suffix, const void *buf, size_t len)
{
	struct sftp_dest *d = s->priv;
	CLEANUP_FREE char *rm = xasprintf("*rm \"%s\"", d->final_path);  /* '*': may not exist */
	CLEANUP_FREE char *mv = xasprintf("rename \"%s\" \"%s\"", d->upload_path, d->final_path);
	if (quote(d, "rename the finished upload on", d->opts->force ? rm : mv, d->opts->force ? mv : NULL) < 0)
		return -1;
	d->moved = true;
	if (!suffix)
		return 0;
	CLEANUP_FREE char *path = xasprintf("%s%s", d->url.path, suffix);
	CLEANUP_FREE char *url = url_for_curl(&d->url, path);
	CURL *c = net_curl(d->opts);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	FILE *mem = fmemopen((void *)buf, len ? len : 1, "r");
	curl_easy_setopt(c, CURLOPT_READDATA, mem);
	int r = run(d, c, "upload the manifest beside");
	fclose(mem);
	curl_easy_cleanup(c);
	return r;
}

static void sftp_abort(struct sink *s)
{
	struct sftp_dest *d = s->priv;
	upstream_free(d->up);
	d->up = NULL;
	if (!d->uploaded && !d->moved)
		return;
	CLEANUP_FREE char *rm = xasprintf("*rm \"%s\"", d->moved ? d->final_path : d->upload_path);
	quote(d, "remove the unfinished image from", rm, NULL);
}

static int sftp_readback(struct sink *s, uint8_t sha256[32])
{
	struct sftp_dest *d = s->priv;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	CURL *c = net_curl(d->opts);
	curl_easy_setopt(c, CURLOPT_URL, d->final_url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, net_hash_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, md);
	int r = run(d, c, "read back");
	curl_easy_cleanup(c);
	unsigned int n = 0;
	EVP_DigestFinal_ex(md, sha256, &n);
	EVP_MD_CTX_free(md);
	return r;
}

static void sftp_free(struct sink *s)
{
	struct sftp_dest *d = s->priv;
	if (!d)
		return;
	upstream_free(d->up);
	url_free(&d->url);
	free(d->known_hosts);
	free(d->fingerprint);
	free(d->final_url);
	free(d->upload_url);
	free(d->final_path);
	free(d->upload_path);
	free(d);
	s->priv = NULL;
}

static const struct sink_ops sftp_ops = {
	.name = "sftp",
	.write = sftp_write,
	.skip = NULL,
	.finish = sftp_finish,
	.publish = sftp_publish,
	.abort = sftp_abort,
	.readback = sftp_readback,
	.free = sftp_free,
};

static int host_key_source(struct sftp_dest *d)
{
	const char *fp = d->opts->ssh_fingerprint;
	if (fp) {
		if (strncmp(fp, "SHA256:", 7) == 0)
			fp += 7;
		if (strlen(fp) != 43)
			return error("--ssh-fingerprint takes SHA256:<43 base64 characters> as `ssh-keygen -lf` prints it, "
				     "not '%s'", d->opts->ssh_fingerprint);
		d->fingerprint = xstrdup(fp);
		return 0;
	}
	const char *home = getenv("HOME");
	if (d->opts->known_hosts)
		d->known_hosts = xstrdup(d->opts->known_hosts);
	else
		d->known_hosts = xasprintf("%s/.ssh/known_hosts", home ? home : "/root");
	if (access(d->known_hosts, R_OK) < 0 && d->opts->known_hosts)
		return error("cannot read known_hosts file '%s': %m", d->known_hosts);
	return 0;
}

static int sftp_prepare(struct sftp_dest *d)
{
	if (!d->url.user)
		return error("'%s' needs a user name: sftp://USER@HOST/PATH", d->url.display);
	const char *name = strrchr(d->url.path, '/') + 1;
	if (!*name)
		return error("'%s' names a folder: add the image's file name", d->url.display);
	if (host_key_source(d) < 0 || net_password(&d->url, d->opts, !d->opts->ssh_key) < 0)
		return -1;
	d->final_path = xstrdup(d->url.path);
	d->upload_path = xasprintf("%s.partial", d->url.path);
	d->final_url = url_for_curl(&d->url, NULL);
	d->upload_url = url_for_curl(&d->url, d->upload_path);
	int64_t existing = remote_size(d, d->final_url, false);
	if (existing == -2)
		return -1;
	if (existing >= 0 && !d->opts->force)
		return error("'%s' already exists: choose another name or pass --force to replace it", d->url.display);
	return probe_write(d);
}

int dest_sftp_open(struct sink *s, const char *url, const struct dest_options *o)
{
	struct sftp_dest *d = xcalloc(1, sizeof *d);
	d->opts = o;
	s->ops = &sftp_ops;
	s->priv = d;
	if (url_parse(url, &d->url) < 0) {
		free(d);
		s->priv = NULL;
		return -1;
	}
	s->display = xstrdup(d->url.display);
	if (sftp_prepare(d) < 0) {
		sftp_abort(s);
		sftp_free(s);
		return -1;
	}
	info("destination '%s': SFTP, host key %s, uploading under a temporary name", d->url.display,
	     d->fingerprint ? "pinned by --ssh-fingerprint" : "checked against known_hosts");
	return 0;
}
