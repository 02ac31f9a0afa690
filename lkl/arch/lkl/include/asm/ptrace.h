/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_PTRACE_H
#define _ASM_LKL_PTRACE_H

#include <uapi/asm/ptrace.h>

/**
 * struct pt_regs - what an interrupt interrupted
 * @user: the interrupt came while the CPU's task ran host code (between
 *	two system calls), which is this port's user mode
 *
 * There are no registers to save: kernel code runs on host threads.
 */
struct pt_regs {
	unsigned long user;
};

#define user_mode(regs)			((regs)->user)
#define instruction_pointer(regs)	((void)(regs), 0UL)
#define user_stack_pointer(regs)	((void)(regs), 0UL)
#define profile_pc(regs)		instruction_pointer(regs)
#define current_pt_regs()		task_pt_regs(current)

#endif /* _ASM_LKL_PTRACE_H */
