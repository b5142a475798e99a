/* Creates files sparse with raw system calls (no libc pwrite64 for a preload to
 * catch), for the supervise tests; built static with gcc (-m32 for i686) and musl-gcc.
 * Prints what each call returned, without paths, so runs with and without nosparse
 * can be compared line by line.
 *
 *   raw_create pwrite|ftruncate|errors|direct|fork|threads|filter|wait|undumpable  DIR  SIZE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#if __has_include(<linux/seccomp.h>)
#include <linux/filter.h>
#include <linux/seccomp.h>
#define HAVE_SECCOMP 1
#endif
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static long long size;
static char *self;

static long raw_pwrite(int fd, const void *buf, long long off)
{
#ifdef __i386__
    return syscall(SYS_pwrite64, fd, buf, 1, (unsigned long)off, (unsigned long)((unsigned long long)off >> 32));
#else
    return syscall(SYS_pwrite64, fd, buf, 1, off);
#endif
}

static long raw_ftruncate(int fd, long long len)
{
#ifdef __i386__
    return syscall(SYS_ftruncate64, fd, (unsigned long)len, (unsigned long)((unsigned long long)len >> 32));
#else
    return syscall(SYS_ftruncate, fd, len);
#endif
}

static int open_new(const char *name, int flags)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, flags | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    return fd;
}

/* One line: the call's result, errno, and the file's size and offset after it. */
static void report(const char *what, int fd, long r)
{
    int e = r < 0 ? errno : 0;
    struct stat st;
    long long sz = fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
    long long at = lseek(fd, 0, SEEK_CUR);
    printf("%s ret=%ld errno=%d size=%lld offset=%lld\n", what, r, e, sz, at);
    fflush(stdout);
}

static void create(const char *name)
{
    int fd = open_new(name, O_RDWR);
    char b = 'x';
    report(name, fd, raw_pwrite(fd, &b, size - 1));
    char back = 0;
    if (pread(fd, &back, 1, size - 1) != 1 || back != 'x')
        printf("%s: the byte did not land\n", name);
    close(fd);
}

static void *thread_main(void *arg)
{
    char name[32];
    snprintf(name, sizeof name, "t%ld", (long)arg);
    int fd = open_new(name, O_RDWR);
    char b = 'x';
    long r = raw_pwrite(fd, &b, size - 1);
    close(fd);
    return (void *)r;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: raw_create MODE DIR SIZE\n");
        return 2;
    }
    self = argv[0];
    dir = argv[2];
    size = atoll(argv[3]);
    const char *mode = argv[1];
    char b = 'x';
    if (!strcmp(mode, "pwrite")) {
        create("p");
    } else if (!strcmp(mode, "direct")) {
        /* A one-byte O_DIRECT write: EINVAL on ext4 and xfs, left to the program. */
        int fd = open_new("d", O_RDWR | O_DIRECT);
        report("direct", fd, raw_pwrite(fd, &b, size - 1));
    } else if (!strcmp(mode, "undumpable")) {
        /* Out of an unprivileged supervisor's reach (no pidfd_getfd, no process_vm_readv). */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) {
            perror("prctl");
            return 2;
        }
        create("u");
    } else if (!strcmp(mode, "ftruncate")) {
        int fd = open_new("f", O_RDWR);
        report("ftruncate", fd, raw_ftruncate(fd, size));
    } else if (!strcmp(mode, "errors")) {
        /* Candidate calls that fail: the program must see its own errors. */
        report("ebadf", -1, raw_pwrite(1000, &b, size - 1));
        int ro = open_new("ro", O_RDONLY);
        report("rdonly", ro, raw_pwrite(ro, &b, size - 1));
        int fd = open_new("e", O_RDWR);
        report("efault", fd, raw_pwrite(fd, (void *)8, size - 1));
        report("negative", fd, raw_pwrite(fd, &b, -5));
        int ap = open_new("a", O_RDWR | O_APPEND);
        report("append", ap, raw_pwrite(ap, &b, size - 1));
        /* A file-size limit below the offset: EFBIG (SIGXFSZ ignored). */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {size / 2, RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
        int lim = open_new("l", O_RDWR);
        report("fsize", lim, raw_pwrite(lim, &b, size - 1));
    } else if (!strcmp(mode, "fork")) {
        pid_t pid = fork();
        if (pid == 0) {
            execl(self, self, "pwrite", dir, argv[3], (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else if (!strcmp(mode, "threads")) {
        enum { N = 8 };
        pthread_t t[N];
        for (long i = 0; i < N; i++)
            pthread_create(&t[i], NULL, thread_main, (void *)i);
        for (long i = 0; i < N; i++) {
            void *r;
            pthread_join(t[i], &r);
            printf("t%ld ret=%ld\n", i, (long)r);
        }
#ifdef HAVE_SECCOMP
    } else if (!strcmp(mode, "filter")) {
        /* The program's own filter: getppid fails with EPERM (an odd rule, visible). */
        struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof code / sizeof code[0], code};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
            perror("seccomp");
            return 2;
        }
        long r = syscall(SYS_getppid);
        printf("getppid ret=%ld errno=%d\n", r, r < 0 ? errno : 0);
        create("s");
#endif
    } else if (!strcmp(mode, "wait")) {
        /* Waits for a line on stdin, then creates: the test kills the supervisor first. */
        printf("ready\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return 3;
        int fd = open_new("w", O_RDWR);
        report("after", fd, raw_pwrite(fd, &b, size - 1));
    } else {
        fprintf(stderr, "raw_create: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
