//! The cluster the chaos suite owns, so it may break it: a Postgres of its own (initdb in a
//! scratch directory, on a free loopback port), a Redis of its own, and several `agora serve`
//! processes on fixed loopback ports that all share them. Everything it starts it stops when
//! dropped; nothing outside the scratch directory and the chosen ports is touched.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// Longest a process of the cluster may take to answer after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The operator token the chaos cluster's servers accept.
pub const OPERATOR_TOKEN: &str = "chaos-operator-token";

/// A free loopback TCP port (bound, then released for the process that will listen on it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs a command to its end; fails with its output when it fails.
async fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("{what}: could not start"))?;
    if !output.status.success() {
        bail!(
            "{what}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Whether this process runs as root (`/proc/self` belongs to the process's user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A command that runs as the `postgres` user when we are root (Postgres refuses root).
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.arg("-u").arg("postgres").arg("--").arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The newest Postgres server binaries installed (Debian keeps them per major version).
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: install the Debian package postgresql")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|dir| dir.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|dir| {
        dir.parent()
            .and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().context("no initdb under /usr/lib/postgresql")
}

/// A Postgres of the suite's own, restartable at will.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// Initialises a cluster in `scratch/postgres` and starts it.
    pub async fn start(scratch: &Path) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let data = scratch.join("postgres");
        std::fs::create_dir_all(&data)?;
        if running_as_root() {
            run(
                Command::new("chown").arg("-R").arg("postgres").arg(scratch),
                "chown of the scratch directory",
            )
            .await?;
        }
        run(
            as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
                .arg("--locale=C.UTF-8"),
            "initdb",
        )
        .await?;
        let postgres = Self {
            bin,
            data,
            port: free_port()?,
        };
        postgres.pg_ctl("start").await?;
        Ok(postgres)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn pg_ctl(&self, action: &str) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c max_connections=200 -c shared_buffers=128MB",
            self.port
        );
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("server.log"))
            .args(["-w", "-t", "60", "-m", "immediate", "-o", &options, action]);
        run(&mut command, &format!("pg_ctl {action}")).await
    }

    /// Stops Postgres the hard way (`-m immediate`: no checkpoint, crash recovery on start)
    /// and starts it again.
    pub async fn crash_and_restart(&self) -> anyhow::Result<()> {
        self.pg_ctl("restart").await
    }

    /// Stops it (at the end of the run).
    pub async fn stop(&self) {
        if let Err(error) = self.pg_ctl("stop").await {
            eprintln!("chaos: stopping Postgres: {error:#}");
        }
    }
}

/// A Redis of the suite's own (keeping nothing on disk), restartable at will.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> anyhow::Result<Self> {
        let mut redis = Self {
            port: free_port()?,
            child: None,
        };
        redis.spawn().await?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("redis-server: install the Debian package redis-server")?;
        self.child = Some(child);
        wait_until_it_listens(self.port).await
    }

    /// Kills Redis (everything in it is gone, as after a crash) and starts it again.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self.spawn().await
    }

    pub async fn flush_all(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let () = redis::cmd("FLUSHALL").query_async(&mut connection).await?;
        Ok(())
    }
}

async fn wait_until_it_listens(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("nothing listens on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One `agora serve` slot: a fixed port, and the process serving it while it runs.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// The `agora serve` processes of the cluster, and how they are started.
pub struct Servers {
    agora: PathBuf,
    env: Vec<(String, String)>,
    pub slots: Vec<Server>,
}

impl Servers {
    /// `count` servers on free ports, with `env` on top of the suite's settings; each log goes
    /// to `scratch/agora-<n>.log`. They are started one after another (the first migrates).
    pub async fn start(
        agora: PathBuf,
        env: Vec<(String, String)>,
        count: usize,
        scratch: &Path,
    ) -> anyhow::Result<Self> {
        let mut slots = Vec::with_capacity(count);
        for n in 0..count {
            slots.push(Server {
                port: free_port()?,
                child: None,
                log: scratch.join(format!("agora-{n}.log")),
            });
        }
        let mut servers = Self { agora, env, slots };
        for n in 0..count {
            servers.restart(n).await?;
        }
        Ok(servers)
    }

    pub fn urls(&self) -> Vec<String> {
        self.slots.iter().map(Server::base_url).collect()
    }

    /// SIGKILLs slot `n`'s process: no shutdown, no flush, as when a machine dies.
    pub async fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.slots[n].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts slot `n` again on its port and waits until `/ready` answers 200.
    pub async fn restart(&mut self, n: usize) -> anyhow::Result<()> {
        let slot = &mut self.slots[n];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)?;
        let child = Command::new(&self.agora)
            .arg("serve")
            .env("AGORA_CONFIG_DIR", "/nonexistent")
            .env("AGORA__HTTP__ADDR", format!("127.0.0.1:{}", slot.port))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.agora.display()))?;
        slot.child = Some(child);
        let ready = format!("{}/ready", slot.base_url());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(response) = http.get(&ready).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(child) = slot.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "agora serve on port {} exited ({status}); see {}",
                        slot.port,
                        slot.log.display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "agora serve on port {} was not ready in {START_TIMEOUT:?}; see {}",
                    slot.port,
                    slot.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Slots whose process is running.
    pub fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&n| self.slots[n].is_running())
            .collect()
    }

    /// Stops every process with SIGTERM (a graceful end) at the end of the run.
    pub async fn stop_all(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                if let Some(pid) = child.id() {
                    let _ = Command::new("kill").arg(pid.to_string()).status().await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                let _ = child.kill().await;
            }
        }
    }
}
