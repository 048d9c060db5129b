//! Why a camera cannot be used, in the operator's terms, and what to do
//! about it: give up at start-up, retry, or retry slowly. "Inappropriate
//! ioctl for device" becomes "/etc/passwd is not a V4L2 device"; EACCES
//! names the device's group; EBUSY names the process holding the device
//! when `/proc` tells.

use std::fmt;
use std::io;
use std::path::Path;

/// The kinds of failure, each with its own retry policy ([`policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opens, but is not a V4L2 video capture device (a regular file, a
    /// metadata node, an encoder).
    NotCapture,
    /// No such file or device (not plugged in, driver not loaded).
    NoDevice,
    /// The user may not open it.
    Permission,
    /// Another process has it.
    Busy,
    /// A capture device, but with no format zerocam can use.
    NoFormat,
    /// Anything else (I/O errors, a device that stalls or vanishes).
    Failed,
}

/// A source failure: its kind and what to say after `source <path>: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub kind: Kind,
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

impl SourceError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> SourceError {
        SourceError {
            kind,
            message: message.into(),
        }
    }

    /// Classifies an OS error from opening or setting up the device `path`
    /// during `step` (e.g. "open", "setting the format").
    pub fn from_io(path: &Path, step: &str, e: &io::Error) -> SourceError {
        match e.raw_os_error() {
            Some(libc::ENOENT) => SourceError::new(
                Kind::NoDevice,
                "does not exist (unplugged? no driver?)".to_string(),
            ),
            Some(libc::ENODEV | libc::ENXIO) => {
                SourceError::new(Kind::NoDevice, "no such device (unplugged?)".to_string())
            }
            Some(libc::EACCES | libc::EPERM) => SourceError::new(
                Kind::Permission,
                format!("permission denied; {}", permission_hint(path)),
            ),
            Some(libc::EBUSY) => {
                SourceError::new(Kind::Busy, format!("busy ({step}): {}", busy_hint(path)))
            }
            // ENOSYS: the ioctl is not known at all (qemu-user answers so
            // for every V4L2 call).
            Some(libc::ENOTTY | libc::ENOSYS) => {
                let what = match std::fs::metadata(path) {
                    Ok(m) if m.is_file() => "a regular file",
                    _ => "a device of another kind",
                };
                SourceError::new(
                    Kind::NotCapture,
                    format!("not a V4L2 device ({what}: {step} is not supported)"),
                )
            }
            Some(libc::EISDIR) => SourceError::new(
                Kind::NotCapture,
                "a directory, not a V4L2 device".to_string(),
            ),
            _ => SourceError::new(Kind::Failed, format!("{step} failed: {e}")),
        }
    }

    /// A source-side I/O failure after the device was set up.
    pub fn failed(e: impl fmt::Display) -> SourceError {
        SourceError::new(Kind::Failed, e.to_string())
    }
}

impl From<io::Error> for SourceError {
    fn from(e: io::Error) -> SourceError {
        SourceError::failed(e)
    }
}

/// What the capture loop does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Stop zerocam with a non-zero exit: no retry can fix it.
    Fatal,
    /// Retry with the device backoff (about a second).
    Retry,
    /// Retry slowly: a person has to act (permissions, another program).
    RetrySlowly,
}

/// The policy for a failure of `kind`. Before the source ever opened, an
/// explicit source that is no capture device, is missing or has no usable
/// format is a start-up error, unless `source.wait_for_device` is set (then
/// zerocam waits for the right device to appear). Once it has streamed, a
/// failure is a device coming and going: retried.
pub fn policy(kind: Kind, ever_opened: bool, waits_for_device: bool) -> Policy {
    match kind {
        Kind::Permission | Kind::Busy => Policy::RetrySlowly,
        Kind::NotCapture | Kind::NoDevice | Kind::NoFormat if !ever_opened && !waits_for_device => {
            Policy::Fatal
        }
        _ => Policy::Retry,
    }
}

