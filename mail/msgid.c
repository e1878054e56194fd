/*
 * msgid.c - the Message-ID of a message, found as its text streams by.
 *
 * Trusts nothing: the text is the client's. The value is kept as sent, cut
 * at MSGID_VALUE_MAX bytes; the log sink escapes it. Folded lines (RFC
 * 5322 2.2.3) are unfolded; a header section ends at the first empty line
 * or at the first line that is no field (RFC 5322 2.2, 3.5).
 */
#include <string.h>
#include <strings.h>

#include "msgid.h"

static const char msgid_name[] = "message-id";

void msgid_scan_init(struct msgid_scan *m)
{
	memset(m, 0, sizeof(*m));
}

static void value_append(struct msgid_scan *m, const char *p, size_t n)
{
	/* Blanks before the value would only take room from it. */
	while (m->value_len == 0 && n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	size_t room = MSGID_VALUE_MAX - m->value_len;
	if (n > room)
		n = room;
	memcpy(m->value + m->value_len, p, n);
	m->value_len += n;
	m->value[m->value_len] = '\0';
}

/*
 * Decide what the open line is once its name is known: a new field (the
 * Message-ID or another) or the end of the header section. Returns how
 * many bytes of p were used by the name.
 */
static size_t line_start(struct msgid_scan *m, const char *p, size_t n,
    bool line_end)
{
	size_t used = 0;

	while (used < n && !m->line_decided) {
		char c = p[used++];
		if (c == ':') {
			m->line_decided = true;
			/* RFC 5322 4.5.3 (obs-optional) allows WSP before the
			 * colon: drop it from the name. */
			while (m->name_len > 0 &&
			    (m->name[m->name_len - 1] == ' ' ||
			    m->name[m->name_len - 1] == '\t'))
				m->name_len--;
			bool is_msgid = m->name_len == sizeof(msgid_name) - 1 &&
			    strncasecmp(m->name, msgid_name, m->name_len) == 0;
			m->in_field = is_msgid && !m->found;
			if (m->in_field)
				m->found = true;
		} else if (m->name_len < sizeof(m->name)) {
			m->name[m->name_len++] = c;
		} else {
			/* Longer than "Message-ID" plus room: another field
			 * (or no field at all, which ends nothing here: the
			 * scan only needs to know it is not ours). */
			m->line_decided = true;
			m->in_field = false;
		}
	}
	if (!m->line_decided && line_end) {
		/* A line with no colon: the body began (RFC 5322 2.2). */
		m->done = true;
	}
	return used;
}

void msgid_scan_put(struct msgid_scan *m, const char *p, size_t n,
    bool line_end)
{
	if (m->done)
		return;
	if (!m->line_open) {
		if (n == 0 && line_end) {
			m->done = true;	/* the empty line */
			return;
		}
		if (n == 0)
			return;
		m->line_open = true;
		m->line_folded = p[0] == ' ' || p[0] == '\t';
		m->line_decided = m->line_folded;
		m->name_len = 0;
		if (!m->line_folded)
			m->in_field = false;
	}
	size_t used = 0;
	if (!m->line_decided)
		used = line_start(m, p, n, line_end);
	if (m->in_field && used < n)
		value_append(m, p + used, n - used);
	if (line_end)
		m->line_open = false;
}

void msgid_scan_text(struct msgid_scan *m, const char *p, size_t n)
{
	while (n > 0 && !m->done) {
		const char *nl = memchr(p, '\n', n);
		size_t len = nl ? (size_t)(nl - p) : n;
		size_t line = len;
		if (nl != NULL && line > 0 && p[line - 1] == '\r')
			line--;
		msgid_scan_put(m, p, line, nl != NULL);
		if (nl == NULL)
			break;
		p += len + 1;
		n -= len + 1;
	}
}

const char *msgid_scan_value(struct msgid_scan *m)
{
	char *v = m->value;
	size_t len = m->value_len;

	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' ||
	    v[len - 1] == '\r'))
		len--;
	memmove(m->value, v, len);
	m->value[len] = '\0';
	m->value_len = len;
	return m->value;
}
