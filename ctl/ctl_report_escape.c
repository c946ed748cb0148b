/*
 * ctl_report_escape.c - text from the mail (subjects, From, folder
 * names, server errors) written into the Markdown and HTML reports so
 * that it reads as text and nothing else: no markup of its own, no
 * table cell ended early, no link, no control character.
 *
 * Markdown: every ASCII punctuation character that Markdown or a table
 * gives a meaning to is backslash-escaped ('|' included, so a cell
 * stays one cell); '<' and '&' too, because Markdown passes HTML
 * through.  HTML: & < > " ' as entities.  Both: a control character
 * (below 0x20, and DEL) is written as \xNN, so a line stays one line.
 * Bytes from 0x80 up pass unchanged: the verifier has already made its
 * strings valid UTF-8.
 */

#include <stdio.h>
#include <string.h>

#include "ctl_report_p.h"

int
rpt_md_text(FILE *fp, const char *s)
{
	static const char special[] = "\\`*_{}[]()<>#|!~&$";
	const unsigned char *p;
	int rc = 0;

	for (p = (const unsigned char *)(s ? s : ""); *p != '\0' && rc >= 0;
	    p++) {
		if (*p < 0x20 || *p == 0x7f)
			rc = fprintf(fp, "\\x%02X", *p);
		else if (strchr(special, *p) != NULL)
			rc = fprintf(fp, "\\%c", *p);
		else
			rc = fputc(*p, fp) == EOF ? -1 : 0;
	}
	return (rc < 0 ? -1 : 0);
}

int
rpt_html_text(FILE *fp, const char *s)
{
	const unsigned char *p;
	int rc = 0;

	for (p = (const unsigned char *)(s ? s : ""); *p != '\0' && rc >= 0;
	    p++) {
		switch (*p) {
		case '&':
			rc = fputs("&amp;", fp);
			break;
		case '<':
			rc = fputs("&lt;", fp);
			break;
		case '>':
			rc = fputs("&gt;", fp);
			break;
		case '"':
			rc = fputs("&quot;", fp);
			break;
		case '\'':
			rc = fputs("&#39;", fp);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				rc = fprintf(fp, "\\x%02X", *p);
			else
				rc = fputc(*p, fp) == EOF ? -1 : 0;
		}
	}
	return (rc < 0 ? -1 : 0);
}
