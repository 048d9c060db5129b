//! A V4L2 device's image controls through the raw ioctls (QUERYCTRL with
//! `NEXT_CTRL`, QUERYMENU, G_CTRL, S_CTRL), with names decoded leniently:
//! the `v4l` crate's control listing panics on a name that is not UTF-8.
//! Integer, boolean, menu, integer-menu and button controls are offered;
//! 64-bit, string, compound and class entries are left out.

use std::io;

use v4l::v4l_sys::{
    V4L2_CTRL_FLAG_DISABLED, V4L2_CTRL_FLAG_INACTIVE, V4L2_CTRL_FLAG_NEXT_CTRL,
    V4L2_CTRL_FLAG_READ_ONLY, v4l2_control, v4l2_queryctrl, v4l2_querymenu,
};
use v4l::v4l2::{self, vidioc};

use crate::v4l2raw::c_name;
use crate::wire::controls::{ControlInfo, Kind, name_for};

const TYPE_INTEGER: u32 = 1;
const TYPE_BOOLEAN: u32 = 2;
const TYPE_MENU: u32 = 3;
const TYPE_BUTTON: u32 = 4;
const TYPE_INTEGER_MENU: u32 = 9;

/// Every control the device at `fd` offers, with its current value.
pub fn list(fd: i32) -> Vec<ControlInfo> {
    let mut out = Vec::new();
    let mut id = V4L2_CTRL_FLAG_NEXT_CTRL;
    // A bound, in case a driver never ends the list.
    for _ in 0..1024 {
        // SAFETY: plain data; QUERYCTRL fills it.
        let mut q: v4l2_queryctrl = unsafe { std::mem::zeroed() };
        q.id = id;
        // SAFETY: QUERYCTRL takes a v4l2_queryctrl on a valid fd.
        if unsafe {
            v4l2::ioctl(
                fd,
                vidioc::VIDIOC_QUERYCTRL,
                (&mut q as *mut v4l2_queryctrl).cast(),
            )
        }
        .is_err()
        {
            break; // EINVAL: the end of the list
        }
        id = q.id | V4L2_CTRL_FLAG_NEXT_CTRL;
        if q.flags & V4L2_CTRL_FLAG_DISABLED != 0 {
            continue;
        }
        let kind = match q.type_ {
            TYPE_INTEGER => Kind::Integer {
                min: i64::from(q.minimum),
                max: i64::from(q.maximum),
                step: i64::from(q.step.max(1)),
            },
            TYPE_BOOLEAN => Kind::Boolean,
            TYPE_MENU | TYPE_INTEGER_MENU => Kind::Menu {
                items: menu(fd, &q),
            },
            TYPE_BUTTON => Kind::Button,
            _ => continue,
        };
        let value = if matches!(kind, Kind::Button) {
            0
        } else {
            get(fd, q.id).unwrap_or(i64::from(q.default_value))
        };
        out.push(ControlInfo {
            name: name_for(q.id, &c_name(&q.name)),
            id: q.id,
            kind,
            default: i64::from(q.default_value),
            value,
            read_only: q.flags & (V4L2_CTRL_FLAG_READ_ONLY | V4L2_CTRL_FLAG_INACTIVE) != 0,
        });
    }
    out
}

fn menu(fd: i32, q: &v4l2_queryctrl) -> Vec<(i64, String)> {
    let mut items = Vec::new();
    for index in q.minimum.max(0)..=q.maximum.min(q.minimum.max(0) + 64) {
        // SAFETY: plain data; QUERYMENU fills it.
        let mut m: v4l2_querymenu = unsafe { std::mem::zeroed() };
        m.id = q.id;
        m.index = index as u32;
        // SAFETY: QUERYMENU takes a v4l2_querymenu on a valid fd; indices the
        // driver skips answer EINVAL.
        if unsafe {
            v4l2::ioctl(
                fd,
                vidioc::VIDIOC_QUERYMENU,
                (&mut m as *mut v4l2_querymenu).cast(),
            )
        }
        .is_err()
        {
            continue;
        }
        // SAFETY: the union holds a name for MENU, a value for INTEGER_MENU.
        let label = if q.type_ == TYPE_INTEGER_MENU {
            unsafe { m.__bindgen_anon_1.value }.to_string()
        } else {
            c_name(unsafe { &m.__bindgen_anon_1.name })
        };
        items.push((i64::from(index), label));
    }
    items
}

/// G_CTRL.
pub fn get(fd: i32, id: u32) -> io::Result<i64> {
    let mut c = v4l2_control { id, value: 0 };
    // SAFETY: G_CTRL takes a v4l2_control on a valid fd.
    unsafe {
        v4l2::ioctl(
            fd,
            vidioc::VIDIOC_G_CTRL,
            (&mut c as *mut v4l2_control).cast(),
        )
    }?;
    Ok(i64::from(c.value))
}

/// S_CTRL.
pub fn set(fd: i32, id: u32, value: i64) -> io::Result<()> {
    let value = i32::try_from(value).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{value} does not fit a 32-bit control"),
        )
    })?;
    let mut c = v4l2_control { id, value };
    // SAFETY: S_CTRL takes a v4l2_control on a valid fd.
    unsafe {
        v4l2::ioctl(
            fd,
            vidioc::VIDIOC_S_CTRL,
            (&mut c as *mut v4l2_control).cast(),
        )
    }
}
