/*
 * msgid.h - find a message's Message-ID field while its text streams by,
 * for the "QID: message-id=<...>" log line (doc/logging.md) that lets an
 * administrator trace a message from the Message-ID a user reports.
 */
#ifndef POSTERN_MSGID_H
#define POSTERN_MSGID_H

#include <stdbool.h>
#include <stddef.h>

/* The value kept: enough for any sane msg-id (RFC 5322 3.6.4), cut after. */
#define MSGID_VALUE_MAX 250

struct msgid_scan {
	bool done;		/* the header section ended */
	bool found;		/* a Message-ID field was seen */
	bool in_field;		/* the current field is that Message-ID */
	bool line_open;		/* a line began and has not ended */
	bool line_folded;	/* the open line began with WSP */
	bool line_decided;	/* the open line's kind is known */
	char name[12];		/* the open line's first bytes */
	size_t name_len;
	char value[MSGID_VALUE_MAX + 1];
	size_t value_len;
};

void msgid_scan_init(struct msgid_scan *m);
/*
 * Feed the message a piece at a time: line_end says the piece ends a line
 * (its CRLF or LF is not in it). Only the header section (RFC 5322 2.2)
 * is looked at; the first Message-ID field wins.
 */
void msgid_scan_put(struct msgid_scan *m, const char *p, size_t n,
    bool line_end);
/* The same for a whole buffer of CRLF or LF lines. */
void msgid_scan_text(struct msgid_scan *m, const char *p, size_t n);
/* The field's value, folding and outer blanks removed (in place); "" if
 * there was none. */
const char *msgid_scan_value(struct msgid_scan *m);

#endif
