/*
 * Replay driver: a main() for builds without a fuzzing engine. Runs
 * LLVMFuzzerTestOneInput once over every file named on the command line,
 * recursing into folders (entries sorted, so runs are repeatable), and
 * prints one line with the count. ctest uses it to replay the corpora under
 * gcc, ASan+UBSan and Valgrind; a harness signals a violation by aborting.
 *
 * With no arguments it runs stdin once. Built with AFL++'s afl-clang-fast
 * (which defines __AFL_FUZZ_TESTCASE_LEN) and started with no arguments,
 * it runs AFL++'s shared-memory persistent loop instead.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

static unsigned long n_inputs;
/* The input being run, named when a harness aborts on it. */
static const char *current = "(stdin)";

static void on_abort(int sig)
{
    static const char msg[] = "replay: the input that failed: ";
    (void)!write(2, msg, sizeof(msg) - 1);
    (void)!write(2, current, strlen(current));
    (void)!write(2, "\n", 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_buffer(const uint8_t *data, size_t size)
{
    /* A private copy of exactly `size` bytes, so that ASan and Valgrind
     * see a read past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        return -1;
    }
    if (size > 0)
        memcpy(copy, data, size);
    (void)LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    n_inputs++;
    return 0;
}

static int read_stream(FILE *f, uint8_t **out, size_t *out_len)
{
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return -1;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0;
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = read_stream(f, &buf, &len);
    fclose(f);
    if (rc != 0) {
        fprintf(stderr, "replay: %s: read error\n", path);
        return -1;
    }
    current = path;
    rc = run_buffer(buf, len);
    current = "(none)";
    free(buf);
    return rc;
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);

    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        /* Skip ".", ".." and hidden files (.gitkeep, editor droppings). */
        if (rc == 0 && name[0] != '.') {
            size_t len = strlen(path) + strlen(name) + 2;
            char *child = malloc(len);
            if (child == NULL) {
                rc = -1;
            } else {
                snprintf(child, len, "%s/%s", path, name);
                rc = run_path(child);
                free(child);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *prog = strrchr(argv[0], '/');
    prog = prog != NULL ? prog + 1 : argv[0];
    signal(SIGABRT, on_abort);

#ifdef __AFL_FUZZ_TESTCASE_LEN
    if (argc < 2) {
        __AFL_INIT();
        const unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
        while (__AFL_LOOP(10000)) {
            size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
            (void)LLVMFuzzerTestOneInput(buf, len);
        }
        return 0;
    }
#endif

    if (argc < 2) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (read_stream(stdin, &buf, &len) != 0 || run_buffer(buf, len) != 0) {
            free(buf);
            return 1;
        }
        free(buf);
    }
    for (int i = 1; i < argc; i++) {
        if (run_path(argv[i]) != 0)
            return 1;
    }
    if (argc >= 2 && n_inputs == 0) {
        /* An empty or missing corpus would pass silently otherwise. */
        fprintf(stderr, "%s: no inputs found\n", prog);
        return 1;
    }
    printf("%s: %lu inputs replayed, no violation\n", prog, n_inputs);
    return 0;
}
