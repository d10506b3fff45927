/* s3.c - S3-compatible object storage destination (s3://BUCKET/KEY), path-style requests signed
 * with SigV4 (sigv4.c). The image goes up as a multipart upload, one part buffer at a time; it is
 * invisible until CompleteMultipartUpload (our "temporary name"), and the manifest object
 * KEY.manifest.json, put last, says it is complete. A part that fails is sent again from the
 * buffer. No threads: parts go up synchronously from the writer. */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dest.h"
#include "net.h"
#include "sigv4.h"
#include "util.h"

#define MiB (1024u * 1024u)
#define S3_MIN_PART (16u * MiB)             /* our floor; S3's own is 5 MiB */
#define S3_MAX_PART (5ull << 30)            /* S3: 5 GiB per part */
#define S3_MAX_PARTS 10000u                 /* S3: part numbers 1..10000 */
#define S3_PLANNED_PARTS 9000u              /* size parts for this many, keep 1000 spare */
#define S3_REPLY_CAP (1u * MiB)             /* longest reply body kept (errors, XML) */
#define S3_MANIFEST_SUFFIX ".manifest.json" /* what cmd_clone publishes beside the image */
#define S3_ABORT_ROUNDS 3u                  /* abort again while a late part reappears */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_part {
	uint8_t md5[16];     /* the ETag S3 returns for an unencrypted part */
	char sha_b64[45];    /* x-amz-checksum-sha256 of the part */
};

struct s3_dest {
	struct url ep;              /* endpoint: scheme, host, port, path prefix */
	char *host_header;          /* "Host: host[:port]" as sent and signed */
	char *bucket, *key;
	char *display;              /* "s3://BUCKET/KEY" for messages */
	char *region;
	char *access_key, *secret_key, *token; /* from the environment; never printed */
	struct dest_options o;
	CURL *c;
	char errbuf[CURL_ERROR_SIZE];
	long clock_skew;            /* server time - our time, learnt from RequestTimeTooSkewed */
	char *upload_id;            /* NULL until CreateMultipartUpload */
	char *upload_query;         /* "uploadId=ENCODED" */
	uint8_t *buf;               /* the part being filled */
	size_t part_size, part_len;
	struct s3_part *parts;      /* parts sent so far (index = number - 1) */
	unsigned nparts, parts_cap;
	bool completed;             /* CompleteMultipartUpload succeeded: KEY exists */
	bool replacing;             /* KEY existed at prepare (--force) */
};

/* One request. Body: either mem (PUT/POST) or none. */
struct s3_req {
	const char *method;
	const char *key;            /* object key, or NULL for the bucket itself */
	const char *query;          /* already URI-encoded "a=b&c=" or NULL */
	const void *body;
	size_t body_len;
	const char *body_sha;       /* hex SHA-256 of body when already known, else computed */
	const char *content_type;
	const char *extra[4];       /* more signed headers "Name: value", NULL-terminated */
	const uint8_t *want_md5;    /* check the ETag against this (UploadPart) */
	const char *want_sha;       /* and the echoed x-amz-checksum-sha256 against this */
	EVP_MD_CTX *hash;           /* GET: feed the body to this instead of keeping it */
	bool ok_404;                /* 404 is an answer, not a failure (HEAD object) */
};

struct s3_resp {
	CURLcode rc;
	long code;
	char *body;                 /* NUL-terminated, at most S3_REPLY_CAP */
	size_t len;
	char etag[80], date[64];
	char sse[32];               /* x-amz-server-side-encryption */
	char checksum[64];          /* x-amz-checksum-sha256 */
	uint64_t got;               /* body bytes received */
	curl_off_t length;          /* Content-Length (HEAD) */
	bool retried;               /* s3_call needed more than one attempt */
};

static void resp_reset(struct s3_resp *r)
{
	free(r->body);
	*r = (struct s3_resp){ .length = -1 };
}

/* ---- small XML helpers: S3 replies are flat enough to pick tags by name ---- */

