//! A DNS server on loopback that answers A queries for any name with the
//! addresses a test sets (or, for the names it was given, their own), and
//! SRV queries with the records it was given, so that DNS discovery is
//! tested against a real resolver talking UDP.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A tiny authoritative DNS server; stops when dropped.
#[derive(Debug)]
pub struct FakeDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: JoinHandle<()>,
}

/// What the server answers.
#[derive(Debug, Default, Clone)]
struct Zone {
    /// A records for any name not in `hosts`.
    answers: Vec<Ipv4Addr>,
    /// A records by name (lowercase, without the final dot).
    hosts: Vec<(String, Vec<Ipv4Addr>)>,
    /// SRV records for any name: priority, weight, port, target.
    srv: Vec<(u16, u16, u16, String)>,
}

impl FakeDns {
    /// Starts on a free loopback UDP port, answering with `answers`.
    pub async fn start(answers: &[Ipv4Addr]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let addr = socket.local_addr().expect("local addr");
        let zone = Arc::new(Mutex::new(Zone {
            answers: answers.to_vec(),
            ..Zone::default()
        }));
        let shared = zone.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let current = shared.lock().unwrap().clone();
                if let Some(reply) = answer(&buf[..len], &current) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Self { addr, zone, task }
    }

    /// Changes the addresses given from now on.
    pub fn set(&self, answers: &[Ipv4Addr]) {
        self.zone.lock().unwrap().answers = answers.to_vec();
    }

    /// Answers A queries for `host` with `addresses`.
    pub fn host(&self, host: &str, addresses: &[Ipv4Addr]) {
        self.zone
            .lock()
            .unwrap()
            .hosts
            .push((host.to_lowercase(), addresses.to_vec()));
    }

    /// Answers SRV queries with `records` (priority, weight, port, target)
    /// from now on.
    pub fn set_srv(&self, records: &[(u16, u16, u16, &str)]) {
        self.zone.lock().unwrap().srv = records
            .iter()
            .map(|(p, w, port, target)| (*p, *w, *port, (*target).to_owned()))
            .collect();
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;

/// The queried name, lowercase and without the final dot.
fn name_of(query: &[u8], end: usize) -> String {
    let mut labels = Vec::new();
    let mut at = 12;
    while at < end {
        let len = usize::from(query[at]);
        labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).to_lowercase());
        at += 1 + len;
    }
    labels.join(".")
}

/// A name as DNS labels.
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// One answer record: the name (by pointer to the question), then `kind`,
/// class IN, a TTL of 1 s and `data`.
fn record(reply: &mut Vec<u8>, kind: u16, data: &[u8]) {
    reply.extend_from_slice(&[0xC0, 12]);
    reply.extend_from_slice(&kind.to_be_bytes());
    reply.extend_from_slice(&1u16.to_be_bytes());
    reply.extend_from_slice(&1u32.to_be_bytes());
    reply.extend_from_slice(&(data.len() as u16).to_be_bytes());
    reply.extend_from_slice(data);
}

/// The response to one query: its question echoed, and for type A one
/// record per address, for type SRV one per SRV record (TTL 1 s); other
/// types get no records.
fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let qtype = u16::from_be_bytes([*query.get(end + 1)?, *query.get(end + 2)?]);
    let question = &query[12..end + 5];
    let name = name_of(query, end);
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    if qtype == TYPE_A {
        let addresses = zone
            .hosts
            .iter()
            .find(|(host, _)| *host == name)
            .map_or(&zone.answers, |(_, addresses)| addresses);
        records.extend(addresses.iter().map(|a| (TYPE_A, a.octets().to_vec())));
    } else if qtype == TYPE_SRV {
        for (priority, weight, port, target) in &zone.srv {
            let mut data = Vec::new();
            data.extend_from_slice(&priority.to_be_bytes());
            data.extend_from_slice(&weight.to_be_bytes());
            data.extend_from_slice(&port.to_be_bytes());
            data.extend_from_slice(&encode_name(target));
            records.push((TYPE_SRV, data));
        }
    }
    let mut reply = Vec::with_capacity(512);
    reply.extend_from_slice(&query[0..2]); // id
    reply.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available
    reply.extend_from_slice(&1u16.to_be_bytes()); // questions
    reply.extend_from_slice(&(records.len() as u16).to_be_bytes()); // answers
    reply.extend_from_slice(&[0, 0, 0, 0]); // authority, additional
    reply.extend_from_slice(question);
    for (kind, data) in &records {
        record(&mut reply, *kind, data);
    }
    Some(reply)
}
