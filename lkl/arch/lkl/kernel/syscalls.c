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
#include <asm/cpu.h>
#include <asm/kasan.h>
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

/* pid 1, which every host task is cloned from. */
struct task_struct *lkl_host0;
/* Only used for its destructor: the task of an exiting host thread. */
static struct lkl_tls_key *task_key;
/* The calling thread's host task in this kernel, or NULL. */
static __thread struct task_struct *lkl_host_task;
/*
 * New host tasks are cloned from lkl_host0, which only one host thread at a
 * time may run as; taken before any CPU.
 */
static struct lkl_mutex *host0_lock;
/* Whether the calling thread holds host0_lock. */
static __thread bool lkl_host0_held;

static void lkl_put_host_task(void *data);

/**
 * lkl_syscalls_init() - make the current task (pid 1) the first host task
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_syscalls_init(void)
{
	lkl_host0 = current;
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

/*
 * host0_lock, and whether the calling thread holds it.  Not inlined: a
 * function that reaches several of this file's thread-local variables is
 * compiled to find them from the module's TLS base, which a relocatable
 * vmlinux cannot define.
 */
static noinline void lkl_host0_lock(void)
{
	lkl_ops->mutex_enter(host0_lock);
	lkl_host0_held = true;
}

static noinline void lkl_host0_unlock(void)
{
	if (lkl_host0_held) {
		lkl_host0_held = false;
		lkl_ops->mutex_leave(host0_lock);
	}
}

/*
 * Clones a host task for the calling thread, running as lkl_host0 meanwhile.
 * The new task is not run here: the caller enters it with lkl_task_enter().
 */
static struct task_struct *lkl_new_host_task(void)
{
	struct task_struct *task;
	pid_t pid;
	int ret;

	lkl_host0_lock();
	ret = lkl_task_enter(lkl_host0);
	if (ret) {
		task = ERR_PTR(ret);
		goto out;
	}

	pid = user_mode_thread(lkl_host_task_fn, NULL, LKL_HOST_TASK_FLAGS);
	task = ERR_PTR(pid);
	if (pid >= 0) {
		/*
		 * No reference is kept: a host task only exits on its own
		 * thread, so it cannot go away behind that thread's back.
		 */
		rcu_read_lock();
		task = find_task_by_pid_ns(pid, &init_pid_ns);
		rcu_read_unlock();
		if (task)
			snprintf(task->comm, sizeof(task->comm), "host%d", pid);
		else
			task = ERR_PTR(-ESRCH);
	}
	/* No thread calls as lkl_host0 until the next clone. */
	lkl_task_leave_asleep();
out:
	/* lkl_host0 belongs to no thread between two clones. */
	lkl_host0->thread.tid = 0;
	lkl_host0_unlock();
	return task;
}

static long lkl_run_syscall(long nr, long *params, void *unused)
{
	lkl_syscall_fn fn;
	long ret;

	for (;;) {
		if (nr < 0 || nr >= __NR_syscalls)
			return sys_ni_syscall();
		fn = (lkl_syscall_fn)sys_call_table[nr];
		ret = fn(params[0], params[1], params[2], params[3], params[4],
			 params[5]);
		lkl_console_keep_up();
		if (!lkl_exit_to_user(&ret))
			return ret;
		if (ret == -ERESTART_RESTARTBLOCK)
			nr = __NR_restart_syscall;
	}
}

/**
 * lkl_host_call() - run @fn as the calling host thread's kernel task
 * @fn: what to run, with a CPU held, as that task
 * @nr: first argument of @fn
 * @params: second argument of @fn
 * @data: third argument of @fn
 *
 * Takes a CPU as the calling thread's host task (cloning the task on the
 * thread's first call), runs @fn and leaves the CPU.
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

	if (!lkl_gate_enter())
		return -ESHUTDOWN;

	/*
	 * A call that ends the task (exit, the halt) comes back here, and so
	 * does one that the kernel stopped (a halt or a panic).  Either way
	 * no CPU is held any more: touch no kernel state.
	 */
	if (__builtin_setjmp(jb)) {
		lkl_kasan_forget_frames();
		lkl_exit_point = NULL;
		if (!lkl_exit_ret)
			lkl_host_task = NULL;
		/*
		 * Stopped while cloning its task, or ended while it exited:
		 * the next caller must get past the lock.
		 */
		lkl_host0_unlock();
		ret = lkl_exit_ret;
		goto out;
	}
	lkl_exit_point = jb;

	task = lkl_host_task;
	if (!task) {
		task = lkl_new_host_task();
		if (IS_ERR(task)) {
			ret = PTR_ERR(task);
			goto out_exit_point;
		}
		if (lkl_ops->tls_set(task_key, task)) {
			ret = -ENOMEM;
			goto out_exit_point;
		}
		lkl_host_task = task;
	}

	ret = lkl_task_enter(task);
	if (ret)
		goto out_exit_point;
	ret = fn(nr, params, data);
	lkl_task_leave();

out_exit_point:
	lkl_exit_point = NULL;
out:
	lkl_gate_exit();
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

static long lkl_exit_task(long unused_nr, long *unused_params,
			  void *unused_data)
{
	do_exit(0);
}

/*
 * A host thread that made system calls is exiting: end its task.  Runs as
 * a thread-local destructor on that thread.
 *
 * Not while a host task is being cloned: the clone copies lkl_host0, the
 * leader of every host task's thread group, whole, and the exit unlinks
 * the task from that group, writing its neighbours' links, the leader's
 * among them.  Linux allows that (the copied links are set afresh), but
 * it is a data race that KCSAN reports, and the next host thread's first
 * call would make it at every thread's exit.
 */
static void lkl_put_host_task(void *data)
{
	/* No CPU is held here: nothing to report with, only to refuse. */
	if (data != lkl_host_task)
		return;
	/* Released by lkl_host_call() if the exit comes back there. */
	lkl_host0_lock();
	lkl_host_call(lkl_exit_task, 0, NULL, NULL);
	lkl_host0_unlock();
	lkl_host_task = NULL;
}
