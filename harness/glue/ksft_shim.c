// SPDX-License-Identifier: GPL-2.0
/*
 * Linked into every selftest program that `selftest` builds: the program's
 * references to syscall() and to the libc wrappers of file, time and
 * identity calls are renamed (objcopy --redefine-syms) to the lkl_ksft_*
 * functions below, which enter the library kernel instead of the host's.
 *
 * What stays with the host: the process (fork, wait, exit, signals, kill,
 * getpid), memory (mmap, malloc) and stdio streams, because the program and
 * the kernel live in one host process and the kernel's user memory is the
 * program's own. Descriptors 0, 1 and 2 are the host's stdin, stdout and
 * stderr, so that output reaches the runner.
 *
 * Compiled against this kernel's UAPI headers: __NR_* are the library
 * kernel's numbers, not the host's.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <asm/unistd.h>

/*
 * Defined by the runner (lkl-harness exports them): enters the kernel,
 * returning -errno on failure; and the hook that hands the kernel's log
 * over before the process exits. Weak, so that the program also loads
 * where they are missing: its system calls then fail with ENOSYS. Resolved
 * at load time, so the program's constructors can make system calls too.
 */
extern long lkl_ksft_route(long nr, const long *args) __attribute__((weak));
extern void lkl_ksft_exit_hook(int status) __attribute__((weak));

/*
 * The program's constructors: its .init_array, renamed to this section by
 * the runner's build, so that they run when the runner calls them after
 * loading the program, not inside dlopen(), where a kernel cannot boot.
 */
typedef void (*lkl_ksft_ctor)(int argc, char **argv, char **envp);
extern lkl_ksft_ctor __start_lkl_ksft_init[] __attribute__((weak));
extern lkl_ksft_ctor __stop_lkl_ksft_init[] __attribute__((weak));

static const char *lkl_ksft_name = "selftest";

void lkl_ksft_constructors(int argc, char **argv, char **envp)
{
	lkl_ksft_ctor *ctor;

	if (argc > 0 && argv[0])
		lkl_ksft_name = argv[0];
	for (ctor = __start_lkl_ksft_init; ctor < __stop_lkl_ksft_init; ctor++)
		(*ctor)(argc, argv, envp);
}

static long kcall(long nr, long a, long b, long c, long d, long e, long f)
{
	long args[6] = { a, b, c, d, e, f };
	long ret;

	if (!lkl_ksft_route) {
		errno = ENOSYS;
		return -1;
	}
	ret = lkl_ksft_route(nr, args);
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

#define K0(nr)			kcall(nr, 0, 0, 0, 0, 0, 0)
#define K1(nr, a)		kcall(nr, (long)(a), 0, 0, 0, 0, 0)
#define K2(nr, a, b)		kcall(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define K3(nr, a, b, c)		kcall(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define K4(nr, a, b, c, d)	kcall(nr, (long)(a), (long)(b), (long)(c), \
				      (long)(d), 0, 0)
#define K5(nr, a, b, c, d, e)	kcall(nr, (long)(a), (long)(b), (long)(c), \
				      (long)(d), (long)(e), 0)

/* The host's stdin, stdout and stderr. */
static int host_fd(int fd)
{
	return fd >= 0 && fd <= 2;
}

void lkl_ksft__exit(int status)
{
	if (lkl_ksft_exit_hook)
		lkl_ksft_exit_hook(status);
	_exit(status);
}

void lkl_ksft__Exit(int status)
{
	lkl_ksft__exit(status);
}

/*
 * abort() and a failed assert() end the process with SIGABRT, which no
 * exit handler sees: hand the kernel's log over first.
 */
void lkl_ksft_abort(void)
{
	if (lkl_ksft_exit_hook)
		lkl_ksft_exit_hook(-1);
	abort();
}

void lkl_ksft___assert_fail(const char *assertion, const char *file,
			    unsigned int line, const char *function)
{
	fflush(stdout);
	fprintf(stderr, "%s: %s:%u: %s: Assertion `%s' failed.\n",
		lkl_ksft_name, file, line, function, assertion);
	lkl_ksft_abort();
}

