//! `resnet-cifar`: parse the flags, run, and print any error once, as one line (a library
//! error with its remedy on the command line: `cli::hints`).

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    // A write past a file-size limit then fails with an error we report, instead of the
    // process being killed by SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // A closed stdout or stderr (`| head -1`) ends the process as it ends a Unix tool: by
    // SIGPIPE, which the shell reports as 141, instead of a panic in `println!`. A run so
    // stopped continues from its last checkpoint, as after any kill.
    // SAFETY: as above.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    resnet_cifar::device::quiet_out_of_memory_panics();
    resnet_cifar::alloc::keep_freed_memory();
    let cli = match cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => return cli::train_args::usage_error(e),
    };
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match e.downcast_ref() {
                Some(stopped @ resnet_cifar::Error::Interrupted { signal, .. }) => {
                    eprintln!("{}", cli::hints::explain(stopped));
                    return ExitCode::from((128 + signal) as u8);
                }
                // A study grid stopped by a signal (or a closed stdout): 128 + its number.
                Some(resnet_cifar::Error::GridInterrupted { signal, .. }) => ExitCode::from((128 + signal) as u8),
                _ => ExitCode::FAILURE,
            };
            if e.downcast_ref::<cli::Reported>().is_some() {
                return ExitCode::FAILURE;
            }
            // Each cause once: a library error that names its file already says its cause.
            let mut msg = String::new();
            let causes = e.chain().map(|c| match c.downcast_ref::<resnet_cifar::Error>() {
                Some(lib) => cli::hints::explain(lib),
                None => c.to_string(),
            });
            for cause in causes {
                if msg.is_empty() {
                    msg = cause;
                } else if !msg.ends_with(&cause) {
                    msg = format!("{msg}: {cause}");
                }
            }
            eprintln!("error: {}", resnet_cifar::error::one_line(&msg));
            code
        }
    }
}
