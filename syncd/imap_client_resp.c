/*
 * imap_client_resp.c - the IMAP client's read side (see imap_client.h
 * and imap_client_p.h): the parser's events (imap_parse.c) build the
 * current response in c->r.  Small responses (LIST, STATUS, CAPABILITY,
 * tagged completions) are collected as tokens in a bounded arena and
 * dispatched at their end; FETCH and SEARCH are handled as streams, so a
 * body literal or a 200,000-UID SEARCH never sits in memory.
 *
 * SECURITY: every byte is the server's: collected responses are bounded
 * (RESP_TOKENS_MAX, RESP_ARENA_MAX), as are flags per message and
 * ESEARCH ranges; a tag we did not send and a continuation nobody asked
 * for end the connection; text reaches logs and results only through
 * sanitize().
 *
 * Threading: one event loop, no global state.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>

#include "imap_client_p.h"
#include "log.h"
#include "mutf7.h"

/* ---- mailbox accumulator ------------------------------------------- */

void
imapc_mbox_clear(struct mbox_acc *a)
{
	strlist_clear(&a->permflags);
	strlist_clear(&a->flags);
	memset(&a->mb, 0, sizeof(a->mb));
}

/* imapc_mbox_views - point the public string vectors at the owned lists */
void
imapc_mbox_views(struct mbox_acc *a)
{
	a->mb.permflags.v = (const char *const *)a->permflags.items;
	a->mb.permflags.n = a->permflags.count;
	a->mb.flags.v = (const char *const *)a->flags.items;
	a->mb.flags.n = a->flags.count;
}

static int
mbox_copy(struct mbox_acc *dst, const struct mbox_acc *src)
{
	size_t i;

	imapc_mbox_clear(dst);
	dst->mb = src->mb;
	for (i = 0; i < src->permflags.count; i++)
		if (strlist_add(&dst->permflags, src->permflags.items[i],
		    strlen(src->permflags.items[i])) == -1)
			return (-1);
	for (i = 0; i < src->flags.count; i++)
		if (strlist_add(&dst->flags, src->flags.items[i],
		    strlen(src->flags.items[i])) == -1)
			return (-1);
	imapc_mbox_views(dst);
	return (0);
}

/* ---- response collection ------------------------------------------- */

void
imapc_resp_reset(struct imap_client *c)
{
	struct resp *r = &c->r;

	strlist_clear(&r->f.flags);
	free(r->f.internaldate);
	memset(&r->f, 0, sizeof(r->f));
	r->kind = R_NONE;
	r->name[0] = r->tag[0] = r->code[0] = '\0';
	r->num = 0;
	r->has_num = 0;
	r->in_code = 0;
	r->code_t0 = r->code_t1 = 0;
	r->text_off = r->text_len = 0;
	r->have_text = 0;
	r->ntoks = 0;
	r->alen = 0;
	r->lit_open = 0;
	r->target = NULL;
	r->search_in_list = r->search_modseq_next = 0;
	/* do not keep a big arena around after one large response */
	if (r->acap > RESP_KEEP) {
		free(r->arena);
		r->arena = NULL;
		r->acap = 0;
	}
	if (r->captoks > RESP_KEEP / sizeof(struct ctok)) {
		free(r->toks);
		r->toks = NULL;
		r->captoks = 0;
	}
}

/* arena_reserve - room for n more bytes in the arena, or fail */
static int
arena_reserve(struct imap_client *c, size_t n)
{
	struct resp *r = &c->r;
	size_t cap;
	char *a;

	if (n > RESP_ARENA_MAX || r->alen > RESP_ARENA_MAX - n) {
		imapc_fail(c, IMAP_ERR_TEMP, "response from server too large");
		return (-1);
	}
	if (r->alen + n > r->acap) {
		cap = r->acap ? r->acap : 1024;
		while (cap < r->alen + n)
			cap *= 2;
		if ((a = realloc(r->arena, cap)) == NULL) {
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
			return (-1);
		}
		r->arena = a;
		r->acap = cap;
	}
	return (0);
}

/* arena_add - append s[0..n) and a NUL to the arena; its offset */
static int
arena_add(struct imap_client *c, const char *s, size_t n, size_t *off_r)
{
	struct resp *r = &c->r;

	if (arena_reserve(c, n + 1) == -1)
		return (-1);
	if (off_r != NULL)
		*off_r = r->alen;
	if (n > 0)
		memcpy(r->arena + r->alen, s, n);
	r->alen += n;
	r->arena[r->alen++] = '\0';
	return (0);
}

/* arena_extend_last - grow the string that ends the arena by s[0..n) */
static int
arena_extend_last(struct imap_client *c, const char *s, size_t n)
{
	struct resp *r = &c->r;

	if (arena_reserve(c, n) == -1)
		return (-1);
	memcpy(r->arena + r->alen - 1, s, n);
	r->alen += n;
	r->arena[r->alen - 1] = '\0';
	return (0);
}

/* collect_tok - collect one token */
static int
collect_tok(struct imap_client *c, enum imap_ev_type type, unsigned depth,
    uint64_t num, const char *s, size_t n)
{
	struct resp *r = &c->r;
	struct ctok *t;
	size_t cap;

	if (r->ntoks >= RESP_TOKENS_MAX) {
		imapc_fail(c, IMAP_ERR_TEMP, "response from server has too "
		    "many tokens");
		return (-1);
	}
	if (r->ntoks == r->captoks) {
		cap = r->captoks ? r->captoks * 2 : 64;
		if ((t = reallocarray(r->toks, cap, sizeof(*t))) == NULL) {
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
			return (-1);
		}
		r->toks = t;
		r->captoks = cap;
	}
	t = &r->toks[r->ntoks];
	t->type = type;
	t->depth = depth;
	t->num = num;
	t->len = n;
	if (arena_add(c, s, n, &t->off) == -1)
		return (-1);
	r->ntoks++;
	return (0);
}

static const char *
tstr(const struct imap_client *c, const struct ctok *t)
{
	return (c->r.arena + t->off);
}

/* is_string - a token usable as an astring (mailbox name etc.) */
static int
is_string(const struct ctok *t)
{
	return (t->type == IMAP_EV_STRING || t->type == IMAP_EV_ATOM ||
	    t->type == IMAP_EV_NUMBER || t->type == IMAP_EV_NIL);
}

