//! `agent ...`: the QEMU guest agent of a running domain.
//!
//! `agent exec` streams the program's output as the server passes it on
//! (stdout to stdout, stderr to stderr; qemu-ga itself hands captured
//! output over only when the program has exited) and then exits with the
//! guest program's status, as `ssh` and `docker exec` do: its exit code
//! (0-255; a larger one, possible on Windows guests, becomes 1), or
//! 128 + N when signal N killed it, as a shell reports it. Failures of
//! the call itself (no agent, a refused start, a deadline) keep the tool's
//! own codes, so a guest program that itself exits 3 to 8 is told apart
//! only with `--json`, whose last line is the `exited` object.

use std::{io::Write, path::PathBuf};

use clap::Subcommand;
use libvirt_grpc_client::{v1, ExecExit, ExecOutput};
use serde_json::json;
use tokio_stream::StreamExt;

use super::{output, transfer, Ctx, Failure};

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Check that the guest agent answers.
    Ping {
        /// Domain name.
        domain: String,
    },
    /// Run a program in the guest, print its output, exit with its status.
    Exec {
        /// Domain name.
        domain: String,
        /// Environment entries for the program (KEY=VALUE), repeatable.
        #[arg(long = "env")]
        env: Vec<String>,
        /// Send this tool's stdin (read to its end first) to the program.
        #[arg(long)]
        stdin: bool,
        /// The program's path in the guest.
        path: String,
        /// Its arguments (put `--` before ones that start with `-`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Copy a guest file to a local file.
    FileGet {
        /// Domain name.
        domain: String,
        /// The file's path in the guest.
        guest_path: String,
        /// The local file (created or truncated).
        file: PathBuf,
    },
    /// Copy a local file into the guest.
    FilePut {
        /// Domain name.
        domain: String,
        /// The local file.
        file: PathBuf,
        /// The file's path in the guest (created or truncated).
        guest_path: String,
        /// Append instead of truncating.
        #[arg(long)]
        append: bool,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: AgentCommand) -> Result<(), Failure> {
    use AgentCommand as C;
    let json = ctx.json;
    match cmd {
        C::Ping { domain } => {
            ctx.client
                .agents()
                .ping_guest_agent(ctx.req(v1::PingGuestAgentRequest {
                    domain: ctx.dref(&domain),
                }))
                .await?;
            output::done(json, &domain, "agent answers");
        }
        C::Exec {
            domain,
            env,
            stdin,
            path,
            args,
        } => exec(ctx, &domain, path, args, env, stdin).await?,
        C::FileGet {
            domain,
            guest_path,
            file,
        } => {
            let t = transfer::guest_get(ctx, &domain, &guest_path, &file).await?;
            let (bytes, sha256) = (t.bytes, t.sha256);
            if json {
                output::print_json(&json!({"name": domain, "guest_path": guest_path,
                    "file": file, "bytes": bytes, "sha256": sha256}));
            } else {
                println!(
                    "{domain}: {bytes} bytes of {guest_path} in {}",
                    file.display()
                );
            }
        }
        C::FilePut {
            domain,
            file,
            guest_path,
            append,
        } => {
            let t = transfer::guest_put(ctx, &domain, &file, &guest_path, append).await?;
            let bytes = t.bytes;
            if json {
                output::print_json(&json!({"name": domain, "guest_path": guest_path,
                    "file": file, "bytes": bytes, "sha256": t.sha256}));
            } else {
                println!(
                    "{domain}: {bytes} bytes of {} written to {guest_path}",
                    file.display()
                );
            }
        }
    }
    Ok(())
}

/// The tool's exit code for the guest program's status.
pub(crate) fn exec_exit_code(exited: &ExecExit) -> u8 {
    match (exited.code, exited.signal) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s.clamp(0, 127)).unwrap_or(255),
        (None, None) => 1,
    }
}

async fn exec(
    ctx: &Ctx,
    domain: &str,
    path: String,
    args: Vec<String>,
    env: Vec<String>,
    with_stdin: bool,
) -> Result<(), Failure> {
    let stdin = if with_stdin {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Failure::Local(format!("Cannot read stdin: {e}")))?;
        buf
    } else {
        Vec::new()
    };
    let mut stream = ctx
        .long
        .exec(v1::ExecGuestCommandRequest {
            domain: ctx.dref(domain),
            path,
            args,
            env,
            stdin,
            discard_output: false,
        })
        .await?;
    let mut status = None;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    while let Some(item) = stream.next().await {
        let line = match item? {
            ExecOutput::Started { pid } => json!({"started": {"pid": pid}}),
            ExecOutput::Stdout(b) => {
                if !ctx.json {
                    let _ = out.write_all(&b);
                    let _ = out.flush();
                }
                json!({"stdout": String::from_utf8_lossy(&b)})
            }
            ExecOutput::Stderr(b) => {
                if !ctx.json {
                    let _ = err.write_all(&b);
                    let _ = err.flush();
                }
                json!({"stderr": String::from_utf8_lossy(&b)})
            }
            ExecOutput::Exited(e) => {
                if !ctx.json && (e.stdout_truncated || e.stderr_truncated) {
                    eprintln!("libvirt-grpc: the agent truncated the program's output");
                }
                status = Some(exec_exit_code(&e));
                json!({"exited": {"exit_code": e.code, "signal": e.signal,
                    "stdout_truncated": e.stdout_truncated,
                    "stderr_truncated": e.stderr_truncated}})
            }
        };
        if ctx.json {
            println!("{line}");
            let _ = out.flush();
        }
    }
    match status {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::Exit(code)),
        None => Err(Failure::missing("program's exit status")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_status_becomes_the_exit_code() {
        let code = |c| ExecExit {
            code: Some(c),
            ..Default::default()
        };
        assert_eq!(exec_exit_code(&code(0)), 0);
        assert_eq!(exec_exit_code(&code(42)), 42);
        assert_eq!(exec_exit_code(&code(300)), 1);
        let killed = ExecExit {
            signal: Some(9),
            ..Default::default()
        };
        assert_eq!(exec_exit_code(&killed), 137);
    }
}
