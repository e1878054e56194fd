/*
 * qlist.c - a queued message as a listing entry (qlist.h). Trusts the
 * envelope (parsed by queue_read); masks nothing, see qlist.h.
 */
#include <string.h>

#include "qlist.h"

void qlist_entry(const struct queue_envelope *env, const char *subdir,
    struct ipc_msg *m)
{
	ipc_msg_init(m, "entry");
	ipc_add(m, "id", "%s", env->id);
	ipc_add(m, "queue", "%s", subdir);
	ipc_add(m, "size", "%lld", (long long)env->content_length);
	ipc_add(m, "arrival", "%lld", env->arrival_sec);
	ipc_add(m, "sender", "%s", env->sender);

	/* Pending recipients; a deferred one is preceded by its last reason,
	 * once for a run of recipients with the same reason (as Postfix). */
	const char *last_reason = NULL;
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		if (r->status != QUEUE_RCPT_PENDING)
			continue;
		/* An expanded recipient lives on in its children. */
		bool has_children = false;
		for (size_t k = i + 1; k < env->nrcpts && !has_children; k++)
			has_children = env->rcpts[k].parent == (int)i;
		if (has_children)
			continue;
		if (r->last_reason && (last_reason == NULL ||
		    strcmp(last_reason, r->last_reason) != 0)) {
			ipc_add(m, "reason", "%s", r->last_reason[0] ?
			    r->last_reason : r->last_dsn ? r->last_dsn : "");
			last_reason = r->last_reason;
		}
		ipc_add(m, "rcpt", "%s", r->address);
	}
}
