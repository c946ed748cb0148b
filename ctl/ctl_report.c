/*
 * ctl_report.c - "report": the acceptance report of the migration, per
 * account and in total (ctl_report_p.h), as Markdown (the default),
 * JSON or self-contained HTML, on stdout or into a file.
 *
 * With -o FILE the report is written to a temporary file beside FILE
 * and renamed over it once complete, so a failed run leaves FILE as it
 * was and no partial file behind.  The format defaults to html when
 * FILE ends in ".html", md otherwise (--json alone means json).  Exit
 * 0 whatever the verdict (the verdict is in the report), 2 for bad
 * input or an unreadable store, 1 when the output cannot be written.
 */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "ctl.h"
#include "ctl_report_p.h"

static const struct {
	const char	*name;
	int		(*fn)(FILE *, const struct rpt *);
} formats[] = {
	{ "md", rpt_render_md },
	{ "json", rpt_render_json },
	{ "html", rpt_render_html },
};

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return (n >= m && strcasecmp(s + n - m, suffix) == 0);
}

/* write_file - render into a temporary file beside path, then rename */
static int
write_file(const char *path, int (*fn)(FILE *, const struct rpt *),
    const struct rpt *r)
{
	char tmp[4096];
	FILE *fp;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >=
	    (int)sizeof(tmp)) {
		fprintf(stderr, "ferryctl: report: -o: path too long\n");
		return (EXIT_USAGE);
	}
	if ((fd = mkstemp(tmp)) == -1) {
		fprintf(stderr, "ferryctl: report: cannot create %s: %s\n",
		    tmp, strerror(errno));
		return (EXIT_USAGE);
	}
	(void)fchmod(fd, 0644);
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		(void)unlink(tmp);
		fprintf(stderr, "ferryctl: report: %s\n", strerror(errno));
		return (EXIT_RUNTIME);
	}
	rc = fn(fp, r);
	if (fflush(fp) == EOF || ferror(fp) || fsync(fileno(fp)) == -1)
		rc = -1;
	if (fclose(fp) == EOF)
		rc = -1;
	if (rc == 0 && rename(tmp, path) == -1) {
		fprintf(stderr, "ferryctl: report: cannot rename %s to %s: "
		    "%s\n", tmp, path, strerror(errno));
		(void)unlink(tmp);
		return (EXIT_USAGE);
	}
	if (rc != 0) {
		fprintf(stderr, "ferryctl: report: cannot write %s\n", tmp);
		(void)unlink(tmp);
		return (EXIT_RUNTIME);
	}
	return (0);
}

int
cmd_report(struct ctl *ctl, const char *arg)
{
	int (*fn)(FILE *, const struct rpt *) = NULL;
	const char *fmt = ctl->format;
	struct rpt r;
	char buf[64];
	size_t i;
	int rc;

	(void)arg;
	if (fmt == NULL && ctl->json)
		fmt = "json";
	if (fmt == NULL)
		fmt = ctl->output != NULL && ends_with(ctl->output, ".html") ?
		    "html" : "md";
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(fmt, formats[i].name) == 0)
			fn = formats[i].fn;
	if (fn == NULL) {
		fprintf(stderr, "ferryctl: report: unknown format \"%s\" "
		    "(html, json or md)\n", clean(buf, sizeof(buf), fmt, 40));
		return (EXIT_USAGE);
	}
	if (ctl->output != NULL && ctl->output[0] == '\0') {
		fprintf(stderr, "ferryctl: report: -o: empty file name\n");
		return (EXIT_USAGE);
	}
	if ((rc = rpt_gather(ctl, ctl->account, &r)) != 0)
		return (rc);
	if (ctl->output != NULL)
		rc = write_file(ctl->output, fn, &r);
	else if (fn(stdout, &r) == -1 || fflush(stdout) == EOF) {
		fprintf(stderr, "ferryctl: report: cannot write the report\n");
		rc = EXIT_RUNTIME;
	}
	rpt_free(&r);
	return (rc);
}
