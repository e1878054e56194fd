/*
 * smtpd_auth.c - SMTP AUTH (RFC 4954) with the SASL mechanisms PLAIN
 * (RFC 4616) and LOGIN, checked against smtpd_sasl_users.
 *
 * smtpd_sasl_users is a lookup table (doc/architecture.md) from user name to a
 * crypt(3) hash (yescrypt, sha512-crypt: what mkpasswd or
 * "openssl passwd -6" print); crypt_r computes the hash of what the client
 * sent and the two are compared in constant time. An unknown user costs
 * the same hashing as a known one: it is checked against a dummy of the
 * scheme and cost most of the table's hashes have, so timing does not
 * tell which names exist. A weak hash (DES, MD5: mail/pwhash.h) in the
 * table stops smtpd at start, naming the table and the user. The table
 * is opened and the hashes computed in smtpd's door, by
 * smtpd_auth_door.c; this file is the worker's half, which only asks.
 *
 * AUTH is offered and accepted only over TLS (doc/architecture.md: no password
 * in clear text). Everything the client sends is untrusted: base64 is
 * decoded strictly, response lines are bounded (RFC 4954 4: 12288
 * octets), names are checked before they reach a table, the log or the
 * queue file, and passwords are wiped after use and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"
#include "smtpd_metrics.h"
#include "smtpd_sasl.h"

/* RFC 4954 4: a server accepts at least 12288 octets per line. */
#define AUTH_LINE_MAX 12288
#define AUTH_PASSWORD_MAX 1024

bool smtpd_auth_offered(const struct smtpd_session *s)
{
	return s->tls_active && cfg.smtpd_sasl_users.count > 0;
}

static void wipe_free(char *p, size_t len)
{
	if (p != NULL) {
		explicit_bzero(p, len);
		free(p);
	}
}

/* ---- the exchange ---- */

enum auth_outcome {
	AUTH_OK,
	AUTH_FAILED,		/* 535 */
	AUTH_TEMPFAIL,		/* 454 */
	AUTH_MALFORMED,		/* 501 5.5.2 bad base64 */
	AUTH_CANCELLED,		/* 501 "*" */
	AUTH_TOOLONG,		/* 500 5.5.6 */
	AUTH_IO,		/* the client is gone or timed out */
};

/* In the worker: the door checks, the worker only asks. */
static enum auth_outcome verify(const char *user, const char *password)
{
	switch (smtpd_door_auth(user, password)) {
	case SMTPD_DOOR_AUTH_YES:
		return AUTH_OK;
	case SMTPD_DOOR_AUTH_NO:
		return AUTH_FAILED;
	case SMTPD_DOOR_AUTH_TEMPFAIL:
		break;
	}
	return AUTH_TEMPFAIL;
}

/*
 * Send a 334 challenge (base64 text, ours) and read the client's
 * response, decoded. "*" cancels (RFC 4954 4).
 */
static enum auth_outcome challenge(struct smtpd_session *s,
    const char *b64text, char **out, size_t *outlen)
{
	bio_printf(&s->bio, "334 %s\r\n", b64text);
	if (!smtpd_flush(s)) {
		smtpd_io_failed(s, BIO_ERROR);
		return AUTH_IO;
	}
	struct str resp;
	unsigned flags = 0;
	str_init(&resp, AUTH_LINE_MAX + 2);
	enum bio_status st = bio_readline(&s->bio, &resp, AUTH_LINE_MAX,
	    &flags);
	if (st == BIO_TOOLONG) {
		str_free(&resp);
		return AUTH_TOOLONG;
	}
	if (st != BIO_OK) {
		str_free(&resp);
		smtpd_io_failed(s, st);
		return AUTH_IO;
	}
	enum auth_outcome o = AUTH_OK;
	if (resp.len == 1 && resp.data[0] == '*')
		o = AUTH_CANCELLED;
	else if ((flags & (BIO_LINE_BARE_CR | BIO_LINE_BARE_LF)) ||
	    !smtpd_sasl_b64_decode(resp.data, resp.len, out, outlen))
		o = AUTH_MALFORMED;
	explicit_bzero(resp.data, resp.len);
	str_free(&resp);
	return o;
}