/* collect_event - a token of a collected response */
static void
collect_event(struct imap_client *c, const struct imap_event *ev)
{
	struct resp *r = &c->r;

	switch (ev->type) {
	case IMAP_EV_CODE_BEGIN:
		str_copy(r->code, ev->str, sizeof(r->code));
		r->in_code = 1;
		r->code_t0 = r->ntoks;
		return;
	case IMAP_EV_CODE_END:
		r->in_code = 0;
		r->code_t1 = r->ntoks;
		return;
	case IMAP_EV_TEXT:
		if (r->in_code) {
			(void)collect_tok(c, IMAP_EV_ATOM, 0, 0, ev->str,
			    ev->len);
			return;
		}
		if (arena_add(c, ev->str, ev->len, &r->text_off) == 0) {
			r->text_len = ev->len;
			r->have_text = 1;
		}
		return;
	case IMAP_EV_LITERAL_BEGIN:
		/* a big literal where a small string belongs: keep it as a
		 * string, bounded by the arena */
		if (collect_tok(c, IMAP_EV_STRING, ev->depth, 0, "", 0) == 0)
			r->lit_open = 1;
		return;
	case IMAP_EV_LITERAL_DATA:
		if (!r->lit_open || r->ntoks == 0)
			return;
		if (arena_extend_last(c, ev->str, ev->len) == 0)
			r->toks[r->ntoks - 1].len += ev->len;
		return;
	case IMAP_EV_LITERAL_END:
		r->lit_open = 0;
		return;
	default:
		(void)collect_tok(c, ev->type, ev->depth, ev->num, ev->str,
		    ev->len);
		return;
	}
}

/* code_args_text - the code's arguments as one line of text */
static void
code_args_text(const struct imap_client *c, char *buf, size_t len)
{
	const struct resp *r = &c->r;
	char piece[TEXT_MAX];
	size_t i, o = 0, n;
	int sep = 0;

	buf[0] = '\0';
	for (i = r->code_t0; i < r->code_t1; i++) {
		const struct ctok *t = &r->toks[i];

		if (t->type == IMAP_EV_LIST_BEGIN) {
			snprintf(piece, sizeof(piece), "%s(", sep ? " " : "");
			sep = 0;
		} else if (t->type == IMAP_EV_LIST_END) {
			snprintf(piece, sizeof(piece), ")");
			sep = 1;
		} else {
			char v[TEXT_MAX - 2];

			sanitize(v, sizeof(v), tstr(c, t), t->len);
			snprintf(piece, sizeof(piece), "%s%s", sep ? " " : "",
			    v);
			sep = 1;
		}
		n = strlen(piece);
		if (o + n + 1 > len)
			break;
		memcpy(buf + o, piece, n + 1);
		o += n;
	}
}

/* ---- capabilities -------------------------------------------------- */

/* caps_set - replace the capability list by the ATOM tokens [t0, t1) */
static void
caps_set(struct imap_client *c, size_t t0, size_t t1)
{
	const struct ctok *t;
	char name[128];
	size_t i, k;
	uint64_t v;
	const char *p;
	int cap;

	strlist_clear(&c->caps);
	c->capbits = 0;
	c->appendlimit = 0;
	for (i = t0; i < t1; i++) {
		t = &c->r.toks[i];
		if (t->type != IMAP_EV_ATOM || t->len >= sizeof(name))
			continue;
		memcpy(name, tstr(c, t), t->len + 1);
		for (k = 0; name[k] != '\0'; k++)
			if (name[k] >= 'a' && name[k] <= 'z')
				name[k] = (char)(name[k] - 'a' + 'A');
		if (strlist_add(&c->caps, name, t->len) == -1) {
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
			return;
		}
		if ((cap = imap_wire_cap(name)) >= 0)
			c->capbits |= UINT64_C(1) << cap;
		if (strncmp(name, "APPENDLIMIT=", 12) == 0) {
			c->capbits |= UINT64_C(1) << IMAP_CAP_APPENDLIMIT;
			v = 0;
			for (p = name + 12; *p >= '0' && *p <= '9'; p++) {
				if (v > (UINT64_MAX - 9) / 10)
					break;
				v = v * 10 + (uint64_t)(*p - '0');
			}
			if (*p == '\0')
				c->appendlimit = v;
		}
	}
	/* RFC 7162: QRESYNC implies CONDSTORE */
	if (has_cap(c, IMAP_CAP_QRESYNC))
		c->capbits |= UINT64_C(1) << IMAP_CAP_CONDSTORE;
	c->caps_known = 1;
}

/* code_apply_caps - a [CAPABILITY ...] code replaces the list */
static void
code_apply_caps(struct imap_client *c)
{
	if (strcmp(c->r.code, "CAPABILITY") == 0)
		caps_set(c, c->r.code_t0, c->r.code_t1);
}

/* ---- SELECT state from codes and untagged data --------------------- */

/* select_target - the mailbox state untagged data updates */
static struct mbox_acc *
select_target(struct imap_client *c)
{
	struct imap_cmd *sel = imapc_oldest_kind(c, K_SELECT, K_SELECT);

	if (sel != NULL)
		return (sel->mbox);
	return (c->have_cur ? &c->cur : NULL);
}

/* code_number - the first argument of the code when it is a number */
static int
code_number(const struct imap_client *c, uint64_t *v_r)
{
	const struct resp *r = &c->r;

	if (r->code_t1 <= r->code_t0 ||
	    r->toks[r->code_t0].type != IMAP_EV_NUMBER)
		return (0);
	*v_r = r->toks[r->code_t0].num;
	return (1);
}

