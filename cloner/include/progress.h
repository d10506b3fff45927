/* progress.h - progress on stderr while copying: a self-rewriting line on a terminal,
 * a line every few seconds otherwise, or one JSON object per line for machines. */
#ifndef COLDCLONE_PROGRESS_H
#define COLDCLONE_PROGRESS_H

#include "pipeline.h"

enum progress_mode { PROGRESS_PLAIN, PROGRESS_JSON, PROGRESS_NONE };

struct progress {
	enum progress_mode mode;
	const char *source;     /* shown in each line */
	double started;         /* now_seconds() at copy start */
	bool tty;               /* stderr is a terminal */
	double last_line;       /* when the last non-tty line was printed */
};

/* A second consumer of every event, whatever the mode: each stage change and every
 * progress_update call (about once a second; the sink thins them out), as a JSON object
 * {"event":"stage","stage","source","detail"} or {"event":"progress","stage":"copy",
 * "source","done","total","stored","percent","mb_per_s","eta_seconds","final"}. The sink
 * borrows ev (json_object_get to keep it) and is called from the copy's writer thread
 * too, so it must be thread-safe and quick. Process-wide, so the caller can set it once
 * (e.g. report_progress_hook with its reporter) before any clone starts; NULL removes it. */
struct json_object;
typedef void (*progress_sink_fn)(struct json_object *ev, void *opaque);
void progress_set_sink(progress_sink_fn fn, void *opaque);

int progress_parse_mode(const char *s, enum progress_mode *mode);
void progress_init(struct progress *p, enum progress_mode mode, const char *source);
/* A stage change: "prepare", "copy", "finish", with a short detail. */
void progress_stage(struct progress *p, const char *stage, const char *detail);
/* pipeline_progress_fn */
void progress_update(const struct pipeline_stats *st, void *opaque, int final);

#endif
