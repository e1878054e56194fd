/*
 * deliver_auth.c - SMTP AUTH as a client (RFC 4954), for a relay that
 * takes mail only from its customers (relayhost = [smtp.example.com]:587).
 *
 * Credentials come from smtp_sasl_password_maps, "user:password" under
 * the server's host name or under the nexthop as written, in that order,
 * as Postfix's smtp_sasl_password_maps. They go only over TLS unless
 * smtp_sasl_allow_plaintext says otherwise: a password in clear text is
 * a password given away. PLAIN is preferred (one round trip), then LOGIN.
 * A refused AUTH defers the mail (Postfix's smtp_sasl_auth_soft_bounce):
 * a wrong password is the administrator's to fix, not the sender's.
 * The password is never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cfg.h"
#include "deliver.h"
#include "log.h"
#include "map.h"
#include "mem.h"

static struct map_list *password_tables;
static bool tables_broken;	/* configured, but could not be opened */

void deliver_auth_init(void)
{
	char err[512];

	if (cfg.smtp_sasl_password_maps.count == 0)
		return;
	password_tables = map_list_open(&cfg.smtp_sasl_password_maps, err,
	    sizeof(err));
	if (password_tables == NULL) {
		log_warning("smtp_sasl_password_maps: %s: SMTP mail is "
		    "deferred", err);
		tables_broken = true;
	}
}

/* A deferral of this session's recipients, with our own words. */
static bool auth_defer(struct deliver_outcome *out, const char *dsn,
    const char *text)
{
	deliver_outcome_set(out, 'D', dsn, text, text);
	return false;
}

/* "user:password" for s, or NULL (caller frees). */
static char *find_credentials(const struct deliver_session *s,
    const struct deliver_job *job, enum map_result *r)
{
	char *value = NULL;
	*r = map_list_lookup(password_tables, s->host, &value);
	if (*r == MAP_NOTFOUND)
		*r = map_list_lookup(password_tables, job->j.nexthop, &value);
	return *r == MAP_FOUND ? value : NULL;
}

bool deliver_auth_wanted(const struct deliver_session *s,
    const struct deliver_job *job)
{
	if (s->lmtp || (password_tables == NULL && !tables_broken))
		return false;
	if (tables_broken)
		return true;	/* AUTH defers anyway */
	enum map_result r;
	char *cred = find_credentials(s, job, &r);
	if (cred != NULL) {
		explicit_bzero(cred, strlen(cred));
		free(cred);
	}
	return r != MAP_NOTFOUND;
}

/* base64 of len bytes (caller frees). */
static char *b64(const char *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data,
	    (int)len);
	return out;
}

/* One step of the exchange: send line, expect code. Wipes line. */
static bool auth_step(struct deliver_session *s, char *line, int want,
    struct deliver_outcome *out)
{
	bool sent = deliver_session_command(s, SESS_AUTH, line);
	explicit_bzero(line, strlen(line));
	if (!sent) {
		deliver_session_io_failure(s, out, s->last_io);
		return false;
	}
	/* Success is 235, but any 2xx is taken, as Postfix does. */
	if (want == 235 ? s->reply.code / 100 == 2 : s->reply.code == want)
		return true;
	/* A refusal defers (4.7.x), whatever class the server gave. */
	deliver_session_reply_outcome(s, out);
	char dsn[16];
	snprintf(dsn, sizeof(dsn), "4%s", out->dsn[0] != '\0' ? out->dsn + 1 :
	    ".7.0");
	char text[sizeof(s->relay) + 600];
	snprintf(text, sizeof(text), "SASL authentication failed; %s",
	    out->text);
	deliver_outcome_set(out, 'D', dsn, out->diag, text);
	if (s->reply.code == 334 && !deliver_session_command(s, SESS_AUTH, "*"))
		s->usable = false;	/* wanted more: cancel (RFC 4954 4) */
	return false;
}

bool deliver_session_authenticate(struct deliver_session *s,
    struct deliver_job *job, struct deliver_outcome *out)
{
	char text[sizeof(s->relay) + 200];
	enum map_result r;

	if (s->lmtp || (password_tables == NULL && !tables_broken))
		return true;
	if (tables_broken)
		return auth_defer(out, "4.3.0", "cannot read "
		    "smtp_sasl_password_maps");
	char *cred = find_credentials(s, job, &r);
	if (r == MAP_ERROR)
		return auth_defer(out, "4.3.0", "cannot read "
		    "smtp_sasl_password_maps");
	if (cred == NULL)
		return true;	/* no account there: mail goes as usual */

	bool ok = false;
	size_t credlen = strlen(cred);
	char *colon = strchr(cred, ':');
	if (colon == NULL) {
		snprintf(text, sizeof(text), "smtp_sasl_password_maps: the "
		    "entry for %s is not \"user:password\"", s->host);
		auth_defer(out, "4.3.5", text);
	} else if (!(s->ext & SESS_EXT_AUTH)) {
		ok = true;	/* not asked for: as Postfix, send without */
	} else if (s->tls == NULL && !cfg.smtp_sasl_allow_plaintext) {
		snprintf(text, sizeof(text), "cannot authenticate to %s: no "
		    "TLS, and smtp_sasl_allow_plaintext is off", s->relay);
		auth_defer(out, "4.7.0", text);
	} else if (!(s->auth_mechs & (SESS_AUTH_PLAIN | SESS_AUTH_LOGIN))) {
		snprintf(text, sizeof(text), "cannot authenticate to %s: no "
		    "SASL mechanism we speak (PLAIN, LOGIN) is offered",
		    s->relay);
		auth_defer(out, "4.7.0", text);
	} else {
		*colon = '\0';
		const char *user = cred, *pass = colon + 1;
		size_t ulen = strlen(user), plen = strlen(pass);
		if (s->auth_mechs & SESS_AUTH_PLAIN) {
			/* RFC 4616: authzid NUL authcid NUL passwd. */
			char *raw = xmalloc(ulen + plen + 2);
			raw[0] = '\0';
			memcpy(raw + 1, user, ulen + 1);
			memcpy(raw + ulen + 2, pass, plen);
			char *enc = b64(raw, ulen + plen + 2);
			explicit_bzero(raw, ulen + plen + 2);
			free(raw);
			char *line = xasprintf("AUTH PLAIN %s", enc);
			explicit_bzero(enc, strlen(enc));
			free(enc);
			ok = auth_step(s, line, 235, out);
			free(line);
		} else {
			char start[] = "AUTH LOGIN";
			char *u = b64(user, ulen), *p = b64(pass, plen);
			ok = auth_step(s, start, 334, out) &&
			    auth_step(s, u, 334, out) &&
			    auth_step(s, p, 235, out);
			free(u);
			free(p);
		}
		if (ok) {
			s->authenticated = true;
			log_info("%s: authenticated to %s as %s", job->j.queue_id,
			    s->relay, user);
		}
	}
	explicit_bzero(cred, credlen);
	free(cred);
	return ok;
}
