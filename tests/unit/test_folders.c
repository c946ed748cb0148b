/*
 * test_folders.c - the folder plan (syncd/folders.c) on realistic
 * folder lists: Exchange in German onto Dovecot with SPECIAL-USE, Gmail
 * onto a Courier server ("INBOX." prefix, "." separator), Courier onto
 * Dovecot, Dovecot "." onto "/" and back; then map/include/exclude
 * rules, conflicts, options, determinism, the glob matcher, the
 * well-known-name folding, rule errors and the one-line descriptions.
 * Each scenario is a table: one row per source folder with the
 * expected decision; every entry of the plan must be in the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "folders.h"

#define NOSEL	IMAP_MBOX_NOSELECT
#define SUB	IMAP_MBOX_SUBSCRIBED
#define W_ESC	FOLDER_W_ESCAPED
#define W_CONF	FOLDER_W_CONFLICT
#define W_MERGE	FOLDER_W_MERGED

#define N(a)	(sizeof(a) / sizeof((a)[0]))

/* Expected decision for one source folder. */
struct exp {
	const char	*src;		/* name as listed */
	const char	*dst;		/* full destination name, NULL: skip */
	int		 skip;		/* enum folder_skip */
	int		 how;		/* enum folder_how (when copied) */
	int		 create;	/* 0, 1, or 2 = create as special-use */
	unsigned	 warn;
};

/* Shorthands for rows. */
#define COPY(s, d, how, create)	{ s, d, FOLDER_COPY, FOLDER_HOW_##how, create, 0 }
#define COPYW(s, d, how, create, w) { s, d, FOLDER_COPY, FOLDER_HOW_##how, create, w }
#define SKIP(s, why)		{ s, NULL, FOLDER_SKIP_##why, 0, 0, 0 }

static struct folder_rules *
rules(const char *const *inc, size_t ninc, const char *const *exc,
    size_t nexc, const char *const *map, size_t nmap, int skip_non_mail)
{
	struct strlist li = { 0 }, le = { 0 }, lm = { 0 };
	struct folder_rules *r;
	char err[256];
	size_t i;

	for (i = 0; i < ninc; i++)
		assert_int_equal(strlist_add(&li, inc[i], strlen(inc[i])), 0);
	for (i = 0; i < nexc; i++)
		assert_int_equal(strlist_add(&le, exc[i], strlen(exc[i])), 0);
	for (i = 0; i < nmap; i++)
		assert_int_equal(strlist_add(&lm, map[i], strlen(map[i])), 0);
	if (folder_rules_new(&r, &li, &le, &lm, skip_non_mail, err,
	    sizeof(err)) == -1)
		fail_msg("rules: %s", err);
	strlist_clear(&li);
	strlist_clear(&le);
	strlist_clear(&lm);
	return (r);
}

/* build - a plan, or a test failure */
static struct folder_plan *
build(const struct folder_rules *r, const struct folder_info *s, size_t ns,
    char ssep, const char *spfx, const struct folder_info *d, size_t nd,
    char dsep, const char *dpfx, unsigned opts)
{
	struct folder_list src = { s, ns, ssep, spfx };
	struct folder_list dst = { d, nd, dsep, dpfx };
	struct folder_plan *p;
	char err[256];

	if (folder_plan_build(r, &src, &dst, opts, &p, err, sizeof(err)) == -1)
		fail_msg("plan: %s", err);
	assert_int_equal(p->n, ns);
	return (p);
}

/* check - every row against the plan, and the plan has nothing else */
static void
check(const char *label, const struct folder_plan *p, const struct exp *e,
    size_t n)
{
	const struct folder_map *m;
	char desc[512];
	size_t i, ncopy = 0, ncreate = 0;

	for (i = 0; i < n; i++) {
		if ((m = folder_plan_find(p, e[i].src)) == NULL)
			fail_msg("%s row %zu (%s): not in the plan", label, i,
			    e[i].src);
		folder_map_describe(m, desc, sizeof(desc));
		if ((int)m->skip != e[i].skip)
			fail_msg("%s row %zu: %s: skip %s, want %s", label, i,
			    desc, folder_skip_name(m->skip),
			    folder_skip_name((enum folder_skip)e[i].skip));
		if (e[i].dst == NULL) {
			if (m->dst_name != NULL)
				fail_msg("%s row %zu: %s: has a destination",
				    label, i, desc);
			continue;
		}
		ncopy++;
		if (strcmp(m->dst_name, e[i].dst) != 0)
			fail_msg("%s row %zu: %s: destination \"%s\", want "
			    "\"%s\"", label, i, desc, m->dst_name, e[i].dst);
		if ((int)m->how != e[i].how)
			fail_msg("%s row %zu: %s: how %s, want %s", label, i,
			    desc, folder_how_name(m->how),
			    folder_how_name((enum folder_how)e[i].how));
		if (m->create != (e[i].create != 0) ||
		    (m->create_special != 0) != (e[i].create == 2))
			fail_msg("%s row %zu: %s: create %d/%#x, want %d",
			    label, i, desc, m->create, m->create_special,
			    e[i].create);
		if (m->dst_exists == m->create &&
		    !(m->warnings & (W_MERGE | FOLDER_W_DEST_NOSELECT)))
			fail_msg("%s row %zu: %s: exists and create agree",
			    label, i, desc);
		if (m->warnings != e[i].warn)
			fail_msg("%s row %zu: %s: warnings %#x, want %#x",
			    label, i, desc, m->warnings, e[i].warn);
		ncreate += m->create;
	}
	if (n != p->n)
		fail_msg("%s: %zu rows for %zu entries", label, n, p->n);
	assert_int_equal(p->ncopy, ncopy);
	assert_int_equal(p->ncreate, ncreate);
}

/* A Dovecot destination with SPECIAL-USE, "/" separator, no prefix. */
static const struct folder_info dovecot_su[] = {
	{ "INBOX", "INBOX", SUB },
	{ "Sent", "Sent", IMAP_MBOX_SENT | SUB },
	{ "Drafts", "Drafts", IMAP_MBOX_DRAFTS | SUB },
	{ "Trash", "Trash", IMAP_MBOX_TRASH | SUB },
	{ "Junk", "Junk", IMAP_MBOX_JUNK | SUB },
	{ "Archive", "Archive", IMAP_MBOX_ARCHIVE | SUB },
};

