/* file.c - reading a small file whole. */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void file_secret_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s; /* volatile: the stores are not dropped as dead before free */
    while (*p)
        *p++ = '\0';
    free(s);
}

char *file_read_all(const char *path, size_t max, size_t *len, const char **why)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    while (!feof(f) && !ferror(f) && cap <= max) {
        size_t grown_cap = cap ? 2 * cap : 4096;
        char *grown = realloc(buf, grown_cap);
        if (!grown)
            break;
        buf = grown;
        cap = grown_cap;
        *len += fread(buf + *len, 1, cap - *len - 1, f); /* keeps a byte for the NUL */
    }
    /* a directory opens, then fails to read (EISDIR) */
    if (ferror(f) || !feof(f) || *len > max) {
        *why = ferror(f) ? strerror(errno) : "larger than the limit or out of memory";
        free(buf);
        buf = NULL;
    } else {
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}