/* The text of the first <tag>...</tag> in xml, entities decoded, into out. false if absent. */
static bool xml_tag(const char *xml, const char *tag, char *out, size_t outsz)
{
	if (!xml || !outsz)
		return false;
	char open[64], close[64];
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	const char *a = strstr(xml, open);
	const char *b = a ? strstr(a + strlen(open), close) : NULL;
	if (!b)
		return false;
	static const struct { const char *ent; char c; } ents[] = {
		{ "&quot;", '"' }, { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&apos;", '\'' },
		{ "&#34;", '"' }, { "&#39;", '\'' },
	};
	size_t o = 0;
	for (const char *p = a + strlen(open); p < b && o + 1 < outsz; p++) {
		char c = *p;
		for (size_t i = 0; c == '&' && i < ARRAY_SIZE(ents); i++)
			if (strncmp(p, ents[i].ent, strlen(ents[i].ent)) == 0) {
				c = ents[i].c;
				p += strlen(ents[i].ent) - 1;
			}
		out[o++] = (char)(isprint((unsigned char)c) ? c : '?');
	}
	out[o] = '\0';
	return true;
}

/* Escape &, <, > for an XML text node (object keys in requests are not XML; ETags are). */
static void xml_put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else
			fputc(*s, f);
	}
}

/* ---- one signed request ---- */

struct mem_reader {
	const uint8_t *p;
	size_t left;
};

static size_t read_mem(char *dst, size_t size, size_t n, void *opaque)
{
	struct mem_reader *m = opaque;
	size_t k = MIN(size * n, m->left);
	memcpy(dst, m->p, k);
	m->p += k;
	m->left -= k;
	return k;
}

struct write_ctx {
	struct s3_resp *r;
	EVP_MD_CTX *hash;
};

static size_t write_body(char *data, size_t size, size_t n, void *opaque)
{
	struct write_ctx *w = opaque;
	size_t len = size * n;
	w->r->got += len;
	if (w->hash && w->r->code < 300) {
		EVP_DigestUpdate(w->hash, data, len);
		return len;
	}
	size_t room = S3_REPLY_CAP - w->r->len;
	size_t k = MIN(len, room);
	if (k) {
		w->r->body = xrealloc(w->r->body, w->r->len + k + 1);
		memcpy(w->r->body + w->r->len, data, k);
		w->r->len += k;
		w->r->body[w->r->len] = '\0';
	}
	return len;
}

/* Copy "Name: value" into out when the header line is that name (case-insensitive). */
static void pick_header(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	snprintf(out, outsz, "%.*s", (int)(end - v), v);
}

static size_t read_header(char *line, size_t size, size_t n, void *opaque)
{
	struct write_ctx *w = opaque;
	size_t len = size * n;
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {  /* a new response (after 100 Continue) */
		w->r->etag[0] = w->r->date[0] = w->r->sse[0] = w->r->checksum[0] = '\0';
		long code = 0;
		if (sscanf(line, "HTTP/%*s %ld", &code) == 1)
			w->r->code = code;
	}
	pick_header(line, len, "etag", w->r->etag, sizeof w->r->etag);
	pick_header(line, len, "date", w->r->date, sizeof w->r->date);
	pick_header(line, len, "x-amz-server-side-encryption", w->r->sse, sizeof w->r->sse);
	pick_header(line, len, "x-amz-checksum-sha256", w->r->checksum, sizeof w->r->checksum);
	return len;
}

static char *object_path(const struct s3_dest *d, const char *key)
{
	CLEANUP_FREE char *b = sigv4_uri_encode(d->bucket, false);
	CLEANUP_FREE char *k = key ? sigv4_uri_encode(key, true) : NULL;
	const char *prefix = strcmp(d->ep.path, "/") == 0 ? "" : d->ep.path;
	CLEANUP_FREE char *pre = sigv4_uri_encode(prefix, true);
	return xasprintf("%s/%s%s%s", pre, b, k ? "/" : "", k ? k : "");
}

