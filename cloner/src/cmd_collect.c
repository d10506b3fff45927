/* cmd_collect.c - `coldclone collect --listen ADDR:PORT`: a small HTTP/1.1 server taking the
 * JSON events of report.h from many machines, and showing one line per machine (a table
 * redrawn on a terminal, else one line per event). One thread, poll(), non-blocking sockets;
 * every request is bounded in size and time, so a bad client costs one connection slot
 * for at most a few seconds. It stores nothing: the images and manifests are elsewhere. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "commands.h"
#include "util.h"

#define MAX_CONNS 256
#define MAX_HEADER (16 * 1024)
#define MAX_BODY (1024 * 1024)
#define REQUEST_SECONDS 10.0  /* from a request's first byte to its last */
#define IDLE_SECONDS 30.0     /* a kept-alive connection with nothing to say */
#define DRAIN_SECONDS 2.0     /* after an error reply, read what the client still sends */
#define MAX_MACHINES 10000
#define REDRAW_SECONDS 0.25

struct conn {
	int fd;
	char peer[64];           /* "ADDR:PORT" for messages */
	char *buf;               /* request bytes; capacity MAX_HEADER + MAX_BODY + 1 at most */
	size_t len, cap;
	size_t body_off;         /* headers parsed: where the body starts (0: not yet) */
	size_t body_len;         /* Content-Length */
	bool keep_alive;
	bool draining;           /* error sent: discard input until EOF or the deadline */
	double started;          /* first byte of the current request, 0 when none */
	double last;             /* last activity */
};

struct machine {
	char *name;
	char stage[16];
	char source[48];
	double percent, mb_per_s;
	double eta;              /* seconds, < 0 unknown */
	bool has_progress;
	bool final, ok;
	long rc;
	char reason[120];
	uint64_t last_seq;
};

struct collector {
	int lfd;
	char listen_shown[128];
	struct conn conns[MAX_CONNS];
	size_t nconns;
	struct machine *machines;
	size_t nmachines;
	size_t finals, failed;   /* machines with a result; of them not ok */
	bool tty;
	bool dirty;
	double last_draw;
};

/* Text from the network made safe for a terminal: no control characters, length capped. */
static void clean_copy(char *dst, size_t dstlen, const char *src)
{
	size_t n = 0;
	for (; src && *src && n + 1 < dstlen; src++)
		dst[n++] = (unsigned char)*src < 0x20 || *src == 0x7f ? '?' : *src;
	dst[n] = '\0';
}

static void clock_hms(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, n, "%H:%M:%S", &tm);
}

