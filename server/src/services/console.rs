//! `OpenDomainConsole`: the first message names the console, the console is
//! opened through the host's pool (quick lane: opening is one call), and
//! from then on a pump thread of [`ops::console`] owns the libvirt stream;
//! this task only moves the caller's input to it and notices when the
//! caller goes away. A console holds no pool slot while it is open (it may
//! stay open for hours); [`MAX_CONSOLES`] bounds them instead.

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use libvirt_grpc::v1::{self, open_domain_console_request::Item};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::{next_message, resolve::Target, DEFAULT_STREAM_IDLE};
use crate::{
    error::Error,
    ops::{self, domain::DomainKey},
    pool::{Hosts, Lane},
    validate,
};

/// Consoles open on one server at once.
pub const MAX_CONSOLES: usize = 32;

/// Output messages queued for a slow caller before the console waits.
const OUTPUT_QUEUE: usize = 32;

/// Longest device alias accepted.
const MAX_DEVICE_LEN: usize = 64;

/// The stream `OpenDomainConsole` answers.
pub type ConsoleStream =
    Pin<Box<dyn Stream<Item = Result<v1::OpenDomainConsoleResponse, Status>> + Send + 'static>>;

/// The server-wide bound on open consoles, and the server's shutdown
/// signal that ends them.
#[derive(Debug, Clone)]
pub struct Consoles {
    slots: Arc<Semaphore>,
    stop: Option<watch::Receiver<bool>>,
}

impl Default for Consoles {
    fn default() -> Self {
        Consoles {
            slots: Arc::new(Semaphore::new(MAX_CONSOLES)),
            stop: None,
        }
    }
}

impl Consoles {
    /// Ends every console with `UNAVAILABLE` (SERVER_SHUTTING_DOWN) when
    /// `stop` turns true, as event streams end.
    pub fn with_stop(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }
}

/// Opens the console the first message of `inbound` names and returns the
/// output stream; input is fed to the console by a task of its own.
pub async fn open(
    hosts: &Hosts,
    consoles: &Consoles,
    mut inbound: Streaming<v1::OpenDomainConsoleRequest>,
    deadline: Option<tokio::time::Instant>,
) -> Result<ConsoleStream, Status> {
    let first = next_message(&mut inbound, DEFAULT_STREAM_IDLE, deadline).await?;
    let Some(Item::Open(o)) = first.and_then(|m| m.item) else {
        return Err(Error::invalid("open", "the first message must be `open`").into());
    };
    let mut v = validate::Violations::default();
    let target = v.check(Target::<DomainKey>::resolve(
        hosts,
        o.domain.as_ref(),
        "open.domain",
    ));
    v.check(device(&o.device));
    let target = v.done(target)?;
    let slot = Arc::clone(&consoles.slots)
        .try_acquire_owned()
        .map_err(|_| {
            Error::LimitReached(format!(
                "{MAX_CONSOLES} consoles are open on this server already"
            ))
        })?;
    let dev = (!o.device.is_empty()).then(|| o.device.clone());
    let force = o.force;
    let host = target.host().to_owned();
    let opened = target
        .run(Lane::Quick, deadline, move |c, k, _| {
            ops::console::open(c, k, dev.as_deref(), force)
        })
        .await?;
    let hello = v1::OpenDomainConsoleResponse {
        item: Some(v1::open_domain_console_response::Item::Opened(
            v1::ConsoleOpened {
                host,
                name: opened.name.clone(),
                uuid: opened.uuid.clone(),
                device: o.device,
            },
        )),
    };
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let errors = out_tx.downgrade();
    let (ended_tx, mut ended) = oneshot::channel();
    let input = ops::console::spawn(opened, out_tx, move |_| {
        drop(slot);
        let _ = ended_tx.send(());
    })?;
    let hang_up = input.hang_up_on_drop();
    tokio::spawn(async move {
        // Input until the caller closes its side or the session ends.
        loop {
            let m = tokio::select! {
                _ = &mut ended => break,
                m = inbound.message() => m,
            };
            let refusal = match m {
                Ok(Some(v1::OpenDomainConsoleRequest {
                    item: Some(Item::Input(data)),
                })) => {
                    if data.len() > ops::console::MAX_INPUT_BYTES {
                        Error::invalid(
                            "input",
                            format!(
                                "at most {} bytes per message",
                                ops::console::MAX_INPUT_BYTES
                            ),
                        )
                    } else {
                        if !data.is_empty() && input.send(data).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                Ok(Some(v1::OpenDomainConsoleRequest {
                    item: Some(Item::Open(_)),
                })) => Error::invalid("open", "only the first message may be `open`"),
                Ok(Some(_)) => continue,
                // The caller closed its side: output goes on.
                Ok(None) | Err(_) => break,
            };
            if let Some(tx) = errors.upgrade() {
                let _ = tx.send(Err(refusal)).await;
            }
            drop(input);
            return;
        }
        // Keep the session's input end until the session ends: dropping it
        // would end the session.
        let _ = ended.await;
        drop(input);
    });
    let outputs = Outputs {
        rx: out_rx,
        stop: consoles.stop.clone(),
        done: false,
        _hang_up: hang_up,
    };
    let outputs = futures::stream::unfold(outputs, Outputs::next);
    Ok(Box::pin(tokio_stream::once(Ok(hello)).chain(outputs)))
}

/// The output side of a session: what the pump sends, until it ends or the
/// server shuts down. Dropping it (the caller went away) ends the session.
struct Outputs {
    rx: mpsc::Receiver<Result<Vec<u8>, Error>>,
    stop: Option<watch::Receiver<bool>>,
    done: bool,
    _hang_up: ops::console::HangUp,
}

impl Outputs {
    async fn next(mut self) -> Option<(Result<v1::OpenDomainConsoleResponse, Status>, Self)> {
        if self.done {
            return None;
        }
        let stopping = async {
            match &mut self.stop {
                Some(s) => {
                    let _ = s.wait_for(|stop| *stop).await;
                }
                None => std::future::pending().await,
            }
        };
        let item = tokio::select! {
            biased;
            () = stopping => {
                self.done = true;
                Err(Error::ShuttingDown.into())
            }
            r = self.rx.recv() => match r? {
                Ok(bytes) => Ok(v1::OpenDomainConsoleResponse {
                    item: Some(v1::open_domain_console_response::Item::Output(bytes)),
                }),
                Err(e) => Err(Status::from(e)),
            },
        };
        Some((item, self))
    }
}

/// Checks the device alias: empty (the first console), or a libvirt alias.
fn device(d: &str) -> Result<(), Error> {
    if d.len() > MAX_DEVICE_LEN {
        return Err(Error::invalid(
            "open.device",
            format!("at most {MAX_DEVICE_LEN} characters"),
        ));
    }
    if !d
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(Error::invalid(
            "open.device",
            "a device alias such as serial0 or console0 (letters, digits, '-', '_', '.')",
        ));
    }
    Ok(())
}
