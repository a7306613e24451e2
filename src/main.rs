//! The `spine-edge` command: parse the command line and dispatch to a
//! subcommand module under `cli/`. With no arguments it runs the demo on the
//! bundled synthetic sweep. `anyhow` lives here and in `cli/` only.

use clap::Parser;

mod cli;

fn main() {
    spine_edge::malloc::bound_arenas();
    let journal = spine_edge::logging::init();
    if let Err(e) = cli::dispatch(cli::Cli::parse()) {
        // Under journald, `<3>` marks the line as an error (priority 3).
        let msg = spine_edge::logging::error_line(e.chain());
        eprintln!("{}spine-edge: {}", if journal { "<3>" } else { "" }, spine_edge::logging::redacted(&msg));
        std::process::exit(1);
    }
}
