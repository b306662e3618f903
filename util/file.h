/* file.h - reading a small file (a config, a secret, a PEM) whole, and
 * freeing a secret so that the freed memory no longer holds it. */
#ifndef JOBD_FILE_H
#define JOBD_FILE_H

#include <stddef.h>

/* Reads the whole file at path, at most max bytes, into new memory (caller
 * frees), NUL-terminated, its size in *len. NULL on failure, with *why a
 * static text (strerror's, or "larger than the limit or out of memory"). */
char *file_read_all(const char *path, size_t max, size_t *len, const char **why);

/* Overwrites the NUL-terminated secret s with zeros, then frees it. NULL is fine. */
void file_secret_free(char *s);

#endif
