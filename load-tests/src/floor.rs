//! `loopback-floor`: how long this machine's kernel alone takes to deliver one small message to
//! each of N loopback TCP connections, the least any fan-out over them can take here.
//!
//! No WebSocket, no JSON, no actors, no runtime: `writers` threads write one 60-byte message
//! to each server-side socket (plain `write` on sockets with `TCP_NODELAY`), and one thread
//! reads the client sides through `epoll` (mio). Each message's latency is from just before
//! the first write to its read. Client and server share the machine's cores, as in `ws-bench`;
//! `ws-bench`'s figure has the same kernel work in it plus everything Agora and its client do.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{mpsc, Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

use crate::browse::{percentiles, Percentiles};

/// Bytes per message: about one stock frame of `/ws`.
const MESSAGE: [u8; 60] = [b'x'; 60];
/// A round that has not delivered every message by then is reported short.
const ROUND_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct Round {
    pub received: usize,
    /// From the first write to the last write's return.
    pub writes_ms: f64,
    /// From the first write to each message's read.
    pub latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub connections: usize,
    pub writers: usize,
    pub rounds: Vec<Round>,
}

pub fn run(connections: usize, writers: usize, rounds: usize) -> anyhow::Result<Report> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback listener")?;
    let address = listener.local_addr()?;
    let mut servers = Vec::with_capacity(connections);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = TcpStream::connect(address)
            .context("connecting (each connection takes two file descriptors: see `ulimit -n`)")?;
        let (server, _) = listener.accept()?;
        server.set_nodelay(true)?;
        client.set_nonblocking(true)?;
        servers.push(server);
        clients.push(mio::net::TcpStream::from_std(client));
    }
    drop(listener);

    let writers = writers.clamp(1, connections.max(1));
    let per_writer = connections.div_ceil(writers);
    let mut slices: Vec<Vec<TcpStream>> = Vec::with_capacity(writers);
    let mut servers = servers.into_iter();
    for _ in 0..writers {
        slices.push(servers.by_ref().take(per_writer).collect());
    }

    let mut poll = Poll::new()?;
    for (index, client) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(client, Token(index), Interest::READABLE)?;
    }

    let mut report = Report {
        scenario: "loopback-floor",
        connections,
        writers,
        rounds: Vec::with_capacity(rounds),
    };
    for _ in 0..rounds {
        // Every writer starts at once, after the reader is waiting.
        let start = Arc::new(Barrier::new(writers + 1));
        let (done, finished) = mpsc::channel();
        let mut threads = Vec::with_capacity(writers);
        for mut slice in slices.drain(..) {
            let (start, done) = (Arc::clone(&start), done.clone());
            threads.push(thread::spawn(move || {
                start.wait();
                for server in &mut slice {
                    // The socket's buffer is empty: a 60-byte write never blocks.
                    let _ = server.write_all(&MESSAGE);
                }
                let _ = done.send(Instant::now());
                slice
            }));
        }
        drop(done);
        start.wait();
        let began = Instant::now();
        let latencies = read_round(&mut poll, &mut clients, began)?;
        let writes_ended = finished.iter().max().unwrap_or(began);
        for thread in threads {
            slices.push(
                thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("a writer thread panicked"))?,
            );
        }
        report.rounds.push(Round {
            received: latencies.len(),
            writes_ms: writes_ended.duration_since(began).as_secs_f64() * 1e3,
            latency_ms: percentiles(latencies),
        });
        thread::sleep(Duration::from_millis(200));
    }
    Ok(report)
}

/// Reads one message from every client; each one's latency since `began`, in milliseconds.
fn read_round(
    poll: &mut Poll,
    clients: &mut [mio::net::TcpStream],
    began: Instant,
) -> anyhow::Result<Vec<f64>> {
    let mut events = Events::with_capacity(1024);
    let mut latencies = Vec::with_capacity(clients.len());
    let mut buffer = [0u8; 256];
    while latencies.len() < clients.len() && began.elapsed() < ROUND_DEADLINE {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in &events {
            let Some(client) = clients.get_mut(event.token().0) else {
                continue;
            };
            // Edge-triggered: drain what arrived (one message per round).
            loop {
                match client.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => latencies.push(began.elapsed().as_secs_f64() * 1e3),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Ok(latencies)
}
