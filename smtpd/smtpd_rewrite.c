/*
 * smtpd_rewrite.c - the canonical maps and masquerading (mail/rewrite.c)
 * for the mail of trusted clients only: inside mynetworks, or
 * authenticated with AUTH (the satellite role: the hosts and users of a
 * site submit through this one). A stranger's mail, relayed or not,
 * keeps its envelope and header fields: rewriting them would change
 * what another site said about itself.
 *
 * The envelope is rewritten as the queue file's envelope is made (the
 * transaction keeps what the client sent, for the logs and replies).
 * The header block is held as it arrives (smtpd_data.c hands each line
 * here until the empty line), rewritten, and only then stored.
 *
 * Trusts: the config and its tables; the header text is the client's and
 * only mail/rewrite.c's parser looks into it.
 */
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "rewrite.h"
#include "smtpd.h"

static struct rewrite *canonical;

void smtpd_rewrite_init(void)
{
	canonical = rewrite_open_configured(REWRITE_CANONICAL);
}

bool smtpd_rewrite_applies(const struct smtpd_session *s)
{
	return canonical != NULL && (s->client_trusted || s->auth_user);
}

bool smtpd_rewrite_envelope(struct smtpd_session *s,
    struct queue_envelope *env)
{
	bool failed = false;

	if (!smtpd_rewrite_applies(s))
		return true;
	char *a = rewrite_address(canonical, REWRITE_SENDER, true,
	    env->sender, &failed);
	if (a != NULL) {
		free(env->sender);
		env->sender = a;
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		a = rewrite_address(canonical, REWRITE_RECIPIENT, true,
		    env->rcpts[i].address, &failed);
		if (a != NULL) {
			free(env->rcpts[i].address);
			env->rcpts[i].address = a;
		}
	}
	if (failed)
		log_warning("NOQUEUE: canonical maps: a table cannot be read");
	return !failed;
}

void smtpd_rewrite_hold_start(struct smtpd_session *s, struct smtpd_txn *t)
{
	if (!smtpd_rewrite_applies(s))
		return;
	t->held_headers = xcalloc(1, sizeof(*t->held_headers));
	str_init(t->held_headers, STR_NO_MAX);
}

/* Rewrite the held block and store it; the hold ends. */
void smtpd_rewrite_hold_end(struct smtpd_txn *t)
{
	struct str *h = t->held_headers;
	bool failed = false;
	size_t n = 0;

	if (h == NULL)
		return;
	t->held_headers = NULL;
	char *block = rewrite_header_block(canonical, h->data, h->len, &n,
	    &failed);
	if (failed) {
		log_warning("%s: canonical maps: a table cannot be read",
		    t->queue_id);
		t->write_failed = true;
	}
	if (block != NULL)
		smtpd_store_content(t, block, n);
	else
		smtpd_store_content(t, h->data, h->len);
	free(block);
	str_free(h);
	free(h);
}

bool smtpd_rewrite_hold(struct smtpd_txn *t, const char *p, size_t n,
    bool line_end)
{
	struct str *h = t->held_headers;
	if (h == NULL)
		return false;
	bool folded = n > 0 && (p[0] == ' ' || p[0] == '\t');
	bool field = n > 0 && memchr(p, ':', n) != NULL;
	/* The empty line, or a line that is no header field (the body
	 * began without one), ends the block. */
	if (!line_end || n == 0 || (!folded && !field)) {
		smtpd_rewrite_hold_end(t);
		return false;
	}
	if (!str_append(h, p, n) || !str_append(h, "\r\n", 2))
		t->write_failed = true;
	return true;
}
