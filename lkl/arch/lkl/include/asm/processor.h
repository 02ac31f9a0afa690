/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_PROCESSOR_H
#define _ASM_LKL_PROCESSOR_H

#ifndef __ASSEMBLY__
#include <linux/types.h>
#include <asm/ptrace.h>

struct lkl_sem;

/**
 * enum lkl_wait - how a task's host thread waits for its task to run
 * @LKL_WAIT_NONE: it does not: it runs host code, or kernel code as the task
 * @LKL_WAIT_SWITCH: in __switch_to(), from which it finishes the switch
 *	itself when the task is switched back to
 * @LKL_WAIT_ENTER: in lkl_task_enter(), on behalf of a host task; it may be
 *	running an interrupt on another CPU meanwhile, so the thread that
 *	switches to the task finishes the switch for it
 */
enum lkl_wait {
	LKL_WAIT_NONE,
	LKL_WAIT_SWITCH,
	LKL_WAIT_ENTER,
};

/**
 * struct thread_struct - the host side of a kernel task
 * @regs: an empty register frame, for the generic code that asks for one
 * @sched_sem: the task's host thread waits here while the task is not
 *	running on a CPU
 * @waiting: how the task's host thread waits on @sched_sem, an
 *	&enum lkl_wait (set by that thread, cleared by the one that switches
 *	to the task); for a host task whose thread runs host code it is clear
 * @tid: the host thread that runs the task
 * @own_thread: @tid was created for the task by copy_thread(), and is
 *	joined when the task is freed
 * @own_node: while @own_thread, the task's entry in the list of threads
 *	that a halt must end, whether or not the task is in the task list
 * @prev_sched: the task that ran before this one, for schedule_tail()
 * @sched_jb: where a host thread that switched away from a task it does
 *	not own (see lkl_deschedule()) resumes, or NULL
 * @exit_jb: where the task's own host thread returns to the host when
 *	the task is dead, or NULL for tasks that run on host program threads
 * @fn: for a task with its own host thread, the function it runs
 * @fn_arg: the argument of @fn
 * @dead: the task has exited and its host thread must return
 */
struct thread_struct {
	struct pt_regs regs;
	struct lkl_sem *sched_sem;
	int waiting;
	unsigned long tid;
	bool own_thread;
	struct list_head own_node;
	struct task_struct *prev_sched;
	void **sched_jb;
	void **exit_jb;
	int (*fn)(void *arg);
	void *fn_arg;
	bool dead;
};

#define INIT_THREAD { }

#define task_pt_regs(tsk)	(&(tsk)->thread.regs)
#define KSTK_EIP(tsk)		((void)(tsk), 0UL)
#define KSTK_ESP(tsk)		((void)(tsk), 0UL)

/* Every host address may be a user address; see asm/uaccess.h. */
#define TASK_SIZE		(~0UL)
#define TASK_UNMAPPED_BASE	(0)
#define STACK_TOP		TASK_SIZE
#define STACK_TOP_MAX		STACK_TOP

void lkl_cpu_relax(void);

static inline void cpu_relax(void)
{
	lkl_cpu_relax();
}

static inline void start_thread(struct pt_regs *regs, unsigned long pc,
				unsigned long sp)
{
}

unsigned long __get_wchan(struct task_struct *p);

#endif /* __ASSEMBLY__ */
#endif /* _ASM_LKL_PROCESSOR_H */
