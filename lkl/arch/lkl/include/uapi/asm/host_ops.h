/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The boundary between the library kernel and its host.
 *
 * The kernel never calls the C library: every service it needs from the
 * process it lives in (threads, semaphores, time, memory, the console) is
 * reached through the table below, which the host fills in and hands to
 * lkl_start_kernel().  The host in this project is written in Rust (sim/).
 */
#ifndef _UAPI_ASM_LKL_HOST_OPS_H
#define _UAPI_ASM_LKL_HOST_OPS_H

/* Opaque host objects; the kernel only passes the pointers back. */
struct lkl_sem;
struct lkl_mutex;
struct lkl_tls_key;
struct lkl_timer;

/**
 * struct lkl_host_ops - services the host provides to the library kernel
 * @ctx: opaque pointer to the host instance, passed back to the calls that
 *	belong to one kernel instance (console, panic)
 * @image_start: start of the host mapping the kernel was loaded from (a
 *	shared object), or 0; user copies refuse it like the kernel's own
 *	sections
 * @image_end: end of that mapping, or 0
 * @console_write: append @len bytes of console output
 * @panic: the kernel panicked with @msg: record it and return; the kernel
 *	then never runs on the calling thread again
 * @sem_alloc: allocate a counting semaphore with @count initial tokens
 * @sem_free: free a semaphore
 * @sem_up: release one token
 * @sem_down: wait for and take one token
 * @mutex_alloc: allocate a (non-recursive) mutex
 * @mutex_free: free a mutex
 * @mutex_enter: lock a mutex (not "mutex_lock": with lock debugging the
 *	kernel defines that name as a macro)
 * @mutex_leave: unlock a mutex
 * @thread_create: start a host thread running @fn(@arg); returns its id, a
 *	non-zero number, or 0 on error
 * @thread_self: the calling host thread's id (never 0, for any thread)
 * @thread_join: wait for a thread created by @thread_create to finish
 * @thread_yield: let other host threads run (a busy-wait waits for one)
 * @tls_alloc: allocate a thread-local slot; @destructor runs with the
 *	slot's value when a host thread that set it exits
 * @tls_free: free a thread-local slot
 * @tls_set: set the calling thread's value of a slot; 0 or -1
 * @tls_get: the calling thread's value of a slot, or NULL
 * @time_ns: host monotonic clock in nanoseconds
 * @wall_ns: host real-time clock in nanoseconds since the epoch
 * @timer_alloc: allocate a one-shot timer that calls @fn(@arg) from a host
 *	thread when it fires
 * @timer_set_oneshot: arm @timer to fire once @delta_ns from now,
 *	replacing any earlier arming; 0 or -1
 * @timer_cancel: disarm @timer if it has not fired
 * @timer_free: free a timer; it will not fire afterwards
 * @mem_alloc: allocate @size bytes of page-aligned memory; NULL on failure
 * @mem_free: free memory from @mem_alloc
 * @copy_from_user: copy @len bytes from @src, which may be an invalid
 *	host address, to @dst; returns the number of bytes NOT copied
 * @copy_to_user: copy @len bytes from @src to @dst, which may be an
 *	invalid host address; returns the number of bytes NOT copied
 * @user_cmpxchg32: if the 32-bit word at @uaddr, which may be an invalid
 *	host address, holds *@expected, replace it with @desired, atomically;
 *	*@expected gets the value found; returns 0, or -1 if the word cannot
 *	be read and written
 * @backtrace: write the calling host thread's call stack into @buf, one
 *	frame a line, NUL-terminated within @len bytes; returns the length
 *	written (0 if the host cannot tell)
 * @stack_walk: fill @pcs with up to @max return addresses of the calling
 *	thread's frames, innermost first, starting with the caller's own
 *	frame; returns how many
 * @shadow_map: map @len bytes of zeroed read/write memory at @addr, for
 *	KASAN's shadow, reserving address space but no memory; the same range
 *	for every kernel of the process, mapped once; 0 or -1
 * @shadow_clear: return @len bytes at @addr, inside the range of
 *	@shadow_map, to zeroes (and their memory to the host)
 * @coverage: record, for the calling thread, that the basic block at
 *	@offset bytes from _stext ran (only kernels built with
 *	CONFIG_LKL_COVERAGE call it, from any thread, very often); may be
 *	NULL
 */
