/* net.c - URL parsing, credentials and libcurl defaults shared by the network
 * destinations. Passwords live only in struct url and in libcurl's handle: every message
 * uses url->display, which has none. */
#define _GNU_SOURCE
#include "net.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

/* Where the live image (and Debian) keeps the system CA bundle. */
#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode [s, s+n) into a new string; NULL on a bad escape or an embedded NUL. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

char *url_redact(const char *text)
{
	const char *start = strstr(text, "://");
	start = start ? start + 3 : text;
	const char *end = start + strcspn(start, "/?#");
	const char *at = NULL;
	for (const char *p = start; p < end; p++)
		if (*p == '@')
			at = p;
	const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
	if (!colon)
		return xstrdup(text);
	return xasprintf("%.*s%s", (int)(colon - text), text, at);
}

static int parse_authority(const char *a, size_t n, struct url *u, const char *shown)
{
	const char *at = NULL;
	for (const char *p = a; p < a + n; p++)
		if (*p == '@')
			at = p;
	if (at) {
		const char *colon = memchr(a, ':', (size_t)(at - a));
		size_t ulen = colon ? (size_t)(colon - a) : (size_t)(at - a);
		u->user = pct_decode(a, ulen);
		if (colon)
			u->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
		if (!u->user || (colon && !u->password))
			return error("destination '%s': bad %%-escape in the user name or password", shown);
		n -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	const char *port = NULL;
	if (n && a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (!close)
			return error("destination '%s': unterminated [IPv6] address", shown);
		u->host = xstrndup(a + 1, (size_t)(close - a - 1));
		if (close + 1 < a + n) {
			if (close[1] != ':')
				return error("destination '%s': unexpected text after the [IPv6] address", shown);
			port = close + 2;
		}
	} else {
		const char *colon = memchr(a, ':', n);
		u->host = xstrndup(a, colon ? (size_t)(colon - a) : n);
		if (colon)
			port = colon + 1;
	}
	if (!u->host[0])
		return error("destination '%s': no host name", shown);
	if (port) {
		char *endp;
		long v = strtol(port, &endp, 10);
		if (endp != a + n || v < 1 || v > 65535)
			return error("destination '%s': port must be a number from 1 to 65535", shown);
		u->port = (int)v;
	}
	return 0;
}

int url_parse(const char *text, struct url *u)
{
	*u = (struct url){ 0 };
	CLEANUP_FREE char *shown = url_redact(text);
	const char *sep = strstr(text, "://");
	if (!sep || sep == text)
		return error("destination '%s' is not a URL (scheme://host/path)", shown);
	u->scheme = xstrndup(text, (size_t)(sep - text));
	for (char *p = u->scheme; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *a = sep + 3;
	size_t alen = strcspn(a, "/?#");
	if (parse_authority(a, alen, u, shown) < 0)
		goto fail;
	const char *rest = a + alen;
	size_t plen = strcspn(rest, "?#");
	u->path = plen ? pct_decode(rest, plen) : xstrdup("/");
	if (!u->path) {
		error("destination '%s': bad %%-escape in the path", shown);
		goto fail;
	}
	if (rest[plen] == '?')
		u->query = xstrndup(rest + plen + 1, strcspn(rest + plen + 1, "#"));
	u->display = xstrdup(shown);
	return 0;
fail:
	url_free(u);
	return -1;
}

void url_free(struct url *u)
{
	if (u->password) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->scheme);
	free(u->user);
	free(u->host);
	free(u->path);
	free(u->query);
	free(u->display);
	*u = (struct url){ 0 };
}

char *url_encode_path(const char *path)
{
	static const char keep[] = "-._~/!$&'()*+,;=:@";
	size_t n = strlen(path);
	char *out = xmalloc(3 * n + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || strchr(keep, *p))
			*o++ = (char)*p;
		else
			o += sprintf(o, "%%%02X", *p);
	}
	*o = '\0';
	return out;
}

char *url_for_curl(const struct url *u, const char *path)
{
	CLEANUP_FREE char *enc = url_encode_path(path ? path : u->path);
	bool v6 = strchr(u->host, ':') != NULL;
	char port[16] = "";
	if (u->port)
		snprintf(port, sizeof port, ":%d", u->port);
	return xasprintf("%s://%s%s%s%s%s%s%s", u->scheme, v6 ? "[" : "", u->host, v6 ? "]" : "", port, enc,
			 u->query ? "?" : "", u->query ? u->query : "");
}

static char *read_password_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		error("read password file '%s': %m", path);
		return NULL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		error("password file '%s' is empty: put the password on its first line", path);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return line;
}

