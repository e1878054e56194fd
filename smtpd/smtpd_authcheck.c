/*
 * smtpd_authcheck.c - smtpd's mail authentication checks on inbound mail
 * (issue 15): SPF at MAIL of the MAIL FROM and the HELO identities (RFC
 * 7208 2.3, 2.4; the HELO one once a session), DKIM verification of every
 * signature (RFC 6376, 8463) and DMARC (RFC 7489) at the end of the
 * message, and one Authentication-Results field (RFC 8601) with
 * authserv_id prepended to the message, below our Received field, as
 * Postfix with OpenDKIM and OpenDMARC writes them. Fields arriving with
 * our authserv-id are forgeries (RFC 8601 5) and are deleted, with a log
 * line, on the path with milters as on the one without.
 *
 * Who is checked: clients outside mynetworks that did not authenticate,
 * over TCP (the MX role). Each transaction's results are computed once
 * and kept in it: SPF at MAIL, DKIM and DMARC at the end of the message,
 * never a lookup per recipient. DNS goes through mail/dns.c
 * (dns_servers), as the DNSBL checks do from this confined worker.
 *
 * The message is spooled into an anonymous file of the worker while it
 * arrives (the queue file the door made is written only at the end, when
 * the results are known); with milters the text goes from that spool into
 * the filters' own at the end, less the forged fields, and our fields go
 * in front of what they see.
 *
 * Trust: the sender, HELO, header fields and DNS records are strangers';
 * they reach replies and the log only as parsed domains and escaped text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "authres.h"
#include "cfg.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "dns.h"
#include "idna.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "spf.h"

/* One transaction's checks and their results. */
struct smtpd_authcheck {
	/* SPF, at MAIL: the MAIL FROM identity (DMARC's, RFC 7489 4.1) */
	bool spf_done;
	enum spf_result spf;
	bool spf_helo;			/* the HELO identity (null sender) */
	char spf_domain[256];		/* checked domain (A-labels) */
	char spf_sender[600];		/* smtp.mailfrom / smtp.helo value */
	char spf_why[300];
	/* ... and the HELO identity beside it (a copy of the session's) */
	bool helo_done;
	enum spf_result helo;
	char helo_name[256];		/* smtp.helo value, as given */
	char helo_why[300];
	/* the message, spooled */
	int door_fd;			/* the queue file, -1 with milters */
	int spool_fd;
	struct str wbuf;
	bool spooling, write_failed;
	unsigned long long spooled;
	/* DKIM and DMARC, at the end */
	bool content_done;
	struct dkim_result dkim[DKIM_MAX_SIGNATURES];
	size_t ndkim;
	bool have_from;
	char from_domain[256];
	bool dmarc_done;
	struct dmarc_verdict dmarc;
	struct str header;		/* our Authentication-Results */
};

static bool spf_on, dkim_on;

void smtpd_authcheck_init(void)
{
	char err[512];

	spf_on = strcmp(cfg.smtpd_spf, "no") != 0;
	dkim_on = cfg.smtpd_dkim_verify;
	if (!spf_on && !dkim_on)
		return;
	/* Opened before the worker is confined, read at its first DMARC
	 * check (mail/dmarc.h). A missing list is not fatal: every
	 * top-level label is then a suffix. */
	if (!dmarc_psl_defer(cfg.public_suffix_list, err, sizeof(err)))
		log_warning("public_suffix_list: %s: DMARC takes the last two "
		    "labels of a domain as its organizational domain", err);
	atexit(dmarc_psl_free);
}

/* ---- SPF, at MAIL ---- */

/* Is name a domain SPF can look up (not an address literal, a dot)? */
static bool lookupable(const char *name)
{
	return name != NULL && *name != '\0' && *name != '[' &&
	    strchr(name, '.') != NULL;
}

/*
 * The session's SPF result for its HELO identity (RFC 7208 2.3), looked
 * up at the first checked MAIL and kept for the next ones, keyed by the
 * name: a HELO or EHLO with another name is another identity, checked
 * anew; the same name again (after STARTTLS, say) is the same identity
 * from the same address, and keeps its result.
 */
struct smtpd_authcheck_helo {
	char given[256];		/* the HELO name it is for (the key) */
	enum spf_result result;
	char domain[256];		/* checked domain (A-labels), or "" */
	char why[300];
};

void smtpd_authcheck_session_end(struct smtpd_session *s)
{
	free(s->auth_helo);
	s->auth_helo = NULL;
}

