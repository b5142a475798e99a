/* A creation call while other threads or processes write the same file: before it
 * (data with holes), during it, and after it. Every block written carries the pattern
 * of its own offset (tag = offset / 4096), so the test can read the file from outside
 * and find each block where it belongs, and nothing where nothing was written.
 *
 * usage: writers --path FILE --size BYTES --old BYTES [--open rdwr|direct]
 *                [--shared N] [--shared-at OFFSET] [--ranges K] [--delay-us US]
 *                [--tail] [--process]
 *
 * before    the pattern over [0, 1 MiB) and [old - 1 MiB, old), a hole between
 * creation  pwrite64 of one byte at size - 1 (through an O_DIRECT fd with --open
 *           direct: the real call then fails with EINVAL)
 * --shared  a writer appends N blocks with write() through the creation call's own
 *           open file description (a thread, or with --process a child sharing it),
 *           from --shared-at on: its blocks land where the shared file offset says
 * --ranges  a writer, once the creation call has given the file its size and then
 *           --delay-us more, writes K pieces of 64 KiB spread over the last quarter of
 *           the new range, each once: data written while the library allocates the
 *           range, before a zero fill can reach that far (waiting for the size keeps
 *           them from landing before the call, which would make it no creation)
 * --tail    a writer writes blocks one after the other past the end of the creation
 *           (from --size on), until the creation call has returned: data that a
 *           rollback to the old size would cut, and that lies outside the new range
 * after     16 blocks at size / 2 once the call has returned
 * --process the writers are child processes instead of threads
 *
 * Output: key=value lines; the test checks the file against them. */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MIB (1LL << 20)
#define RANGE_PIECE (64 * 1024)
#define TAIL_MAX_BLOCKS 16384
#define MAX_RANGES 64

struct shared {
    volatile int start;
    volatile int done;
    volatile long long shared_count, shared_during;
    volatile long long ranges_during;
    volatile long long tail_count, tail_during;
};

static struct shared *sh;
static const char *path;
static int fd;
static int64_t size, old, shared_at;
static long long shared_n, ranges_k, delay_us;

static void wait_start(void)
{
    while (!sh->start)
        sched_yield();
}

static void write_block(int wfd, int64_t at)
{
    static __thread unsigned char block[BLOCK];
    pattern(block, BLOCK, at / BLOCK);
    if (pwrite64(wfd, block, BLOCK, at) != BLOCK)
        die("pwrite at %lld", (long long)at);
}

static int open_own(void)
{
    int f = open(path, O_RDWR | O_CLOEXEC);
    if (f < 0)
        die("open %s", path);
    return f;
}

static void *shared_writer(void *arg)
{
    (void)arg;
    unsigned char block[BLOCK];
    wait_start();
    for (long long i = 0; i < shared_n; i++) {
        pattern(block, BLOCK, shared_at / BLOCK + i);
        if (write(fd, block, BLOCK) != BLOCK)
            die("write %lld", i);
        sh->shared_count = i + 1;
        if (!sh->done)
            sh->shared_during++;
        sleep_us(50);
    }
    return NULL;
}

static int64_t range_at(long long k)
{
    int64_t quarter = size / 4;
    return (size - quarter + k * (quarter / ranges_k)) / BLOCK * BLOCK;
}

static void *range_writer(void *arg)
{
    (void)arg;
    int f = open_own();
    wait_start();
    while (!sh->done && fstat_or_die(f).st_size < size)
        sleep_us(10);
    sleep_us(delay_us);
    for (long long k = 0; k < ranges_k; k++) {
        for (int64_t at = range_at(k); at < range_at(k) + RANGE_PIECE; at += BLOCK)
            write_block(f, at);
        if (!sh->done)
            sh->ranges_during++;
    }
    close(f);
    return NULL;
}

static void *tail_writer(void *arg)
{
    (void)arg;
    int f = open_own();
    wait_start();
    int after_done = 0;
    for (long long i = 0; i < TAIL_MAX_BLOCKS && after_done < 4; i++) {
        write_block(f, size + i * BLOCK);
        sh->tail_count = i + 1;
        if (sh->done)
            after_done++;
        else
            sh->tail_during++;
    }
    close(f);
    return NULL;
}

