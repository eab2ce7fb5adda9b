//! `console DOMAIN`: the serial console over OpenDomainConsole, as virsh
//! does it. On a terminal, stdin goes into raw mode (every key, Ctrl-C
//! included, goes to the guest) and Ctrl-] (0x1d) ends the session; the
//! terminal is restored however the session ends. When stdin is not a
//! terminal its bytes are sent as they come; at its end input stops and
//! the output goes on until the console closes (the guest stops) or
//! Ctrl-] / a signal ends the tool.

use std::io::{IsTerminal, Read, Write};

use libvirt_grpc_client::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Ctx, Failure};

/// The escape byte: Ctrl-].
const ESCAPE: u8 = 0x1d;

/// Raw mode while it lives.
struct RawMode;

impl RawMode {
    fn enable() -> Result<Self, Failure> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| Failure::Local(format!("Cannot put the terminal in raw mode: {e}")))?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

pub(crate) async fn run(ctx: &Ctx, name: &str, device: String, force: bool) -> Result<(), Failure> {
    use v1::open_domain_console_request::Item as In;
    use v1::open_domain_console_response::Item as Out;
    let (tx, rx) = mpsc::channel::<v1::OpenDomainConsoleRequest>(16);
    let open = v1::OpenDomainConsoleRequest {
        item: Some(In::Open(v1::ConsoleOpen {
            domain: ctx.dref(name),
            device,
            force,
        })),
    };
    tx.send(open)
        .await
        .map_err(|_| Failure::Local("The console request stream closed".into()))?;
    let mut output = ctx
        .client
        .domains()
        .open_domain_console(ctx.long_req(ReceiverStream::new(rx)))
        .await?
        .into_inner();
    match output.message().await? {
        Some(v1::OpenDomainConsoleResponse {
            item: Some(Out::Opened(o)),
        }) => eprintln!(
            "Connected to domain '{}' on host '{}'\r\nEscape character is ^] (Ctrl + ])\r",
            o.name, o.host
        ),
        _ => return Err(Failure::missing("console's opened message")),
    }

    let tty = std::io::stdin().is_terminal();
    let _raw = if tty { Some(RawMode::enable()?) } else { None };
    let (escape_tx, mut escape_rx) = mpsc::channel::<()>(1);
    // Reading stdin blocks; a plain thread does it (the process exits
    // without waiting for it once the session is over).
    std::thread::Builder::new()
        .name("console-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let (input, escaped) = match chunk.iter().position(|b| *b == ESCAPE) {
                    Some(i) => (&chunk[..i], true),
                    None => (chunk, false),
                };
                if !input.is_empty() {
                    let msg = v1::OpenDomainConsoleRequest {
                        item: Some(In::Input(input.to_vec())),
                    };
                    if tx.blocking_send(msg).is_err() {
                        return;
                    }
                }
                if escaped {
                    let _ = escape_tx.blocking_send(());
                    return;
                }
            }
        })
        .map_err(|e| Failure::Local(format!("Cannot start the console's input thread: {e}")))?;

    let mut stdout = std::io::stdout();
    let end = loop {
        tokio::select! {
            // At the end of stdin the sender is gone: input stops, output
            // goes on.
            Some(()) = escape_rx.recv() => break Ok(()),
            msg = output.message() => match msg {
                Ok(Some(v1::OpenDomainConsoleResponse { item: Some(Out::Output(bytes)) })) => {
                    let _ = stdout.write_all(&bytes);
                    let _ = stdout.flush();
                }
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(st) => break Err(Failure::from(st)),
            },
        }
    };
    drop(_raw);
    if tty {
        eprintln!();
    }
    end
}