long lkl_ksft_syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	int i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == __NR_exit || nr == __NR_exit_group)
		lkl_ksft__exit((int)a[0]);
	return kcall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The mode argument of open() and friends, present only with O_CREAT. */
#define OPEN_MODE(flags, last, mode)					\
	do {								\
		va_list ap;						\
		(mode) = 0;						\
		if ((flags) & (O_CREAT | __O_TMPFILE)) {		\
			va_start(ap, last);				\
			(mode) = va_arg(ap, unsigned int);		\
			va_end(ap);					\
		}							\
	} while (0)

int lkl_ksft_openat(int dirfd, const char *path, int flags, ...)
{
	unsigned int mode;

	OPEN_MODE(flags, flags, mode);
	return (int)K4(__NR_openat, dirfd, path, flags, mode);
}

int lkl_ksft_openat64(int dirfd, const char *path, int flags, ...)
{
	unsigned int mode;

	OPEN_MODE(flags, flags, mode);
	return (int)K4(__NR_openat, dirfd, path, flags, mode);
}

int lkl_ksft_open(const char *path, int flags, ...)
{
	unsigned int mode;

	OPEN_MODE(flags, flags, mode);
	return (int)K4(__NR_openat, AT_FDCWD, path, flags, mode);
}

int lkl_ksft_open64(const char *path, int flags, ...)
{
	unsigned int mode;

	OPEN_MODE(flags, flags, mode);
	return (int)K4(__NR_openat, AT_FDCWD, path, flags, mode);
}

int lkl_ksft_creat(const char *path, mode_t mode)
{
	return (int)K4(__NR_openat, AT_FDCWD, path,
		       O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int lkl_ksft_close(int fd)
{
	if (host_fd(fd))
		return close(fd);
	return (int)K1(__NR_close, fd);
}

ssize_t lkl_ksft_read(int fd, void *buf, size_t count)
{
	if (host_fd(fd))
		return read(fd, buf, count);
	return K3(__NR_read, fd, buf, count);
}

ssize_t lkl_ksft_write(int fd, const void *buf, size_t count)
{
	if (host_fd(fd))
		return write(fd, buf, count);
	return K3(__NR_write, fd, buf, count);
}

ssize_t lkl_ksft_readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (host_fd(fd))
		return readv(fd, iov, iovcnt);
	return K3(__NR_readv, fd, iov, iovcnt);
}

ssize_t lkl_ksft_writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (host_fd(fd))
		return writev(fd, iov, iovcnt);
	return K3(__NR_writev, fd, iov, iovcnt);
}

ssize_t lkl_ksft_pread(int fd, void *buf, size_t count, off_t offset)
{
	return K4(__NR_pread64, fd, buf, count, offset);
}

ssize_t lkl_ksft_pread64(int fd, void *buf, size_t count, off_t offset)
{
	return K4(__NR_pread64, fd, buf, count, offset);
}

ssize_t lkl_ksft_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	return K4(__NR_pwrite64, fd, buf, count, offset);
}

ssize_t lkl_ksft_pwrite64(int fd, const void *buf, size_t count, off_t offset)
{
	return K4(__NR_pwrite64, fd, buf, count, offset);
}

off_t lkl_ksft_lseek(int fd, off_t offset, int whence)
{
	return K3(__NR_lseek, fd, offset, whence);
}

off_t lkl_ksft_lseek64(int fd, off_t offset, int whence)
{
	return K3(__NR_lseek, fd, offset, whence);
}

int lkl_ksft_dup(int fd)
{
	return (int)K1(__NR_dup, fd);
}

int lkl_ksft_dup2(int fd, int fd2)
{
	if (fd == fd2) {
		/* dup2() checks fd and returns it; dup3() refuses equal fds. */
		if (K2(__NR_fcntl, fd, F_GETFD) < 0)
			return -1;
		return fd2;
	}
	return (int)K3(__NR_dup3, fd, fd2, 0);
}

int lkl_ksft_dup3(int fd, int fd2, int flags)
{
	return (int)K3(__NR_dup3, fd, fd2, flags);
}

