/*
 * postern_top.h - what the files of "postern top" share: the scrapes and
 * the state of the view (postern_top.c talks to qmgr and the terminal,
 * postern_top_view.c draws).
 */
#ifndef POSTERN_TOP_H
#define POSTERN_TOP_H

#include <stdbool.h>
#include <stddef.h>

#include "ipc.h"
#include "queue.h"

#define TOP_MAX_EVENTS 64

/* One scrape: series text ("name{labels}") and value. */
struct top_series {
	char *name;
	double value;
};

struct top_sample {
	struct top_series *s;
	size_t n, cap;
	double when;			/* monotonic seconds */
	char *busy[16], *slow[16];	/* "active limit queued dead ms jobs key" */
	size_t nbusy, nslow;
	char *events[TOP_MAX_EVENTS];	/* "TIME TEXT" */
	size_t nevents;
	bool ok;
};

struct top_state {
	struct top_sample prev, cur;
	struct ipc_msg *entries;	/* type=entry of the last listing */
	size_t nentries, total_entries;
	char *shape;			/* qshape text of the last listing */
	size_t sel;			/* selected entry */
	char sel_id[QUEUE_ID_SIZE];
	bool show;			/* the detail of the selected message */
	bool prompt;			/* typing an ID after "/" */
	char typed[QUEUE_ID_SIZE];
	char status[256];
	double interval;
	bool tty;
	int rows, cols;
};

/* Draw one frame (a plain one without a terminal); false when the
 * output is gone. */
bool top_draw(struct top_state *st);

#endif
