//! `zai2bench`: see the crate documentation and `zai2bench --help`. Pins itself to the
//! non-proxy core before the (single-threaded) runtime starts, so every thread of the load
//! generator and every child inherits that core until a proxy is moved to its own.

use std::process::ExitCode;

use clap::Parser;
use zai2bench::settings::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let prepared = match zai2bench::run::prepare(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("zai2bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match prepared.block_on(zai2bench::run::main(args, &prepared)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zai2bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
