/* One scenario of the torture test (tests/torture.rs): a file prepared with a layout,
 * actors started beside the creation call, an optional seccomp filter on the calling
 * thread alone that makes one syscall fail, then the call. Run with and without the
 * library; the test compares what it prints and what it leaves.
 *
 * usage: torture --path FILE --old BYTES --offset N [--call pwrite64|write|ftruncate]
 *        [--open rdwr|wronly] [--flags direct,sync,append,nolargefile]
 *        [--layout empty|data|holes|keepsize|unwritten] [--keep BYTES] [--mode OCTAL]
 *        [--xattr] [--caps] [--wt-at A --wt-n N] [--wp-at A --wp-n N]
 *        [--mover-at A --mover-n N] [--forker] [--lease] [--fault NAME:ERRNO]
 *        [--rlimit BYTES] [--no-fsetid] [--proc]
 *
 * Actors write the pattern of each block's own index (tests/c/common.h), on disjoint
 * blocks, so the final content does not depend on the interleaving:
 *   --wt / --wp  a thread / a process rewriting N blocks at A, A + 8 KiB, ... through
 *                an fd of their own, from before the call (one whole pass first) until
 *                it has returned (or, for the process, until its parent is gone)
 *   --mover      write()s N blocks from A through the call's own fd, one at each
 *                moment below, moving its offset; --forker: forks children that list the fds they hold
 *                (/proc/self/fd) and exit (printed as child_fd= lines). Both act
 *                inside the call: a filter on the calling thread notifies a
 *                supervisor of each syscall the library makes (SECCOMP_RET_USER_NOTIF),
 *                which acts while that syscall waits; without the library, after it
 *   --lease      a write lease (F_SETLEASE) on the call's fd; a break is a SIGIO
 * --proc   the call goes to /proc/self/mem at the last byte of a mapping of --offset
 *          bytes instead (--path is not used)
 * --fault  a seccomp filter on the calling thread: syscall NAME fails with ERRNO
 * --no-fsetid  the program gives up CAP_FSETID before its actors start, as a program
 *          not run by root: a change to the file's data then removes its set-user-ID
 *          and set-group-ID bits
 * Prints `calling=1` just before the call (the test may SIGKILL then), key=value lines. */
#include "common.h"
#include <dirent.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#define STRIDE (2 * BLOCK)
#define MAX_FORK_ENTRIES 64

static const char *path;
static int fd, wfd;
static int64_t offset;
static const char *how;
static unsigned char *mem; /* --proc: the mapping written through /proc/self/mem */

struct shared {
    volatile int in_call, done;
    volatile long long wt_writes, wp_writes, wp_passes, mover_writes;
};
static struct shared *sh;
static volatile int wt_passes;

static void write_block(int f, int64_t at)
{
    unsigned char block[BLOCK];
    pattern(block, BLOCK, at / BLOCK);
    if (pwrite64(f, block, BLOCK, at) != BLOCK)
        die("writer: pwrite at %lld", (long long)at);
}

static int64_t wt_at, wt_n, wp_at, wp_n, mover_at, mover_n;

static void *writer_thread(void *arg)
{
    (void)arg;
    for (int last = 0; !last;) {
        last = sh->done;
        for (int64_t i = 0; i < wt_n; i++, sh->wt_writes++)
            write_block(wfd, wt_at + i * STRIDE);
        wt_passes++;
    }
    return NULL;
}

static void writer_process(pid_t parent)
{
    for (int last = 0; !last;) {
        last = sh->done || getppid() != parent;
        for (int64_t i = 0; i < wp_n; i++, sh->wp_writes++)
            write_block(wfd, wp_at + i * STRIDE);
        sh->wp_passes++;
    }
    _exit(0);
}

/* Writes the mover's next block through the call's own fd, moving its offset; false
 * once all are written. */
static int64_t moved;

static int move_one(void)
{
    static unsigned char block[BLOCK] __attribute__((aligned(BLOCK)));
    if (moved >= mover_n)
        return 0;
    pattern(block, BLOCK, mover_at / BLOCK + moved);
    if (write(fd, block, BLOCK) != BLOCK)
        die("mover: write %lld", (long long)moved);
    if (sh->in_call)
        sh->mover_writes++;
    moved++;
    return 1;
}

/* The fds a forked child holds, "N:target" with pipe and socket inode numbers cut off. */
static char fork_seen[MAX_FORK_ENTRIES][160];
static int fork_seen_n, forks_during;

