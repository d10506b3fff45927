/* clonejob.h - one disk cloned into one image: the three stages of `coldclone clone`
 * (prepare, copy, finish) on a job, shared by the single-disk command and the
 * whole-machine job (machine.c). Every check that can fail runs in prepare, before the
 * first data block is read. */
#ifndef COLDCLONE_CLONEJOB_H
#define COLDCLONE_CLONEJOB_H

#include <stdbool.h>
#include <stdint.h>

#include "dest.h"
#include "digest.h"
#include "format.h"
#include "layout.h"
#include "pipeline.h"
#include "progress.h"
#include "sink.h"
#include "source.h"
#include "vmdesc.h"

struct clone_opts {
	const char *source;
	const char *output;
	const char *format;
	bool all_blocks;
	bool force;
	enum progress_mode progress;
	uint64_t max_unreadable;   /* sectors; UINT64_MAX = no limit */
	uint32_t sector_size;      /* 0 = detect */
	unsigned workers;
	int compress_level;        /* vmdk-stream deflate level; 0 = default */
	bool verify;               /* read the image back from the destination */
	struct dest_options dest;  /* TLS, credentials, S3, SSH, retries */
	bool all;                  /* --all: every disk of the machine (machine.c) */
	const char *disks[32];     /* --disk NAME (repeatable): only these with --all */
	unsigned ndisks;
	const char *name;          /* --name: machine name for --all */
	struct vm_overrides vm;    /* --vm-cpus ... for the VM descriptors */
};

/* What a finished (or failed) job leaves for the machine manifest and VM descriptors,
 * kept after clonejob_release. */
struct clone_summary {
	char source[256], model[128], serial[128];
	uint64_t source_size;
	uint32_t lsec;
	char table[8];             /* gpt, mbr, none */
	bool uefi;                 /* an EFI system partition is present */
	bool has_ntfs, has_linux;  /* filesystems seen: a hint at the guest OS */
	char image[512];           /* destination as shown (no password) */
	char file[256];            /* image file name, for descriptors */
	char format[16];
	uint64_t image_size, image_vsize;
	char sha256[65];
	int result;
};

struct clone_job {
	struct clone_opts o;
	struct source src;
	struct layout layout;
	struct extmap map;
	const struct fmt_ops *fmt;
	struct sink *sink;
	struct fmt_writer w;
	struct progress prog;
	struct content_digest digest;
	struct pipeline_stats stats;
	char started[32];
	double t0;
	char *output_shown;        /* o.output without any password, for messages */
	char *output_owned;        /* o.output when the job made it (--all) */
	int result;                /* exit code of this job */
	struct clone_summary sum;  /* filled by prepare and finish */
	bool released;
};

/* Set up a job for one source and output (the output string is copied when owned). */
void clonejob_init(struct clone_job *j, const struct clone_opts *o, const char *source, const char *output,
		   bool own_output);
/* Each returns an EXIT_* code. */
int clonejob_prepare(struct clone_job *j);
int clonejob_copy(struct clone_job *j);    /* with whole retries for HTTP */
int clonejob_finish(struct clone_job *j);
void clonejob_release(struct clone_job *j);

#endif
