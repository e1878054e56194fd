/*
 * job.c - the delivery job between qmgr and its delivery agents (see
 * job.h). The attributes, in the order qmgr writes them:
 *
 *   transport, nexthop, queue_id, queue_file, content_offset,
 *   content_length, sender, body, smtputf8, [requiretls], [envid],
 *   [auth], [ret],
 *   arrival, job_time, then per recipient
 *   rcpt=NUMBER NOTIFY ORCPT ADDRESS   (NOTIFY "-" or letters of NSFD,
 *                                       ORCPT "-" or type;address)
 *   [orig_to=NUMBER ADDRESS]           (for the log line's orig_to=)
 *   [noexpand=NUMBER]                  (local: no alias, no .forward)
 *
 * The address is the last field of rcpt= since a quoted local part may
 * hold a space (RFC 5321 4.1.2). Trusts nothing it decodes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "addr.h"
#include "esmtp.h"
#include "job.h"
#include "log.h"
#include "mem.h"

static void put_time(struct str *out, const char *name, double t)
{
	if (t < 0)
		t = 0;
	long long sec = (long long)t;
	long usec = (long)((t - (double)sec) * 1e6);
	if (usec > 999999)
		usec = 999999;
	ipc_putf(out, name, "%lld.%06ld", sec, usec);
}

static const char *notify_letters(unsigned notify, char buf[8])
{
	size_t o = 0;
	if (notify & QUEUE_NOTIFY_NEVER)
		buf[o++] = 'N';
	if (notify & QUEUE_NOTIFY_SUCCESS)
		buf[o++] = 'S';
	if (notify & QUEUE_NOTIFY_FAILURE)
		buf[o++] = 'F';
	if (notify & QUEUE_NOTIFY_DELAY)
		buf[o++] = 'D';
	if (o == 0)
		buf[o++] = '-';
	buf[o] = '\0';
	return buf;
}

void job_encode(const struct job *job, struct str *out)
{
	char letters[8];

	ipc_put_type(out, "job");
	ipc_put(out, "transport", job->transport);
	ipc_put(out, "nexthop", job->nexthop);
	ipc_put(out, "queue_id", job->queue_id);
	ipc_put(out, "queue_file", job->queue_file);
	ipc_put_ll(out, "content_offset", (long long)job->content_offset);
	ipc_put_ll(out, "content_length", (long long)job->content_length);
	ipc_put(out, "sender", job->sender ? job->sender : "");
	ipc_put(out, "body", esmtp_body_name(job->body));
	ipc_put(out, "smtputf8", job->smtputf8 ? "yes" : "no");
	/* The queue file's Q record, so that the agent need not parse the
	 * envelope again for it. */
	if (job->requiretls)
		ipc_put(out, "requiretls", "yes");
	if (job->envid != NULL)
		ipc_put(out, "envid", job->envid);
	if (job->auth != NULL)
		ipc_put(out, "auth", job->auth);
	if (job->ret != QUEUE_RET_DEFAULT)
		ipc_put(out, "ret", job->ret == QUEUE_RET_FULL ? "FULL" :
		    "HDRS");
	put_time(out, "arrival", job->arrival);
	put_time(out, "job_time", job->job_time);
	for (size_t k = 0; k < job->nrcpts; k++) {
		const struct job_rcpt *r = &job->rcpts[k];
		ipc_putf(out, "rcpt", "%ld %s %s %s", r->number,
		    notify_letters(r->notify, letters),
		    r->orcpt && *r->orcpt ? r->orcpt : "-", r->address);
		if (r->orig_to != NULL)
			ipc_putf(out, "orig_to", "%ld %s", r->number, r->orig_to);
		if (r->noexpand)
			ipc_put_ll(out, "noexpand", r->number);
	}
	ipc_put_end(out);
}

/* ---- decoding ---- */

