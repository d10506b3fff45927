/* dest.h - constructors of the sink implementations in src/dest/. Each fills s->ops,
 * s->display and s->priv, checks it can write (and has space for est_size bytes where
 * the destination can tell) before any data is read from the source. */
#ifndef COLDCLONE_DEST_H
#define COLDCLONE_DEST_H

#include <stdbool.h>
#include <stdint.h>

#include "sink.h"

/* What the command line (or config) says about the destination. */
struct dest_options {
	uint64_t est_size;          /* estimated image size, for the space check */
	bool force;                 /* overwrite an existing image */
	const char *ca_file;        /* extra CA bundle for TLS (--ca-file) */
	bool insecure;              /* --insecure: no TLS verification (loud, in the manifest) */
	const char *s3_endpoint;    /* --s3-endpoint URL (default https://s3.REGION.amazonaws.com) */
	const char *s3_region;      /* --s3-region (default us-east-1) */
	const char *ssh_fingerprint;/* --ssh-fingerprint SHA256:base64 of the server's host key */
	const char *known_hosts;    /* --known-hosts FILE (default ~/.ssh/known_hosts) */
	const char *ssh_key;        /* --ssh-key FILE: private key for SFTP */
	const char *password_file;  /* --password-file FILE: first line is the password */
	unsigned retries;           /* reconnect attempts after a network failure */
	unsigned timeout;           /* seconds without progress before a connection is dead */
};

int dest_file_open(struct sink *s, const char *path, const struct dest_options *o);
/* http:// https://, including vSphere datastore URLs (?dcPath=&dsName=). */
int dest_http_open(struct sink *s, const char *url, const struct dest_options *o);
/* A vSphere datastore file URL: http(s) with ?dcPath= or &dsName= in its query. */
bool dest_is_vsphere(const char *url);
/* s3://BUCKET/KEY */
int dest_s3_open(struct sink *s, const char *url, const struct dest_options *o);
/* sftp://USER@HOST[:PORT]/PATH */
int dest_sftp_open(struct sink *s, const char *url, const struct dest_options *o);
/* smb://[USER@]HOST[:PORT]/SHARE/PATH and nfs://HOST/EXPORT/PATH: kernel mount + file. */
int dest_share_open(struct sink *s, const char *url, const struct dest_options *o);

#endif