int lkl_ksft_pipe(int fds[2])
{
	return (int)K2(__NR_pipe2, fds, 0);
}

int lkl_ksft_pipe2(int fds[2], int flags)
{
	return (int)K2(__NR_pipe2, fds, flags);
}

int lkl_ksft_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (host_fd(fd))
		return fcntl(fd, cmd, arg);
	return (int)K3(__NR_fcntl, fd, cmd, arg);
}

int lkl_ksft_fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return lkl_ksft_fcntl(fd, cmd, arg);
}

int lkl_ksft_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	long arg;

	va_start(ap, request);
	arg = va_arg(ap, long);
	va_end(ap);
	return (int)K3(__NR_ioctl, fd, request, arg);
}

int lkl_ksft_fsync(int fd)
{
	if (host_fd(fd))
		return fsync(fd);
	return (int)K1(__NR_fsync, fd);
}

int lkl_ksft_fdatasync(int fd)
{
	return (int)K1(__NR_fdatasync, fd);
}

int lkl_ksft_ftruncate(int fd, off_t length)
{
	return (int)K2(__NR_ftruncate, fd, length);
}

int lkl_ksft_ftruncate64(int fd, off_t length)
{
	return (int)K2(__NR_ftruncate, fd, length);
}

int lkl_ksft_truncate(const char *path, off_t length)
{
	return (int)K2(__NR_truncate, path, length);
}

int lkl_ksft_truncate64(const char *path, off_t length)
{
	return (int)K2(__NR_truncate, path, length);
}

int lkl_ksft_unlink(const char *path)
{
	return (int)K3(__NR_unlinkat, AT_FDCWD, path, 0);
}

int lkl_ksft_unlinkat(int dirfd, const char *path, int flags)
{
	return (int)K3(__NR_unlinkat, dirfd, path, flags);
}

int lkl_ksft_rmdir(const char *path)
{
	return (int)K3(__NR_unlinkat, AT_FDCWD, path, AT_REMOVEDIR);
}

int lkl_ksft_mkdir(const char *path, mode_t mode)
{
	return (int)K3(__NR_mkdirat, AT_FDCWD, path, mode);
}

int lkl_ksft_mkdirat(int dirfd, const char *path, mode_t mode)
{
	return (int)K3(__NR_mkdirat, dirfd, path, mode);
}

int lkl_ksft_mknod(const char *path, mode_t mode, dev_t dev)
{
	return (int)K4(__NR_mknodat, AT_FDCWD, path, mode, dev);
}

int lkl_ksft_mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
	return (int)K4(__NR_mknodat, dirfd, path, mode, dev);
}

int lkl_ksft_rename(const char *from, const char *to)
{
	return (int)K5(__NR_renameat2, AT_FDCWD, from, AT_FDCWD, to, 0);
}

int lkl_ksft_renameat(int fromfd, const char *from, int tofd, const char *to)
{
	return (int)K5(__NR_renameat2, fromfd, from, tofd, to, 0);
}

int lkl_ksft_renameat2(int fromfd, const char *from, int tofd, const char *to,
		       unsigned int flags)
{
	return (int)K5(__NR_renameat2, fromfd, from, tofd, to, flags);
}

int lkl_ksft_link(const char *from, const char *to)
{
	return (int)K5(__NR_linkat, AT_FDCWD, from, AT_FDCWD, to, 0);
}

int lkl_ksft_linkat(int fromfd, const char *from, int tofd, const char *to,
		    int flags)
{
	return (int)K5(__NR_linkat, fromfd, from, tofd, to, flags);
}

int lkl_ksft_symlink(const char *target, const char *path)
{
	return (int)K3(__NR_symlinkat, target, AT_FDCWD, path);
}

int lkl_ksft_symlinkat(const char *target, int dirfd, const char *path)
{
	return (int)K3(__NR_symlinkat, target, dirfd, path);
}

ssize_t lkl_ksft_readlink(const char *path, char *buf, size_t size)
{
	return K4(__NR_readlinkat, AT_FDCWD, path, buf, size);
}