static void child_lists_fds(int out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        _exit(3);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* Not its own listing's fd, nor the pipe it answers through: their numbers
         * depend on what else was open a moment before. */
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d) || atoi(e->d_name) == out)
            continue;
        char link[300], target[128] = "";
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        /* /proc/PID/...: another pid in each run. */
        if (strncmp(target, "/proc/", 6) == 0 && target[6] >= '0' && target[6] <= '9') {
            char *rest = target + 6;
            while (*rest >= '0' && *rest <= '9')
                rest++;
            memmove(target + 9, rest, strlen(rest) + 1);
            memcpy(target + 6, "PID", 3);
        }
        char *bracket = strchr(target, '[');
        if (bracket && (strncmp(target, "pipe:", 5) == 0 || strncmp(target, "socket:", 7) == 0))
            *bracket = 0;
        dprintf(out, "%s:%s\n", e->d_name, target);
    }
    _exit(0);
}

static void remember(const char *line)
{
    for (int i = 0; i < fork_seen_n; i++)
        if (strcmp(fork_seen[i], line) == 0)
            return;
    if (fork_seen_n < MAX_FORK_ENTRIES)
        snprintf(fork_seen[fork_seen_n++], sizeof fork_seen[0], "%s", line);
}

/* Forks a child that lists its fds; returns whether the fork happened while the call
 * ran (the call had started before and had not returned after). */
static int fork_once(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe");
    int before = sh->in_call;
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(p[0]);
        child_lists_fds(p[1]);
    }
    int during = before && sh->in_call;
    close(p[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += n;
    buf[len] = 0;
    close(p[0]);
    waitpid(pid, NULL, 0);
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        remember(line);
    return during;
}

/* The listener of the calling thread's notifying filter (--mover, --forker). */
static volatile int listener = -1;
static int fork_actor;

/* Answers the calling thread's notifications: at each syscall the library makes during
 * the call, the mover writes its next block and the forker forks, while the call waits
 * (so a block can land between the library's look at the file and its next step); then
 * the syscall goes on. Without the library nothing is notified, and both act once the
 * call has returned. */
static void *supervisor(void *arg)
{
    (void)arg;
    while (listener < 0 && !sh->done)
        sched_yield();
    for (;;) {
        struct pollfd p = {.fd = listener, .events = POLLIN};
        int ready = listener >= 0 && poll(&p, 1, 1) == 1 && (p.revents & POLLIN);
        if (!ready) {
            if (sh->done)
                break;
            continue;
        }
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
            continue; /* the call's thread went away */
        move_one();
        if (fork_actor)
            forks_during += fork_once();
        struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    while (move_one()) {
    }
    if (fork_actor)
        fork_once();
    return NULL;
}

/* --fault: the syscall numbers a name stands for on this architecture. */
struct fault_name {
    const char *name;
    long nrs[5];
};
#define NONE (-1L)
static const struct fault_name FAULTS[] = {
#ifdef __i386__
    {"fstat", {__NR_fstat, __NR_fstat64, __NR_fstatat64, __NR_statx, NONE}},
    {"fcntl", {__NR_fcntl, __NR_fcntl64, NONE}},
    {"fstatfs", {__NR_fstatfs, __NR_fstatfs64, NONE}},
    {"mmap", {__NR_mmap, __NR_mmap2, NONE}},
    {"readlinkat", {__NR_readlinkat, __NR_readlink, NONE}},
    {"openat", {__NR_openat, __NR_open, NONE}},
    {"lseek", {__NR_lseek, __NR__llseek, NONE}},
    {"ftruncate", {__NR_ftruncate, __NR_ftruncate64, NONE}},
    {"socket", {__NR_socket, __NR_socketcall, NONE}},
    {"prlimit", {__NR_prlimit64, __NR_getrlimit, __NR_ugetrlimit, NONE}},
#else
    {"fstat", {__NR_fstat, __NR_newfstatat, __NR_statx, NONE}},
    {"fcntl", {__NR_fcntl, NONE}},
    {"fstatfs", {__NR_fstatfs, NONE}},
    {"mmap", {__NR_mmap, NONE}},
    {"readlinkat", {__NR_readlinkat, __NR_readlink, NONE}},
    {"openat", {__NR_openat, __NR_open, NONE}},
    {"lseek", {__NR_lseek, NONE}},
    {"ftruncate", {__NR_ftruncate, NONE}},
    {"socket", {__NR_socket, NONE}},
    {"prlimit", {__NR_prlimit64, __NR_getrlimit, NONE}},
#endif
    {"ioctl", {__NR_ioctl, NONE}},
    {"fallocate", {__NR_fallocate, NONE}},
    {"madvise", {__NR_madvise, NONE}},
    {"fgetxattr", {__NR_fgetxattr, NONE}},
    {"pwritev", {__NR_pwritev, __NR_pwritev2, NONE}},
    {"sync_file_range", {__NR_sync_file_range, NONE}},
    {"pwrite64", {__NR_pwrite64, NONE}}, /* count 1 only: the program's own call */
    {"write", {__NR_write, NONE}},       /* count 1 only */
};

/* The syscall numbers `name` stands for; how many. */
static int numbers_of(const char *name, long *out)
{
    for (size_t i = 0; i < sizeof FAULTS / sizeof FAULTS[0]; i++)
        if (strcmp(FAULTS[i].name, name) == 0) {
            int n = 0;
            while (n < 5 && FAULTS[i].nrs[n] != NONE)
                out[n] = FAULTS[i].nrs[n], n++;
            return n;
        }
    die("unknown syscall %s", name);
    return 0;
}

#ifdef __i386__
#define ARCH AUDIT_ARCH_I386
#else
#define ARCH AUDIT_ARCH_X86_64
#endif

/* A filter: the syscalls `nrs` get `action` (for `count_one`, only with a count of 1),
 * every other syscall is allowed. */
static int build(struct sock_filter *prog, const long *nrs, int n_nrs, int count_one, unsigned action)
{
    int n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    /* For each number: equal → jump to the match block after the ALLOW. */
    for (int i = 0; i < n_nrs; i++)
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], (unsigned char)(n_nrs - i), 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    if (count_one) {
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2]));
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action);
    return n;
}