static int listen_on(struct collector *c, const char *spec)
{
	CLEANUP_FREE char *copy = xstrdup(spec);
	char *colon = strrchr(copy, ':');
	char *host = copy, *port;
	if (colon) {
		*colon = '\0';
		port = colon + 1;
	} else {
		host = NULL;
		port = copy;
	}
	if (host && host[0] == '[') {
		size_t l = strlen(host);
		if (l < 2 || host[l - 1] != ']')
			return error("--listen '%s': write ADDR:PORT, [IPv6]:PORT or :PORT", spec);
		host[l - 1] = '\0';
		host++;
	}
	if (host && !*host)
		host = NULL;
	uint64_t p;
	if (parse_u64(port, &p) < 0 || p > 65535 || !*port)
		return error("--listen '%s': the port must be a number from 0 to 65535", spec);
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return error("--listen '%s': %s", spec, gai_strerror(rc));
	int saved = 0;
	c->lfd = -1;
	for (struct addrinfo *ai = res; ai && c->lfd < 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			c->lfd = fd;
		} else {
			saved = errno;
			close(fd);
		}
	}
	freeaddrinfo(res);
	if (c->lfd < 0) {
		errno = saved;
		return error("listen on '%s': %m", spec);
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[INET6_ADDRSTRLEN] = "?";
	int bound = 0;
	if (getsockname(c->lfd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
			bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
			bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	snprintf(c->listen_shown, sizeof c->listen_shown, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", addr, bound);
	return 0;
}

static struct machine *machine_get(struct collector *c, const char *name)
{
	for (size_t i = 0; i < c->nmachines; i++)
		if (strcmp(c->machines[i].name, name) == 0)
			return &c->machines[i];
	if (c->nmachines >= MAX_MACHINES)
		return NULL;
	c->machines = xrealloc(c->machines, (c->nmachines + 1) * sizeof *c->machines);
	struct machine *m = &c->machines[c->nmachines++];
	*m = (struct machine){ .name = xstrdup(name), .stage = "-", .eta = -1 };
	return m;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v = json_object_object_get(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool num_field(json_object *o, const char *key, double *out)
{
	json_object *v = json_object_object_get(o, key);
	if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return false;
	*out = json_object_get_double(v);
	return *out == *out;  /* not NaN */
}

static void print_row(const struct machine *m, FILE *f)
{
	char eta[32] = "-", pct[16] = "-", rate[16] = "-", result[160];
	if (m->has_progress) {
		snprintf(pct, sizeof pct, "%.1f%%", m->percent);
		snprintf(rate, sizeof rate, "%.1f", m->mb_per_s);
		if (m->eta >= 0 && !m->final)
			fmt_duration(m->eta, eta, sizeof eta);
	}
	if (!m->final)
		snprintf(result, sizeof result, "-");
	else if (m->ok)
		snprintf(result, sizeof result, "ok");
	else
		snprintf(result, sizeof result, "FAIL rc=%ld%s%s", m->rc, m->reason[0] ? ": " : "", m->reason);
	fprintf(f, "%-24.24s %-8.8s %7s %8s %9s  %s\n", m->name, m->stage, pct, rate, eta, result);
}

static void print_table(struct collector *c, FILE *f)
{
	char now[16];
	clock_hms(now, sizeof now);
	fprintf(f, "coldclone collect on %s  %s  %zu machine%s, %zu finished (%zu ok, %zu failed)\n", c->listen_shown,
		now, c->nmachines, c->nmachines == 1 ? "" : "s", c->finals, c->finals - c->failed, c->failed);
	fprintf(f, "%-24s %-8s %7s %8s %9s  %s\n", "MACHINE", "STAGE", "PERCENT", "MB/s", "ETA", "RESULT");
	for (size_t i = 0; i < c->nmachines; i++)
		print_row(&c->machines[i], f);
}

static void redraw(struct collector *c, bool force)
{
	if (!c->tty || !c->dirty || (!force && now_seconds() - c->last_draw < REDRAW_SECONDS))
		return;
	fputs("\033[H\033[J", stdout);
	print_table(c, stdout);
	fflush(stdout);
	c->dirty = false;
	c->last_draw = now_seconds();
}

/* One line per event, for logs and pipes. */
static void print_event(const struct machine *m, const char *type, json_object *ev)
{
	char now[16], detail[160], src[48];
	clock_hms(now, sizeof now);
	clean_copy(src, sizeof src, str_field(ev, "source"));
	if (strcmp(type, "stage") == 0) {
		clean_copy(detail, sizeof detail, str_field(ev, "detail"));
		printf("%s %s stage %s%s%s\n", now, m->name, m->stage, detail[0] ? ": " : "", detail);
	} else if (strcmp(type, "progress") == 0) {
		char eta[32];
		printf("%s %s progress %s%s%.1f%% %.1f MB/s ETA %s\n", now, m->name, src, src[0] ? " " : "", m->percent,
		       m->mb_per_s, fmt_duration(m->eta >= 0 ? m->eta : 0, eta, sizeof eta));
	} else if (strcmp(type, "result") == 0) {
		if (m->ok)
			printf("%s %s result ok\n", now, m->name);
		else
			printf("%s %s result FAIL rc=%ld%s%s\n", now, m->name, m->rc, m->reason[0] ? ": " : "", m->reason);
	} else {
		clean_copy(detail, sizeof detail, type);
		printf("%s %s %s\n", now, m->name, detail);
	}
	fflush(stdout);
}

/* Apply one event; NULL when accepted, else why it is a bad request. */
static const char *apply_event(struct collector *c, json_object *ev)
{
	if (!json_object_is_type(ev, json_type_object))
		return "the body is not a JSON object";
	const char *type = str_field(ev, "event"), *name = str_field(ev, "machine");
	if (!type || !*type)
		return "no \"event\" string in the object";
	if (!name || !*name || strlen(name) > 128)
		return "no \"machine\" string (1 to 128 characters) in the object";
	char cname[129];
	clean_copy(cname, sizeof cname, name);
	struct machine *m = machine_get(c, cname);
	if (!m)
		return "too many machines";
	double d;
	if (num_field(ev, "seq", &d) && d >= 1 && d < 1e18) {
		uint64_t seq = (uint64_t)d;
		if (seq == m->last_seq)
			return NULL;  /* a resend of what we already have */
		m->last_seq = seq;
	}
	if (strcmp(type, "start") == 0) {
		if (m->final) {  /* the machine runs again */
			c->finals--;
			c->failed -= !m->ok;
		}
		m->final = m->has_progress = false;
		snprintf(m->stage, sizeof m->stage, "start");
	} else if (strcmp(type, "stage") == 0) {
		clean_copy(m->stage, sizeof m->stage, str_field(ev, "stage"));
	} else if (strcmp(type, "progress") == 0) {
		m->has_progress = true;
		snprintf(m->stage, sizeof m->stage, "copy");
		if (num_field(ev, "percent", &d) && d >= 0 && d <= 100)
			m->percent = d;
		if (num_field(ev, "mb_per_s", &d) && d >= 0 && d < 1e9)
			m->mb_per_s = d;
		m->eta = num_field(ev, "eta_seconds", &d) && d >= 0 && d < 1e9 ? d : -1;
	} else if (strcmp(type, "result") == 0) {
		json_object *ok = json_object_object_get(ev, "ok");
		bool was_final = m->final, was_ok = m->ok;
		m->final = true;
		m->ok = ok && json_object_is_type(ok, json_type_boolean) && json_object_get_boolean(ok);
		m->rc = num_field(ev, "rc", &d) && d > -1e9 && d < 1e9 ? (long)d : (m->ok ? 0 : -1);
		clean_copy(m->reason, sizeof m->reason, str_field(ev, "reason"));
		snprintf(m->stage, sizeof m->stage, "done");
		if (was_final) {
			c->finals--;
			c->failed -= !was_ok;
		}
		c->finals++;
		c->failed += !m->ok;
	}
	clean_copy(m->source, sizeof m->source, str_field(ev, "source"));
	c->dirty = true;
	if (!c->tty)
		print_event(m, type, ev);
	return NULL;
}

static void conn_close(struct collector *c, size_t i)
{
	close(c->conns[i].fd);
	free(c->conns[i].buf);
	c->conns[i] = c->conns[--c->nconns];
}

/* Send a whole small reply or give up: replies are a few hundred bytes, which a fresh
 * socket buffer always takes. */
static void reply(struct conn *k, int code, const char *reason, const char *body, bool close_after)
{
	char head[512];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n", code,
			 reason, code == 200 && body[0] == '{' ? "application/json" : "text/plain; charset=utf-8",
			 strlen(body), close_after ? "close" : "keep-alive");
	struct iovec iov[2] = { { head, (size_t)n }, { (void *)body, strlen(body) } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	if (sendmsg(k->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		k->draining = true;  /* gone; closed below */
}

/* Error reply, then read and discard until the client closes (so it sees the reply
 * rather than a reset), for at most DRAIN_SECONDS. */
static void reject(struct conn *k, int code, const char *reason, const char *why)
{
	CLEANUP_FREE char *body = xasprintf("%s\n", why);
	warning("%s: %d %s: %s", k->peer, code, reason, why);
	reply(k, code, reason, body, true);
	shutdown(k->fd, SHUT_WR);
	k->draining = true;
	k->last = now_seconds();
}

static bool header_is(const char *line, const char *name, const char **value)
{
	size_t n = strlen(name);
	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	*value = line + n + 1 + strspn(line + n + 1, " \t");
	return true;
}

/* Parse the request head in k->buf[0, end). 0 ok, -1 after a rejection. */
static int parse_head(struct collector *c, struct conn *k, size_t end, bool *is_get)
{
	k->buf[end] = '\0';  /* the head is text; the CR LF CR LF it ended with is ours now */
	char *save = NULL, *line = strtok_r(k->buf, "\r\n", &save);
	char method[16], target[1024], version[16];
	if (!line || sscanf(line, "%15s %1023s %15s", method, target, version) != 3 || strncmp(version, "HTTP/1.", 7) != 0) {
		reject(k, 400, "Bad Request", "not an HTTP/1.x request line");
		return -1;
	}
	k->keep_alive = strcmp(version, "HTTP/1.1") == 0;
	*is_get = false;
	bool has_len = false, chunked = false, expect = false;
	uint64_t len = 0;
	for (line = strtok_r(NULL, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		const char *v;
		if (header_is(line, "Content-Length", &v)) {
			if (parse_u64(v, &len) < 0 || !*v || v[strspn(v, "0123456789")] != '\0' || (has_len && len != k->body_len)) {
				reject(k, 400, "Bad Request", "bad Content-Length");
				return -1;
			}
			has_len = true;
			k->body_len = len > MAX_BODY ? MAX_BODY + 1 : (size_t)len;
		} else if (header_is(line, "Transfer-Encoding", &v)) {
			chunked = true;
		} else if (header_is(line, "Connection", &v)) {
			if (strcasecmp(v, "close") == 0)
				k->keep_alive = false;
			else if (strcasecmp(v, "keep-alive") == 0)
				k->keep_alive = true;
		} else if (header_is(line, "Expect", &v)) {
			expect = strcasecmp(v, "100-continue") == 0;
		} else if (!strchr(line, ':')) {
			reject(k, 400, "Bad Request", "a header line without ':'");
			return -1;
		}
	}
	if (strcmp(method, "GET") == 0) {
		*is_get = true;
		k->body_len = 0;
		return 0;
	}
	if (strcmp(method, "POST") != 0) {
		reject(k, 405, "Method Not Allowed", "POST JSON events here (GET shows the table)");
		return -1;
	}
	if (chunked || !has_len) {
		reject(k, 411, "Length Required", "send the event with a Content-Length");
		return -1;
	}
	if (len > MAX_BODY) {
		CLEANUP_FREE char *why = xasprintf("a body of %llu bytes is over the 1 MiB limit", (unsigned long long)len);
		reject(k, 413, "Content Too Large", why);
		return -1;
	}
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	if (expect && send(k->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		debug("%s: 100 Continue: %m", k->peer);
	(void)c;
	return 0;
}

/* Handle complete requests in k->buf. false when the connection is to be closed now. */
static bool serve(struct collector *c, struct conn *k)
{
	while (!k->draining && k->len) {
		bool is_get = false;
		if (!k->body_off) {
			char *end = memmem(k->buf, k->len, "\r\n\r\n", 4);
			if (!end) {
				if (k->len > MAX_HEADER)
					reject(k, 431, "Request Header Fields Too Large", "request head over 16 KiB");
				return true;
			}
			size_t head = (size_t)(end - k->buf);
			if (head > MAX_HEADER) {
				reject(k, 431, "Request Header Fields Too Large", "request head over 16 KiB");
				return true;
			}
			if (parse_head(c, k, head, &is_get) < 0)
				return true;
			k->body_off = head + 4;
			if (is_get) {
				char *text = NULL;
				size_t tlen = 0;
				FILE *f = open_memstream(&text, &tlen);
				if (f) {
					print_table(c, f);
					fclose(f);
				}
				reply(k, 200, "OK", text ? text : "", !k->keep_alive);
				free(text);
			}
		}
		if (!is_get) {
			if (k->len - k->body_off < k->body_len)
				return true;  /* more to come */
			char *body = k->buf + k->body_off;
			char saved = body[k->body_len];
			body[k->body_len] = '\0';
			json_tokener *tok = json_tokener_new_ex(32);
			json_object *ev = json_tokener_parse_ex(tok, body, (int)k->body_len);
			bool trailing = ev && body[tok->char_offset + strspn(body + tok->char_offset, " \t\r\n")] != '\0';
			const char *bad = !ev || json_tokener_get_error(tok) != json_tokener_success || trailing
				? "the body is not one JSON object" : apply_event(c, ev);
			json_object_put(ev);
			json_tokener_free(tok);
			body[k->body_len] = saved;
			if (bad) {
				reject(k, 400, "Bad Request", bad);
				return true;
			}
			reply(k, 200, "OK", "{\"ok\":true}", !k->keep_alive);
		}
		size_t used = k->body_off + (is_get ? 0 : k->body_len);
		memmove(k->buf, k->buf + used, k->len - used);
		k->len -= used;
		k->body_off = k->body_len = 0;
		k->started = k->len ? now_seconds() : 0;
		if (!k->keep_alive)
			return false;
	}
	return true;
}

/* Read what is there. false when the connection is to be closed. */
static bool conn_read(struct collector *c, struct conn *k)
{
	for (;;) {
		if (k->draining) {
			char sink[4096];
			ssize_t r = recv(k->fd, sink, sizeof sink, MSG_DONTWAIT);
			if (r > 0)
				continue;
			return r < 0 && (errno == EAGAIN || errno == EINTR);
		}
		if (k->cap - k->len < 4096 + 1) {
			size_t max = MAX_HEADER + 4 + MAX_BODY + 1;
			if (k->cap < max) {
				k->cap = MIN(max, k->cap ? k->cap * 4 : 8192);
				k->buf = xrealloc(k->buf, k->cap);
			} else if (k->len + 1 >= k->cap) {
				/* cannot happen: serve() takes any complete request and rejects an
				 * oversized one; defensive all the same */
				reject(k, 413, "Content Too Large", "request too large");
				continue;
			}
		}
		ssize_t r = recv(k->fd, k->buf + k->len, k->cap - k->len - 1, MSG_DONTWAIT);
		if (r == 0)
			return false;
		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		if (!k->started)
			k->started = now_seconds();
		k->len += (size_t)r;
		k->last = now_seconds();
		if (!serve(c, k))
			return false;
	}
}

static void accept_all(struct collector *c)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(c->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (c->nconns >= MAX_CONNS) {
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
			if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				debug("503 to a client: %m");
			close(fd);
			continue;
		}
		struct conn *k = &c->conns[c->nconns++];
		*k = (struct conn){ .fd = fd, .last = now_seconds() };
		char addr[INET6_ADDRSTRLEN] = "?";
		int port = 0;
		if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
		snprintf(k->peer, sizeof k->peer, "%s:%d", addr, port);
	}
}

/* Slow or idle clients give their slot back. */
static void expire(struct collector *c)
{
	double t = now_seconds();
	for (size_t i = c->nconns; i-- > 0;) {
		struct conn *k = &c->conns[i];
		if (k->draining) {
			if (t - k->last > DRAIN_SECONDS)
				conn_close(c, i);
		} else if (k->started && t - k->started > REQUEST_SECONDS) {
			reject(k, 408, "Request Timeout", "the request did not arrive within 10 s");
		} else if (!k->started && t - k->last > IDLE_SECONDS) {
			conn_close(c, i);
		}
	}
}

int cmd_collect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' }, { "once", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	const char *listen_spec = NULL;
	uint64_t once = 0;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "l:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen_spec = optarg; break;
		case 'o':
			if (parse_u64(optarg, &once) < 0 || once < 1 || once > MAX_MACHINES) {
				error("--once takes a number of machines from 1 to %d, not '%s'", MAX_MACHINES, optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': print_help("collect"); return EXIT_OK;
		default: error("see 'coldclone help collect'"); return EXIT_USAGE;
		}
	}
	if (optind < argc || !listen_spec) {
		error("collect needs --listen ADDR:PORT: see 'coldclone help collect'");
		return EXIT_USAGE;
	}
	struct collector *c = xcalloc(1, sizeof *c);
	if (listen_on(c, listen_spec) < 0) {
		free(c);
		return EXIT_USAGE;
	}
	c->tty = isatty(STDOUT_FILENO);
	c->dirty = true;
	bool any = strncmp(c->listen_shown, "0.0.0.0:", 8) == 0 || strncmp(c->listen_shown, "[::]:", 5) == 0;
	info("collecting on %s: machines report with coldclone.report=http://%s%s/", c->listen_shown,
	     any ? "THIS-HOST" : c->listen_shown, any ? strrchr(c->listen_shown, ':') : "");
	int rc = EXIT_OK;
	struct pollfd pfd[MAX_CONNS + 1];
	while (!once || c->finals < once) {
		if (interrupted) {
			rc = EXIT_INTERRUPTED;
			break;
		}
		redraw(c, false);
		pfd[0] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
		for (size_t i = 0; i < c->nconns; i++)
			pfd[i + 1] = (struct pollfd){ .fd = c->conns[i].fd, .events = POLLIN };
		size_t n = c->nconns;
		int r = poll(pfd, n + 1, 250);
		if (r < 0 && errno != EINTR) {
			rc = error("poll: %m") < 0 ? EXIT_INTERNAL : EXIT_OK;
			break;
		}
		/* Connections in reverse, so closing one (it swaps in the last) skips nothing. */
		for (size_t i = n; r > 0 && i-- > 0;)
			if (pfd[i + 1].revents && !conn_read(c, &c->conns[i]))
				conn_close(c, i);
		if (r > 0 && pfd[0].revents)
			accept_all(c);
		expire(c);
	}
	c->dirty = true;
	if (c->tty) {
		redraw(c, true);
	} else {
		print_table(c, stdout);
		fflush(stdout);
	}
	while (c->nconns)
		conn_close(c, c->nconns - 1);
	for (size_t i = 0; i < c->nmachines; i++)
		free(c->machines[i].name);
	free(c->machines);
	close(c->lfd);
	free(c);
	return rc;
}
