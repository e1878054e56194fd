/*
 * tlsrpt.c - TLS-RPT (RFC 8460): deliver's daily store of TLS session
 * results, the report's JSON (section 4) and its gzip wrapping, and the
 * `_smtp._tls` record (section 3). The mail around the report is made by
 * admin/postern_tls.c.
 *
 * The store holds one line per event, tab-separated:
 *   EPOCH TYPE DOMAIN RESULT MX SENDING-IP RECEIVING-IP INFO
 * Every field is cleaned of tabs and control characters before it is
 * written, since names and texts come from DNS and remote servers; a
 * line that does not have eight fields is skipped when read.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "mem.h"
#include "mtasts.h"
#include "tlsrpt.h"

void tlsrpt_day_path(char *out, size_t outsize, const char *dir, time_t when)
{
	struct tm tm;
	gmtime_r(&when, &tm);
	snprintf(out, outsize, "%s/%04d-%02d-%02d", dir, tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday);
}

/* A field for the store: printable ASCII, no tab, at most max octets. */
static void clean_field(char *out, size_t max, const char *in)
{
	size_t n = 0;
	for (; in != NULL && *in != '\0' && n + 1 < max; in++) {
		unsigned char c = (unsigned char)*in;
		out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (n == 0)
		out[n++] = '-';	/* an empty field keeps its place */
	out[n] = '\0';
}

bool tlsrpt_record(const char *dir, time_t when, const struct tlsrpt_event *e,
    char *err, size_t errsize)
{
	char path[4096], f[7][256], line[2048];
	const char *in[7] = { e->policy_type, e->domain, e->result, e->mx,
		e->sending_ip, e->receiving_ip, e->info };
	for (int i = 0; i < 7; i++)
		clean_field(f[i], sizeof(f[i]), in[i]);
	int n = snprintf(line, sizeof(line), "%lld\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
	    (long long)when, f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
	tlsrpt_day_path(path, sizeof(path), dir, when);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsize, "cannot open %s: %s", path,
		    strerror(errno));
		return false;
	}
	/* One write per line: appends of processes do not interleave. */
	bool ok = write(fd, line, (size_t)n) == n;
	if (!ok)
		snprintf(err, errsize, "cannot write %s: %s", path,
		    strerror(errno));
	close(fd);
	return ok;
}

static int policy_cmp(const void *a, const void *b)
{
	const struct tlsrpt_policy *x = a, *y = b;
	int c = strcmp(x->domain, y->domain);
	return c != 0 ? c : strcmp(x->policy_type, y->policy_type);
}

static bool same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Add one parsed line (fields f[1..7]) to day. */
static void day_add(struct tlsrpt_day *day, char *const f[8])
{
	struct tlsrpt_policy *p = NULL;
	for (size_t i = 0; i < day->count && p == NULL; i++)
		if (same(day->v[i].domain, f[2]) &&
		    same(day->v[i].policy_type, f[1]))
			p = &day->v[i];
	if (p == NULL) {
		day->v = xreallocarray(day->v, day->count + 1,
		    sizeof(*day->v));
		p = &day->v[day->count++];
		memset(p, 0, sizeof(*p));
		p->domain = xstrdup(f[2]);
		p->policy_type = xstrdup(f[1]);
	}
	if (same(f[3], "success")) {
		p->successes++;
		return;
	}
	p->failures++;
	for (size_t i = 0; i < p->nfail; i++) {
		struct tlsrpt_failure *x = &p->fail[i];
		if (same(x->result, f[3]) && same(x->mx, f[4]) &&
		    same(x->sending_ip, f[5]) && same(x->receiving_ip, f[6]) &&
		    same(x->info, f[7])) {
			x->count++;
			return;
		}
	}
	p->fail = xreallocarray(p->fail, p->nfail + 1, sizeof(*p->fail));
	struct tlsrpt_failure *x = &p->fail[p->nfail++];
	x->result = xstrdup(f[3]);
	x->mx = xstrdup(f[4]);
	x->sending_ip = xstrdup(f[5]);
	x->receiving_ip = xstrdup(f[6]);
	x->info = xstrdup(f[7]);
	x->count = 1;
}