ssize_t lkl_ksft_readlinkat(int dirfd, const char *path, char *buf,
			    size_t size)
{
	return K4(__NR_readlinkat, dirfd, path, buf, size);
}

int lkl_ksft_access(const char *path, int mode)
{
	return (int)K4(__NR_faccessat2, AT_FDCWD, path, mode, 0);
}

int lkl_ksft_faccessat(int dirfd, const char *path, int mode, int flags)
{
	return (int)K4(__NR_faccessat2, dirfd, path, mode, flags);
}

int lkl_ksft_chmod(const char *path, mode_t mode)
{
	return (int)K4(__NR_fchmodat, AT_FDCWD, path, mode, 0);
}

int lkl_ksft_fchmod(int fd, mode_t mode)
{
	return (int)K2(__NR_fchmod, fd, mode);
}

int lkl_ksft_fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
	if (flags)
		return (int)K4(__NR_fchmodat2, dirfd, path, mode, flags);
	return (int)K3(__NR_fchmodat, dirfd, path, mode);
}

int lkl_ksft_chown(const char *path, uid_t uid, gid_t gid)
{
	return (int)K5(__NR_fchownat, AT_FDCWD, path, uid, gid, 0);
}

int lkl_ksft_lchown(const char *path, uid_t uid, gid_t gid)
{
	return (int)K5(__NR_fchownat, AT_FDCWD, path, uid, gid,
		       AT_SYMLINK_NOFOLLOW);
}

int lkl_ksft_fchown(int fd, uid_t uid, gid_t gid)
{
	return (int)K3(__NR_fchown, fd, uid, gid);
}

int lkl_ksft_fchownat(int dirfd, const char *path, uid_t uid, gid_t gid,
		      int flags)
{
	return (int)K5(__NR_fchownat, dirfd, path, uid, gid, flags);
}

int lkl_ksft_chdir(const char *path)
{
	return (int)K1(__NR_chdir, path);
}

int lkl_ksft_fchdir(int fd)
{
	return (int)K1(__NR_fchdir, fd);
}

char *lkl_ksft_getcwd(char *buf, size_t size)
{
	return K2(__NR_getcwd, buf, size) < 0 ? NULL : buf;
}

int lkl_ksft_statx(int dirfd, const char *path, int flags, unsigned int mask,
		   struct statx *stx)
{
	return (int)K5(__NR_statx, dirfd, path, flags, mask, stx);
}

/* The host's struct stat from the kernel's statx. */
static int stat_via_statx(int dirfd, const char *path, int flags,
			  struct stat *st)
{
	struct statx stx;

	if (K5(__NR_statx, dirfd, path, flags, STATX_BASIC_STATS, &stx) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	st->st_ino = stx.stx_ino;
	st->st_nlink = stx.stx_nlink;
	st->st_mode = stx.stx_mode;
	st->st_uid = stx.stx_uid;
	st->st_gid = stx.stx_gid;
	st->st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
	st->st_size = (off_t)stx.stx_size;
	st->st_blksize = stx.stx_blksize;
	st->st_blocks = (blkcnt_t)stx.stx_blocks;
	st->st_atim.tv_sec = stx.stx_atime.tv_sec;
	st->st_atim.tv_nsec = stx.stx_atime.tv_nsec;
	st->st_mtim.tv_sec = stx.stx_mtime.tv_sec;
	st->st_mtim.tv_nsec = stx.stx_mtime.tv_nsec;
	st->st_ctim.tv_sec = stx.stx_ctime.tv_sec;
	st->st_ctim.tv_nsec = stx.stx_ctime.tv_nsec;
	return 0;
}

int lkl_ksft_stat(const char *path, struct stat *st)
{
	return stat_via_statx(AT_FDCWD, path, 0, st);
}

int lkl_ksft_stat64(const char *path, struct stat *st)
{
	return stat_via_statx(AT_FDCWD, path, 0, st);
}

int lkl_ksft_lstat(const char *path, struct stat *st)
{
	return stat_via_statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, st);
}

int lkl_ksft_lstat64(const char *path, struct stat *st)
{
	return stat_via_statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, st);
}