/* Headers: Host, x-amz-*, extras; then Authorization over them. Returns the curl list. */
static struct curl_slist *signed_headers(const struct s3_dest *d, const struct s3_req *q, const char *uri,
					 const char *payload_hash)
{
	char date[17];
	sigv4_amz_date(time(NULL) + d->clock_skew, date);
	CLEANUP_FREE char *h_date = xasprintf("x-amz-date: %s", date);
	CLEANUP_FREE char *h_sha = xasprintf("x-amz-content-sha256: %s", payload_hash);
	CLEANUP_FREE char *h_tok = d->token ? xasprintf("x-amz-security-token: %s", d->token) : NULL;
	const char *lines[10];
	size_t n = 0;
	lines[n++] = d->host_header;
	lines[n++] = h_date;
	lines[n++] = h_sha;
	if (h_tok)
		lines[n++] = h_tok;
	for (size_t i = 0; i < ARRAY_SIZE(q->extra) && q->extra[i]; i++)
		lines[n++] = q->extra[i];
	struct sigv4_key k = { .access_key = d->access_key, .secret_key = d->secret_key, .region = d->region,
			       .service = "s3" };
	struct sigv4_request sr = { .method = q->method, .uri = uri, .query = q->query, .headers = lines,
				    .nheaders = n, .payload_sha256 = payload_hash, .amz_date = date };
	CLEANUP_FREE char *auth = sigv4_authorization(&k, &sr);
	CLEANUP_FREE char *h_auth = xasprintf("Authorization: %s", auth ? auth : "");
	struct curl_slist *l = NULL;
	for (size_t i = 0; i < n; i++)
		l = curl_slist_append(l, lines[i]);
	l = curl_slist_append(l, h_auth);
	l = curl_slist_append(l, "Accept:");
	if (q->content_type) {
		CLEANUP_FREE char *ct = xasprintf("Content-Type: %s", q->content_type);
		l = curl_slist_append(l, ct);
	}
	explicit_bzero(h_auth, strlen(h_auth));
	return l;
}

static void set_method(CURL *c, const struct s3_req *q, struct mem_reader *m)
{
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_mem);
		curl_easy_setopt(c, CURLOPT_READDATA, m);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
	} else if (strcmp(q->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
	} else if (strcmp(q->method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	}
}

/* One attempt. Fills r (rc, code, body, headers); prints nothing. */
static void s3_attempt(struct s3_dest *d, const struct s3_req *q, const char *payload_hash, struct s3_resp *r)
{
	CLEANUP_FREE char *uri = object_path(d, q->key);
	CLEANUP_FREE char *path = xasprintf("%s%s%s", uri, q->query ? "?" : "", q->query ? q->query : "");
	bool v6 = strchr(d->ep.host, ':') != NULL;
	char port[16] = "";
	if (d->ep.port)
		snprintf(port, sizeof port, ":%d", d->ep.port);
	CLEANUP_FREE char *url = xasprintf("%s://%s%s%s%s%s", d->ep.scheme, v6 ? "[" : "", d->ep.host, v6 ? "]" : "",
					   port, path);
	struct curl_slist *headers = signed_headers(d, q, uri, payload_hash);
	struct mem_reader m = { q->body, q->body_len };
	struct write_ctx w = { r, q->hash };
	CURL *c = d->c;
	set_method(c, q, &m);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, read_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &w);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, d->errbuf);
	d->errbuf[0] = '\0';
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->length);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
}

/* ---- outcome of a request: success, worth another attempt, or final failure ---- */

enum verdict { S3_OK, S3_RETRY, S3_FAIL };

static bool etag_matches(const char *etag, const uint8_t md5[16])
{
	char hex[33];
	hex_encode(md5, 16, hex);
	const char *e = etag[0] == '"' ? etag + 1 : etag;
	return strncasecmp(e, hex, 32) == 0 && (e[32] == '\0' || (e[32] == '"' && e[33] == '\0'));
}

/* The server got the part we sent: its ETag is the part's MD5 (S3, unencrypted or SSE-S3), and
 * an echoed SHA-256 checksum matches. Under SSE-KMS/SSE-C the ETag is no MD5: the checksum
 * is all there is. */
static bool part_confirmed(const struct s3_req *q, const struct s3_resp *r)
{
	if (r->checksum[0] && q->want_sha && strcmp(r->checksum, q->want_sha) != 0)
		return false;
	if (strncmp(r->sse, "aws:kms", 7) == 0)
		return r->checksum[0] != '\0';
	return etag_matches(r->etag, q->want_md5);
}

