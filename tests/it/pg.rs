//! A real PostgreSQL on loopback for the tests. [`database`] gives a test a new empty database
//! of its own on one server per test process: the running server that `PROXY_RENEWD_TEST_PG_URL`
//! names (a superuser URL), else a private server started on first use (initdb and postgres
//! from the newest `/usr/lib/postgresql/*/bin`, in a temp dir, on a free loopback port, as
//! `nobody` when the tests run as root). [`Server`] is a private server of one test's own, for
//! fault tests: stopped, started again with its data, its connections cut. Every server started
//! here dies with the test process however that ends (`PR_SET_PDEATHSIG`, from one long-lived
//! thread), and its directory is removed at exit, or by the next run after a SIGKILL. The tests
//! of the helper itself are at the bottom.

use std::io::{self, Write as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The variable naming an existing server for the tests: a superuser URL such as
/// `postgres://postgres@127.0.0.1:5432/postgres`. Unset or empty, a private server is started.
pub const URL_VAR: &str = "PROXY_RENEWD_TEST_PG_URL";

/// Where Debian installs the server, one `VERSION/bin` per major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// How the temp directories of the servers started here begin (what a later run sweeps).
const DIR_PREFIX: &str = "proxy-renewd-pg-";

/// How the databases made here begin; on a server of [`URL_VAR`], those older than a day are
/// dropped on first use (a test run never lasts that long).
const DB_PREFIX: &str = "proxy_renewd_test_";

/// The `application_name` of this module's own connections, so that a test's `pg_stat_activity`
/// can tell them from its own.
const ADMIN_APP: &str = "proxy-renewd-test-admin";

/// How a server that will not start, or not stop, is given up on.
const PATIENCE: Duration = Duration::from_secs(60);

/// The server [`database`] creates its databases on, set up once per test process: `Err` says
/// what to install or set, and every test that asks fails with it.
static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

struct Shared {
    /// A superuser URL of the server.
    admin_url: String,
    /// The private server, when this process started one: stopped and removed at exit.
    private: Option<Cluster>,
}

/// A URL of a new empty database, for this test alone, on the tests' server ([`URL_VAR`], or
/// the private one this process starts on first use, about a second). Fails the test, saying
/// what to install or which variable to set, when there is no server to be had.
pub async fn database() -> String {
    let admin = tokio::task::spawn_blocking(|| shared().as_ref().map(|s| s.admin_url.clone()).map_err(Clone::clone))
        .await
        .expect("the PostgreSQL set-up ran")
        .unwrap_or_else(|e| panic!("{e}"));
    if external() {
        static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        SWEPT.get_or_init(|| drop_old_databases(&admin)).await;
    }
    create_database(&admin).await
}

/// [`database`] for code that is not async (a constructor writing a config): run on a thread
/// of its own, so it may be called from inside a test's runtime too.
pub fn database_blocking() -> String {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(database())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Whether the tests' server is the one [`URL_VAR`] names.
fn external() -> bool {
    std::env::var(URL_VAR).is_ok_and(|url| !url.is_empty())
}

fn shared() -> &'static Result<Shared, String> {
    SHARED.get_or_init(|| {
        if external() {
            let url = std::env::var(URL_VAR).expect("checked");
            url::Url::parse(&url).map_err(|e| format!("{URL_VAR} is not a URL ({e}): {}", redacted(&url)))?;
            return Ok(Shared { admin_url: url, private: None });
        }
        let cluster = Cluster::create()?;
        // SAFETY: registering a plain `extern "C"` function; it runs once, at exit.
        unsafe { libc::atexit(stop_the_shared_server) };
        Ok(Shared { admin_url: cluster.url_for("postgres"), private: Some(cluster) })
    })
}

/// At exit (a normal end of the test binary, or after a failed test): the private server is
/// stopped at once and its directory removed. The statics are never dropped, so nothing else
/// would; after a SIGKILL the parent-death signal stops the server and the next run sweeps.
extern "C" fn stop_the_shared_server() {
    if let Some(Ok(Shared { private: Some(cluster), .. })) = SHARED.get() {
        cluster.halt_at_exit();
    }
}

/// A private server of one test's own, for fault tests that stop, restart or cut it (the shared
/// server of [`database`] serves every other test, so it is never touched). Needs the binaries:
/// [`URL_VAR`] cannot stand in. Killed, and its directory removed, when dropped.
pub struct Server {
    cluster: Option<Cluster>,
}

impl Server {
    /// initdb and start a new server (about a second), accepting connections on return.
    pub async fn start() -> Server {
        let cluster = tokio::task::spawn_blocking(Cluster::create)
            .await
            .expect("the PostgreSQL set-up ran")
            .unwrap_or_else(|e| panic!("pg::Server: {e}"));
        Server { cluster: Some(cluster) }
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("the server outlived a failed stop or start")
    }

    /// The loopback port it listens on (the same after [`Server::start_again`]).
    pub fn port(&self) -> u16 {
        self.cluster().port
    }

    /// A superuser URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        self.cluster().url_for(db)
    }

    /// A URL of a new empty database on this server.
    pub async fn database(&self) -> String {
        create_database(&self.url_for("postgres")).await
    }

    /// A fast shutdown (SIGINT: clients cut, data kept), returning once the server has exited:
    /// connections are refused until [`Server::start_again`].
    pub async fn stop(&mut self) {
        self.blocking(Cluster::stop).await;
    }

    /// Starts the stopped server again, on the same port with the same data, accepting
    /// connections on return.
    pub async fn start_again(&mut self) {
        self.blocking(Cluster::start).await;
    }

    /// Cuts every client connection named `application_name` (the `application_name` parameter
    /// of its URL), or with `None` every client connection but the one doing it, and waits until
    /// they are gone. Returns how many were cut.
    pub async fn terminate_backends(&self, application_name: Option<&str>) -> u64 {
        let mut conn = admin_connection(&self.url_for("postgres")).await;
        // Materialized first, so that no plan can call pg_terminate_backend on its own session.
        let cut: i64 = sqlx::query_scalar(
            "WITH victims AS MATERIALIZED (
                 SELECT pid FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                   AND ($1::text IS NULL OR application_name = $1))
             SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM victims",
        )
        .bind(application_name)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend on port {}: {e}", self.port()));
        let _ = conn.close().await;
        u64::try_from(cut).expect("a count")
    }

    async fn blocking(&mut self, step: fn(&mut Cluster) -> Result<(), String>) {
        let mut cluster = self.cluster.take().expect("the server outlived a failed stop or start");
        let (cluster, done) = tokio::task::spawn_blocking(move || {
            let done = step(&mut cluster);
            (cluster, done)
        })
        .await
        .expect("the PostgreSQL step ran");
        self.cluster = Some(cluster);
        done.unwrap_or_else(|e| panic!("pg::Server: {e}"));
    }
}

