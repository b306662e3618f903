/* test_layers.c - tests/layers.sh, the include check `make test` runs first:
 * run on small source trees of its own, it fails on every kind of upward
 * include and passes includes of the same or a lower layer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

extern char **environ;

TestSuite(layers, .timeout = 60);

/* A fresh tree under the scratch folder with util/ server/ queues/ handlers/. */
static void tree_new(char *root, size_t len)
{
    char name[32], dir[512];
    snprintf(root, len, "%s/layers_%s", ts_tmpdir(), ts_unique(name));
    cr_assert_eq(mkdir(root, 0700), 0, "mkdir %s: %s", root, strerror(errno));
    static const char *const dirs[] = {"util", "server", "queues", "handlers"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(dir, sizeof dir, "%s/%s", root, dirs[i]);
        cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s: %s", dir, strerror(errno));
    }
}

/* Writes root/rel with text. */
static void tree_put(const char *root, const char *rel, const char *text)
{
    char path[768];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The exit status of tests/layers.sh run on root (its output discarded), or -1. */
static int layers_run(const char *root)
{
    char *const argv[] = {"tests/layers.sh", (char *)root, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "spawn tests/layers.sh: %s", strerror(rc));
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Every include of the same or a lower layer, written as the sources do. */
static void tree_good(const char *root)
{
    tree_put(root, "util/ulid.h", "#include <stdint.h>\n");
    tree_put(root, "util/ulid.c", "#include \"ulid.h\"\n");
    tree_put(root, "server/jobd.h", "#include \"../util/ulid.h\"\n");
    tree_put(root, "server/http.c", "#include \"jobd.h\"\n");
    tree_put(root, "queues/pipeline.h", "#include \"../server/jobd.h\"\n");
    tree_put(root, "queues/store.c", "  #  include \"pipeline.h\" /* blanks */\n");
    tree_put(root, "handlers/jobs.c", "#include \"../queues/pipeline.h\"\n");
    tree_put(root, "server/main.c", "#include \"../handlers/handlers.h\"\n");
}

Test(layers, includes_of_the_same_or_a_lower_layer_pass)
{
    char root[512];
    tree_new(root, sizeof root);
    tree_good(root);
    cr_expect_eq(layers_run(root), 0);
}

Test(layers, every_upward_include_fails)
{
    static const struct {
        const char *file, *include;
    } upward[] = {
        {"util/utf8.c", "../server/jobd.h"},
        {"util/utf8.h", "../queues/job.h"},
        {"server/log.c", "../queues/job.h"},
        {"server/http.c", "../handlers/handlers.h"},
        {"queues/exec.c", "../handlers/handlers.h"},
        {"server/config.c", "../server/../queues/pipeline.h"},
    };
    for (size_t i = 0; i < sizeof upward / sizeof *upward; i++) {
        char root[512], text[128];
        tree_new(root, sizeof root);
        tree_good(root);
        snprintf(text, sizeof text, "#include <stdio.h>\n#include \"%s\"\n", upward[i].include);
        tree_put(root, upward[i].file, text);
        cr_expect_eq(layers_run(root), 1, "%s including %s", upward[i].file, upward[i].include);
    }
}

Test(layers, a_tree_without_sources_is_an_error)
{
    char root[512];
    tree_new(root, sizeof root);
    cr_expect_eq(layers_run(root), 2);
}