/* The initial response of "AUTH MECH ir": "=" is the empty one. */
static enum auth_outcome initial_response(const char *ir, char **out,
    size_t *outlen)
{
	if (strcmp(ir, "=") == 0) {
		*out = xstrdup("");
		*outlen = 0;
		return AUTH_OK;
	}
	if (strcmp(ir, "*") == 0)
		return AUTH_CANCELLED;
	return smtpd_sasl_b64_decode(ir, strlen(ir), out, outlen) ? AUTH_OK :
	    AUTH_MALFORMED;
}

/* RFC 4616 2: [authzid] NUL authcid NUL passwd. */
static enum auth_outcome mech_plain(struct smtpd_session *s, const char *ir,
    char **user)
{
	char *msg = NULL;
	size_t len = 0;
	enum auth_outcome o = ir != NULL ? initial_response(ir, &msg, &len) :
	    challenge(s, "", &msg, &len);
	if (o != AUTH_OK)
		return o;
	struct smtpd_sasl_plain p;
	o = AUTH_FAILED;
	if (smtpd_sasl_plain_split(msg, len, &p)) {
		const char *authzid = p.authzid, *authcid = p.authcid;
		const char *password = p.password;
		size_t authcid_len = p.authcid_len;
		size_t password_len = p.password_len;
		/* An authzid other than the authcid would be a proxy
		 * login, which we do not offer. */
		bool authz_ok = *authzid == '\0' ||
		    strcmp(authzid, authcid) == 0;
		if (smtpd_sasl_name_ok(authcid, authcid_len) && authz_ok &&
		    password_len > 0 && password_len <= AUTH_PASSWORD_MAX &&
		    memchr(password, '\0', password_len) == NULL) {
			*user = xstrdup(authcid);
			o = verify(authcid, password);
		} else if (smtpd_sasl_name_ok(authcid, authcid_len)) {
			*user = xstrdup(authcid);
		}
	}
	wipe_free(msg, len);
	return o;
}

/* The LOGIN mechanism (draft-murchison-sasl-login): user, then password. */
static enum auth_outcome mech_login(struct smtpd_session *s, const char *ir,
    char **user)
{
	char *name = NULL, *password = NULL;
	size_t name_len = 0, password_len = 0;
	enum auth_outcome o = ir != NULL ?
	    initial_response(ir, &name, &name_len) :
	    challenge(s, "VXNlcm5hbWU6", &name, &name_len);	/* Username: */
	if (o != AUTH_OK)
		return o;
	o = challenge(s, "UGFzc3dvcmQ6", &password, &password_len);
	if (o == AUTH_OK) {
		bool valid = smtpd_sasl_name_ok(name, name_len);
		if (valid)
			*user = xstrdup(name);
		if (valid && password_len > 0 &&
		    password_len <= AUTH_PASSWORD_MAX &&
		    strlen(password) == password_len)
			o = verify(name, password);
		else
			o = AUTH_FAILED;
	}
	wipe_free(password, password_len);
	free(name);
	return o;
}