/// A server started here: its directory (`data/`, the socket, `postgres.log`, `owner`), port,
/// binaries, the user it runs as, and its postmaster while it runs.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    postmaster: Option<Child>,
}

impl Cluster {
    /// A new temp dir (owned by `nobody` when root), initdb into it, and the server started.
    fn create() -> Result<Cluster, String> {
        let bin = newest_bin(Path::new(DEBIAN_ROOT)).ok_or_else(missing)?;
        sweep_leftovers();
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| format!("a temp dir for PostgreSQL: {e}"))?
            .keep();
        // From here on, Drop removes the directory, whatever fails next.
        let mut cluster = Cluster { dir, port: crate::helpers::free_port(), bin, user: None, postmaster: None };
        std::fs::write(cluster.dir.join("owner"), std::process::id().to_string())
            .map_err(|e| format!("{}: {e}", cluster.dir.display()))?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let nobody = nobody();
            std::os::unix::fs::chown(&cluster.dir, Some(nobody.0), Some(nobody.1))
                .map_err(|e| format!("chown nobody {}: {e}", cluster.dir.display()))?;
            cluster.user = Some(nobody);
        }
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("-D")
            .arg(cluster.dir.join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = spawn(initdb)
            .and_then(Child::wait_with_output)
            .map_err(|e| format!("initdb ({}): {e}", cluster.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "initdb {} failed ({}){}: {}",
                cluster.dir.display(),
                out.status,
                if cluster.user.is_some() {
                    " as nobody (its temp dir's parents must be searchable by nobody)"
                } else {
                    ""
                },
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        cluster.start()?;
        eprintln!(
            "pg: PostgreSQL {} ready on 127.0.0.1:{} in {} ms",
            cluster.bin.display(),
            cluster.port,
            started.elapsed().as_millis()
        );
        Ok(cluster)
    }

    /// Starts postgres on the cluster's port and waits until it accepts connections (its
    /// `postmaster.pid` says `ready`).
    fn start(&mut self) -> Result<(), String> {
        if self.postmaster.is_some() {
            return Err(format!("the server on port {} is already running", self.port));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .map_err(|e| format!("{}/postgres.log: {e}", self.dir.display()))?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300"])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = spawn(cmd).map_err(|e| format!("postgres ({}): {e}", self.bin.display()))?;
        let pid = child.id().to_string();
        self.postmaster = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
            let lines: Vec<&str> = status.lines().map(str::trim).collect();
            if lines.first() == Some(&pid.as_str()) && lines.get(7) == Some(&"ready") {
                return Ok(());
            }
            let postmaster = self.postmaster.as_mut().expect("just started");
            if let Some(exit) = postmaster.try_wait().map_err(|e| e.to_string())? {
                self.postmaster = None;
                return Err(format!("postgres exited ({exit}) before accepting connections: {}", self.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("postgres did not accept connections within {PATIENCE:?}: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A fast shutdown (SIGINT), waited for; nothing to do if it is not running.
    fn stop(&mut self) -> Result<(), String> {
        let Some(mut postmaster) = self.postmaster.take() else { return Ok(()) };
        signal(postmaster.id(), libc::SIGINT);
        let deadline = Instant::now() + PATIENCE;
        while postmaster.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                signal(postmaster.id(), libc::SIGKILL);
                let _ = postmaster.wait();
                return Err(format!("postgres did not stop within {PATIENCE:?}: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// At exit: an immediate shutdown (SIGQUIT), SIGKILL after 10 s, then the directory goes.
    /// Only `&self` is to be had from a static: the pid is waited for directly.
    fn halt_at_exit(&self) {
        if let Some(postmaster) = &self.postmaster {
            let pid = postmaster.id();
            signal(pid, libc::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(10);
            // SAFETY: waitpid on our own child; a null status pointer is allowed.
            let reaped = || unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) } != 0;
            while !reaped() {
                if Instant::now() > deadline {
                    signal(pid, libc::SIGKILL);
                    // SAFETY: as above, now blocking: SIGKILL cannot be ignored.
                    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// `program` from the cluster's binaries, as its user, in its directory, with a clean
    /// environment, and SIGQUIT (PostgreSQL's immediate shutdown) when the test process ends.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LANG", "C.UTF-8").current_dir(&self.dir);
        cmd.stdin(Stdio::null());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        let parent = std::process::id();
        // SAFETY: the hook only calls prctl and getppid, which are async-signal-safe. std runs
        // it after the uid change, which would otherwise clear the parent-death signal.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The test process may have died before the line above: no signal would come.
                if u32::try_from(libc::getppid()) != Ok(parent) {
                    return Err(io::Error::other("the test process is gone"));
                }
                Ok(())
            });
        }
        cmd
    }

    fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The last lines of the server's log, for an error.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("{}/postgres.log ends:\n{}", self.dir.display(), lines[lines.len().saturating_sub(20)..].join("\n"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut postmaster) = self.postmaster.take() {
            signal(postmaster.id(), libc::SIGQUIT);
            let _ = postmaster.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `cmd` from one long-lived thread. The kernel sends the parent-death signal when the
/// *thread* that forked the child exits, and each test runs on a thread that ends with it: a
/// server forked there would die with the first test that used it.
fn spawn(cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static JOBS: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pg-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in queue {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("the PostgreSQL spawner thread starts");
        jobs
    });
    let (reply, answer) = mpsc::channel();
    jobs.send((cmd, reply)).map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer.recv().map_err(|_| io::Error::other("the spawner thread is gone"))?
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// `nobody`'s uid and gid (65534, `nogroup` on Debian).
fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam with a NUL-terminated name; the entry is read at once, on this thread.
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if entry.is_null() {
        return (65534, 65534);
    }
    // SAFETY: non-null, as just checked.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

/// The newest server binaries under `root`: the `VERSION/bin` (by version number) that holds
/// both initdb and postgres.
fn newest_bin(root: &Path) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version =
                entry.file_name().to_str()?.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// What to do when there is no server to be had.
fn missing() -> String {
    format!(
        "no PostgreSQL for the tests: no {DEBIAN_ROOT}/*/bin holds initdb and postgres. \
         Install the server (apt-get install postgresql; scripts/test does it when run as root), \
         or set {URL_VAR} to a superuser URL of a running server (postgres://postgres@127.0.0.1:5432/postgres), \
         which serves every test but those of pg::Server (a server of their own, stopped and restarted)"
    )
}

/// Held while sweeping, and by the test that watches a directory wait for its sweep.
static SWEEPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Removes the temp dirs of servers whose test process is gone (killed before its exit
/// handler could), unless a postmaster still runs in one.
fn sweep_leftovers() {
    let _sweeping = SWEEPING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    sweep_leftovers_now();
}

fn sweep_leftovers_now() {
    let alive = |pid: &str| pid.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(path.join("owner")) else { continue };
        let postmaster = std::fs::read_to_string(path.join("data/postmaster.pid")).unwrap_or_default();
        if !alive(&owner) && !postmaster.lines().next().is_some_and(alive) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A connection to `url` as this module's own (its `application_name` set).
async fn admin_connection(url: &str) -> PgConnection {
    let options = PgConnectOptions::from_str(url)
        .unwrap_or_else(|e| panic!("{}: {e}", redacted(url)))
        .application_name(ADMIN_APP);
    PgConnection::connect_with(&options).await.unwrap_or_else(|e| panic!("connecting to {}: {e}", redacted(url)))
}

/// Creates a database with a name no other test (of this run or another) has, and returns its URL.
async fn create_database(admin: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let name = format!("{DB_PREFIX}{secs}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let mut conn = admin_connection(admin).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {}: {e}", redacted(admin)));
    let _ = conn.close().await;
    let mut url = url::Url::parse(admin).expect("a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// On a server of [`URL_VAR`], the databases of test runs that began more than a day ago.
async fn drop_old_databases(admin: &str) {
    let mut conn = admin_connection(admin).await;
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
        .bind(DB_PREFIX)
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    let day_ago = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs().saturating_sub(86_400);
    for name in names {
        let secs = name[DB_PREFIX.len()..].split('_').next().and_then(|s| s.parse::<u64>().ok());
        if secs.is_some_and(|secs| secs < day_ago) {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
    let _ = conn.close().await;
}

/// `url` with its password, if any, replaced: for error messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(a value that is not a URL)".into(),
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn tables(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_databases_are_different_empty_and_usable() {
    let (a, b) = (database().await, database().await);
    assert_ne!(a, b);
    let mut conn_a = connect(&a).await;
    let mut conn_b = connect(&b).await;
    let name_of = async |conn: &mut PgConnection| -> String {
        sqlx::query_scalar("SELECT current_database()::text").fetch_one(conn).await.unwrap()
    };
    assert_ne!(name_of(&mut conn_a).await, name_of(&mut conn_b).await);
    assert!(tables(&mut conn_a).await.is_empty() && tables(&mut conn_b).await.is_empty(), "new means empty");
    sqlx::raw_sql(
        "CREATE TABLE t (x integer PRIMARY KEY, y text NOT NULL); INSERT INTO t VALUES (1, 'one'), (2, 'two')",
    )
    .execute(&mut conn_a)
    .await
    .unwrap();
    let y: String = sqlx::query_scalar("SELECT y FROM t WHERE x = $1").bind(2).fetch_one(&mut conn_a).await.unwrap();
    assert_eq!(y, "two");
    assert_eq!(tables(&mut conn_a).await, ["t"]);
    assert!(tables(&mut conn_b).await.is_empty(), "one test's table is not another's");
    // A third, from sync code inside this runtime (what the config-writing helpers call).
    let c = database_blocking();
    assert!(c != a && c != b, "{c}");
    assert!(tables(&mut connect(&c).await).await.is_empty());
}

#[tokio::test]
async fn a_server_stopped_and_started_again_keeps_its_port_and_data() {
    let mut server = Server::start().await;
    let url = server.database().await;
    let mut conn = connect(&url).await;
    sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the stop')")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let port = server.port();
    server.stop().await;
    let refused = PgConnection::connect(&url).await;
    assert!(refused.is_err(), "a stopped server refuses connections");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens on {port}");
    server.start_again().await;
    assert_eq!(server.port(), port);
    assert_eq!(server.url_for("x"), format!("postgres://postgres@127.0.0.1:{port}/x"));
    let mut conn = connect(&url).await;
    let v: String = sqlx::query_scalar("SELECT v FROM kept").fetch_one(&mut conn).await.unwrap();
    assert_eq!(v, "before the stop");
}

#[tokio::test]
async fn terminate_backends_cuts_the_named_connections_then_all_but_its_own() {
    let server = Server::start().await;
    let db = server.database().await;
    let mut victim = connect(&format!("{db}?application_name=victim")).await;
    let mut bystander = connect(&format!("{db}?application_name=bystander")).await;
    let one = async |conn: &mut PgConnection| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(conn).await;
    assert_eq!(one(&mut victim).await.unwrap(), 1);
    assert_eq!(server.terminate_backends(Some("victim")).await, 1);
    assert!(one(&mut victim).await.is_err(), "the next query on a cut connection fails");
    assert_eq!(one(&mut bystander).await.unwrap(), 1, "another name is left alone");
    assert_eq!(server.terminate_backends(None).await, 1, "the bystander, and not the caller's own");
    assert!(one(&mut bystander).await.is_err());
    assert_eq!(server.terminate_backends(None).await, 0);
}

#[test]
fn the_newest_complete_version_is_chosen_and_none_says_what_to_install() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(newest_bin(root.path()), None);
    for (version, files) in [
        ("9.6", &["initdb", "postgres"][..]),
        ("13", &["initdb", "postgres"]),
        ("16", &["initdb"]),
        ("notes", &["initdb", "postgres"]),
    ] {
        let bin = root.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for file in files {
            std::fs::write(bin.join(file), "").unwrap();
        }
    }
    assert_eq!(newest_bin(root.path()), Some(root.path().join("13/bin")), "16 has no postgres");
    let message = missing();
    assert!(message.contains("apt-get install postgresql") && message.contains(URL_VAR), "{message}");
    assert_eq!(
        redacted("postgres://u:hunter2@h:5432/db?sslmode=require"),
        "postgres://u:REDACTED@h:5432/db?sslmode=require"
    );
}

/// The variable telling [`held_by_a_child_process`] how its process is to end.
const CHILD_VAR: &str = "PROXY_RENEWD_TEST_PG_CHILD";

/// Whether `pid` runs (a zombie nobody reaped counts as gone).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// The other half of [`servers_die_with_the_test_process_however_it_ends`], run by it in a
/// child test process: starts a server and says where, then waits to be killed (`killed`,
/// a [`Server`]) or returns and lets the process exit (`exits`, the shared server).
#[tokio::test]
#[ignore = "run in a child process by servers_die_with_the_test_process_however_it_ends"]
async fn held_by_a_child_process() {
    let Ok(how) = std::env::var(CHILD_VAR) else { return };
    let say = |cluster: &Cluster| {
        let pid = cluster.postmaster.as_ref().expect("running").id();
        println!("PG-CHILD {pid} {} {}", cluster.port, cluster.dir.display());
        io::stdout().flush().unwrap();
    };
    if how == "killed" {
        let server = Server::start().await;
        say(server.cluster());
        tokio::time::sleep(Duration::from_secs(120)).await;
    } else {
        database().await;
        let Some(Ok(Shared { private: Some(cluster), .. })) = SHARED.get() else { panic!("a private server") };
        say(cluster);
    }
}

#[tokio::test]
// The sweep lock is held while the child dies: the servers other tests start meanwhile wait for
// it on blocking threads of their own, never on this runtime, so no await here can deadlock.
#[expect(clippy::await_holding_lock, reason = "see above")]
async fn servers_die_with_the_test_process_however_it_ends() {
    use tokio::io::AsyncBufReadExt as _;
    for how in ["killed", "exits"] {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["pg::held_by_a_child_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_VAR, how)
            .env_remove(URL_VAR)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let said = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // After the harness's "test NAME ... ", on the same line.
                if let Some((_, rest)) = line.split_once("PG-CHILD ") {
                    return rest.to_owned();
                }
            }
            panic!("{how}: the child ended without starting a server");
        })
        .await
        .expect("the child starts a server");
        let mut fields = said.splitn(3, ' ');
        let pid: u32 = fields.next().unwrap().parse().unwrap();
        let port: u16 = fields.next().unwrap().parse().unwrap();
        let dir = PathBuf::from(fields.next().unwrap());
        assert!(alive(pid) && dir.join("data").is_dir(), "{how}: {said}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "{how}: the server listens");
        // No other test's server may sweep the killed child's directory before this one looks.
        let sweeping = SWEEPING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if how == "killed" {
            child.start_kill().unwrap();
        }
        let status = tokio::time::timeout(PATIENCE, child.wait()).await.expect("the child ends").unwrap();
        if how == "exits" {
            assert!(status.success(), "{status}");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(pid) {
            assert!(Instant::now() < deadline, "{how}: postgres {pid} outlived its test process");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{how}: nothing listens on {port}");
        if how == "killed" {
            // No exit handler ran: the directory is left for the next run to sweep.
            assert!(dir.exists(), "{}", dir.display());
            sweep_leftovers_now();
        }
        drop(sweeping);
        assert!(!dir.exists(), "{how}: {} was removed", dir.display());
    }
}