/* code_apply_mbox - SELECT-related response codes */
static void
code_apply_mbox(struct imap_client *c, struct mbox_acc *a)
{
	const struct resp *r = &c->r;
	const struct ctok *t;
	uint64_t v;
	size_t i;

	if (a == NULL || r->code[0] == '\0')
		return;
	if (strcmp(r->code, "UIDVALIDITY") == 0 && code_number(c, &v))
		a->mb.uidvalidity = v;
	else if (strcmp(r->code, "UIDNEXT") == 0 && code_number(c, &v))
		a->mb.uidnext = v;
	else if (strcmp(r->code, "UNSEEN") == 0 && code_number(c, &v))
		a->mb.unseen = v;
	else if (strcmp(r->code, "HIGHESTMODSEQ") == 0 && code_number(c, &v))
		a->mb.highestmodseq = v;
	else if (strcmp(r->code, "NOMODSEQ") == 0) {
		a->mb.nomodseq = 1;
		a->mb.highestmodseq = 0;
	} else if (strcmp(r->code, "READ-ONLY") == 0)
		a->mb.readonly = 1;
	else if (strcmp(r->code, "READ-WRITE") == 0)
		a->mb.readonly = 0;
	else if (strcmp(r->code, "PERMANENTFLAGS") == 0) {
		strlist_clear(&a->permflags);
		a->mb.perm_keywords = 0;
		a->mb.permflags_known = 1;
		for (i = r->code_t0; i < r->code_t1; i++) {
			t = &r->toks[i];
			if (t->type != IMAP_EV_ATOM || t->depth != 1)
				continue;
			if (a->permflags.count >= FLAGS_MAX)
				break;
			if (strcmp(tstr(c, t), "\\*") == 0)
				a->mb.perm_keywords = 1;
			if (strlist_add(&a->permflags, tstr(c, t), t->len) == -1)
				imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		}
	}
	imapc_mbox_views(a);
}

/* ---- FETCH as a stream --------------------------------------------- */

static int
is_body_item(const char *item)
{
	return (strncasecmp(item, "BODY[", 5) == 0 ||
	    strncasecmp(item, "BINARY[", 7) == 0 ||
	    strcasecmp(item, "RFC822") == 0 ||
	    strcasecmp(item, "RFC822.HEADER") == 0 ||
	    strcasecmp(item, "RFC822.TEXT") == 0);
}

/* fetch_view - point the public message at the collected items */
static const struct imap_fetch_msg *
fetch_view(struct fetch_state *f)
{
	f->m.flags.v = (const char *const *)f->flags.items;
	f->m.flags.n = f->flags.count;
	f->m.internaldate = f->internaldate;
	return (&f->m);
}

static const struct imap_fetch_cbs *
fetch_cbs(struct imap_client *c, void **arg_r)
{
	struct imap_cmd *t = c->r.target;

	if (imapc_freed(c) || t == NULL || !t->has_fcbs)
		return (NULL);
	*arg_r = t->arg;
	return (&t->fcbs);
}

static void
fetch_body_begin(struct imap_client *c, uint64_t size)
{
	struct fetch_state *f = &c->r.f;
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	f->m.body_size = size;
	f->m.body_nil = 0;
	f->m.have |= IMAP_FETCH_BODY;
	f->body_open = 1;
	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->body_begin != NULL)
		cbs->body_begin(c, fetch_view(f), f->item, size, arg);
}

static void
fetch_body_data(struct imap_client *c, const void *data, size_t len)
{
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->body_data != NULL &&
	    len > 0)
		cbs->body_data(c, data, len, arg);
}

static void
fetch_body_end(struct imap_client *c)
{
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	c->r.f.body_open = 0;
	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->body_end != NULL)
		cbs->body_end(c, arg);
}

/* fetch_value - the value of the item just named */
static int
fetch_value(struct imap_client *c, const struct imap_event *ev)
{
	struct fetch_state *f = &c->r.f;
	const char *item = f->item;

	f->stage = F_NAME;
	if (is_body_item(item)) {
		if (ev->type == IMAP_EV_STRING) {
			fetch_body_begin(c, ev->len);
			fetch_body_data(c, ev->str, ev->len);
			fetch_body_end(c);
		} else if (ev->type == IMAP_EV_NIL) {
			f->m.body_nil = 1;
		} else if (ev->type == IMAP_EV_LITERAL_BEGIN) {
			fetch_body_begin(c, ev->num);
			f->stage = F_BODY;
		} else
			return (-1);
		return (0);
	}
	if (strcasecmp(item, "UID") == 0) {
		if (ev->type != IMAP_EV_NUMBER || ev->num == 0)
			return (-1);
		f->m.uid = ev->num;
		f->m.have |= IMAP_FETCH_UID;
	} else if (strcasecmp(item, "RFC822.SIZE") == 0) {
		if (ev->type != IMAP_EV_NUMBER)
			return (-1);
		f->m.size = ev->num;
		f->m.have |= IMAP_FETCH_SIZE;
	} else if (strcasecmp(item, "INTERNALDATE") == 0) {
		if (ev->type != IMAP_EV_STRING)
			return (-1);
		if (imap_parse_date_time(ev->str, &f->m.internaldate_t,
		    &f->m.internaldate_tz) == 0) {
			free(f->internaldate);
			if ((f->internaldate = strdup(ev->str)) == NULL)
				return (-1);
			f->m.have |= IMAP_FETCH_INTERNALDATE;
		} else
			log_debug("%s: ignoring malformed INTERNALDATE",
			    c->id);
	} else if (strcasecmp(item, "FLAGS") == 0) {
		if (ev->type != IMAP_EV_LIST_BEGIN)
			return (-1);
		strlist_clear(&f->flags);
		f->stage = F_FLAGS;
	} else if (strcasecmp(item, "MODSEQ") == 0) {
		if (ev->type != IMAP_EV_LIST_BEGIN)
			return (-1);
		f->stage = F_MODSEQ;
	} else if (ev->type == IMAP_EV_LIST_BEGIN) {
		f->skip_depth = ev->depth;
		f->stage = F_SKIP;
	} else if (ev->type == IMAP_EV_LITERAL_BEGIN)
		f->stage = F_SKIP_LIT;
	else if (ev->type == IMAP_EV_LIST_END)
		return (-1);
	return (0);
}