/*
 * Can the HELO name be checked? RFC 7208 2.3: only a fully qualified
 * domain name; an address literal, a bare address or a name of one
 * label is "none" without a lookup. A top-level label of digits only is
 * no domain (RFC 1123 2.1), so "192.0.2.1" and the like are not looked up.
 */
static bool helo_checkable(const char *name)
{
	if (!lookupable(name))
		return false;
	size_t len = strlen(name);
	if (name[len - 1] == '.')
		len--;
	const char *last = memrchr(name, '.', len);
	if (last == NULL || last + 1 == name + len)
		return false;
	return strspn(last + 1, "0123456789") < (size_t)(name + len - last - 1);
}

static const struct smtpd_authcheck_helo *check_helo(struct smtpd_session *s)
{
	const char *given = s->helo ? s->helo : "";
	struct smtpd_authcheck_helo *h = s->auth_helo;

	if (h != NULL && strcmp(h->given, given) == 0)
		return h;	/* this HELO's, checked already */
	if (h == NULL)
		h = s->auth_helo = xcalloc(1, sizeof(*h));
	memset(h, 0, sizeof(*h));
	strlcpy(h->given, given, sizeof(h->given));
	h->result = SPF_NONE;
	char *ascii = *given && *given != '[' ? idna_domain_to_ascii(given) :
	    NULL;
	if (ascii == NULL || !helo_checkable(ascii) ||
	    strlen(ascii) >= sizeof(h->domain) ||
	    strlen(given) >= sizeof(h->given)) {
		snprintf(h->why, sizeof(h->why), "HELO is not a fully "
		    "qualified domain name");
		free(ascii);
		return h;
	}
	strlcpy(h->domain, ascii, sizeof(h->domain));
	free(ascii);
	char sender[300];
	snprintf(sender, sizeof(sender), "postmaster@%s", h->domain);
	struct spf_check c = {
		.client = (const struct sockaddr *)&s->conn->peer,
		.sender = sender,
		.helo = given,
	};
	h->result = spf_check_host(&c, h->domain);
	strlcpy(h->why, c.why, sizeof(h->why));
	return h;
}

static const char *sender_domain(const char *sender)
{
	const char *at = strrchr(sender, '@');
	return at ? at + 1 : NULL;
}

static void check_spf(struct smtpd_session *s, struct smtpd_authcheck *a,
    const char *sender)
{
	const char *helo = s->helo ? s->helo : "";
	const char *domain;

	const struct smtpd_authcheck_helo *h = check_helo(s);
	a->helo_done = true;
	a->helo = h->result;
	strlcpy(a->helo_name, helo, sizeof(a->helo_name));
	strlcpy(a->helo_why, h->why, sizeof(a->helo_why));

	a->spf_done = true;
	a->spf = SPF_NONE;
	a->spf_helo = *sender == '\0';
	if (a->spf_helo) {
		/* RFC 7208 2.4: the null sender is postmaster@HELO, the
		 * same check as the HELO identity's. */
		strlcpy(a->spf_sender, helo, sizeof(a->spf_sender));
		strlcpy(a->spf_domain, h->domain, sizeof(a->spf_domain));
		strlcpy(a->spf_why, h->why, sizeof(a->spf_why));
		a->spf = h->result;
		return;
	}
	domain = sender_domain(sender);
	strlcpy(a->spf_sender, sender, sizeof(a->spf_sender));
	char *ascii = domain ? idna_domain_to_ascii(domain) : NULL;
	if (ascii == NULL || !lookupable(ascii) ||
	    strlen(ascii) >= sizeof(a->spf_domain)) {
		snprintf(a->spf_why, sizeof(a->spf_why), "no domain to check");
		free(ascii);
		return;
	}
	strlcpy(a->spf_domain, ascii, sizeof(a->spf_domain));
	free(ascii);
	char macro_sender[600];
	snprintf(macro_sender, sizeof(macro_sender), "%.*s@%s",
	    (int)(sender_domain(sender) - 1 - sender), sender, a->spf_domain);
	struct spf_check c = {
		.client = (const struct sockaddr *)&s->conn->peer,
		.sender = macro_sender,
		.helo = helo,
	};
	a->spf = spf_check_host(&c, a->spf_domain);
	strlcpy(a->spf_why, c.why, sizeof(a->spf_why));
}

