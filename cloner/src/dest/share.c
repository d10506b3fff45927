/* share.c - placeholder until this destination lands. */
#include "dest.h"
#include "util.h"

int dest_share_open(struct sink *s, const char *url, const struct dest_options *o)
{
	(void)s;
	(void)o;
	CLEANUP_FREE char *shown = xstrdup(url);
	return error("destination '%s' is not yet supported by this version: write to a local path", shown);
}