/* Exchange 2016, German UI, no SPECIAL-USE, onto dovecot_su. */
static void
test_exchange_german(void **state)
{
	static const struct folder_info src[] = {
		{ "Aufgaben", NULL, 0 },
		{ "Entw\xc3\xbcrfe", NULL, 0 },
		{ "Gel\xc3\xb6schte Elemente", NULL, 0 },
		{ "Gesendete Elemente", NULL, SUB },
		{ "Gesendete Elemente/Alt", NULL, 0 },
		{ "INBOX", NULL, SUB },
		{ "INBOX/Rechnungen", NULL, SUB },
		{ "Journal", NULL, 0 },
		{ "Junk-E-Mail", NULL, 0 },
		{ "Kalender", NULL, 0 },
		{ "Kalender/Geburtstage", NULL, 0 },
		{ "Kalender/Feiertage in Deutschland", NULL, 0 },
		{ "Kontakte", NULL, 0 },
		{ "Kontakte/Recipient Cache", NULL, 0 },
		{ "Notizen", NULL, 0 },
		{ "Postausgang", NULL, 0 },
		{ "Synchronisierungsprobleme", NULL, 0 },
		{ "Synchronisierungsprobleme/Konflikte", NULL, 0 },
		{ "Synchronisierungsprobleme/Lokale Fehler", NULL, 0 },
		{ "Unterhaltungsverlauf", NULL, 0 },
		{ "RSS-Feeds", NULL, 0 },
		{ "Archiv", NULL, 0 },
		{ "Projekte", NULL, SUB },
		{ "Projekte/2019", NULL, 0 },
		{ "Projekte/M\xc3\xbcnchen", NULL, 0 },
	};
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("INBOX/Rechnungen", "INBOX/Rechnungen", SAME, 1),
		COPY("Entw\xc3\xbcrfe", "Drafts", SPECIAL_NAME, 0),
		COPY("Gel\xc3\xb6schte Elemente", "Trash", SPECIAL_NAME, 0),
		COPY("Gesendete Elemente", "Sent", SPECIAL_NAME, 0),
		COPY("Gesendete Elemente/Alt", "Sent/Alt", PARENT, 1),
		COPY("Junk-E-Mail", "Junk", SPECIAL_NAME, 0),
		COPY("Archiv", "Archive", SPECIAL_NAME, 0),
		COPY("Projekte", "Projekte", SAME, 1),
		COPY("Projekte/2019", "Projekte/2019", SAME, 1),
		COPY("Projekte/M\xc3\xbcnchen", "Projekte/M\xc3\xbcnchen", SAME,
		    1),
		SKIP("Aufgaben", NON_MAIL),
		SKIP("Journal", NON_MAIL),
		SKIP("Kalender", NON_MAIL),
		SKIP("Kalender/Geburtstage", NON_MAIL),
		SKIP("Kalender/Feiertage in Deutschland", NON_MAIL),
		SKIP("Kontakte", NON_MAIL),
		SKIP("Kontakte/Recipient Cache", NON_MAIL),
		SKIP("Notizen", NON_MAIL),
		SKIP("Postausgang", NON_MAIL),
		SKIP("Synchronisierungsprobleme", NON_MAIL),
		SKIP("Synchronisierungsprobleme/Konflikte", NON_MAIL),
		SKIP("Synchronisierungsprobleme/Lokale Fehler", NON_MAIL),
		SKIP("Unterhaltungsverlauf", NON_MAIL),
		SKIP("RSS-Feeds", NON_MAIL),
	};
	struct folder_plan *p;
	struct folder_rules *r;
	const struct folder_map *m;

	(void)state;
	p = build(NULL, src, N(src), '/', "", dovecot_su, N(dovecot_su), '/',
	    "", 0);
	check("exchange-de", p, want, N(want));
	assert_int_equal(p->exchange, 1);
	/* Sorted: INBOX first, then by path. */
	assert_string_equal(p->maps[0].src_name, "INBOX");
	assert_string_equal(p->maps[1].src_name, "Archiv");
	assert_string_equal(p->maps[p->n - 1].src_name, "Unterhaltungsverlauf");
	/* Subscriptions carried through. */
	m = folder_plan_find(p, "Gesendete Elemente");
	assert_int_equal(m->subscribed, 1);
	assert_int_equal(m->role, FOLDER_ROLE_SENT);
	m = folder_plan_find(p, "Gesendete Elemente/Alt");
	assert_int_equal(m->subscribed, 0);
	assert_int_equal(m->role, FOLDER_ROLE_NONE);
	assert_int_equal(folder_plan_find(p, "INBOX")->role, FOLDER_ROLE_INBOX);
	folder_plan_free(&p);
	assert_null(p);

	/* skip_non_mail = no: the calendar is copied like any folder. */
	r = rules(NULL, 0, NULL, 0, NULL, 0, 0);
	p = build(r, src, N(src), '/', "", dovecot_su, N(dovecot_su), '/', "",
	    0);
	m = folder_plan_find(p, "Kalender/Geburtstage");
	assert_int_equal(m->skip, FOLDER_COPY);
	assert_string_equal(m->dst_name, "Kalender/Geburtstage");
	folder_plan_free(&p);
	folder_rules_free(&r);
	folder_rules_free(&r);			/* NULL-safe */
}

/* Gmail (SPECIAL-USE, virtual folders) onto Courier (INBOX., "."). */
static void
test_gmail_to_courier(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", "INBOX", SUB },
		{ "[Gmail]", "[Gmail]", NOSEL | IMAP_MBOX_HASCHILDREN },
		{ "[Gmail]/All Mail", NULL, IMAP_MBOX_ALL },
		{ "[Gmail]/Drafts", NULL, IMAP_MBOX_DRAFTS },
		{ "[Gmail]/Important", NULL, IMAP_MBOX_IMPORTANT },
		{ "[Gmail]/Sent Mail", NULL, IMAP_MBOX_SENT | SUB },
		{ "[Gmail]/Spam", NULL, IMAP_MBOX_JUNK },
		{ "[Gmail]/Starred", NULL, IMAP_MBOX_FLAGGED },
		{ "[Gmail]/Trash", NULL, IMAP_MBOX_TRASH },
		{ "Notes", NULL, SUB },		/* a user label */
		{ "Receipts", NULL, SUB },
		{ "Work", NULL, SUB },
		{ "Work/Projects", NULL, SUB },
		{ "Work/v1.2", NULL, 0 },	/* "." is Courier's separator */
	};
	static const struct folder_info dst[] = {
		{ "INBOX", NULL, 0 },
		{ "INBOX.Drafts", NULL, 0 },
		{ "INBOX.Sent", NULL, 0 },
		{ "INBOX.Trash", NULL, 0 },
	};
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		SKIP("[Gmail]", NOSELECT),
		SKIP("[Gmail]/All Mail", VIRTUAL),
		SKIP("[Gmail]/Important", VIRTUAL),
		SKIP("[Gmail]/Starred", VIRTUAL),
		COPY("[Gmail]/Drafts", "INBOX.Drafts", SPECIAL_USE, 0),
		COPY("[Gmail]/Sent Mail", "INBOX.Sent", SPECIAL_USE, 0),
		COPY("[Gmail]/Spam", "INBOX.Junk", SPECIAL_USE, 2),
		COPY("[Gmail]/Trash", "INBOX.Trash", SPECIAL_USE, 0),
		COPY("Notes", "INBOX.Notes", SAME, 1),
		COPY("Receipts", "INBOX.Receipts", SAME, 1),
		COPY("Work", "INBOX.Work", SAME, 1),
		COPY("Work/Projects", "INBOX.Work.Projects", SAME, 1),
		COPYW("Work/v1.2", "INBOX.Work.v1_2", SAME, 1, W_ESC),
	};
	struct folder_plan *p;
	const struct folder_map *m;
	struct folder_rules *r;
	static const char *const map[] = {
		"[Gmail]/All Mail => Archive/Gmail",
	};

	(void)state;
	p = build(NULL, src, N(src), '/', "", dst, N(dst), '.', "INBOX.", 0);
	check("gmail-courier", p, want, N(want));
	assert_int_equal(p->exchange, 0);
	m = folder_plan_find(p, "[Gmail]/Spam");
	assert_int_equal(m->create_special, IMAP_MBOX_JUNK);
	assert_string_equal(m->dst_path, "Junk");
	assert_string_equal(folder_plan_find(p, "Work/v1.2")->dst_path,
	    "Work/v1_2");
	assert_string_equal(folder_plan_find(p, "[Gmail]")->src_wire,
	    "[Gmail]");
	folder_plan_free(&p);

	/* All Mail is copied when a map rule says where. */
	r = rules(NULL, 0, NULL, 0, map, N(map), 1);
	p = build(r, src, N(src), '/', "", dst, N(dst), '.', "INBOX.", 0);
	m = folder_plan_find(p, "[Gmail]/All Mail");
	assert_int_equal(m->skip, FOLDER_COPY);
	assert_int_equal(m->how, FOLDER_HOW_MAP);
	assert_string_equal(m->dst_name, "INBOX.Archive.Gmail");
	assert_int_equal(m->create, 1);
	folder_plan_free(&p);
	folder_rules_free(&r);
}

