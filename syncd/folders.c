/*
 * folders.c - the folder plan: where each source folder goes on the
 * destination (rules and decisions in folders.h).
 *
 * How a plan is made (folder_plan_build):
 *   1. the destination list goes into a name set (what exists, which
 *      is \Noselect) and yields the destination's folder for each
 *      special role (flag, else well-known name, else to be created);
 *   2. each source folder gets its path levels (namespace prefix cut,
 *      split at the source separator, INBOX spelled "INBOX") and the
 *      skips that need no context (bad name, namespace, \Noselect);
 *   3. a sorted index finds duplicates and ancestors; the flagged roles
 *      and the Exchange heuristic are computed over the whole list;
 *   4. each folder gets its anchor: a map rule, INBOX, a special role,
 *      or else its nearest planned ancestor ("parent"), or nothing
 *      ("same"), plus the pattern, virtual and non-mail skips;
 *   5. destinations are assigned in priority order (tier, depth, path)
 *      so that conflicts are decided the same way on every pass;
 *   6. the entries are copied out, sorted INBOX first, then by path.
 *
 * SECURITY: folder names come from the servers (a hostile or broken
 * server can send anything that decodes).  Nothing here trusts their
 * length or content beyond "NUL-terminated": every buffer is sized from
 * the input, the glob matcher runs in O(pattern x name) time (no
 * backtracking blow-up), and the name set grows with the input only.
 *
 * Ownership: rules own their compiled copies; a plan owns every string
 * it returns.  Pure functions, no global state, thread-safe.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "folders.h"
#include "utf8.h"
#include "util.h"

#define PATTERN_MAX	1024	/* bytes of an include/exclude pattern */
#define KEY_MAX		256	/* bytes of a folded well-known name */

/* ---- well-known names -------------------------------------------------- */

/*
 * Localised names of the special folders, in order of preference (the
 * first match wins when a server has several).  Sources: Outlook and
 * Exchange in their UI languages, Thunderbird, Apple Mail, Gmail
 * ("Sent Mail"), Yahoo ("Bulk Mail"), and imapsync's automap table.
 * Keys are folded (see name_key), so "Junk E-mail", "Junk Email" and
 * "Junk-E-Mail" are one entry.
 */
static const struct role_name {
	const char		*name;
	enum folder_role	 role;
} role_names[] = {
	{ "Sent", FOLDER_ROLE_SENT },
	{ "Sent Items", FOLDER_ROLE_SENT },
	{ "Sent Messages", FOLDER_ROLE_SENT },
	{ "Sent Mail", FOLDER_ROLE_SENT },
	{ "Gesendete Elemente", FOLDER_ROLE_SENT },
	{ "Gesendete Objekte", FOLDER_ROLE_SENT },
	{ "Gesendet", FOLDER_ROLE_SENT },
	{ "\xc3\x89l\xc3\xa9ments envoy\xc3\xa9s", FOLDER_ROLE_SENT },
	{ "Messages envoy\xc3\xa9s", FOLDER_ROLE_SENT },
	{ "Objets envoy\xc3\xa9s", FOLDER_ROLE_SENT },
	{ "Envoy\xc3\xa9s", FOLDER_ROLE_SENT },
	{ "Posta inviata", FOLDER_ROLE_SENT },
	{ "Elementi inviati", FOLDER_ROLE_SENT },
	{ "Inviati", FOLDER_ROLE_SENT },
	{ "Elementos enviados", FOLDER_ROLE_SENT },
	{ "Mensajes enviados", FOLDER_ROLE_SENT },
	{ "Enviados", FOLDER_ROLE_SENT },
	{ "Itens enviados", FOLDER_ROLE_SENT },
	{ "Verzonden items", FOLDER_ROLE_SENT },
	{ "Verzonden berichten", FOLDER_ROLE_SENT },
	{ "Verzonden", FOLDER_ROLE_SENT },
	{ "Skickade objekt", FOLDER_ROLE_SENT },
	{ "Skickat", FOLDER_ROLE_SENT },
	{ "Sendte elementer", FOLDER_ROLE_SENT },
	{ "Sendt post", FOLDER_ROLE_SENT },
	{ "Sendt", FOLDER_ROLE_SENT },
	{ "L\xc3\xa4hetetyt kohteet", FOLDER_ROLE_SENT },
	{ "Elementy wys\xc5\x82\x61ne", FOLDER_ROLE_SENT },
	{ "Odeslan\xc3\xa1 po\xc5\xa1ta", FOLDER_ROLE_SENT },
	{ "\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5"
	  "\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5", FOLDER_ROLE_SENT },
	{ "Drafts", FOLDER_ROLE_DRAFTS },
	{ "Draft", FOLDER_ROLE_DRAFTS },
	{ "Entw\xc3\xbcrfe", FOLDER_ROLE_DRAFTS },
	{ "Brouillons", FOLDER_ROLE_DRAFTS },
	{ "Bozze", FOLDER_ROLE_DRAFTS },
	{ "Borradores", FOLDER_ROLE_DRAFTS },
	{ "Rascunhos", FOLDER_ROLE_DRAFTS },
	{ "Concepten", FOLDER_ROLE_DRAFTS },
	{ "Utkast", FOLDER_ROLE_DRAFTS },
	{ "Kladder", FOLDER_ROLE_DRAFTS },
	{ "Luonnokset", FOLDER_ROLE_DRAFTS },
	{ "Kopie robocze", FOLDER_ROLE_DRAFTS },
	{ "Koncepty", FOLDER_ROLE_DRAFTS },
	{ "\xd0\xa7\xd0\xb5\xd1\x80\xd0\xbd\xd0\xbe\xd0\xb2\xd0\xb8\xd0\xba"
	  "\xd0\xb8", FOLDER_ROLE_DRAFTS },
	{ "Trash", FOLDER_ROLE_TRASH },
	{ "Deleted Items", FOLDER_ROLE_TRASH },
	{ "Deleted Messages", FOLDER_ROLE_TRASH },
	{ "Deleted", FOLDER_ROLE_TRASH },
	{ "Gel\xc3\xb6schte Elemente", FOLDER_ROLE_TRASH },
	{ "Gel\xc3\xb6schte Objekte", FOLDER_ROLE_TRASH },
	{ "Papierkorb", FOLDER_ROLE_TRASH },
	{ "\xc3\x89l\xc3\xa9ments supprim\xc3\xa9s", FOLDER_ROLE_TRASH },
	{ "Messages supprim\xc3\xa9s", FOLDER_ROLE_TRASH },
	{ "Corbeille", FOLDER_ROLE_TRASH },
	{ "Posta eliminata", FOLDER_ROLE_TRASH },
	{ "Elementi eliminati", FOLDER_ROLE_TRASH },
	{ "Cestino", FOLDER_ROLE_TRASH },
	{ "Elementos eliminados", FOLDER_ROLE_TRASH },
	{ "Papelera", FOLDER_ROLE_TRASH },
	{ "Itens exclu\xc3\xad\x64os", FOLDER_ROLE_TRASH },
	{ "Lixeira", FOLDER_ROLE_TRASH },
	{ "Lixo", FOLDER_ROLE_TRASH },
	{ "Verwijderde items", FOLDER_ROLE_TRASH },
	{ "Prullenbak", FOLDER_ROLE_TRASH },
	{ "Borttagna objekt", FOLDER_ROLE_TRASH },
	{ "Papperskorgen", FOLDER_ROLE_TRASH },
	{ "Slettede elementer", FOLDER_ROLE_TRASH },
	{ "Slettet", FOLDER_ROLE_TRASH },
	{ "Papirkurv", FOLDER_ROLE_TRASH },
	{ "Poistetut", FOLDER_ROLE_TRASH },
	{ "Elementy usuni\xc4\x99te", FOLDER_ROLE_TRASH },
	{ "Kosz", FOLDER_ROLE_TRASH },
	{ "Ko\xc5\xa1", FOLDER_ROLE_TRASH },
	{ "\xd0\xa3\xd0\xb4\xd0\xb0\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8b"
	  "\xd0\xb5", FOLDER_ROLE_TRASH },
	{ "\xd0\x9a\xd0\xbe\xd1\x80\xd0\xb7\xd0\xb8\xd0\xbd\xd0\xb0",
	  FOLDER_ROLE_TRASH },
	{ "Junk", FOLDER_ROLE_JUNK },
	{ "Junk E-mail", FOLDER_ROLE_JUNK },
	{ "Junk Mail", FOLDER_ROLE_JUNK },
	{ "Spam", FOLDER_ROLE_JUNK },
	{ "Bulk Mail", FOLDER_ROLE_JUNK },
	{ "Spamverdacht", FOLDER_ROLE_JUNK },
	{ "Courrier ind\xc3\xa9sirable", FOLDER_ROLE_JUNK },
	{ "Courriers ind\xc3\xa9sirables", FOLDER_ROLE_JUNK },
	{ "Pourriel", FOLDER_ROLE_JUNK },
	{ "Posta indesiderata", FOLDER_ROLE_JUNK },
	{ "Correo no deseado", FOLDER_ROLE_JUNK },
	{ "Lixo eletr\xc3\xb4nico", FOLDER_ROLE_JUNK },
	{ "Ongewenste e-mail", FOLDER_ROLE_JUNK },
	{ "Skr\xc3\xa4ppost", FOLDER_ROLE_JUNK },
	{ "U\xc3\xb8nsket e-post", FOLDER_ROLE_JUNK },
	{ "Roskaposti", FOLDER_ROLE_JUNK },
	{ "Wiadomo\xc5\x9b\x63i-\xc5\x9bmieci", FOLDER_ROLE_JUNK },
	{ "Nevy\xc5\xbe\xc3\xa1\x64\x61n\xc3\xa1 po\xc5\xa1ta",
	  FOLDER_ROLE_JUNK },
	{ "\xd0\xa1\xd0\xbf\xd0\xb0\xd0\xbc", FOLDER_ROLE_JUNK },
	{ "Archive", FOLDER_ROLE_ARCHIVE },
	{ "Archives", FOLDER_ROLE_ARCHIVE },
	{ "Archiv", FOLDER_ROLE_ARCHIVE },
	{ "Archivio", FOLDER_ROLE_ARCHIVE },
	{ "Archivo", FOLDER_ROLE_ARCHIVE },
	{ "Arquivo", FOLDER_ROLE_ARCHIVE },
	{ "Archief", FOLDER_ROLE_ARCHIVE },
	{ "Arkiv", FOLDER_ROLE_ARCHIVE },
	{ "Archiwum", FOLDER_ROLE_ARCHIVE },
	{ "\xd0\x90\xd1\x80\xd1\x85\xd0\xb8\xd0\xb2", FOLDER_ROLE_ARCHIVE },
};
#define NROLE_NAMES	(sizeof(role_names) / sizeof(role_names[0]))