/* Starts `fn` as a thread, or as a child process that runs it and exits. */
static void start(void *(*fn)(void *), int as_process, pthread_t *t, pid_t *pid)
{
    if (as_process) {
        *pid = fork();
        if (*pid < 0)
            die("fork");
        if (*pid == 0) {
            fn(NULL);
            _exit(0);
        }
    } else if (pthread_create(t, NULL, fn, NULL) != 0) {
        die("pthread_create");
    }
}

int main(int argc, char **argv)
{
    prog_name = "writers";
    path = opt(argc, argv, "--path", NULL);
    size = opt_num(argc, argv, "--size", 256 * MIB);
    old = opt_num(argc, argv, "--old", 16 * MIB);
    shared_n = opt_num(argc, argv, "--shared", 0);
    shared_at = opt_num(argc, argv, "--shared-at", 4 * MIB);
    ranges_k = opt_num(argc, argv, "--ranges", 0);
    delay_us = opt_num(argc, argv, "--delay-us", 20000);
    int tail = flag(argc, argv, "--tail");
    int as_process = flag(argc, argv, "--process");
    int direct = strcmp(opt(argc, argv, "--open", "rdwr"), "direct") == 0;
    if (!path || old < 2 * MIB || ranges_k > MAX_RANGES)
        die("--path, --old of at least 2 MiB and --ranges up to %d", MAX_RANGES);

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    int own = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (own < 0)
        die("open %s", path);
    for (int64_t at = 0; at < MIB; at += BLOCK)
        write_block(own, at);
    for (int64_t at = old - MIB; at < old; at += BLOCK)
        write_block(own, at);
    if (fsync(own) != 0)
        die("fsync");
    fd = direct ? open(path, O_RDWR | O_DIRECT | O_CLOEXEC) : own;
    if (fd < 0)
        die("open O_DIRECT");
    lseek64(fd, shared_at, SEEK_SET);

    pthread_t threads[3];
    pid_t pids[3] = {0, 0, 0};
    int n = 0;
    if (shared_n > 0)
        start(shared_writer, as_process, &threads[n], &pids[n]), n++;
    if (ranges_k > 0)
        start(range_writer, as_process, &threads[n], &pids[n]), n++;
    if (tail)
        start(tail_writer, as_process, &threads[n], &pids[n]), n++;

    static const char byte = 0;
    sh->start = 1;
    double t0 = now_s();
    errno = 0;
    long long ret = pwrite64(fd, &byte, 1, size - 1);
    int err = ret < 0 ? errno : 0;
    double t1 = now_s();
    sh->done = 1;
    for (int64_t at = size / 2; at < size / 2 + 16 * BLOCK; at += BLOCK)
        write_block(own, at);
    for (int i = 0; i < n; i++) {
        if (as_process) {
            int status;
            if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("writer process %d failed (status %d)", i, status);
        } else {
            pthread_join(threads[i], NULL);
        }
    }
    kv("ret", ret);
    kv("errno", err);
    kv("call_us", (long long)((t1 - t0) * 1e6));
    kv("offset_after", lseek64(fd, 0, SEEK_CUR));
    kv("size_after", fstat_or_die(own).st_size);
    kv("shared_at", shared_at);
    kv("shared_count", sh->shared_count);
    kv("shared_during", sh->shared_during);
    for (long long k = 0; k < ranges_k; k++) {
        char key[32];
        snprintf(key, sizeof key, "range_at_%lld", k);
        kv(key, range_at(k));
    }
    kv("range_count", ranges_k);
    kv("range_len", RANGE_PIECE);
    kv("ranges_during", sh->ranges_during);
    kv("tail_at", size);
    kv("tail_count", sh->tail_count);
    kv("tail_during", sh->tail_during);
    kv("after_at", size / 2);
    kv("after_count", 16);
    return 0;
}