int smtpd_authcheck_mail(struct smtpd_session *s, const char *sender,
    struct smtpd_authcheck **out, const char **enhanced, char *text,
    size_t size)
{
	*out = NULL;
	if ((!spf_on && !dkim_on) || s->auth_user != NULL ||
	    s->client_trusted || s->conn->peer_is_unix)
		return 250;
	struct smtpd_authcheck *a = xcalloc(1, sizeof(*a));
	a->door_fd = a->spool_fd = -1;
	str_init(&a->wbuf, STR_NO_MAX);
	str_init(&a->header, STR_NO_MAX);
	if (spf_on)
		check_spf(s, a, sender);
	if (strcmp(cfg.smtpd_spf, "enforce") == 0) {
		/* RFC 7372 3.2: 5.7.23 for fail, 4.7.24 for temperror. */
		if (a->spf == SPF_FAIL) {
			*enhanced = "5.7.23";
			snprintf(text, size, "SPF: %s does not designate %s as "
			    "a permitted sender", a->spf_domain,
			    s->client_addr);
			smtpd_authcheck_free(a);
			return 550;
		}
		if (a->spf == SPF_TEMPERROR) {
			*enhanced = "4.7.24";
			snprintf(text, size, "SPF: temporary error looking "
			    "up %s", a->spf_domain);
			smtpd_authcheck_free(a);
			return 451;
		}
		/* A HELO fail refuses the mail as a MAIL FROM one does
		 * (policyd-spf's default); its temperror does not defer:
		 * the MAIL FROM identity is the one mail depends on. */
		if (a->helo_done && !a->spf_helo && a->helo == SPF_FAIL) {
			*enhanced = "5.7.23";
			char name[256];
			log_escape(name, sizeof(name), a->helo_name,
			    strlen(a->helo_name));
			snprintf(text, size, "SPF: HELO %s does not designate "
			    "%s as a permitted sender", name, s->client_addr);
			smtpd_authcheck_free(a);
			return 550;
		}
	}
	*out = a;
	return 250;
}

static void spool_close(struct smtpd_authcheck *a)
{
	if (a->spool_fd >= 0)
		close(a->spool_fd);
	if (a->door_fd >= 0)
		close(a->door_fd);
	a->spool_fd = a->door_fd = -1;
	a->spooling = false;
	a->spooled = 0;
	a->write_failed = false;
	str_clear(&a->wbuf);
}

void smtpd_authcheck_free(struct smtpd_authcheck *a)
{
	if (a == NULL)
		return;
	spool_close(a);
	str_free(&a->wbuf);
	str_free(&a->header);
	free(a);
}

/* ---- the message ---- */

bool smtpd_authcheck_spool(struct smtpd_authcheck *a, int door_fd)
{
	spool_close(a);
	a->spool_fd = memfd_create("postern-auth-spool", MFD_CLOEXEC);
	if (a->spool_fd < 0) {
		log_warning("cannot make the spool of the DKIM/DMARC checks: "
		    "%m");
		return false;
	}
	a->door_fd = door_fd;
	a->spooling = true;
	a->content_done = false;
	return true;
}

bool smtpd_authcheck_spooling(const struct smtpd_authcheck *a)
{
	return a != NULL && a->spooling;
}

void smtpd_authcheck_spool_end(struct smtpd_authcheck *a)
{
	if (a != NULL)
		spool_close(a);
}

static bool spool_flush(struct smtpd_authcheck *a)
{
	const char *p = a->wbuf.data;
	size_t n = a->wbuf.len;
	while (n > 0 && !a->write_failed) {
		ssize_t w = write(a->spool_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			a->write_failed = true;
			break;
		}
		p += w;
		n -= (size_t)w;
		a->spooled += (size_t)w;
	}
	str_clear(&a->wbuf);
	return !a->write_failed;
}

/* Buffered: the core hands over a line at a time. */
bool smtpd_authcheck_write(struct smtpd_authcheck *a, const void *p,
    size_t n, bool line_end)
{
	if (a->write_failed || !str_append(&a->wbuf, p, n) ||
	    (line_end && !str_append(&a->wbuf, "\r\n", 2))) {
		a->write_failed = true;
		return false;
	}
	return a->wbuf.len < 65536 || spool_flush(a);
}

/* ---- DKIM and DMARC, at the end ---- */

static enum dns_result dkim_key_lookup(void *ctx, const char *name,
    char *txt, size_t txtsize, char *err, size_t errsize)
{
	(void)ctx;
	return dns_lookup_txt(name, txt, txtsize, err, errsize);
}

/* Where the header section ends (the empty line), or len. */
static size_t header_end(const char *m, size_t len)
{
	if (len >= 2 && m[0] == '\r' && m[1] == '\n')
		return 0;
	const char *e = memmem(m, len, "\r\n\r\n", 4);
	return e ? (size_t)(e - m) + 2 : len;
}

