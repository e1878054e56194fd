/*
 * local_user.c - local_recipient_maps (see local_user.h). Trusts the
 * config and the name service; the address has passed mail/addr.c.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "local_user.h"
#include "log.h"
#include "mem.h"

#define LOCAL_USER_PASSWD "unix:passwd"

static bool use_passwd;
static struct map_list *user_tables;
static bool initialised;

bool local_user_init(char *err, size_t errsize)
{
	struct cfg_list tables = { 0 };

	if (initialised)
		return true;
	tables.items = xcalloc(cfg.local_recipient_maps.count + 1,
	    sizeof(*tables.items));
	for (size_t i = 0; i < cfg.local_recipient_maps.count; i++) {
		char *spec = cfg.local_recipient_maps.items[i];
		if (strcasecmp(spec, LOCAL_USER_PASSWD) == 0)
			use_passwd = true;
		else
			tables.items[tables.count++] = spec;
	}
	if (tables.count > 0) {
		user_tables = map_list_open(&tables, err, errsize);
		if (user_tables == NULL) {
			free(tables.items);
			return false;
		}
	}
	free(tables.items);
	initialised = true;
	return true;
}

void local_user_close(void)
{
	map_list_close(user_tables);
	user_tables = NULL;
	use_passwd = false;
	initialised = false;
}

bool local_user_enabled(void)
{
	return cfg.local_recipient_maps.count > 0;
}

char *local_user_name(const char *address, char **extension)
{
	const char *at = strrchr(address, '@');
	size_t len = at ? (size_t)(at - address) : strlen(address);
	char *name;

	if (extension)
		*extension = NULL;
	if (len == 0 || address[0] == '"')
		return NULL;
	name = xstrndup(address, len);
	for (char *p = name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	/* "user+ext": the user is "user" (Postfix's recipient_delimiter). */
	char *plus = strchr(name, '+');
	if (plus != NULL && plus != name) {
		if (extension)
			*extension = xstrdup(plus + 1);
		*plus = '\0';
	}
	return name;
}

enum map_result local_user_lookup(const char *address)
{
	char err[256];
	enum map_result result = MAP_NOTFOUND;

	if (!local_user_init(err, sizeof(err))) {
		log_warning("local_recipient_maps: %s", err);
		return MAP_ERROR;
	}
	char *name = local_user_name(address, NULL);
	if (name == NULL)
		return MAP_NOTFOUND;
	if (use_passwd) {
		struct passwd pw, *found = NULL;
		char buf[4096];
		int e = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
		if (found != NULL)
			result = MAP_FOUND;
		else if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF &&
		    e != EPERM) {
			/* getpwnam_r(3): those say "no such user". */
			log_warning("getpwnam(%s): %s", name, strerror(e));
			result = MAP_ERROR;
		}
	}
	if (result == MAP_NOTFOUND && user_tables != NULL) {
		char *value = NULL;
		result = map_list_lookup(user_tables, name, &value);
		free(value);
	}
	free(name);
	return result;
}