/* Exchange's non-mail folders; the first five kinds drive detection. */
#define NM_CALENDAR	0x01
#define NM_CONTACTS	0x02
#define NM_TASKS	0x04
#define NM_NOTES	0x08
#define NM_JOURNAL	0x10
#define NM_OTHER	0x20
#define NM_CORE		0x1f

static const struct non_mail_name {
	const char	*name;
	unsigned	 kind;
} non_mail_names[] = {
	{ "Calendar", NM_CALENDAR }, { "Kalender", NM_CALENDAR },
	{ "Calendrier", NM_CALENDAR }, { "Calendario", NM_CALENDAR },
	{ "Agenda", NM_CALENDAR },
	{ "Contacts", NM_CONTACTS }, { "Kontakte", NM_CONTACTS },
	{ "Contatti", NM_CONTACTS }, { "Contactos", NM_CONTACTS },
	{ "Contactpersonen", NM_CONTACTS },
	{ "Tasks", NM_TASKS }, { "Aufgaben", NM_TASKS },
	{ "T\xc3\xa2\x63hes", NM_TASKS }, { "Attivit\xc3\xa0", NM_TASKS },
	{ "Tareas", NM_TASKS }, { "Taken", NM_TASKS },
	{ "Notes", NM_NOTES }, { "Notizen", NM_NOTES }, { "Note", NM_NOTES },
	{ "Notas", NM_NOTES }, { "Notities", NM_NOTES },
	{ "Journal", NM_JOURNAL }, { "Diario", NM_JOURNAL },
	{ "Logboek", NM_JOURNAL },
	{ "Outbox", NM_OTHER }, { "Postausgang", NM_OTHER },
	{ "Bo\xc3\xaete d'envoi", NM_OTHER }, { "Posta in uscita", NM_OTHER },
	{ "Bandeja de salida", NM_OTHER }, { "Postvak UIT", NM_OTHER },
	{ "Sync Issues", NM_OTHER },
	{ "Synchronisierungsprobleme", NM_OTHER },
	{ "Probl\xc3\xa8mes de synchronisation", NM_OTHER },
	{ "Problemi di sincronizzazione", NM_OTHER },
	{ "Problemas de sincronizaci\xc3\xb3n", NM_OTHER },
	{ "Synchronisatieproblemen", NM_OTHER },
	{ "Conversation History", NM_OTHER },
	{ "Unterhaltungsverlauf", NM_OTHER },
	{ "Historique des conversations", NM_OTHER },
	{ "Cronologia conversazioni", NM_OTHER },
	{ "Historial de conversaciones", NM_OTHER },
	{ "Gespreksgeschiedenis", NM_OTHER },
	{ "RSS Feeds", NM_OTHER }, { "RSS-Abonnements", NM_OTHER },
	{ "Flux RSS", NM_OTHER }, { "Feed RSS", NM_OTHER },
	{ "Fuentes RSS", NM_OTHER }, { "RSS-abonnementen", NM_OTHER },
	{ "Suggested Contacts", NM_OTHER },
	{ "Vorgeschlagene Kontakte", NM_OTHER },
	{ "Contacts sugg\xc3\xa9r\xc3\xa9s", NM_OTHER },
	{ "Conversation Action Settings", NM_OTHER },
	{ "Quick Step Settings", NM_OTHER },
	{ "Yammer Root", NM_OTHER },
};
#define NNON_MAIL	(sizeof(non_mail_names) / sizeof(non_mail_names[0]))

/*
 * Base letters of U+00C0..U+017F for name_key: a lower-case letter, or
 * A = "ae", T = "th", S = "ss", I = "ij", O = "oe", 0 = keep as is
 * (the multiplication and division signs).
 */
static const char fold_latin[] =
	"aaaaaaAceeeeiiiidnooooo0ouuuuyTS"	/* U+00C0 */
	"aaaaaaAceeeeiiiidnooooo0ouuuuyTy"	/* U+00E0 */
	"aaaaaaccccccccddddeeeeeeeeeegggg"	/* U+0100 */
	"gggghhhhiiiiiiiiiiIIjjkkklllllll"	/* U+0120 */
	"lllnnnnnnnnnooooooOOrrrrrrssssss"	/* U+0140 */
	"ssttttttuuuuuuuuuuuuwwyyyzzzzzzs";	/* U+0160 */

/* utf8_decode - the code point at s (n bytes), or UINT32_MAX if bad */
static uint32_t
utf8_decode(const unsigned char *s, size_t *n_r)
{
	if (s[0] < 0x80) {
		*n_r = 1;
		return (s[0]);
	}
	if ((s[0] & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) {
		*n_r = 2;
		return ((uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f));
	}
	if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 &&
	    (s[2] & 0xc0) == 0x80) {
		*n_r = 3;
		return ((uint32_t)(s[0] & 0x0f) << 12 |
		    (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f));
	}
	*n_r = 1;
	return (UINT32_MAX);
}

/*
 * name_key - fold a folder name for comparison with the well-known
 * names: ASCII lower case, Latin accents dropped (precomposed letters
 * mapped to their base, combining marks U+0300..U+036F removed, so NFC
 * and NFD spellings agree), Cyrillic capitals lowered, blanks, "-", "_"
 * and apostrophes removed.  Returns 0 when the key does not fit (such
 * a name is no well-known name anyway).
 */
static int
name_key(const char *name, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t o = 0, n, k;
	const char *put;
	char one[2] = { 0, 0 }, enc[3];
	uint32_t cp;

	while (*p != '\0') {
		cp = utf8_decode(p, &n);
		put = NULL;
		if (cp < 0x80) {
			if (cp == ' ' || cp == '-' || cp == '_' || cp == '\'') {
				p += n;
				continue;
			}
			one[0] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
			put = one;
		} else if ((cp >= 0x300 && cp <= 0x36f) || cp == 0x2019) {
			p += n;
			continue;
		} else if (cp >= 0xc0 && cp < 0x180) {
			switch (fold_latin[cp - 0xc0]) {
			case 'A': put = "ae"; break;
			case 'T': put = "th"; break;
			case 'S': put = "ss"; break;
			case 'I': put = "ij"; break;
			case 'O': put = "oe"; break;
			case '0': break;
			default:
				one[0] = fold_latin[cp - 0xc0];
				put = one;
			}
		} else if ((cp >= 0x400 && cp <= 0x40f) ||
		    (cp >= 0x410 && cp <= 0x42f)) {
			cp += (cp < 0x410) ? 0x50 : 0x20;
			enc[0] = (char)(0xc0 | (cp >> 6));
			enc[1] = (char)(0x80 | (cp & 0x3f));
			enc[2] = '\0';
			put = enc;
		}
		if (put == NULL) {		/* anything else: as is */
			if (o + n >= outlen)
				return (0);
			memcpy(out + o, p, n);
			o += n;
		} else {
			k = strlen(put);
			if (o + k >= outlen)
				return (0);
			memcpy(out + o, put, k);
			o += k;
		}
		p += n;
	}
	out[o] = '\0';
	return (1);
}

