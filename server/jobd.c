/* jobd.c - the small utilities of jobd.h: errors, clocks. */
#include "jobd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>


int jobd_fail(jobd_error *err, int status, const char *code, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = status;
    err->code = code;
    err->field[0] = '\0';
    err->index = -1;
    err->retry_after = 0;
    return -1;
}

static int64_t jobd_clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t jobd_now_ms(void)
{
    return jobd_clock_ms(CLOCK_REALTIME);
}

int64_t jobd_mono_ms(void)
{
    return jobd_clock_ms(CLOCK_MONOTONIC);
}

int64_t jobd_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
