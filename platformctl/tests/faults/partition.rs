//! A network partition between the services and the broker that drops packets instead
//! of refusing them: both services run on a test host (a network namespace) whose traffic
//! to Kafka crosses a link of its own, and that link is cut by replacing the queueing
//! discipline of both its ends with `blackhole`, which drops every packet silently. No
//! RST, no ICMP: the services see only silence, as behind a failed switch or a firewall
//! that drops. MariaDB stays reachable (relayed inside the process, not over the link),
//! and so does the services' HTTP (over the host's other link).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use service_kit::testing::{built_binary, eventually};
use tokio::sync::oneshot;

use super::netns::TestHost;
use super::{CONCURRENCY, COUNT, DUPLICATES, reached};
use crate::harness::{self, Service, Stack, metric, start_load};

/// How long the link stays cut: longer than the producer's delivery timeout (15 s) and
/// the consumers' session timeout (10 s).
const CUT: Duration = Duration::from_secs(30);
const DELIVERED: &str =
    r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}"#;

/// The test host's addresses: services' link (A, default route) and broker link (B).
const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const POD_A: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 5);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 6);

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "`ip {}` failed (the partition test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

fn tc(namespace: Option<&str>, args: &[&str]) -> bool {
    let mut command = Command::new("tc");
    if let Some(namespace) = namespace {
        command.args(["-n", namespace]);
    }
    let output = command.args(args).output().expect("run tc (iproute2)");
    output.status.success()
}

/// The broker link: a veth pair of its own, so that it can be cut alone.
struct BrokerLink {
    namespace: String,
    outer: String,
    inner: String,
}

impl BrokerLink {
    fn create(host: &TestHost, link: &str) -> Self {
        let (outer, inner) = (format!("{link}h"), format!("{link}p"));
        let namespace = host.name.clone();
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &namespace,
        ]);
        ip(&["addr", "add", &format!("{HOST_B}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        let pod = format!("{POD_B}/30");
        ip(&["-n", &namespace, "addr", "add", &pod, "dev", &inner]);
        ip(&["-n", &namespace, "link", "set", &inner, "up"]);
        Self {
            namespace,
            outer,
            inner,
        }
    }

    /// Drops every packet both ways (`blackhole`), or restores the default queue.
    fn cut(&self, cut: bool) {
        let ends = [
            (None, &self.outer),
            (Some(self.namespace.as_str()), &self.inner),
        ];
        for (namespace, device) in ends {
            let done = if cut {
                tc(
                    namespace,
                    &["qdisc", "replace", "dev", device, "root", "blackhole"],
                )
            } else {
                tc(namespace, &["qdisc", "del", "dev", device, "root"])
            };
            assert!(
                done,
                "tc could not {} {device}",
                if cut { "cut" } else { "heal" }
            );
        }
    }
}

/// Relays 127.0.0.1:`port` inside the namespace over the broker link to 127.0.0.1:`port`
/// of the host (where Kafka listens and which it advertises). The namespace side runs on
/// a thread of its own that entered the namespace, so its sockets, the outgoing one
/// included, belong to it and their packets cross the link.
fn relay_over_broker_link(host: &TestHost, port: u16) -> oneshot::Sender<()> {
    let outer = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind((HOST_B, port))
            .await
            .expect("listen on the broker link");
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let path = format!("/var/run/netns/{}", host.name);
    let (bound, is_bound) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path).expect("namespace");
        setns(&namespace, CloneFlags::CLONE_NEWNET).expect("setns");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .await
                .expect("listen inside the namespace");
            bound.send(()).expect("report bound");
            let accept = async {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let broker = SocketAddr::from((HOST_B, port));
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(broker).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            };
            tokio::select! {
                () = accept => {}
                _ = stopped => {}
            }
        });
        outer.abort();
    });
    is_bound
        .recv_timeout(Duration::from_secs(10))
        .expect("relay bound inside the namespace");
    stop
}

fn port_of(address: &str) -> u16 {
    let port = address.rsplit(':').next().expect("host:port");
    port.parse().expect("port number")
}

