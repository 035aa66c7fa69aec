// Not every test module uses every helper.
#![allow(dead_code)]

//! A real SMTP server for the mail tests: Debian's `python3-aiosmtpd`, run on a loopback
//! port with its `Mailbox` handler (every accepted message is written to a Maildir), and
//! what it received, parsed with `mail-parser`. It can be stopped and started again on
//! the same port (an outage). `.ci/run` installs the package; run with
//! `/usr/bin/python3` (the `python3` on PATH may be another build without it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use samplit_control_plane::config::Config;

use crate::helpers::test_config_with;

pub const MAIL_FROM: &str = "Samplit <noreply@samplit.test>";
pub const PUBLIC_URL: &str = "https://app.samplit.test";

pub struct SmtpServer {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub message_id: String,
    pub raw: String,
}

impl Received {
    /// The first link in the text body that starts with `prefix` (e.g.
    /// `https://app.samplit.test/app/verify-email`).
    pub fn link(&self, prefix: &str) -> Option<String> {
        let start = self.text.find(prefix)?;
        let rest = &self.text[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == ')')
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }

    /// The `token` of the first link starting with `prefix` (its `#token=` fragment).
    pub fn token(&self, prefix: &str) -> Option<String> {
        let link = self.link(prefix)?;
        let (_, token) = link.split_once("#token=")?;
        Some(token.to_owned())
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl SmtpServer {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary Maildir");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut server = Self {
            addr,
            dir,
            child: None,
        };
        server.resume();
        server
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Starts the server again on the same port (after [`SmtpServer::stop`]).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the SMTP server is running already");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(self.addr.to_string())
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (apt install python3-aiosmtpd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {} within 15 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (an outage): connections are refused until [`SmtpServer::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The control plane's configuration with this server as `SAMPLIT_SMTP_URL` (plain
    /// SMTP to loopback), quick retries, and `extra` on top.
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let url = format!("smtp://{}", self.addr);
        let mut vars: Vec<(&str, &str)> = vec![
            ("SAMPLIT_SMTP_URL", url.as_str()),
            ("SAMPLIT_MAIL_FROM", MAIL_FROM),
            ("SAMPLIT_PUBLIC_URL", PUBLIC_URL),
            ("SAMPLIT_MAIL_RETRY_BASE_MS", "100"),
            ("SAMPLIT_MAIL_POLL_MS", "100"),
        ];
        vars.extend_from_slice(extra);
        test_config_with(&vars)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let new = self.maildir().join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| {
                let at = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (at, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                let raw = std::fs::read(&path).expect("read a received message");
                parse(&raw)
            })
            .collect()
    }

    /// Waits (bounded, `timeout`) until at least `n` messages have arrived; all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages within {timeout:?}, got {}: {:?}",
                messages.len(),
                messages.iter().map(|m| &m.subject).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The messages to `address`.
    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.eq_ignore_ascii_case(address))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(raw: &[u8]) -> Received {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let first_address = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_owned()
    };
    Received {
        to: first_address(message.to()),
        from: first_address(message.from()),
        subject: message.subject().unwrap_or("").to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        message_id: message.message_id().unwrap_or("").to_owned(),
        raw: String::from_utf8_lossy(raw).into_owned(),
    }
}
