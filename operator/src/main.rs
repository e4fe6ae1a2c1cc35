//! `cachebridge-operator`: the command line. `run` starts the controller,
//! `crd` prints the CustomResourceDefinition, `render -f FILE` prints what
//! the controller would apply for a CacheBridge in a file.

use cachebridge_operator::build::Settings;
use cachebridge_operator::{crdgen, render};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cachebridge-operator",
    version,
    about = "Runs CacheBridge resources: Redis, Memcached, a writer and readers, with honest status."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the CacheBridge CustomResourceDefinition as YAML.
    Crd,
    /// Prints, as multi-document YAML, every object the controller would apply for the CacheBridge(s) in FILE.
    Render {
        /// A YAML file with one or more CacheBridge documents; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Namespace of the operator (its pods may reach managed Redis).
        #[arg(long, env = "OPERATOR_NAMESPACE", default_value = "cachebridge-system")]
        operator_namespace: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => crdgen::crd_yaml().map_err(|e| e.to_string()),
        Command::Render {
            file,
            operator_namespace,
        } => read(&file).and_then(|text| {
            render::render(&text, &Settings { operator_namespace })
                .map_err(|e| format!("{}: {e}", file.display()))
        }),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}
