//! Process plumbing: PATH lookup, child spawning with a parent-death signal, signals,
//! loopback port reservation and log tails.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Find an executable called `name` in the directories of `path_var` (a `PATH` value).
pub(crate) fn find_in_path(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Find an executable on the current `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    find_in_path(name, std::env::var_os("PATH").as_deref())
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

type SpawnRequest = (Command, mpsc::SyncSender<io::Result<Child>>);

/// Children are spawned from one long-lived thread.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process.
/// Spawning from a test thread (or a tokio blocking thread) would kill the redis-server as
/// soon as that thread ends, even if the `Cluster` lives on. A dedicated thread that lives
/// as long as the process gives the intended semantics: the children die with the process.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("redlock-harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("failed to start the redlock-harness spawner thread");
        tx
    })
}

/// Spawn `cmd` so that it receives SIGKILL when this process dies.
pub(crate) fn spawn_with_pdeathsig(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the hook only calls async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::sync_channel(1);
    spawner()
        .send((cmd, tx))
        .map_err(|_| io::Error::other("redlock-harness spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("redlock-harness spawner thread is gone"))?
}

/// Send `sig` to `pid`.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Wait for `child` to exit, up to `timeout`. Returns true if it exited.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// SIGCONT then SIGKILL `child` and reap it. Idempotent.
pub(crate) fn kill_and_reap(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = signal(child.id(), libc::SIGCONT);
    let _ = signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
}

fn reserved_ports() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Pick a free loopback port (bind port 0, release it) that no other harness object of
/// this process holds, and reserve it until [`release_port`].
pub(crate) fn reserve_free_port() -> io::Result<u16> {
    for _ in 0..100 {
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            listener.local_addr()?.port()
        };
        let mut set = reserved_ports().lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::other("could not find a free loopback port"))
}

/// Release a port reserved by [`reserve_free_port`].
pub(crate) fn release_port(port: u16) {
    reserved_ports()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
}

/// Size of a file in bytes (0 if missing).
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The contents of `path` from byte `offset` on (lossy UTF-8; empty if missing).
pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `lines` lines of `path` (lossy UTF-8; a note if missing).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("fake-tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        assert_eq!(
            find_in_path("fake-tool", Some(dir.path().as_os_str())),
            None,
            "not executable yet"
        );
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let joined =
            std::env::join_paths(["/nonexistent-dir", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(find_in_path("fake-tool", Some(&joined)), Some(exe));
        assert_eq!(find_in_path("fake-tool", None), None);
        assert_eq!(find_in_path("redis-server", Some(OsStr::new(""))), None);
    }

    #[test]
    fn ports_are_unique() {
        let a = reserve_free_port().unwrap();
        let b = reserve_free_port().unwrap();
        assert_ne!(a, b);
        release_port(a);
        release_port(b);
    }
}
