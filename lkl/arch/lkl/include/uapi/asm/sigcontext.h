/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
#ifndef _UAPI_ASM_LKL_SIGCONTEXT_H
#define _UAPI_ASM_LKL_SIGCONTEXT_H

#include <asm/ptrace.h>

/* Signals are never delivered to host code, so the frame is minimal. */
struct sigcontext {
	struct user_pt_regs regs;
	unsigned long oldmask;
};

#endif /* _UAPI_ASM_LKL_SIGCONTEXT_H */