/* Courier ("INBOX." prefix, ".", no SPECIAL-USE) onto dovecot_su. */
static void
test_courier_to_dovecot(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, SUB },
		{ "INBOX.Sent", NULL, SUB },
		{ "INBOX.Drafts", NULL, SUB },
		{ "INBOX.Trash", NULL, SUB },
		{ "INBOX.Spam", NULL, 0 },
		{ "INBOX.Archive", NULL, 0 },
		{ "INBOX.Archive.2019", NULL, 0 },
		{ "INBOX.Archive.2019.Q1", NULL, 0 },
		{ "INBOX.a/b", NULL, 0 },
		{ "INBOX.Inbox", NULL, 0 },	/* distinct on Courier */
		{ "#shared.team", NULL, 0 },
		{ "INBOX.Calendar", NULL, 0 },	/* one kind: not Exchange */
	};
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("INBOX.Sent", "Sent", SPECIAL_NAME, 0),
		COPY("INBOX.Drafts", "Drafts", SPECIAL_NAME, 0),
		COPY("INBOX.Trash", "Trash", SPECIAL_NAME, 0),
		COPY("INBOX.Spam", "Junk", SPECIAL_NAME, 0),
		COPY("INBOX.Archive", "Archive", SPECIAL_NAME, 0),
		COPY("INBOX.Archive.2019", "Archive/2019", SAME, 1),
		COPY("INBOX.Archive.2019.Q1", "Archive/2019/Q1", SAME, 1),
		COPYW("INBOX.a/b", "a_b", SAME, 1, W_ESC),
		COPYW("INBOX.Inbox", "INBOX (2)", SAME, 1, W_CONF),
		SKIP("#shared.team", NAMESPACE),
		COPY("INBOX.Calendar", "Calendar", SAME, 1),
	};
	struct folder_plan *p;
	const struct folder_map *m;

	(void)state;
	p = build(NULL, src, N(src), '.', "INBOX.", dovecot_su, N(dovecot_su),
	    '/', "", 0);
	check("courier-dovecot", p, want, N(want));
	m = folder_plan_find(p, "INBOX.Archive.2019.Q1");
	assert_string_equal(m->src_path, "Archive/2019/Q1");
	m = folder_plan_find(p, "INBOX.Inbox");
	assert_string_equal(m->conflict_with, "INBOX");
	assert_string_equal(folder_plan_find(p, "INBOX.a/b")->src_path, "a/b");
	folder_plan_free(&p);
}

/*
 * A German-locale destination without SPECIAL-USE already has "Entwürfe";
 * the source has both "Drafts" and its user's own "Entwürfe".  The
 * exact name wins: "Entwürfe" stays "Entwürfe", and "Drafts", a match by
 * role only, gives way to its own name instead of taking the folder.
 */
static void
test_exact_name_wins(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Drafts", NULL, 0 },
		{ "Entw\xc3\xbcrfe", NULL, 0 },
		{ "Gesendet", NULL, 0 },
	};
	static const struct folder_info dst[] = {
		{ "INBOX", NULL, 0 },
		{ "Entw\xc3\xbcrfe", NULL, 0 },
		{ "Gesendete Elemente", NULL, 0 },
	};
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe", SPECIAL_NAME, 0),
		COPYW("Drafts", "Drafts", SPECIAL_NAME, 1, W_CONF),
		/* No exact name: the role by name still maps it. */
		COPY("Gesendet", "Gesendete Elemente", SPECIAL_NAME, 0),
	};
	struct folder_plan *p;

	(void)state;
	p = build(NULL, src, N(src), '/', "", dst, N(dst), '/', "", 0);
	check("exact-name", p, want, N(want));
	folder_plan_free(&p);
}

/* Dovecot "." onto Dovecot "/" and back, INBOX children, escaping. */
static void
test_separators(void **state)
{
	static const struct folder_info dot[] = {
		{ "INBOX", NULL, 0 },
		{ "INBOX.foo", NULL, 0 },
		{ "Archive.2019.Q1", NULL, 0 },
		{ "Archive", NULL, NOSEL },
		{ "Archive.2019", NULL, NOSEL },
		{ "R&D/Labs", NULL, 0 },		/* "/" in one name */
		{ "Entw\xc3\xbcrfe", NULL, 0 },
	};
	static const struct exp want_slash[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("INBOX.foo", "INBOX/foo", SAME, 1),
		COPY("Archive.2019.Q1", "Archive/2019/Q1", SAME, 1),
		SKIP("Archive", NOSELECT),
		SKIP("Archive.2019", NOSELECT),
		COPYW("R&D/Labs", "R&D_Labs", SAME, 1, W_ESC),
		COPY("Entw\xc3\xbcrfe", "Drafts", SPECIAL_NAME, 2),
	};
	static const struct folder_info slash[] = {
		{ "INBOX", NULL, 0 },
		{ "inbox/foo", NULL, 0 },		/* INBOX is any case */
		{ "foo", NULL, 0 },
		{ "v1.2", NULL, 0 },
		{ "a//b", NULL, 0 },			/* empty level */
	};
	static const struct folder_info courier[] = {
		{ "INBOX", NULL, 0 },
		{ "INBOX.foo", NULL, 0 },
	};
	static const struct exp want_courier[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("inbox/foo", "INBOX.foo", SAME, 0),
		COPYW("foo", "INBOX.foo (2)", SAME, 1, W_CONF),
		COPYW("v1.2", "INBOX.v1_2", SAME, 1, W_ESC),
		COPYW("a//b", "INBOX.a._.b", SAME, 1, FOLDER_W_EMPTY_LEVEL),
	};
	static const struct exp want_flat[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("inbox/foo", "INBOX/foo", SAME, 1),
		COPY("foo", "foo", SAME, 1),
		COPY("v1.2", "v1.2", SAME, 1),
		COPYW("a//b", "a/_/b", SAME, 1, FOLDER_W_EMPTY_LEVEL),
	};
	static const struct folder_info none[] = { { "INBOX", NULL, 0 } };
	struct folder_plan *p;

	(void)state;
	p = build(NULL, dot, N(dot), '.', "", none, N(none), '/', NULL, 0);
	check("dot-slash", p, want_slash, N(want_slash));
	assert_string_equal(folder_plan_find(p, "R&D/Labs")->dst_path,
	    "R&D_Labs");
	folder_plan_free(&p);

	p = build(NULL, slash, N(slash), '/', "", courier, N(courier), '.',
	    "INBOX.", 0);
	check("slash-courier", p, want_courier, N(want_courier));
	assert_string_equal(folder_plan_find(p, "inbox/foo")->src_path,
	    "INBOX/foo");
	assert_string_equal(folder_plan_find(p, "foo")->conflict_with,
	    "INBOX/foo");
	folder_plan_free(&p);

	/* A flat destination (NIL separator): levels joined with "/". */
	p = build(NULL, slash, N(slash), '/', "", none, N(none), '\0', "", 0);
	check("slash-flat", p, want_flat, N(want_flat));
	folder_plan_free(&p);
}

