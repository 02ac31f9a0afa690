// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel tasks on host threads.
 *
 * Every task runs on a host thread of its own and the single CPU is handed
 * from one to the next in __switch_to(): the next task's host thread is
 * released from its semaphore and the previous one waits on its own.
 * Tasks created by the kernel (kthreads, pid 1) get a host thread from
 * copy_thread().  "Host tasks" instead run on threads of the host program
 * that make system calls; they are switched to with lkl_switch_to_host_task().
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/sched/stat.h>
#include <linux/slab.h>
#include <asm/switch_to.h>
#include <asm/cpu.h>

struct thread_info *lkl_current_ti = &init_thread_info;

/* Set when pid 1 has "exec'd" /init and the kernel is ready for syscalls. */
static struct lkl_sem *lkl_init_sem;

static int init_thread_struct(struct task_struct *p)
{
	p->thread.sched_sem = lkl_ops->sem_alloc(0);
	if (!p->thread.sched_sem)
		return -ENOMEM;
	p->thread.tid = 0;
	p->thread.prev_sched = NULL;
	p->thread.sched_jb = NULL;
	p->thread.exit_jb = NULL;
	p->thread.dead = false;
	return 0;
}

/**
 * lkl_threads_init() - prepare the boot task before start_kernel() runs
 * @init_sem: posted once the kernel is ready for system calls
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_threads_init(struct lkl_sem *init_sem)
{
	lkl_init_sem = init_sem;
	lkl_current_ti = &init_thread_info;
	return init_thread_struct(&init_task);
}

/**
 * arch_release_task_struct() - free the host side of a dead task
 * @tsk: the task being freed
 *
 * Called once nothing can run on @tsk any more: its host thread, if it had
 * one, has left kernel code for good in __switch_to().
 */
void arch_release_task_struct(struct task_struct *tsk)
{
	if (tsk->thread.sched_sem)
		lkl_ops->sem_free(tsk->thread.sched_sem);
	tsk->thread.sched_sem = NULL;
}

static void __noreturn lkl_longjmp(void **jb)
{
	__builtin_longjmp(jb, 1);
}

/**
 * __switch_to() - hand the CPU from @prev to @next
 * @prev: the task giving up the CPU; runs on the calling host thread,
 *	unless the caller borrowed it (see lkl_switch_to_host_task())
 * @next: the task to run
 *
 * Return: the task that ran before @prev was switched back to.
 */
struct task_struct *__switch_to(struct task_struct *prev,
				struct task_struct *next)
{
	struct thread_struct *pt = &prev->thread;
	struct lkl_sem *prev_sem = pt->sched_sem;
	void **sched_jb = pt->sched_jb;
	void **exit_jb = pt->exit_jb;
	bool dead = READ_ONCE(prev->__state) == TASK_DEAD;

	pt->sched_jb = NULL;
	next->thread.prev_sched = prev;
	lkl_current_ti = task_thread_info(next);
	lkl_cpu_change_owner(next->thread.tid);

	/* From here on @next runs: touch no kernel state. */
	lkl_ops->sem_up(next->thread.sched_sem);

	if (sched_jb)
		lkl_longjmp(sched_jb);
	if (dead && exit_jb)
		lkl_longjmp(exit_jb);

	lkl_ops->sem_down(prev_sem);

	if (pt->dead)
		lkl_longjmp(pt->exit_jb);

	return pt->prev_sched;
}

/**
 * lkl_switch_to_host_task() - make @task current on the calling host thread
 * @task: a host task; the caller owns the CPU
 *
 * The task that is current when the CPU is free is either a host task,
 * whose own host thread is outside the kernel, or the idle task, whose host
 * thread waits in arch_cpu_idle().  A host task is descheduled by running
 * schedule() on its behalf here and jumping back when __switch_to() has
 * passed the CPU on; the idle task is asked to schedule by itself.
 */
void lkl_switch_to_host_task(struct task_struct *task)
{
	if (current == task)
		return;

	task->thread.tid = lkl_ops->thread_self();
	wake_up_process(task);

	if (test_thread_flag(TIF_HOST_THREAD))
		lkl_deschedule_host_task();
	else
		lkl_cpu_put();

	lkl_ops->sem_down(task->thread.sched_sem);
	schedule_tail(task->thread.prev_sched);
}