/* Installs, on the calling thread only, a filter failing `spec` ("NAME:ERRNO"). */
static void install_fault(const char *spec)
{
    char name[32];
    int err;
    if (sscanf(spec, "%31[^:]:%d", name, &err) != 2)
        die("--fault NAME:ERRNO: %s", spec);
    long nrs[5];
    int n_nrs = numbers_of(name, nrs);
    int count_one = strcmp(name, "pwrite64") == 0 || strcmp(name, "write") == 0;
    struct sock_filter prog[32];
    struct sock_fprog fprog = {
        .len = (unsigned short)build(prog, nrs, n_nrs, count_one, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        .filter = prog,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0)
        die("PR_SET_SECCOMP");
}

/* The syscalls the library makes beside the call itself: each is a moment inside it. */
static const char *const LIBRARY_SYSCALLS[] = {"fstat",   "fcntl",      "fstatfs", "ioctl",   "fallocate",
                                               "mmap",    "madvise",    "fgetxattr", "readlinkat", "openat",
                                               "pwritev", "sync_file_range", "socket", "prlimit"};

/* Installs, on the calling thread only, a filter that notifies the supervisor of each
 * of those syscalls. */
static void install_notifier(void)
{
    long nrs[64];
    int n_nrs = 0;
    for (size_t i = 0; i < sizeof LIBRARY_SYSCALLS / sizeof LIBRARY_SYSCALLS[0]; i++)
        n_nrs += numbers_of(LIBRARY_SYSCALLS[i], nrs + n_nrs);
    struct sock_filter prog[96];
    struct sock_fprog fprog = {.len = (unsigned short)build(prog, nrs, n_nrs, 0, SECCOMP_RET_USER_NOTIF), .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");
    int l = (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (l < 0)
        die("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
    listener = l;
}

static const char *fault;
static long long call_ret;
static int call_errno;

static void *caller(void *arg)
{
    (void)arg;
    static const char byte = 0;
    kv("calling", 1);
    if (fault)
        install_fault(fault);
    if (mover_n > 0 || fork_actor)
        install_notifier();
    sh->in_call = 1;
    errno = 0;
    if (strcmp(how, "pwrite64") == 0) {
        call_ret = pwrite64(fd, &byte, 1, offset);
    } else if (strcmp(how, "write") == 0) {
        call_ret = lseek64(fd, offset, SEEK_SET) < 0 ? -1 : write(fd, &byte, 1);
    } else if (strcmp(how, "ftruncate") == 0) {
        call_ret = ftruncate64(fd, offset + 1);
    } else {
        die("--call: unknown %s", how);
    }
    call_errno = call_ret < 0 ? errno : 0;
    sh->in_call = 0;
    return NULL;
}

static volatile sig_atomic_t signals[65];

static void count_signal(int sig)
{
    signals[sig]++;
}

/* Takes CAP_FSETID out of this thread's effective set; threads and processes started
 * afterwards inherit that. */
static void drop_fsetid(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &h, d) != 0)
        die("capget");
    d[CAP_TO_INDEX(CAP_FSETID)].effective &= ~CAP_TO_MASK(CAP_FSETID);
    if (syscall(SYS_capset, &h, d) != 0)
        die("capset");
}

static void prepare(const char *layout, int64_t old, int64_t keep)
{
    int dfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (dfd < 0)
        die("open %s", path);
    if (strcmp(layout, "data") == 0 || strcmp(layout, "keepsize") == 0) {
        for (int64_t at = 0; at < old; at += BLOCK)
            write_block(dfd, at);
        if (old % BLOCK && ftruncate64(dfd, old) != 0)
            die("ftruncate");
    } else if (strcmp(layout, "holes") == 0) {
        write_block(dfd, 0);
        write_block(dfd, old - BLOCK);
    } else if (strcmp(layout, "unwritten") == 0) {
        kv("layout_errno", fallocate64(dfd, 0, 0, old) == 0 ? 0 : errno);
        if (ftruncate64(dfd, old) != 0)
            die("ftruncate");
    } else if (strcmp(layout, "empty") != 0) {
        die("--layout: unknown %s", layout);
    }
    if (keep > 0)
        kv("layout_errno", fallocate64(dfd, FALLOC_FL_KEEP_SIZE, old, keep) == 0 ? 0 : errno);
    if (fsync(dfd) != 0)
        die("fsync");
    close(dfd);
}

/* The fd of the call, as --open and --flags say. */
static int open_call_fd(const char *mode, const char *flags)
{
    int f = strcmp(mode, "wronly") == 0 ? O_WRONLY : O_RDWR;
    if (strstr(flags, "direct"))
        f |= O_DIRECT;
    if (strstr(flags, "sync"))
        f |= O_SYNC;
    if (strstr(flags, "append"))
        f |= O_APPEND;
    if (strstr(flags, "nolargefile"))
        return (int)syscall(SYS_open, path, f | O_CLOEXEC); /* glibc's open adds O_LARGEFILE */
    return open(path, f | O_CLOEXEC);
}

static int64_t proc_target(int64_t len)
{
    /* A mapping high in the address space; the byte written is its last. */
    mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap %lld", (long long)len);
    mem[len - 1] = 0xAA;
    path = "/proc/self/mem";
    return (int64_t)(uintptr_t)mem + len - 1;
}

int main(int argc, char **argv)
{
    prog_name = "torture";
    path = opt(argc, argv, "--path", NULL);
    how = opt(argc, argv, "--call", "pwrite64");
    fault = opt(argc, argv, "--fault", NULL);
    const char *layout = opt(argc, argv, "--layout", "empty");
    const char *flags = opt(argc, argv, "--flags", "");
    int64_t old = opt_num(argc, argv, "--old", 0);
    int64_t keep = opt_num(argc, argv, "--keep", 0);
    int64_t mode = strtoll(opt(argc, argv, "--mode", "0"), NULL, 8);
    int64_t rlimit = opt_num(argc, argv, "--rlimit", -1);
    offset = opt_num(argc, argv, "--offset", 0);
    wt_at = opt_num(argc, argv, "--wt-at", 0), wt_n = opt_num(argc, argv, "--wt-n", 0);
    wp_at = opt_num(argc, argv, "--wp-at", 0), wp_n = opt_num(argc, argv, "--wp-n", 0);
    mover_at = opt_num(argc, argv, "--mover-at", 0), mover_n = opt_num(argc, argv, "--mover-n", 0);
    int proc = flag(argc, argv, "--proc");
    if (!path && !proc)
        die("--path is required");

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    struct sigaction sa = {.sa_handler = count_signal, .sa_flags = SA_RESTART};
    int counted[] = {SIGIO, SIGXFSZ, SIGBUS, SIGPIPE, SIGURG};
    for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++)
        sigaction(counted[i], &sa, NULL);

    if (proc)
        offset = proc_target(offset + 1);
    else
        prepare(layout, old, keep);
    fd = open_call_fd(opt(argc, argv, "--open", "rdwr"), flags);
    kv("open_errno", fd < 0 ? errno : 0);
    if (fd < 0)
        return 0;
    if (mode && !proc)
        kv("chmod_errno", fchmod(fd, (mode_t)mode) == 0 ? 0 : errno);
    if (flag(argc, argv, "--xattr"))
        kv("xattr_errno", fsetxattr(fd, "user.x", "torture", 7, 0) == 0 ? 0 : errno);
    if (flag(argc, argv, "--caps")) {
        /* vfs_cap_data, revision 2: cap_net_raw permitted and effective. */
        uint32_t caps[5] = {0x02000001, 1u << 13, 0, 0, 0};
        kv("caps_errno", fsetxattr(fd, "security.capability", caps, sizeof caps, 0) == 0 ? 0 : errno);
    }
    if (flag(argc, argv, "--lease")) {
        fcntl(fd, F_SETSIG, 0);
        kv("lease_errno", fcntl(fd, F_SETLEASE, F_WRLCK) == 0 ? 0 : errno);
    }
    if (mover_n > 0 && lseek64(fd, mover_at, SEEK_SET) != mover_at)
        die("lseek to %lld", (long long)mover_at);
    wfd = -1;
    if (wt_n > 0 || wp_n > 0) {
        wfd = open(path, O_RDWR | O_CLOEXEC);
        if (wfd < 0)
            die("open the writers' fd");
    }
    if (rlimit >= 0) {
        struct rlimit r = {(rlim_t)rlimit, (rlim_t)rlimit};
        if (setrlimit(RLIMIT_FSIZE, &r) != 0)
            die("setrlimit");
    }
    if (flag(argc, argv, "--no-fsetid"))
        drop_fsetid();

    pthread_t t_wt, t_supervisor, t_caller;
    pid_t wp = 0;
    if (wp_n > 0) {
        pid_t parent = getpid();
        wp = fork();
        if (wp < 0)
            die("fork");
        if (wp == 0)
            writer_process(parent);
    }
    if (wt_n > 0 && pthread_create(&t_wt, NULL, writer_thread, NULL) != 0)
        die("pthread_create");
    fork_actor = flag(argc, argv, "--forker");
    if ((mover_n > 0 || fork_actor) && pthread_create(&t_supervisor, NULL, supervisor, NULL) != 0)
        die("pthread_create");
    /* The writers have each written every block once: the size before the call is
     * known, and they are busy rewriting while it runs. */
    while ((wt_n > 0 && wt_passes < 1) || (wp_n > 0 && sh->wp_passes < 1))
        sched_yield();

    long long wt0 = sh->wt_writes, wp0 = sh->wp_writes;
    if (pthread_create(&t_caller, NULL, caller, NULL) != 0)
        die("pthread_create");
    pthread_join(t_caller, NULL);
    long long wt_during = sh->wt_writes - wt0, wp_during = sh->wp_writes - wp0;
    sh->done = 1;
    if (wt_n > 0)
        pthread_join(t_wt, NULL);
    if (mover_n > 0 || fork_actor)
        pthread_join(t_supervisor, NULL);
    if (wp) {
        int status;
        if (waitpid(wp, &status, 0) != wp || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("writer process failed (status %d)", status);
    }

    kv("ret", call_ret);
    kv("errno", call_errno);
    /* /proc/self/mem: relative to the mapping, which is elsewhere in each run. */
    int64_t off = lseek64(fd, 0, SEEK_CUR);
    kv("offset_after", proc && off >= (int64_t)(uintptr_t)mem ? off - (int64_t)(uintptr_t)mem : off);
    if (proc) {
        kv("mem_byte", mem[offset - (int64_t)(uintptr_t)mem]);
    } else {
        struct stat64 st = fstat_or_die(fd);
        kv("size_after", st.st_size);
        kv("mode_after", st.st_mode);
    }
    if (flag(argc, argv, "--lease"))
        kv("lease_after", fcntl(fd, F_GETLEASE));
    kv("wt_during", wt_during);
    kv("wp_during", wp_during);
    kv("mover_during", sh->mover_writes);
    kv("forks_during", forks_during);
    for (int i = 0; i < fork_seen_n; i++)
        printf("child_fd=%s\n", fork_seen[i]);
    for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++)
        if (signals[counted[i]])
            printf("signal_%d=%d\n", counted[i], (int)signals[counted[i]]);
    fflush(stdout);
    return 0;
}
