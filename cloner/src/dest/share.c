/* share.c - smb:// (cifs://) and nfs:// destinations: the kernel mounts the share on a private
 * mount point with mount(2) and text options (no mount.cifs, mount.nfs or rpcbind, which the
 * live image lacks), the file sink writes the image inside it, and free() unmounts.
 * It does not speak SMB or NFS itself: the kernel's cifs and nfs clients do. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dest.h"
#include "net.h"
#include "util.h"

extern char **environ;

#define SHARE_RUN_DIR "/run/coldclone"
#define SHARE_MAX_DIRS 32    /* folders created below the share, undone on abort */

struct share_dest {
	struct sink inner;           /* the file sink inside the mount */
	struct sink_ops ops;         /* inner's operations, wrapped; what s->ops points to */
	char *mnt;                   /* private mount point, or NULL */
	bool mounted;                /* mnt holds the share */
	char *path;                  /* the image's final name inside the mount */
	char version[16];            /* protocol version the mount got: "3.1.1", "4.2" ... */
	char *made[SHARE_MAX_DIRS];  /* folders we created, outermost first */
	unsigned nmade;
};

/* What differs between the two protocols. */
struct share_kind {
	const char *proto;     /* "SMB", "NFS" */
	const char *fstype;    /* for /proc/filesystems and mount(2) */
	const char *module;    /* the kernel module that provides fstype */
	const char *loaded;    /* in /proc/filesystems once `modules` are loaded */
	int port;              /* default TCP port */
	const char *const *modules; /* loaded before mounting: cifs's crypto has no usable softdeps */
};

static const char *const cifs_modules[] = {
	"cifs", "cifs_md4", "cifs_arc4", "gcm", "ccm", "cmac", "ecb", "ctr", "ghash_generic",
	"sha512_generic", NULL,
};
static const char *const nfs_modules[] = { "nfs", "nfsv3", "nfsv4", NULL };
static const struct share_kind kind_smb = { "SMB", "cifs", "cifs", "cifs", 445, cifs_modules };
static const struct share_kind kind_nfs = { "NFS", "nfs", "nfs", "nfs4", 2049, nfs_modules };

/* --- the wrapped file sink ----------------------------------------------------------------- */

static int share_write(struct sink *s, const void *buf, size_t len)
{
	struct share_dest *d = s->priv;
	return d->inner.ops->write(&d->inner, buf, len);
}

static int share_skip(struct sink *s, uint64_t len)
{
	struct share_dest *d = s->priv;
	return d->inner.ops->skip(&d->inner, len);
}

static int share_finish(struct sink *s)
{
	struct share_dest *d = s->priv;
	return d->inner.ops->finish(&d->inner);
}

static int share_publish(struct sink *s, const char *suffix, const void *buf, size_t len)
{
	struct share_dest *d = s->priv;
	return d->inner.ops->publish(&d->inner, suffix, buf, len);
}

#define SHARE_READBACK_CHUNK (1u << 20)

/* Read the published image back through the mount, not through the file sink's readback:
 * O_DIRECT makes the bytes come from the server rather than from this machine's page cache
 * (without it, the cache is dropped first), and messages name the URL, not the mount. */
