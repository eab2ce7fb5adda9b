//! Runs a command in a guest through its agent and prints its output as
//! the stream delivers it, then exits with the command's exit code.
//!
//! ```sh
//! cargo run -p libvirt-grpc-client --example guest_exec -- \
//!     http://127.0.0.1:50051 web1 /bin/uname -a
//! ```

use std::io::Write;

use libvirt_grpc_client::{Client, ExecOutput};
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, domain, program, rest @ ..] = args.as_slice() else {
        return Err("usage: guest_exec URL DOMAIN PROGRAM [ARG]...".into());
    };
    let client = Client::connect(url.as_str()).await?;
    let mut output = client
        .agent(domain.as_str())
        .exec(program.as_str(), rest.iter().cloned())
        .await?;
    let mut code = 0;
    while let Some(item) = output.next().await {
        match item? {
            ExecOutput::Started { pid } => eprintln!("[pid {pid}]"),
            ExecOutput::Stdout(b) => std::io::stdout().write_all(&b)?,
            ExecOutput::Stderr(b) => std::io::stderr().write_all(&b)?,
            ExecOutput::Exited(e) => {
                code = e.code.unwrap_or(128 + e.signal.unwrap_or(0));
            }
        }
    }
    std::process::exit(code);
}
