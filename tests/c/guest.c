/* Programs that a guest library must not disturb, each making creation calls
 * (pwrite64 of one byte at --size - 1) in a situation of its own.
 *
 * usage: guest --mode MODE --dir DIR [--size BYTES] [options]
 *
 * closefds  [--vfork]  a creation call (in a vfork child with --vfork), then every fd
 *           from 3 up closed, eight files of the program's own opened (DIR/own-0..7),
 *           a second creation call, and one line written to each own file
 * signal    --race syslog|malloc [--count N]  creation calls from a SIGALRM handler
 *           (every 1 ms) while the program loops in syslog(3) or malloc/free, until N
 *           calls were made
 * cancel    [--rounds N]  a thread is cancelled (deferred) just before its creation call
 * stack     --on thread|signal  a creation call on a PTHREAD_STACK_MIN (16 KiB) thread
 *           stack, or in a handler on an 8 KiB sigaltstack with a guard page below
 * stderr    --fd2 closed|dup2|keep  123 bytes written to DIR/stderr.vmem through fd 2,
 *           then a creation call on it: with `closed` the program starts with fd 2
 *           closed and the file becomes fd 2; with `dup2` it is dup2'ed over fd 2
 *
 * Output: key=value lines. */
#include "common.h"
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <syslog.h>

static const char *dir;
static int64_t size;
static const char zero_byte = 0;

static void file_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static int open_file(const char *name, int flags)
{
    char p[PATH_MAX];
    file_path(p, sizeof p, name);
    int fd = open(p, O_RDWR | O_CREAT | flags, 0600);
    if (fd < 0)
        die("open %s", p);
    return fd;
}

static long long create(int fd)
{
    return pwrite64(fd, &zero_byte, 1, size - 1);
}

static void on_signal(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0)
        die("sigaction");
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        die("opendir /proc/self/fd");
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* ---- closefds ---- */

#define OWN_FILES 8

static int closefds(int use_vfork)
{
    int before, after;
    if (use_vfork) {
        before = count_fds();
        pid_t pid = vfork();
        if (pid == 0) {
            int fd = open_file("first.vmem", 0);
            _exit(create(fd) == 1 ? 0 : 1);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("vfork child failed");
        after = count_fds();
    } else {
        int fd = open_file("first.vmem", 0);
        before = count_fds();
        if (create(fd) != 1)
            die("first creation call");
        after = count_fds();
    }
    /* Open fds just before and just after the creation call. */
    kv("fds_before", before);
    kv("fds_after", after);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    int own[OWN_FILES];
    for (int i = 0; i < OWN_FILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "own-%d", i);
        own[i] = open_file(name, O_TRUNC);
    }
    int second = open_file("second.vmem", 0);
    kv("second_ret", create(second));
    int written = 0;
    for (int i = 0; i < OWN_FILES; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "own file %d\n", i);
        written += write(own[i], line, len) == len;
        close(own[i]);
    }
    kv("own_written", written);
    return 0;
}

/* ---- signal ---- */

#define SIGNAL_FILES 8
static int signal_fds[SIGNAL_FILES];
static volatile long long signal_calls, signal_ok;

static void creation_handler(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = signal_fds[signal_calls % SIGNAL_FILES];
    if (ftruncate64(fd, 0) == 0 && create(fd) == 1)
        signal_ok++;
    signal_calls++;
    errno = saved;
}

static int signal_race(const char *race, long long count)
{
    for (int i = 0; i < SIGNAL_FILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "signal-%d.vmem", i);
        signal_fds[i] = open_file(name, O_TRUNC);
    }
    on_signal(SIGALRM, creation_handler, SA_RESTART);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int use_syslog = strcmp(race, "syslog") == 0;
    if (!use_syslog && strcmp(race, "malloc") != 0)
        die("--race: syslog or malloc");
    long long loops = 0;
    unsigned seed = 1;
    while (signal_calls < count) {
        if (use_syslog) {
            syslog(LOG_INFO, "guest test line %lld", loops);
        } else {
            seed = seed * 1103515245 + 12345;
            size_t n = 16 + (seed >> 8) % 65536;
            char *p = malloc(n);
            if (!p)
                die("malloc");
            p[0] = p[n - 1] = 1;
            char *q = realloc(p, n / 2 + 1);
            free(q ? q : p);
        }
        loops++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    kv("signal_calls", signal_calls);
    kv("signal_ok", signal_ok);
    kv("loops", loops);
    return 0;
}

/* ---- cancel ---- */

static volatile int cancel_ready, cancel_sent;
static int cancel_fd;

static void *cancelled_thread(void *arg)
{
    (void)arg;
    cancel_ready = 1;
    while (!cancel_sent)
        sched_yield(); /* not a cancellation point */
    create(cancel_fd);
    for (;;)
        pause();
    return NULL;
}