/* include, exclude and map rules. */
static void
test_rules(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent", NULL, IMAP_MBOX_SENT },
		{ "Sent Messages", NULL, 0 },
		{ "Trash", NULL, IMAP_MBOX_TRASH },
		{ "Old Archive", NULL, 0 },
		{ "Old Archive/2001", NULL, 0 },
		{ "Old Archive/2001/Q1", NULL, 0 },
		{ "Old Archive/Keep", NULL, 0 },
		{ "Spam", NULL, 0 },
		{ "Spam Reports", NULL, 0 },
		{ "Work", NULL, 0 },
		{ "Work/A", NULL, 0 },
		{ "Work/A/Deep", NULL, 0 },
		{ "Lists/x", NULL, 0 },
	};
	static const char *const exc[] = { "Trash", "Spam*", "Lists/%" };
	static const char *const map[] = {
		"Old Archive => Archive/Old",
		"  Old Archive/Keep   =>  INBOX/Kept ",
		"Sent Messages => \\Sent",
		"Spam Reports => Reports",	/* excluded anyway */
	};
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPYW("Sent", "Sent", SPECIAL_USE, 0, W_MERGE),
		COPYW("Sent Messages", "Sent", MAP, 0, W_MERGE),
		SKIP("Trash", EXCLUDED),
		COPY("Old Archive", "Archive/Old", MAP, 1),
		COPY("Old Archive/2001", "Archive/Old/2001", MAP, 1),
		COPY("Old Archive/2001/Q1", "Archive/Old/2001/Q1", MAP, 1),
		COPY("Old Archive/Keep", "INBOX/Kept", MAP, 1),
		SKIP("Spam", EXCLUDED),
		SKIP("Spam Reports", EXCLUDED),
		COPY("Work", "Work", SAME, 1),
		COPY("Work/A", "Work/A", SAME, 1),
		COPY("Work/A/Deep", "Work/A/Deep", SAME, 1),
		SKIP("Lists/x", EXCLUDED),
	};
	static const char *const inc[] = { "inbox", "Work/%" };
	static const struct exp want_inc[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		SKIP("Sent", EXCLUDED),
		SKIP("Sent Messages", EXCLUDED),
		SKIP("Trash", EXCLUDED),
		SKIP("Old Archive", EXCLUDED),
		SKIP("Old Archive/2001", EXCLUDED),
		SKIP("Old Archive/2001/Q1", EXCLUDED),
		SKIP("Old Archive/Keep", EXCLUDED),
		SKIP("Spam", EXCLUDED),
		SKIP("Spam Reports", EXCLUDED),
		SKIP("Work", EXCLUDED),
		COPY("Work/A", "Work/A", SAME, 1),
		SKIP("Work/A/Deep", EXCLUDED),
		SKIP("Lists/x", EXCLUDED),
	};
	static const struct folder_info dst[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent", NULL, IMAP_MBOX_SENT },
		{ "Archive", NULL, IMAP_MBOX_ARCHIVE },
	};
	struct folder_rules *r;
	struct folder_plan *p;

	(void)state;
	r = rules(NULL, 0, exc, N(exc), map, N(map), 1);
	p = build(r, src, N(src), '/', "", dst, N(dst), '/', "", 0);
	check("rules", p, want, N(want));
	folder_plan_free(&p);
	folder_rules_free(&r);

	r = rules(inc, N(inc), NULL, 0, NULL, 0, 1);
	p = build(r, src, N(src), '/', "", dst, N(dst), '/', "", 0);
	check("include", p, want_inc, N(want_inc));
	folder_plan_free(&p);
	folder_rules_free(&r);
}

/* A map rule beats the non-mail skip; exclude beats a map rule. */
static void
test_rules_exchange(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Calendar", NULL, 0 },
		{ "Contacts", NULL, 0 },
		{ "Notes", NULL, 0 },
		{ "Tasks", NULL, 0 },
	};
	static const char *const map[] = {
		"Notes => Old Notes", "Tasks => Tasks",
	};
	static const char *const exc[] = { "Tasks" };
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		SKIP("Calendar", NON_MAIL),
		SKIP("Contacts", NON_MAIL),
		COPY("Notes", "Old Notes", MAP, 1),
		SKIP("Tasks", EXCLUDED),
	};
	static const struct folder_info one_notes[] = {
		{ "INBOX", NULL, 0 }, { "Notes", NULL, 0 },
	};
	struct folder_rules *r;
	struct folder_plan *p;

	(void)state;
	r = rules(NULL, 0, exc, N(exc), map, N(map), 1);
	p = build(r, src, N(src), '/', "", dovecot_su, N(dovecot_su), '/', "",
	    0);
	check("rules-exchange", p, want, N(want));
	folder_plan_free(&p);
	folder_rules_free(&r);

	/* A lone "Notes" is a user's folder, unless the caller knows. */
	p = build(NULL, one_notes, 2, '/', "", dovecot_su, N(dovecot_su), '/',
	    "", 0);
	assert_int_equal(folder_plan_find(p, "Notes")->skip, FOLDER_COPY);
	folder_plan_free(&p);
	p = build(NULL, one_notes, 2, '/', "", dovecot_su, N(dovecot_su), '/',
	    "", FOLDER_OPT_EXCHANGE);
	assert_int_equal(folder_plan_find(p, "Notes")->skip,
	    FOLDER_SKIP_NON_MAIL);
	assert_int_equal(p->exchange, 1);
	folder_plan_free(&p);
}

