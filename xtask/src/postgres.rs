//! A PostgreSQL server for the tests: one that is already there, or a
//! throwaway cluster started from the installed binaries.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The variable the test support crate reads.
pub const URL_ENV: &str = "MOORING_TEST_POSTGRES_URL";

/// A server the tests may use; a throwaway cluster stops when dropped.
pub struct Server {
    url: String,
    cluster: Option<Cluster>,
}

impl Server {
    pub fn url(&self) -> &str {
        &self.url
    }
}

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    as_postgres_user: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = pg_command(&self.bin.join("pg_ctl"), self.as_postgres_user);
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        match stop.output() {
            Ok(o) if o.status.success() => {
                eprintln!("xtask: stopped the throwaway PostgreSQL cluster")
            }
            Ok(o) => eprintln!(
                "xtask: pg_ctl stop failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("xtask: pg_ctl stop failed: {e}"),
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.cluster.take());
    }
}

/// Finds or starts a server.
pub fn provide() -> Result<Server, String> {
    if let Ok(url) = std::env::var(URL_ENV).map(|u| u.trim().to_owned())
        && !url.is_empty()
    {
        return Ok(Server { url, cluster: None });
    }
    if let Ok(url) = std::env::var("DATABASE_URL")
        && url.starts_with("postgres")
    {
        return Ok(Server { url, cluster: None });
    }
    if answers("127.0.0.1:5432") {
        return Ok(Server {
            url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            cluster: None,
        });
    }
    start_cluster()
}

/// `cargo xtask pg`: a cluster that lives until Enter (or end of input).
pub fn hold() -> Result<(), String> {
    let server = start_cluster()?;
    println!("{}", server.url());
    eprintln!(
        "xtask: export {URL_ENV}={} ; press Enter to stop the cluster",
        server.url()
    );
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(server);
    Ok(())
}

fn answers(address: &str) -> bool {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// The directory holding `initdb` and `pg_ctl`, if PostgreSQL is installed.
fn binaries() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut candidates: Vec<PathBuf> = from_pg_config.into_iter().collect();
    // Debian keeps server binaries per major version, off the PATH.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort_by_key(|p| std::cmp::Reverse(version_of(p)));
        candidates.extend(versions);
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn pg_command(program: &Path, as_postgres_user: bool) -> Command {
    if as_postgres_user {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start_cluster() -> Result<Server, String> {
    let bin = binaries().ok_or_else(|| {
        "no PostgreSQL server answers at 127.0.0.1:5432 and no PostgreSQL binaries are installed: \
         install the `postgresql` package (apt-get install -y postgresql), \
         or point MOORING_TEST_POSTGRES_URL at a server"
            .to_owned()
    })?;
    // initdb refuses to run as root: the cluster then belongs to `postgres`.
    let as_postgres_user = is_root();
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::root().join("target"), PathBuf::from);
    let mut data = base.join("pgtest").join(std::process::id().to_string());
    if !prepare_dir(&data, as_postgres_user) {
        // The postgres user cannot reach target/ (a private checkout): use the temp dir.
        data = std::env::temp_dir().join(format!("mooring-pgtest-{}", std::process::id()));
        if !prepare_dir(&data, as_postgres_user) {
            return Err(format!(
                "cannot prepare a data directory for PostgreSQL at {}",
                data.display()
            ));
        }
    }
    let port = free_port()?;
    eprintln!(
        "xtask: starting a throwaway PostgreSQL cluster ({}) on port {port}",
        bin.display()
    );
    let mut initdb = pg_command(&bin.join("initdb"), as_postgres_user);
    initdb.arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    let out = initdb
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        data.display()
    );
    let mut start = pg_command(&bin.join("pg_ctl"), as_postgres_user);
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(data.join("server.log"))
        .args(["-w", "-o", &options, "start"]);
    let out = start
        .output()
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
    let cluster = Cluster {
        bin,
        data: data.clone(),
        as_postgres_user,
    };
    if !out.status.success() {
        let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
        return Err(format!(
            "pg_ctl start failed: {}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Server {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        cluster: Some(cluster),
    })
}

/// Creates an empty directory the cluster's owner can write; false if the
/// postgres user cannot use it.
fn prepare_dir(dir: &Path, as_postgres_user: bool) -> bool {
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    if !as_postgres_user {
        return true;
    }
    let chowned = Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    chowned
        && Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success())
}