int lkl_ksft_fstat(int fd, struct stat *st)
{
	if (host_fd(fd))
		return fstat(fd, st);
	return stat_via_statx(fd, "", AT_EMPTY_PATH, st);
}

int lkl_ksft_fstat64(int fd, struct stat *st)
{
	return lkl_ksft_fstat(fd, st);
}

int lkl_ksft_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return stat_via_statx(dirfd, path, flags, st);
}

int lkl_ksft_fstatat64(int dirfd, const char *path, struct stat *st,
		       int flags)
{
	return stat_via_statx(dirfd, path, flags, st);
}

int lkl_ksft_mount(const char *source, const char *target, const char *type,
		   unsigned long flags, const void *data)
{
	return (int)K5(__NR_mount, source, target, type, flags, data);
}

int lkl_ksft_umount(const char *target)
{
	return (int)K2(__NR_umount2, target, 0);
}

int lkl_ksft_umount2(const char *target, int flags)
{
	return (int)K2(__NR_umount2, target, flags);
}

void lkl_ksft_sync(void)
{
	K0(__NR_sync);
}

int lkl_ksft_memfd_create(const char *name, unsigned int flags)
{
	return (int)K2(__NR_memfd_create, name, flags);
}

int lkl_ksft_clock_gettime(clockid_t clock, struct timespec *ts)
{
	return (int)K2(__NR_clock_gettime, clock, ts);
}

int lkl_ksft_clock_getres(clockid_t clock, struct timespec *ts)
{
	return (int)K2(__NR_clock_getres, clock, ts);
}

int lkl_ksft_gettimeofday(struct timeval *tv, void *tz)
{
	return (int)K2(__NR_gettimeofday, tv, tz);
}

time_t lkl_ksft_time(time_t *t)
{
	struct timespec ts;

	if (K2(__NR_clock_gettime, CLOCK_REALTIME, &ts) < 0)
		return (time_t)-1;
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}

int lkl_ksft_nanosleep(const struct timespec *req, struct timespec *rem)
{
	return (int)K2(__NR_nanosleep, req, rem);
}

int lkl_ksft_clock_nanosleep(clockid_t clock, int flags,
			     const struct timespec *req, struct timespec *rem)
{
	/* Returns the error, as POSIX says, instead of setting errno. */
	if (K4(__NR_clock_nanosleep, clock, flags, req, rem) < 0)
		return errno;
	return 0;
}

int lkl_ksft_usleep(useconds_t usec)
{
	struct timespec ts = {
		.tv_sec = usec / 1000000,
		.tv_nsec = (long)(usec % 1000000) * 1000,
	};

	return (int)K2(__NR_nanosleep, &ts, NULL);
}

unsigned int lkl_ksft_sleep(unsigned int seconds)
{
	struct timespec ts = { .tv_sec = seconds }, rem = { 0 };

	if (K2(__NR_nanosleep, &ts, &rem) < 0)
		return (unsigned int)rem.tv_sec;
	return 0;
}

uid_t lkl_ksft_getuid(void)
{
	return (uid_t)K0(__NR_getuid);
}

uid_t lkl_ksft_geteuid(void)
{
	return (uid_t)K0(__NR_geteuid);
}

gid_t lkl_ksft_getgid(void)
{
	return (gid_t)K0(__NR_getgid);
}

gid_t lkl_ksft_getegid(void)
{
	return (gid_t)K0(__NR_getegid);
}

/* Temporary files and directories, made in the kernel's file system. */
static int fill_template(char *template, size_t suffix)
{
	static const char chars[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t len = template ? strlen(template) : 0;
	struct timespec ts;
	unsigned long seed;
	size_t i;

	if (len < 6 + suffix ||
	    memcmp(template + len - suffix - 6, "XXXXXX", 6)) {
		errno = EINVAL;
		return -1;
	}
	K2(__NR_clock_gettime, CLOCK_MONOTONIC, &ts);
	seed = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20) ^
	       (unsigned long)(size_t)template ^ (unsigned long)getpid() << 40;
	for (i = 0; i < 6; i++) {
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		template[len - suffix - 6 + i] = chars[(seed >> 33) % 62];
	}
	return 0;
}