/* Advice for the S3 error codes a clone meets, by the code S3 puts in <Code>. */
static const char *s3_advice(const char *code, long http)
{
	static const struct { const char *code, *advice; } t[] = {
		{ "InvalidAccessKeyId", "the server does not know this access key: check AWS_ACCESS_KEY_ID" },
		{ "SignatureDoesNotMatch", "the secret key is wrong: check AWS_SECRET_ACCESS_KEY" },
		{ "NoSuchBucket", "the bucket does not exist: create it first, or check the name and --s3-endpoint" },
		{ "AccessDenied", "access denied: the credentials may not write to this bucket" },
		{ "AuthorizationHeaderMalformed", "wrong region: pass the bucket's region with --s3-region" },
		{ "PermanentRedirect", "the bucket is in another region: pass it with --s3-region" },
		{ "ExpiredToken", "the session token has expired: get fresh credentials" },
		{ "InvalidToken", "the session token is not valid: check AWS_SESSION_TOKEN" },
		{ "RequestTimeTooSkewed", "this machine's clock is wrong: set it (date -s) and run again" },
		{ "QuotaExceeded", "the bucket's quota is exhausted: free space" },
		{ "EntityTooLarge", "the server refused the size of a part" },
		{ "NoSuchUpload", "the server no longer has the upload (aborted, or expired by a lifecycle rule)" },
	};
	for (size_t i = 0; code && i < ARRAY_SIZE(t); i++)
		if (strcmp(code, t[i].code) == 0)
			return t[i].advice;
	if (http == 301)
		return "the bucket is in another region: pass it with --s3-region";
	return NULL;
}

/* "HTTP 403 SignatureDoesNotMatch: the secret key is wrong..." or libcurl's words. */
static const char *describe(const struct s3_dest *d, const struct s3_resp *r, char *buf, size_t len)
{
	char code[64] = "", msg[256] = "";
	if (r->rc != CURLE_OK)
		return net_describe(r->rc, r->code, d->errbuf, buf, len);
	xml_tag(r->body, "Code", code, sizeof code);
	xml_tag(r->body, "Message", msg, sizeof msg);
	const char *advice = s3_advice(code[0] ? code : NULL, r->code);
	if (!code[0] && !advice)
		return net_describe(r->rc, r->code, d->errbuf, buf, len);
	size_t m = strlen(msg);
	if (m && msg[m - 1] == '.')
		msg[m - 1] = '\0';
	snprintf(buf, len, "HTTP %ld%s%s%s%s%s: %s", r->code, code[0] ? " " : "", code, msg[0] ? " (" : "", msg,
		 msg[0] ? ")" : "", advice ? advice : "see the server's documentation for this error");
	return buf;
}

/* Learn the server's clock from its Date header; true when that changed our offset. */
static bool fix_skew(struct s3_dest *d, const struct s3_resp *r)
{
	time_t server = r->date[0] ? curl_getdate(r->date, NULL) : -1;
	if (server < 0)
		return false;
	long skew = (long)(server - time(NULL));
	if (labs(skew - d->clock_skew) < 60)
		return false;
	warning("'%s': this machine's clock is %ld s off the server's: signing with the server's time "
		"(set the clock to avoid this)", d->display, -skew);
	d->clock_skew = skew;
	return true;
}

static enum verdict judge(struct s3_dest *d, const struct s3_req *q, struct s3_resp *r)
{
	char code[64] = "";
	if (r->rc == CURLE_OK)
		xml_tag(r->body, "Code", code, sizeof code);
	if (strcmp(code, "RequestTimeTooSkewed") == 0 && fix_skew(d, r))
		return S3_RETRY;
	if (r->rc != CURLE_OK || r->code >= 300) {
		if (q->ok_404 && r->code == 404 && r->rc == CURLE_OK)
			return S3_OK;
		bool again = net_retryable(r->rc, r->code) || strcmp(code, "SlowDown") == 0 ||
			     strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0;
		return again ? S3_RETRY : S3_FAIL;
	}
	/* CompleteMultipartUpload (and copies) may say 200 and still fail in the body. */
	if (r->body && strstr(r->body, "<Error>"))
		return strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ? S3_RETRY : S3_FAIL;
	if (q->want_md5 && !part_confirmed(q, r))
		return S3_RETRY;
	return S3_OK;
}

/* Send q until it succeeds, fails for good, or o.retries reconnects are spent. The error names
 * what failed. r holds the last reply. */