/* fetch_event - one event inside "* n FETCH (...)" */
static void
fetch_event(struct imap_client *c, const struct imap_event *ev)
{
	struct fetch_state *f = &c->r.f;

	switch (f->stage) {
	case F_START:
		if (ev->type != IMAP_EV_LIST_BEGIN || ev->depth != 0)
			break;
		f->stage = F_NAME;
		return;
	case F_NAME:
		if (ev->type == IMAP_EV_LIST_END && ev->depth == 0) {
			f->stage = F_DONE;
			return;
		}
		if (ev->type != IMAP_EV_ATOM || ev->depth != 1)
			break;
		str_copy(f->item, ev->str, sizeof(f->item));
		f->stage = F_VALUE;
		return;
	case F_VALUE:
		if (fetch_value(c, ev) == -1)
			break;
		return;
	case F_FLAGS:
		if (ev->type == IMAP_EV_LIST_END && ev->depth == 1) {
			f->m.have |= IMAP_FETCH_FLAGS;
			f->stage = F_NAME;
			return;
		}
		if (ev->type != IMAP_EV_ATOM || ev->depth != 2)
			break;
		if (f->flags.count >= FLAGS_MAX) {
			imapc_fail(c, IMAP_ERR_TEMP, "too many flags in a "
			    "FETCH response");
			return;
		}
		if (strlist_add(&f->flags, ev->str, ev->len) == -1)
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		return;
	case F_MODSEQ:
		if (ev->type == IMAP_EV_NUMBER && ev->depth == 2) {
			f->m.modseq = ev->num;
			f->m.have |= IMAP_FETCH_MODSEQ;
			return;
		}
		if (ev->type == IMAP_EV_LIST_END && ev->depth == 1) {
			f->stage = F_NAME;
			return;
		}
		break;
	case F_SKIP:
		if (ev->type == IMAP_EV_LIST_END && ev->depth == f->skip_depth)
			f->stage = F_NAME;
		return;
	case F_SKIP_LIT:
		if (ev->type == IMAP_EV_LITERAL_END)
			f->stage = F_NAME;
		return;
	case F_BODY:
		if (ev->type == IMAP_EV_LITERAL_DATA) {
			fetch_body_data(c, ev->str, ev->len);
			return;
		}
		if (ev->type == IMAP_EV_LITERAL_END) {
			fetch_body_end(c);
			f->stage = F_NAME;
			return;
		}
		break;
	case F_DONE:
		break;
	}
	imapc_fail(c, IMAP_ERR_TEMP, "malformed FETCH response from server");
}

/* fetch_done - the FETCH response is complete */
static void
fetch_done(struct imap_client *c)
{
	struct fetch_state *f = &c->r.f;
	const struct imap_fetch_cbs *cbs;
	void *arg = NULL;

	if (f->stage != F_DONE) {
		imapc_fail(c, IMAP_ERR_TEMP, "malformed FETCH response from "
		    "server");
		return;
	}
	f->m.seq = c->r.num;
	if ((cbs = fetch_cbs(c, &arg)) != NULL && cbs->msg != NULL)
		cbs->msg(c, fetch_view(f), arg);
}

/* search_event - "* SEARCH 2 84 882 [(MODSEQ 917162500)]" as a stream */
static void
search_event(struct imap_client *c, const struct imap_event *ev)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = r->target;

	switch (ev->type) {
	case IMAP_EV_NUMBER:
		if (ev->depth == 0) {
			if (t != NULL && t->search_uid != NULL &&
			    !imapc_freed(c))
				t->search_uid(c, ev->num, t->arg);
		} else if (r->search_modseq_next && t != NULL)
			t->search_modseq = ev->num;
		r->search_modseq_next = 0;
		return;
	case IMAP_EV_ATOM:
		r->search_modseq_next = r->search_in_list &&
		    strcasecmp(ev->str, "MODSEQ") == 0;
		return;
	case IMAP_EV_LIST_BEGIN:
		r->search_in_list = 1;
		return;
	case IMAP_EV_LIST_END:
		r->search_in_list = 0;
		return;
	default:
		imapc_fail(c, IMAP_ERR_TEMP, "malformed SEARCH response");
		return;
	}
}

/* ---- collected untagged responses ---------------------------------- */

/*
 * list_bad - a LIST or LSUB response that tokenised but is no mailbox
 * entry (a missing delimiter, a list where the name goes, an empty name
 * or one with a NUL...).  The stream itself is sound (the parser
 * accepted its grammar), so only this entry is lost: a LIST entry goes
 * to the command as a bad one, named by its last string or atom
 * (sanitised), so that the folder is reported as not copied; an LSUB
 * entry only loses a subscription, which the log says.
 */
static void
list_bad(struct imap_client *c, int lsub)
{
	struct resp *r = &c->r;
	struct imap_list_entry e;
	struct imap_cmd *t;
	const struct ctok *tk;
	char shown[256];
	size_t i;

	snprintf(shown, sizeof(shown), "?");
	for (i = r->ntoks; i-- > 0;) {
		tk = &r->toks[i];
		if (tk->depth == 0 && tk->len > 0 &&
		    (is_string(tk) || tk->type == IMAP_EV_ATOM)) {
			sanitize(shown, sizeof(shown), tstr(c, tk), tk->len);
			break;
		}
	}
	log_warnx("%s: malformed %s response from server (mailbox \"%s\"?): "
	    "%s", c->id, lsub ? "LSUB" : "LIST", shown, lsub ?
	    "its subscription is not known" : "that folder is not copied");
	if (lsub)
		return;
	memset(&e, 0, sizeof(e));
	e.name = shown;
	e.bad = "its LIST entry did not parse";
	t = imapc_oldest_kind(c, K_LIST, K_LIST);
	if (t != NULL && t->lcbs.mailbox != NULL && !imapc_freed(c))
		t->lcbs.mailbox(c, &e, t->arg);
}

/*
 * list_done - "* LIST (attrs) delim name [ext]" or LSUB: decode and
 * give it to the LIST/LSUB command in flight.
 */
