/*
 * spf_p.h - relay/spf internals shared by spf.c and spf_record.c: the
 * RFC 7208 rules that libspf2 1.2.10 does not apply, enforced in our DNS
 * layer (every answer libspf2 sees passes through it, in evaluation
 * order, on the check's worker thread).
 *
 *   spf_record_precheck()  each SPF record as it comes out of DNS, before
 *                          libspf2 compiles it (section 6: modifiers)
 *   struct spf_count       the look-up limits of section 4.6.4 over one
 *                          whole check, includes and redirects included
 *
 * Pure code, no locking: a struct spf_count belongs to one check and is
 * used by the worker running it only.
 */
#ifndef FERRY_SPF_P_H
#define FERRY_SPF_P_H

#include <stddef.h>

#include "dns.h"

#define SPF_TERMS_MAX	10	/* 4.6.4: DNS-querying terms per check */
#define SPF_VOIDS_MAX	2	/* 4.6.4: void look-ups per check */
#define SPF_NAMES_MAX	10	/* 4.6.4: MX (else permerror) and PTR
				 * (the rest ignored) names per term */

enum spf_precheck {
	SPF_PRE_KEEP,		/* give libspf2 the record unchanged */
	SPF_PRE_REWRITTEN,	/* give it the rewritten text instead */
	SPF_PRE_PERMERROR	/* the record is a permerror: why says why */
};

/*
 * spf_is_record - does this TXT string hold an SPF record ("v=spf1"
 * alone or followed by a space, case-insensitive, section 4.5)?
 */
int	spf_is_record(const char *txt);

/*
 * struct spf_macro_env - the values of the macro letters (section 7.3)
 * that are known before libspf2 expands them, indexed by letter - 'a'
 * (v['d' - 'a'] is %{d}, the domain whose record it is); NULL: not
 * known (%{p}) or not used.
 */
struct spf_macro_env {
	const char	*v[26];
};

/*
 * spf_record_precheck - apply section 6 to one SPF record (a C string;
 * not an SPF record: SPF_PRE_KEEP).  out (outlen at least
 * SPF_PRE_OUTLEN(strlen(rec)); less may end in "record too long")
 * receives the text libspf2 must evaluate instead when the answer is
 * SPF_PRE_REWRITTEN:
 *   - more than one redirect= or more than one exp= modifier (6: "MUST
 *     NOT appear in a record more than once each"): SPF_PRE_PERMERROR;
 *   - redirect= in a record with an "all" mechanism anywhere (6.1: the
 *     modifier MUST be ignored): dropped;
 *   - redirect= elsewhere than at the end: moved to the end (6.1: it
 *     applies only once every mechanism failed to match; libspf2
 *     evaluates it in place, as if it were a mechanism);
 *   - exp= dropped: its explanation never changes the verdict (6.2) and
 *     the relay does not use it, so its DNS look-up (which section 4.6.4
 *     does not count but which would count as void in our tally) and
 *     macro expansion are not done at all.
 *   - a domain-spec that is missing or does not end as section 7.1 says
 *     ("a:", "include:", "a:192.0.2.1", "exp="): SPF_PRE_PERMERROR
 *     (libspf2 takes "a:" as the bare mechanism, and the others as
 *     names);
 *   - "ip4:ADDR/0" and "ip6:ADDR/0" (5.6 allows length 0, libspf2 does
 *     not): written as the two halves of the address space;
 *   - a macro "%{xN...}" whose N is at least the number of parts of x
 *     (known from env, may be NULL): written without N, which expands
 *     the same (7.3), because libspf2 then drops the value's first
 *     character.
 * Terms are separated by single or multiple spaces; the rewritten text
 * uses one.
 */
#define SPF_PRE_OUTLEN(n)	((n) * 4 + 64)

enum spf_precheck spf_record_precheck(const char *rec,
	    const struct spf_macro_env *env, char *out, size_t outlen,
	    char *why, size_t whylen);

/*
 * struct spf_count - the section 4.6.4 tallies of one check.
 *   terms    DNS-querying terms evaluated: include, redirect (their TXT
 *            look-up), a, mx, ptr, exists (their first look-up).  The
 *            check's own TXT look-up is not a term, nor are the address
 *            look-ups of the names an MX or PTR answer listed (follow[]),
 *            nor the PTR look-up of a %{p} expansion (libspf2 asks it
 *            without caching, the ptr mechanism with: cached below).
 *   voids    look-ups (not TXT) answered NXDOMAIN or NODATA, follow-ups
 *            included, as pyspf counts them.  TXT is left out: a missing
 *            include or redirect target is a permerror anyway and the
 *            check's own record missing is "none".
 */
struct spf_count {
	int		 txt_seen;
	int		 terms;
	int		 voids;
	size_t		 nfollow;
	size_t		 ifollow;
	char		 follow[SPF_NAMES_MAX][DNS_NAME_MAX + 2];
};

/*
 * spf_count_query - account for the look-up about to be made for name
 * (cached: libspf2's should_cache argument).  0: ask it; -1: a limit is
 * exceeded, the check is a permerror (why set).
 */
int	spf_count_query(struct spf_count *c, enum dns_type type,
	    const char *name, int cached, char *why, size_t whylen);

/*
 * spf_count_answer - account for its answer (status an enum dns_status,
 * res the answer for DNS_OK).  0, or -1 and why as above: more than 2
 * void look-ups, more than 10 MX records.
 */
int	spf_count_answer(struct spf_count *c, enum dns_type type, int status,
	    const struct dns_result *res, char *why, size_t whylen);

#endif
