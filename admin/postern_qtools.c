/*
 * postern_qtools.c - the queue seen whole: "postern queue list --json"
 * (one JSON object a message, the fields of Postfix's postqueue -j) and
 * "postern queue shape" (recipient domains by age, as Postfix's qshape).
 *
 * Both work on the type=entry messages of a listing (mail/qlist.h), the
 * same whether postern read the queue files or asked qmgr, so their
 * output does not depend on who asks.
 *
 * Trusts nothing in an entry: addresses and reasons come from senders
 * and peers. JSON strings are escaped (RFC 8259 7), with any byte that
 * is not valid UTF-8 written as U+FFFD; shape masks what it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "mem.h"
#include "str.h"

/* ---- list --json ---- */

static void json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);

	putc('"', out);
	while (n > 0) {
		if (*p == '"' || *p == '\\') {
			fprintf(out, "\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(out, "\\u%04x", *p);
		} else if (*p >= 0x80) {
			size_t len = str_utf8_len(p, n);
			if (len == 0) {
				fputs("\\ufffd", out);
				len = 1;
			} else {
				fwrite(p, 1, len, out);
			}
			p += len;
			n -= len;
			continue;
		} else {
			putc(*p, out);
		}
		p++;
		n--;
	}
	putc('"', out);
}

static const char *entry_get(const struct ipc_msg *m, const char *name)
{
	for (size_t i = 0; i < m->count; i++)
		if (strcmp(m->attrs[i].name, name) == 0)
			return m->attrs[i].value;
	return NULL;
}

static long long entry_number(const struct ipc_msg *m, const char *name)
{
	const char *v = entry_get(m, name);
	return v ? strtoll(v, NULL, 10) : 0;
}

void admin_qjson_entry(FILE *out, const struct ipc_msg *m)
{
	const char *reason = NULL;
	bool first = true;

	fputs("{\"queue_name\": ", out);
	json_string(out, entry_get(m, "queue"));
	fputs(", \"queue_id\": ", out);
	json_string(out, entry_get(m, "id"));
	fprintf(out, ", \"arrival_time\": %lld, \"message_size\": %lld, "
	    "\"forced_expire\": false, \"sender\": ",
	    entry_number(m, "arrival"), entry_number(m, "size"));
	json_string(out, entry_get(m, "sender"));
	fputs(", \"recipients\": [", out);
	for (size_t i = 0; i < m->count; i++) {
		const struct ipc_attr *a = &m->attrs[i];
		if (strcmp(a->name, "reason") == 0) {
			reason = a->value;
			continue;
		}
		if (strcmp(a->name, "rcpt") != 0)
			continue;
		fputs(first ? "{\"address\": " : ", {\"address\": ", out);
		json_string(out, a->value);
		if (reason != NULL && reason[0] != '\0') {
			fputs(", \"delay_reason\": ", out);
			json_string(out, reason);
		}
		putc('}', out);
		first = false;
	}
	fputs("]}\n", out);
}

/* ---- shape ---- */

/* Age buckets in minutes, as qshape: each twice the one before. */
static const int shape_limits[] = { 5, 10, 20, 40, 80, 160, 320, 640, 1280 };
#define SHAPE_NLIMITS (sizeof(shape_limits) / sizeof(shape_limits[0]))
#define SHAPE_COLS (SHAPE_NLIMITS + 1)

struct shape_row {
	char *domain;		/* NULL: a free slot */
	long long count[SHAPE_COLS];
	long long total;
};

struct admin_qshape {
	time_t now;
	struct shape_row *rows;	/* open addressing, power of two */
	size_t cap, used;
	struct shape_row all;
};

struct admin_qshape *admin_qshape_new(time_t now)
{
	struct admin_qshape *s = xcalloc(1, sizeof(*s));
	s->now = now;
	s->cap = 256;
	s->rows = xcalloc(s->cap, sizeof(*s->rows));
	return s;
}

static size_t hash_domain(const char *d)
{
	size_t h = 1469598103934665603ULL;
	for (; *d; d++)
		h = (h ^ (unsigned char)*d) * 1099511628211ULL;
	return h;
}

