//! OpenDomainConsole against the real libvirtd: the serial console of the
//! test guest (a pty on ttyS0, with a shell behind it).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{
    code_of, guest, prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Status, Streaming};
use v1::{create_domain_request::Source, open_domain_console_response::Item};

fn dref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn open_msg(name: &str, force: bool) -> v1::OpenDomainConsoleRequest {
    v1::OpenDomainConsoleRequest {
        item: Some(v1::open_domain_console_request::Item::Open(
            v1::ConsoleOpen {
                domain: dref(name),
                device: String::new(),
                force,
            },
        )),
    }
}

fn input(bytes: &[u8]) -> v1::OpenDomainConsoleRequest {
    v1::OpenDomainConsoleRequest {
        item: Some(v1::open_domain_console_request::Item::Input(bytes.to_vec())),
    }
}

/// One client's console session.
struct Session {
    tx: mpsc::Sender<v1::OpenDomainConsoleRequest>,
    rx: Streaming<v1::OpenDomainConsoleResponse>,
    seen: Vec<u8>,
}

impl Session {
    async fn open(s: &TestServer, name: &str, force: bool) -> Result<Self, Status> {
        let (tx, rx) = mpsc::channel(8);
        tx.send(open_msg(name, force)).await.unwrap();
        let mut rx = s
            .client
            .domains()
            .open_domain_console(Request::new(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        let first = rx.message().await?.expect("the `opened` message");
        match first.item {
            Some(Item::Opened(o)) => assert_eq!((o.host.as_str(), o.name.as_str()), ("real", name)),
            other => panic!("first message {other:?}"),
        }
        Ok(Session {
            tx,
            rx,
            seen: Vec::new(),
        })
    }

    async fn type_line(&self, line: &str) {
        self.tx
            .send(input(format!("{line}\n").as_bytes()))
            .await
            .unwrap();
    }

    /// Reads output until `needle` appeared (panics after `timeout` or if
    /// the stream ends first).
    async fn expect(&mut self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            let m = tokio::time::timeout_at(deadline, self.rx.message())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {needle:?} on the console within {timeout:?}; saw {:?}",
                        String::from_utf8_lossy(&self.seen)
                    )
                })
                .unwrap_or_else(|e| panic!("console failed before {needle:?}: {e:?}"));
            match m.and_then(|m| m.item) {
                Some(Item::Output(b)) => self.seen.extend_from_slice(&b),
                Some(Item::Opened(_)) => panic!("a second `opened`"),
                None => panic!(
                    "console ended before {needle:?}; saw {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Types `line` until `needle` shows (every 5 s, for at most 90 s): for
    /// a guest that may still be booting, whose shell is not up yet.
    async fn run_until(&mut self, line: &str, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            self.type_line(line).await;
            let step = tokio::time::Instant::now() + Duration::from_secs(5);
            while tokio::time::Instant::now() < step {
                if String::from_utf8_lossy(&self.seen).contains(needle) {
                    return;
                }
                if let Ok(m) = tokio::time::timeout_at(step, self.rx.message()).await {
                    match m.expect("console output").and_then(|m| m.item) {
                        Some(Item::Output(b)) => self.seen.extend_from_slice(&b),
                        other => panic!("unexpected console message {other:?}"),
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {needle:?} on the console; saw {:?}",
                String::from_utf8_lossy(&self.seen)
            );
        }
    }

    /// Reads until the stream ends: its final status (Ok for a clean end).
    async fn end(&mut self, timeout: Duration) -> Result<(), Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.message())
                .await
                .expect("the console stream to end")
            {
                Ok(Some(m)) => {
                    if let Some(Item::Output(b)) = m.item {
                        self.seen.extend_from_slice(&b);
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

async fn create(s: &TestServer, xml: String, paused: bool) {
    s.client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: "real".into(),
            source: Some(Source::Xml(xml)),
            start_paused: paused,
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn console_shows_boot_answers_commands_and_is_taken_over_only_by_force() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}con");
    let log = format!("/tmp/{name}-console.log");
    c.file(&log);
    // Paused, so that the console is open before the kernel prints a line.
    create(&s, guest::xml_with_pty_console(&name, &log), true).await;
    let mut first = Session::open(&s, &name, false).await.unwrap();
    s.client
        .domains()
        .resume_domain(v1::ResumeDomainRequest {
            domain: dref(&name),
        })
        .await
        .unwrap();
    // The kernel's banner, then the test guest's init.
    first.expect("Linux version", Duration::from_secs(60)).await;
    first
        .expect("init: lvg-guest up", Duration::from_secs(90))
        .await;
    // The shell on ttyS0 runs what is typed: 6*7 is computed by the guest,
    // so the echo of the typed line alone cannot satisfy this.
    first.type_line("echo lvg-$((6*7))").await;
    first.expect("lvg-42", Duration::from_secs(30)).await;

    // A second opener without force is refused; the first keeps working.
    let busy = Session::open(&s, &name, false).await;
    assert_eq!(code_of(busy.map(|_| ())), Code::FailedPrecondition);
    first.type_line("echo still-$((40+3))").await;
    first.expect("still-43", Duration::from_secs(30)).await;

    // With force it takes over: the first holder's stream ends ABORTED.
    let mut second = Session::open(&s, &name, true).await.unwrap();
    let ended = first.end(Duration::from_secs(30)).await;
    assert_eq!(ended.map_err(|e| e.code()), Err(Code::Aborted));
    second.type_line("echo second-$((50+5))").await;
    second.expect("second-55", Duration::from_secs(30)).await;

    // A caller that goes away releases the console: the next opener needs
    // no force.
    drop(second);
    let mut third = wait_until(
        Duration::from_secs(10),
        "the console to be released",
        || async { Session::open(&s, &name, false).await.ok() },
    )
    .await;
    third.type_line("echo third-$((60+6))").await;
    third.expect("third-66", Duration::from_secs(30)).await;

    // The console closes with the guest: the stream ends cleanly.
    s.client
        .domains()
        .stop_domain(v1::StopDomainRequest {
            domain: dref(&name),
            ..Default::default()
        })
        .await
        .unwrap();
    third.end(Duration::from_secs(30)).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn consoles_that_cannot_be_opened_get_their_own_codes() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    // ttyS0 logged to a file: no pty to connect to.
    let file = format!("{p}confile");
    let file_log = format!("/tmp/{file}-console.log");
    c.file(&file_log);
    create(&s, guest::xml(&file, &file_log), true).await;
    let r = Session::open(&s, &file, false).await;
    assert_eq!(code_of(r.map(|_| ())), Code::FailedPrecondition);
    // No serial port at all.
    let none = format!("{p}connone");
    create(&s, guest::xml_without_console(&none, "/dev/null"), true).await;
    let r = Session::open(&s, &none, false).await;
    assert_eq!(code_of(r.map(|_| ())), Code::NotFound);
    // A defined domain that is not running.
    let off = format!("{p}conoff");
    let off_log = format!("/tmp/{off}-console.log");
    c.file(&off_log);
    s.client
        .domains()
        .define_domain(v1::DefineDomainRequest {
            host: "real".into(),
            source: Some(v1::define_domain_request::Source::Xml(
                guest::xml_with_pty_console(&off, &off_log),
            )),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = Session::open(&s, &off, false).await;
    assert_eq!(code_of(r.map(|_| ())), Code::FailedPrecondition);
    // A device alias the domain lacks.
    let (tx, rx) = mpsc::channel(2);
    tx.send(v1::OpenDomainConsoleRequest {
        item: Some(v1::open_domain_console_request::Item::Open(
            v1::ConsoleOpen {
                domain: dref(&file),
                device: "serial7".into(),
                force: false,
            },
        )),
    })
    .await
    .unwrap();
    let r = s
        .client
        .domains()
        .open_domain_console(Request::new(ReceiverStream::new(rx)))
        .await;
    assert_eq!(code_of(r.map(|_| ())), Code::NotFound);
    s.stop().await;
}

#[tokio::test]
async fn server_shutdown_ends_a_console_with_unavailable() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}condown");
    let log = format!("/tmp/{name}-console.log");
    c.file(&log);
    create(&s, guest::xml_with_pty_console(&name, &log), false).await;
    let mut session = Session::open(&s, &name, false).await.unwrap();
    session.run_until("echo up-$((1+1))", "up-2").await;
    let reader = tokio::spawn(async move { session.end(Duration::from_secs(30)).await });
    s.stop().await;
    let end = reader.await.unwrap();
    assert_eq!(end.map_err(|e| e.code()), Err(Code::Unavailable));
}
