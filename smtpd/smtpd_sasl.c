/*
 * smtpd_sasl.c - decoding of what an AUTH client sends (smtpd_sasl.h):
 * base64, the PLAIN message, user names. Everything here is untrusted
 * client input and is decoded strictly; nothing is logged or looked up.
 */
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "smtpd_sasl.h"

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

bool smtpd_sasl_b64_decode(const char *in, size_t len, char **out,
    size_t *outlen)
{
	if (len % 4 != 0)
		return false;
	char *buf = xmalloc(len / 4 * 3 + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		size_t pad = 0;
		for (size_t j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)in[i + j];
			/* RFC 4648 4: "=" only in the last two places. */
			if (c == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[j] = b64_value(c)) < 0) {
				free(buf);
				return false;
			}
		}
		unsigned long w = (unsigned long)v[0] << 18 |
		    (unsigned long)v[1] << 12 | (unsigned long)v[2] << 6 |
		    (unsigned long)v[3];
		buf[n++] = (char)(w >> 16);
		if (pad < 2)
			buf[n++] = (char)(w >> 8 & 0xff);
		if (pad < 1)
			buf[n++] = (char)(w & 0xff);
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return true;
}

bool smtpd_sasl_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > SMTPD_SASL_NAME_MAX || strlen(name) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

bool smtpd_sasl_plain_split(const char *msg, size_t len,
    struct smtpd_sasl_plain *plain)
{
	const char *nul1 = memchr(msg, '\0', len);
	const char *nul2 = nul1 ? memchr(nul1 + 1, '\0',
	    len - (size_t)(nul1 + 1 - msg)) : NULL;
	if (nul2 == NULL)
		return false;
	plain->authzid = msg;
	plain->authcid = nul1 + 1;
	plain->authcid_len = (size_t)(nul2 - plain->authcid);
	plain->password = nul2 + 1;
	plain->password_len = len - (size_t)(plain->password - msg);
	return true;
}
