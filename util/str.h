/*
 * str.h - growable, binary-safe byte string with a hard maximum length.
 *
 * Everything read from outside is held in a struct str. The data is always
 * NUL-terminated (one spare byte beyond len), so str_cstr() is free, but it
 * may also contain NUL bytes; len is the truth. Appending past max fails
 * and leaves the string unchanged: callers turn that into a protocol error.
 */
#ifndef POSTERN_STR_H
#define POSTERN_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define STR_NO_MAX ((size_t)-1 / 2)

struct str {
	char *data;	/* len bytes + NUL; NULL until first growth */
	size_t len;
	size_t cap;	/* allocated bytes, including the spare NUL */
	size_t max;	/* hard limit on len */
};

void str_init(struct str *s, size_t max);
void str_free(struct str *s);
void str_clear(struct str *s);
/* Ensure room for extra more bytes; false if that would pass max. */
bool str_reserve(struct str *s, size_t extra);
bool str_append(struct str *s, const void *p, size_t n);
bool str_append_cstr(struct str *s, const char *cstr);
bool str_append_char(struct str *s, char c);
/* The decimal digits of n: what str_appendf(s, "%llu", n) appends,
 * without the cost of printf. */
bool str_append_uint(struct str *s, unsigned long long n);
/* Each string in turn up to a NULL: str_appendf(s, "%s%s...") without
 * printf. false (and nothing more appended) once one would pass max. */
bool str_append_cstrs(struct str *s, ...) __attribute__((sentinel));
bool str_appendf(struct str *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool str_vappendf(struct str *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
bool str_set(struct str *s, const char *cstr);
/* Drop n bytes from the front. */
void str_consume(struct str *s, size_t n);
void str_truncate(struct str *s, size_t len);
/* Always a valid C string (empty if nothing was ever stored). */
const char *str_cstr(const struct str *s);
/* Detach the buffer (caller frees); the string becomes empty. */
char *str_steal(struct str *s);
/*
 * The length of the valid UTF-8 sequence at p (n bytes left, n > 0): 1
 * for ASCII, 2 to 4 for a character in shortest form that is no
 * surrogate and not above U+10FFFF (RFC 3629 4), 0 for anything else.
 */
size_t str_utf8_len(const unsigned char *p, size_t n);

#endif
