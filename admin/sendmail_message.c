/*
 * sendmail_message.c - the message and its addresses, as a local user
 * hands them to sendmail: addresses typed on the command line or found in
 * To/Cc/Bcc (-t), the message read from standard input with its line
 * ends made CRLF (and its hops counted, mail/smtp_server_data.c), the
 * header section split into fields.
 *
 * Trusts nothing it reads: addresses go through addr.c's grammar, the
 * message is bounded by message_size_limit.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "mem.h"
#include "sendmail.h"
#include "smtp_server.h"
#include "str.h"

#define SENDMAIL_READ_CHUNK 65536

/* ---- addresses ---- */

void sendmail_rcpt_add(struct rcpt_list *l, const char *address)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], address) == 0)
			return;		/* duplicates go once */
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->items = xreallocarray(l->items, l->cap, sizeof(*l->items));
	}
	l->items[l->count++] = xstrdup(address);
}

void sendmail_rcpt_list_free(struct rcpt_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* See sendmail.h. */
char *sendmail_canonical_address(const char *text, bool *utf8,
    const char **why)
{
	struct addr a;
	char *copy = xstrdup(text);
	char *p = copy;
	size_t n = strlen(p);

	while (n > 0 && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
	while (isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
		p[n - 1] = '\0';
		p++;
		/* A source route "@a,@b:user@c" is dropped (RFC 5321 C). */
		if (p[0] == '@' && strchr(p, ':'))
			p = strchr(p, ':') + 1;
	}
	char *qualified = strchr(p, '@') || strcasecmp(p, "postmaster") == 0 ?
	    xstrdup(p) : xasprintf("%s@%s", p, cfg.myhostname);
	free(copy);
	if (!addr_parse_mailbox(qualified, ADDR_ALLOW_UTF8 |
	    ADDR_ALLOW_POSTMASTER, &a, why)) {
		free(qualified);
		return NULL;
	}
	free(qualified);
	if (a.has_utf8)
		*utf8 = true;
	char *out = xstrdup(a.address);
	addr_free(&a);
	return out;
}

static void add_checked(struct rcpt_list *l, const char *text,
    const char *where)
{
	const char *why = "bad address";
	char *addr = sendmail_canonical_address(text, &l->utf8, &why);
	if (addr == NULL)
		sendmail_fail(EX_DATAERR, "bad recipient address \"%s\" %s: %s",
		    sendmail_esc(text), where, why);
	sendmail_rcpt_add(l, addr);
	free(addr);
}

/*
 * An RFC 5322 3.4 address list: "Name <a@b>, c@d (comment), group: e@f;".
 * Quoted strings, comments, angle brackets and domain literals are
 * skipped over when looking for the commas, colons and semicolons that
 * separate addresses; a group's display name is dropped.
 */
void sendmail_parse_address_list(struct rcpt_list *l, const char *text,
    const char *where)
{
	struct str cur, angle;
	bool in_angle = false, seen_angle = false;
	int comment = 0;

	str_init(&cur, STR_NO_MAX);
	str_init(&angle, STR_NO_MAX);
	for (const char *p = text;; p++) {
		char c = *p;
		if (c == '\0' || (!in_angle && (c == ',' || c == ';' || c == ':'))) {
			if (c == ':') {
				/* a group's name: forget it */
				str_clear(&cur);
				seen_angle = false;
				if (*p == '\0')
					break;
				continue;
			}
			const char *item = seen_angle ? str_cstr(&angle) :
			    str_cstr(&cur);
			bool blank = true;
			for (const char *q = item; *q; q++)
				if (!isspace((unsigned char)*q))
					blank = false;
			if (!blank)
				add_checked(l, item, where);
			str_clear(&cur);
			str_clear(&angle);
			seen_angle = false;
			if (c == '\0')
				break;
			continue;
		}
		if (c == '(') {		/* comment, nested, with quoted pairs */
			comment = 1;
			while (comment > 0 && p[1]) {
				p++;
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '(')
					comment++;
				else if (*p == ')')
					comment--;
			}
			continue;
		}
		struct str *dst = in_angle ? &angle : &cur;
		if (c == '"' || c == '[') {	/* quoted string, literal */
			char close = c == '"' ? '"' : ']';
			str_append_char(dst, c);
			while (p[1] && p[1] != close) {
				p++;
				if (*p == '\\' && p[1]) {
					str_append_char(dst, *p);
					p++;
				}
				str_append_char(dst, *p);
			}
			if (p[1]) {
				p++;
				str_append_char(dst, *p);
			}
			continue;
		}
		if (c == '<' && !in_angle) {
			in_angle = true;
			seen_angle = true;
			str_clear(&angle);
			continue;
		}
		if (c == '>' && in_angle) {
			in_angle = false;
			continue;
		}
		/* Outside quotes, white space is only a separator. */
		if (!isspace((unsigned char)c))
			str_append_char(dst, c);
	}
	str_free(&cur);
	str_free(&angle);
}

/* ---- the message ---- */

/*
 * Read the message from stdin into msg with CRLF line ends (an LF alone
 * becomes CRLF; CRLF stays). Without -i a line "." alone ends it.
 */
void sendmail_read_message(struct str *msg, bool ignore_dots,
    struct smtp_message *hops)
{
	char *buf = xmalloc(SENDMAIL_READ_CHUNK);
	size_t line_start = 0;
	bool done = false;

	while (!done) {
		ssize_t n = read(STDIN_FILENO, buf, SENDMAIL_READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			sendmail_fail(EX_IOERR, "reading the message: %s", strerror(errno));
		if (n == 0)
			break;
		const char *p = buf, *end = buf + n;
		while (p < end && !done) {
			const char *lf = memchr(p, '\n', (size_t)(end - p));
			size_t seg = lf ? (size_t)(lf - p) : (size_t)(end - p);
			if (!str_append(msg, p, seg))
				goto too_big;
			p += seg;
			if (lf == NULL)
				break;
			p++;	/* the LF */
			bool had_cr = msg->len > line_start &&
			    msg->data[msg->len - 1] == '\r';
			if (!str_append(msg, had_cr ? "\n" : "\r\n", had_cr ? 1 : 2))
				goto too_big;
			size_t linelen = msg->len - line_start - 2;
			if (!ignore_dots && linelen == 1 &&
			    msg->data[line_start] == '.') {
				str_truncate(msg, line_start);
				done = true;
			} else if (!hops->in_body) {
				/* The core's header scan, line by line as the
				 * header section streams past (RFC 5321 6.3). */
				smtp_message_scan(hops, msg->data + line_start,
				    linelen, true);
			}
			line_start = msg->len;
		}
	}
	/* A last line without its line end gets one. */
	if (!done && msg->len > line_start) {
		bool had_cr = msg->data[msg->len - 1] == '\r';
		if (!str_append(msg, had_cr ? "\n" : "\r\n", had_cr ? 1 : 2))
			goto too_big;
	}
	free(buf);
	return;
too_big:
	sendmail_fail(EX_DATAERR, "message is larger than message_size_limit "
	    "(%lld bytes)", cfg.message_size_limit);
}


/* "Name:" with ftext characters (RFC 5322 3.6.8), or obsolete "Name :". */
static size_t header_name_len(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && line[i] >= '!' && line[i] <= '~' && line[i] != ':')
		i++;
	size_t name = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return name > 0 && i < len && line[i] == ':' ? name : 0;
}

void sendmail_split_headers(const struct str *msg, struct headers *h)
{
	size_t pos = 0, cap = 0;

	memset(h, 0, sizeof(*h));
	h->body_start = msg->len;
	while (pos < msg->len) {
		const char *line = msg->data + pos;
		const char *eol = memmem(line, msg->len - pos, "\r\n", 2);
		size_t len = eol ? (size_t)(eol - line) : msg->len - pos;
		size_t next = pos + len + (eol ? 2 : 0);
		if (len == 0) {
			h->separator = true;
			h->body_start = next;
			return;
		}
		if ((line[0] == ' ' || line[0] == '\t') && h->count > 0) {
			h->items[h->count - 1].len += next - pos;
			pos = next;
			continue;
		}
		size_t name = header_name_len(line, len);
		if (name == 0) {
			h->body_start = pos;	/* body without a separator */
			return;
		}
		if (h->count == cap) {
			cap = cap ? cap * 2 : 32;
			h->items = xreallocarray(h->items, cap, sizeof(*h->items));
		}
		h->items[h->count++] = (struct header){ pos, next - pos, name };
		pos = next;
	}
}

bool sendmail_header_is(const struct str *msg, const struct header *hd,
    const char *name)
{
	return hd->name_len == strlen(name) &&
	    strncasecmp(msg->data + hd->start, name, hd->name_len) == 0;
}

/* The unfolded value of a header (caller frees). */
static char *header_value(const struct str *msg, const struct header *hd)
{
	const char *p = memchr(msg->data + hd->start, ':', hd->len);
	const char *end = msg->data + hd->start + hd->len;
	struct str v;
	str_init(&v, STR_NO_MAX);
	for (p++; p < end; p++)
		if (*p != '\r' && *p != '\n')
			str_append_char(&v, *p);
	return str_steal(&v);
}


/* -t: To, Cc, Bcc; or Resent-To, -Cc, -Bcc when the message is resent. */
void sendmail_extract_recipients(const struct str *msg, const struct headers *h,
    struct rcpt_list *l)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = { "Resent-To", "Resent-Cc",
	    "Resent-Bcc" };
	const char *const *names = plain;

	for (size_t i = 0; i < h->count; i++)
		for (int k = 0; k < 3; k++)
			if (sendmail_header_is(msg, &h->items[i], resent[k]))
				names = resent;
	for (size_t i = 0; i < h->count; i++) {
		for (int k = 0; k < 3; k++) {
			if (!sendmail_header_is(msg, &h->items[i], names[k]))
				continue;
			char *v = header_value(msg, &h->items[i]);
			char where[32];
			snprintf(where, sizeof(where), "in %s:", names[k]);
			sendmail_parse_address_list(l, v, where);
			free(v);
		}
	}
}

/* A display name as an RFC 5322 phrase: atoms as they are, else quoted. */
