/* name.c - character and length checks of names and ids. */
#include "name.h"

#include <string.h>

bool name_chars_ok(const char *s, const char *extra, size_t max)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        /* ids are checked on every submission that names one: no strlen first */
        if (n >= max || (!alnum && !strchr(extra, c)))
            return false;
    }
    return n > 0;
}

bool name_queue_ok(const char *s)
{
    return name_chars_ok(s, "_-", NAME_QUEUE_MAX);
}

bool name_id_ok(const char *s)
{
    return name_chars_ok(s, "._:-", NAME_ID_MAX);
}

bool name_type_ok(const char *s)
{
    return s && s[0] && strnlen(s, NAME_TYPE_MAX + 1) <= NAME_TYPE_MAX;
}
