/*
 * local_user.h - local_recipient_maps: which local parts of the local
 * domains are users that the local delivery agent (local/) serves.
 * An entry is "unix:passwd" (the system's accounts, through getpwnam(3)
 * and so through nsswitch.conf) or any lookup table of map.h whose keys
 * are user names. smtpd asks at RCPT, qmgr when it routes, local when it
 * delivers; an empty list turns system-user delivery off.
 */
#ifndef POSTERN_LOCAL_USER_H
#define POSTERN_LOCAL_USER_H

#include <stdbool.h>
#include <stddef.h>

#include "map.h"

/* Open the tables of local_recipient_maps; false with err when an entry
 * is not a table. */
bool local_user_init(char *err, size_t errsize);
void local_user_close(void);
/* Is local_recipient_maps set at all? */
bool local_user_enabled(void);
/*
 * The user name of a recipient: its local part, lowercased, without a
 * "+extension" (malloc'd). *extension (optional) gets the extension, or
 * NULL. NULL when the local part is empty or quoted.
 */
char *local_user_name(const char *address, char **extension);
/* Is this recipient one of our users? MAP_ERROR: a table (or the name
 * service) could not be read: a temporary failure. */
enum map_result local_user_lookup(const char *address);

#endif
