/*
 * queue_envelope.c - a queue file's envelope in memory, and the field
 * rules that the writer and the reader share (queue.h has the format).
 *
 * Trust: its callers; what they hand in is checked by the writer
 * (queue_write.c) before it reaches a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "queue.h"
#include "queue_format.h"
#include "str.h"

const char *const queue_kind_names[] = {
	[QUEUE_KIND_MAIL] = "MAIL",
	[QUEUE_KIND_BOUNCE] = "BOUNCE",
	[QUEUE_KIND_DELAY] = "DELAY",
	[QUEUE_KIND_SUCCESS] = "SUCCESS",
	[QUEUE_KIND_DOUBLE] = "DOUBLE",
};

const char *const queue_body_names[] = {
	[QUEUE_BODY_7BIT] = "7BIT",
	[QUEUE_BODY_8BITMIME] = "8BITMIME",
	[QUEUE_BODY_BINARYMIME] = "BINARYMIME",
};

/* ---- envelope in memory ---- */

void queue_envelope_init(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
}

void queue_envelope_free(struct queue_envelope *env)
{
	free(env->sender);
	free(env->envid);
	for (size_t i = 0; i < env->nattrs; i++) {
		free(env->attrs[i].name);
		free(env->attrs[i].value);
	}
	free(env->attrs);
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].last_dsn);
		free(env->rcpts[i].last_reason);
	}
	free(env->rcpts);
	queue_envelope_init(env);
}

/*
 * The arrays have no capacity field: they grow to the next power of two
 * (at least 8) whenever the count reaches one, so n appends cost O(n).
 */
static void *queue_grow(void *array, size_t count, size_t size)
{
	if (count == 0)
		return xreallocarray(array, 8, size);
	if (count >= 8 && (count & (count - 1)) == 0)
		return xreallocarray(array, count * 2, size);
	return array;
}

struct queue_rcpt *queue_new_rcpt(struct queue_envelope *env)
{
	env->rcpts = queue_grow(env->rcpts, env->nrcpts, sizeof(*env->rcpts));
	struct queue_rcpt *r = &env->rcpts[env->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->status = QUEUE_RCPT_PENDING;
	r->parent = -1;
	return r;
}

size_t queue_envelope_add_rcpt(struct queue_envelope *env, const char *address,
    unsigned notify, const char *orcpt)
{
	struct queue_rcpt *r = queue_new_rcpt(env);
	r->address = xstrdup(address);
	r->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
	return env->nrcpts - 1;
}

void queue_envelope_set_attr(struct queue_envelope *env, const char *name,
    const char *value)
{
	for (size_t i = 0; i < env->nattrs; i++) {
		if (strcmp(env->attrs[i].name, name) == 0) {
			free(env->attrs[i].value);
			env->attrs[i].value = xstrdup(value);
			return;
		}
	}
	env->attrs = queue_grow(env->attrs, env->nattrs, sizeof(*env->attrs));
	env->attrs[env->nattrs].name = xstrdup(name);
	env->attrs[env->nattrs].value = xstrdup(value);
	env->nattrs++;
}

const char *queue_envelope_attr(const struct queue_envelope *env,
    const char *name)
{
	for (size_t i = 0; i < env->nattrs; i++)
		if (strcmp(env->attrs[i].name, name) == 0)
			return env->attrs[i].value;
	return NULL;
}

/* ---- field checks shared by writer and reader ---- */

bool queue_has_line_end(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

bool queue_attr_name_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An ORCPT is "type;address" and is one space-free field of R and X. */
bool queue_orcpt_ok(const char *s)
{
	return s[0] != '\0' && s[0] != ';' && strchr(s, ';') != NULL &&
	    strpbrk(s, " \r\n") == NULL;
}

/* RFC 3463 status code: class "." subject "." detail, 1-3 digits each. */
bool queue_dsn_ok(const char *s, size_t len)
{
	size_t i = 0;
	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || i - start > 3)
			return false;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == len;
}

bool queue_status_ok(char c)
{
	return c == QUEUE_RCPT_PENDING || c == QUEUE_RCPT_SENT ||
	    c == QUEUE_RCPT_FAILED || c == QUEUE_RCPT_EXPANDED;
}

void queue_notify_format(char out[8], unsigned notify)
{
	size_t n = 0;
	if (notify & QUEUE_NOTIFY_NEVER)
		out[n++] = 'N';
	if (notify & QUEUE_NOTIFY_SUCCESS)
		out[n++] = 'S';
	if (notify & QUEUE_NOTIFY_FAILURE)
		out[n++] = 'F';
	if (notify & QUEUE_NOTIFY_DELAY)
		out[n++] = 'D';
	if (n == 0)
		out[n++] = '-';
	out[n] = '\0';
}
