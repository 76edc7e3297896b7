//! `stowage`: the command-line front end. Parses arguments, runs one verb, maps errors to exit
//! codes (see `exit.rs`), and keeps results on stdout and diagnostics on stderr.

mod archive_out;
mod cli;
mod cmd;
mod exit;
mod fast_hash_cache;
mod output;
mod profile;
mod progress;
mod repo;
mod source;
mod target;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {}", exit::one_line(&err));
            std::process::exit(exit::code(exit::classify(&err)));
        }
    }
}
