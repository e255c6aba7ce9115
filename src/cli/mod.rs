//! The command line: clap definitions and dispatch. Each subcommand's handler lives in its own
//! file and calls the domain layers; nothing here holds business rules. Exit codes: 0 success,
//! 1 failure with a one-line cause on stderr, 2 usage error.

pub mod sandbox;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{self, Config};

#[derive(Debug, Parser)]
#[command(
    name = "dupdesk",
    version,
    about = "Review and merge duplicate CRM records from the keyboard"
)]
pub struct Cli {
    /// The workspace (SQLite file). Default: workspace.path from the config.
    #[arg(long, global = true, value_name = "PATH")]
    pub workspace: Option<PathBuf>,
    /// The user config file. Default: ./dupdesk.toml, else the XDG config file.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented dupdesk.toml in the current folder.
    Init {
        /// Which CRM the workspace talks to.
        #[arg(long, value_parser = ["hubspot", "sandbox"], default_value = "hubspot")]
        crm: String,
        /// Overwrite an existing dupdesk.toml.
        #[arg(long)]
        force: bool,
    },
    /// Run the HubSpot-compatible sandbox CRM by itself (until Ctrl-C).
    Sandbox(sandbox::SandboxArgs),
}

/// Everything a command handler needs: the loaded configuration.
pub struct Ctx {
    pub config: Config,
}

impl Ctx {
    pub fn workspace_path(&self) -> PathBuf {
        self.config.workspace.path.clone()
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            // One line: the cause chain joined, outermost first.
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("dupdesk: {msg}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.print_default_config {
        print!("{}", config::DEFAULT_CONFIG);
        return Ok(());
    }
    let mut sources = config::Sources::discover(cli.config.as_deref());
    if let Some(ws) = &cli.workspace {
        sources.overrides.push((
            "workspace.path".into(),
            toml::Value::String(ws.display().to_string()),
        ));
    }
    let config = config::load(&sources)?;
    let ctx = Ctx { config };
    match cli.command {
        Some(Command::Init { crm, force }) => init(&crm, force),
        Some(Command::Sandbox(args)) => sandbox::run(&args),
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(())
        }
    }
    .map(|_| drop(ctx))
}

fn init(crm: &str, force: bool) -> Result<()> {
    let path = PathBuf::from("dupdesk.toml");
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists already (use --force to overwrite)",
            path.display()
        );
    }
    let text = config::DEFAULT_CONFIG.replace("kind = \"hubspot\"", &format!("kind = \"{crm}\""));
    std::fs::write(&path, text)?;
    println!("wrote {}", path.display());
    Ok(())
}
