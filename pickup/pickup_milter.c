/*
 * pickup_milter.c - non_smtpd_milters: local mail (sendmail, maildrop/)
 * goes through the same milter client as smtpd's mail
 * (mail/milter_client.c), stage by stage, as Postfix's cleanup does for
 * mail that did not come by SMTP: connect as "localhost" [127.0.0.1]
 * (family 4, port 0), no HELO, MAIL with the sender, RCPT for each
 * recipient, DATA, then the headers, the body and the end of message.
 * One session per message: pickup has no SMTP session to reuse.
 *
 * Trust: as the client's. The macros are the few a local submission
 * has: the queue ID, the sender, and the submitting user's uid as
 * {auth_authen}'s stand-in is not sent (Postfix sends none either).
 */
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "milter_client.h"
#include "pickup.h"

/* What the macros of one local message are made of. */
struct pickup_macro_ctx {
	const char *id;
	const char *sender;
};

static const char *local_macro(void *ctx, const char *name, const char *rcpt,
    char *buf, size_t size)
{
	const struct pickup_macro_ctx *c = ctx;
	(void)rcpt;
	(void)buf;
	(void)size;

	if (strcmp(name, "i") == 0)
		return c->id;
	if (strcmp(name, "_") == 0)
		return "localhost [127.0.0.1]";
	if (strcmp(name, "client_addr") == 0)
		return "127.0.0.1";
	if (strcmp(name, "client_name") == 0 ||
	    strcmp(name, "client_ptr") == 0)
		return "localhost";
	if (strcmp(name, "mail_addr") == 0)
		return c->sender;
	if (strcmp(name, "mail_host") == 0)
		return addr_domain_of(c->sender);
	if (strcmp(name, "mail_mailer") == 0 ||
	    strcmp(name, "rcpt_mailer") == 0)
		return "local";
	return NULL;
}

bool pickup_milter_enabled(void)
{
	return cfg.non_smtpd_milters.count > 0;
}

void pickup_milter_init(void)
{
	milter_client_init(&cfg.non_smtpd_milters, "non_smtpd_milters");
}

/* The verdict stops here: true when it lets the message go on. */
static bool stage_passed(const struct milter_verdict *v)
{
	return v->action == MILTER_VERDICT_CONTINUE;
}

bool pickup_milter_run(struct queue_envelope *env, const char *id,
    const char *uid, struct milter_msg *msg, struct milter_verdict *v,
    const char **hold_reason, const char **stage)
{
	struct pickup_macro_ctx ctx = { id, env->sender };
	struct milter_client *c = milter_client_new(&cfg.non_smtpd_milters,
	    local_macro, &ctx);
	bool ok = false;

	(void)uid;
	*hold_reason = NULL;
	memset(v, 0, sizeof(*v));
	milter_client_connect(c, "localhost", '4', 0, "127.0.0.1");
	*stage = "MAIL";
	milter_client_mail(c, env->sender, NULL, v);
	for (size_t i = 0; stage_passed(v) && i < env->nrcpts; i++) {
		*stage = "RCPT";
		milter_client_rcpt(c, env->rcpts[i].address, NULL, v);
	}
	if (stage_passed(v)) {
		*stage = "DATA";
		milter_client_data(c, v);
	}
	if (stage_passed(v)) {
		*stage = "END-OF-MESSAGE";
		ok = milter_client_eom(c, msg, env, id, NULL, v, hold_reason);
	} else {
		milter_client_abort(c);
	}
	milter_client_quit(c);
	return ok;
}
