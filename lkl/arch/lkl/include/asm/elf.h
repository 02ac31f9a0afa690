/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_ELF_H
#define _ASM_LKL_ELF_H

#include <linux/elf-em.h>

#define ELF_CLASS		ELFCLASS64
#define ELF_DATA		ELFDATA2LSB
#define ELF_ARCH		EM_NONE
#define elf_check_arch(x)	((void)(x), 0)
#define ELF_EXEC_PAGESIZE	4096
#define ELF_NGREG		1
#define ELF_PLATFORM		"lkl"

typedef unsigned long elf_greg_t;
typedef elf_greg_t elf_gregset_t[ELF_NGREG];
typedef struct { unsigned long unused; } elf_fpregset_t;

#endif /* _ASM_LKL_ELF_H */
