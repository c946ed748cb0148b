/*
 * smtp_client_setup.c - from the server's greeting to SMTP_CLIENT_READY
 * in the relay's outbound SMTP client (DESIGN.md §5): EHLO (HELO when
 * EHLO is refused), then STARTTLS per the destination's TLS policy
 * (require: offered, verified, or on to the next endpoint; opportunistic:
 * when offered, unverified, once more in plain text if the handshake
 * fails; none), EHLO again inside TLS, then idle.  Any failure here moves
 * the connection on to its next address or endpoint.
 *
 * SECURITY: bytes the server sends after its STARTTLS 220 and before the
 * handshake end the session (the client-side twin of CVE-2011-0411); the
 * host name verified is the configured one, never the address.  Loop
 * thread only.
 */

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smtp_client_p.h"
#include "tls.h"

/* client_send_ehlo - EHLO (or HELO, for st CS_HELO); the reply decides */
void
client_send_ehlo(struct smtp_client *c, enum cstate st)
{
	c->ext = 0;
	c->size_max = 0;
	client_state(c, st);
	client_set_timeouts(c, TMO_EHLO, TMO_EHLO);
	if (client_send_line(c, "%s %s", st == CS_HELO ? "HELO" : "EHLO",
	    c->ctx->helo) == -1)
		client_endpoint_failed(c, "%s: out of memory", c->peer);
}

/* start_tls - the 220 to STARTTLS is in: the handshake */
static void
start_tls(struct smtp_client *c)
{
	char err[256];
	struct bufferevent *tbev;

	/* Anything the server sent after its 220 would be read as if it
	 * came through TLS: refuse (the client side of CVE-2011-0411). */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		client_endpoint_failed(c, "%s: data after STARTTLS reply",
		    c->peer);
		return;
	}
	c->ssl = tls_client_ssl_new(c->ctx->ssl_ctx, c->ep[c->iep].host,
	    c->tls == CFG_TLS_REQUIRE, err, sizeof(err));
	if (c->ssl == NULL) {
		client_endpoint_failed(c, "%s: TLS: %s", c->peer, err);
		return;
	}
	/* The filter stops encrypting while the socket's buffer is above
	 * this high-water mark; without it a slow server would let the
	 * whole message pile up there, encrypted. */
	bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOWAT, BODY_HIWAT);
	tbev = bufferevent_openssl_filter_new(c->ctx->base, c->bev, c->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		client_endpoint_failed(c, "%s: TLS: out of memory", c->peer);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	c->bev = tbev;
	bufferevent_setcb(c->bev, client_readcb, client_writecb,
	    client_eventcb, c);
	client_set_timeouts(c, TMO_EHLO, TMO_EHLO);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	client_state(c, CS_TLS);
}

/* client_tls_failed - the handshake failed: why, and what to do next */
void
client_tls_failed(struct smtp_client *c)
{
	char ebuf[160];
	unsigned long e;
	const char *verr = NULL;

	if (c->ssl != NULL && SSL_get_verify_result(c->ssl) != X509_V_OK)
		verr = tls_verify_error(c->ssl);
	e = bufferevent_get_openssl_error(c->bev);
	while (bufferevent_get_openssl_error(c->bev) != 0)
		;
	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	else
		snprintf(ebuf, sizeof(ebuf), "handshake failed");
	ERR_clear_error();
	if (c->tls == CFG_TLS_OPPORTUNISTIC && !c->plain_retry) {
		/* Same address again, without TLS this time. */
		size_t len = strlen(c->why);

		snprintf(c->why + len, sizeof(c->why) - len, "%s%s: TLS "
		    "handshake failed (%s), retrying without TLS",
		    len ? "; " : "", c->peer, verr != NULL ? verr : ebuf);
		client_drop_session(c);
		c->plain_retry = 1;
		client_connect_addr(c);
		return;
	}
	client_endpoint_failed(c, "%s: TLS handshake failed: %s", c->peer,
	    verr != NULL ? verr : ebuf);
}

/* client_setup_reply - the replies before the connection is READY */
void
client_setup_reply(struct smtp_client *c)
{
	char rtext[SMTP_REPLY_TEXTMAX + 8];

	snprintf(rtext, sizeof(rtext), "%d %s", c->rcode, c->rtext);
	switch (c->state) {
	case CS_GREETING:
		if (c->rcode / 100 != 2) {
			client_endpoint_failed(c, "%s greeted: %s", c->peer,
			    rtext);
			return;
		}
		client_send_ehlo(c, CS_EHLO);
		return;
	case CS_EHLO:
		if (c->rcode / 100 == 5 && c->rcode != 421) {
			client_send_ehlo(c, CS_HELO);
			return;
		}
		/* FALLTHROUGH */
	case CS_HELO:
	case CS_EHLO_TLS:
		if (c->rcode / 100 != 2) {
			client_endpoint_failed(c, "%s refused %s: %s", c->peer,
			    c->state == CS_HELO ? "HELO" : "EHLO", rtext);
			return;
		}
		if (c->state == CS_EHLO && c->tls != CFG_TLS_NONE &&
		    !c->plain_retry) {
			if (c->ext & SMTP_EXT_STARTTLS) {
				client_state(c, CS_STARTTLS);
				client_set_timeouts(c, TMO_EHLO, TMO_EHLO);
				if (client_send_line(c, "STARTTLS") == -1)
					client_endpoint_failed(c, "%s: out of "
					    "memory", c->peer);
				return;
			}
			if (c->tls == CFG_TLS_REQUIRE) {
				client_endpoint_failed(c, "%s: TLS is required "
				    "but STARTTLS is not offered", c->peer);
				return;
			}
		}
		if (c->state == CS_HELO && c->tls == CFG_TLS_REQUIRE) {
			client_endpoint_failed(c, "%s: TLS is required but "
			    "the server does not speak ESMTP", c->peer);
			return;
		}
		if (c->ssl != NULL)
			tls_describe(c->ssl, c->tlsdesc, sizeof(c->tlsdesc));
		client_state(c, CS_IDLE);
		client_set_timeouts(c, 0, 0);
		if (c->idle_timeout > 0) {
			struct timeval tv = { c->idle_timeout, 0 };
			event_add(c->timer, &tv);
		}
		client_notify(c, SMTP_CLIENT_READY, NULL);
		return;
	case CS_STARTTLS:
		if (c->rcode != 220) {
			if (c->tls == CFG_TLS_REQUIRE) {
				client_endpoint_failed(c, "%s refused STARTTLS: "
				    "%s", c->peer, rtext);
				return;
			}
			/* opportunistic: carry on in plain text */
			c->plain_retry = 1;
			client_state(c, CS_EHLO);
			c->rcode = 250;
			client_setup_reply(c);
			return;
		}
		start_tls(c);
		return;
	default:
		client_endpoint_failed(c, "%s: unexpected reply: %s", c->peer,
		    rtext);
		return;
	}
}