static int cancel(long long rounds)
{
    long long cancelled = 0;
    for (long long r = 0; r < rounds; r++) {
        char name[32];
        snprintf(name, sizeof name, "cancel-%lld.vmem", r);
        cancel_fd = open_file(name, O_TRUNC);
        cancel_ready = cancel_sent = 0;
        pthread_t t;
        if (pthread_create(&t, NULL, cancelled_thread, NULL) != 0)
            die("pthread_create");
        while (!cancel_ready)
            sched_yield();
        if (pthread_cancel(t) != 0)
            die("pthread_cancel");
        cancel_sent = 1;
        void *ret;
        if (pthread_join(t, &ret) != 0)
            die("pthread_join");
        cancelled += ret == PTHREAD_CANCELED;
        close(cancel_fd);
    }
    kv("rounds", rounds);
    kv("cancelled", cancelled);
    return 0;
}

/* ---- stack ---- */

#define SMALL_THREAD_STACK 16384
#define SMALL_SIGNAL_STACK 8192
#define GUARD 4096
static volatile long long stack_signal_ret = -2;
/* Made before: on these stacks the program itself spends almost nothing. */
static char stack_path[PATH_MAX];

static long long create_on_small_stack(void)
{
    int fd = open(stack_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    long long ret = fd < 0 ? -1 : create(fd);
    close(fd);
    return ret;
}

static void *small_stack_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)create_on_small_stack();
}

static void small_stack_handler(int sig)
{
    (void)sig;
    stack_signal_ret = create_on_small_stack();
}

static int stack(const char *on)
{
    file_path(stack_path, sizeof stack_path, "stack.vmem");
    if (strcmp(on, "thread") == 0) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (pthread_attr_setstacksize(&attr, SMALL_THREAD_STACK) != 0)
            die("pthread_attr_setstacksize");
        pthread_t t;
        if (pthread_create(&t, &attr, small_stack_thread, NULL) != 0)
            die("pthread_create");
        void *ret;
        pthread_join(t, &ret);
        kv("ret", (intptr_t)ret);
        return 0;
    }
    if (strcmp(on, "signal") != 0)
        die("--on: thread or signal");
    char *area = mmap(NULL, GUARD + SMALL_SIGNAL_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED || mprotect(area, GUARD, PROT_NONE) != 0)
        die("mmap");
    stack_t ss = {.ss_sp = area + GUARD, .ss_size = SMALL_SIGNAL_STACK, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0)
        die("sigaltstack");
    on_signal(SIGUSR1, small_stack_handler, SA_ONSTACK);
    raise(SIGUSR1);
    kv("ret", stack_signal_ret);
    return 0;
}

/* ---- stderr ---- */

#define STDERR_PREFIX 123

static int fd2(const char *how)
{
    int fd;
    if (strcmp(how, "closed") == 0) {
        if (fcntl(2, F_GETFD) != -1)
            die("fd 2 should be closed");
        fd = open_file("stderr.vmem", O_TRUNC);
    } else {
        fd = open_file("stderr.vmem", O_TRUNC);
        if (strcmp(how, "dup2") == 0) {
            if (dup2(fd, 2) != 2)
                die("dup2");
            close(fd);
            fd = 2;
        } else if (strcmp(how, "keep") != 0) {
            die("--fd2: closed, dup2 or keep");
        }
    }
    kv("fd", fd);
    unsigned char data[STDERR_PREFIX];
    pattern(data, sizeof data, 0);
    if (write(fd, data, sizeof data) != sizeof data)
        die("write");
    kv("ret", create(fd));
    kv("offset_after", lseek64(fd, 0, SEEK_CUR));
    return 0;
}

int main(int argc, char **argv)
{
    prog_name = "guest";
    const char *mode = opt(argc, argv, "--mode", "");
    dir = opt(argc, argv, "--dir", NULL);
    size = opt_num(argc, argv, "--size", 128 << 20);
    if (!dir)
        die("--dir is required");
    kv("pid", getpid());
    if (strcmp(mode, "closefds") == 0)
        return closefds(flag(argc, argv, "--vfork"));
    if (strcmp(mode, "signal") == 0)
        return signal_race(opt(argc, argv, "--race", ""), opt_num(argc, argv, "--count", 300));
    if (strcmp(mode, "cancel") == 0)
        return cancel(opt_num(argc, argv, "--rounds", 5));
    if (strcmp(mode, "stack") == 0)
        return stack(opt(argc, argv, "--on", ""));
    if (strcmp(mode, "stderr") == 0)
        return fd2(opt(argc, argv, "--fd2", "keep"));
    die("--mode: unknown %s", mode);
    return 2;
}