static void
list_done(struct imap_client *c, int lsub)
{
	struct resp *r = &c->r;
	struct imap_list_entry e;
	struct strlist attrs = { 0 };
	struct imap_cmd *t;
	const struct ctok *tk;
	char *utf8 = NULL, err[128];
	size_t i = 0, n;

	memset(&e, 0, sizeof(e));
	e.lsub = lsub;
	if (r->ntoks < 4 || r->toks[0].type != IMAP_EV_LIST_BEGIN)
		goto bad;
	for (i = 1; i < r->ntoks && r->toks[i].depth == 1; i++) {
		tk = &r->toks[i];
		if (tk->type != IMAP_EV_ATOM)
			goto bad;
		if (attrs.count >= FLAGS_MAX)
			continue;
		if (strlist_add(&attrs, tstr(c, tk), tk->len) == -1)
			goto oom;
		e.attrs |= imap_wire_mbox_attr(tstr(c, tk));
	}
	if (i + 2 >= r->ntoks || r->toks[i].type != IMAP_EV_LIST_END)
		goto bad;
	i++;
	tk = &r->toks[i++];
	if (tk->type == IMAP_EV_STRING && tk->len == 1)
		e.delim = tstr(c, tk)[0];
	else if (tk->type != IMAP_EV_NIL)
		goto bad;
	if (i >= r->ntoks || !is_string(&r->toks[i]) || r->toks[i].depth != 0)
		goto bad;
	tk = &r->toks[i];
	if (memchr(tstr(c, tk), '\0', tk->len) != NULL || tk->len == 0)
		goto bad;
	e.name = tstr(c, tk);
	n = tk->len;
	if (strcasecmp(e.name, "INBOX") == 0)
		e.name_utf8 = e.name;
	else if ((utf8 = malloc(MUTF7_DECODE_MAX(n))) == NULL)
		goto oom;
	else if (imap_client_mailbox_decode(c, e.name, utf8,
	    MUTF7_DECODE_MAX(n), err, sizeof(err)) == 0)
		e.name_utf8 = utf8;
	else {
		char shown[128];

		sanitize(shown, sizeof(shown), e.name, n);
		log_info("%s: mailbox name \"%s\" does not decode: %s", c->id,
		    shown, err);
	}
	e.attributes.v = (const char *const *)attrs.items;
	e.attributes.n = attrs.count;
	t = imapc_oldest_kind(c, lsub ? K_LSUB : K_LIST, lsub ? K_LSUB : K_LIST);
	if (lsub)
		e.attrs |= IMAP_MBOX_SUBSCRIBED;
	if (t != NULL && t->lcbs.mailbox != NULL && !imapc_freed(c))
		t->lcbs.mailbox(c, &e, t->arg);
	free(utf8);
	strlist_clear(&attrs);
	return;
bad:
	strlist_clear(&attrs);
	list_bad(c, lsub);
	return;
oom:
	strlist_clear(&attrs);
	imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
}

/* status_resp_done - "* STATUS name (MESSAGES 3 UIDNEXT 4 ...)" */
static void
status_resp_done(struct imap_client *c)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
		size_t		 off;
	} items[] = {
		{ "MESSAGES", IMAP_STATUS_MESSAGES,
		    offsetof(struct imap_status_info, messages) },
		{ "UIDNEXT", IMAP_STATUS_UIDNEXT,
		    offsetof(struct imap_status_info, uidnext) },
		{ "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY,
		    offsetof(struct imap_status_info, uidvalidity) },
		{ "UNSEEN", IMAP_STATUS_UNSEEN,
		    offsetof(struct imap_status_info, unseen) },
		{ "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ,
		    offsetof(struct imap_status_info, highestmodseq) },
		{ "SIZE", IMAP_STATUS_SIZE,
		    offsetof(struct imap_status_info, size) },
		{ "APPENDLIMIT", IMAP_STATUS_APPENDLIMIT,
		    offsetof(struct imap_status_info, appendlimit) },
	};
	struct resp *r = &c->r;
	struct imap_status_info st;
	struct imap_cmd *cmd, *t = NULL;
	const struct ctok *name, *v;
	size_t i, k;

	memset(&st, 0, sizeof(st));
	if (r->ntoks < 2 || !is_string(&r->toks[0]) ||
	    r->toks[1].type != IMAP_EV_LIST_BEGIN)
		goto bad;
	st.mailbox = tstr(c, &r->toks[0]);
	for (i = 2; i + 1 < r->ntoks && r->toks[i].depth == 1; i += 2) {
		name = &r->toks[i];
		v = &r->toks[i + 1];
		if (name->type != IMAP_EV_ATOM)
			goto bad;
		if (v->type != IMAP_EV_NUMBER) {
			/* APPENDLIMIT NIL: no limit */
			if (v->type == IMAP_EV_NIL)
				continue;
			goto bad;
		}
		for (k = 0; k < sizeof(items) / sizeof(items[0]); k++)
			if (strcasecmp(tstr(c, name), items[k].name) == 0) {
				st.have |= items[k].bit;
				memcpy((char *)&st + items[k].off, &v->num,
				    sizeof(v->num));
			}
	}
	if (i >= r->ntoks || r->toks[i].type != IMAP_EV_LIST_END)
		goto bad;
	/*
	 * To the STATUS command that named this mailbox.  A server may
	 * spell the name differently (case, normalisation): then to the
	 * oldest of a LIST-STATUS or a STATUS still without an answer,
	 * since servers answer in order.
	 */
	TAILQ_FOREACH(cmd, &c->inflight, q)
		if (cmd->kind == K_STATUS && !cmd->st_answered &&
		    cmd->mailbox != NULL && imap_wire_mailbox_eq(cmd->mailbox, st.mailbox)) {
			t = cmd;
			break;
		}
	if (t == NULL)
		TAILQ_FOREACH(cmd, &c->inflight, q)
			if ((cmd->kind == K_STATUS && !cmd->st_answered) ||
			    (cmd->kind == K_LIST && cmd->lcbs.status != NULL)) {
				t = cmd;
				break;
			}
	if (t == NULL)
		return;
	if (t->kind == K_STATUS) {
		st.mailbox = t->mailbox;
		t->stinfo = st;
		t->st_answered = 1;
		return;
	}
	if (!imapc_freed(c))
		t->lcbs.status(c, &st, t->arg);
	return;
bad:
	imapc_fail(c, IMAP_ERR_TEMP, "malformed STATUS response from server");
}

/* vanished_done - "* VANISHED [(EARLIER)] set" */
static void
vanished_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t;
	const char *set;
	uint64_t lo, hi;
	size_t i = 0;
	int earlier = 0, rc;

	if (r->ntoks >= 3 && r->toks[0].type == IMAP_EV_LIST_BEGIN) {
		earlier = r->toks[1].type == IMAP_EV_ATOM &&
		    strcasecmp(tstr(c, &r->toks[1]), "EARLIER") == 0;
		i = 3;
	}
	if (i >= r->ntoks || (r->toks[i].type != IMAP_EV_ATOM &&
	    r->toks[i].type != IMAP_EV_NUMBER)) {
		imapc_fail(c, IMAP_ERR_TEMP, "malformed VANISHED response");
		return;
	}
	set = tstr(c, &r->toks[i]);
	t = imapc_oldest_fetcher(c);
	while ((rc = imap_parse_seqset_next(&set, &lo, &hi)) == 1) {
		if (!earlier && c->have_cur) {
			uint64_t n = hi - lo + 1;

			c->cur.mb.exists = c->cur.mb.exists > n ?
			    c->cur.mb.exists - n : 0;
		}
		if (imapc_freed(c))
			continue;
		if (t != NULL && t->fcbs.vanished != NULL)
			t->fcbs.vanished(c, lo, hi, earlier, t->arg);
	}
	if (rc == -1)
		imapc_fail(c, IMAP_ERR_TEMP, "malformed VANISHED set");
}