/* role_lookup - the role of a one-level name and its preference rank */
static enum folder_role
role_lookup(const char *name, size_t *rank_r)
{
	char key[KEY_MAX], k2[KEY_MAX];
	size_t i;

	if (!name_key(name, key, sizeof(key)) || key[0] == '\0')
		return (FOLDER_ROLE_NONE);
	for (i = 0; i < NROLE_NAMES; i++)
		if (name_key(role_names[i].name, k2, sizeof(k2)) &&
		    strcmp(key, k2) == 0) {
			if (rank_r != NULL)
				*rank_r = i;
			return (role_names[i].role);
		}
	return (FOLDER_ROLE_NONE);
}

enum folder_role
folder_role_by_name(const char *name)
{
	return (role_lookup(name, NULL));
}

/* non_mail_kind - NM_* of a one-level name, 0 for a mail folder */
static unsigned
non_mail_kind(const char *name)
{
	char key[KEY_MAX], k2[KEY_MAX];
	size_t i;

	if (!name_key(name, key, sizeof(key)) || key[0] == '\0')
		return (0);
	for (i = 0; i < NNON_MAIL; i++)
		if (name_key(non_mail_names[i].name, k2, sizeof(k2)) &&
		    strcmp(key, k2) == 0)
			return (non_mail_names[i].kind);
	return (0);
}

int
folder_is_non_mail_name(const char *name)
{
	return (non_mail_kind(name) != 0);
}

/* ---- names of enums ----------------------------------------------------- */

static const struct {
	const char	*name;
	const char	*flag;
	const char	*create;	/* conventional English name */
	unsigned	 attr;		/* IMAP_MBOX_* */
} roles[FOLDER_ROLE_COUNT_] = {
	[FOLDER_ROLE_NONE] = { "none", "", "", 0 },
	[FOLDER_ROLE_INBOX] = { "INBOX", "", "INBOX", 0 },
	[FOLDER_ROLE_SENT] = { "Sent", "\\Sent", "Sent", IMAP_MBOX_SENT },
	[FOLDER_ROLE_DRAFTS] = { "Drafts", "\\Drafts", "Drafts",
	    IMAP_MBOX_DRAFTS },
	[FOLDER_ROLE_TRASH] = { "Trash", "\\Trash", "Trash", IMAP_MBOX_TRASH },
	[FOLDER_ROLE_JUNK] = { "Junk", "\\Junk", "Junk", IMAP_MBOX_JUNK },
	[FOLDER_ROLE_ARCHIVE] = { "Archive", "\\Archive", "Archive",
	    IMAP_MBOX_ARCHIVE },
};

const char *
folder_role_name(enum folder_role role)
{
	if ((unsigned)role >= FOLDER_ROLE_COUNT_)
		return ("?");
	return (roles[role].name);
}

const char *
folder_role_flag(enum folder_role role)
{
	if ((unsigned)role >= FOLDER_ROLE_COUNT_)
		return ("");
	return (roles[role].flag);
}

const char *
folder_skip_name(enum folder_skip skip)
{
	switch (skip) {
	case FOLDER_COPY:		return ("copied");
	case FOLDER_SKIP_BADNAME:	return ("name not decodable");
	case FOLDER_SKIP_NAMESPACE:
		return ("outside the personal namespace");
	case FOLDER_SKIP_DUPLICATE:	return ("listed twice");
	case FOLDER_SKIP_NOSELECT:	return ("container only (\\Noselect)");
	case FOLDER_SKIP_EXCLUDED:	return ("excluded");
	case FOLDER_SKIP_VIRTUAL:	return ("virtual folder");
	case FOLDER_SKIP_NON_MAIL:	return ("non-mail folder");
	}
	return ("?");
}

const char *
folder_how_name(enum folder_how how)
{
	switch (how) {
	case FOLDER_HOW_NONE:		return ("skipped");
	case FOLDER_HOW_MAP:		return ("map rule");
	case FOLDER_HOW_INBOX:		return ("INBOX");
	case FOLDER_HOW_SPECIAL_USE:	return ("special-use");
	case FOLDER_HOW_SPECIAL_NAME:	return ("well-known name");
	case FOLDER_HOW_PARENT:		return ("below its parent");
	case FOLDER_HOW_SAME:		return ("same path");
	}
	return ("?");
}

/* role_of_attrs - the mapped role a SPECIAL-USE attribute gives */
static enum folder_role
role_of_attrs(unsigned attrs)
{
	if (attrs & IMAP_MBOX_SENT)
		return (FOLDER_ROLE_SENT);
	if (attrs & IMAP_MBOX_DRAFTS)
		return (FOLDER_ROLE_DRAFTS);
	if (attrs & IMAP_MBOX_TRASH)
		return (FOLDER_ROLE_TRASH);
	if (attrs & IMAP_MBOX_JUNK)
		return (FOLDER_ROLE_JUNK);
	if (attrs & IMAP_MBOX_ARCHIVE)
		return (FOLDER_ROLE_ARCHIVE);
	return (FOLDER_ROLE_NONE);
}

#define VIRTUAL_ATTRS \
	(IMAP_MBOX_ALL | IMAP_MBOX_FLAGGED | IMAP_MBOX_IMPORTANT)

/* ---- glob ------------------------------------------------------------- */

/*
 * folder_glob_match - IMAP LIST wildcards: "*" matches any run of
 * bytes, "%" any run without "/".  Simulated as a set of pattern
 * positions, so the time is O(len(pattern) x len(path)) whatever the
 * pattern.  Bytes compare exactly (UTF-8 needs nothing special: "%"
 * and "*" only ever stop at ASCII "/").
 */
int
folder_glob_match(const char *pattern, const char *path)
{
	unsigned char a[PATTERN_MAX + 1], b[PATTERN_MAX + 1];
	unsigned char *cur = a, *nxt = b, *t;
	size_t m = strlen(pattern), j;
	const char *s;
	int alive;

	if (m > PATTERN_MAX)
		return (0);
	memset(cur, 0, m + 1);
	cur[0] = 1;
	for (j = 0; j < m; j++)		/* wildcards may match nothing */
		if (cur[j] && (pattern[j] == '*' || pattern[j] == '%'))
			cur[j + 1] = 1;
	for (s = path; *s != '\0'; s++) {
		memset(nxt, 0, m + 1);
		alive = 0;
		for (j = 0; j < m; j++) {
			if (!cur[j])
				continue;
			if (pattern[j] == '*' || (pattern[j] == '%' &&
			    *s != '/'))
				nxt[j] = 1;
			else if (pattern[j] == *s)
				nxt[j + 1] = 1;
		}
		for (j = 0; j <= m; j++) {
			if (j < m && nxt[j] && (pattern[j] == '*' ||
			    pattern[j] == '%'))
				nxt[j + 1] = 1;
			alive |= nxt[j];
		}
		if (!alive)
			return (0);
		t = cur;
		cur = nxt;
		nxt = t;
	}
	return (cur[m]);
}

/* ---- path levels ------------------------------------------------------- */

struct levels {
	char	*buf;		/* the levels, NUL-separated */
	char	**v;
	size_t	 n;
};