/**
 * lkl_deschedule_host_task() - take the current host task off the CPU
 *
 * Runs schedule() on behalf of the current host task, whose own thread is
 * outside the kernel (or is the caller, about to leave it), and comes back
 * once __switch_to() has passed the CPU to the next task.  The host task
 * sleeps until its thread's next system call wakes it.
 */
void lkl_deschedule_host_task(void)
{
	void *jb[LKL_JMP_BUF_WORDS];

	current->thread.sched_jb = jb;
	set_current_state(TASK_IDLE);
	if (!__builtin_setjmp(jb))
		schedule();
}

static void lkl_init_ready(void)
{
	/* pid 1 "returns to user space": it becomes the first host task. */
	set_thread_flag(TIF_HOST_THREAD);
	lkl_syscalls_init();
	lkl_ops->sem_up(lkl_init_sem);
}

static void lkl_thread_bootstrap(void *arg)
{
	struct task_struct *p = arg;
	void *jb[LKL_JMP_BUF_WORDS];
	int ret;

	if (__builtin_setjmp(jb))
		return;
	p->thread.exit_jb = jb;

	lkl_ops->sem_down(p->thread.sched_sem);
	if (p->thread.dead)
		return;
	schedule_tail(p->thread.prev_sched);

	ret = p->thread.fn(p->thread.fn_arg);

	if (!ret && !(p->flags & PF_KTHREAD)) {
		/*
		 * A user-mode thread whose function returned 0 has exec'd
		 * its program.  Here that can only be pid 1 with /init: keep
		 * the task and give its CPU to lkl_start_kernel()'s caller.
		 */
		p->thread.exit_jb = NULL;
		lkl_init_ready();
		return;
	}
	do_exit(ret);
}

/**
 * copy_thread() - set up the host side of a new task
 * @p: the new task
 * @args: clone arguments
 *
 * Return: 0 or a negative errno.
 */
int copy_thread(struct task_struct *p, const struct kernel_clone_args *args)
{
	int ret;

	ret = init_thread_struct(p);
	if (ret)
		return ret;

	if (args->fn == lkl_host_task_fn) {
		/* Runs on the host thread that makes the system calls. */
		set_ti_thread_flag(task_thread_info(p), TIF_HOST_THREAD);
		return 0;
	}
	clear_ti_thread_flag(task_thread_info(p), TIF_HOST_THREAD);

	if (WARN_ON(!args->fn))
		return -EINVAL;
	p->thread.fn = args->fn;
	p->thread.fn_arg = args->fn_arg;
	p->thread.tid = lkl_ops->thread_create(lkl_thread_bootstrap, p);
	if (!p->thread.tid) {
		lkl_ops->sem_free(p->thread.sched_sem);
		p->thread.sched_sem = NULL;
		return -ENOMEM;
	}
	return 0;
}

/**
 * lkl_threads_stop() - end the host threads of all remaining tasks
 *
 * Called from the idle task once the kernel has powered off: every other
 * task is asleep in __switch_to().  Each kernel-created task's host thread
 * is woken with its dead flag set, returns to the host and is joined.
 */
void lkl_threads_stop(void)
{
	struct task_struct *p, *t;

	for_each_process_thread(p, t) {
		if (t == current || test_tsk_thread_flag(t, TIF_HOST_THREAD))
			continue;
		if (!t->thread.tid)
			continue;
		t->thread.dead = true;
		lkl_ops->sem_up(t->thread.sched_sem);
		lkl_ops->thread_join(t->thread.tid);
		t->thread.tid = 0;
	}
}

/**
 * lkl_host_task_fn() - marker function of host tasks; never runs
 * @arg: unused
 *
 * Return: never returns normally; a host task has no function of its own.
 */
int lkl_host_task_fn(void *arg)
{
	WARN_ONCE(1, "host task function called\n");
	return -EINVAL;
}

/**
 * lkl_task_exit_jb() - where a host task's thread resumes if it dies
 * @p: the host task
 * @jb: a __builtin_setjmp() buffer on the host thread's stack, or NULL
 */
void lkl_task_set_exit_jb(struct task_struct *p, void **jb)
{
	p->thread.exit_jb = jb;
}
