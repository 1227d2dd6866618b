//! A real SMTP server for the tests: aiosmtpd (PyPI; `.ci/run` installs it) writing every
//! message it accepts to a Maildir, started and stopped by the tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running aiosmtpd on a loopback port.
pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Option<Child>,
    /// A size limit (RFC 1870 SIZE): bigger messages get 552.
    size: Option<u32>,
    /// Refuse (550) every recipient whose address starts with `typo` (`reject_handler.py`).
    reject_typos: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::with_size(None)
    }

    /// A server that refuses messages over `bytes` with 552.
    pub fn with_size(bytes: Option<u32>) -> SmtpServer {
        let mut s = SmtpServer {
            port: free_port(),
            maildir: tempfile::tempdir().unwrap(),
            child: None,
            size: bytes,
            reject_typos: false,
        };
        s.resume();
        s
    }

    /// A server that refuses for good (550) every recipient whose address starts with `typo`.
    pub fn rejecting_typos() -> SmtpServer {
        let mut s = SmtpServer {
            port: free_port(),
            maildir: tempfile::tempdir().unwrap(),
            child: None,
            size: None,
            reject_typos: true,
        };
        s.resume();
        s
    }

    /// `smtp://127.0.0.1:PORT` (plain; the tests' server speaks no TLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server: SMTP is down.
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts (again) on the same port and Maildir.
    pub fn resume(&mut self) {
        let box_dir = self.maildir.path().join("box");
        let size: Vec<String> = self.size.map(|b| vec!["--size".to_owned(), b.to_string()]).unwrap_or_default();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(&size)
            .args(["-c", if self.reject_typos { "reject_handler.RejectTypos" } else { "aiosmtpd.handlers.Mailbox" }])
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it"))
            .arg(&box_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd runs (.ci/run installs aiosmtpd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message received, as raw text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("box").join("new");
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&new).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.pause();
    }
}

/// The `Subject:` of a raw message, unfolded.
pub fn subject(raw: &str) -> String {
    let mut lines = raw.lines().skip_while(|l| !l.starts_with("Subject: "));
    let mut out = lines.next().and_then(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_owned();
    for l in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
        out.push(' ');
        out.push_str(l.trim());
    }
    out
}