/// Which group may open `path`, and how to join it.
fn permission_hint(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let user = current_user();
    match std::fs::metadata(path) {
        Ok(m) => {
            let group = std::fs::read_to_string("/etc/group")
                .ok()
                .and_then(|t| group_name(&t, m.gid()))
                .unwrap_or_else(|| format!("gid {}", m.gid()));
            format!(
                "it belongs to group `{group}` (mode {:o}); add user `{user}` to it (sudo usermod -aG {group} {user}) and restart zerocam",
                m.mode() & 0o777
            )
        }
        Err(_) => format!("user `{user}` may not open it"),
    }
}

/// The name of group `gid` in `/etc/group` text.
pub fn group_name(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        (f.next()?.trim().parse::<u32>().ok()? == gid).then(|| name.to_string())
    })
}

/// The user zerocam runs as.
fn current_user() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _pw = f.next()?;
                (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Who else has `path` open, from `/proc/*/fd`.
fn busy_hint(path: &Path) -> String {
    let holders = holders(path, std::process::id());
    if holders.is_empty() {
        return "another program is using it (its process is not visible here)".into();
    }
    let list: Vec<String> = holders
        .iter()
        .take(3)
        .map(|(pid, comm)| format!("pid {pid} ({comm})"))
        .collect();
    format!("in use by {}", list.join(", "))
}

/// Processes other than `me` with `path` open: (pid, command name).
pub fn holders(path: &Path, me: u32) -> Vec<(u32, String)> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == target));
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            out.push((pid, comm));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_become_the_operators_words() {
        let p = Path::new("/dev/video7");
        let e = |n| SourceError::from_io(p, "open", &io::Error::from_raw_os_error(n));
        assert_eq!(e(libc::ENOENT).kind, Kind::NoDevice);
        assert!(e(libc::ENOENT).message.starts_with("does not exist"));
        assert_eq!(e(libc::ENODEV).kind, Kind::NoDevice);
        assert_eq!(e(libc::EACCES).kind, Kind::Permission);
        assert!(e(libc::EACCES).message.starts_with("permission denied"));
        assert!(e(libc::EBUSY).message.starts_with("busy (open): "));
        assert_eq!(e(libc::EBUSY).kind, Kind::Busy);
        let t = e(libc::ENOTTY);
        assert_eq!(t.kind, Kind::NotCapture);
        assert!(t.message.contains("not a V4L2 device"), "{t}");
        assert!(!t.message.contains("Inappropriate ioctl"), "{t}");
        assert_eq!(e(libc::EIO).kind, Kind::Failed);
    }

    #[test]
    fn policy_follows_the_issue_rules() {
        use Kind::*;
        for k in [NotCapture, NoDevice, NoFormat] {
            assert_eq!(policy(k, false, false), Policy::Fatal, "{k:?}");
            assert_eq!(policy(k, false, true), Policy::Retry, "{k:?}");
            assert_eq!(policy(k, true, false), Policy::Retry, "{k:?}");
        }
        for k in [Permission, Busy] {
            assert_eq!(policy(k, false, false), Policy::RetrySlowly);
            assert_eq!(policy(k, true, true), Policy::RetrySlowly);
        }
        assert_eq!(policy(Failed, false, false), Policy::Retry);
    }

    #[test]
    fn group_names_come_from_etc_group() {
        let t = "root:x:0:\nvideo:x:44:pi,zerocam\nbroken\ngpio:x:997:\n";
        assert_eq!(group_name(t, 44).as_deref(), Some("video"));
        assert_eq!(group_name(t, 997).as_deref(), Some("gpio"));
        assert_eq!(group_name(t, 5), None);
    }

    #[test]
    fn holders_are_found_in_proc() {
        let path = std::env::temp_dir().join(format!("zerocam-holder-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let _held = std::fs::File::open(&path).unwrap();
        // This process holds it; seen from a different "me".
        let found = holders(&path, 0);
        assert!(
            found.iter().any(|(pid, _)| *pid == std::process::id()),
            "{found:?}"
        );
        assert!(
            holders(&path, std::process::id())
                .iter()
                .all(|(p, _)| *p != std::process::id())
        );
        let _ = std::fs::remove_file(&path);
    }
}
