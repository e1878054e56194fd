/*
 * str.c - growable byte strings with a hard maximum (see str.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "str.h"

void str_init(struct str *s, size_t max)
{
	s->data = NULL;
	s->len = 0;
	s->cap = 0;
	s->max = max > STR_NO_MAX ? STR_NO_MAX : max;
}

void str_free(struct str *s)
{
	free(s->data);
	s->data = NULL;
	s->len = s->cap = 0;
}

void str_clear(struct str *s)
{
	s->len = 0;
	if (s->data)
		s->data[0] = '\0';
}

bool str_reserve(struct str *s, size_t extra)
{
	if (extra > s->max || s->len > s->max - extra)
		return false;
	size_t need = s->len + extra + 1;	/* + spare NUL */
	if (need <= s->cap)
		return true;
	size_t cap = s->cap ? s->cap : 64;
	while (cap < need) {
		if (cap > STR_NO_MAX)
			log_panic("str_reserve: size overflow");
		cap *= 2;
	}
	s->data = xrealloc(s->data, cap);
	s->cap = cap;
	return true;
}

bool str_append(struct str *s, const void *p, size_t n)
{
	if (!str_reserve(s, n))
		return false;
	if (n)
		memcpy(s->data + s->len, p, n);
	s->len += n;
	s->data[s->len] = '\0';
	return true;
}

bool str_append_cstr(struct str *s, const char *cstr)
{
	return str_append(s, cstr, strlen(cstr));
}

bool str_append_char(struct str *s, char c)
{
	return str_append(s, &c, 1);
}

bool str_append_uint(struct str *s, unsigned long long n)
{
	char digits[20];	/* 2^64 - 1 has 20 */
	size_t i = sizeof(digits);

	do {
		digits[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	return str_append(s, digits + i, sizeof(digits) - i);
}

bool str_append_cstrs(struct str *s, ...)
{
	va_list ap;
	const char *piece;
	bool ok = true;

	va_start(ap, s);
	while (ok && (piece = va_arg(ap, const char *)) != NULL)
		ok = str_append_cstr(s, piece);
	va_end(ap);
	return ok;
}

bool str_vappendf(struct str *s, const char *fmt, va_list ap)
{
	va_list ap2;
	char small[256];

	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return false;
	if ((size_t)n < sizeof(small))
		return str_append(s, small, (size_t)n);
	if (!str_reserve(s, (size_t)n))
		return false;
	vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
	s->len += (size_t)n;
	return true;
}

bool str_appendf(struct str *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool ok = str_vappendf(s, fmt, ap);
	va_end(ap);
	return ok;
}

bool str_set(struct str *s, const char *cstr)
{
	str_clear(s);
	return str_append_cstr(s, cstr);
}

void str_consume(struct str *s, size_t n)
{
	if (n >= s->len) {
		str_clear(s);
		return;
	}
	memmove(s->data, s->data + n, s->len - n);
	s->len -= n;
	s->data[s->len] = '\0';
}

void str_truncate(struct str *s, size_t len)
{
	if (len < s->len) {
		s->len = len;
		s->data[len] = '\0';
	}
}

const char *str_cstr(const struct str *s)
{
	return s->data ? s->data : "";
}

char *str_steal(struct str *s)
{
	char *p = s->data ? s->data : xstrdup("");
	s->data = NULL;
	s->len = s->cap = 0;
	return p;
}

size_t str_utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2; cp = p[0] & 0x1f; min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3; cp = p[0] & 0x0f; min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4; cp = p[0] & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}