/* esearch_done - "* ESEARCH (TAG "A5") UID ALL 1:3,7" for UID SEARCH */
static void
esearch_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = NULL;
	const char *set;
	uint64_t lo, hi, u;
	size_t i = 0;
	int rc;

	if (r->ntoks >= 4 && r->toks[0].type == IMAP_EV_LIST_BEGIN &&
	    r->toks[1].type == IMAP_EV_ATOM &&
	    strcasecmp(tstr(c, &r->toks[1]), "TAG") == 0 &&
	    is_string(&r->toks[2])) {
		t = imapc_find_tag(c, tstr(c, &r->toks[2]));
		i = 4;
	}
	if (t == NULL || t->kind != K_SEARCH)
		return;
	for (; i + 1 < r->ntoks; i++) {
		if (r->toks[i].type != IMAP_EV_ATOM ||
		    strcasecmp(tstr(c, &r->toks[i]), "ALL") != 0)
			continue;
		set = tstr(c, &r->toks[i + 1]);
		while ((rc = imap_parse_seqset_next(&set, &lo, &hi)) == 1) {
			if (hi - lo >= ESEARCH_RANGE_MAX) {
				imapc_fail(c, IMAP_ERR_TEMP, "ESEARCH range "
				    "too large");
				return;
			}
			for (u = lo; !imapc_freed(c) && t->search_uid != NULL;
			    u++) {
				t->search_uid(c, u, t->arg);
				if (u == hi)
					break;
			}
		}
		if (rc == -1)
			imapc_fail(c, IMAP_ERR_TEMP, "malformed ESEARCH set");
		return;
	}
}

/* namespace_done - first personal namespace: (("prefix" "delim") ...) */
static void
namespace_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = imapc_oldest_kind(c, K_NAMESPACE, K_NAMESPACE);

	if (t == NULL || t->ns_have)
		return;
	if (r->ntoks >= 5 && r->toks[0].type == IMAP_EV_LIST_BEGIN &&
	    r->toks[1].type == IMAP_EV_LIST_BEGIN &&
	    is_string(&r->toks[2]) && (r->toks[3].type == IMAP_EV_NIL ||
	    (r->toks[3].type == IMAP_EV_STRING && r->toks[3].len == 1))) {
		if ((t->ns_prefix = strdup(tstr(c, &r->toks[2]))) == NULL) {
			imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
			return;
		}
		t->ns_delim = r->toks[3].type == IMAP_EV_NIL ? 0 :
		    tstr(c, &r->toks[3])[0];
		t->ns_have = 1;
	}
}

/* quota_done - "* QUOTA root (resource usage limit ...)" to the oldest
 * GETQUOTAROOT in flight, one call per resource */
static void
quota_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *t = imapc_oldest_kind(c, K_QUOTA, K_QUOTA);
	struct imap_quota q;
	size_t i;

	if (t == NULL || t->quota == NULL)
		return;
	if (r->ntoks < 2 || !is_string(&r->toks[0]) ||
	    r->toks[1].type != IMAP_EV_LIST_BEGIN)
		goto bad;
	q.root = tstr(c, &r->toks[0]);
	for (i = 2; i + 2 < r->ntoks && r->toks[i].depth == 1; i += 3) {
		if (r->toks[i].type != IMAP_EV_ATOM ||
		    r->toks[i + 1].type != IMAP_EV_NUMBER ||
		    r->toks[i + 2].type != IMAP_EV_NUMBER)
			goto bad;
		q.resource = tstr(c, &r->toks[i]);
		q.usage = r->toks[i + 1].num;
		q.limit = r->toks[i + 2].num;
		t->quota(c, &q, t->arg);
		if (imapc_freed(c))
			return;
	}
	return;
bad:
	imapc_fail(c, IMAP_ERR_TEMP, "malformed QUOTA response from server");
}

/* id_done - log the server's ID ("name" "Dovecot" ...) */
static void
id_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	char line[TEXT_MAX], v[128];
	size_t i;

	line[0] = '\0';
	for (i = 1; i < r->ntoks && r->toks[i].depth == 1; i++) {
		sanitize(v, sizeof(v), tstr(c, &r->toks[i]), r->toks[i].len);
		imap_wire_sappend(line, sizeof(line), "%s%s", i % 2 ? (i > 1 ? " " : "") :
		    "=", v);
	}
	log_info("%s: server id: %s", c->id, line[0] ? line : "NIL");
}

