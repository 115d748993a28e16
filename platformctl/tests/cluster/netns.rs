//! A test host: a network namespace of its own with a veth pair to the host namespace,
//! addressed in 10.200.0.0/16, where a service binary runs as a pod would on a node. The
//! API server's pod proxy connects to the pod's address like it would to a real pod's.
//!
//! MariaDB and Kafka of scripts/deps.sh listen on the host's 127.0.0.1 only, and Kafka
//! advertises 127.0.0.1 to its clients. So each test host gets forwarders: a socket bound
//! to 127.0.0.1:PORT *inside* the namespace (bound by a thread that entered it with
//! setns), whose connections the test relays to 127.0.0.1:PORT of the host. The services
//! use the very addresses that the release's ConfigMap and Secret give them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sched::{CloneFlags, setns};
use tokio::task::JoinHandle;

/// One network namespace with its veth pair; removed (with the pair) on drop.
pub struct TestHost {
    pub name: String,
    forwarders: Vec<JoinHandle<()>>,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
    assert!(
        output.status.success(),
        "`ip {}` failed (the cluster tests need root for network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

impl TestHost {
    /// Creates namespace `name` with a /30 link: host side `host_ip`, pod side `ip`.
    pub fn create(name: &str, link: &str, host_ip: Ipv4Addr, pod_ip: Ipv4Addr) -> Self {
        ip(&["netns", "add", name]);
        let host = Self {
            name: name.to_owned(),
            forwarders: Vec::new(),
        };
        let (outer, inner) = (format!("{link}h"), format!("{link}p"));
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", name,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{pod_ip}/30"),
            "dev",
            &inner,
        ]);
        ip(&["-n", name, "link", "set", &inner, "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            name,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        host
    }

    /// Relays connections to 127.0.0.1:`port` inside the namespace to 127.0.0.1:`port`
    /// of the host.
    pub fn forward_loopback(&mut self, port: u16) {
        let path = format!("/var/run/netns/{}", self.name);
        let bound = std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
            let namespace = std::fs::File::open(&path)?;
            setns(&namespace, CloneFlags::CLONE_NEWNET)?;
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .join()
        .expect("setns thread");
        let listener = bound.unwrap_or_else(|e| {
            panic!(
                "cannot listen on 127.0.0.1:{port} in namespace {}: {e}",
                self.name
            )
        });
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        self.forwarders.push(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // This task's socket is created in the host namespace.
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Starts `binary` in the namespace with exactly `env` (as a container gets only the
    /// environment of its spec), output to `log`.
    pub fn spawn(&self, binary: &Path, env: &[(String, String)], log: &Path) -> Child {
        let file = std::fs::File::create(log).expect("log file");
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn service in its namespace")
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
        // Deleting the namespace deletes its veth end, and so the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