static int s3_call(struct s3_dest *d, const struct s3_req *q, struct s3_resp *r, const char *what)
{
	char hash[65] = EMPTY_SHA256, why[512];
	if (q->body_sha)
		snprintf(hash, sizeof hash, "%s", q->body_sha);
	else if (q->body && q->body_len)
		sigv4_sha256_hex(q->body, q->body_len, hash);
	for (unsigned attempt = 1;; attempt++) {
		bool retried = r->retried;
		resp_reset(r);
		r->retried = retried;
		if (q->hash)
			EVP_DigestInit_ex(q->hash, EVP_sha256(), NULL);
		s3_attempt(d, q, hash, r);
		enum verdict v = judge(d, q, r);
		if (v == S3_OK)
			return 0;
		if (q->want_md5 && r->rc == CURLE_OK && r->code < 300)
			snprintf(why, sizeof why, "%s: the server's ETag %s (checksum %s) does not match what was sent", what,
				 r->etag, r->checksum[0] ? r->checksum : "none");
		else
			snprintf(why, sizeof why, "%s: %s", what, describe(d, r, (char[400]){ 0 }, 400));
		if (v == S3_FAIL)
			return error("'%s': %s", d->display, why);
		if (net_backoff(&d->o, attempt, d->display, why) < 0)
			return -1;
		r->retried = true;
	}
}

/* ---- multipart upload ---- */

static int create_upload(struct s3_dest *d)
{
	struct s3_req q = { .method = "POST", .key = d->key, .query = "uploads=",
			    .content_type = "application/octet-stream",
			    .extra = { "x-amz-checksum-algorithm: SHA256" } };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "start the multipart upload");
	char id[1024];
	if (ret == 0 && !xml_tag(r.body, "UploadId", id, sizeof id))
		ret = error("'%s': start the multipart upload: the reply has no UploadId (is %s an S3 server?)",
			    d->display, d->ep.display);
	if (ret == 0) {
		CLEANUP_FREE char *enc = sigv4_uri_encode(id, false);
		d->upload_id = xstrdup(id);
		d->upload_query = xasprintf("uploadId=%s", enc);
	}
	resp_reset(&r);
	return ret;
}

/* Parts get bigger when the image outgrows its estimate (compressed formats can): the number
 * stays under S3's 10000 with at most a few doublings of the one buffer. */
static void maybe_grow_part(struct s3_dest *d)
{
	static const unsigned at[] = { 8000, 9000, 9500, 9800, 9900 };
	for (size_t i = 0; i < ARRAY_SIZE(at); i++)
		if (d->nparts == at[i] && d->part_size * 2 <= S3_MAX_PART) {
			d->part_size *= 2;
			d->buf = xrealloc(d->buf, d->part_size);
			warning("'%s': the image is larger than estimated: parts are now %zu MiB", d->display, d->part_size / MiB);
		}
}

static int upload_part(struct s3_dest *d, struct sink *s)
{
	if (d->nparts >= S3_MAX_PARTS)
		return error("'%s': the image needs more than %u parts: S3 cannot store it in one object",
			     d->display, S3_MAX_PARTS);
	if (d->nparts == d->parts_cap) {
		d->parts_cap = d->parts_cap ? MIN(d->parts_cap * 2, S3_MAX_PARTS) : 64;
		d->parts = xrealloc(d->parts, d->parts_cap * sizeof *d->parts);
	}
	struct s3_part *p = &d->parts[d->nparts];
	unsigned int n = 0;
	uint8_t sha[32];
	EVP_Digest(d->buf, d->part_len, p->md5, &n, EVP_md5(), NULL);
	EVP_Digest(d->buf, d->part_len, sha, &n, EVP_sha256(), NULL);
	EVP_EncodeBlock((unsigned char *)p->sha_b64, sha, sizeof sha);
	char sha_hex[65];
	hex_encode(sha, sizeof sha, sha_hex);
	CLEANUP_FREE char *query = xasprintf("partNumber=%u&%s", d->nparts + 1, d->upload_query);
	CLEANUP_FREE char *h_sum = xasprintf("x-amz-checksum-sha256: %s", p->sha_b64);
	struct s3_req q = { .method = "PUT", .key = d->key, .query = query, .body = d->buf, .body_len = d->part_len,
			    .body_sha = sha_hex,
			    .extra = { h_sum, "x-amz-sdk-checksum-algorithm: SHA256" }, .want_md5 = p->md5,
			    .want_sha = p->sha_b64 };
	struct s3_resp r = { 0 };
	char what[64];
	snprintf(what, sizeof what, "upload part %u", d->nparts + 1);
	int ret = s3_call(d, &q, &r, what);
	if (ret == 0) {
		d->nparts++;
		d->part_len = 0;
		if (r.retried)
			s->resumes++;
		maybe_grow_part(d);
	}
	resp_reset(&r);
	return ret;
}