/* collect_done - dispatch a collected untagged data response */
static void
collect_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct mbox_acc *a;
	const char *n = r->name;
	size_t i;

	if (strcmp(n, "CAPABILITY") == 0)
		caps_set(c, 0, r->ntoks);
	else if (strcmp(n, "ENABLED") == 0) {
		for (i = 0; i < r->ntoks; i++) {
			const char *s = tstr(c, &r->toks[i]);

			if (strcasecmp(s, "CONDSTORE") == 0)
				c->enable_confirmed |= IMAP_ENABLE_CONDSTORE;
			else if (strcasecmp(s, "QRESYNC") == 0)
				c->enable_confirmed |= IMAP_ENABLE_QRESYNC |
				    IMAP_ENABLE_CONDSTORE;
			else if (strcasecmp(s, "UTF8=ACCEPT") == 0)
				c->enable_confirmed |= IMAP_ENABLE_UTF8;
		}
	} else if (strcmp(n, "LIST") == 0)
		list_done(c, 0);
	else if (strcmp(n, "LSUB") == 0)
		list_done(c, 1);
	else if (strcmp(n, "STATUS") == 0)
		status_resp_done(c);
	else if (strcmp(n, "FLAGS") == 0) {
		if ((a = select_target(c)) == NULL)
			return;
		strlist_clear(&a->flags);
		for (i = 0; i < r->ntoks; i++)
			if (r->toks[i].type == IMAP_EV_ATOM &&
			    r->toks[i].depth == 1 && a->flags.count < FLAGS_MAX &&
			    strlist_add(&a->flags, tstr(c, &r->toks[i]),
			    r->toks[i].len) == -1)
				imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
		imapc_mbox_views(a);
	} else if (strcmp(n, "EXISTS") == 0 && r->has_num) {
		struct imap_cmd *sel = imapc_oldest_kind(c, K_SELECT, K_SELECT);

		if (sel != NULL)
			sel->mbox->mb.exists = r->num;
		else if (c->have_cur)
			c->cur.mb.exists = r->num;
	} else if (strcmp(n, "RECENT") == 0 && r->has_num) {
		if ((a = select_target(c)) != NULL)
			a->mb.recent = r->num;
	} else if (strcmp(n, "EXPUNGE") == 0 && r->has_num) {
		if (c->have_cur && c->cur.mb.exists > 0)
			c->cur.mb.exists--;
	} else if (strcmp(n, "VANISHED") == 0)
		vanished_done(c);
	else if (strcmp(n, "ESEARCH") == 0)
		esearch_done(c);
	else if (strcmp(n, "NAMESPACE") == 0)
		namespace_done(c);
	else if (strcmp(n, "ID") == 0)
		id_done(c);
	else if (strcmp(n, "QUOTA") == 0)
		quota_done(c);
	else
		log_debug("%s: ignoring untagged %s", c->id, n);
}

/* ---- status responses, completions, continuations ------------------ */

static void
greeting(struct imap_client *c)
{
	struct resp *r = &c->r;
	char text[TEXT_MAX];

	sanitize(text, sizeof(text), r->arena + r->text_off, r->text_len);
	if (strcmp(r->name, "BYE") == 0) {
		str_copy(c->err_code, r->code, sizeof(c->err_code));
		imapc_fail(c, IMAP_ERR_TEMP, "server refused the connection: "
		    "%s", text);
		return;
	}
	if (strcmp(r->name, "OK") != 0 && strcmp(r->name, "PREAUTH") != 0) {
		imapc_fail(c, IMAP_ERR_TEMP, "bad greeting from server: %s %s",
		    r->name, text);
		return;
	}
	code_apply_caps(c);
	if (strcmp(r->name, "PREAUTH") == 0) {
		if (c->tls == IMAP_TLS_STARTTLS && !c->tls_active) {
			imapc_fail(c, IMAP_ERR_PERM, "server sent PREAUTH, "
			    "STARTTLS is impossible");
			return;
		}
		c->authenticated = 1;
	}
	log_debug("%s: greeting: %s %s", c->id, r->name, text);
	imapc_state(c, ICS_SETUP);
	imapc_setup_next(c);
}

/* status_done - untagged OK / NO / BAD / BYE / PREAUTH */
static void
status_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	char text[TEXT_MAX];

	if (c->state == ICS_GREETING) {
		greeting(c);
		return;
	}
	sanitize(text, sizeof(text), r->arena + r->text_off, r->text_len);
	code_apply_caps(c);
	code_apply_mbox(c, select_target(c));
	if (strcmp(r->code, "ALERT") == 0)
		log_warnx("%s: server alert: %s", c->id, text);
	if (strcmp(r->name, "BYE") == 0) {
		str_copy(c->bye_text, text, sizeof(c->bye_text));
		str_copy(c->bye_code, r->code, sizeof(c->bye_code));
		if (c->state != ICS_LOGOUT)
			log_notice("%s: server says BYE: %s%s%s%s", c->id,
			    r->code[0] ? "[" : "", r->code,
			    r->code[0] ? "] " : "", text);
	} else if (strcmp(r->name, "OK") != 0)
		log_info("%s: server says %s: %s", c->id, r->name, text);
}

/*
 * tagged_done - a command is complete: build its result and report it.
 */
static void
tagged_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_result res;
	struct imap_cmd *cmd;
	char text[TEXT_MAX], args[TEXT_MAX], shown[64];
	int midwrite;

	if ((cmd = imapc_find_tag(c, r->tag)) == NULL) {
		sanitize(shown, sizeof(shown), r->tag, strlen(r->tag));
		imapc_fail(c, IMAP_ERR_TEMP, "server completed tag \"%s\" we "
		    "did not send", shown);
		return;
	}
	sanitize(text, sizeof(text), r->arena + r->text_off, r->text_len);
	code_args_text(c, args, sizeof(args));
	memset(&res, 0, sizeof(res));
	res.status = r->tstatus;
	res.code = r->code;
	res.code_args = args;
	res.text = text;
	res.errclass = imap_wire_classify(cmd->kind == K_LOGIN ||
	    cmd->kind == K_AUTH, res.status, r->code, text);
	if (res.status != IMAP_OK)
		res.backoff_ms = imap_backoff_from_text(text);
	if (res.status == IMAP_OK)
		code_apply_caps(c);
	if (cmd->kind == K_SELECT) {
		code_apply_mbox(c, cmd->mbox);
		if (res.status == IMAP_OK) {
			if (mbox_copy(&c->cur, cmd->mbox) == -1) {
				imapc_fail(c, IMAP_ERR_TEMP, "out of memory");
				return;
			}
			c->have_cur = 1;
		} else
			c->have_cur = 0;	/* a failed SELECT deselects */
	}
	if (cmd->kind == K_APPEND && res.status == IMAP_OK &&
	    strcmp(r->code, "APPENDUID") == 0 && r->code_t1 >= r->code_t0 + 2 &&
	    r->toks[r->code_t0].type == IMAP_EV_NUMBER) {
		const struct ctok *st = &r->toks[r->code_t0 + 1];
		const char *set = tstr(c, st);
		uint64_t lo, hi;

		if (imap_parse_seqset_next(&set, &lo, &hi) == 1) {
			res.appenduid_validity = r->toks[r->code_t0].num;
			res.appenduid_first = lo;
			res.appenduid_set = tstr(c, st);
		}
	}
	if (res.status == IMAP_OK && cmd->kind == K_STARTTLS)
		c->switch_to = SW_TLS;
	if (res.status == IMAP_OK && cmd->kind == K_COMPRESS)
		c->switch_to = SW_Z;
	if (res.status == IMAP_OK && cmd->kind == K_LOGOUT)
		c->logout_ok = 1;
	if (res.status == IMAP_OK && cmd->kind == K_AUTH &&
	    cmd->auth_challenge != NULL)
		free(cmd->auth_challenge), cmd->auth_challenge = NULL;
	if (res.status != IMAP_OK && cmd->kind == K_AUTH &&
	    cmd->auth_challenge != NULL) {
		/* XOAUTH2's JSON error says more than "NO" */
		size_t tl = strlen(text);

		snprintf(text + tl, sizeof(text) - tl, " (%s)",
		    cmd->auth_challenge);
	}
	/* Did the server answer before the command was fully sent? */
	midwrite = c->writer == cmd && !cmd->waiting_cont &&
	    (cmd->app_left > 0 || cmd->segi < cmd->nsegs ||
	    (cmd->kind == K_APPEND && !cmd->app_ended));
	if (res.status == IMAP_OK)
		log_debug("%s: S: %s OK%s%s%s %s", c->id, cmd->tag,
		    r->code[0] ? " [" : "", r->code, r->code[0] ? "]" : "",
		    text);
	else
		log_info("%s: %s: %s%s%s%s %s (%s)", c->id, cmd->logline,
		    imap_status_name(res.status), r->code[0] ? " [" : "",
		    r->code, r->code[0] ? "]" : "", text,
		    imap_errclass_name(res.errclass));
	imapc_complete(c, cmd, &res);
	if (midwrite)
		imapc_fail(c, IMAP_ERR_TEMP, "server completed a command "
		    "before it was fully sent");
	else if (c->logout_ok)
		/* nothing can follow: close now rather than wait for the
		 * server to do it */
		imapc_fail(c, IMAP_ERR_NONE, "logged out");
	imapc_writer_run(c);
}

