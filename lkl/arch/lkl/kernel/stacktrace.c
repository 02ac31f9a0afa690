// SPDX-License-Identifier: GPL-2.0
/*
 * Stack traces.  Kernel code runs on host thread stacks, which the host
 * unwinds with their unwind tables: a trace holds the real return
 * addresses of the calling thread, kernel and host frames alike, for
 * lockdep, KCSAN and every other user of stack_trace_save().
 *
 * A kernel built with frame pointers (the debug kernel) follows them
 * instead, through kernel frames only: KASAN and kmemleak save a trace
 * for every allocation and free, tens of thousands per boot, and the
 * host's unwinder takes microseconds for each.  show_stack() still has
 * the host's whole trace.
 */
#include <linux/sched.h>
#include <linux/stacktrace.h>
#include <asm/cpu.h>
#include <asm/sections.h>

/* Frames kept; traces are cut there, as stack depots cut theirs. */
#define LKL_STACK_DEPTH	64

/* Farther than any frame of a host thread's stack is from the next. */
#define LKL_FRAME_MAX_GAP	(8UL << 20)

/* What a function compiled with frame pointers pushes on entry. */
struct lkl_frame {
	struct lkl_frame *next;
	unsigned long ret;
};

static bool lkl_kernel_text(unsigned long pc)
{
	return pc >= (unsigned long)_stext && pc < (unsigned long)_einittext;
}

/*
 * The frames of the function it is inlined into and its callers, up to
 * the first return into host code.
 * A host function need not keep a frame pointer, so the link that a
 * kernel function called by the host saved is not followed: the walk
 * ends on the return address next to it.
 */
static __always_inline void
lkl_walk_frames(stack_trace_consume_fn consume_entry, void *cookie)
{
	struct lkl_frame *fp = __builtin_frame_address(0);
	unsigned long low = (unsigned long)fp;
	unsigned int depth;

	for (depth = 0; depth < LKL_STACK_DEPTH; depth++) {
		unsigned long addr = (unsigned long)fp;

		if (addr & (sizeof(long) - 1) || addr < low ||
		    addr - low > LKL_FRAME_MAX_GAP)
			break;
		if (!lkl_kernel_text(fp->ret) ||
		    !consume_entry(cookie, fp->ret))
			break;
		low = addr + sizeof(*fp);
		fp = fp->next;
	}
}

/**
 * arch_stack_walk() - report the frames of a stack
 * @consume_entry: called for each return address
 * @cookie: passed to @consume_entry
 * @task: the task whose stack to walk: NULL or current, since only a
 *	thread can walk its own stack
 * @regs: unused: there are no register frames
 */
void arch_stack_walk(stack_trace_consume_fn consume_entry, void *cookie,
		     struct task_struct *task, struct pt_regs *regs)
{
	unsigned long pcs[LKL_STACK_DEPTH];
	unsigned long i, n;

	if (task && task != current)
		return;
	if (IS_ENABLED(CONFIG_FRAME_POINTER)) {
		/* Inlined: its first frame returns to this one's caller. */
		lkl_walk_frames(consume_entry, cookie);
		return;
	}
	n = lkl_ops->stack_walk(pcs, ARRAY_SIZE(pcs));
	/* pcs[0] is this function's own frame; start with its caller. */
	for (i = 1; i < n; i++) {
		if (!consume_entry(cookie, pcs[i]))
			break;
	}
}
