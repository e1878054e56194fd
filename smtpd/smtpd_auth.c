/*
 * smtpd_auth.c - SMTP AUTH (RFC 4954) with the SASL mechanisms PLAIN
 * (RFC 4616) and LOGIN, checked against smtpd_sasl_users.
 *
 * smtpd_sasl_users is a lookup table (doc/architecture.md) from user name to a
 * crypt(3) hash (yescrypt, sha512-crypt: what mkpasswd or
 * "openssl passwd -6" print); crypt_r computes the hash of what the client
 * sent and the two are compared in constant time. An unknown user costs
 * the same hashing as a known one, so timing does not tell which names
 * exist.
 *
 * AUTH is offered and accepted only over TLS (doc/architecture.md: no password
 * in clear text). Everything the client sends is untrusted: base64 is
 * decoded strictly, response lines are bounded (RFC 4954 4: 12288
 * octets), names are checked before they reach a table, the log or the
 * queue file, and passwords are wiped after use and never logged.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <openssl/crypto.h>

#include "cfg.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "smtpd.h"

/* RFC 4954 4: a server accepts at least 12288 octets per line. */
#define AUTH_LINE_MAX 12288
#define AUTH_NAME_MAX 255
#define AUTH_PASSWORD_MAX 1024

static struct map_list *sasl_tables;
static bool sasl_broken;	/* the table list could not be opened */

/* Hashed when the user is unknown, so the reply takes as long. */
static char dummy_hash[CRYPT_OUTPUT_SIZE];

static void close_tables(void)
{
	map_list_close(sasl_tables);
	sasl_tables = NULL;
}

void smtpd_auth_init(void)
{
	char err[256];

	if (cfg.smtpd_sasl_users.count == 0)
		return;
	atexit(close_tables);
	sasl_tables = map_list_open(&cfg.smtpd_sasl_users, err, sizeof(err));
	if (sasl_tables == NULL) {
		log_warning("smtpd_sasl_users: %s: AUTH gets a temporary "
		    "error", err);
		sasl_broken = true;
	}
	/* A hash of the same kind as the default of crypt_gensalt. */
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *setting = crypt_gensalt_rn(NULL, 0, NULL, 0,
	    cd->setting, sizeof(cd->setting));
	const char *h = setting ? crypt_r("postern", setting, cd) : NULL;
	if (h != NULL && h[0] != '*')
		strlcpy(dummy_hash, h, sizeof(dummy_hash));
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
}

bool smtpd_auth_offered(const struct smtpd_session *s)
{
	return s->tls_active && cfg.smtpd_sasl_users.count > 0;
}

/* ---- base64 (RFC 4648 4), strict: no white space, exact padding ---- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode in (len octets) into a malloc'd buffer; false if malformed. */
static bool b64_decode(const char *in, size_t len, char **out,
    size_t *outlen)
{
	if (len % 4 != 0)
		return false;
	char *buf = xmalloc(len / 4 * 3 + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (size_t j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)in[i + j];
			if (c == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[j] = b64_value(c)) < 0) {
				free(buf);
				return false;
			}
		}
		unsigned long w = (unsigned long)v[0] << 18 |
		    (unsigned long)v[1] << 12 | (unsigned long)v[2] << 6 |
		    (unsigned long)v[3];
		buf[n++] = (char)(w >> 16);
		if (pad < 2)
			buf[n++] = (char)(w >> 8 & 0xff);
		if (pad < 1)
			buf[n++] = (char)(w & 0xff);
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return true;
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

/* A user name we are willing to look up, log and queue. */
static bool name_ok(const char *name, size_t len)
{
	if (len == 0 || len > AUTH_NAME_MAX || strlen(name) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

/* Check a name and password against smtpd_sasl_users. */
static enum auth_outcome verify(const char *user, const char *password)
{
	char *hash = NULL;
	enum map_result r = sasl_broken ? MAP_ERROR :
	    map_list_lookup(sasl_tables, user, &hash);
	if (r == MAP_ERROR)
		return AUTH_TEMPFAIL;
	const char *setting = r == MAP_FOUND ? hash : dummy_hash;
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *got = crypt_r(password, setting, cd);
	bool ok = false;
	if (r == MAP_FOUND && got != NULL && got[0] != '*' && hash[0] != '\0') {
		size_t n = strlen(hash);
		ok = strlen(got) == n && CRYPTO_memcmp(got, hash, n) == 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(hash);
	return ok ? AUTH_OK : AUTH_FAILED;
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
	    !b64_decode(resp.data, resp.len, out, outlen))
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
	return b64_decode(ir, strlen(ir), out, outlen) ? AUTH_OK :
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
	const char *authzid = msg;
	const char *nul1 = memchr(msg, '\0', len);
	const char *nul2 = nul1 ? memchr(nul1 + 1, '\0',
	    len - (size_t)(nul1 + 1 - msg)) : NULL;
	o = AUTH_FAILED;
	if (nul2 != NULL) {
		const char *authcid = nul1 + 1;
		const char *password = nul2 + 1;
		size_t authcid_len = (size_t)(nul2 - authcid);
		size_t password_len = len - (size_t)(password - msg);
		/* An authzid other than the authcid would be a proxy
		 * login, which we do not offer. */
		bool authz_ok = *authzid == '\0' ||
		    strcmp(authzid, authcid) == 0;
		if (name_ok(authcid, authcid_len) && authz_ok &&
		    password_len > 0 && password_len <= AUTH_PASSWORD_MAX &&
		    memchr(password, '\0', password_len) == NULL) {
			*user = xstrdup(authcid);
			o = verify(authcid, password);
		} else if (name_ok(authcid, authcid_len)) {
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
		bool valid = name_ok(name, name_len);
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
	if (s->state == SMTPD_STATE_CONNECTED || !s->esmtp) {
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
	switch (o) {
	case AUTH_OK:
		s->auth_user = user;
		s->auth_method = method;
		user = NULL;
		smtpd_reply(s, 235, "2.7.0", "Authentication successful");
		break;
	case AUTH_FAILED:
		log_info("warning: %s: SASL %s authentication failed: "
		    "authentication failure, sasl_username=%s", s->client_log,
		    method, name);
		smtpd_reply(s, 535, "5.7.8", "Error: authentication failed: "
		    "authentication failure");
		break;
	case AUTH_TEMPFAIL:
		log_info("warning: %s: SASL %s authentication failed: "
		    "user table unavailable", s->client_log, method);
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