static void check_content(struct smtpd_authcheck *a, const char *m,
    size_t len)
{
	a->content_done = true;
	size_t hlen = header_end(m, len);
	a->have_from = dmarc_from_domain(m, hlen, a->from_domain,
	    sizeof(a->from_domain));
	if (a->have_from && idna_has_8bit(a->from_domain)) {
		/* A UTF-8 From: domain (RFC 6532) is looked up, aligned and
		 * written in A-labels. */
		char *ascii = idna_domain_to_ascii(a->from_domain);
		a->have_from = ascii != NULL &&
		    strlen(ascii) < sizeof(a->from_domain);
		if (a->have_from)
			strlcpy(a->from_domain, ascii, sizeof(a->from_domain));
		free(ascii);
	}
	if (dkim_on) {
		size_t max = (size_t)cfg.smtpd_dkim_max_signatures;
		if (max > DKIM_MAX_SIGNATURES)
			max = DKIM_MAX_SIGNATURES;
		a->ndkim = dkim_verify_message(m, len, time(NULL),
		    dkim_key_lookup, NULL, a->dkim, max);
	}
	/* DMARC needs an SPF and a DKIM result to be meaningful. */
	if (!spf_on || !dkim_on)
		return;
	const char *pass[DKIM_MAX_SIGNATURES];
	size_t npass = 0;
	for (size_t i = 0; i < a->ndkim; i++)
		if (a->dkim[i].verdict == DKIM_PASS)
			pass[npass++] = a->dkim[i].domain;
	struct dmarc_input in = {
		.from_domain = a->have_from ? a->from_domain : NULL,
		.spf_pass = a->spf == SPF_PASS,
		.spf_domain = a->spf_domain,
		.dkim_pass_domains = pass,
		.ndkim = npass,
		.pct_roll = (int)(arc4random_uniform(100)),
	};
	dmarc_evaluate(&in, dmarc_lookup_dns, NULL, &a->dmarc);
	a->dmarc_done = true;
}

/* Our Authentication-Results field (RFC 8601 2.2, 2.7). */
static void build_header(struct smtpd_session *s, struct smtpd_authcheck *a)
{
	struct str *h = &a->header;
	size_t n = 0;

	str_clear(h);
	authres_start(h, cfg.authserv_id);
	if (a->spf_done) {
		authres_method(h, "spf", spf_result_name(a->spf), a->spf_why);
		if (a->spf_helo)
			authres_prop(h, "smtp.helo", a->spf_sender);
		else
			authres_prop(h, "smtp.mailfrom", a->spf_sender);
		n++;
	}
	/* The HELO identity as a result of its own (RFC 8601 2.7.2 allows
	 * one per identity); for the null sender the one above is it. */
	if (a->helo_done && !a->spf_helo) {
		authres_method(h, "spf", spf_result_name(a->helo),
		    a->helo_why);
		authres_prop(h, "smtp.helo", a->helo_name);
		n++;
	}
	if (dkim_on && a->ndkim == 0) {
		authres_method(h, "dkim", "none", "no signature");
		n++;
	}
	for (size_t i = 0; i < a->ndkim; i++) {
		const struct dkim_result *r = &a->dkim[i];
		authres_method(h, "dkim", dkim_verdict_name(r->verdict),
		    r->why);
		if (r->domain[0])
			authres_prop(h, "header.d", r->domain);
		if (r->identity[0])
			authres_prop(h, "header.i", r->identity);
		if (r->selector[0])
			authres_prop(h, "header.s", r->selector);
		if (r->alg[0])
			authres_prop(h, "header.a", r->alg);
		if (r->b_prefix[0])
			authres_prop(h, "header.b", r->b_prefix);
		n++;
	}
	if (a->dmarc_done) {
		const struct dmarc_verdict *d = &a->dmarc;
		char comment[128] = "";
		if (d->have_record)
			snprintf(comment, sizeof(comment), "p=%s sp=%s pct=%d "
			    "dis=%s", dmarc_policy_name(d->rec.p),
			    dmarc_policy_name(d->rec.sp), d->rec.pct,
			    dmarc_policy_name(d->disposition));
		authres_method(h, "dmarc", dmarc_result_name(d->result),
		    comment);
		if (a->have_from)
			authres_prop(h, "header.from", a->from_domain);
		if (d->have_record)
			authres_prop(h, "policy.dmarc",
			    dmarc_policy_name(d->disposition));
		n++;
	}
	authres_end(h, n);
	(void)s;
}

