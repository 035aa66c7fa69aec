//! Child processes that cannot outlive their owner.
//!
//! Each child starts in its own process group (`wrangler dev` starts workerd and
//! esbuild under it), writes stdout and stderr to a log file, and is stopped — the whole
//! group, SIGTERM then SIGKILL after a grace period — by [`Proc::stop`], [`Proc::kill`]
//! or on drop. A test that fails half-way therefore leaves nothing running.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long [`Drop`] waits after SIGTERM before SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A running child process (group) with its log.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `command` in a new process group, appending its output to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file the process writes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut() {
            None => None,
            Some(child) => child.try_wait().ok().flatten(),
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(child) = &self.child
            && let Ok(pid) = i32::try_from(child.id())
        {
            // The group id is the child's pid (process_group(0)). ESRCH (already gone)
            // is fine.
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the whole group (a crash, as far as the process can tell), then reaps.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.signal_group(Signal::SIGKILL);
        let status = self.wait_timeout(Duration::from_secs(10));
        self.child = None;
        status
    }

    /// SIGTERM to the group; SIGKILL if it has not exited within `grace`. Also signals
    /// the group when the leader has already exited, so no grandchild stays behind.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.child.as_ref()?;
        self.signal_group(Signal::SIGTERM);
        let status = self.wait_timeout(grace);
        // Whatever remains of the group (workerd under wrangler) goes now.
        self.signal_group(Signal::SIGKILL);
        let status = status.or_else(|| self.wait_timeout(Duration::from_secs(10)));
        self.child = None;
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(DEFAULT_GRACE);
    }
}