static int share_readback(struct sink *s, uint8_t sha256[32])
{
	struct share_dest *d = s->priv;
	int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fd < 0 && errno == EINVAL) {
		fd = open(d->path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	}
	if (fd < 0)
		return error("read back '%s': open: %m", s->display);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = xaligned_alloc(4096, SHARE_READBACK_CHUNK);
	int r = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : error("initialise SHA-256: OpenSSL failed");
	uint64_t off = 0;
	while (r == 0) {
		ssize_t n = read(fd, buf, SHARE_READBACK_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = error("read back '%s' at offset %llu: %m", s->display, (unsigned long long)off);
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += (uint64_t)n;
	}
	unsigned int len = 0;
	if (r == 0)
		EVP_DigestFinal_ex(ctx, sha256, &len);
	EVP_MD_CTX_free(ctx);
	free(buf);
	close(fd);
	return r;
}

static void share_abort(struct sink *s)
{
	struct share_dest *d = s->priv;
	if (d->inner.ops)
		d->inner.ops->abort(&d->inner);
	/* Folders we made, innermost first; rmdir leaves any that hold something else. */
	for (unsigned i = d->nmade; i-- > 0;)
		rmdir(d->made[i]);
}

static void share_unmount(struct share_dest *d)
{
	if (d->mounted) {
		if (umount2(d->mnt, 0) < 0) {
			int e = errno;
			if (umount2(d->mnt, MNT_DETACH) < 0)
				warning("unmount '%s': %s; it stays mounted", d->mnt, strerror(e));
			else
				d->mounted = false;
		} else {
			d->mounted = false;
		}
	}
	if (d->mnt && !d->mounted)
		rmdir(d->mnt);
}

static void share_free(struct sink *s)
{
	struct share_dest *d = s->priv;
	if (!d)
		return;
	if (d->inner.ops)
		d->inner.ops->free(&d->inner);
	free(d->inner.display);
	share_unmount(d);
	for (unsigned i = 0; i < d->nmade; i++)
		free(d->made[i]);
	free(d->path);
	free(d->mnt);
	free(d);
	s->priv = NULL;
}

static const struct sink_ops share_ops_template = {
	.name = "share",
	.write = share_write,
	.skip = share_skip,
	.finish = share_finish,
	.publish = share_publish,
	.abort = share_abort,
	.readback = share_readback,
	.free = share_free,
};

/* --- preparing the mount -------------------------------------------------------------------- */

static bool fs_known(const char *fstype)
{
	FILE *f = fopen("/proc/filesystems", "re");
	if (!f)
		return true;  /* cannot tell: mount(2) will say */
	char line[128];
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		char *name = strrchr(line, '\t');
		name = name ? name + 1 : line;
		name[strcspn(name, "\n")] = '\0';
		found = strcmp(name, fstype) == 0;
	}
	fclose(f);
	return found;
}

/* modprobe -q -a MODULES..., quietly: the kernel's own request_module would load cifs but not
 * the crypto it needs (its softdep lines are ignored by busybox modprobe). */
