//! Raw V4L2 helpers that capture (`capture::v4l2`) and the hardware
//! encoder (`encode::m2m`) share: both talk to drivers through the `v4l`
//! crate's ioctl bindings where its safe wrappers do not reach.

use std::io;

use v4l::v4l2::{self, vidioc};

/// One ioctl on `fd` with `arg` as its argument struct.
///
/// # Safety
/// `arg` must be the struct type `req` expects; the kernel reads and
/// writes only within it.
pub unsafe fn ioctl<T>(fd: i32, req: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: per this function's contract.
    unsafe { v4l2::ioctl(fd, req, (arg as *mut T).cast()) }
}

/// Maps `len` bytes of a driver's buffer at `offset` (as QUERYBUF gave it),
/// read-write and shared. The caller unmaps it.
pub fn map_buffer(fd: i32, len: usize, offset: u32) -> io::Result<*mut std::os::raw::c_void> {
    // SAFETY: a fresh shared mapping of the device's own buffer; the kernel
    // checks the offset and length against the buffer it names.
    unsafe {
        v4l2::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    }
}

/// A NUL-terminated name from a driver struct (card, control, menu item),
/// decoded leniently: drivers are not bound to UTF-8.
pub fn c_name(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stop_at_nul_and_survive_bad_bytes() {
        assert_eq!(c_name(b"vivid\0junk"), "vivid");
        assert_eq!(c_name(b"no nul"), "no nul");
        assert_eq!(c_name(b"Cam \xff\0"), "Cam \u{fffd}");
    }
}