static double now_seconds(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static bool parse_time(const char *text, double *out)
{
	char *end;
	if (text == NULL)
		return false;
	errno = 0;
	*out = strtod(text, &end);
	return errno == 0 && end != text && *end == '\0' && *out >= 0;
}

static bool parse_notify(const char *text, unsigned *out)
{
	*out = 0;
	if (strcmp(text, "-") == 0)
		return true;
	for (const char *p = text; *p; p++) {
		unsigned bit;
		switch (*p) {
		case 'S': bit = QUEUE_NOTIFY_SUCCESS; break;
		case 'F': bit = QUEUE_NOTIFY_FAILURE; break;
		case 'D': bit = QUEUE_NOTIFY_DELAY; break;
		case 'N': bit = QUEUE_NOTIFY_NEVER; break;
		default: return false;
		}
		if (*out & bit)
			return false;
		*out |= bit;
	}
	return *out != 0;
}

/* One address grammar on both sides: what smtpd accepted (addr.c). */
static bool address_ok(const char *address)
{
	struct addr a;
	const char *why;
	if (!addr_parse_mailbox(address, ADDR_ALLOW_UTF8 |
	    ADDR_ALLOW_POSTMASTER, &a, &why))
		return false;
	addr_free(&a);
	return true;
}

/* A recipient number: digits only, in range. */
static bool parse_number(const char *text, const char **rest, long *out)
{
	char *end;
	if (!isdigit((unsigned char)*text))
		return false;
	errno = 0;
	*out = strtol(text, &end, 10);
	if (errno != 0 || *out < 0)
		return false;
	*rest = end;
	return true;
}

/* "NUMBER NOTIFY ORCPT ADDRESS" */
static bool parse_rcpt(const char *value, struct job_rcpt *r)
{
	const char *p;
	memset(r, 0, sizeof(*r));
	if (!parse_number(value, &p, &r->number) || *p != ' ')
		return false;
	const char *notify = p + 1;
	const char *sp = strchr(notify, ' ');
	if (sp == NULL || sp == notify || (size_t)(sp - notify) > 4)
		return false;
	char letters[8];
	memcpy(letters, notify, (size_t)(sp - notify));
	letters[sp - notify] = '\0';
	if (!parse_notify(letters, &r->notify))
		return false;
	const char *orcpt = sp + 1;
	sp = strchr(orcpt, ' ');
	if (sp == NULL || sp == orcpt || sp[1] == '\0')
		return false;
	if (!address_ok(sp + 1))
		return false;
	r->address = xstrdup(sp + 1);
	if (!(sp - orcpt == 1 && *orcpt == '-'))
		r->orcpt = xstrndup(orcpt, (size_t)(sp - orcpt));
	return true;
}

static struct job_rcpt *rcpt_by_number(struct job *job, long number)
{
	for (size_t k = 0; k < job->nrcpts; k++)
		if (job->rcpts[k].number == number)
			return &job->rcpts[k];
	return NULL;
}

static bool fail(char *err, size_t errsize, const char *why)
{
	snprintf(err, errsize, "%s", why);
	return false;
}

bool job_decode(const struct ipc_msg *m, struct job *job, char *err,
    size_t errsize)
{
	const char *v;
	long long n;

	memset(job, 0, sizeof(*job));
	if (strcmp(m->type, "job") != 0)
		return fail(err, errsize, "unexpected message type");
	v = ipc_get(m, "transport");
	if (v == NULL || *v == '\0' || strlen(v) > 16 ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyz") != strlen(v))
		return fail(err, errsize, "bad transport");
	job->transport = xstrdup(v);
	v = ipc_get(m, "nexthop");
	if (v == NULL || *v == '\0')
		return fail(err, errsize, "no nexthop");
	job->nexthop = xstrdup(v);
	v = ipc_get(m, "queue_id");
	if (v == NULL || *v == '\0' || strlen(v) > 64)
		return fail(err, errsize, "bad queue_id");
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p))
			return fail(err, errsize, "bad queue_id");
	job->queue_id = xstrdup(v);
	/* Only a file of the queue, by a name qmgr made. */
	v = ipc_get(m, "queue_file");
	if (v == NULL || *v == '\0' || *v == '/' || strstr(v, "..") != NULL)
		return fail(err, errsize, "bad queue_file");
	job->queue_file = xstrdup(v);
	if (!ipc_get_ll(m, "content_offset", &n) || n < 0)
		return fail(err, errsize, "bad content_offset");
	job->content_offset = (off_t)n;
	if (!ipc_get_ll(m, "content_length", &n) || n < 0)
		return fail(err, errsize, "bad content_length");
	job->content_length = (off_t)n;
	v = ipc_get(m, "sender");
	job->sender = xstrdup(v ? v : "");
	if (job->sender[0] != '\0' && !address_ok(job->sender))
		return fail(err, errsize, "bad sender");
	v = ipc_get(m, "body");
	job->body = QUEUE_BODY_7BIT;
	if (v != NULL && !esmtp_body_from_name(v, &job->body))
		return fail(err, errsize, "bad body");
	v = ipc_get(m, "smtputf8");
	job->smtputf8 = v != NULL && strcmp(v, "yes") == 0;
	v = ipc_get(m, "requiretls");
	job->requiretls = v != NULL && strcmp(v, "yes") == 0;
	v = ipc_get(m, "envid");
	if (v != NULL)
		job->envid = xstrdup(v);
	/* Goes into "MAIL FROM:<> AUTH=..." as one word. */
	v = ipc_get(m, "auth");
	if (v != NULL && v[0] != '\0' && strcspn(v, " \t\r\n") == strlen(v))
		job->auth = xstrdup(v);
	v = ipc_get(m, "ret");
	job->ret = v == NULL ? QUEUE_RET_DEFAULT : strcmp(v, "FULL") == 0 ?
	    QUEUE_RET_FULL : strcmp(v, "HDRS") == 0 ? QUEUE_RET_HDRS :
	    QUEUE_RET_DEFAULT;
	double now = now_seconds();
	if (!parse_time(ipc_get(m, "arrival"), &job->arrival))
		job->arrival = now;
	if (!parse_time(ipc_get(m, "job_time"), &job->job_time))
		job->job_time = now;

	for (size_t i = 0; i < m->count; i++) {
		if (strcmp(m->attrs[i].name, "rcpt") != 0)
			continue;
		job->rcpts = xreallocarray(job->rcpts, job->nrcpts + 1,
		    sizeof(*job->rcpts));
		if (!parse_rcpt(m->attrs[i].value, &job->rcpts[job->nrcpts])) {
			free(job->rcpts[job->nrcpts].address);
			free(job->rcpts[job->nrcpts].orcpt);
			return fail(err, errsize, "bad rcpt");
		}
		if (rcpt_by_number(job, job->rcpts[job->nrcpts].number)) {
			free(job->rcpts[job->nrcpts].address);
			free(job->rcpts[job->nrcpts].orcpt);
			return fail(err, errsize, "recipient named twice");
		}
		job->nrcpts++;
	}
	if (job->nrcpts == 0)
		return fail(err, errsize, "no recipients");
	for (size_t i = 0; i < m->count; i++) {
		const char *name = m->attrs[i].name, *rest;
		long number;
		struct job_rcpt *r;
		if (strcmp(name, "orig_to") == 0) {
			/* Only for the log: one that names no recipient of
			 * the job is ignored. */
			if (!parse_number(m->attrs[i].value, &rest, &number) ||
			    *rest != ' ' || rest[1] == '\0' ||
			    (r = rcpt_by_number(job, number)) == NULL ||
			    r->orig_to != NULL)
				continue;
			r->orig_to = xstrdup(rest + 1);
		} else if (strcmp(name, "noexpand") == 0) {
			if (!parse_number(m->attrs[i].value, &rest, &number) ||
			    *rest != '\0' ||
			    (r = rcpt_by_number(job, number)) == NULL)
				return fail(err, errsize, "bad noexpand");
			r->noexpand = true;
		}
	}
	return true;
}

void job_clear(struct job *job)
{
	free(job->transport);
	free(job->nexthop);
	free(job->queue_id);
	free(job->queue_file);
	free(job->sender);
	free(job->envid);
	free(job->auth);
	for (size_t k = 0; k < job->nrcpts; k++) {
		free(job->rcpts[k].address);
		free(job->rcpts[k].orcpt);
		free(job->rcpts[k].orig_to);
	}
	free(job->rcpts);
	memset(job, 0, sizeof(*job));
}

bool job_recv(struct bio *b, struct ipc_msg *m)
{
	enum bio_status st = ipc_recv(b, m);
	if (st == BIO_OK)
		return true;
	if (st != BIO_EOF)
		log_warning("reading a job from qmgr: %s",
		    st == BIO_TOOLONG ? "malformed message" :
		    bio_status_name(st));
	return false;
}