const char *smtpd_authcheck_header(const struct smtpd_authcheck *a)
{
	return a != NULL && a->header.len > 0 ? str_cstr(&a->header) : "";
}

/* Where the text received goes next: the queue file or the filters. */
typedef bool (*emit_fn)(void *ctx, const void *p, size_t n);

static bool emit_to_queue(void *ctx, const void *p, size_t n)
{
	return queue_writer_write(ctx, p, n);
}

static bool emit_to_milters(void *ctx, const void *p, size_t n)
{
	return smtpd_milter_msg_write(ctx, p, n);
}

/*
 * The message as received, less the header fields that claim our
 * authserv-id: from outside they are forgeries (RFC 8601 5). Every path
 * that stores a received message goes through here, the queue file
 * without milters and the filters' spool with them.
 *
 * With smtpd_milters the fields are removed before the filters see the
 * message, not from what they hand back: a filter that trusts our
 * authserv-id (OpenDMARC's TrustedAuthservIDs reads our spf= result)
 * must never read a forgery, the header positions a filter edits by
 * (SMFIR_CHGHEADER's index) are those of the file we write, and a field
 * a filter adds with our id on purpose (OpenDMARC, rspamd) is its
 * verdict and stays. The end result is that of Postfix with OpenDMARC,
 * where the filter deletes the forged fields and adds its own.
 */
static bool emit_without_forgeries(struct smtpd_session *s, const char *m,
    size_t len, emit_fn put, void *ctx)
{
	struct smtpd_txn *t = s->txn;
	size_t hlen = header_end(m, len), pos = 0, removed = 0;
	bool ok = true;

	while (ok && pos < hlen) {
		/* One field: up to a CRLF not followed by WSP. */
		size_t end = pos;
		for (;;) {
			const char *crlf = memmem(m + end, hlen - end, "\r\n", 2);
			end = crlf ? (size_t)(crlf - m) + 2 : hlen;
			if (end >= hlen || (m[end] != ' ' && m[end] != '\t'))
				break;
		}
		static const char name[] = "authentication-results:";
		size_t nl = sizeof(name) - 1;
		if (end - pos > nl && strncasecmp(m + pos, name, nl) == 0 &&
		    authres_claims_id(m + pos + nl, end - pos - nl,
		    cfg.authserv_id))
			removed++;
		else
			ok = put(ctx, m + pos, end - pos);
		pos = end;
	}
	if (ok && len > hlen)
		ok = put(ctx, m + hlen, len - hlen);
	if (removed > 0)
		log_info("%s: removed %zu Authentication-Results field%s "
		    "claiming authserv-id %s from %s", t->queue_id, removed,
		    removed == 1 ? "" : "s", cfg.authserv_id, s->client_log);
	return ok;
}

/*
 * Write the queue file (no milters): our Received and
 * Authentication-Results fields, then the message.
 */
static bool write_queue_file(struct smtpd_session *s,
    struct smtpd_authcheck *a, const char *m, size_t len)
{
	struct smtpd_txn *t = s->txn;
	char err[512];

	t->writer = queue_writer_attach(a->door_fd, t->queue_id, &t->env, err,
	    sizeof(err));
	a->door_fd = -1;	/* the writer owns it now */
	if (t->writer == NULL) {
		log_warning("%s: cannot write queue file: %s", t->queue_id,
		    err);
		return false;
	}
	struct str received;
	str_init(&received, STR_NO_MAX);
	smtpd_received_header(s, &received);
	bool ok = queue_writer_write(t->writer, received.data, received.len) &&
	    queue_writer_write(t->writer, a->header.data, a->header.len) &&
	    emit_without_forgeries(s, m, len, emit_to_queue, t->writer);
	str_free(&received);
	if (!ok)
		log_warning("%s: queue file write error: %m", t->queue_id);
	return ok;
}