void smtpd_cmd_auth(struct smtpd_session *s, const char *arg)
{
	if (cfg.smtpd_sasl_users.count == 0) {
		smtpd_reply(s, 503, "5.5.1", "Error: authentication not "
		    "enabled");
		return;
	}
	if (!s->tls_active) {
		/* RFC 4954 6 */
		smtpd_reply(s, 538, "5.7.11", "Encryption required for "
		    "requested authentication mechanism");
		return;
	}
	if (s->srv.state == SMTP_SERVER_CONNECTED || !s->esmtp) {
		smtpd_reply(s, 503, "5.5.1", "Error: send EHLO first");
		return;
	}
	if (s->auth_user != NULL) {
		smtpd_reply(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (s->txn != NULL) {
		smtpd_reply(s, 503, "5.5.1", "Error: MAIL transaction in "
		    "progress");
		return;
	}
	/* "MECH" or "MECH initial-response" */
	char mech[32];
	const char *sp = strchr(arg, ' ');
	size_t mlen = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *ir = sp ? sp + 1 : NULL;
	if (mlen == 0 || (ir != NULL && (*ir == '\0' || strchr(ir, ' ')))) {
		smtpd_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism "
		    "[initial-response]");
		return;
	}
	if (mlen >= sizeof(mech)) {
		smtpd_reply(s, 504, "5.5.4", "Unsupported authentication "
		    "mechanism");
		return;
	}
	memcpy(mech, arg, mlen);
	mech[mlen] = '\0';

	/*
	 * smtpd_throttle.c: a client locked out for its failures gets no
	 * exchange at all, and the session ends (the line is one fail2ban's
	 * postfix-sasl filter counts).
	 */
	if (smtpd_throttle_auth_check(s, NULL) == SMTPD_THROTTLE_CLIENT_LOCKED) {
		log_info("warning: %s: SASL %s authentication failed: too many "
		    "failed attempts from this client: locked out",
		    s->client_log, strcasecmp(mech, "LOGIN") == 0 ? "LOGIN" :
		    "PLAIN");
		smtpd_metrics_auth(s, METRICS_AUTH_LOCKED);
		smtpd_reply(s, 421, "4.7.0", "%s Error: too many failed "
		    "authentication attempts; try again later", cfg.myhostname);
		smtpd_enter_state(s, SMTP_SERVER_CLOSING);
		return;
	}
	char *user = NULL;
	const char *method;
	enum auth_outcome o;
	if (strcasecmp(mech, "PLAIN") == 0) {
		method = "PLAIN";
		o = mech_plain(s, ir, &user);
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		method = "LOGIN";
		o = mech_login(s, ir, &user);
	} else {
		smtpd_reply(s, 504, "5.5.4", "Unsupported authentication "
		    "mechanism");
		return;
	}
	char name[300];
	log_escape(name, sizeof(name), user ? user : "",
	    user ? strlen(user) : 0);
	/* An account locked out is refused whatever the password. */
	bool user_locked = (o == AUTH_OK || o == AUTH_FAILED) && user != NULL &&
	    smtpd_throttle_auth_check(s, user) != SMTPD_THROTTLE_OK;
	if (user_locked) {
		log_info("warning: %s: SASL %s authentication failed: too many "
		    "failed attempts: locked out, sasl_username=%s",
		    s->client_log, method, name);
		smtpd_metrics_auth(s, METRICS_AUTH_LOCKED);
		smtpd_reply(s, 454, "4.7.0", "Temporary authentication "
		    "failure: too many failed attempts; try again later");
		free(user);
		return;
	}
	switch (o) {
	case AUTH_OK:
		smtpd_metrics_auth(s, METRICS_AUTH_SUCCESS);
		smtpd_throttle_auth_ok(s, user);
		s->auth_user = user;
		s->auth_method = method;
		user = NULL;
		smtpd_reply(s, 235, "2.7.0", "Authentication successful");
		break;
	case AUTH_FAILED:
		log_info("warning: %s: SASL %s authentication failed: "
		    "authentication failure, sasl_username=%s", s->client_log,
		    method, name);
		smtpd_metrics_auth(s, METRICS_AUTH_FAILURE);
		smtpd_throttle_auth_failed(s, user);
		smtpd_reply(s, 535, "5.7.8", "Error: authentication failed: "
		    "authentication failure");
		break;
	case AUTH_TEMPFAIL:
		log_info("warning: %s: SASL %s authentication failed: "
		    "user table unavailable", s->client_log, method);
		smtpd_metrics_auth(s, METRICS_AUTH_TEMPFAIL);
		smtpd_reply(s, 454, "4.7.0", "Temporary authentication "
		    "failure");
		break;
	case AUTH_MALFORMED:
		smtpd_reply(s, 501, "5.5.2", "Error: cannot decode response");
		break;
	case AUTH_CANCELLED:
		smtpd_reply(s, 501, "5.0.0", "Error: authentication aborted");
		break;
	case AUTH_TOOLONG:
		smtpd_reply(s, 500, "5.5.6", "Error: authentication "
		    "exchange line is too long");
		break;
	case AUTH_IO:
		break;
	}
	free(user);
}