/* cont_done - a "+" continuation request */
static void
cont_done(struct imap_client *c)
{
	struct resp *r = &c->r;
	struct imap_cmd *w = c->writer, *auth;

	if (w != NULL && w->waiting_cont) {
		w->waiting_cont = 0;
		if (w->segi > 0 && w->segs[w->segi - 1].has_literal)
			w->app_left = w->lit_next;
		imapc_writer_run(c);
		imapc_arm_timeouts(c);
		return;
	}
	/* a SASL challenge after our response: only errors are expected
	 * (XOAUTH2 sends its JSON status); answer so that the server
	 * sends its tagged NO */
	if ((auth = imapc_oldest_kind(c, K_AUTH, K_AUTH)) != NULL) {
		free(auth->auth_challenge);
		auth->auth_challenge = imap_wire_unb64_text(r->arena + r->text_off,
		    r->text_len);
		if (c->auth == IMAP_AUTH_XOAUTH2)
			bufferevent_write(c->top, "\r\n", 2);
		else
			bufferevent_write(c->top, "*\r\n", 3);
		return;
	}
	imapc_fail(c, IMAP_ERR_TEMP, "unexpected continuation request from "
	    "server");
}

/* resp_end - the response is complete: dispatch it */
static void
resp_end(struct imap_client *c)
{
	struct resp *r = &c->r;

	if (c->state == ICS_GREETING && r->kind != R_STATUS) {
		imapc_fail(c, IMAP_ERR_TEMP, "server did not greet");
		return;
	}
	switch (r->kind) {
	case R_TAGGED:
		tagged_done(c);
		break;
	case R_CONT:
		cont_done(c);
		break;
	case R_STATUS:
		status_done(c);
		break;
	case R_COLLECT:
		collect_done(c);
		break;
	case R_FETCH:
		fetch_done(c);
		break;
	case R_SEARCH:
	case R_NONE:
		break;
	}
	imapc_resp_reset(c);
}

/*
 * imapc_on_event - the parser's callback: start, feed or finish the current
 * response.  Returns IMAP_PARSE_PAUSE when the parser must stop (reading
 * paused by the caller, failure, or a stream layer to switch).
 */
int
imapc_on_event(const struct imap_event *ev, void *arg)
{
	struct imap_client *c = arg;
	struct resp *r = &c->r;

	if (imapc_failed(c))
		return (IMAP_PARSE_PAUSE);
	switch (ev->type) {
	case IMAP_EV_ERROR:
		imapc_fail(c, IMAP_ERR_TEMP, "protocol error: %s", ev->str);
		return (IMAP_PARSE_PAUSE);
	case IMAP_EV_UNTAGGED:
		str_copy(r->name, ev->str, sizeof(r->name));
		r->num = ev->num;
		r->has_num = (ev->flags & IMAP_EVF_NUM) != 0;
		if (strcmp(r->name, "FETCH") == 0 && r->has_num) {
			r->kind = R_FETCH;
			r->target = imapc_oldest_fetcher(c);
		} else if (strcmp(r->name, "SEARCH") == 0) {
			r->kind = R_SEARCH;
			r->target = imapc_oldest_kind(c, K_SEARCH, K_SEARCH);
		} else if (!r->has_num && (strcmp(r->name, "OK") == 0 ||
		    strcmp(r->name, "NO") == 0 || strcmp(r->name, "BAD") == 0 ||
		    strcmp(r->name, "BYE") == 0 ||
		    strcmp(r->name, "PREAUTH") == 0))
			r->kind = R_STATUS;
		else
			r->kind = R_COLLECT;
		break;
	case IMAP_EV_TAGGED:
		r->kind = R_TAGGED;
		str_copy(r->tag, ev->tag, sizeof(r->tag));
		r->tstatus = strcmp(ev->str, "OK") == 0 ? IMAP_OK :
		    strcmp(ev->str, "NO") == 0 ? IMAP_NO : IMAP_BAD;
		break;
	case IMAP_EV_CONTINUE:
		r->kind = R_CONT;
		break;
	case IMAP_EV_END:
		resp_end(c);
		break;
	default:
		if (r->kind == R_FETCH)
			fetch_event(c, ev);
		else if (r->kind == R_SEARCH)
			search_event(c, ev);
		else
			collect_event(c, ev);
		break;
	}
	return (c->paused || imapc_failed(c) || c->switch_to ?
	    IMAP_PARSE_PAUSE : 0);
}
