/*
 * deliver_tls.c - opportunistic STARTTLS for the SMTP/LMTP client
 * (RFC 3207): the client policy on top of mail/tls.c.
 *
 * Opportunistic means Postfix's "may" level: encrypt when the peer offers
 * it, verify no certificate (an unauthenticated MX cannot be checked
 * without DANE or MTA-STS), and fall back to plain text when the
 * handshake fails. It protects against passive eavesdropping only; the
 * log says "Untrusted" so nobody reads more into it.
 */
#include <stdio.h>
#include <string.h>

#include "deliver.h"
#include "log.h"
#include "tls.h"

static SSL_CTX *tls_ctx;

void deliver_tls_init(void)
{
	if (tls_ctx != NULL)
		return;
	tls_ctx = tls_client_context();
	if (tls_ctx == NULL) {
		log_warning("cannot create a TLS client context: STARTTLS "
		    "disabled");
		return;
	}
	/* Opportunistic: an unverified channel beats a plain one. */
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
}

bool deliver_tls_start(struct deliver_session *s, int timeout_ms,
    char *info, size_t infosize, char *err, size_t errsize)
{
	if (tls_ctx == NULL) {
		snprintf(err, errsize, "no TLS client context");
		return false;
	}
	/* SNI: some servers pick their certificate by it. */
	const char *sni = s->host[0] != '\0' && strchr(s->host, '/') == NULL ?
	    s->host : NULL;
	if (!tls_start(&s->bio, tls_ctx, TLS_ROLE_CLIENT, sni, timeout_ms,
	    err, errsize))
		return false;
	tls_describe(&s->bio, info, infosize);
	s->tls = s->bio.transport;
	return true;
}

void deliver_tls_end(struct deliver_session *s)
{
	if (s->tls == NULL)
		return;
	tls_end(&s->bio);
	s->tls = NULL;
}