enum smtpd_authcheck_action smtpd_authcheck_eom(struct smtpd_session *s,
    char *why, size_t whysize)
{
	struct smtpd_txn *t = s->txn;
	struct smtpd_authcheck *a = t->auth;
	const char *m = "";
	void *map = NULL;

	*why = '\0';
	if (!a->spooling)
		return SMTPD_AUTHCHECK_ACCEPT;
	if (!spool_flush(a)) {
		log_warning("%s: cannot spool the message for the DKIM and "
		    "DMARC checks: %m", t->queue_id);
		return SMTPD_AUTHCHECK_FAILED;
	}
	if (a->spooled > 0) {
		map = mmap(NULL, a->spooled, PROT_READ, MAP_PRIVATE,
		    a->spool_fd, 0);
		if (map == MAP_FAILED) {
			log_warning("%s: cannot map the spool of the DKIM and "
			    "DMARC checks: %m", t->queue_id);
			return SMTPD_AUTHCHECK_FAILED;
		}
		m = map;
	}
	size_t len = a->spooled;
	check_content(a, m, len);
	build_header(s, a);

	enum smtpd_authcheck_action act = SMTPD_AUTHCHECK_ACCEPT;
	const struct dmarc_verdict *d = &a->dmarc;
	bool enforce_reject = strcmp(cfg.dmarc_enforce, "reject") == 0;
	bool enforce = enforce_reject ||
	    strcmp(cfg.dmarc_enforce, "quarantine") == 0;
	if (a->dmarc_done && d->result == DMARC_FAIL && enforce &&
	    d->disposition != DMARC_POLICY_NONE) {
		if (d->disposition == DMARC_POLICY_REJECT && enforce_reject) {
			/* RFC 7489 6.6.4, 10.3; RFC 7372 has no DMARC code. */
			act = SMTPD_AUTHCHECK_REJECT;
			snprintf(why, whysize, "Error: message rejected by the "
			    "DMARC policy of %s (p=%s)", a->from_domain,
			    dmarc_policy_name(d->policy));
		} else {
			act = SMTPD_AUTHCHECK_HOLD;
			snprintf(why, whysize, "DMARC policy of %s is %s",
			    a->from_domain, dmarc_policy_name(d->policy));
		}
	}
	if (act != SMTPD_AUTHCHECK_REJECT && a->door_fd >= 0 &&
	    !write_queue_file(s, a, m, len))
		act = SMTPD_AUTHCHECK_FAILED;
	/* With milters the filters' spool gets the text only now, once
	 * the forgeries are known; our fields go with the Received field
	 * (smtpd_data.c). */
	if (act != SMTPD_AUTHCHECK_REJECT && a->door_fd < 0 &&
	    t->milter_msg != NULL && !emit_without_forgeries(s, m, len,
	    emit_to_milters, t->milter_msg)) {
		log_warning("%s: cannot spool the message for the milters: %m",
		    t->queue_id);
		act = SMTPD_AUTHCHECK_FAILED;
	}
	if (map != NULL)
		munmap(map, a->spooled);
	/* The spool is done with; the door's file is the writer's now. */
	close(a->spool_fd);
	a->spool_fd = -1;
	a->spooling = false;
	return act;
}

/* "ID: spf=pass, dkim=pass (example.org), dmarc=pass (example.org)" */
void smtpd_authcheck_log(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	struct smtpd_authcheck *a = t->auth;
	struct str line;

	if (a == NULL || (!a->spf_done && !a->content_done))
		return;
	str_init(&line, STR_NO_MAX);
	if (a->spf_done)
		str_appendf(&line, "spf=%s (%s %s)", spf_result_name(a->spf),
		    a->spf_helo ? "helo" : "mailfrom", a->spf_domain[0] ?
		    a->spf_domain : "-");
	if (a->helo_done && !a->spf_helo) {
		char helo[300];
		log_escape(helo, sizeof(helo), a->helo_name,
		    strlen(a->helo_name));
		str_appendf(&line, ", spf_helo=%s (%s)",
		    spf_result_name(a->helo), helo[0] ? helo : "-");
	}
	if (a->content_done && dkim_on) {
		if (a->ndkim == 0)
			str_appendf(&line, "%sdkim=none", line.len ? ", " : "");
		for (size_t i = 0; i < a->ndkim; i++)
			str_appendf(&line, "%sdkim=%s (%s)", line.len ? ", " :
			    "", dkim_verdict_name(a->dkim[i].verdict),
			    a->dkim[i].domain[0] ? a->dkim[i].domain : "-");
	}
	if (a->dmarc_done)
		str_appendf(&line, "%sdmarc=%s (%s p=%s dis=%s)", line.len ?
		    ", " : "", dmarc_result_name(a->dmarc.result),
		    a->have_from ? a->from_domain : "-",
		    dmarc_policy_name(a->dmarc.policy),
		    dmarc_policy_name(a->dmarc.disposition));
	char esc[1200];
	log_escape(esc, sizeof(esc), line.data, line.len);
	log_info("%s: %s", t->queue_id, esc);
	str_free(&line);
}
