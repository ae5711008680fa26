//! `resnet-cifar`: parse the flags, run, and print any error once, as one line.

use std::process::ExitCode;

use clap::Parser;
use resnet_cifar::cli::{self, Cli};

fn main() -> ExitCode {
    // A write past a file-size limit then fails with an error we report, instead of the
    // process being killed by SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref() {
                Some(resnet_cifar::Error::Interrupted { signal, .. }) => {
                    eprintln!("{e}");
                    return ExitCode::from((128 + signal) as u8);
                }
                Some(resnet_cifar::Error::Reported) => return ExitCode::FAILURE,
                _ => {}
            }
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", one_line(&chain.join(": ")));
            ExitCode::FAILURE
        }
    }
}

/// Errors from libraries may hold line breaks; the user gets one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