bool tlsrpt_day_read(const char *path, struct tlsrpt_day *day)
{
	memset(day, 0, sizeof(*day));
	FILE *in = fopen(path, "re");
	if (in == NULL)
		return false;
	char line[4096];
	while (fgets(line, sizeof(line), in) != NULL) {
		char *f[8], *save = NULL;
		size_t n = 0;
		line[strcspn(line, "\n")] = '\0';
		for (char *t = strtok_r(line, "\t", &save); t != NULL && n < 8;
		    t = strtok_r(NULL, "\t", &save))
			f[n++] = t;
		if (n != 8 || !isdigit((unsigned char)f[0][0]))
			continue;
		day_add(day, f);
	}
	fclose(in);
	qsort(day->v, day->count, sizeof(*day->v), policy_cmp);
	return true;
}

void tlsrpt_day_free(struct tlsrpt_day *day)
{
	for (size_t i = 0; i < day->count; i++) {
		struct tlsrpt_policy *p = &day->v[i];
		for (size_t k = 0; k < p->nfail; k++) {
			free(p->fail[k].result);
			free(p->fail[k].mx);
			free(p->fail[k].sending_ip);
			free(p->fail[k].receiving_ip);
			free(p->fail[k].info);
		}
		free(p->fail);
		free(p->domain);
		free(p->policy_type);
	}
	free(day->v);
	memset(day, 0, sizeof(*day));
}

bool tlsrpt_txt_parse(const char *record, char mailto[][256], size_t max,
    size_t *count)
{
	*count = 0;
	/* RFC 8460 3: "v=TLSRPTv1" first, then "rua=" URIs, ";" between. */
	const char *p = record;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "v=TLSRPTv1", 10) != 0)
		return false;
	p += 10;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ';' && *p != '\0')
		return false;
	const char *rua = strstr(p, "rua=");
	if (rua == NULL)
		return false;
	rua += 4;
	size_t rlen = strcspn(rua, ";");
	char list[1024];
	strlcpy(list, rua, rlen + 1 < sizeof(list) ? rlen + 1 : sizeof(list));
	char *save = NULL;
	for (char *u = strtok_r(list, ", \t", &save); u != NULL;
	    u = strtok_r(NULL, ", \t", &save)) {
		if (strncasecmp(u, "mailto:", 7) != 0 || *count == max)
			continue;
		const char *addr = u + 7;
		/* An address, no header fields (RFC 6068's "?..."). */
		size_t alen = strcspn(addr, "?");
		if (alen == 0 || alen >= 256 || memchr(addr, '@', alen) == NULL)
			continue;
		memcpy(mailto[*count], addr, alen);
		mailto[*count][alen] = '\0';
		(*count)++;
	}
	return true;
}

/* A JSON string (RFC 8259 7). */
static void json_string(struct str *out, const char *s)
{
	str_append_char(out, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			str_append_char(out, '\\');
			str_append_char(out, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			str_appendf(out, "\\u%04x", c);
		} else {
			str_append_char(out, (char)c);
		}
	}
	str_append_char(out, '"');
}

static void json_time(struct str *out, time_t t)
{
	struct tm tm;
	char buf[40];
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_string(out, buf);
}

/* The policy's lines as "policy-string" and its mx patterns as
 * "mx-host" (RFC 8460 4.4: policy-string is the policy, line by line). */
static void json_sts_policy(struct str *out, const char *text)
{
	struct mtasts_policy pol;
	char err[200];
	str_append_cstr(out, ",\"policy-string\":[");
	const char *line = text;
	bool first = true;
	while (*line != '\0') {
		size_t n = strcspn(line, "\n");
		size_t m = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
		if (m > 0) {
			char *l = xstrndup(line, m);
			if (!first)
				str_append_char(out, ',');
			json_string(out, l);
			free(l);
			first = false;
		}
		line += n + (line[n] == '\n');
	}
	str_append_char(out, ']');
	if (mtasts_policy_parse(text, strlen(text), &pol, err, sizeof(err))) {
		str_append_cstr(out, ",\"mx-host\":[");
		for (size_t i = 0; i < pol.nmx; i++) {
			if (i > 0)
				str_append_char(out, ',');
			json_string(out, pol.mx[i]);
		}
		str_append_char(out, ']');
	}
	mtasts_policy_free(&pol);
}

