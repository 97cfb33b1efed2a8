//! A DNS server on loopback that answers A queries for any name with the
//! addresses a test sets, so that DNS discovery is tested against a real
//! resolver talking UDP.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A tiny authoritative DNS server; stops when dropped.
#[derive(Debug)]
pub struct FakeDns {
    pub addr: SocketAddr,
    answers: Arc<Mutex<Vec<Ipv4Addr>>>,
    task: JoinHandle<()>,
}

impl FakeDns {
    /// Starts on a free loopback UDP port, answering with `answers`.
    pub async fn start(answers: &[Ipv4Addr]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let addr = socket.local_addr().expect("local addr");
        let answers = Arc::new(Mutex::new(answers.to_vec()));
        let shared = answers.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let current = shared.lock().unwrap().clone();
                if let Some(reply) = answer(&buf[..len], &current) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Self {
            addr,
            answers,
            task,
        }
    }

    /// Changes the addresses given from now on.
    pub fn set(&self, answers: &[Ipv4Addr]) {
        *self.answers.lock().unwrap() = answers.to_vec();
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const TYPE_A: u16 = 1;

/// The response to one query: its question echoed, and for type A one
/// record per address (TTL 1 s); other types get no records.
fn answer(query: &[u8], addresses: &[Ipv4Addr]) -> Option<Vec<u8>> {
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
    let records: &[Ipv4Addr] = if qtype == TYPE_A { addresses } else { &[] };

    let mut reply = Vec::with_capacity(512);
    reply.extend_from_slice(&query[0..2]); // id
    reply.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available
    reply.extend_from_slice(&1u16.to_be_bytes()); // questions
    reply.extend_from_slice(&(records.len() as u16).to_be_bytes()); // answers
    reply.extend_from_slice(&[0, 0, 0, 0]); // authority, additional
    reply.extend_from_slice(question);
    for address in records {
        reply.extend_from_slice(&[0xC0, 12]); // the name, by pointer to the question
        reply.extend_from_slice(&TYPE_A.to_be_bytes());
        reply.extend_from_slice(&1u16.to_be_bytes()); // class IN
        reply.extend_from_slice(&1u32.to_be_bytes()); // TTL
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&address.octets());
    }
    Some(reply)
}
