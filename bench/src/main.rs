//! `cib-bench` — inputs and in-process timings for the benchmarks of
//! cib-replicator. The comparisons against the anchors (xsltproc, crm_diff)
//! are run by `bench/run.sh` under hyperfine; see docs/benchmarks.md.

mod generate;
mod phases;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _};
use clap::{Parser, Subcommand};

use cib_transforms::canonical::{canonicalize, digest};
use cib_transforms::rules::RuleSet;
use cib_transforms::{diff, scope, xml, Element};

use generate::{Variant, TICKET};

/// Benchmark inputs and in-process timings for cib-replicator.
#[derive(Debug, Parser)]
#[command(name = "cib-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write cib-10k.xml, cib-10k-b.xml, rules.toml, equivalent.xsl,
    /// scope.xml and scope-config.xml into DIR.
    Generate {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Number of primitives in the CIB.
        #[arg(long, default_value_t = 10_000)]
        primitives: usize,
    },
    /// Parse a CIB, cut the scope of the ticket, apply the rules, print the digest.
    ScopeRulesDigest {
        /// The CIB file.
        file: PathBuf,
        /// Rules file (default: rules.toml next to FILE).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Ticket whose scope to cut.
        #[arg(long, default_value = TICKET)]
        ticket: String,
    },
    /// Print the unified diff of the <configuration> of two CIBs.
    Diff {
        /// The old CIB.
        old: PathBuf,
        /// The new CIB.
        new: PathBuf,
    },
    /// Time each step of the pipeline in process (median of several runs).
    Phases {
        /// The CIB file.
        file: PathBuf,
        /// Rules file (default: rules.toml next to FILE).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Ticket whose scope to cut.
        #[arg(long, default_value = TICKET)]
        ticket: String,
        /// Also time the diff against this CIB.
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
        /// Number of runs.
        #[arg(long, default_value_t = 7)]
        iterations: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate { dir, primitives } => generate_files(&dir, primitives),
        Command::ScopeRulesDigest {
            file,
            rules,
            ticket,
        } => {
            let rules = load_rules(&file, rules.as_deref())?;
            let cib = load_cib(&file)?;
            let mut s = scope::scope(&cib, &ticket)
                .with_context(|| format!("scope of ticket `{ticket}`"))?;
            rules.apply(&mut s.config).context("applying the rules")?;
            canonicalize(&mut s.config);
            println!("{}", digest(&s.config));
            Ok(())
        }
        Command::Diff { old, new } => {
            let (a, b) = (load_cib(&old)?, load_cib(&new)?);
            let text = diff::configuration_diff(
                configuration(&a, &old)?,
                configuration(&b, &new)?,
                &old.display().to_string(),
                &new.display().to_string(),
                false,
            );
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
        Command::Phases {
            file,
            rules,
            ticket,
            against,
            iterations,
        } => {
            let rules = load_rules(&file, rules.as_deref())?;
            let table = phases::run(
                &file,
                &rules,
                &ticket,
                against.as_deref(),
                iterations.max(1),
            )?;
            print!("{table}");
            Ok(())
        }
    }
}

/// Reads and parses a CIB file.
pub fn load_cib(path: &Path) -> anyhow::Result<Element> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    xml::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The `<configuration>` of a parsed CIB.
fn configuration<'a>(cib: &'a Element, path: &Path) -> anyhow::Result<&'a Element> {
    cib_transforms::cib::configuration(cib)
        .with_context(|| format!("{} is not a CIB", path.display()))
}

/// Reads `rules` or, when absent, `rules.toml` next to `cib`.
pub fn load_rules(cib: &Path, rules: Option<&Path>) -> anyhow::Result<RuleSet> {
    let path = match rules {
        Some(p) => p.to_path_buf(),
        None => cib.parent().unwrap_or(Path::new(".")).join("rules.toml"),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(RuleSet::from_toml(&text, &path.display().to_string())?)
}

fn generate_files(dir: &Path, primitives: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let model = generate::model(primitives);
    let a = generate::render(&model, Variant::A);
    let b = generate::render(&model, Variant::B);
    let cib = xml::parse(&a).context("parsing the generated CIB")?;
    let s = scope::scope(&cib, TICKET).context("scope of the generated CIB")?;
    ensure!(
        !s.left_out.is_empty(),
        "the generated CIB should leave something out"
    );
    let files: [(&str, &str); 6] = [
        ("cib-10k.xml", &a),
        ("cib-10k-b.xml", &b),
        ("rules.toml", generate::RULES_TOML),
        ("equivalent.xsl", generate::EQUIVALENT_XSL),
        ("scope.xml", &s.to_document().to_xml()),
        ("scope-config.xml", &s.config.to_xml()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{:>10} bytes  {}", text.len(), path.display());
    }
    let tops = s.config.child("resources").map_or(0, |r| r.children.len());
    println!(
        "{} primitives; {} top-level resources bound to `{TICKET}`, {tops} in its scope; {} left out",
        model.primitives,
        model.bound,
        s.left_out.len()
    );
    Ok(())
}