static char *prompt_password(const char *display)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct termios old, quiet;
	bool echo_off = tcgetattr(fd, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	dprintf(fd, "Password for %s: ", display);
	char buf[512];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &old);
	dprintf(fd, "\n");
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	char *pw = xstrdup(buf);
	explicit_bzero(buf, sizeof buf);
	return pw;
}

int net_password(struct url *u, const struct dest_options *o, bool required)
{
	if (u->password)
		return 0;
	if (o->password_file) {
		u->password = read_password_file(o->password_file);
		return u->password ? 0 : -1;
	}
	const char *env = getenv("COLDCLONE_PASSWORD");
	if (env) {
		u->password = xstrdup(env);
		return 0;
	}
	if (!required)
		return 0;
	if (isatty(STDIN_FILENO))
		u->password = prompt_password(u->display);
	if (!u->password)
		return error("no password for '%s': set COLDCLONE_PASSWORD, use --password-file FILE, or run "
			     "interactively to be asked",
			     u->display);
	return 0;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void net_global_init(void)
{
	pthread_once(&global_once, global_init_once);
}

CURL *net_curl(const struct dest_options *o)
{
	net_global_init();
	CURL *c = curl_easy_init();
	if (!c) {
		error("out of memory: libcurl could not start a connection");
		exit(1);
	}
	long timeout = o->timeout ? (long)o->timeout : 60;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "coldclone/" COLDCLONE_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout < 30 ? timeout : 30L);
	/* A connection moving less than 1 byte/s for `timeout` seconds is dead. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	if (o->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (o->ca_file) {
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	} else {
		curl_easy_setopt(c, CURLOPT_CAINFO, SYSTEM_CA_BUNDLE);
	}
	return c;
}

int net_backoff(const struct dest_options *o, unsigned attempt, const char *display, const char *why)
{
	unsigned max = o->retries;
	if (attempt > max)
		return error("'%s': %s; gave up after %u reconnect attempt%s: check the network and the server, "
			     "then run the clone again",
			     display, why, max, max == 1 ? "" : "s");
	unsigned wait = attempt >= 6 ? 30 : 1u << (attempt - 1);
	warning("'%s': %s; reconnecting in %u s (attempt %u of %u)", display, why, wait, attempt, max);
	sleep(wait);
	return 0;
}

bool net_retryable(CURLcode rc, long http_code)
{
	switch (rc) {
	case CURLE_OK:
	case CURLE_HTTP_RETURNED_ERROR:
		return http_code >= 500 || http_code == 408 || http_code == 429;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSH:
	case CURLE_UPLOAD_FAILED:
		return true;
	default:
		return false;
	}
}

static const char *http_advice(long code)
{
	switch (code) {
	case 401:
		return "the server refused the credentials: check the user name and password";
	case 403:
		return "access denied: the account may not write there";
	case 404:
		return "not found: check the path (and that the folder exists)";
	case 405:
		return "the server does not allow this method there: is it a WebDAV/upload URL?";
	case 409:
		return "conflict: a parent folder is missing or the name is taken";
	case 413:
		return "the server refused the size: raise its upload limit (nginx client_max_body_size)";
	case 507:
		return "the destination is out of space";
	default:
		return code >= 500 ? "server error (a full disk or wrong permissions on the server are common causes): "
				     "see the server's log"
				   : "unexpected reply";
	}
}

const char *net_describe(CURLcode rc, long http_code, const char *curl_errbuf, char *buf, size_t len)
{
	if ((rc == CURLE_OK || rc == CURLE_HTTP_RETURNED_ERROR) && http_code >= 300) {
		snprintf(buf, len, "HTTP %ld: %s", http_code, http_advice(http_code));
		return buf;
	}
	const char *msg = curl_errbuf && curl_errbuf[0] ? curl_errbuf : curl_easy_strerror(rc);
	const char *advice = "";
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
		advice = " (the server's certificate is not trusted: give its CA with --ca-file, or --insecure)";
	else if (rc == CURLE_COULDNT_CONNECT)
		advice = " (is the server up and the port right? is a firewall in the way?)";
	else if (rc == CURLE_COULDNT_RESOLVE_HOST)
		advice = " (check the host name and the DNS server from DHCP or coldclone.ip)";
	else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_WEIRD_SERVER_REPLY)
		advice = " (the server does not speak HTTP there: check the port, and http vs https)";
	else if (rc == CURLE_LOGIN_DENIED)
		advice = " (check the user name, password or key)";
	snprintf(buf, len, "%s%s", msg, advice);
	return buf;
}

size_t net_hash_body(char *data, size_t size, size_t n, void *md_ctx)
{
	EVP_DigestUpdate(md_ctx, data, size * n);
	return size * n;
}