static void
levels_free(struct levels *l)
{
	free(l->buf);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* levels_split - cut s at sep (0: one level); INBOX spelled "INBOX" in
 * the first level when inbox_first is set */
static int
levels_split(struct levels *l, const char *s, char sep, int inbox_first)
{
	size_t i, n = 1, len = strlen(s);

	memset(l, 0, sizeof(*l));
	if (sep != '\0')
		for (i = 0; i < len; i++)
			if (s[i] == sep)
				n++;
	if ((l->buf = strdup(s)) == NULL ||
	    (l->v = calloc(n, sizeof(*l->v))) == NULL) {
		levels_free(l);
		return (-1);
	}
	l->v[0] = l->buf;
	l->n = 1;
	if (sep != '\0')
		for (i = 0; i < len; i++)
			if (l->buf[i] == sep) {
				l->buf[i] = '\0';
				l->v[l->n++] = l->buf + i + 1;
			}
	if (inbox_first && strcasecmp(l->v[0], "INBOX") == 0)
		memcpy(l->v[0], "INBOX", 5);
	return (0);
}

/* levels_join - v[0..n) joined with sep into a new string */
static char *
levels_join(char *const *v, size_t n, char sep)
{
	size_t i, len = 0;
	char *out, *p;

	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	if ((out = malloc(len + 1)) == NULL)
		return (NULL);
	p = out;
	for (i = 0; i < n; i++) {
		size_t k = strlen(v[i]);

		if (i > 0)
			*p++ = sep;
		memcpy(p, v[i], k);
		p += k;
	}
	*p = '\0';
	return (out);
}

/* levels_cmp - order of two level vectors: level by level, then depth */
static int
levels_cmp(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t i;
	int c;

	for (i = 0; i < na && i < nb; i++)
		if ((c = strcmp(a[i], b[i])) != 0)
			return (c);
	return (na < nb ? -1 : na > nb);
}

/* ---- rules ------------------------------------------------------------- */

struct map_rule {
	char		*text;		/* "SRC => DST" as configured */
	struct levels	 src;
	struct levels	 dst;		/* unused when dst_role is set */
	enum folder_role dst_role;	/* "\Sent" etc., or NONE */
};

struct folder_rules {
	char		**include;
	size_t		 ninclude;
	char		**exclude;
	size_t		 nexclude;
	struct map_rule	*maps;
	size_t		 nmaps;
	int		 skip_non_mail;
};

void
folder_rules_free(struct folder_rules **rulesp)
{
	struct folder_rules *r;
	size_t i;

	if (rulesp == NULL || (r = *rulesp) == NULL)
		return;
	for (i = 0; i < r->ninclude; i++)
		free(r->include[i]);
	for (i = 0; i < r->nexclude; i++)
		free(r->exclude[i]);
	for (i = 0; i < r->nmaps; i++) {
		free(r->maps[i].text);
		levels_free(&r->maps[i].src);
		levels_free(&r->maps[i].dst);
	}
	free(r->include);
	free(r->exclude);
	free(r->maps);
	free(r);
	*rulesp = NULL;
}

/* check_path - a rule path: non-empty levels, valid UTF-8, no controls */
static const char *
check_path(const char *p, int wildcards_ok)
{
	size_t i, len = strlen(p);

	if (len == 0)
		return ("empty folder path");
	if (!utf8_valid(p, len))
		return ("not valid UTF-8");
	for (i = 0; i < len; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return ("control character");
		if (!wildcards_ok && (p[i] == '*' || p[i] == '%'))
			return ("wildcards (* %) are for include and exclude");
		if (p[i] == '/' && (i == 0 || i + 1 == len || p[i + 1] == '/'))
			return ("empty level (leading, trailing or double /)");
	}
	return (NULL);
}

/* normalise_inbox - "inbox" or "Inbox/..." at the start becomes INBOX */
static void
normalise_inbox(char *p)
{
	if (strncasecmp(p, "INBOX", 5) == 0 && (p[5] == '\0' || p[5] == '/'))
		memcpy(p, "INBOX", 5);
}

/* copy_patterns - check and copy include or exclude patterns */
static int
copy_patterns(const struct strlist *l, char ***out_r, size_t *n_r,
    const char *what, char *err, size_t errlen)
{
	const char *why;
	size_t i;

	*out_r = NULL;
	*n_r = 0;
	if (l == NULL || l->count == 0)
		return (0);
	if ((*out_r = calloc(l->count, sizeof(**out_r))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	for (i = 0; i < l->count; i++) {
		if (strlen(l->items[i]) > PATTERN_MAX)
			why = "longer than 1024 bytes";
		else
			why = check_path(l->items[i], 1);
		if (why != NULL) {
			errbuf_set(err, errlen, "%s \"%s\": %s", what,
			    l->items[i], why);
			return (-1);
		}
		if (((*out_r)[i] = strdup(l->items[i])) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			return (-1);
		}
		(*n_r)++;
		normalise_inbox((*out_r)[i]);
	}
	return (0);
}

/* parse_map - "SRC => DST" into a rule */
static int
parse_map(const char *text, struct map_rule *m, char *err, size_t errlen)
{
	char *copy, *arrow, *src, *dst;
	const char *why = NULL;
	size_t i;

	if ((copy = strdup(text)) == NULL || (m->text = strdup(text)) == NULL) {
		free(copy);
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	if ((arrow = strstr(copy, "=>")) == NULL) {
		errbuf_set(err, errlen, "map \"%s\": no \"=>\" (use: map = "
		    "Source/Path => Destination/Path)", text);
		free(copy);
		return (-1);
	}
	*arrow = '\0';
	src = str_trim(copy);
	dst = str_trim(arrow + 2);
	if ((why = check_path(src, 0)) != NULL) {
		errbuf_set(err, errlen, "map \"%s\": source: %s", text, why);
		free(copy);
		return (-1);
	}
	for (i = FOLDER_ROLE_SENT; i < FOLDER_ROLE_COUNT_; i++)
		if (strcasecmp(dst, roles[i].flag) == 0)
			m->dst_role = (enum folder_role)i;
	if (m->dst_role == FOLDER_ROLE_NONE && dst[0] == '\\')
		why = "unknown special-use name (use \\Sent \\Drafts \\Trash "
		    "\\Junk or \\Archive)";
	else if (m->dst_role == FOLDER_ROLE_NONE)
		why = check_path(dst, 0);
	if (why != NULL) {
		errbuf_set(err, errlen, "map \"%s\": destination: %s", text,
		    why);
		free(copy);
		return (-1);
	}
	normalise_inbox(src);
	normalise_inbox(dst);
	if (levels_split(&m->src, src, '/', 1) == -1 ||
	    (m->dst_role == FOLDER_ROLE_NONE &&
	    levels_split(&m->dst, dst, '/', 1) == -1)) {
		errbuf_set(err, errlen, "out of memory");
		free(copy);
		return (-1);
	}
	free(copy);
	return (0);
}

/* folder_rules_new - compile the [syncd] folder rules */
int
folder_rules_new(struct folder_rules **rules_r, const struct strlist *include,
    const struct strlist *exclude, const struct strlist *map,
    int skip_non_mail, char *err, size_t errlen)
{
	struct folder_rules *r;
	size_t i, k;

	*rules_r = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (-1);
	}
	r->skip_non_mail = skip_non_mail;
	if (copy_patterns(include, &r->include, &r->ninclude, "include", err,
	    errlen) == -1 || copy_patterns(exclude, &r->exclude, &r->nexclude,
	    "exclude", err, errlen) == -1)
		goto fail;
	if (map != NULL && map->count > 0) {
		if ((r->maps = calloc(map->count, sizeof(*r->maps))) == NULL) {
			errbuf_set(err, errlen, "out of memory");
			goto fail;
		}
		for (i = 0; i < map->count; i++) {
			r->nmaps++;
			if (parse_map(map->items[i], &r->maps[i], err,
			    errlen) == -1)
				goto fail;
			for (k = 0; k < i; k++)
				if (levels_cmp(r->maps[k].src.v,
				    r->maps[k].src.n, r->maps[i].src.v,
				    r->maps[i].src.n) == 0) {
					errbuf_set(err, errlen, "map \"%s\": "
					    "source already mapped by \"%s\"",
					    map->items[i], map->items[k]);
					goto fail;
				}
		}
	}
	*rules_r = r;
	return (0);
fail:
	folder_rules_free(&r);
	return (-1);
}

/* ---- the destination's names ------------------------------------------- */

/* One destination name, existing or planned. */
struct slot {
	char		*key;		/* normalised name; NULL = free slot */
	int		 exists;	/* listed on the destination */
	unsigned	 attrs;		/* its attributes if it exists */
	struct work	*taken;		/* planned for this source folder */
	int		 create_planned;
};

struct nameset {
	struct slot	*slots;
	size_t		 cap;		/* power of two */
	size_t		 count;
	int		 fold;		/* ASCII case-insensitive */
};

static uint64_t
name_hash(const char *s, int fold)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (fold && c >= 'A' && c <= 'Z')
			c += 32;
		h = (h ^ c) * 1099511628211ULL;
	}
	return (h);
}

static void
nameset_free(struct nameset *ns)
{
	size_t i;

	for (i = 0; i < ns->cap; i++)
		free(ns->slots[i].key);
	free(ns->slots);
	memset(ns, 0, sizeof(*ns));
}

/* nameset_find - the slot of name, or the free slot where it would go */
static struct slot *
nameset_find(const struct nameset *ns, const char *name)
{
	size_t i = (size_t)name_hash(name, ns->fold) & (ns->cap - 1);

	while (ns->slots[i].key != NULL) {
		if ((ns->fold ? strcasecmp(ns->slots[i].key, name) :
		    strcmp(ns->slots[i].key, name)) == 0)
			return (&ns->slots[i]);
		i = (i + 1) & (ns->cap - 1);
	}
	return (&ns->slots[i]);
}

/* nameset_get - the slot of name, added when missing; NULL: no memory */
static struct slot *
nameset_get(struct nameset *ns, const char *name)
{
	struct slot *s, *old;
	size_t oldcap, i;

	if (ns->cap == 0 || (ns->count + 1) * 2 > ns->cap) {
		old = ns->slots;
		oldcap = ns->cap;
		ns->cap = oldcap ? oldcap * 2 : 64;
		if ((ns->slots = calloc(ns->cap, sizeof(*s))) == NULL) {
			ns->slots = old;
			ns->cap = oldcap;
			return (NULL);
		}
		for (i = 0; i < oldcap; i++)
			if (old[i].key != NULL)
				*nameset_find(ns, old[i].key) = old[i];
		free(old);
	}
	s = nameset_find(ns, name);
	if (s->key == NULL) {
		if ((s->key = strdup(name)) == NULL)
			return (NULL);
		ns->count++;
	}
	return (s);
}

/* ---- the plan ---------------------------------------------------------- */

enum anchor {
	ANCHOR_NONE = 0,
	ANCHOR_MAP,
	ANCHOR_INBOX,
	ANCHOR_SPECIAL_USE,
	ANCHOR_SPECIAL_NAME,
	ANCHOR_PARENT,
	ANCHOR_SAME,
};

/* Tiers: who gets a contested destination first. */
static const int anchor_tier[] = {
	[ANCHOR_NONE] = 9, [ANCHOR_INBOX] = 0, [ANCHOR_MAP] = 1,
	[ANCHOR_SPECIAL_USE] = 2, [ANCHOR_SPECIAL_NAME] = 3,
	[ANCHOR_PARENT] = 9, [ANCHOR_SAME] = 4,
};

/* One source folder while the plan is made. */
struct work {
	size_t		 index;
	const struct folder_info *in;
	struct levels	 lv;		/* path levels */
	char		*path;		/* "/" path */
	int		 is_inbox;
	enum folder_skip skip;
	enum folder_role role;
	size_t		 role_rank;	/* in role_names, for name matches */
	enum anchor	 anchor;
	const struct map_rule *rule;	/* ANCHOR_MAP */
	struct work	*parent;	/* ANCHOR_PARENT */
	int		 tier;
	int		 via_map;	/* on a map rule, its own or above */
	char		*dst;		/* final destination name */
	unsigned	 warnings;
	struct work	*conflict;
	int		 create;
	unsigned	 create_special;
	int		 dst_exists;
};

/* The destination's folder for each role. */
struct special {
	char		*name;		/* full destination name */
	int		 found;		/* exists (by flag or by name) */
};

struct plan_ctx {
	const struct folder_rules *rules;
	const struct folder_list *src, *dst;
	unsigned	 opts;
	char		 ssep, dsep;
	const char	*sprefix, *dprefix;
	struct nameset	 names;
	struct special	 special[FOLDER_ROLE_COUNT_];
	struct work	*w;
	size_t		 n;
	struct work	**by_levels;	/* sorted for look-ups */
	unsigned	 flagged;	/* 1 << role: a folder has the flag */
	int		 exchange;
};

/* prefix_strip - the name below prefix, or NULL if outside it; INBOX in
 * the prefix compares case-insensitively */
static const char *
prefix_strip(const char *name, const char *prefix)
{
	size_t len = strlen(prefix);

	if (len == 0)
		return (name);
	if (strncasecmp(prefix, "INBOX", 5) == 0 && len >= 5) {
		if (strncasecmp(name, prefix, 5) != 0 ||
		    strncmp(name + 5, prefix + 5, len - 5) != 0)
			return (NULL);
	} else if (strncmp(name, prefix, len) != 0)
		return (NULL);
	return (name + len);
}

/* escape_level - a copy of one level, made safe for the destination */
static char *
escape_level(const char *level, char dsep, unsigned *warn)
{
	char *out, *p;
	char sub = (dsep == '_') ? '-' : '_';

	if (level[0] == '\0') {
		*warn |= FOLDER_W_EMPTY_LEVEL;
		return (strdup("_"));
	}
	if ((out = strdup(level)) == NULL)
		return (NULL);
	if (dsep != '\0')
		for (p = out; *p != '\0'; p++)
			if (*p == dsep) {
				*p = sub;
				*warn |= FOLDER_W_ESCAPED;
			}
	return (out);
}

/*
 * dst_append - base + separator + the escaped levels v[0..n); base NULL
 * builds a name from the levels alone: "INBOX..." when the first level
 * is INBOX, else under the destination's namespace prefix.
 */
static char *
dst_append(const struct plan_ctx *ctx, const char *base, char *const *v,
    size_t n, unsigned *warn)
{
	char **esc, *joined = NULL, *out = NULL;
	char sep = ctx->dsep ? ctx->dsep : '/';
	size_t i;
	int inbox;

	if (n == 0)
		return (strdup(base != NULL ? base : ""));
	if ((esc = calloc(n, sizeof(*esc))) == NULL)
		return (NULL);
	for (i = 0; i < n; i++)
		if ((esc[i] = escape_level(v[i], ctx->dsep, warn)) == NULL)
			goto out;
	if ((joined = levels_join(esc, n, sep)) == NULL)
		goto out;
	if (base != NULL) {
		if (asprintf(&out, "%s%c%s", base, sep, joined) == -1)
			out = NULL;
		goto out;
	}
	inbox = strcasecmp(esc[0], "INBOX") == 0;
	if (inbox)
		memcpy(joined, "INBOX", 5);
	if (asprintf(&out, "%s%s", inbox ? "" : ctx->dprefix, joined) == -1)
		out = NULL;
out:
	for (i = 0; i < n; i++)
		free(esc[i]);
	free(esc);
	free(joined);
	return (out);
}

/* dst_normalise - a destination name as listed, with INBOX spelled
 * "INBOX" when it or its first level is INBOX */
static char *
dst_normalise(const char *name, char dsep)
{
	char *out = strdup(name);

	if (out != NULL && strncasecmp(out, "INBOX", 5) == 0 &&
	    (out[5] == '\0' || (dsep != '\0' && out[5] == dsep)))
		memcpy(out, "INBOX", 5);
	return (out);
}

/* one_level_name - the level a well-known name must be: the top level,
 * or the level right below INBOX; NULL otherwise */
static const char *
one_level_name(char *const *v, size_t n)
{
	if (n == 1)
		return (v[0]);
	if (n == 2 && strcmp(v[0], "INBOX") == 0)
		return (v[1]);
	return (NULL);
}

/* plan_destination - the destination's names and special folders */
static int
plan_destination(struct plan_ctx *ctx)
{
	const struct folder_list *d = ctx->dst;
	size_t best_rank[FOLDER_ROLE_COUNT_], rank, i;
	int best_flag[FOLDER_ROLE_COUNT_];
	enum folder_role role;
	struct levels lv;
	struct slot *s;
	const char *rel, *one;
	char *norm;
	unsigned warn = 0;
	int flagged;

	for (i = 0; i < FOLDER_ROLE_COUNT_; i++) {
		best_rank[i] = SIZE_MAX;
		best_flag[i] = 0;
	}
	/* INBOX exists even when a LIST pattern did not show it, and
	 * creating it is an error (RFC 3501 §6.3.3). */
	if ((s = nameset_get(&ctx->names, "INBOX")) == NULL)
		return (-1);
	s->exists = 1;
	for (i = 0; i < d->n; i++) {
		if (d->v[i].name == NULL)
			continue;
		if ((norm = dst_normalise(d->v[i].name, ctx->dsep)) == NULL)
			return (-1);
		if ((s = nameset_get(&ctx->names, norm)) == NULL) {
			free(norm);
			return (-1);
		}
		s->exists = 1;
		s->attrs |= d->v[i].attrs;
		if (d->v[i].attrs & (IMAP_MBOX_NOSELECT | VIRTUAL_ATTRS)) {
			free(norm);
			continue;
		}
		/* A candidate for a role: by flag (any depth) or by name. */
		role = role_of_attrs(d->v[i].attrs);
		flagged = role != FOLDER_ROLE_NONE;
		rank = SIZE_MAX;
		if ((rel = prefix_strip(norm, ctx->dprefix)) == NULL)
			rel = norm;
		if (levels_split(&lv, rel, ctx->dsep, 1) == -1) {
			free(norm);
			return (-1);
		}
		if ((one = one_level_name(lv.v, lv.n)) != NULL) {
			enum folder_role r2 = role_lookup(one, &rank);

			if (!flagged)
				role = r2;
			else if (r2 != role)
				rank = SIZE_MAX - 1;
		} else if (flagged)
			rank = SIZE_MAX - 1;
		levels_free(&lv);
		if (role == FOLDER_ROLE_NONE ||
		    best_flag[role] > flagged ||
		    (best_flag[role] == flagged && rank > best_rank[role]) ||
		    (best_flag[role] == flagged && rank == best_rank[role] &&
		    ctx->special[role].name != NULL &&
		    strcmp(norm, ctx->special[role].name) >= 0)) {
			free(norm);
			continue;
		}
		free(ctx->special[role].name);
		ctx->special[role].name = norm;
		ctx->special[role].found = 1;
		best_flag[role] = flagged;
		best_rank[role] = rank;
	}
	/* Roles the destination lacks: the conventional name, created. */
	for (i = FOLDER_ROLE_SENT; i < FOLDER_ROLE_COUNT_; i++) {
		char *v[1];

		if (ctx->special[i].name != NULL)
			continue;
		v[0] = (char *)roles[i].create;
		if ((ctx->special[i].name = dst_append(ctx, NULL, v, 1,
		    &warn)) == NULL)
			return (-1);
	}
	if ((ctx->special[FOLDER_ROLE_INBOX].name = strdup("INBOX")) == NULL)
		return (-1);
	ctx->special[FOLDER_ROLE_INBOX].found = 1;
	return (0);
}

/* name_cmp - listed names, a missing one first */
static int
name_cmp(const struct work *x, const struct work *y)
{
	if (x->in->name == NULL || y->in->name == NULL)
		return ((x->in->name != NULL) - (y->in->name != NULL));
	return (strcmp(x->in->name, y->in->name));
}

/*
 * work_levels_cmp - by levels, then by name (two spellings of INBOX
 * give equal levels), then by listing order: only the repeats of one
 * name depend on the order of the LIST responses, and they are equal.
 */
static int
work_levels_cmp(const void *a, const void *b)
{
	const struct work *x = *(const struct work *const *)a;
	const struct work *y = *(const struct work *const *)b;
	int c = levels_cmp(x->lv.v, x->lv.n, y->lv.v, y->lv.n);

	if (c != 0)
		return (c);
	if ((c = name_cmp(x, y)) != 0)
		return (c);
	return (x->index < y->index ? -1 : x->index > y->index);
}

/* find_levels - the planned (not skipped) folder with exactly these
 * levels, or NULL */
static struct work *
find_levels(const struct plan_ctx *ctx, char *const *v, size_t n)
{
	size_t lo = 0, hi = ctx->n, mid;
	struct work *w;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		w = ctx->by_levels[mid];
		if (w->lv.v == NULL)
			c = -1;		/* no levels sort first */
		else
			c = levels_cmp(w->lv.v, w->lv.n, v, n);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Equal levels: the first not skipped (duplicates come later). */
	for (; lo < ctx->n; lo++) {
		w = ctx->by_levels[lo];
		if (w->lv.v == NULL || levels_cmp(w->lv.v, w->lv.n, v, n) != 0)
			return (NULL);
		if (w->skip == FOLDER_COPY)
			return (w);
	}
	return (NULL);
}

/* plan_source - levels, context-free skips, index, roles flagged */
static int
plan_source(struct plan_ctx *ctx)
{
	const struct folder_list *s = ctx->src;
	unsigned kinds = 0;
	const char *rel;
	struct work *w;
	size_t i;

	for (i = 0; i < ctx->n; i++) {
		w = &ctx->w[i];
		w->index = i;
		w->in = &s->v[i];
		if (w->in->name == NULL) {
			w->skip = FOLDER_SKIP_BADNAME;
			continue;
		}
		if (strcasecmp(w->in->name, "INBOX") == 0) {
			w->is_inbox = 1;
			rel = "INBOX";
		} else if ((rel = prefix_strip(w->in->name, ctx->sprefix)) ==
		    NULL || rel[0] == '\0') {
			w->skip = FOLDER_SKIP_NAMESPACE;
			rel = w->in->name;
		}
		/* Below INBOX only when INBOX is not the namespace itself. */
		if (levels_split(&w->lv, rel, ctx->ssep, ctx->sprefix[0] ==
		    '\0' || w->is_inbox) == -1)
			return (-1);
		if ((w->path = levels_join(w->lv.v, w->lv.n, '/')) == NULL)
			return (-1);
		if (w->skip == FOLDER_COPY &&
		    (w->in->attrs & (IMAP_MBOX_NOSELECT |
		    IMAP_MBOX_NONEXISTENT)))
			w->skip = FOLDER_SKIP_NOSELECT;
	}
	if ((ctx->by_levels = calloc(ctx->n ? ctx->n : 1,
	    sizeof(*ctx->by_levels))) == NULL)
		return (-1);
	for (i = 0; i < ctx->n; i++)
		ctx->by_levels[i] = &ctx->w[i];
	qsort(ctx->by_levels, ctx->n, sizeof(*ctx->by_levels),
	    work_levels_cmp);
	/* The same name listed twice: keep the first.  Equal names have
	 * equal levels, so they sit in one run, in listing order. */
	for (i = 1; i < ctx->n; i++) {
		struct work *b = ctx->by_levels[i], *a;
		size_t k;

		if (b->in->name == NULL)
			continue;
		for (k = i; k-- > 0;) {
			a = ctx->by_levels[k];
			if (a->in->name == NULL || levels_cmp(a->lv.v, a->lv.n,
			    b->lv.v, b->lv.n) != 0)
				break;
			if (strcmp(a->in->name, b->in->name) == 0) {
				b->skip = FOLDER_SKIP_DUPLICATE;
				break;
			}
		}
	}
	for (i = 0; i < ctx->n; i++) {
		w = &ctx->w[i];
		if (w->skip == FOLDER_SKIP_BADNAME ||
		    w->skip == FOLDER_SKIP_NAMESPACE ||
		    w->skip == FOLDER_SKIP_DUPLICATE)
			continue;
		if (role_of_attrs(w->in->attrs) != FOLDER_ROLE_NONE)
			ctx->flagged |= 1u << role_of_attrs(w->in->attrs);
		if (w->lv.n == 1)
			kinds |= non_mail_kind(w->lv.v[0]);
	}
	/* Exchange always lists Calendar, Contacts, Tasks, Notes, Journal. */
	kinds &= NM_CORE;
	ctx->exchange = (ctx->opts & FOLDER_OPT_EXCHANGE) ||
	    (kinds & (kinds - 1)) != 0;
	return (0);
}

/* excluded - the include/exclude verdict for a path */
static int
excluded(const struct folder_rules *r, const char *path)
{
	size_t i;

	for (i = 0; i < r->nexclude; i++)
		if (folder_glob_match(r->exclude[i], path))
			return (1);
	if (r->ninclude == 0)
		return (0);
	for (i = 0; i < r->ninclude; i++)
		if (folder_glob_match(r->include[i], path))
			return (0);
	return (1);
}

/* find_rule - the map rule with the longest source above or at v */
static const struct map_rule *
find_rule(const struct folder_rules *r, char *const *v, size_t n)
{
	const struct map_rule *best = NULL;
	size_t i;

	for (i = 0; i < r->nmaps; i++) {
		const struct map_rule *m = &r->maps[i];

		if (m->src.n > n || levels_cmp(m->src.v, m->src.n, v,
		    m->src.n) != 0)
			continue;
		if (best == NULL || m->src.n > best->src.n)
			best = m;
	}
	return (best);
}

/* plan_anchors - skips that need the rules, and each folder's anchor */
static void
plan_anchors(struct plan_ctx *ctx)
{
	static const struct folder_rules none = { .skip_non_mail = 1 };
	const struct folder_rules *r = ctx->rules ? ctx->rules : &none;
	const char *one;
	struct work *w;
	size_t i;

	for (i = 0; i < ctx->n; i++) {
		w = &ctx->w[i];
		if (w->skip != FOLDER_COPY)
			continue;
		/* The folder's own role, whatever decides its place. */
		if (w->is_inbox)
			w->role = FOLDER_ROLE_INBOX;
		else if ((w->role = role_of_attrs(w->in->attrs)) ==
		    FOLDER_ROLE_NONE && (one = one_level_name(w->lv.v,
		    w->lv.n)) != NULL) {
			w->role = role_lookup(one, &w->role_rank);
			if (ctx->flagged & (1u << w->role))
				w->role = FOLDER_ROLE_NONE;
		}
		if (excluded(r, w->path)) {
			w->skip = FOLDER_SKIP_EXCLUDED;
			continue;
		}
		if ((w->rule = find_rule(r, w->lv.v, w->lv.n)) != NULL) {
			w->anchor = ANCHOR_MAP;
			w->via_map = 1;
			continue;
		}
		if (w->in->attrs & VIRTUAL_ATTRS) {
			w->skip = FOLDER_SKIP_VIRTUAL;
			continue;
		}
		if (r->skip_non_mail && ctx->exchange && !w->is_inbox &&
		    non_mail_kind(w->lv.v[0]) != 0) {
			w->skip = FOLDER_SKIP_NON_MAIL;
			continue;
		}
		if (w->is_inbox)
			w->anchor = ANCHOR_INBOX;
		else if (role_of_attrs(w->in->attrs) != FOLDER_ROLE_NONE)
			w->anchor = ANCHOR_SPECIAL_USE;
		else if (w->role != FOLDER_ROLE_NONE)
			w->anchor = ANCHOR_SPECIAL_NAME;
	}
}

static int
work_depth_cmp(const void *a, const void *b)
{
	const struct work *x = *(const struct work *const *)a;
	const struct work *y = *(const struct work *const *)b;

	if (x->lv.n != y->lv.n)
		return (x->lv.n < y->lv.n ? -1 : 1);
	return (x->index < y->index ? -1 : x->index > y->index);
}

static int
work_order_cmp(const void *a, const void *b)
{
	const struct work *x = *(const struct work *const *)a;
	const struct work *y = *(const struct work *const *)b;
	int c;

	if (x->tier != y->tier)
		return (x->tier < y->tier ? -1 : 1);
	if (x->lv.n != y->lv.n)
		return (x->lv.n < y->lv.n ? -1 : 1);
	/* Two well-known names of one role: the preferred name first. */
	if (x->anchor == ANCHOR_SPECIAL_NAME && y->anchor ==
	    ANCHOR_SPECIAL_NAME && x->role_rank != y->role_rank)
		return (x->role_rank < y->role_rank ? -1 : 1);
	if ((c = levels_cmp(x->lv.v, x->lv.n, y->lv.v, y->lv.n)) != 0)
		return (c);
	if ((c = name_cmp(x, y)) != 0)
		return (c);
	return (x->index < y->index ? -1 : x->index > y->index);
}

/* wanted - the destination a folder asks for, before conflicts */
static char *
wanted(struct plan_ctx *ctx, struct work *w)
{
	const struct map_rule *m;

	switch (w->anchor) {
	case ANCHOR_MAP:
		m = w->rule;
		if (m->dst_role != FOLDER_ROLE_NONE)
			return (dst_append(ctx, ctx->special[m->dst_role].name,
			    w->lv.v + m->src.n, w->lv.n - m->src.n,
			    &w->warnings));
		{
			/* The rule's levels, then the folder's below SRC. */
			size_t n = m->dst.n + w->lv.n - m->src.n, i;
			char **v = calloc(n, sizeof(*v));
			char *out;

			if (v == NULL)
				return (NULL);
			for (i = 0; i < m->dst.n; i++)
				v[i] = m->dst.v[i];
			for (i = m->src.n; i < w->lv.n; i++)
				v[m->dst.n + i - m->src.n] = w->lv.v[i];
			out = dst_append(ctx, NULL, v, n, &w->warnings);
			free(v);
			return (out);
		}
	case ANCHOR_INBOX:
		return (strdup("INBOX"));
	case ANCHOR_SPECIAL_USE:
	case ANCHOR_SPECIAL_NAME:
		return (strdup(ctx->special[w->role].name));
	case ANCHOR_PARENT:
		return (dst_append(ctx, w->parent->dst,
		    w->lv.v + w->parent->lv.n, w->lv.n - w->parent->lv.n,
		    &w->warnings));
	case ANCHOR_SAME:
	case ANCHOR_NONE:
		break;
	}
	return (dst_append(ctx, NULL, w->lv.v, w->lv.n, &w->warnings));
}

/* may_merge - may w share a destination already taken by other? */
static int
may_merge(const struct plan_ctx *ctx, const struct work *w,
    const struct work *other)
{
	if (w->via_map || other->via_map)
		return (1);		/* the admin asked for it */
	if ((ctx->opts & FOLDER_OPT_MERGE_SPECIAL) &&
	    w->role > FOLDER_ROLE_INBOX && w->role == other->role &&
	    (w->anchor == ANCHOR_SPECIAL_USE ||
	    w->anchor == ANCHOR_SPECIAL_NAME))
		return (1);
	return (0);
}

/* take - give w the destination name (consumed), settling conflicts */
static int
take(struct plan_ctx *ctx, struct work *w, char *name)
{
	struct slot *s;
	char *alt;
	unsigned k;
	int reserved;

	if ((s = nameset_get(&ctx->names, name)) == NULL) {
		free(name);
		return (-1);
	}
	/* INBOX itself belongs to the source's INBOX, listed or not. */
	reserved = strcmp(name, "INBOX") == 0 && w->anchor != ANCHOR_INBOX &&
	    !w->via_map;
	if (reserved || (s->taken != NULL && s->taken != w &&
	    !may_merge(ctx, w, s->taken))) {
		w->warnings |= FOLDER_W_CONFLICT;
		w->conflict = s->taken;
		/* Its own path, else its own path with " (k)" added. */
		free(name);
		if ((name = dst_append(ctx, NULL, w->lv.v, w->lv.n,
		    &w->warnings)) == NULL ||
		    (s = nameset_get(&ctx->names, name)) == NULL) {
			free(name);
			return (-1);
		}
		for (k = 2; s->taken != NULL || strcmp(name, "INBOX") == 0;
		    k++) {
			if (asprintf(&alt, "%s (%u)", name, k) == -1) {
				free(name);
				return (-1);
			}
			if ((s = nameset_get(&ctx->names, alt)) == NULL) {
				free(alt);
				free(name);
				return (-1);
			}
			if (s->taken == NULL) {
				free(name);
				name = alt;
				break;
			}
			free(alt);
		}
	} else if (s->taken != NULL) {
		w->warnings |= FOLDER_W_MERGED;
		s->taken->warnings |= FOLDER_W_MERGED;
	}
	if (s->taken == NULL)
		s->taken = w;
	w->dst = name;
	if (s->exists && (s->attrs & IMAP_MBOX_NOSELECT))
		w->warnings |= FOLDER_W_DEST_NOSELECT;
	w->dst_exists = s->exists && !(s->attrs & IMAP_MBOX_NOSELECT);
	if (!w->dst_exists && !s->create_planned) {
		s->create_planned = 1;
		w->create = 1;
		/* A special folder the destination lacks: CREATE-SPECIAL-USE */
		for (k = FOLDER_ROLE_SENT; k < FOLDER_ROLE_COUNT_; k++)
			if (!ctx->special[k].found &&
			    strcmp(name, ctx->special[k].name) == 0 &&
			    (w->anchor == ANCHOR_SPECIAL_USE ||
			    w->anchor == ANCHOR_SPECIAL_NAME ||
			    (w->anchor == ANCHOR_MAP &&
			    w->rule->dst_role == (enum folder_role)k)))
				w->create_special = roles[k].attr;
	}
	return (0);
}

/* plan_destinations - parents, tiers, then every destination in order */
static int
plan_destinations(struct plan_ctx *ctx)
{
	struct work **v, *w, *p;
	size_t i, k;
	int rc = -1;

	if ((v = calloc(ctx->n ? ctx->n : 1, sizeof(*v))) == NULL)
		return (-1);
	for (i = 0; i < ctx->n; i++)
		v[i] = &ctx->w[i];
	/* Shallow first: a parent's tier is known before its children's. */
	qsort(v, ctx->n, sizeof(*v), work_depth_cmp);
	for (i = 0; i < ctx->n; i++) {
		w = v[i];
		if (w->skip != FOLDER_COPY)
			continue;
		if (w->anchor == ANCHOR_NONE) {
			for (k = w->lv.n - 1, p = NULL; k > 0 && p == NULL; k--)
				p = find_levels(ctx, w->lv.v, k);
			if (p != NULL) {
				w->anchor = ANCHOR_PARENT;
				w->parent = p;
				w->tier = p->tier;
				w->via_map = p->via_map;
				continue;
			}
			w->anchor = ANCHOR_SAME;
		}
		w->tier = anchor_tier[w->anchor];
	}
	qsort(v, ctx->n, sizeof(*v), work_order_cmp);
	for (i = 0; i < ctx->n; i++) {
		char *name;

		w = v[i];
		if (w->skip != FOLDER_COPY)
			continue;
		if ((name = wanted(ctx, w)) == NULL || take(ctx, w, name) == -1)
			goto out;
	}
	rc = 0;
out:
	free(v);
	return (rc);
}

/* how_of - what the report says about how a destination was chosen */
static enum folder_how
how_of(const struct plan_ctx *ctx, const struct work *w)
{
	const struct work *p;
	char *own;
	unsigned warn = 0;
	enum folder_how how = FOLDER_HOW_SAME;

	switch (w->anchor) {
	case ANCHOR_MAP:		return (FOLDER_HOW_MAP);
	case ANCHOR_INBOX:		return (FOLDER_HOW_INBOX);
	case ANCHOR_SPECIAL_USE:	return (FOLDER_HOW_SPECIAL_USE);
	case ANCHOR_SPECIAL_NAME:	return (FOLDER_HOW_SPECIAL_NAME);
	case ANCHOR_PARENT:
		/* "below its parent" only when the parent moved */
		p = w->parent;
		own = dst_append(ctx, NULL, p->lv.v, p->lv.n, &warn);
		if (own == NULL || strcmp(own, p->dst) != 0)
			how = FOLDER_HOW_PARENT;
		free(own);
		return (how);
	case ANCHOR_SAME:
	case ANCHOR_NONE:
		break;
	}
	return (FOLDER_HOW_SAME);
}

/* dst_path_of - the "/" path of a destination name, for people */
static char *
dst_path_of(const struct plan_ctx *ctx, const char *name)
{
	const char *rel;
	struct levels lv;
	char *out;

	if (ctx->dprefix[0] == '\0' ||
	    (rel = prefix_strip(name, ctx->dprefix)) == NULL)
		rel = name;
	if (ctx->dsep == '\0' || ctx->dsep == '/')
		return (strdup(rel));
	if (levels_split(&lv, rel, ctx->dsep, 0) == -1)
		return (NULL);
	out = levels_join(lv.v, lv.n, '/');
	levels_free(&lv);
	return (out);
}

static int
map_order_cmp(const void *a, const void *b)
{
	const struct folder_map *x = a, *y = b;
	int xi = x->role == FOLDER_ROLE_INBOX;
	int yi = y->role == FOLDER_ROLE_INBOX;
	int c;

	if (xi != yi)
		return (xi ? -1 : 1);
	if ((c = strcmp(x->src_path, y->src_path)) != 0)
		return (c);
	if (x->src_name != NULL && y->src_name != NULL &&
	    (c = strcmp(x->src_name, y->src_name)) != 0)
		return (c);
	return (x->src_index < y->src_index ? -1 : x->src_index > y->src_index);
}

static char *
dup_or_null(const char *s, int *fail)
{
	char *d;

	if (s == NULL)
		return (NULL);
	if ((d = strdup(s)) == NULL)
		*fail = 1;
	return (d);
}

/* plan_output - the entries of the plan, sorted */
static int
plan_output(struct plan_ctx *ctx, struct folder_plan *plan)
{
	struct folder_map *m;
	struct work *w;
	size_t i;
	int fail = 0;

	if ((plan->maps = calloc(ctx->n ? ctx->n : 1,
	    sizeof(*plan->maps))) == NULL)
		return (-1);
	plan->exchange = ctx->exchange;
	for (i = 0; i < ctx->n && !fail; i++) {
		w = &ctx->w[i];
		m = &plan->maps[plan->n++];
		m->src_index = w->index;
		m->src_name = dup_or_null(w->in->name, &fail);
		m->src_wire = dup_or_null(w->in->wire, &fail);
		m->src_path = dup_or_null(w->path != NULL ? w->path :
		    (w->in->wire != NULL ? w->in->wire : "?"), &fail);
		m->src_attrs = w->in->attrs;
		m->subscribed = (w->in->attrs & IMAP_MBOX_SUBSCRIBED) != 0;
		m->role = w->role;
		m->skip = w->skip;
		if (w->skip != FOLDER_COPY)
			continue;
		m->how = how_of(ctx, w);
		m->dst_name = dup_or_null(w->dst, &fail);
		if ((m->dst_path = dst_path_of(ctx, w->dst)) == NULL)
			fail = 1;
		m->dst_exists = w->dst_exists;
		m->create = w->create;
		m->create_special = w->create_special;
		m->warnings = w->warnings;
		if (w->conflict != NULL)
			m->conflict_with = dup_or_null(w->conflict->path,
			    &fail);
		plan->ncopy++;
		if (m->create)
			plan->ncreate++;
	}
	if (fail)
		return (-1);
	qsort(plan->maps, plan->n, sizeof(*plan->maps), map_order_cmp);
	return (0);
}

/* plan_ctx_free - everything the context allocated */
static void
plan_ctx_free(struct plan_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->n; i++) {
		levels_free(&ctx->w[i].lv);
		free(ctx->w[i].path);
		free(ctx->w[i].dst);
	}
	for (i = 0; i < FOLDER_ROLE_COUNT_; i++)
		free(ctx->special[i].name);
	nameset_free(&ctx->names);
	free(ctx->w);
	free(ctx->by_levels);
}