/* Conflicts, merging on purpose, case-folding destinations. */
static void
test_conflicts(void **state)
{
	/* Two well-known Sent names: the preferred one wins. */
	static const struct folder_info two_sent[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent Items", NULL, 0 },
		{ "Sent", NULL, 0 },
		{ "Sent/2019", NULL, 0 },
		{ "Sent Items/2019", NULL, 0 },
	};
	static const struct exp want_two[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("Sent", "Sent", SPECIAL_NAME, 0),
		COPY("Sent/2019", "Sent/2019", SAME, 1),
		COPYW("Sent Items", "Sent Items", SPECIAL_NAME, 1, W_CONF),
		COPY("Sent Items/2019", "Sent Items/2019", SAME, 1),
	};
	/* Two \Sent folders: conflict, or merged with the option. */
	static const struct folder_info two_flagged[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent", NULL, IMAP_MBOX_SENT },
		{ "Sent Items", NULL, IMAP_MBOX_SENT },
	};
	static const struct exp want_flagged[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("Sent", "Gesendet", SPECIAL_USE, 0),
		COPYW("Sent Items", "Sent Items", SPECIAL_USE, 1, W_CONF),
	};
	static const struct exp want_merged[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPYW("Sent", "Gesendet", SPECIAL_USE, 0, W_MERGE),
		COPYW("Sent Items", "Gesendet", SPECIAL_USE, 0, W_MERGE),
	};
	/* Destination's \Sent beats its unflagged "Sent". */
	static const struct folder_info dst_de[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent", NULL, 0 },
		{ "Gesendet", NULL, IMAP_MBOX_SENT },
		{ "Papierkorb", NULL, 0 },
		{ "Trash", NULL, IMAP_MBOX_NOSELECT },
	};
	/* Exchange-like destination: "trash" is "Trash". */
	static const struct folder_info cased[] = {
		{ "INBOX", NULL, 0 },
		{ "Trash", NULL, IMAP_MBOX_TRASH },
		{ "trash", NULL, 0 },
		{ "Projects", NULL, 0 },
	};
	static const struct folder_info dst_cased[] = {
		{ "INBOX", NULL, 0 },
		{ "Deleted Items", NULL, IMAP_MBOX_TRASH },
		{ "PROJECTS", NULL, 0 },
	};
	static const struct exp want_cased[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("Trash", "Deleted Items", SPECIAL_USE, 0),
		COPY("trash", "trash", SAME, 1),
		COPY("Projects", "Projects", SAME, 0),
	};
	static const struct exp want_cased_nofold[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("Trash", "Deleted Items", SPECIAL_USE, 0),
		COPY("trash", "trash", SAME, 1),
		COPY("Projects", "Projects", SAME, 1),
	};
	struct folder_plan *p;

	(void)state;
	p = build(NULL, two_sent, N(two_sent), '/', "", dovecot_su,
	    N(dovecot_su), '/', "", 0);
	check("two-sent", p, want_two, N(want_two));
	assert_string_equal(folder_plan_find(p, "Sent Items")->conflict_with,
	    "Sent");
	folder_plan_free(&p);

	p = build(NULL, two_flagged, N(two_flagged), '/', "", dst_de,
	    N(dst_de), '/', "", 0);
	check("two-flagged", p, want_flagged, N(want_flagged));
	folder_plan_free(&p);
	p = build(NULL, two_flagged, N(two_flagged), '/', "", dst_de,
	    N(dst_de), '/', "", FOLDER_OPT_MERGE_SPECIAL);
	check("two-flagged-merged", p, want_merged, N(want_merged));
	folder_plan_free(&p);

	p = build(NULL, cased, N(cased), '/', "", dst_cased, N(dst_cased), '/',
	    "", FOLDER_OPT_DEST_CASEFOLD);
	check("casefold", p, want_cased, N(want_cased));
	folder_plan_free(&p);
	p = build(NULL, cased, N(cased), '/', "", dst_cased, N(dst_cased), '/',
	    "", 0);
	check("casefold-off", p, want_cased_nofold, N(want_cased_nofold));
	folder_plan_free(&p);
}

/* Special folders the destination lacks, and one that is \Noselect. */
static void
test_dest_specials(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Deleted Items", NULL, 0 },
		{ "Junk E-mail", NULL, 0 },
		{ "Archives", NULL, 0 },
		{ "Projects", NULL, 0 },
	};
	static const struct folder_info dst[] = {
		{ "INBOX", NULL, 0 },
		{ "Papierkorb", NULL, 0 },		/* Trash by name */
		{ "Spam", NULL, IMAP_MBOX_NOSELECT },	/* unusable */
		{ "Projects", NULL, IMAP_MBOX_NOSELECT },
		{ "All", NULL, IMAP_MBOX_ALL },
	};
	static const struct exp want[] = {
		COPY("INBOX", "INBOX", INBOX, 0),
		COPY("Deleted Items", "Papierkorb", SPECIAL_NAME, 0),
		COPY("Junk E-mail", "Junk", SPECIAL_NAME, 2),
		COPY("Archives", "Archive", SPECIAL_NAME, 2),
		COPYW("Projects", "Projects", SAME, 1, FOLDER_W_DEST_NOSELECT),
	};
	struct folder_plan *p;

	(void)state;
	p = build(NULL, src, N(src), '/', "", dst, N(dst), '/', "", 0);
	check("dest-specials", p, want, N(want));
	assert_int_equal(folder_plan_find(p, "Archives")->create_special,
	    IMAP_MBOX_ARCHIVE);
	folder_plan_free(&p);
}

