// SPDX-License-Identifier: GPL-2.0
/*
 * System call entry: any host thread may call lkl_syscall().  The first
 * call on a thread clones a "host task" for it from pid 1 (sharing pid 1's
 * memory, files and fs, as a thread of the same process); the task is
 * freed when the host thread exits.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/syscalls.h>
#include <linux/task_work.h>
#include <asm/cpu.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

typedef long (*lkl_syscall_fn)(long, long, long, long, long, long);

/* Without an MMU there is nothing to map that mmap_pgoff cannot. */
SYSCALL_DEFINE6(mmap, unsigned long, addr, unsigned long, len,
		unsigned long, prot, unsigned long, flags,
		unsigned long, fd, unsigned long, off)
{
	if (off & ~PAGE_MASK)
		return -EINVAL;
	return ksys_mmap_pgoff(addr, len, prot, flags, fd, off >> PAGE_SHIFT);
}

#define sys_rt_sigreturn	sys_ni_syscall

/*
 * Filled from the generic scripts/syscall.tbl, so a system call that a patch
 * adds there is callable with no change here.
 */
#undef __SYSCALL
#define __SYSCALL(nr, call)	[nr] = (call),
#define __SYSCALL_WITH_COMPAT(nr, native, compat)	__SYSCALL(nr, native)

static void *sys_call_table[__NR_syscalls] = {
	[0 ... __NR_syscalls - 1] = sys_ni_syscall,
#include <asm/syscall_table_64.h>
};

#define LKL_HOST_TASK_FLAGS	(CLONE_VM | CLONE_FS | CLONE_FILES | \
				 CLONE_SIGHAND | CLONE_THREAD)

static struct task_struct *host0;
static struct lkl_tls_key *task_key;
/*
 * New host tasks are cloned from host0, which only one host thread at a
 * time may run as; taken before the CPU.
 */
static struct lkl_mutex *host0_lock;

static void lkl_put_host_task(void *data);

/**
 * lkl_syscalls_init() - make the current task (pid 1) the first host task
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_syscalls_init(void)
{
	host0 = current;
	host0_lock = lkl_ops->mutex_alloc();
	task_key = lkl_ops->tls_alloc(lkl_put_host_task);
	return task_key && host0_lock ? 0 : -ENOMEM;
}

/**
 * lkl_syscalls_cleanup() - free the host objects of system call entry
 */
void lkl_syscalls_cleanup(void)
{
	lkl_ops->tls_free(task_key);
	task_key = NULL;
	lkl_ops->mutex_free(host0_lock);
	host0_lock = NULL;
}

static struct task_struct *lkl_new_host_task(void)
{
	struct task_struct *task;
	pid_t pid;

	lkl_switch_to_host_task(host0);
	pid = user_mode_thread(lkl_host_task_fn, NULL, LKL_HOST_TASK_FLAGS);
	if (pid < 0)
		return ERR_PTR(pid);

	/*
	 * No reference is kept: a host task only runs on its own thread, so
	 * it cannot exit behind that thread's back.
	 */
	rcu_read_lock();
	task = find_task_by_pid_ns(pid, &init_pid_ns);
	rcu_read_unlock();
	if (!task)
		return ERR_PTR(-ESRCH);

	snprintf(task->comm, sizeof(task->comm), "host%d", pid);
	if (lkl_ops->tls_set(task_key, task))
		return ERR_PTR(-ENOMEM);
	return task;
}

static long lkl_run_syscall(long nr, long *params, void *unused)
{
	lkl_syscall_fn fn;

	if (nr < 0 || nr >= __NR_syscalls)
		return sys_ni_syscall();
	fn = (lkl_syscall_fn)sys_call_table[nr];
	return fn(params[0], params[1], params[2], params[3], params[4],
		  params[5]);
}

/**
 * lkl_host_call() - run @fn as the calling host thread's kernel task
 * @fn: what to run, with the CPU held, as that task
 * @nr: first argument of @fn
 * @params: second argument of @fn
 * @data: third argument of @fn
 *
 * Takes the CPU, switches to the calling thread's host task (cloning it
 * on the thread's first call), runs @fn and task work, releases the CPU.
 *
 * Return: what @fn returned; 0 if @fn ended the task; -ESHUTDOWN once the
 * kernel is halted or has panicked.
 */
long lkl_host_call(long (*fn)(long nr, long *params, void *data), long nr,
		   long *params, void *data)
{
	struct task_struct *task;
	void *jb[LKL_JMP_BUF_WORDS];
	long ret;

	task = lkl_ops->tls_get(task_key);
	if (task) {
		ret = lkl_cpu_get();
		if (ret < 0)
			return ret;
		lkl_switch_to_host_task(task);
	} else {
		lkl_ops->mutex_enter(host0_lock);
		ret = lkl_cpu_get();
		if (ret < 0) {
			lkl_ops->mutex_leave(host0_lock);
			return ret;
		}
		task = lkl_new_host_task();
		if (IS_ERR(task)) {
			lkl_cpu_put();
			lkl_ops->mutex_leave(host0_lock);
			return PTR_ERR(task);
		}
		lkl_switch_to_host_task(task);
		lkl_ops->mutex_leave(host0_lock);
	}

	/*
	 * A call that ends the task (exit, reboot) comes back here, and so
	 * does one that panicked the kernel.  Either way the CPU is no longer
	 * ours: touch no kernel state.
	 */
	if (__builtin_setjmp(jb)) {
		if (READ_ONCE(lkl_panicked))
			return -ESHUTDOWN;
		lkl_ops->tls_set(task_key, NULL);
		return 0;
	}
	lkl_task_set_exit_jb(task, jb);

	ret = fn(nr, params, data);
	task_work_run();

	lkl_task_set_exit_jb(task, NULL);
	lkl_cpu_put();
	return ret;
}

/**
 * lkl_syscall() - run one system call in the library kernel
 * @nr: system call number (__NR_*)
 * @params: the six arguments
 *
 * Return: the system call's result; a negative errno on failure.
 */
long lkl_syscall(long nr, long *params)
{
	return lkl_host_call(lkl_run_syscall, nr, params, NULL);
}

/*
 * A host thread that made system calls is exiting: end its task.  Runs as
 * a thread-local destructor on that thread.
 */
static void lkl_put_host_task(void *data)
{
	struct task_struct *task = data;
	void *jb[LKL_JMP_BUF_WORDS];

	if (lkl_cpu_get() < 0)
		return;
	lkl_switch_to_host_task(task);
	if (__builtin_setjmp(jb))
		return;
	lkl_task_set_exit_jb(task, jb);
	do_exit(0);
}