/// The services on the test host, with the settings `Stack` gives its own.
fn spawn_on(host: &TestHost, stack: &Stack, name: &'static str, port: u16) -> Service {
    let database = if name == "user-service" {
        &stack.users_db.url
    } else {
        &stack.notifications_db.url
    };
    let env: Vec<(String, String)> = [
        ("HTTP_ADDR", format!("0.0.0.0:{port}")),
        ("DATABASE_URL", database.clone()),
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            stack.kafka.args.bootstrap_servers.clone(),
        ),
        ("KAFKA_TOPIC", stack.kafka.args.topic.clone()),
        ("KAFKA_GROUP_ID", stack.kafka.group.clone()),
        ("ADMIN_TOKEN", harness::TOKEN.to_owned()),
        ("OUTBOX_SWEEP_INTERVAL_MS", "200".to_owned()),
        ("RUST_LOG", harness::log_level()),
        ("LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let log = stack.log_path(name, port);
    let child = host.spawn(&built_binary(name), &env, &log);
    Service::running(child, POD_A, port, name, log)
}

#[tokio::test]
async fn a_partition_from_the_broker_that_drops_packets_loses_and_double_counts_nothing() {
    let stack = Stack::new().await;
    let mariadb = port_of(
        stack
            .users_db
            .url
            .rsplit_once('@')
            .expect("url")
            .1
            .split('/')
            .next()
            .expect("addr"),
    );
    let kafka = port_of(&stack.kafka.args.bootstrap_servers);
    let suffix = std::process::id() % 10_000;
    let mut host = TestHost::create(
        &format!("partition-{suffix}"),
        &format!("pa{suffix}"),
        HOST_A,
        POD_A,
    );
    host.forward_loopback(mariadb);
    let link = BrokerLink::create(&host, &format!("pb{suffix}"));
    let _relay = relay_over_broker_link(&host, kafka);
    let users = spawn_on(&host, &stack, "user-service", 8000);
    let notifications = spawn_on(&host, &stack, "notification-service", 8001);
    for service in [&users, &notifications] {
        // `ready`, not only 200: the broker link works before the cut.
        let ready = eventually(Duration::from_secs(60), || async {
            matches!(harness::readiness(&service.url("/health/ready")).await,
                Some((200, body)) if body["status"] == "ready")
        })
        .await;
        assert!(
            ready,
            "{} on the test host is ready; log: {}",
            service.name,
            service.log().display()
        );
    }

    let (progress, load) = start_load(vec![users.url("")], "partition", COUNT, CONCURRENCY);
    reached(&progress, COUNT / 4).await;
    link.cut(true);
    let cut = Instant::now();
    let at_cut = progress.load(std::sync::atomic::Ordering::SeqCst);
    // Both serve their requests from the database: ready (200), degraded, naming Kafka.
    let degraded = eventually(CUT, || async {
        harness::degraded_for_kafka(&users).await
            && harness::degraded_for_kafka(&notifications).await
    })
    .await;
    // The fault's length, not a wait for a condition.
    tokio::time::sleep(CUT.saturating_sub(cut.elapsed())).await;
    let during_cut = progress.load(std::sync::atomic::Ordering::SeqCst) - at_cut;
    link.cut(false);
    let report = load.await.expect("load");

    let (rows, notified) = stack.wait_all_notified(&report.created).await;
    let drained = eventually(harness::WAIT, || async { stack.outbox_rows().await == 0 }).await;
    let messages = stack.kafka.messages().await as f64;
    let settled = eventually(harness::WAIT, || async {
        let delivered = metric(&notifications, DELIVERED).await;
        delivered == rows as f64 && delivered + metric(&notifications, DUPLICATES).await >= messages
    })
    .await;
    let (delivered, duplicates) = (
        metric(&notifications, DELIVERED).await,
        metric(&notifications, DUPLICATES).await,
    );
    eprintln!(
        "broker link cut {CUT:?}: registered {} ({during_cut} during the cut), in topic {messages}, \
         published ok {} failed {}, rows {rows}, delivered {delivered}, duplicates {duplicates}, lost {}",
        report.created.len(),
        metric(&users, r#"outbox_published_total{outcome="ok"}"#).await,
        metric(&users, r#"outbox_published_total{outcome="failed"}"#).await,
        report.created.len() - notified.len()
    );
    assert!(
        degraded,
        "/health/ready of both services answers 200 degraded naming Kafka while the broker is unreachable"
    );
    assert!(
        during_cut > 0,
        "registrations go on while the broker is unreachable"
    );
    assert_eq!(report.created.len(), COUNT);
    assert!(drained, "every outbox row published after the link healed");
    assert_eq!(notified, report.created, "every user notified");
    assert_eq!(rows, COUNT, "no user notified twice");
    assert!(settled, "the consumer's counts settle on the table's rows");
    assert_eq!(delivered, rows as f64, "delivered counts equal the rows");
    assert!(delivered + duplicates >= messages, "every message counted");
}