/* Undecodable names, duplicates, an empty list, bad separators. */
static void
test_odd_input(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ NULL, "Bad&-\xff", 0 },
		{ "Twice", NULL, 0 },
		{ "Twice", NULL, SUB },
	};
	struct folder_list s = { src, N(src), '/', "" };
	struct folder_list d = { NULL, 0, '/', "" };
	struct folder_list bad = { NULL, 0, '\n', "" };
	const struct folder_map *m;
	struct folder_plan *p;
	char err[128];
	size_t i, twice = 0;

	(void)state;
	assert_int_equal(folder_plan_build(NULL, &s, &d, 0, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(p->n, 4);
	assert_int_equal(p->ncopy, 2);
	for (i = 0; i < p->n; i++) {
		m = &p->maps[i];
		if (m->src_name == NULL) {
			assert_int_equal(m->skip, FOLDER_SKIP_BADNAME);
			assert_string_equal(m->src_path, "Bad&-\xff");
			assert_string_equal(m->src_wire, "Bad&-\xff");
		} else if (strcmp(m->src_name, "Twice") == 0) {
			twice++;
			/* the first listed is kept */
			assert_int_equal(m->skip, m->src_index == 2 ?
			    FOLDER_COPY : FOLDER_SKIP_DUPLICATE);
		}
	}
	assert_int_equal(twice, 2);
	/* INBOX is never created, listed or not. */
	assert_int_equal(folder_plan_find(p, "INBOX")->create, 0);
	assert_int_equal(folder_plan_find(p, "INBOX")->dst_exists, 1);
	folder_plan_free(&p);

	s.n = 0;
	assert_int_equal(folder_plan_build(NULL, &s, &d, 0, &p, err,
	    sizeof(err)), 0);
	assert_int_equal(p->n, 0);
	folder_plan_free(&p);
	folder_plan_free(&p);
	folder_plan_free(NULL);

	assert_int_equal(folder_plan_build(NULL, &s, &bad, 0, &p, err,
	    sizeof(err)), -1);
	assert_null(p);
	assert_string_equal(err, "unusable hierarchy separator");

	/* A repeat behind another spelling of the same levels. */
	{
		static const struct folder_info rep[] = {
			{ "INBOX", NULL, 0 },
			{ "INBOX/foo", NULL, 0 },
			{ "inbox/foo", NULL, 0 },
			{ "INBOX/foo", NULL, 0 },
		};
		struct folder_list rs = { rep, N(rep), '/', "" };

		assert_int_equal(folder_plan_build(NULL, &rs, &d, 0, &p, err,
		    sizeof(err)), 0);
		for (i = 0; i < p->n; i++) {
			m = &p->maps[i];
			switch (m->src_index) {
			case 1:
				assert_int_equal(m->skip, FOLDER_COPY);
				assert_string_equal(m->dst_name, "INBOX/foo");
				break;
			case 2:
				assert_int_equal(m->skip, FOLDER_COPY);
				assert_string_equal(m->dst_name,
				    "INBOX/foo (2)");
				assert_int_equal(m->warnings, W_CONF);
				break;
			case 3:
				assert_int_equal(m->skip,
				    FOLDER_SKIP_DUPLICATE);
				break;
			}
		}
		folder_plan_free(&p);
	}
}

/* The plan does not depend on the order of the LIST responses. */
static void
test_deterministic(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent Items", NULL, 0 },
		{ "Sent", NULL, 0 },
		{ "Sent Messages", NULL, 0 },
		{ "Sent/x", NULL, 0 },
		{ "foo", NULL, 0 },
		{ "INBOX/foo", NULL, 0 },
		{ "a/b", NULL, 0 },
		{ "a_b", NULL, 0 },
	};
	struct folder_info rev[N(src)];
	struct folder_plan *p1, *p2;
	size_t i;

	(void)state;
	for (i = 0; i < N(src); i++)
		rev[i] = src[N(src) - 1 - i];
	p1 = build(NULL, src, N(src), '/', "", dovecot_su, N(dovecot_su), '.',
	    "", 0);
	p2 = build(NULL, rev, N(rev), '/', "", dovecot_su, N(dovecot_su), '.',
	    "", 0);
	for (i = 0; i < p1->n; i++) {
		assert_string_equal(p1->maps[i].src_name, p2->maps[i].src_name);
		assert_string_equal(p1->maps[i].dst_name, p2->maps[i].dst_name);
		assert_int_equal(p1->maps[i].warnings, p2->maps[i].warnings);
	}
	/* "a/b" is two levels here: "a.b" on a "." destination. */
	assert_string_equal(folder_plan_find(p1, "a_b")->dst_name, "a_b");
	assert_string_equal(folder_plan_find(p1, "a/b")->dst_name, "a.b");
	assert_string_equal(folder_plan_find(p1, "Sent Messages")->dst_name,
	    "Sent Messages");
	folder_plan_free(&p1);
	folder_plan_free(&p2);
}

