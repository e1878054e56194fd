/*
 * esmtp.c - the SMTP/LMTP command grammar shared by smtpd and lmtpd:
 * verb splitting, MAIL/RCPT parameters, and replies with enhanced codes.
 *
 * Trusts nothing in its input: lines come from clients. The parsers only
 * validate and decode; policy (size limits, who may relay) belongs to the
 * server that calls them. Replies are built from our own text; the one
 * helper that writes them filters out anything that is not printable
 * ASCII, so a client byte that slipped into a reply cannot inject a line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "esmtp.h"
#include "mem.h"

/* RFC 3461 4.4 and 4.2: the largest ENVID and ORCPT values. */
#define ESMTP_MAX_ENVID 100
#define ESMTP_MAX_ORCPT 500
/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF. */
#define ESMTP_MAX_REPLY_TEXT 480

void esmtp_split_command(const char *line, struct esmtp_command *cmd)
{
	size_t n = strcspn(line, " ");
	cmd->verb[0] = '\0';
	if (n < sizeof(cmd->verb)) {
		for (size_t i = 0; i < n; i++)
			cmd->verb[i] = (char)toupper((unsigned char)line[i]);
		cmd->verb[n] = '\0';
	}
	const char *arg = line + n;
	while (*arg == ' ')
		arg++;
	cmd->arg = arg;
}

/* ---- parameters ---- */

/*
 * One esmtp-param (RFC 5321 4.1.2): esmtp-keyword ["=" esmtp-value],
 * keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), value = 1*(%d33-60 /
 * %d62-126), plus UTF8-non-ascii per RFC 6531 3.3 (checked by the caller
 * where it matters). Splits text into params at runs of SP.
 */
struct param {
	char keyword[32];
	char *value;		/* NULL if none; malloc'd */
};

enum param_scan {
	PARAM_NONE,		/* end of text */
	PARAM_OK,
	PARAM_BAD,		/* malformed */
};

static enum param_scan next_param(const char **textp, struct param *p)
{
	const char *s = *textp;
	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*textp = s;
		return PARAM_NONE;
	}
	size_t k = 0;
	if (!isalnum((unsigned char)*s))
		return PARAM_BAD;
	while (isalnum((unsigned char)s[k]) || s[k] == '-') {
		if (k + 1 >= sizeof(p->keyword))
			return PARAM_BAD;
		p->keyword[k] = (char)toupper((unsigned char)s[k]);
		k++;
	}
	p->keyword[k] = '\0';
	s += k;
	p->value = NULL;
	if (*s == '=') {
		s++;
		size_t v = 0;
		while (s[v] != '\0' && s[v] != ' ') {
			unsigned char c = (unsigned char)s[v];
			if (c < 33 || c == '=' || c == 127)
				return PARAM_BAD;
			v++;
		}
		if (v == 0)
			return PARAM_BAD;
		p->value = xstrndup(s, v);
		s += v;
	}
	if (*s != '\0' && *s != ' ') {
		free(p->value);
		p->value = NULL;
		return PARAM_BAD;
	}
	*textp = s;
	return PARAM_OK;
}

static bool fail(int *code, const char **enhanced, const char **why, int c,
    const char *e, const char *w)
{
	*code = c;
	*enhanced = e;
	*why = w;
	return false;
}

#define BAD_SYNTAX(w) fail(code, enhanced, why, 501, "5.5.4", (w))
#define UNKNOWN(w) fail(code, enhanced, why, 555, "5.5.4", (w))