void
folder_plan_free(struct folder_plan **planp)
{
	struct folder_plan *p;
	size_t i;

	if (planp == NULL || (p = *planp) == NULL)
		return;
	for (i = 0; i < p->n; i++) {
		free((char *)p->maps[i].src_name);
		free((char *)p->maps[i].src_wire);
		free((char *)p->maps[i].src_path);
		free((char *)p->maps[i].dst_name);
		free((char *)p->maps[i].dst_path);
		free((char *)p->maps[i].conflict_with);
	}
	free(p->maps);
	free(p);
	*planp = NULL;
}

/* sep_ok - a usable hierarchy separator: none, or printable ASCII */
static int
sep_ok(char c)
{
	return (c == '\0' || (c > 0x20 && c < 0x7f));
}

/* folder_plan_build - the plan (see folders.h) */
int
folder_plan_build(const struct folder_rules *rules,
    const struct folder_list *src, const struct folder_list *dst,
    unsigned opts, struct folder_plan **plan_r, char *err, size_t errlen)
{
	struct plan_ctx ctx;
	struct folder_plan *plan = NULL;
	int rc = -1;

	*plan_r = NULL;
	if (!sep_ok(src->sep) || !sep_ok(dst->sep)) {
		errbuf_set(err, errlen, "unusable hierarchy separator");
		return (-1);
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.rules = rules;
	ctx.src = src;
	ctx.dst = dst;
	ctx.opts = opts;
	ctx.ssep = src->sep;
	ctx.dsep = dst->sep;
	ctx.sprefix = src->prefix ? src->prefix : "";
	ctx.dprefix = dst->prefix ? dst->prefix : "";
	ctx.names.fold = (opts & FOLDER_OPT_DEST_CASEFOLD) != 0;
	ctx.n = src->n;
	if ((ctx.w = calloc(ctx.n ? ctx.n : 1, sizeof(*ctx.w))) == NULL ||
	    (plan = calloc(1, sizeof(*plan))) == NULL)
		goto out;
	if (plan_destination(&ctx) == -1 || plan_source(&ctx) == -1)
		goto out;
	plan_anchors(&ctx);
	if (plan_destinations(&ctx) == -1 || plan_output(&ctx, plan) == -1)
		goto out;
	*plan_r = plan;
	plan = NULL;
	rc = 0;
out:
	if (rc == -1)
		errbuf_set(err, errlen, "out of memory");
	folder_plan_free(&plan);
	plan_ctx_free(&ctx);
	return (rc);
}

/* folder_plan_find - the entry of a source name as listed */
const struct folder_map *
folder_plan_find(const struct folder_plan *plan, const char *src_name)
{
	size_t i;

	if (plan == NULL || src_name == NULL)
		return (NULL);
	for (i = 0; i < plan->n; i++)
		if (plan->maps[i].src_name != NULL &&
		    strcmp(plan->maps[i].src_name, src_name) == 0)
			return (&plan->maps[i]);
	return (NULL);
}

/* folder_map_describe - one line for people (see folders.h) */
int
folder_map_describe(const struct folder_map *m, char *buf, size_t len)
{
	char how[128], notes[256];
	size_t n = 0;

	if (m->skip != FOLDER_COPY)
		return (snprintf(buf, len, "%s: skipped (%s)", m->src_path,
		    folder_skip_name(m->skip)));
	if (m->how == FOLDER_HOW_SPECIAL_USE || m->how ==
	    FOLDER_HOW_SPECIAL_NAME)
		snprintf(how, sizeof(how), "%s %s", folder_how_name(m->how),
		    folder_role_flag(m->role));
	else
		snprintf(how, sizeof(how), "%s", folder_how_name(m->how));
	notes[0] = '\0';
#define NOTE(...) do {							\
	n = strlen(notes);						\
	snprintf(notes + n, sizeof(notes) - n, __VA_ARGS__);		\
} while (0)
	if (m->create)
		NOTE(", create%s", m->create_special ? " as special-use" : "");
	if (m->warnings & FOLDER_W_CONFLICT)
		NOTE(", wanted destination taken by %s", m->conflict_with ?
		    m->conflict_with : "another folder");
	if (m->warnings & FOLDER_W_MERGED)
		NOTE(", shared with another source folder");
	if (m->warnings & FOLDER_W_ESCAPED)
		NOTE(", separator in name replaced");
	if (m->warnings & FOLDER_W_EMPTY_LEVEL)
		NOTE(", empty level replaced");
	if (m->warnings & FOLDER_W_DEST_NOSELECT)
		NOTE(", destination exists as \\Noselect");
#undef NOTE
	return (snprintf(buf, len, "%s -> %s (%s%s)", m->src_path, m->dst_path,
	    how, notes));
}