static int s3_write(struct sink *s, const void *buf, size_t len)
{
	struct s3_dest *d = s->priv;
	const uint8_t *p = buf;
	while (len) {
		size_t k = MIN(len, d->part_size - d->part_len);
		memcpy(d->buf + d->part_len, p, k);
		d->part_len += k;
		p += k;
		len -= k;
		if (d->part_len == d->part_size && upload_part(d, s) < 0)
			return -1;
	}
	return 0;
}

static char *complete_xml(const struct s3_dest *d)
{
	char *xml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&xml, &len);
	if (!f)
		return NULL;
	fputs("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">", f);
	for (unsigned i = 0; i < d->nparts; i++) {
		char hex[33];
		hex_encode(d->parts[i].md5, 16, hex);
		fprintf(f, "<Part><PartNumber>%u</PartNumber><ETag>&quot;%s&quot;</ETag><ChecksumSHA256>", i + 1, hex);
		xml_put_escaped(f, d->parts[i].sha_b64);
		fputs("</ChecksumSHA256></Part>", f);
	}
	fputs("</CompleteMultipartUpload>", f);
	fclose(f);
	return xml;
}

static int delete_object(struct s3_dest *d, const char *key, const char *what)
{
	struct s3_req q = { .method = "DELETE", .key = key, .ok_404 = true };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, what);
	resp_reset(&r);
	return ret;
}

static int complete_upload(struct s3_dest *d)
{
	CLEANUP_FREE char *xml = complete_xml(d);
	if (!xml)
		return error("'%s': out of memory for the part list", d->display);
	struct s3_req q = { .method = "POST", .key = d->key, .query = d->upload_query, .body = xml, .body_len = strlen(xml),
			    .content_type = "application/xml" };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "complete the multipart upload");
	resp_reset(&r);
	if (ret == 0)
		d->completed = true;
	return ret;
}

static int check_size(struct s3_dest *d, uint64_t want)
{
	struct s3_req q = { .method = "HEAD", .key = d->key };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "check the uploaded image");
	if (ret == 0 && (r.length < 0 || (uint64_t)r.length != want))
		ret = error("'%s': the server holds %" PRId64 " bytes, %" PRIu64 " were sent: the upload is "
			    "damaged, run the clone again",
			    d->display, (int64_t)r.length, want);
	resp_reset(&r);
	return ret;
}

static int s3_finish(struct sink *s)
{
	struct s3_dest *d = s->priv;
	/* The last part may be short, or empty when the image is (S3 needs one part). */
	if ((d->part_len || d->nparts == 0) && upload_part(d, s) < 0)
		return -1;
	/* An old manifest must not vouch for the new image while it replaces the old one. */
	if (d->replacing) {
		CLEANUP_FREE char *old = xasprintf("%s%s", d->key, S3_MANIFEST_SUFFIX);
		if (delete_object(d, old, "remove the old manifest") < 0)
			return -1;
	}
	if (complete_upload(d) < 0)
		return -1;
	info("'%s': %u part%s of %zu MiB stored", d->display, d->nparts, d->nparts == 1 ? "" : "s",
	     d->part_size / MiB);
	return check_size(d, s->pos);
}

static int s3_publish(struct sink *s, const char *suffix, const void *buf, size_t len)
{
	struct s3_dest *d = s->priv;
	if (!suffix)
		return 0;
	CLEANUP_FREE char *key = xasprintf("%s%s", d->key, suffix);
	struct s3_req q = { .method = "PUT", .key = key, .body = buf, .body_len = len,
			    .content_type = "application/json" };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "store the manifest");
	resp_reset(&r);
	return ret;
}

/* One ListParts attempt, no retries and no message: true when the server answers that it
 * does not know the upload (404 NoSuchUpload). */
