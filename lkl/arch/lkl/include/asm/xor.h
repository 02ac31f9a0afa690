/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_XOR_H
#define _ASM_LKL_XOR_H

#include <asm-generic/xor.h>

/* Skip the boot-time benchmark: it spins on the clock while holding the CPU. */
#define XOR_SELECT_TEMPLATE(x)	((void)(x), &xor_block_8regs)

#endif /* _ASM_LKL_XOR_H */