/* A field of the store, "-" standing for none. */
static bool has(const char *field)
{
	return field[0] != '\0' && strcmp(field, "-") != 0;
}

void tlsrpt_json(struct str *out, const struct tlsrpt_meta *meta,
    const struct tlsrpt_policy *v, size_t n, const char *policy_text)
{
	str_append_cstr(out, "{\"organization-name\":");
	json_string(out, meta->organization);
	str_append_cstr(out, ",\"date-range\":{\"start-datetime\":");
	json_time(out, meta->start);
	str_append_cstr(out, ",\"end-datetime\":");
	json_time(out, meta->end);
	str_append_cstr(out, "},\"contact-info\":");
	json_string(out, meta->contact);
	str_append_cstr(out, ",\"report-id\":");
	json_string(out, meta->report_id);
	str_append_cstr(out, ",\"policies\":[");
	for (size_t i = 0; i < n; i++) {
		const struct tlsrpt_policy *p = &v[i];
		if (i > 0)
			str_append_char(out, ',');
		str_append_cstr(out, "{\"policy\":{\"policy-type\":");
		json_string(out, p->policy_type);
		if (strcmp(p->policy_type, "sts") == 0 && policy_text != NULL)
			json_sts_policy(out, policy_text);
		str_append_cstr(out, ",\"policy-domain\":");
		json_string(out, p->domain);
		str_appendf(out, "},\"summary\":{\"total-successful-session-"
		    "count\":%ld,\"total-failure-session-count\":%ld}",
		    p->successes, p->failures);
		str_append_cstr(out, ",\"failure-details\":[");
		for (size_t k = 0; k < p->nfail; k++) {
			const struct tlsrpt_failure *f = &p->fail[k];
			if (k > 0)
				str_append_char(out, ',');
			str_append_cstr(out, "{\"result-type\":");
			json_string(out, f->result);
			if (has(f->sending_ip)) {
				str_append_cstr(out, ",\"sending-mta-ip\":");
				json_string(out, f->sending_ip);
			}
			if (has(f->mx)) {
				str_append_cstr(out,
				    ",\"receiving-mx-hostname\":");
				json_string(out, f->mx);
			}
			if (has(f->receiving_ip)) {
				str_append_cstr(out, ",\"receiving-ip\":");
				json_string(out, f->receiving_ip);
			}
			str_appendf(out, ",\"failed-session-count\":%ld",
			    f->count);
			if (has(f->info)) {
				str_append_cstr(out,
				    ",\"additional-information\":");
				json_string(out, f->info);
			}
			str_append_char(out, '}');
		}
		str_append_cstr(out, "]}");
	}
	str_append_cstr(out, "]}\n");
}

/* CRC-32 of RFC 1952 8 (the reflected 0xEDB88320 polynomial). */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static void put_le32(struct str *out, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		str_append_char(out, (char)((v >> (8 * i)) & 0xff));
}

void tlsrpt_gzip(struct str *out, const void *in, size_t len, time_t mtime)
{
	const unsigned char *p = in;
	/* RFC 1952 2.3: magic, CM=8 (deflate), no flags, MTIME, XFL, OS. */
	static const unsigned char head[] = { 0x1f, 0x8b, 8, 0 };
	str_append(out, head, sizeof(head));
	put_le32(out, (uint32_t)mtime);
	str_append_char(out, 0);
	str_append_char(out, (char)255);	/* OS unknown */
	/*
	 * RFC 1951 3.2.4: stored blocks of at most 65535 octets. A report
	 * is a few kilobytes: compression would save little, and a
	 * dependency on zlib is not worth it (doc/architecture.md).
	 */
	size_t pos = 0;
	do {
		size_t n = len - pos > 65535 ? 65535 : len - pos;
		bool last = pos + n == len;
		str_append_char(out, last ? 1 : 0);
		str_append_char(out, (char)(n & 0xff));
		str_append_char(out, (char)(n >> 8));
		str_append_char(out, (char)(~n & 0xff));
		str_append_char(out, (char)((~n >> 8) & 0xff));
		str_append(out, p + pos, n);
		pos += n;
	} while (pos < len);
	put_le32(out, crc32_update(0, p, len));
	put_le32(out, (uint32_t)len);
}