static void load_modules(const struct share_kind *k)
{
	const char *argv[16] = { "modprobe", "-q", "-a" };
	size_t n = 3;
	for (const char *const *m = k->modules; *m && n < ARRAY_SIZE(argv) - 1; m++)
		argv[n++] = *m;
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	if (posix_spawnp(&pid, "modprobe", &fa, NULL, (char *const *)argv, environ) == 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	posix_spawn_file_actions_destroy(&fa);
}

/* Resolve host to one numeric address (the kernel needs ip=/addr=: it cannot use DNS here). */
static int resolve(const struct url *u, char *addr, size_t addrlen, struct sockaddr_storage *sa, socklen_t *salen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int r = getaddrinfo(u->host, NULL, &hints, &res);
	if (r != 0)
		return error("'%s': cannot resolve host '%s': %s (check the name, or the DNS server from DHCP "
			     "or coldclone.ip; an IP address works too)",
			     u->display, u->host, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
	r = getnameinfo((struct sockaddr *)sa, *salen, addr, (socklen_t)addrlen, NULL, 0, NI_NUMERICHOST);
	if (r != 0)
		return error("'%s': cannot print the address of '%s': %s", u->display, u->host, gai_strerror(r));
	return 0;
}

/* Connect once, with a short timeout, so an unreachable host or a wrong port gets a clear
 * message in seconds rather than after the kernel client's long retries. */
static int probe(const struct url *u, const struct share_kind *k, struct sockaddr_storage *sa, socklen_t salen,
		 int port, unsigned timeout)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else if (sa->ss_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;  /* cannot tell: the mount will say */
	int e = 0;
	if (connect(fd, (struct sockaddr *)sa, salen) < 0) {
		e = errno;
		if (e == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int n = poll(&p, 1, (int)timeout * 1000);
			socklen_t len = sizeof e;
			if (n == 0)
				e = ETIMEDOUT;
			else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
		}
	}
	close(fd);
	if (e == 0)
		return 0;
	if (e == ECONNREFUSED)
		return error("'%s': nothing answers on %s port %d of %s (connection refused): is the %s server "
			     "running, and is the port right?",
			     u->display, k->proto, port, u->host, k->proto);
	return error("'%s': cannot reach %s port %d of %s: %s (check the network, the address, and any "
		     "firewall between this machine and the server)",
		     u->display, k->proto, port, u->host, strerror(e));
}

/* Append ",key=value" (",key" when value is NULL) to the option string; for cifs a comma
 * inside a value is doubled. Every copy is wiped before it is freed: it may hold the password. */
static void opt_add(char **opts, const char *key, const char *value, bool double_commas)
{
	size_t n = value ? strlen(value) : 0, at = 0;
	char *v = xmalloc(2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		v[at++] = value[i];
		if (double_commas && value[i] == ',')
			v[at++] = ',';
	}
	v[at] = '\0';
	char *next = xasprintf("%s%s%s%s%s", *opts ? *opts : "", *opts ? "," : "", key, value ? "=" : "", v);
	if (*opts)
		explicit_bzero(*opts, strlen(*opts));
	free(*opts);
	explicit_bzero(v, at);
	free(v);
	*opts = next;
}

/* port=N when the URL names a port. */
static void opt_add_port(char **opts, int port)
{
	if (!port)
		return;
	char text[8];
	snprintf(text, sizeof text, "%d", port);
	opt_add(opts, "port", text, false);
}

static void opt_free(char **opts)
{
	if (*opts) {
		explicit_bzero(*opts, strlen(*opts));
		free(*opts);
	}
}
#define CLEANUP_OPTS __attribute__((cleanup(opt_free)))

/* Why a mount failed, in words, with what to do. */
static int mount_error(const struct url *u, const struct share_kind *k, const char *what, int e)
{
	bool smb = k == &kind_smb;
	switch (e) {
	case ENODEV:
		return error("this kernel has no %s client (%s module): cannot mount '%s': boot the coldclone "
			     "image, load the module (modprobe %s), or mount the share by hand and give a local path",
			     k->proto, k->module, u->display, k->module);
	case EPERM:
		if (geteuid() != 0)
			return error("mounting '%s' needs root: run coldclone as root, or mount the share by hand "
				     "and give a local path",
				     u->display);
		/* fall through */
	case EACCES:
	case EKEYREJECTED:
	case EKEYEXPIRED:
		if (smb)
			return error("'%s': the server refused the login (%s): check the user name and password "
				     "(URL, COLDCLONE_PASSWORD or --password-file), and that the user may use %s",
				     u->display, strerror(e), what);
		return error("'%s': the server refused to export %s to this machine (%s): add this machine's "
			     "address to the export's allowed clients",
			     u->display, what, strerror(e));
	case ENOENT:
	case ENXIO:
		if (smb)
			return error("'%s': the server has no share named '%s': check the share name (the first "
				     "folder of the path)",
				     u->display, what);
		return error("'%s': the server exports no '%s': check the export path (showmount -e on a "
			     "Linux machine lists them)",
			     u->display, what);
	case EOPNOTSUPP:
	case EPROTONOSUPPORT:
		return error("'%s': the server does not speak a %s version this client offers (%s): enable "
			     "%s on the server",
			     u->display, k->proto, strerror(e), smb ? "SMB 2.1 or 3" : "NFS version 3 or 4 over TCP");
	case ETIMEDOUT:
	case EHOSTDOWN:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ECONNREFUSED:
	case ECONNRESET:
		return error("'%s': the %s server stopped answering while mounting %s (%s): check the server, "
			     "the network and any firewall",
			     u->display, k->proto, what, strerror(e));
	default:
		return error("mount '%s' (%s): %s (the kernel log, dmesg, has the server's reason)", u->display,
			     what, strerror(e));
	}
}

/* The vers= the kernel reports for our mount (what was negotiated), or `asked`. */
static void mount_version(struct share_dest *d, const char *asked)
{
	snprintf(d->version, sizeof d->version, "%s", asked);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		char *mnt = strchr(line, ' ');
		for (int i = 0; mnt && i < 3; i++)  /* mount ID, parent ID, major:minor, root */
			mnt = strchr(mnt + 1, ' ');
		if (!mnt || strncmp(mnt + 1, d->mnt, strlen(d->mnt)) != 0 || mnt[1 + strlen(d->mnt)] != ' ')
			continue;
		char *v = strstr(mnt, ",vers=");
		if (v)
			snprintf(d->version, sizeof d->version, "%.*s", (int)strcspn(v + 6, ", \n"), v + 6);
	}
	free(line);
	fclose(f);
}

/* SMB: //HOST/SHARE with username, password, domain, ip and port options. vers=default offers
 * SMB 2.1 to 3.1.1 in one negotiation, so Windows Server 2008 R2 works as well as Samba 4. */
static int mount_smb(struct share_dest *d, const struct url *u, const char *share, const char *addr)
{
	CLEANUP_FREE char *user = NULL, *domain = NULL;
	if (u->user && u->user[0]) {
		/* smb://DOMAIN;user@host (the SMB URL draft) or DOMAIN\user. */
		size_t cut = strcspn(u->user, ";\\");
		if (u->user[cut]) {
			domain = xstrndup(u->user, cut);
			user = xstrdup(u->user + cut + 1);
		} else {
			user = xstrdup(u->user);
		}
		if (strchr(user, ',') || (domain && strchr(domain, ',')))
			return error("'%s': a comma in the user name or domain cannot be passed to the kernel", u->display);
	}
	bool v6 = strchr(addr, ':') != NULL;
	CLEANUP_FREE char *source = xasprintf("//%s%s%s/%s", v6 ? "[" : "", v6 ? addr : u->host, v6 ? "]" : "", share);
	CLEANUP_OPTS char *opts = NULL;
	opt_add(&opts, "vers", "default", false);
	opt_add(&opts, "ip", addr, false);
	opt_add_port(&opts, u->port);
	/* Guest: user "guest" with an empty password (the kernel's "guest" flag needs mount.cifs). */
	opt_add(&opts, "username", user ? user : "guest", false);
	opt_add(&opts, "password", user && u->password ? u->password : "", true);
	if (domain)
		opt_add(&opts, "domain", domain, false);
	opt_add(&opts, "file_mode", "0644", false);
	opt_add(&opts, "dir_mode", "0755", false);
	debug("mount -t cifs %s %s", source, d->mnt);
	if (mount(source, d->mnt, "cifs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0) {
		d->mounted = true;
		mount_version(d, "2.1+");
		return 0;
	}
	int e = errno;
	CLEANUP_FREE char *what = xasprintf("share '%s'", share);
	return mount_error(u, &kind_smb, e == ENOENT ? share : what, e);
}

/* NFS: HOST:/DIR with addr= and TCP. Version 4.2, 4.1, 4.0 need nothing but the server's port;
 * version 3 last (the kernel asks the server's rpcbind for mountd itself; no lock daemon, so
 * nolock). `dir` is tried whole, then shorter, so folders below the export can be created. */
static int mount_nfs_dir(struct share_dest *d, const struct url *u, const char *dir, const char *addr,
			 unsigned timeout, int *err)
{
	bool v6 = strchr(addr, ':') != NULL;
	CLEANUP_FREE char *source = xasprintf("%s%s%s:%s", v6 ? "[" : "", addr, v6 ? "]" : "", dir);
	static const char *const versions[] = { "4.2", "4.1", "4.0", "3" };
	char timeo[16];
	snprintf(timeo, sizeof timeo, "%u", (timeout ? timeout : 60) * 10);
	int e = 0;
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		CLEANUP_OPTS char *opts = NULL;
		opt_add(&opts, "vers", versions[i], false);
		opt_add(&opts, "proto", "tcp", false);
		opt_add(&opts, "addr", addr, false);
		opt_add_port(&opts, u->port);
		if (versions[i][0] == '3') {
			opt_add(&opts, "mountproto", "tcp", false);
			opt_add(&opts, "mountaddr", addr, false);
			opt_add(&opts, "nolock", NULL, false);
		}
		/* soft: a server that goes away fails the clone (exit 4) instead of hanging it. */
		opt_add(&opts, "soft", NULL, false);
		opt_add(&opts, "timeo", timeo, false);
		opt_add(&opts, "retrans", "2", false);
		debug("mount -t nfs %s %s -o %s", source, d->mnt, opts);
		if (mount(source, d->mnt, "nfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0) {
			d->mounted = true;
			mount_version(d, versions[i]);
			return 0;
		}
		e = errno;
		/* Only a version mismatch is worth another version: ENOENT or EACCES stay. */
		if (e != EPROTONOSUPPORT && e != EOPNOTSUPP && e != EINVAL)
			break;
	}
	*err = e;
	return -1;
}

static int mount_nfs(struct share_dest *d, const struct url *u, char *dir, const char *addr, unsigned timeout,
		     const char **below)
{
	int e = 0;
	for (;;) {
		if (mount_nfs_dir(d, u, dir, addr, timeout, &e) == 0) {
			*below = u->path + strlen(dir);
			return 0;
		}
		/* A folder that does not exist yet: mount its parent and create it there. */
		char *slash = strrchr(dir, '/');
		if (e != ENOENT || !slash || slash == dir)
			break;
		*slash = '\0';
	}
	return mount_error(u, &kind_nfs, dir, e);
}

/* mkdir -p the folders of rel below the mount, remembering what we made. */
static int make_dirs(struct share_dest *d, const struct url *u, const char *rel)
{
	CLEANUP_FREE char *path = xasprintf("%s/%s", d->mnt, rel);
	char *end = strrchr(path, '/');
	*end = '\0';  /* the folder of the image */
	for (char *p = path + strlen(d->mnt) + 1; p <= end; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char save = *p;
		*p = '\0';
		if (p > path + strlen(d->mnt) + 1 && p[-1] != '/') {
			if (mkdir(path, 0755) == 0) {
				if (d->nmade < SHARE_MAX_DIRS)
					d->made[d->nmade++] = xstrdup(path);
			} else if (errno != EEXIST) {
				int e = errno;
				*p = save;
				return error("'%s': create folder '%s' on the share: %s%s", u->display,
					     path + strlen(d->mnt), strerror(e),
					     e == EACCES || e == EPERM
						     ? " (the account may not write there; on NFS, root is often mapped "
						       "to an anonymous user: allow it to write, or export with no_root_squash)"
						     : "");
			}
		}
		*p = save;
	}
	return 0;
}

/* --- open ---------------------------------------------------------------------------------- */

/* A path component that would step out of the mount or is empty. */
static bool bad_component(const char *path)
{
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n;
		p += *p == '/';
	}
	return false;
}

static int share_open(struct sink *s, struct share_dest *d, struct url *u, const struct dest_options *o)
{
	bool smb = strcmp(u->scheme, "nfs") != 0;
	const struct share_kind *k = smb ? &kind_smb : &kind_nfs;
	const char *example = smb ? "smb://[USER@]HOST[:PORT]/SHARE/FOLDER/FILE" : "nfs://HOST[:PORT]/EXPORT/FOLDER/FILE";

	/* u->path: /SHARE/REL (SMB) or /EXPORT.../REL (NFS); REL ends in the image's name. */
	const char *p = u->path + 1;
	size_t first = strcspn(p, "/");
	if (first == 0 || !p[first] || !p[first + 1] || u->path[strlen(u->path) - 1] == '/')
		return error("'%s': give the image's file name after the %s: %s", u->display,
			     smb ? "share" : "export", example);
	if (bad_component(u->path) || strstr(u->path, "//"))
		return error("'%s': the path may not hold empty, '.' or '..' folders", u->display);
	if (u->query)
		return error("'%s': %s URLs take no ?options", u->display, k->proto);

	if (!fs_known(k->loaded))
		load_modules(k);
	if (!fs_known(k->fstype))
		return mount_error(u, k, "", ENODEV);
	if (geteuid() != 0)
		return mount_error(u, k, "", EPERM);
	if (smb && u->user && u->user[0] && net_password(u, o, true) < 0)
		return -1;
	if (!smb && u->user)
		warning("'%s': NFS does not log in: the user name is ignored", u->display);

	char addr[NI_MAXHOST];
	struct sockaddr_storage sa;
	socklen_t salen = 0;
	if (resolve(u, addr, sizeof addr, &sa, &salen) < 0)
		return -1;
	unsigned timeout = o->timeout ? o->timeout : 60;
	if (probe(u, k, &sa, salen, u->port ? u->port : k->port, timeout < 15 ? timeout : 15) < 0)
		return -1;

	if (mkdir(SHARE_RUN_DIR, 0700) < 0 && errno != EEXIST)
		d->mnt = xstrdup("/tmp/coldclone-mnt-XXXXXX");
	else
		d->mnt = xstrdup(SHARE_RUN_DIR "/mnt-XXXXXX");
	if (!mkdtemp(d->mnt)) {
		int e = errno;
		free(d->mnt);
		d->mnt = NULL;
		return error("'%s': create a mount point: %s", u->display, strerror(e));
	}

	const char *rel;  /* the image below the mount, without a leading '/' */
	if (smb) {
		CLEANUP_FREE char *share = xstrndup(p, first);
		if (mount_smb(d, u, share, addr) < 0)
			return -1;
		rel = p + first + 1;
	} else {
		CLEANUP_FREE char *dir = xstrdup(u->path);
		*strrchr(dir, '/') = '\0';
		const char *below = u->path;
		if (mount_nfs(d, u, dir, addr, o->timeout, &below) < 0)
			return -1;
		rel = below + 1;
	}
	info("%s mounted at %s (%s %s)", u->display, d->mnt, k->proto, d->version);

	if (make_dirs(d, u, rel) < 0)
		return -1;
	d->path = xasprintf("%s/%s", d->mnt, rel);
	struct stat st;
	if (!o->force && stat(d->path, &st) == 0)
		return error("'%s' already exists: choose another name or pass --force to replace it", u->display);
	struct statvfs vfs;
	if (statvfs(d->mnt, &vfs) == 0) {
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		char need[32], have[32];
		if (avail < o->est_size)
			return error("not enough space on '%s': need about %s, %s free; free space or choose "
				     "another destination",
				     u->display, fmt_size(o->est_size, need, sizeof need), fmt_size(avail, have, sizeof have));
	}
	if (dest_file_open(&d->inner, d->path, o) < 0) {
		d->inner.ops = NULL;  /* dest_file_open freed its own state */
		return error("'%s' (mounted at %s) did not take the image: a read-only share, or an account "
			     "that may not write there? Ask for write access or choose another folder",
			     u->display, d->mnt);
	}
	d->ops = share_ops_template;
	d->ops.name = smb ? "smb" : "nfs";
	if (!d->inner.ops->skip)
		d->ops.skip = NULL;
	s->ops = &d->ops;
	return 0;
}

int dest_share_open(struct sink *s, const char *url, const struct dest_options *o)
{
	struct url u;
	if (url_parse(url, &u) < 0)
		return -1;
	struct share_dest *d = xcalloc(1, sizeof *d);
	s->priv = d;
	s->display = xstrdup(u.display);
	int r = share_open(s, d, &u, o);
	url_free(&u);
	if (r < 0) {
		share_abort(s);
		share_free(s);
		return -1;
	}
	return 0;
}