static bool upload_gone(struct s3_dest *d)
{
	struct s3_req q = { .method = "GET", .key = d->key, .query = d->upload_query };
	struct s3_resp r = { 0 };
	s3_attempt(d, &q, EMPTY_SHA256, &r);
	bool gone = r.rc == CURLE_OK && r.code == 404;
	resp_reset(&r);
	return gone;
}

static int abort_upload(struct s3_dest *d)
{
	struct s3_req q = { .method = "DELETE", .key = d->key, .query = d->upload_query, .ok_404 = true };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "abort the multipart upload");
	resp_reset(&r);
	return ret;
}

/* A part the server was still receiving when the upload was aborted (a connection cut
 * mid-part) can land after the abort and keep using space: AWS asks to check with
 * ListParts and abort again. A second apart, a few rounds at most. */
static int abort_until_gone(struct s3_dest *d)
{
	if (abort_upload(d) < 0)
		return -1;
	for (unsigned i = 0; i < S3_ABORT_ROUNDS; i++) {
		sleep(1);
		if (upload_gone(d))
			return 0;
		if (abort_upload(d) < 0)
			return -1;
	}
	return upload_gone(d) ? 0 : -1;
}

/* Quick cleanup: a couple of attempts at most (the clone has already failed). */
static void s3_abort(struct sink *s)
{
	struct s3_dest *d = s->priv;
	if (!d || !d->upload_id)
		return;
	unsigned saved = d->o.retries;
	d->o.retries = MIN(saved, 2u);
	if (d->completed) {
		if (delete_object(d, d->key, "remove the unpublished image") < 0)
			warning("'%s' may hold an image without a manifest: delete it", d->display);
	} else {
		if (abort_until_gone(d) < 0)
			warning("the unfinished upload of '%s' is still on the server and uses space: abort it (aws s3api "
				"abort-multipart-upload --bucket %s --key %s --upload-id %s) or let a lifecycle rule "
				"expire it",
				d->display, d->bucket, d->key, d->upload_id);
	}
	d->o.retries = saved;
}

static int s3_readback(struct sink *s, uint8_t sha256[32])
{
	struct s3_dest *d = s->priv;
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	if (!h)
		return error("initialise SHA-256: OpenSSL failed");
	struct s3_req q = { .method = "GET", .key = d->key, .hash = h };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "read the image back");
	unsigned int n = 0;
	if (ret == 0 && r.got != s->pos)
		ret = error("'%s': read back %" PRIu64 " bytes, %" PRIu64 " were written", d->display,
			    r.got, s->pos);
	if (ret == 0)
		EVP_DigestFinal_ex(h, sha256, &n);
	EVP_MD_CTX_free(h);
	resp_reset(&r);
	return ret;
}

static void wipe_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static void s3_free(struct sink *s)
{
	struct s3_dest *d = s->priv;
	if (!d)
		return;
	if (d->c)
		curl_easy_cleanup(d->c);
	url_free(&d->ep);
	free(d->host_header);
	free(d->bucket);
	free(d->key);
	free(d->display);
	free(d->upload_query);
	free(d->region);
	free(d->access_key);
	wipe_free(d->secret_key);
	wipe_free(d->token);
	free(d->upload_id);
	free(d->buf);
	free(d->parts);
	free(d);
	s->priv = NULL;
}

static const struct sink_ops s3_ops = {
	.name = "s3",
	.write = s3_write,
	.skip = NULL,
	.finish = s3_finish,
	.publish = s3_publish,
	.abort = s3_abort,
	.readback = s3_readback,
	.free = s3_free,
};

/* ---- prepare ---- */

/* s3://BUCKET/KEY: the key is taken literally (no %-decoding), as S3 stores it. */
static int parse_s3_url(const char *url, struct s3_dest *d)
{
	const char *b = url + strlen("s3://");
	size_t blen = strcspn(b, "/");
	if (blen == 0 || b[blen] != '/' || b[blen + 1] == '\0' || b[strlen(b) - 1] == '/')
		return error("destination '%s': write s3://BUCKET/KEY, e.g. s3://backups/server01/sda.vmdk", url);
	d->bucket = xstrndup(b, blen);
	d->key = xstrdup(b + blen + 1);
	d->display = xasprintf("s3://%s/%s", d->bucket, d->key);
	if (strlen(d->key) > 1000)
		return error("destination '%s': S3 keys are at most 1024 bytes with the manifest suffix", url);
	return 0;
}

