//! An SMTP sink for the tests: a real SMTP server on 127.0.0.1:0 that keeps every message it
//! accepted, parsed, so a test reads what really went over SMTP (no mock of the sender). The
//! SMTP dialogue is `mailin`'s state machine (EHLO, MAIL, RCPT, DATA, QUIT); this module does
//! the I/O on tokio and parses the messages with `mailparse`. It can refuse the next messages
//! (451 to DATA, a temporary failure) to test the sender's retries.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use mailin::{response, Action, Handler, Response, SessionBuilder};
use mailparse::MailHeaderMap;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// Decoded (RFC 2047).
    pub subject: String,
    /// The text body, decoded (transfer encoding and charset).
    pub body: String,
    pub message_id: String,
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    /// Messages still to refuse at the end of DATA.
    refusals: AtomicUsize,
    /// Messages refused so far.
    refused: AtomicUsize,
}

/// The sink; dropping it stops accepting connections.
pub struct MailSink {
    port: u16,
    inbox: Arc<Inbox>,
    server: tokio::task::JoinHandle<()>,
}

impl MailSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the sink listens");
        let port = listener.local_addr().expect("bound").port();
        let inbox = Arc::new(Inbox::default());
        let server = tokio::spawn({
            let inbox = inbox.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(converse(stream, inbox.clone()));
                }
            }
        });
        Self {
            port,
            inbox,
            server,
        }
    }

    /// The `mail.smtp_url` of this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Refuses the next `count` messages with 451 to their DATA command.
    pub fn refuse_next(&self, count: usize) {
        self.inbox.refusals.store(count, Ordering::SeqCst);
    }

    /// How many messages were refused.
    pub fn refused(&self) -> usize {
        self.inbox.refused.load(Ordering::SeqCst)
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.inbox.messages.lock().expect("inbox").clone()
    }

    /// The messages accepted for `recipient`.
    pub fn to(&self, recipient: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|message| {
                message
                    .to
                    .iter()
                    .any(|to| to.eq_ignore_ascii_case(recipient))
            })
            .collect()
    }

    /// The first message for `recipient` that `matches`, waiting for it at most 15 s.
    pub async fn wait_for(&self, recipient: &str, matches: impl Fn(&Received) -> bool) -> Received {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(found) = self.to(recipient).into_iter().find(|m| matches(m)) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no matching mail for {recipient} within 15 s; the sink has {:#?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One SMTP connection, line by line through mailin's session.
async fn converse(stream: TcpStream, inbox: Arc<Inbox>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut session =
        SessionBuilder::new("agora-test-sink").build(peer.ip(), Collector::new(inbox));
    let reply = |response: &Response| response.buffer().unwrap_or_default();
    if write.write_all(&reply(&session.greeting())).await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        match response.action {
            Action::Reply => {
                if write.write_all(&reply(&response)).await.is_err() {
                    return;
                }
            }
            Action::Close | Action::UpgradeTls => {
                let _ = write.write_all(&reply(&response)).await;
                return;
            }
            Action::NoReply => {}
        }
    }
}

/// What one connection's current message is, until the end of its DATA.
struct Collector {
    inbox: Arc<Inbox>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Collector {
    fn new(inbox: Arc<Inbox>) -> Self {
        Self {
            inbox,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl Handler for Collector {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_owned();
        self.to.clear();
        self.data.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.to.push(to.to_owned());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        // Refused at DATA rather than after it: mailin keeps a session that refused the end
        // of DATA in its data state, where the client's QUIT would be taken for data.
        let refuse = self
            .inbox
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if refuse {
            self.inbox.refused.fetch_add(1, Ordering::SeqCst);
            return response::INTERNAL_ERROR;
        }
        response::START_DATA
    }

    fn data_end(&mut self) -> Response {
        let Ok(parsed) = mailparse::parse_mail(&self.data) else {
            return response::TRANSACTION_FAILED;
        };
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        let message = Received {
            from: self.from.clone(),
            to: self.to.clone(),
            subject: header("Subject"),
            body: parsed.get_body().unwrap_or_default(),
            message_id: header("Message-ID"),
        };
        self.inbox.messages.lock().expect("inbox").push(message);
        response::OK
    }
}
