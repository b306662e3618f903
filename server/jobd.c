/* jobd.c - the small utilities of jobd.h: errors, clocks, queue lookup. */
#include "jobd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../queues/pipeline.h"

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

queue_t *jobd_queue(jobd_t *ctx, const char *name)
{
    for (size_t i = 0; name && i < ctx->n_queues; i++)
        if (strcmp(ctx->queues[i]->cfg->name, name) == 0)
            return ctx->queues[i];
    return NULL;
}