static bool has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static bool parse_size(const char *value, long long *out)
{
	long long v = 0;
	if (value == NULL || *value == '\0' || strlen(value) > 20)
		return false;
	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		int d = *p - '0';
		if (v > (__LONG_LONG_MAX__ - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

void esmtp_mail_params_free(struct esmtp_mail_params *p)
{
	free(p->envid);
	free(p->auth);
	p->envid = NULL;
	p->auth = NULL;
}

void esmtp_rcpt_params_free(struct esmtp_rcpt_params *p)
{
	free(p->orcpt);
	p->orcpt = NULL;
}

/* Handles one MAIL parameter; false with the reply set. */
static bool mail_param(const struct param *pa, unsigned ext,
    struct esmtp_mail_params *out, unsigned *seen, int *code,
    const char **enhanced, const char **why)
{
	const char *k = pa->keyword;
	const char *v = pa->value;
	unsigned bit;

	if (strcmp(k, "SIZE") == 0 && (ext & ESMTP_EXT_SIZE))
		bit = 0x01;
	else if (strcmp(k, "BODY") == 0 && (ext & ESMTP_EXT_8BITMIME))
		bit = 0x02;
	else if (strcmp(k, "SMTPUTF8") == 0 && (ext & ESMTP_EXT_SMTPUTF8))
		bit = 0x04;
	else if (strcmp(k, "RET") == 0 && (ext & ESMTP_EXT_DSN))
		bit = 0x08;
	else if (strcmp(k, "ENVID") == 0 && (ext & ESMTP_EXT_DSN))
		bit = 0x10;
	else if (strcmp(k, "AUTH") == 0 && (ext & ESMTP_EXT_AUTH))
		bit = 0x20;
	else if (strcmp(k, "REQUIRETLS") == 0 && (ext & ESMTP_EXT_REQUIRETLS))
		bit = 0x40;
	else
		return UNKNOWN("Unsupported MAIL parameter");
	if (*seen & bit)
		return BAD_SYNTAX("Duplicate MAIL parameter");
	*seen |= bit;
	if (v != NULL && bit != 0x04 && has_non_ascii(v))
		return BAD_SYNTAX("Non-ASCII MAIL parameter value");

	switch (bit) {
	case 0x01:	/* RFC 1870 */
		if (!parse_size(v, &out->size))
			return BAD_SYNTAX("Bad SIZE syntax");
		return true;
	case 0x02:	/* RFC 6152, RFC 3030 3 */
		if (v == NULL)
			return BAD_SYNTAX("Bad BODY syntax");
		if (!esmtp_body_from_name(v, &out->body) ||
		    (out->body == QUEUE_BODY_BINARYMIME &&
		    (!(ext & ESMTP_EXT_CHUNKING) ||
		    !(ext & ESMTP_EXT_BINARYMIME)))) {
			out->body = QUEUE_BODY_7BIT;
			return fail(code, enhanced, why, 555, "5.5.4",
			    "Unsupported BODY type");
		}
		out->body_given = true;
		return true;
	case 0x04:	/* RFC 6531 3.4: no value */
		if (v != NULL)
			return BAD_SYNTAX("SMTPUTF8 takes no value");
		out->smtputf8 = true;
		return true;
	case 0x40:	/* RFC 8689 3: no value */
		if (v != NULL)
			return BAD_SYNTAX("REQUIRETLS takes no value");
		out->requiretls = true;
		return true;
	case 0x08:	/* RFC 3461 4.3 */
		if (v != NULL && strcasecmp(v, "FULL") == 0)
			out->ret = QUEUE_RET_FULL;
		else if (v != NULL && strcasecmp(v, "HDRS") == 0)
			out->ret = QUEUE_RET_HDRS;
		else
			return BAD_SYNTAX("Bad RET syntax");
		return true;
	case 0x10:	/* RFC 3461 4.4 */
		if (v == NULL || strlen(v) > ESMTP_MAX_ENVID)
			return BAD_SYNTAX("Bad ENVID syntax");
		out->envid = addr_xtext_decode(v);
		if (out->envid == NULL)
			return BAD_SYNTAX("Bad ENVID syntax");
		return true;
	default:	/* AUTH, RFC 4954 5: xtext mailbox or "<>" */
		if (v == NULL)
			return BAD_SYNTAX("Bad AUTH syntax");
		out->auth = addr_xtext_decode(v);
		if (out->auth == NULL)
			return BAD_SYNTAX("Bad AUTH syntax");
		return true;
	}
}

bool esmtp_parse_mail_params(const char *text, unsigned ext,
    struct esmtp_mail_params *out, int *code, const char **enhanced,
    const char **why)
{
	struct param pa;
	unsigned seen = 0;
	enum param_scan r;

	memset(out, 0, sizeof(*out));
	out->size = -1;
	out->body = QUEUE_BODY_7BIT;
	out->ret = QUEUE_RET_DEFAULT;
	while ((r = next_param(&text, &pa)) == PARAM_OK) {
		bool ok = mail_param(&pa, ext, out, &seen, code, enhanced, why);
		free(pa.value);
		if (!ok) {
			esmtp_mail_params_free(out);
			return false;
		}
	}
	if (r == PARAM_BAD) {
		esmtp_mail_params_free(out);
		return BAD_SYNTAX("Bad MAIL parameter syntax");
	}
	return true;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ), RFC 3461 4.1 */
static bool parse_notify(const char *v, unsigned *out)
{
	unsigned bits = 0;
	const char *p = v;
	if (v == NULL || *v == '\0')
		return false;
	while (*p) {
		size_t n = strcspn(p, ",");
		unsigned bit;
		if (n == 5 && strncasecmp(p, "NEVER", 5) == 0)
			bit = QUEUE_NOTIFY_NEVER;
		else if (n == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
			bit = QUEUE_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			bit = QUEUE_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(p, "DELAY", 5) == 0)
			bit = QUEUE_NOTIFY_DELAY;
		else
			return false;
		if (bits & bit)
			return false;
		bits |= bit;
		p += n;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				return false;
		}
	}
	if ((bits & QUEUE_NOTIFY_NEVER) && bits != QUEUE_NOTIFY_NEVER)
		return false;
	*out = bits;
	return true;
}

/*
 * ORCPT = addr-type ";" xtext (RFC 3461 4.2); addr-type is an atom. For
 * the "utf-8" type (RFC 6533 3) raw UTF-8 is allowed besides xtext.
 * Returns "type;decoded" or NULL.
 */
static char *parse_orcpt(const char *v)
{
	const char *semi = v ? strchr(v, ';') : NULL;
	if (semi == NULL || semi == v || strlen(v) > ESMTP_MAX_ORCPT)
		return NULL;
	for (const char *p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return NULL;
	bool utf8_type = (size_t)(semi - v) == 5 &&
	    strncasecmp(v, "utf-8", 5) == 0;
	const char *value = semi + 1;
	if (*value == '\0')
		return NULL;
	char *decoded;
	if (utf8_type && has_non_ascii(value)) {
		/* utf-8-addr-unitext: printable ASCII and UTF-8, no "+"
		 * escapes to undo beyond what xtext would. */
		for (const unsigned char *p = (const unsigned char *)value;
		    *p; p++)
			if (*p < 33 || *p == 127 || *p == '=')
				return NULL;
		decoded = xstrdup(value);
	} else {
		decoded = addr_xtext_decode(value);
		if (decoded == NULL)
			return NULL;
	}
	char *out = xasprintf("%.*s;%s", (int)(semi - v), v, decoded);
	free(decoded);
	return out;
}

bool esmtp_parse_rcpt_params(const char *text, unsigned ext,
    struct esmtp_rcpt_params *out, int *code, const char **enhanced,
    const char **why)
{
	struct param pa;
	bool seen_notify = false, seen_orcpt = false;
	enum param_scan r;

	memset(out, 0, sizeof(*out));
	while ((r = next_param(&text, &pa)) == PARAM_OK) {
		bool ok = true;
		if (!(ext & ESMTP_EXT_DSN)) {
			ok = UNKNOWN("Unsupported RCPT parameter");
		} else if (strcmp(pa.keyword, "NOTIFY") == 0) {
			if (seen_notify)
				ok = BAD_SYNTAX("Duplicate RCPT parameter");
			else if (!parse_notify(pa.value, &out->notify))
				ok = BAD_SYNTAX("Bad NOTIFY syntax");
			seen_notify = true;
		} else if (strcmp(pa.keyword, "ORCPT") == 0) {
			if (seen_orcpt)
				ok = BAD_SYNTAX("Duplicate RCPT parameter");
			else if ((out->orcpt = parse_orcpt(pa.value)) == NULL)
				ok = BAD_SYNTAX("Bad ORCPT syntax");
			seen_orcpt = true;
		} else {
			ok = UNKNOWN("Unsupported RCPT parameter");
		}
		free(pa.value);
		if (!ok) {
			esmtp_rcpt_params_free(out);
			return false;
		}
	}
	if (r == PARAM_BAD) {
		esmtp_rcpt_params_free(out);
		return BAD_SYNTAX("Bad RCPT parameter syntax");
	}
	return true;
}

/* ---- paths, BDAT, body types ---- */

bool esmtp_parse_path_arg(const char *arg, bool rcpt, unsigned addr_flags,
    struct addr *out, const char **params, int *code, const char **enhanced,
    char *text, size_t textsize)
{
	const char *keyword = rcpt ? "TO:" : "FROM:";
	const char *syntax = rcpt ? "Syntax: RCPT TO:<address>" :
	    "Syntax: MAIL FROM:<address>";
	size_t n = strlen(keyword);
	const char *end, *why;

	memset(out, 0, sizeof(*out));
	*code = 501;
	*enhanced = "5.5.4";
	snprintf(text, textsize, "%s", syntax);
	if (strncasecmp(arg, keyword, n) != 0)
		return false;
	arg += n;
	while (*arg == ' ')
		arg++;
	if (*arg == '\0')
		return false;
	if (!addr_parse_path(arg, addr_flags, out, &end, &why)) {
		*enhanced = rcpt ? "5.1.3" : "5.1.7";
		snprintf(text, textsize, "Bad %s address syntax: %s",
		    rcpt ? "recipient" : "sender", why);
		return false;
	}
	if (*end != '\0' && *end != ' ') {
		addr_free(out);
		return false;
	}
	*params = end;
	return true;
}

bool esmtp_parse_bdat(const char *arg, unsigned long long *size, bool *last)
{
	unsigned long long v = 0;
	const char *p = arg;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (0x7fffffffffffffffULL - (unsigned)(*p - '0')) / 10)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	*last = false;
	if (*p == ' ') {
		if (strcasecmp(p + 1, "LAST") != 0)
			return false;
		*last = true;
	} else if (*p != '\0') {
		return false;
	}
	*size = v;
	return true;
}

static const char *const esmtp_body_names[] = {
	[QUEUE_BODY_7BIT] = "7BIT",
	[QUEUE_BODY_8BITMIME] = "8BITMIME",
	[QUEUE_BODY_BINARYMIME] = "BINARYMIME",
};

const char *esmtp_body_name(enum queue_body body)
{
	if ((size_t)body >= sizeof(esmtp_body_names) /
	    sizeof(esmtp_body_names[0]))
		return "7BIT";
	return esmtp_body_names[body];
}

bool esmtp_body_from_name(const char *name, enum queue_body *body)
{
	for (size_t i = 0; i < sizeof(esmtp_body_names) /
	    sizeof(esmtp_body_names[0]); i++) {
		if (strcasecmp(name, esmtp_body_names[i]) == 0) {
			*body = (enum queue_body)i;
			return true;
		}
	}
	return false;
}

/* ---- replies ---- */

const char *esmtp_reply_format(char *buf, size_t size, const char *fmt,
    va_list ap)
{
	if (strchr(fmt, '%') == NULL)
		return fmt;
	if (strcmp(fmt, "%s") == 0)
		return va_arg(ap, const char *);
	vsnprintf(buf, size, fmt, ap);
	return buf;
}

void esmtp_reply_text(struct bio *b, int code, const char *enhanced,
    bool last, const char *text)
{
	char line[ESMTP_MAX_REPLY_TEXT + 32];
	size_t n = 0;

	if (code < 200 || code > 599)
		code = 451;
	line[n++] = (char)('0' + code / 100);
	line[n++] = (char)('0' + code / 10 % 10);
	line[n++] = (char)('0' + code % 10);
	line[n++] = last ? ' ' : '-';
	if (enhanced != NULL && *enhanced != '\0') {
		/* Ours ("2.1.5"); bounded all the same. */
		size_t len = strnlen(enhanced, 16);
		memcpy(line + n, enhanced, len);
		n += len;
		line[n++] = ' ';
	}
	/* Only printable ASCII leaves: no CR/LF injection, no raw bytes. */
	for (size_t i = 0; text[i] != '\0' && i < ESMTP_MAX_REPLY_TEXT; i++) {
		unsigned char c = (unsigned char)text[i];
		line[n++] = c < 0x20 || c > 0x7e ? '?' : (char)c;
	}
	line[n++] = '\r';
	line[n++] = '\n';
	bio_write(b, line, n);
}

void esmtp_reply(struct bio *b, int code, const char *enhanced, bool last,
    const char *fmt, ...)
{
	char buf[ESMTP_MAX_REPLY_TEXT + 1];
	va_list ap;

	va_start(ap, fmt);
	const char *text = esmtp_reply_format(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	esmtp_reply_text(b, code, enhanced, last, text);
}
