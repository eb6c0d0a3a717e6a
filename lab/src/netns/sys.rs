//! The system half of [`super`]: runs `ip` and `tc` batches, enters namespaces, writes sysctls.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::NetnsError;

/// Where `ip netns add` puts the namespace files.
pub const NETNS_DIR: &str = "/run/netns";

/// The iproute2 binaries, looked up on `PATH`.
pub const IP: &str = "ip";
/// See [`IP`].
pub const TC: &str = "tc";

/// The file standing for namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether namespace `name` exists (its file is there).
pub fn exists(name: &str) -> bool {
    fs::symlink_metadata(netns_path(name)).is_ok()
}

/// Whether the effective user is root, from `/proc/self/status`.
pub fn is_root() -> Result<bool, NetnsError> {
    let path = Path::new("/proc/self/status");
    let text = fs::read_to_string(path).map_err(|source| NetnsError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    // "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
    let effective = text
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    Ok(effective == Some("0"))
}

/// Runs `tool -V`, so a missing tool is reported before anything is created.
pub fn check_tool(tool: &'static str) -> Result<(), NetnsError> {
    let out = Command::new(tool)
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::ToolMissing { tool, source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::ToolMissing {
            tool,
            source: io::Error::other(format!("`{tool} -V` exited with {}", out.status)),
        })
    }
}

/// Runs `tool [-n netns] [-force] -batch -` with `lines` on stdin. Without `force` the tool
/// stops at the first failing line, which the error then quotes.
pub fn batch(
    tool: &'static str,
    netns: Option<&str>,
    force: bool,
    lines: &[String],
) -> Result<(), NetnsError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut command = Command::new(tool);
    if let Some(ns) = netns {
        command.args(["-n", ns]);
    }
    if force {
        command.arg("-force");
    }
    command.args(["-batch", "-"]);
    let described = describe(&command);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => NetnsError::ToolMissing { tool, source },
            _ => NetnsError::Spawn {
                command: described.clone(),
                source,
            },
        })?;
    let mut input = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        input.push_str(line);
        input.push('\n');
    }
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that stops early closes its stdin: its exit status says why, not the pipe.
        match stdin.write_all(input.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetnsError::Spawn {
                    command: described,
                    source,
                });
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NetnsError::Spawn {
            command: described.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(NetnsError::Command {
        command: described,
        status: out.status.to_string(),
        line: failed_line(&stderr, lines),
        stderr,
    })
}

/// The batch line named by iproute2's "Command failed -:N" message.
fn failed_line(stderr: &str, lines: &[String]) -> Option<String> {
    let number = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Command failed -:"))?;
    let n: usize = number.trim().parse().ok()?;
    lines.get(n.checked_sub(1)?).cloned()
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates namespace `name` with one `ip netns add`.
pub fn add_namespace(name: &str) -> Result<(), NetnsError> {
    batch(IP, None, false, &[format!("netns add {name}")])
}

/// Deletes those of `names` that exist; returns the ones still there afterwards.
pub fn delete_namespaces(names: &[String]) -> Vec<String> {
    let present: Vec<&String> = names.iter().filter(|n| exists(n)).collect();
    let lines: Vec<String> = present.iter().map(|n| format!("netns del {n}")).collect();
    if let Err(e) = batch(IP, None, true, &lines) {
        tracing::debug!("deleting namespaces: {e}");
    }
    present.into_iter().filter(|n| exists(n)).cloned().collect()
}

/// Runs `f` on a new thread that has entered namespace `name`, and returns its result.
/// Sockets `f` creates belong to that namespace for their whole life, wherever they are used.
/// A panic in `f` is passed on to the caller.
pub fn in_namespace<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = netns_path(name);
    let file = File::open(&path).map_err(|source| NetnsError::Io {
        action: "open namespace",
        path: path.clone(),
        source,
    })?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            enter(&file).map_err(|source| NetnsError::Setns {
                namespace: name.to_owned(),
                source,
            })?;
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Writes `value` to each `/proc/sys/<key>` of each namespace, in order, from one thread that
/// enters the namespaces in turn (a thread's view of `/proc/sys/net` follows its namespace).
pub fn write_sysctls(
    settings: &[(String, Vec<(&'static str, &'static str)>)],
) -> Result<(), NetnsError> {
    let mut files = Vec::with_capacity(settings.len());
    for (ns, _) in settings {
        let path = netns_path(ns);
        let file = File::open(&path).map_err(|source| NetnsError::Io {
            action: "open namespace",
            path,
            source,
        })?;
        files.push(file);
    }
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            for (file, (ns, keys)) in files.iter().zip(settings) {
                enter(file).map_err(|source| NetnsError::Setns {
                    namespace: ns.clone(),
                    source,
                })?;
                for (key, value) in keys {
                    let path = Path::new("/proc/sys").join(key);
                    fs::write(&path, value).map_err(|source| NetnsError::Sysctl {
                        namespace: ns.clone(),
                        key,
                        source,
                    })?;
                }
            }
            Ok(())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Moves the calling thread into the network namespace `file` stands for.
#[allow(unsafe_code)]
fn enter(file: &File) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor we keep open for the call and a flag; it changes
    // only the calling thread's network namespace and touches none of our memory.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_batch_line_is_found_from_the_tool_message() {
        let lines = vec!["link set lo up".to_owned(), "foo".to_owned()];
        let stderr = "Object \"foo\" is unknown, try \"ip help\".\nCommand failed -:2";
        assert_eq!(failed_line(stderr, &lines).as_deref(), Some("foo"));
        assert_eq!(failed_line("Command failed -:3", &lines), None);
        assert_eq!(failed_line("Command failed -:0", &lines), None);
        assert_eq!(failed_line("nothing", &lines), None);
    }
}
