/*
 * qmgr_list.c - the queue listing qmgr gives any local user (type=list on
 * its socket, doc/architecture.md): mailq for users who cannot read the queue
 * directories (mode 0700), as Postfix's showq service does.
 *
 * Bounded work per loop turn: starting a listing reads only directory
 * entries (names, sorted by queue ID = arrival order); envelopes are read
 * QLIST_CHUNK at a time, when the client has taken what it was sent, so a
 * queue of 10,000 messages neither stalls the scheduler nor piles up
 * memory for a slow client. Trusts the queue files only as far as the
 * strict reader does: a file that does not parse is skipped (the scan
 * moves it to corrupt/), a file that left meanwhile is skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "qlist.h"
#include "qmgr.h"
#include "queue.h"

struct list_name {
	char id[QUEUE_ID_SIZE];
	const char *subdir;
};

struct qmgr_list {
	struct list_name *names;
	size_t count, cap;
	size_t next;		/* the next name to read */
	size_t shown;
	bool done;		/* type=end appended */
};

/* What mailq lists: everything but corrupt/, as postern queue list. */
static const char *const list_dirs[] = {
	QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
	QUEUE_HOLD,
};

static void list_names_dir(struct qmgr_list *l, const char *path,
    const char *subdir)
{
	DIR *d = opendir(path);
	if (d == NULL) {
		if (errno != ENOENT)
			log_warning("list: open %s: %m", path);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!queue_id_valid(de->d_name))
			continue;
		if (l->count == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			l->names = xreallocarray(l->names, l->cap,
			    sizeof(*l->names));
		}
		strlcpy(l->names[l->count].id, de->d_name, QUEUE_ID_SIZE);
		l->names[l->count].subdir = subdir;
		l->count++;
	}
	closedir(d);
}

static int compare_names(const void *a, const void *b)
{
	const struct list_name *x = a, *y = b;
	return strcmp(x->id, y->id);
}

struct qmgr_list *qmgr_list_start(void)
{
	struct qmgr_list *l = xcalloc(1, sizeof(*l));
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(list_dirs) / sizeof(list_dirs[0]); i++) {
		const char *sub = list_dirs[i];
		if (strcmp(sub, QUEUE_DEFERRED) == 0) {
			for (int h = 0; h < QUEUE_DEFERRED_HASH; h++) {
				snprintf(path, sizeof(path), "%s/%s/%x",
				    cfg.queue_directory, sub, h);
				list_names_dir(l, path, sub);
			}
		} else {
			snprintf(path, sizeof(path), "%s/%s",
			    cfg.queue_directory, sub);
			list_names_dir(l, path, sub);
		}
	}
	if (l->count > 0)
		qsort(l->names, l->count, sizeof(*l->names), compare_names);
	return l;
}

/* Append the entry for one name to out; false if it cannot be read. */
static bool list_one(const struct list_name *n, struct str *out)
{
	char path[PATH_MAX], err[256];
	struct queue_envelope env;
	struct ipc_msg m;

	queue_path(path, sizeof(path), cfg.queue_directory, n->subdir, n->id);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;	/* moved or finished meanwhile */
	queue_envelope_init(&env);
	enum queue_read_result r = queue_read(fd, &env, err, sizeof(err));
	close(fd);
	if (r != QUEUE_READ_OK) {
		queue_envelope_free(&env);
		return false;
	}
	qlist_entry(&env, n->subdir, &m);
	ipc_encode(&m, out);
	ipc_msg_free(&m);
	queue_envelope_free(&env);
	return true;
}

bool qmgr_list_more(struct qmgr_list *l, struct str *out)
{
	if (l->done)
		return false;
	for (size_t k = 0; k < QLIST_CHUNK && l->next < l->count; k++)
		if (list_one(&l->names[l->next++], out))
			l->shown++;
	if (l->next == l->count) {
		struct ipc_msg m;
		ipc_msg_init(&m, "end");
		ipc_add(&m, "count", "%zu", l->shown);
		ipc_encode(&m, out);
		ipc_msg_free(&m);
		l->done = true;
	}
	return true;
}

void qmgr_list_free(struct qmgr_list *l)
{
	if (l == NULL)
		return;
	free(l->names);
	free(l);
}
