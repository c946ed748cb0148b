/*
 * folders_roles.c - special-use roles and the names that give them
 * away (folders.h, decision 8; DESIGN.md §6: "Sent Items" and
 * "Gesendete Elemente" go to the destination's \Sent): the localised
 * names of the special folders in order of preference, Exchange's
 * non-mail folder names (decision 6), the folding that makes "Éléments
 * envoyés", "ELEMENTS ENVOYES" and the decomposed spelling one key, the
 * look-ups over both tables, and the role table (name, SPECIAL-USE flag,
 * conventional name to create, IMAP_MBOX_* bit).
 *
 * SECURITY: names come from the servers; a key is built into a fixed
 * buffer (KEY_MAX) and a name that does not fit is no well-known name.
 * Read-only tables; thread-safe.
 */

#include <stdint.h>
#include <string.h>

#include "folders_p.h"

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

/* Exchange's non-mail folders, with their kind (NM_*, folders_p.h). */
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
enum folder_role
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
unsigned
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

/* ---- the role table ---------------------------------------------------- */

const struct role_info role_table[FOLDER_ROLE_COUNT_] = {
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
	return (role_table[role].name);
}

const char *
folder_role_flag(enum folder_role role)
{
	if ((unsigned)role >= FOLDER_ROLE_COUNT_)
		return ("");
	return (role_table[role].flag);
}

/* role_of_attrs - the mapped role a SPECIAL-USE attribute gives */
enum folder_role
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
