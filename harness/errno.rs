//! Kernel error numbers as a type.

use std::fmt;

use crate::sys;

/// An error number returned by a system call (the positive value of the
/// kernel's `-E...` result).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

macro_rules! errno_consts {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Errno = Errno(sys::$name as i32);
            )*

            /// The symbolic name (`"EFAULT"`), if it is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Errno::$name => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errno_consts!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    ERANGE,
    ENAMETOOLONG,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    EOVERFLOW,
    EOPNOTSUPP,
    ETIMEDOUT,
    ESHUTDOWN,
);

impl Errno {
    /// Splits a raw system call result into a value or an errno.
    pub fn result(ret: i64) -> Result<i64, Errno> {
        if (-4095..0).contains(&ret) {
            Err(Errno(-ret as i32))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_split_at_the_errno_range() {
        assert_eq!(Errno::result(0), Ok(0));
        assert_eq!(Errno::result(42), Ok(42));
        assert_eq!(Errno::result(-(sys::EFAULT as i64)), Err(Errno::EFAULT));
        assert_eq!(Errno::result(-4096), Ok(-4096));
    }

    #[test]
    fn names_come_from_the_kernel_headers() {
        assert_eq!(Errno::EINVAL.name(), Some("EINVAL"));
        assert_eq!(format!("{:?}", Errno(sys::E2BIG as i32)), "E2BIG");
        assert_eq!(Errno(100_000).name(), None);
    }
}