static struct shape_row *shape_find(struct admin_qshape *s,
    const char *domain)
{
	if (2 * (s->used + 1) > s->cap) {
		struct shape_row *old = s->rows;
		size_t oldcap = s->cap;
		s->cap *= 2;
		s->rows = xcalloc(s->cap, sizeof(*s->rows));
		for (size_t i = 0; i < oldcap; i++) {
			if (old[i].domain == NULL)
				continue;
			size_t k = hash_domain(old[i].domain) & (s->cap - 1);
			while (s->rows[k].domain != NULL)
				k = (k + 1) & (s->cap - 1);
			s->rows[k] = old[i];
		}
		free(old);
	}
	size_t k = hash_domain(domain) & (s->cap - 1);
	while (s->rows[k].domain != NULL) {
		if (strcmp(s->rows[k].domain, domain) == 0)
			return &s->rows[k];
		k = (k + 1) & (s->cap - 1);
	}
	s->rows[k].domain = xstrdup(domain);
	s->used++;
	return &s->rows[k];
}

void admin_qshape_add(struct admin_qshape *s, const struct ipc_msg *m)
{
	long long age = (long long)s->now - entry_number(m, "arrival");
	size_t col = SHAPE_NLIMITS;

	for (size_t i = 0; i < SHAPE_NLIMITS; i++) {
		if (age < (long long)shape_limits[i] * 60) {
			col = i;
			break;
		}
	}
	for (size_t i = 0; i < m->count; i++) {
		if (strcmp(m->attrs[i].name, "rcpt") != 0)
			continue;
		const char *at = strrchr(m->attrs[i].value, '@');
		char domain[256];
		snprintf(domain, sizeof(domain), "%s", at ? at + 1 : "");
		for (char *p = domain; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		struct shape_row *r = shape_find(s, domain);
		r->count[col]++;
		r->total++;
		s->all.count[col]++;
		s->all.total++;
	}
}

static int compare_rows(const void *a, const void *b)
{
	const struct shape_row *x = *(const struct shape_row *const *)a;
	const struct shape_row *y = *(const struct shape_row *const *)b;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

/* A domain as a table cell: right-aligned, printable ASCII only. */
static void print_domain(FILE *out, const char *d, int width)
{
	char cell[64];
	size_t n = 0;
	for (; *d && n < sizeof(cell) - 1; d++)
		cell[n++] = (*d > 0x20 && *d < 0x7f) ? *d : '?';
	cell[n] = '\0';
	fprintf(out, "%*s", width, cell);
}

static void print_row(FILE *out, const char *name, const struct shape_row *r)
{
	print_domain(out, name[0] ? name : "(none)", 30);
	fprintf(out, " %6lld", r->total);
	for (size_t i = 0; i < SHAPE_COLS; i++)
		fprintf(out, " %5lld", r->count[i]);
	putc('\n', out);
}

void admin_qshape_print(struct admin_qshape *s, FILE *out, size_t max_rows)
{
	struct shape_row **sorted = xcalloc(s->used ? s->used : 1,
	    sizeof(*sorted));
	size_t n = 0;

	for (size_t i = 0; i < s->cap; i++)
		if (s->rows[i].domain != NULL)
			sorted[n++] = &s->rows[i];
	qsort(sorted, n, sizeof(*sorted), compare_rows);
	fprintf(out, "%30s %6s", "", "T");
	for (size_t i = 0; i < SHAPE_NLIMITS; i++)
		fprintf(out, " %5d", shape_limits[i]);
	fprintf(out, " %5s\n", "1280+");
	print_row(out, "TOTAL", &s->all);
	for (size_t i = 0; i < n && (max_rows == 0 || i < max_rows); i++)
		print_row(out, sorted[i]->domain, sorted[i]);
	free(sorted);
}

void admin_qshape_free(struct admin_qshape *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++)
		free(s->rows[i].domain);
	free(s->rows);
	free(s);
}
