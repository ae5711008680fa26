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
            if let Some(resnet_cifar::Error::Interrupted { signal, .. }) = e.downcast_ref() {
                eprintln!("{e}");
                return ExitCode::from((128 + signal) as u8);
            }
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