struct lkl_host_ops {
	void *ctx;
	unsigned long image_start;
	unsigned long image_end;

	void (*console_write)(void *ctx, const char *str, unsigned int len);
	void (*panic)(void *ctx, const char *msg);

	struct lkl_sem *(*sem_alloc)(int count);
	void (*sem_free)(struct lkl_sem *sem);
	void (*sem_up)(struct lkl_sem *sem);
	void (*sem_down)(struct lkl_sem *sem);

	struct lkl_mutex *(*mutex_alloc)(void);
	void (*mutex_free)(struct lkl_mutex *mutex);
	void (*mutex_enter)(struct lkl_mutex *mutex);
	void (*mutex_leave)(struct lkl_mutex *mutex);

	unsigned long (*thread_create)(void (*fn)(void *), void *arg);
	unsigned long (*thread_self)(void);
	int (*thread_join)(unsigned long tid);
	void (*thread_yield)(void);

	struct lkl_tls_key *(*tls_alloc)(void (*destructor)(void *));
	void (*tls_free)(struct lkl_tls_key *key);
	int (*tls_set)(struct lkl_tls_key *key, void *data);
	void *(*tls_get)(struct lkl_tls_key *key);

	unsigned long long (*time_ns)(void);
	unsigned long long (*wall_ns)(void);

	struct lkl_timer *(*timer_alloc)(void (*fn)(void *), void *arg);
	int (*timer_set_oneshot)(struct lkl_timer *timer,
				 unsigned long long delta_ns);
	void (*timer_cancel)(struct lkl_timer *timer);
	void (*timer_free)(struct lkl_timer *timer);

	void *(*mem_alloc)(unsigned long size);
	void (*mem_free)(void *addr, unsigned long size);

	unsigned long (*copy_from_user)(void *dst, const void *src,
					unsigned long len);
	unsigned long (*copy_to_user)(void *dst, const void *src,
				      unsigned long len);

	int (*user_cmpxchg32)(unsigned int *uaddr, unsigned int *expected,
			      unsigned int desired);

	unsigned long (*backtrace)(void *ctx, char *buf, unsigned long len);
	unsigned long (*stack_walk)(unsigned long *pcs, unsigned long max);

	int (*shadow_map)(unsigned long addr, unsigned long len);
	void (*shadow_clear)(unsigned long addr, unsigned long len);

	void (*coverage)(unsigned long offset);
};

/**
 * lkl_start_kernel() - boot the library kernel
 * @ops: host services; must stay valid until lkl_sys_halt() returns
 * @cmdline: kernel command line
 *
 * Runs start_kernel() on a new host thread and returns once the kernel has
 * finished its initcalls and is ready for system calls.
 *
 * Return: 0, or a negative errno if the kernel could not be started.
 */
int lkl_start_kernel(const struct lkl_host_ops *ops, const char *cmdline);

/**
 * lkl_syscall() - run one system call in the library kernel
 * @nr: system call number (__NR_*)
 * @params: the six arguments
 *
 * May be called from any host thread; each host thread gets its own kernel
 * task the first time it calls.
 *
 * Return: the system call's result; a negative errno on failure.
 */
long lkl_syscall(long nr, long *params);

/**
 * lkl_cpus_state() - describe every CPU, for the report of a hung kernel
 * @buf: where to write, NUL-terminated
 * @size: its size in bytes
 *
 * A line per CPU: its current task, the host thread holding it (or free),
 * pending interrupts and how many threads wait for it.  Takes nothing, so
 * it may be called while the kernel is deadlocked.
 *
 * Return: the length written, without the NUL.
 */
long lkl_cpus_state(char *buf, unsigned long size);

/**
 * lkl_flush_console() - wait until every record logged so far is printed
 *
 * With several CPUs a record may be printed by another CPU than the one
 * that logged it, a little later; once this returns, every record logged
 * before the call has gone through @console_write.  May be called from any
 * host thread, as a system call.
 *
 * Return: 0, -ETIMEDOUT if the console made no progress for a second, or
 * -ESHUTDOWN after the halt.
 */
long lkl_flush_console(void);

/**
 * lkl_sys_halt() - shut the kernel down and stop its host threads
 *
 * Return: 0 on success, or a negative errno.
 */
long lkl_sys_halt(void);

#endif /* _UAPI_ASM_LKL_HOST_OPS_H */
