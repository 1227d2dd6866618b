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
    /// STARTTLS and a login required (`tls_smtp.py`): the directory of the CA and the
    /// server's certificate, the user and the password.
    tls: Option<(tempfile::TempDir, String, String)>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::with_size(None)
    }

    /// A server that refuses messages over `bytes` with 552.
    pub fn with_size(bytes: Option<u32>) -> SmtpServer {
        SmtpServer::spawn(bytes, false, None)
    }

    /// Starts a server on a free port with an empty Maildir.
    fn spawn(size: Option<u32>, reject_typos: bool, tls: Option<(tempfile::TempDir, String, String)>) -> SmtpServer {
        let mut s = SmtpServer {
            port: crate::helpers::free_port(),
            maildir: tempfile::tempdir().unwrap(),
            child: None,
            size,
            reject_typos,
            tls,
        };
        s.resume();
        s
    }

    /// A server that requires STARTTLS, with a certificate for `localhost` signed by a CA of
    /// the test's own (`ca.pem` in [`SmtpServer::ca_file`]), and a login as `user`/`password`.
    pub fn tls_with_login(user: &str, password: &str) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let sh = |cmd: &str| {
            let ok =
                Command::new("sh").arg("-c").arg(cmd).current_dir(dir.path()).stderr(Stdio::null()).status().unwrap();
            assert!(ok.success(), "openssl: {cmd}");
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=proxy-renewd-test-ca -keyout ca.key -out ca.pem",
        );
        sh("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr");
        sh(
            "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem",
        );
        SmtpServer::spawn(None, false, Some((dir, user.to_owned(), password.to_owned())))
    }

    /// The CA that signed a TLS server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.tls.as_ref().expect("a TLS server").0.path().join("ca.pem")
    }

    /// A server that refuses for good (550) every recipient whose address starts with `typo`.
    pub fn rejecting_typos() -> SmtpServer {
        SmtpServer::spawn(None, true, None)
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
        if let Some((dir, user, password)) = &self.tls {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tls_smtp.py");
            let child = Command::new("python3")
                .arg(script)
                .arg(self.port.to_string())
                .arg(&box_dir)
                .arg(dir.path().join("server.pem"))
                .arg(dir.path().join("server.key"))
                .args([user, password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 tls_smtp.py runs (.ci/run installs aiosmtpd)");
            self.child = Some(child);
            self.wait_for_port();
            return;
        }
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
        self.wait_for_port();
    }

    fn wait_for_port(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        // Someone else's server on the port would pass the check above: ours must be alive.
        let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        assert!(exited.is_none(), "the test SMTP server on port {} exited: {exited:?}", self.port);
    }

    /// Every message received, as raw text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("box").join("new");
        // The server makes the Maildir when it starts: a missing one is a broken test, not "no
        // mail" (which would make every "no email" assertion pass whatever happened).
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .unwrap_or_else(|e| panic!("the test SMTP server's Maildir {}: {e}", new.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
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