static void
test_glob(void **state)
{
	static const struct { const char *pat, *path; int match; } t[] = {
		{ "*", "", 1 },
		{ "*", "a/b/c", 1 },
		{ "%", "abc", 1 },
		{ "%", "a/b", 0 },
		{ "Archive", "Archive", 1 },
		{ "Archive", "Archive/2019", 0 },
		{ "Archive/*", "Archive/2019/Q1", 1 },
		{ "Archive/*", "Archive", 0 },
		{ "Archive/%", "Archive/2019", 1 },
		{ "Archive/%", "Archive/2019/Q1", 0 },
		{ "Archive*", "Archive", 1 },
		{ "Archive*", "Archives/x", 1 },
		{ "%/%", "a/b", 1 },
		{ "%/%", "a/b/c", 0 },
		{ "*/Q1", "Archive/2019/Q1", 1 },
		{ "*Q1", "Q1", 1 },
		{ "a%c", "abbbc", 1 },
		{ "a%c", "ab/c", 0 },
		{ "trash", "Trash", 0 },		/* case matters */
		{ "Entw\xc3\xbc*", "Entw\xc3\xbcrfe", 1 },
		{ "*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
		{ "", "", 1 },
		{ "", "a", 0 },
		{ "a", "", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(t); i++)
		if (folder_glob_match(t[i].pat, t[i].path) != t[i].match)
			fail_msg("case %zu: \"%s\" ~ \"%s\" should be %d", i,
			    t[i].pat, t[i].path, t[i].match);
}

static void
test_names(void **state)
{
	static const struct { const char *name; enum folder_role role; } t[] = {
		{ "Sent", FOLDER_ROLE_SENT },
		{ "SENT ITEMS", FOLDER_ROLE_SENT },
		{ "sent-items", FOLDER_ROLE_SENT },
		{ "Gesendete Objekte", FOLDER_ROLE_SENT },
		{ "\xc3\x89l\xc3\xa9ments envoy\xc3\xa9s", FOLDER_ROLE_SENT },
		{ "\xc3\xa9l\xc3\xa9ments envoy\xc3\xa9s", FOLDER_ROLE_SENT },
		/* decomposed: e + U+0301 */
		{ "E\xcc\x81le\xcc\x81ments envoye\xcc\x81s", FOLDER_ROLE_SENT },
		{ "Elements envoyes", FOLDER_ROLE_SENT },
		{ "\xc3\x89L\xc3\x89MENTS ENVOY\xc3\x89S", FOLDER_ROLE_SENT },
		{ "Objets envoy\xc3\xa9s", FOLDER_ROLE_SENT },
		{ "Posta inviata", FOLDER_ROLE_SENT },
		{ "Elementos enviados", FOLDER_ROLE_SENT },
		{ "Verzonden items", FOLDER_ROLE_SENT },
		{ "Skickat", FOLDER_ROLE_SENT },
		{ "\xd0\x9e\xd0\xa2\xd0\x9f\xd0\xa0\xd0\x90\xd0\x92\xd0\x9b\xd0"
		  "\x95\xd0\x9d\xd0\x9d\xd0\xab\xd0\x95", FOLDER_ROLE_SENT },
		{ "Entw\xc3\xbcrfe", FOLDER_ROLE_DRAFTS },
		{ "Entwu\xcc\x88rfe", FOLDER_ROLE_DRAFTS },
		{ "Brouillons", FOLDER_ROLE_DRAFTS },
		{ "Bozze", FOLDER_ROLE_DRAFTS },
		{ "Borradores", FOLDER_ROLE_DRAFTS },
		{ "Deleted Items", FOLDER_ROLE_TRASH },
		{ "Deleted Messages", FOLDER_ROLE_TRASH },
		{ "Gel\xc3\xb6schte Elemente", FOLDER_ROLE_TRASH },
		{ "Papierkorb", FOLDER_ROLE_TRASH },
		{ "\xc3\x89l\xc3\xa9ments supprim\xc3\xa9s", FOLDER_ROLE_TRASH },
		{ "Corbeille", FOLDER_ROLE_TRASH },
		{ "Posta eliminata", FOLDER_ROLE_TRASH },
		{ "Cestino", FOLDER_ROLE_TRASH },
		{ "Papelera", FOLDER_ROLE_TRASH },
		{ "Elementos eliminados", FOLDER_ROLE_TRASH },
		{ "Junk", FOLDER_ROLE_JUNK },
		{ "Junk E-mail", FOLDER_ROLE_JUNK },
		{ "Junk Email", FOLDER_ROLE_JUNK },
		{ "Junk-E-Mail", FOLDER_ROLE_JUNK },
		{ "Spam", FOLDER_ROLE_JUNK },
		{ "Courrier ind\xc3\xa9sirable", FOLDER_ROLE_JUNK },
		{ "Posta indesiderata", FOLDER_ROLE_JUNK },
		{ "Archive", FOLDER_ROLE_ARCHIVE },
		{ "Archives", FOLDER_ROLE_ARCHIVE },
		{ "Archiv", FOLDER_ROLE_ARCHIVE },
		{ "Sentimental", FOLDER_ROLE_NONE },
		{ "INBOX", FOLDER_ROLE_NONE },
		{ "", FOLDER_ROLE_NONE },
		{ "\xff\xfe", FOLDER_ROLE_NONE },
	};
	static const struct { const char *name; int non_mail; } nm[] = {
		{ "Calendar", 1 }, { "Kalender", 1 }, { "Calendrier", 1 },
		{ "Contacts", 1 }, { "Kontakte", 1 }, { "Tasks", 1 },
		{ "Aufgaben", 1 }, { "T\xc3\xa2\x63hes", 1 }, { "Notes", 1 },
		{ "Notizen", 1 }, { "Journal", 1 }, { "Outbox", 1 },
		{ "Postausgang", 1 }, { "Bo\xc3\xaete d\xe2\x80\x99" "envoi", 1 },
		{ "Sync Issues", 1 }, { "Probl\xc3\xa8mes de synchronisation", 1 },
		{ "Conversation History", 1 }, { "Unterhaltungsverlauf", 1 },
		{ "Historique des conversations", 1 },
		{ "INBOX", 0 }, { "Sent", 0 }, { "Projects", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(t); i++)
		if (folder_role_by_name(t[i].name) != t[i].role)
			fail_msg("case %zu: \"%s\" is %s, want %s", i,
			    t[i].name,
			    folder_role_name(folder_role_by_name(t[i].name)),
			    folder_role_name(t[i].role));
	for (i = 0; i < N(nm); i++)
		if (folder_is_non_mail_name(nm[i].name) != nm[i].non_mail)
			fail_msg("non-mail case %zu: \"%s\"", i, nm[i].name);
	assert_string_equal(folder_role_flag(FOLDER_ROLE_JUNK), "\\Junk");
	assert_string_equal(folder_role_name(FOLDER_ROLE_ARCHIVE), "Archive");
	assert_string_equal(folder_skip_name(FOLDER_SKIP_NON_MAIL),
	    "non-mail folder");
	assert_string_equal(folder_how_name(FOLDER_HOW_SPECIAL_USE),
	    "special-use");
}

static void
test_rule_errors(void **state)
{
	static const struct {
		const char *inc, *exc, *map;
		const char *err;
	} t[] = {
		{ NULL, NULL, "Old Archive -> Archive",
		  "map \"Old Archive -> Archive\": no \"=>\" (use: map = "
		  "Source/Path => Destination/Path)" },
		{ NULL, NULL, " => Archive",
		  "map \" => Archive\": source: empty folder path" },
		{ NULL, NULL, "Old =>  ",
		  "map \"Old =>  \": destination: empty folder path" },
		{ NULL, NULL, "Old* => Archive",
		  "map \"Old* => Archive\": source: wildcards (* %) are for "
		  "include and exclude" },
		{ NULL, NULL, "Old => \\Outbox",
		  "map \"Old => \\Outbox\": destination: unknown special-use "
		  "name (use \\Sent \\Drafts \\Trash \\Junk or \\Archive)" },
		{ NULL, NULL, "a//b => c",
		  "map \"a//b => c\": source: empty level (leading, trailing "
		  "or double /)" },
		{ NULL, NULL, "a => /c",
		  "map \"a => /c\": destination: empty level (leading, "
		  "trailing or double /)" },
		{ NULL, NULL, "a\xff => c",
		  "map \"a\xff => c\": source: not valid UTF-8" },
		{ "", NULL, NULL, "include \"\": empty folder path" },
		{ NULL, "a/", NULL,
		  "exclude \"a/\": empty level (leading, trailing or double /)" },
		{ NULL, "a\tb", NULL, "exclude \"a\tb\": control character" },
	};
	struct strlist li, le, lm;
	struct folder_rules *r;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < N(t); i++) {
		memset(&li, 0, sizeof(li));
		memset(&le, 0, sizeof(le));
		memset(&lm, 0, sizeof(lm));
		if (t[i].inc)
			strlist_add(&li, t[i].inc, strlen(t[i].inc));
		if (t[i].exc)
			strlist_add(&le, t[i].exc, strlen(t[i].exc));
		if (t[i].map)
			strlist_add(&lm, t[i].map, strlen(t[i].map));
		r = (struct folder_rules *)1;
		if (folder_rules_new(&r, &li, &le, &lm, 1, err,
		    sizeof(err)) != -1)
			fail_msg("case %zu: accepted", i);
		assert_null(r);
		if (strcmp(err, t[i].err) != 0)
			fail_msg("case %zu: got \"%s\" want \"%s\"", i, err,
			    t[i].err);
		strlist_clear(&li);
		strlist_clear(&le);
		strlist_clear(&lm);
	}
	/* The same source mapped twice. */
	memset(&lm, 0, sizeof(lm));
	strlist_add(&lm, "INBOX/x => a", 12);
	strlist_add(&lm, "inbox/x => b", 12);
	assert_int_equal(folder_rules_new(&r, NULL, NULL, &lm, 1, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "map \"inbox/x => b\": source already mapped "
	    "by \"INBOX/x => a\"");
	strlist_clear(&lm);
	/* No lists at all is fine. */
	assert_int_equal(folder_rules_new(&r, NULL, NULL, NULL, 0, err,
	    sizeof(err)), 0);
	folder_rules_free(&r);
}

static void
test_describe(void **state)
{
	static const struct folder_info src[] = {
		{ "INBOX", NULL, 0 },
		{ "Sent Items", NULL, 0 },
		{ "Sent", NULL, 0 },
		{ "Calendar", NULL, 0 },
		{ "Contacts", NULL, 0 },
		{ "a.b", NULL, 0 },
		{ "Spam", NULL, IMAP_MBOX_JUNK },
	};
	static const struct folder_info dst[] = {
		{ "INBOX", NULL, 0 },
		{ "INBOX.Sent", NULL, IMAP_MBOX_SENT },
	};
	static const struct { const char *src, *line; } want[] = {
		{ "INBOX", "INBOX -> INBOX (INBOX)" },
		{ "Sent", "Sent -> Sent (well-known name \\Sent)" },
		{ "Sent Items", "Sent Items -> Sent Items (well-known name "
		  "\\Sent, create, wanted destination taken by Sent)" },
		{ "Calendar", "Calendar: skipped (non-mail folder)" },
		{ "a.b", "a.b -> a_b (same path, create, separator in name "
		  "replaced)" },
		{ "Spam", "Spam -> Junk (special-use \\Junk, create as "
		  "special-use)" },
	};
	struct folder_plan *p;
	char buf[256];
	size_t i;
	int n;

	(void)state;
	p = build(NULL, src, N(src), '/', "", dst, N(dst), '.', "INBOX.", 0);
	for (i = 0; i < N(want); i++) {
		folder_map_describe(folder_plan_find(p, want[i].src), buf,
		    sizeof(buf));
		if (strcmp(buf, want[i].line) != 0)
			fail_msg("case %zu: got \"%s\" want \"%s\"", i, buf,
			    want[i].line);
	}
	/* snprintf semantics: truncated, full length returned */
	n = folder_map_describe(folder_plan_find(p, "INBOX"), buf, 6);
	assert_int_equal(n, (int)strlen("INBOX -> INBOX (INBOX)"));
	assert_string_equal(buf, "INBOX");
	folder_plan_free(&p);
}

/* A small deterministic generator for test_random. */
static uint32_t
lcg(uint32_t *st)
{
	*st = *st * 1103515245u + 12345u;
	return (*st >> 8);
}

static int
strp_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* signature - the plan as a sorted list of "name dst skip warn" lines */
static char **
signature(const struct folder_plan *p)
{
	char **v = calloc(p->n + 1, sizeof(*v));
	size_t i;

	assert_non_null(v);
	for (i = 0; i < p->n; i++)
		assert_true(asprintf(&v[i], "%s\t%s\t%d\t%u",
		    p->maps[i].src_name ? p->maps[i].src_name : "(null)",
		    p->maps[i].dst_name ? p->maps[i].dst_name : "-",
		    (int)p->maps[i].skip, p->maps[i].warnings) > 0);
	qsort(v, p->n, sizeof(*v), strp_cmp);
	return (v);
}

/*
 * Random folder lists from awkward pieces (INBOX in two spellings,
 * separators inside names, empty levels, special and non-mail names,
 * repeats): whatever the input, no two folders may land in one
 * destination unless merged on purpose, INBOX only takes INBOX, and
 * the plan must not depend on the order of the list.
 */
static void
test_random(void **state)
{
	static const char *const piece[] = {
		"a", "b", "Sent", "INBOX", "inbox", "Trash", "x.y", "x/y",
		"Calendar", "Contacts", "Entw\xc3\xbcrfe", "", "Sent Items",
		"a_b", "Junk", "[Gmail]",
	};
	static const unsigned attrs[] = {
		0, 0, 0, 0, IMAP_MBOX_SENT, IMAP_MBOX_TRASH, IMAP_MBOX_ALL,
		NOSEL, IMAP_MBOX_JUNK, SUB,
	};
	static const char seps[] = { '/', '.' };
	static const char dseps[] = { '/', '.', '\0', '_' };
	static const char *const prefixes[] = { "", "INBOX." };
	struct folder_info src[40], rev[40];
	char names[40][64], **s1, **s2;
	struct folder_plan *p, *q;
	uint32_t st = 12345;
	size_t round, i, k, n, depth;

	(void)state;
	for (round = 0; round < 300; round++) {
		char ssep = seps[lcg(&st) % 2];
		const char *spfx = prefixes[lcg(&st) % 2];
		char dsep = dseps[lcg(&st) % 4];
		const char *dpfx = dsep == '.' ? prefixes[lcg(&st) % 2] : "";
		unsigned opts = lcg(&st) % 8;

		n = 1 + lcg(&st) % 39;
		for (i = 0; i < n; i++) {
			size_t o = 0;

			if (spfx[0] != '\0' && lcg(&st) % 4 != 0)
				o = (size_t)snprintf(names[i], 64, "INBOX%c",
				    ssep);
			depth = 1 + lcg(&st) % 3;
			for (k = 0; k < depth; k++)
				o += (size_t)snprintf(names[i] + o, 64 - o,
				    "%s%s", k ? (ssep == '/' ? "/" : ".") : "",
				    piece[lcg(&st) % N(piece)]);
			src[i].name = names[i];
			src[i].wire = NULL;
			src[i].attrs = attrs[lcg(&st) % N(attrs)];
			/* a name listed twice comes with the same attributes */
			for (k = 0; k < i; k++)
				if (strcmp(names[k], names[i]) == 0)
					src[i].attrs = src[k].attrs;
			rev[n - 1 - i] = src[i];
		}
		p = build(NULL, src, n, ssep, spfx, src, n / 2, dsep, dpfx,
		    opts);
		q = build(NULL, rev, n, ssep, spfx, src, n / 2, dsep, dpfx,
		    opts);
		for (i = 0; i < p->n; i++) {
			const struct folder_map *a = &p->maps[i];

			if (a->skip != FOLDER_COPY)
				continue;
			assert_non_null(a->dst_name);
			if (strcasecmp(a->dst_name, "INBOX") == 0 &&
			    a->role != FOLDER_ROLE_INBOX)
				assert_true(a->warnings & W_MERGE);
			for (k = i + 1; k < p->n; k++) {
				const struct folder_map *b = &p->maps[k];

				if (b->skip != FOLDER_COPY ||
				    ((opts & FOLDER_OPT_DEST_CASEFOLD) ?
				    strcasecmp(a->dst_name, b->dst_name) :
				    strcmp(a->dst_name, b->dst_name)) != 0)
					continue;
				if (!(a->warnings & W_MERGE) ||
				    !(b->warnings & W_MERGE))
					fail_msg("round %zu: %s and %s both go "
					    "to %s", round, a->src_name,
					    b->src_name, a->dst_name);
			}
		}
		s1 = signature(p);
		s2 = signature(q);
		for (i = 0; i < p->n; i++) {
			if (strcmp(s1[i], s2[i]) != 0)
				fail_msg("round %zu: order matters: %s / %s",
				    round, s1[i], s2[i]);
			free(s1[i]);
			free(s2[i]);
		}
		free(s1);
		free(s2);
		folder_plan_free(&p);
		folder_plan_free(&q);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_german),
		cmocka_unit_test(test_exact_name_wins),
		cmocka_unit_test(test_gmail_to_courier),
		cmocka_unit_test(test_courier_to_dovecot),
		cmocka_unit_test(test_separators),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_rules_exchange),
		cmocka_unit_test(test_conflicts),
		cmocka_unit_test(test_dest_specials),
		cmocka_unit_test(test_odd_input),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_rule_errors),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_random),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