char *lkl_ksft_mkdtemp(char *template)
{
	int tries;

	for (tries = 0; tries < 100; tries++) {
		if (fill_template(template, 0) < 0)
			return NULL;
		if (K3(__NR_mkdirat, AT_FDCWD, template, 0700) == 0)
			return template;
		if (errno != EEXIST)
			return NULL;
	}
	return NULL;
}

int lkl_ksft_mkostemps(char *template, int suffixlen, int flags)
{
	int tries;
	long fd;

	for (tries = 0; tries < 100; tries++) {
		if (fill_template(template, (size_t)suffixlen) < 0)
			return -1;
		fd = K4(__NR_openat, AT_FDCWD, template,
			(flags & ~O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd >= 0)
			return (int)fd;
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

int lkl_ksft_mkstemp(char *template)
{
	return lkl_ksft_mkostemps(template, 0, 0);
}

int lkl_ksft_mkostemp(char *template, int flags)
{
	return lkl_ksft_mkostemps(template, 0, flags);
}

int lkl_ksft_mkstemps(char *template, int suffixlen)
{
	return lkl_ksft_mkostemps(template, suffixlen, 0);
}

/*
 * Directory streams over the kernel's getdents64(): its struct
 * linux_dirent64 has the layout of the host's struct dirent on 64-bit.
 */
struct lkl_ksft_dir {
	int fd;
	int pos;
	int len;
	char buf[32768] __attribute__((aligned(8)));
};

void *lkl_ksft_fdopendir(int fd)
{
	struct lkl_ksft_dir *dir;
	struct stat st;

	if (stat_via_statx(fd, "", AT_EMPTY_PATH, &st) < 0)
		return NULL;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return NULL;
	}
	dir = calloc(1, sizeof(*dir));
	if (!dir)
		return NULL;
	dir->fd = fd;
	return dir;
}

void *lkl_ksft_opendir(const char *path)
{
	void *dir;
	long fd;

	fd = K4(__NR_openat, AT_FDCWD, path,
		O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	dir = lkl_ksft_fdopendir((int)fd);
	if (!dir)
		K1(__NR_close, fd);
	return dir;
}

struct dirent *lkl_ksft_readdir(void *stream)
{
	struct lkl_ksft_dir *dir = stream;
	struct dirent *ent;
	long n;

	if (dir->pos >= dir->len) {
		n = K3(__NR_getdents64, dir->fd, dir->buf, sizeof(dir->buf));
		if (n <= 0)
			return NULL;
		dir->len = (int)n;
		dir->pos = 0;
	}
	ent = (struct dirent *)(dir->buf + dir->pos);
	dir->pos += ent->d_reclen;
	return ent;
}

struct dirent *lkl_ksft_readdir64(void *stream)
{
	return lkl_ksft_readdir(stream);
}

int lkl_ksft_closedir(void *stream)
{
	struct lkl_ksft_dir *dir = stream;
	int fd = dir->fd;

	free(dir);
	return (int)K1(__NR_close, fd);
}

int lkl_ksft_dirfd(void *stream)
{
	return ((struct lkl_ksft_dir *)stream)->fd;
}

void lkl_ksft_rewinddir(void *stream)
{
	struct lkl_ksft_dir *dir = stream;

	K3(__NR_lseek, dir->fd, 0, SEEK_SET);
	dir->pos = 0;
	dir->len = 0;
}

/*
 * The process's id is the kernel's (what /proc/self names), so that a
 * program that builds /proc/<pid> paths finds itself. kill() of that id
 * is the host process itself (kselftest_harness forwards a test's fatal
 * signal so); every other kill() is the host's, whose processes are real.
 */
pid_t lkl_ksft_getpid(void)
{
	long pid = K0(__NR_getpid);

	return pid < 0 ? getpid() : (pid_t)pid;
}

int lkl_ksft_kill(pid_t pid, int sig)
{
	if (pid > 0 && pid == lkl_ksft_getpid())
		pid = getpid();
	return kill(pid, sig);
}
