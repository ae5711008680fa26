//! The command line describing itself, from the same clap definitions as the parser:
//! shell completions (`resnet-cifar completions bash|zsh|fish`, clap_complete), the man
//! page (`resnet-cifar man`, hidden, clap_mangen; `make man` writes it to
//! target/man/resnet-cifar.1), and the version line with the tch and libtorch it was built
//! against.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, ValueEnum};

use super::Cli;

/// `--version`: the crate's version and the tch and libtorch that build.rs found.
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (tch ", env!("TCH_VERSION"), ", libtorch ", env!("LIBTORCH_VERSION"), ")");

/// Shells that completions are generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in; e.g. `resnet-cifar completions bash > /etc/bash_completion.d/resnet-cifar`.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write the page (roff) to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Prints the completion script of `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = without_hidden(Cli::command());
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "resnet-cifar", &mut out);
    std::io::stdout().lock().write_all(&out).context("stdout")
}

/// `cmd` without its hidden subcommands (the generators of clap_complete list every one):
/// the same arguments, groups and visible subcommands under the same name.
fn without_hidden(cmd: clap::Command) -> clap::Command {
    clap::Command::new("resnet-cifar")
        .version(VERSION)
        .args(cmd.get_arguments().cloned())
        .groups(cmd.get_groups().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

/// Writes the man page (roff) to `args.output`, or prints it.
pub fn man(args: &ManArgs) -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page).context("rendering the man page")?;
    match &args.output {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            }
            resnet_cifar::files::write_atomic(path, &page)?;
            println!("man page written to {}", path.display());
            Ok(())
        }
        None => std::io::stdout().lock().write_all(&page).context("stdout"),
    }
}