static int read_credentials(struct s3_dest *d, const char *display)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	if (!id || !*id || !secret || !*secret)
		return error("no S3 credentials for '%s': set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
			     "(and AWS_SESSION_TOKEN for temporary credentials)",
			     display);
	d->access_key = xstrdup(id);
	d->secret_key = xstrdup(secret);
	d->token = token && *token ? xstrdup(token) : NULL;
	return 0;
}

static int open_endpoint(struct s3_dest *d, const struct dest_options *o, const char *display)
{
	CLEANUP_FREE char *def = xasprintf("https://s3.%s.amazonaws.com", d->region);
	const char *ep = o->s3_endpoint ? o->s3_endpoint : def;
	if (url_parse(ep, &d->ep) < 0)
		return -1;
	if (strcmp(d->ep.scheme, "http") != 0 && strcmp(d->ep.scheme, "https") != 0)
		return error("--s3-endpoint '%s' for '%s': give an http:// or https:// URL", d->ep.display, display);
	if (d->ep.user || d->ep.query)
		return error("--s3-endpoint '%s': no user name or query here: credentials come from "
			     "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", d->ep.display);
	size_t n = strlen(d->ep.path);
	while (n > 1 && d->ep.path[n - 1] == '/')
		d->ep.path[--n] = '\0';
	bool v6 = strchr(d->ep.host, ':') != NULL;
	char port[16] = "";
	if (d->ep.port)
		snprintf(port, sizeof port, ":%d", d->ep.port);
	d->host_header = xasprintf("Host: %s%s%s%s", v6 ? "[" : "", d->ep.host, v6 ? "]" : "", port);
	d->c = net_curl(o);
	curl_easy_setopt(d->c, CURLOPT_FOLLOWLOCATION, 0L);
	return 0;
}

/* The bucket answers a signed listing: it exists and the keys are good. */
static int check_bucket(struct s3_dest *d)
{
	struct s3_req q = { .method = "GET", .query = "max-keys=1" };
	struct s3_resp r = { 0 };
	char what[600];
	snprintf(what, sizeof what, "check bucket '%s' at %s", d->bucket, d->ep.display);
	int ret = s3_call(d, &q, &r, what);
	resp_reset(&r);
	return ret;
}

static int check_key(struct s3_dest *d, bool force)
{
	struct s3_req q = { .method = "HEAD", .key = d->key, .ok_404 = true };
	struct s3_resp r = { 0 };
	int ret = s3_call(d, &q, &r, "check whether the image exists");
	long code = r.code;
	resp_reset(&r);
	if (ret < 0 || code == 404)
		return ret;
	if (!force)
		return error("'%s' already exists: choose another key or pass --force to replace it", d->display);
	d->replacing = true;
	return 0;
}

static size_t choose_part_size(uint64_t est)
{
	uint64_t per = DIV_ROUND_UP(est, S3_PLANNED_PARTS);
	per = ROUND_UP(per, (uint64_t)MiB);
	per = MAX(per, (uint64_t)S3_MIN_PART);
	return (size_t)MIN(per, (uint64_t)S3_MAX_PART);
}

int dest_s3_open(struct sink *s, const char *url, const struct dest_options *o)
{
	struct s3_dest *d = xcalloc(1, sizeof *d);
	s->ops = &s3_ops;
	s->priv = d;
	d->o = *o;
	d->region = xstrdup(o->s3_region ? o->s3_region : "us-east-1");
	CLEANUP_FREE char *shown = url_redact(url);
	if (parse_s3_url(shown, d) < 0 || read_credentials(d, shown) < 0 || open_endpoint(d, o, shown) < 0)
		goto fail;
	s->display = xstrdup(d->display);
	s->tls_insecure = o->insecure && strcmp(d->ep.scheme, "https") == 0;
	/* Prepare answers quickly: a wrong endpoint should not wait out the copy's reconnect budget. */
	d->o.retries = MIN(o->retries, 2u);
	if (check_bucket(d) < 0 || check_key(d, o->force) < 0 || create_upload(d) < 0)
		goto fail;
	d->o.retries = o->retries;
	d->part_size = choose_part_size(o->est_size);
	d->buf = xmalloc(d->part_size);
	return 0;
fail:
	s3_abort(s);
	s3_free(s);
	return -1;
}
