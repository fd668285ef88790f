//! `gen`: the generated files of the cib-replicator package, run by
//! `scripts/package`:
//!
//! ```sh
//! cargo run -p cib-replicator --bin gen -- target/gen
//! ```
//!
//! writes, from the clap definitions of both binaries
//! (`cib_publisher::cli`, `cib_subscriber::cli`):
//!
//! - `target/gen/man/`: `cib-publisher.8`, `cib-subscriber.8` and one page
//!   per subcommand (`cib-subscriber-status.8`, …), with `clap_mangen`;
//! - `target/gen/completions/`: the bash completion of each binary, with
//!   `clap_complete`.
//!
//! The man pages of the OCF agents are made from their meta-data by
//! `ra2man.xsl` beside this crate (in `scripts/package`). Nothing generated
//! is committed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::Man;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [out] => generate(Path::new(out)),
        _ => {
            eprintln!("usage: gen OUT_DIR");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes the man pages and completions of both binaries under `out`.
fn generate(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    for cmd in [cib_publisher::cli::Cli::command(), cib_subscriber::cli::Cli::command()] {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        for path in man_pages(&cmd, &man)? {
            println!("{}", path.display());
        }
        let name = cmd.get_name().to_owned();
        let path = completions.join(&name);
        let mut file = std::fs::File::create(&path)?;
        clap_complete::generate(Shell::Bash, &mut cmd, &name, &mut file);
        println!("{}", path.display());
    }
    Ok(())
}

/// The section 8 page of `cmd` and of each of its visible subcommands,
/// written to `dir`; returns their paths.
fn man_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.extend(man_pages(sub, dir)?);
    }
    let version = cmd.get_version().unwrap_or(env!("CARGO_PKG_VERSION"));
    let page = Man::new(cmd.clone())
        .section("8")
        .manual("cib-replicator")
        .source(format!("cib-replicator {version}"));
    written.push(page.generate_to(dir)?);
    Ok(written)
}
